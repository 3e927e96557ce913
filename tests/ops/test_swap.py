"""A strategy swap while market data flows loses no message and no decision.

The live runner has no improvement-loop hook (kaizen/loop is driven by the backtest driver only),
so the swap here is what a promotion amounts to on the event loop: replacing `engine.strategy`
from another task, i.e. between two messages. The engine runs through the real runner
(`Session`) against the in-process simulator (the test needs the engine object to swap it); every
market-data frame the simulator sent must be one the engine processed, and every bar closed
before the stop must have its decision, taken by whichever strategy was in place."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time

import msgspec

from kaizen import config
from kaizen.engine.runner import Session
from kaizen.engine.strategies import BaselineMomentum, Flat
from kaizen.lineage.reader import LineageReader


def test_swaps_between_messages_drop_no_message_and_no_decision(tmp_path, monkeypatch):
    from kaizen.venue.sim import Simulator, ws

    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    monkeypatch.setenv("KZ_SWAP_KEY", key)
    monkeypatch.setenv("KZ_SWAP_SECRET", secret)
    sent = [0]
    real_send = ws._send

    def counting_send(c, msg):  # market-data frames on combined streams, as the engine receives them
        if c.transport is not None and c in c.hub.conns and msg.startswith(b'{"stream"'):
            sent[0] += 1
        real_send(c, msg)

    monkeypatch.setattr(ws, "_send", counting_send)

    async def main():
        sim = Simulator(seed=9, speed=1200.0, api_key=key, api_secret=secret)
        await sim.start()
        try:
            cfg = config.Config(symbols=["BTCUSDT", "ETHUSDT"])
            cfg = msgspec.structs.replace(
                cfg,
                venue=msgspec.structs.replace(
                    cfg.venue,
                    rest_url=sim.rest_url,
                    ws_url=sim.ws_url,
                    api_key_env="KZ_SWAP_KEY",
                    api_secret_env="KZ_SWAP_SECRET",
                ),  # fmt: skip
                lineage=msgspec.structs.replace(cfg.lineage, dir=str(tmp_path / "lineage")),
            )
            session = Session(cfg, sim.rest_url, sim.ws_url, 0.0, show_progress=False)
            run = asyncio.create_task(session.run())
            while session.engine is None or session.engine.feed is None or session.engine.bars < 5:
                await asyncio.sleep(0.05)
            eng = session.engine
            strategies = [Flat(), BaselineMomentum(cfg.strategy)]
            swaps = 0
            t_end = time.monotonic() + 3.0
            while time.monotonic() < t_end:
                await asyncio.sleep(0.02)
                eng.strategy = strategies[swaps % 2]
                swaps += 1
            sim._task.cancel()  # the simulator stops publishing; what it sent arrives
            await asyncio.gather(sim._task, return_exceptions=True)
            await asyncio.sleep(0.5)
            got = eng.feed.stats["messages"]
            bars, decisions = eng.bars, eng.decisions
            session.request_stop(signal.SIGTERM)
            await run
            return swaps, got, bars, decisions
        finally:
            await sim.stop()

    swaps, got, bars, decisions = asyncio.run(main())
    assert swaps > 50
    assert sent[0] > 100 and got == sent[0], f"simulator sent {sent[0]} frames, engine processed {got}"
    assert bars > 10 and decisions == bars
    names = {r.strategy for r in LineageReader(tmp_path / "lineage").records(types="decision")}
    assert {"flat", "baseline_momentum"} <= names, names
