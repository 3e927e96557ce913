"""Soak: the paper engine (`kaizen run`, a real process) against the simulator at a high speed for N
minutes, watched from outside through its /status endpoint and /proc.

Run: `python bench/soak.py [--minutes 10] [--speed 3600]`. The simulator publishes on a wall-clock
cadence (every 100 ms) whatever its speed; the speed sets how much sim time each step covers, so a
high speed closes many bars (decisions, orders, lineage records) per wall second: at 3600 x, one
1-minute bar per symbol every 17 ms, 25 sim days in 10 minutes. Risk limits are opened wide so
the kill switch does not end the soak.

Sampled every --sample-s: the engine process's resident memory (VmRSS), and each stage's latency
histogram from /metrics (parsed with prometheus_client's parser). A window's p99 comes from the
difference of the cumulative buckets at its ends, interpolated within the bucket (as Prometheus'
histogram_quantile does; buckets are at most 1.5x apart). After the warm-up (the first --warmup
fraction of the run):
  - memory: growth = median of the last 3 samples / median of the first 3 after warm-up - 1, must
    be < 5 %; the least-squares slope is printed too (MB per hour);
  - latency: per stage, the p99 over the last third of the post-warm-up time must not exceed the
    p99 over its first third by more than 50 % + 20 µs (scheduler noise on a shared 2-core box).
The last line is the verdict. Finally the engine gets SIGTERM and must exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("message", "bar", "order", "tick_to_order", "gc")

CONFIG = """mode = "paper"
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
[risk]
max_notional_per_symbol = 2000.0
max_gross_leverage = 5.0
max_net_leverage = 5.0
max_open_orders = 50
max_orders_per_minute = 100000
daily_loss_limit = 1000000.0
max_drawdown = 1.0
stale_after_ms = 30000
[lineage]
dir = "{run}/lineage"
[sim]
seed = {seed}
speed = {speed}
starting_balance = 1000000.0
[engine]
duration_s = 0
status_port = 0
cpu_pin = {cpu}
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def get_status(url: str) -> dict:
    with urllib.request.urlopen(url + "/status", timeout=10) as r:
        return json.loads(r.read())


def get_histograms(url: str) -> dict[str, list[tuple[float, float]]]:
    """stage -> [(upper bound s, cumulative count)] from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[tuple[float, float]]] = {}
    for fam in text_string_to_metric_families(text):
        m = re.fullmatch(r"kaizen_stage_(\w+)_seconds", fam.name)
        if m and fam.type == "histogram":
            out[m.group(1)] = [
                (float(s.labels["le"]), s.value) for s in fam.samples if s.name.endswith("_bucket")
            ]
    return out


def window_quantile(h0: list[tuple[float, float]], h1: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile (µs) of the samples between two scrapes of a cumulative histogram."""
    d = [(le, c1 - c0) for (le, c0), (_, c1) in zip(h0, h1, strict=True)]
    n = d[-1][1]
    if n <= 0:
        return None
    rank, lo, prev = q * n, 0.0, 0.0
    for le, c in d:
        if c >= rank:
            if le == float("inf"):
                return lo * 1e6
            frac = (rank - prev) / (c - prev) if c > prev else 1.0
            return (lo + (le - lo) * frac) * 1e6
        lo, prev = le, c
    return None


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den * 3600.0 if den else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="wall minutes of trading (default 10)")
    ap.add_argument("--speed", type=float, default=3600.0, help="simulator speed (default 3600)")
    ap.add_argument(
        "--warmup", type=float, default=0.2, help="fraction of the run that is warm-up (default 0.2)"
    )
    ap.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples (default 5)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cpu", type=int, default=-1, help="engine.cpu_pin (default -1: not pinned)")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    args = ap.parse_args()
    if not (args.minutes > 0 and args.speed > 0 and 0 <= args.warmup < 1 and args.sample_s > 0):
        print("soak: --minutes, --speed, --sample-s must be > 0 and 0 <= --warmup < 1", file=sys.stderr)
        return 2

    run = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="kaizen-soak-"))
    run.mkdir(parents=True, exist_ok=True)
    conf = run / "soak.toml"
    conf.write_text(CONFIG.format(run=run, seed=args.seed, speed=args.speed, cpu=args.cpu))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaizen", "run", str(conf), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(run / "engine.stderr", "wb"),  # noqa: SIM115
        text=True,
    )
    out: list[str] = []
    url_box: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            out.append(line.rstrip("\n"))
            m = re.search(r"status (http://127\.0\.0\.1:\d+)/status", line)
            if m and not url_box:
                url_box.append(m.group(1))
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        print(
            f"soak: the engine did not start; stdout: {out[-5:]}; see {run / 'engine.stderr'}",
            file=sys.stderr,
        )
        return 1
    url = url_box[0]
    print(f"soak: engine pid {proc.pid} at {url}, speed {args.speed:g}x, {args.minutes:g} min, run dir {run}")

    total = args.minutes * 60.0
    t0 = time.monotonic()
    samples: list[dict] = []
    try:
        while (el := time.monotonic() - t0) < total:
            time.sleep(min(args.sample_s, max(total - el, 0.01)))
            if proc.poll() is not None:
                print(
                    f"soak: the engine exited early (rc {proc.returncode}); stdout tail: {out[-5:]}",
                    file=sys.stderr,
                )
                return 1
            st = get_status(url)
            hist = get_histograms(url)
            prev = samples[-1]["hist"] if samples else None
            s = {
                "t": time.monotonic() - t0,
                "rss": rss_mb(proc.pid),
                "messages": st.get("messages", 0),
                "bars": st.get("bars", 0),
                "orders": (st.get("pnl") or {}).get("orders") or 0,
                "hist": hist,
                "p99": {
                    k: window_quantile(prev[k], hist[k], 0.99) if prev and k in hist and k in prev else None
                    for k in STAGES
                },
                "halted": st["kill_switch"]["halted"],
            }
            samples.append(s)
            p99 = "  ".join(f"{k} {v:.0f}" if v is not None else f"{k} -" for k, v in s["p99"].items())
            # (p99 over the last sampling interval)
            print(
                f"  t {s['t']:6.0f} s  rss {s['rss']:7.1f} MB  msgs {s['messages']:>8}  bars {s['bars']:>8}  "
                f"orders {s['orders']:>6.0f}  p99 µs: {p99}",
                flush=True,
            )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
    return report(samples, args, rc, total)


