"""Fault run: the paper engine (`kaizen run`, a real process) against the simulator (`kaizen sim`, a
real process) with faults on, SIGKILLed and restarted, then checked against the venue's own books.

Faults, injected all along: cuts of every websocket (market data and the user-data stream), 5xx,
429 with Retry-After, and timeouts after the venue accepted an order. The engine is SIGKILLed
`--kills` times at random points and restarted on the same state directory (same run identity);
faults pause while an engine starts up (a start-up failure ends the start in one line, by design)
and run all the while it trades;
the last start runs out its time and stops cleanly (cancel, flatten). Checks:

- no duplicate order: no client order id accepted twice by the venue;
- final position as intended: flat on every symbol (flatten on stop), no open order left;
- the final run's risk figures equal the venue's: its starting equity plus net PnL is the venue's
  equity at the end, and its fees equal the venue's commission on its own trades;
- `kaizen log verify` passes on every start's lineage log (a SIGKILLed one included).

    python bench/fault_run.py --days 10 --speed 3600 --kills 3

At 3600x a funding settlement comes every 8 s of wall time: the router has the quiet moment it
needs to read its starting equity at a restart (the wallet around taking every fill and payment
in). At 14400x (every 2 s) its rate-limited REST reads straddle a settlement each time, and the
basis may count one payment twice (an `equity_basis_unsettled` record says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
KEY_ENV, SECRET_ENV = "KZ_FAULT_KEY", "KZ_FAULT_SECRET"


def admin(base: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def write_config(path: Path, rest: str, ws: str, state: Path, lineage: Path, speed: float) -> None:
    path.write_text(
        f'mode = "paper"\nsymbols = {json.dumps(SYMBOLS)}\n'
        f'[venue]\nrest_url = "{rest}"\nws_url = "{ws}"\n'
        f'api_key_env = "{KEY_ENV}"\napi_secret_env = "{SECRET_ENV}"\ntimeout_ms = 1500\n'
        f'[risk]\nstate_dir = "{state}"\ndaily_loss_limit = 1000000\nmax_drawdown = 0.99\n'
        f'[lineage]\ndir = "{lineage}"\n'
        f"[sim]\nspeed = {speed}\n"
        "[engine]\nreconcile_every_s = 2\n"
    )


class FaultInjector:
    """Every `every_s` wall seconds, one fault from the list, in a seeded order."""

    def __init__(self, base: str, every_s: float, seed: int) -> None:
        self.base, self.every_s = base, every_s
        self.rng = random.Random(seed)
        self.count: Counter[str] = Counter()
        self._stop = False
        self.paused = True  # off while an engine starts (a start-up failure is one line, by design)

    def kinds(self):
        return [
            ("ws_drop", None),
            ("5xx", {"rest_5xx": 2}),
            ("429", {"rest_429": 1, "retry_after_s": 1}),
            ("timeout_after_accept", {"timeout_after_accept": 1, "timeout_s": 2.0}),
        ]

    def run(self) -> None:
        while not self._stop:
            time.sleep(self.every_s)
            if self.paused:
                continue
            kind, body = self.rng.choice(self.kinds())
            try:
                if kind == "ws_drop":
                    admin(self.base, "/_sim/drop_ws", {})
                else:
                    admin(self.base, "/_sim/faults", body)
                self.count[kind] += 1
            except OSError:
                pass

    def stop(self) -> None:
        self._stop = True


def wait_trading(base: str, p: subprocess.Popen, timeout_s: float = 90.0) -> None:
    """Until the engine has started (the runner opens the user-data stream right after the engine's
    start: a new listenKey POST at the venue) or exited."""
    n0 = sum(1 for e in admin(base, "/_sim/listen_key_log") if e.get("op") == "POST")
    t = time.monotonic()
    while time.monotonic() - t < timeout_s and p.poll() is None:
        if sum(1 for e in admin(base, "/_sim/listen_key_log") if e.get("op") == "POST") > n0:
            return
        time.sleep(0.2)


async def venue_view(cfg_path: Path) -> dict:
    from kaizen import config
    from kaizen.venue import make_venue

    cfg = config.load(str(cfg_path))
    v = make_venue(cfg, rest_url=cfg.venue.rest_url, ws_url=cfg.venue.ws_url)
    v.ex.enableRateLimit = False
    await v.connect()
    try:
        pos = await v.fetch_positions()
        opens = {s: await v.fetch_open_orders(s) for s in SYMBOLS}
        bal = await v.fetch_balance()
    finally:
        await v.close()
    return {
        "positions": {s: p.qty for s, p in pos.items()},
        "open_orders": sum(len(o) for o in opens.values()),
        "equity": bal.equity,
        "wallet": bal.wallet,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=10.0, help="simulated days (default 10)")
    ap.add_argument("--speed", type=float, default=3_600.0, help="simulated seconds per wall second")
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs before the clean last start")
    ap.add_argument("--fault-every", type=float, default=1.0, help="wall seconds between faults")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    args = ap.parse_args()

    from kaizen.engine.runner import SimProcess

    out = Path(args.out or tempfile.mkdtemp(prefix="kaizen-fault-"))
    out.mkdir(parents=True, exist_ok=True)
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    env = dict(os.environ, **{KEY_ENV: key, SECRET_ENV: secret})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    os.environ.update({KEY_ENV: key, SECRET_ENV: secret})
    sim = SimProcess(args.seed, args.speed, key, secret, log_path=out / "sim.log", balance=10_000.0)
    wall = args.days * 86_400 / args.speed
    starts = args.kills + 1
    seg = wall / starts
    rng = random.Random(args.seed)
    inj = FaultInjector(sim.rest_url, args.fault_every, args.seed)
    import threading

    th = threading.Thread(target=inj.run, daemon=True)
    t0 = time.monotonic()
    results = []
    try:
        th.start()
        for i in range(starts):
            cfg = out / f"start{i}.toml"
            write_config(cfg, sim.rest_url, sim.ws_url, out / "state", out / f"lineage{i}", args.speed)
            last = i == starts - 1
            cmd = [sys.executable, "-m", "kaizen", "run", str(cfg), "--no-progress"]
            cmd += ["--duration", f"{seg:.1f}"] if last else ["--duration", f"{seg * 3:.1f}"]
            inj.paused = True
            p = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            wait_trading(sim.rest_url, p)
            inj.paused = False
            if last:
                so, se = p.communicate(timeout=seg + 120)
                results.append(("clean", p.returncode, so, se))
            else:
                time.sleep(seg * rng.uniform(0.7, 1.3))
                p.send_signal(signal.SIGKILL)
                so, se = p.communicate()
                results.append(("SIGKILL", p.returncode, so, se))
        inj.stop()
        th.join(timeout=5)
        elapsed = time.monotonic() - t0
        orders = admin(sim.rest_url, "/_sim/orders")
        trades = admin(sim.rest_url, "/_sim/trades")
        state = admin(sim.rest_url, "/_sim/state")
        view = asyncio.run(venue_view(out / f"start{starts - 1}.toml"))
        funding = admin(sim.rest_url, "/_sim/funding")
        # the venue's own books, for a look at any difference
        (out / "venue.json").write_text(
            json.dumps({"orders": orders, "trades": trades, "funding": funding, "view": view}, default=str)
        )
    finally:
        inj.stop()
        sim.stop()

    accepted = Counter(o["params"].get("newClientOrderId") for o in orders if o.get("accepted"))
    dups = {c: n for c, n in accepted.items() if n > 1}
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    from kaizen.lineage.reader import LineageReader

    # the venue's commission on the trades the last start took into its books (its own orders and
    # any fill of a killed start's order that landed after it started)
    last_ids = {r.trade_id for r in LineageReader(out / f"lineage{starts - 1}").records(types=["fill"])}
    last_fees = sum(t["commission"] for t in trades if str(t["id"]) in last_ids)
    verify = []
    for i in range(starts):
        res = subprocess.run(
            [sys.executable, "-m", "kaizen", "log", "verify", str(out / f"lineage{i}")],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        verify.append(res.returncode)
    eq_engine = summary.get("equity", float("nan"))
    checks = {
        "no duplicate order": not dups,
        "flat at the end": all(abs(q) < 1e-12 for q in view["positions"].values()),
        "no open order": view["open_orders"] == 0,
        "equity = venue's": abs(eq_engine - view["equity"]) < 1e-6,
        "fees = venue's": abs(summary.get("fees", float("nan")) - last_fees) < 1e-6,
        "log verify": all(rc == 0 for rc in verify),
        "clean exit 0": results[-1][1] == 0,
    }
    print(f"fault run: {args.days:g} simulated days at {args.speed:g}x in {elapsed:.1f} s wall, "
          f"{args.kills} SIGKILLs + 1 clean start; run dir {out}")  # fmt: skip
    print(
        f"  faults injected: {dict(inj.count)}; websocket drops seen by the venue: {state.get('wsDropped')}"
    )
    print(f"  orders received {len(orders)}, accepted {sum(accepted.values())} "
          f"({len(accepted)} distinct client ids), duplicates {len(dups)}; venue trades {len(trades)}")  # fmt: skip
    print(f"  final positions {view['positions']}, open orders {view['open_orders']}")
    print(f"  last start: equity {eq_engine:.6f} vs venue {view['equity']:.6f}; fees "
          f"{summary.get('fees', float('nan')):.6f} vs venue {last_fees:.6f}; trades {summary.get('trades')}")  # fmt: skip
    print(f"  kaizen log verify exit codes per start: {verify}")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if results[-1][1] != 0:
        print(results[-1][3][-1500:], file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
