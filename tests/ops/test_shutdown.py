"""SIGTERM while orders rest at the venue: the engine stops taking risk, cancels every open order
on its symbols, flattens, drains and closes its lineage log, and exits 0. A real `kaizen run`
process against a real simulator process, checked through the real ccxt client."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal

import msgspec

from kaizen import config
from kaizen.engine.runner import SimProcess
from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from kaizen.venue import make_venue
from tests.conftest import run_kaizen
from tests.ops._proc import EngineProc, write_config

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _venue_cfg(sim: SimProcess) -> config.Config:
    cfg = config.Config(symbols=list(SYMBOLS))
    return msgspec.structs.replace(
        cfg,
        venue=msgspec.structs.replace(
            cfg.venue,
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            api_key_env="KZ_OPS_KEY",
            api_secret_env="KZ_OPS_SECRET",
        ),
    )


async def _rest_orders(cfg: config.Config) -> tuple[list[str], int]:
    """Two resting limit orders per symbol, 4 % away from the last price (they will not fill)."""
    v = make_venue(cfg)
    await v.connect()
    try:
        cids = []
        for sym in SYMBOLS:
            m = v.markets[sym]
            mark = (await v.fetch_positions())[sym].mark_price if sym in await v.fetch_positions() else 0.0
            if not mark > 0:
                mark = float((await v.ex.fetch_ticker(m.venue_symbol))["last"])
            for side, k in (("buy", 0.96), ("sell", 1.04)):
                price = m.round_price(mark * k, side)
                qty = m.round_qty(max(m.min_qty, 2 * max(m.min_notional, 5.0) / price), market=False)
                cid = f"opstest{secrets.token_hex(6)}"
                await v.place_order(sym, side, qty, client_order_id=cid, order_type="limit", price=price)
                cids.append(cid)
        # and a position the engine did not open (its fill polling may take it in and trade it
        # down before the stop; either way nothing may be left open after it)
        m = v.markets["ETHUSDT"]
        qty = m.round_qty(max(m.min_qty, 3 * max(m.min_notional, 5.0) / mark))
        await v.place_order("ETHUSDT", "buy", qty, client_order_id=f"opstest{secrets.token_hex(6)}")
        opened = sum([len(await v.fetch_open_orders(s)) for s in SYMBOLS])
        return cids, opened
    finally:
        await v.close()


async def _venue_state(cfg: config.Config) -> tuple[dict[str, int], dict[str, float]]:
    v = make_venue(cfg)
    await v.connect()
    try:
        opened = {s: len(await v.fetch_open_orders(s)) for s in SYMBOLS}
        pos = {s: p.qty for s, p in (await v.fetch_positions()).items()}
        return opened, pos
    finally:
        await v.close()


def test_sigterm_cancels_open_orders_flattens_and_leaves_a_verified_log(tmp_path, monkeypatch):
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    monkeypatch.setenv("KZ_OPS_KEY", key)
    monkeypatch.setenv("KZ_OPS_SECRET", secret)
    sim = SimProcess(3, 120.0, key, secret, log_path=tmp_path / "sim.log")
    eng = None
    try:
        cfg = _venue_cfg(sim)
        venue = (
            f'[venue]\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
            'api_key_env = "KZ_OPS_KEY"\napi_secret_env = "KZ_OPS_SECRET"'
        )
        conf = write_config(tmp_path / "run.toml", tmp_path / "run", symbols=SYMBOLS, venue=venue,
                            extra="flatten_on_stop = true")  # fmt: skip
        eng = EngineProc(conf)
        eng.wait_ready()
        cids, opened = asyncio.run(_rest_orders(cfg))
        assert opened >= len(cids) == 4, opened

        eng.signal(signal.SIGTERM)
        rc = eng.stop(timeout=60)
        assert rc == 0, eng.stderr[-2000:]
        eng.wait_line(r"SIGTERM: stopping \(no new orders, cancel open orders, flatten\)", 1)

        opened, pos = asyncio.run(_venue_state(cfg))
        assert opened == dict.fromkeys(SYMBOLS, 0), f"orders still open at the venue: {opened}"
        assert all(abs(q) < 1e-12 for q in pos.values()), f"positions left open: {pos}"
    finally:
        if eng is not None:
            eng.kill()
        sim.stop()

    lineage = tmp_path / "run" / "lineage"
    res = run_kaizen("log", "verify", str(lineage))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "every checksum holds" in res.stdout
    recs = list(LineageReader(lineage).records())
    marks = [i for i, r in enumerate(recs) if isinstance(r, R.RiskEvent) and r.kind == "stop_requested"]
    assert len(marks) == 1 and recs[marks[0]].detail == "SIGTERM"
    # no new risk once the stop began: every order created after it only reduces a position
    later = [r for r in recs[marks[0] :] if isinstance(r, R.Order) and r.ts > recs[marks[0]].ts]
    assert all(r.reduce_only for r in later), [(r.side, r.qty, r.reduce_only) for r in later]
    ends = list(LineageReader(lineage).records(types="run_end"))
    assert len(ends) == 1 and ends[0].reason == "signal"
    assert not (tmp_path / "run" / "status.url").exists()  # the endpoint went away with the engine
    assert isinstance(ends[0], R.RunEnd)


def test_a_core_this_machine_lacks_is_one_line_before_anything_starts(tmp_path):
    bad = max(os.sched_getaffinity(0)) + 64
    conf = write_config(tmp_path / "run.toml", tmp_path / "run", extra=f"cpu_pin = {bad}")
    res = run_kaizen("run", str(conf), "--no-progress", timeout=60)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"engine.cpu_pin = {bad}: no such core" in lines[0], res.stderr
    assert not (tmp_path / "run" / "sim.log").exists()  # no simulator was started