def report(samples: list[dict], args, rc: int, total: float) -> int:
    post = [s for s in samples if s["t"] >= args.warmup * total]
    fails: list[str] = []
    if len(post) < 6:
        print("soak: too few samples after warm-up (run longer or sample more often)")
        return 1
    first = statistics.median(s["rss"] for s in post[:3])
    last = statistics.median(s["rss"] for s in post[-3:])
    growth = last / first - 1.0
    slope = slope_per_hour([s["t"] for s in post], [s["rss"] for s in post])
    print(
        f"memory: RSS after warm-up {first:.1f} MB -> end {last:.1f} MB, growth {growth:+.2%} (limit +5%), "
        f"slope {slope:+.1f} MB/h"
    )
    if not growth < 0.05:
        fails.append(f"rss growth {growth:+.2%}")
    third = max(len(post) // 3, 1)
    for stage in STAGES:
        if stage not in post[0]["hist"]:
            print(f"latency {stage}: not measured")
            continue
        pa = window_quantile(post[0]["hist"][stage], post[third]["hist"][stage], 0.99)
        pb = window_quantile(post[-1 - third]["hist"][stage], post[-1]["hist"][stage], 0.99)
        if pa is None or pb is None:
            print(f"latency {stage}: no samples in a window")
            continue
        ok = pb <= 1.5 * pa + 20.0
        print(
            f"latency {stage}: p99 first third {pa:.1f} µs, last third {pb:.1f} µs {'ok' if ok else 'GROWING'}"
        )
        if not ok:
            fails.append(f"{stage} p99 {pa:.0f} -> {pb:.0f} µs")
    dt = post[-1]["t"] - post[0]["t"]
    rate = (post[-1]["messages"] - post[0]["messages"]) / dt if dt > 0 else 0.0
    bars = (post[-1]["bars"] - post[0]["bars"]) / dt if dt > 0 else 0.0
    print(
        f"throughput after warm-up: {rate:.0f} messages/s, {bars:.0f} bars/s; orders {post[-1]['orders']:.0f}; "
        f"engine exit code {rc}"
    )
    if any(s["halted"] for s in samples):
        fails.append("kill switch tripped")
    if rc != 0:
        fails.append(f"exit code {rc} after SIGTERM")
    verdict = "PASS" if not fails else "FAIL: " + "; ".join(fails)
    print(
        f"VERDICT {verdict} (soak {args.minutes:g} min at {args.speed:g}x: RSS {growth:+.2%} after warm-up, "
        "per-stage p99 not growing)"
    )
    return 0 if not fails else 1


if __name__ == "__main__":
    raise SystemExit(main())
