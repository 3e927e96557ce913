"""Simulator benchmark: CPU cost of serving market data, and order round trips through ccxt.

Run: `python bench/sim.py [--seconds 10]`. Starts `kaizen sim` as a real child process, subscribes
to every stream of all four symbols with a picows client, and measures
  - the simulator process's CPU use (user+sys from /proc) while publishing, at speed 60 and 600,
    against the same process idle with no subscribers (baseline);
  - messages per second received;
  - ccxt create_order (market, signed) round trip vs ccxt fetch_time (unsigned GET) as baseline.
Target: the simulator stays under ~15 % of one core while publishing 4 symbols (2-core box).
Numbers are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STREAMS = ["@depth@100ms", "@aggTrade", "@markPrice@1s", "@bookTicker"]
SYMS = ["btcusdt", "ethusdt", "solusdt", "bnbusdt"]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(speed: float) -> tuple[subprocess.Popen, str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KAIZEN_SIM_API_KEY="k", KAIZEN_SIM_API_SECRET="s")
    p = subprocess.Popen(
        [sys.executable, "-m", "kaizen", "sim", "--speed", str(speed)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    f = dict(t.split("=", 1) for t in p.stdout.readline().split()[1:])
    return p, f["rest"], f["ws"]


async def _measure(ws: str, pid: int, seconds: float, subscribe: bool) -> tuple[float, float]:
    from picows import WSListener, ws_connect

    class L(WSListener):
        n = 0

        def on_ws_frame(self, transport, frame) -> None:  # noqa: ANN001
            L.n += 1

    from kaizen.market.routes import combined_url, group_by_route

    trs = []
    if subscribe:  # one connection per route (/public, /market), as the live feed opens them
        names = [s + x for s in SYMS for x in STREAMS]
        for route, group in group_by_route(names).items():
            tr, _ = await ws_connect(L, combined_url(ws, route, group))
            trs.append(tr)
    await asyncio.sleep(1.0)
    c0, n0, t0 = _cpu(pid), L.n, time.monotonic()
    await asyncio.sleep(seconds)
    c1, n1, t1 = _cpu(pid), L.n, time.monotonic()
    for tr in trs:
        tr.disconnect()
    return (c1 - c0) / (t1 - t0) * 100.0, (n1 - n0) / (t1 - t0)


async def _orders(rest: str, n: int) -> tuple[float, float]:
    import ccxt.async_support as ccxt

    from kaizen.venue.ccxt_urls import point_binanceusdm_at

    ex = point_binanceusdm_at(
        ccxt.binanceusdm({"apiKey": "k", "secret": "s", "enableRateLimit": False}), rest
    )
    try:
        await ex.load_markets()
        base, orders = [], []
        for i in range(n):
            t = time.perf_counter()
            await ex.fetch_time()
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            await ex.create_order("BTC/USDT:USDT", "market", "buy" if i % 2 else "sell", 0.003)
            orders.append(time.perf_counter() - t)
        return statistics.median(base) * 1e3, statistics.median(orders) * 1e3
    finally:
        await ex.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--orders", type=int, default=200)
    a = ap.parse_args()
    import uvloop

    rows = []
    for speed in (60.0, 600.0):
        p, rest, ws = _spawn(speed)
        try:
            idle, _ = uvloop.run(_measure(ws, p.pid, a.seconds, subscribe=False))
            busy, rate = uvloop.run(_measure(ws, p.pid, a.seconds, subscribe=True))
            rows.append((f"speed {speed:g}: no subscribers (baseline)", f"{idle:.1f} % CPU", ""))
            rows.append((f"speed {speed:g}: 4 symbols x 4 streams", f"{busy:.1f} % CPU", f"{rate:.0f} msg/s"))
            if speed == 60.0:
                base, order = uvloop.run(_orders(rest, a.orders))
                rows.append(("ccxt fetch_time round trip (baseline)", f"{base:.2f} ms median", ""))
                rows.append(("ccxt create_order market round trip", f"{order:.2f} ms median", ""))
        finally:
            p.terminate()
            p.wait(10)
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'value':>18}  {'rate':>10}")
    for name, v, r in rows:
        print(f"{name:<{w}}  {v:>18}  {r:>10}")
    busy = max(float(v.split()[0]) for name, v, _ in rows if "4 symbols" in name)
    print(
        f"verdict: simulator under 15 % of one core publishing 4 symbols: {'MET' if busy < 15 else 'NOT MET'} "
        f"(worst {busy:.1f} %); CPU from /proc over the same {a.seconds:g} s window for every row; round trips: "
        f"median of the same {a.orders} calls each, interleaved; box shared with other work"
    )


if __name__ == "__main__":
    main()
