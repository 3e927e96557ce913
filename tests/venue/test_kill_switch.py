"""Kill switch end to end: a scripted loss path on the simulator; the switch trips at the first equity
update past the configured daily loss limit (not before), cancels, flattens with reduce-only orders,
logs a RiskEvent and a console line, and no order reaches the venue after it."""

from __future__ import annotations

import asyncio

import pytest

from kaizen.lineage import records
from tests.venue.harness import Session, fresh

SYM = "BTCUSDT"


def test_scripted_loss_trips_at_the_limit(tmp_path, capfd):
    limit = 40.0

    async def go():
        async with Session(
            tmp_path, [SYM], daily_loss_limit=limit, max_drawdown=0.9, max_notional_per_symbol=5_000.0
        ) as s:
            p0 = s.mark(SYM)
            s.sim.script_price({"symbol": SYM, "price": p0})
            q = s.venue.markets[SYM].round_qty(2_000.0 / p0)
            await s.router.set_target(SYM, q, p0, p0, data_ts_ms=fresh())
            await s.router.poll()
            assert s.router.position(SYM) == pytest.approx(q)
            equity0 = s.risk.day_start_equity
            losses = []
            price = p0
            while not s.risk.halted:
                price *= 0.998  # ~4 USDT per step on 2000 notional
                s.sim.script_price({"symbol": SYM, "price": price})
                await s.router.poll()
                losses.append(equity0 - s.risk.equity)
                assert len(losses) < 100
            # tripped at the first poll whose loss reached the limit, not before
            assert losses[-1] >= limit and all(x < limit for x in losses[:-1])
            n_before = len(s.sim.orders_received)
            # flattened with reduce-only orders, position zero at the venue
            assert (await s.venue.fetch_positions())[SYM].qty == 0
            kill = [r for r in s.lineage.of(records.RiskEvent) if r.kind == "kill_switch"]
            assert len(kill) == 1 and "daily loss" in kill[0].detail
            flat = [o for o in s.lineage.of(records.Order) if kill[0].id in o.parents]
            assert flat and all(o.reduce_only for o in flat)
            # nothing is sent after it, whatever the strategy asks
            for target in (q, -q, 2 * q):
                assert await s.router.set_target(SYM, target, price, price, data_ts_ms=fresh()) == []
            await s.router.poll()
            await s.router.stop()
            assert len(s.sim.orders_received) == n_before
            assert s.risk.halted and (tmp_path / "risk_halt.json").exists()

    asyncio.run(asyncio.wait_for(go(), 120))
    err = capfd.readouterr().err
    assert "KILL SWITCH" in err and "daily loss" in err
