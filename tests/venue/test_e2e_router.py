"""End to end through the real ccxt binanceusdm client against the simulator on 127.0.0.1 (no mocks):
orders, fills, fees, reconciliation, and each fault (5xx, 429 with Retry-After, timeout after the
venue accepted the order, connection cut mid-order) -> no duplicate order, the intended final
position, nothing left open after shutdown."""

from __future__ import annotations

import asyncio
import math

import pytest

from kaizen.lineage import records
from tests.venue.harness import Session, fresh

SYM = "BTCUSDT"


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def intended(s: Session, notional: float) -> float:
    return s.venue.markets[SYM].round_qty(notional / s.mark(SYM))


async def settle(s: Session, target: float) -> None:
    for _ in range(50):
        await s.router.poll()
        if abs(s.router.position(SYM) - target) < 1e-9:
            return
        await asyncio.sleep(0.05)


async def finish(s: Session) -> None:
    await s.router.stop()
    assert await s.venue.fetch_open_orders(SYM) == []


def test_targets_fills_fees_and_reconcile(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            q = intended(s, 1_000.0)
            orders = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[11], data_ts_ms=fresh())
            assert [o.status for o in orders] == ["filled"] and orders[0].parents == [11]
            await settle(s, q)
            assert s.router.position(SYM) == pytest.approx(q)
            # reduce to a short: one order through zero
            q2 = -intended(s, 500.0)
            await s.router.set_target(SYM, q2, s.mark(SYM), s.mark(SYM), parents=[12], data_ts_ms=fresh())
            await settle(s, q2)
            pos = (await s.venue.fetch_positions())[SYM].qty
            assert pos == pytest.approx(q2) == pytest.approx(s.router.position(SYM))
            # our fees and realized PnL equal an independent sum over the simulator's trade log
            ours = {o["params"]["newClientOrderId"] for o in s.accepted()}
            trades = [t for t in s.sim.trade_log if t["clientOrderId"] in ours]
            summ = s.router.summary()
            assert summ["fees"] == pytest.approx(sum(t["commission"] for t in trades), rel=1e-9)
            assert summ["realized_pnl"] == pytest.approx(sum(t["realizedPnl"] for t in trades), abs=1e-6)
            assert summ["trades"] == len(trades)
            fills = s.lineage.of(records.Fill)
            order_ids = {o.id for o in s.lineage.of(records.Order)}
            assert fills and all(f.parents and f.parents[0] in order_ids for f in fills)
            # nothing to reconcile when both sides agree
            assert await s.router.reconcile() == []
            await finish(s)

    run(go())


def test_reconcile_adopts_venue_position_on_start(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            q = intended(s, 800.0)
            await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
            await settle(s, q)
            # a second router (a restart) finds the position and logs the discrepancy
            from kaizen.venue.router import OrderRouter

            r2 = OrderRouter(s.venue, s.risk, s.lineage, [SYM], run_id="restart")
            await r2.start()
            recs = [r for r in s.lineage.of(records.Reconcile) if r.what == "position"]
            assert recs and float(recs[-1].venue) == pytest.approx(q)
            assert r2.position(SYM) == pytest.approx(q)
            await r2.set_target(SYM, 0.0, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
            for _ in range(50):
                await r2.poll()
                if r2.position(SYM) == 0:
                    break
            assert (await s.venue.fetch_positions())[SYM].qty == 0
            await r2.stop()

    run(go())


FAULTS = {
    "5xx": {"rest_5xx": 2},
    "429": {"rest_429": 1, "retry_after_s": 1},
    "timeout_after_accept": {"timeout_after_accept": 1, "timeout_s": 3.0},
    "timeout_before": {"timeout": 1, "timeout_s": 3.0},
}


@pytest.mark.parametrize("fault", [*FAULTS, "disconnect_mid_order"])
def test_fault_no_duplicate_and_intended_position(tmp_path, fault):
    async def go():
        async with Session(tmp_path, [SYM], proxy=fault == "disconnect_mid_order") as s:
            q = intended(s, 1_000.0)
            if fault == "disconnect_mid_order":
                s.proxy.cut_orders = 1
            else:
                s.sim.set_faults({**FAULTS[fault], "paths": ["/fapi/v1/order"], "methods": ["POST"]})
            t0 = asyncio.get_running_loop().time()
            orders = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[1], data_ts_ms=fresh())
            elapsed = asyncio.get_running_loop().time() - t0
            assert len(orders) == 1 and orders[0].status in ("filled", "accepted"), orders
            cid = orders[0].client_order_id
            # the fault really happened
            if fault == "disconnect_mid_order":
                assert s.proxy.cuts == 1
            else:
                assert any(
                    f["fault"] in (fault.replace("_before", ""), "5xx", "429", "timeout")
                    for f in s.sim.fault_log
                )
            if fault == "429":
                assert elapsed >= 1.0  # Retry-After honoured
            # exactly one order accepted for that client id, and none other
            assert len(s.accepted(cid)) == 1
            assert len(s.accepted()) == 1
            if fault in ("timeout_after_accept", "disconnect_mid_order"):
                assert s.venue.stats["found_after_error"] == 1  # found by client id, not resent
            await settle(s, q)
            assert s.router.position(SYM) == pytest.approx(q)
            assert (await s.venue.fetch_positions())[SYM].qty == pytest.approx(q)
            # the same target again sends nothing
            assert await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[2], data_ts_ms=fresh()) == []
            await finish(s)
            assert len(s.accepted()) == 1

    run(go())


def test_limit_orders_left_resting_are_cancelled_on_stop(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            s.router.order_type = "limit"
            m = s.mark(SYM)
            q = intended(s, 500.0)
            # a passive buy 1 % under the mark rests on the book
            orders = await s.router.set_target(SYM, q, m * 0.99, m, data_ts_ms=fresh())
            assert orders[0].status == "accepted"
            assert len(await s.venue.fetch_open_orders(SYM)) == 1
            assert math.isclose(s.router.expected_position(SYM), q)
            await finish(s)
            assert s.router.open_order_count() == 0

    run(go())


def test_outcome_unknown_after_retries_is_reconciled(tmp_path):
    """The venue accepted the order, its answer timed out, and every lookup then failed with 5xx
    until the retries ran out: the order is 'unknown'; the next poll reconciles by client id, finds
    it, takes its fill, and nothing was sent twice."""
    from kaizen.venue.ccxt_venue import RetryPolicy

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            s.venue.retry = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02)
            q = intended(s, 1_000.0)
            s.sim.set_faults({"timeout_after_accept": 1, "timeout_s": 2.0, "paths": ["/fapi/v1/order"]})

            async def break_lookups():
                while not s.accepted():
                    await asyncio.sleep(0.005)
                s.sim.set_faults({"rest_5xx": 1000})

            task = asyncio.create_task(break_lookups())
            orders = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[5], data_ts_ms=fresh())
            await task
            assert orders[0].status == "unknown" and "gave up" in orders[0].error
            assert len(s.accepted()) == 1
            s.sim.set_faults({"reset": True})
            await settle(s, q)
            assert s.router.position(SYM) == pytest.approx(q)
            rec = [r for r in s.lineage.of(records.Reconcile) if r.ours == orders[0].client_order_id]
            assert rec and rec[0].action == "adopted venue state"
            await finish(s)
            assert len(s.accepted()) == 1

    run(go())


def test_funding_through_a_settlement(tmp_path):
    """A position held through a funding time pays (or earns) it: the router's FundingPayment
    records equal the simulator's own funding log, and the next rate is readable for sizing."""

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            rate, next_ms = await s.venue.fetch_next_funding(SYM)
            assert next_ms > 0 and abs(rate) <= 0.0075
            q = intended(s, 1_500.0)
            await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
            await settle(s, q)
            s.sim.advance(next_ms - s.sim.now_ms() + 1)
            await s.router.poll(funding=True)
            log = [f for f in s.sim.funding_log if f["symbol"] == SYM]
            assert len(log) == 1 and log[0]["payment"] != 0
            paid = s.lineage.of(records.FundingPayment)
            assert len(paid) == 1
            assert paid[0].amount == pytest.approx(-log[0]["payment"], abs=1e-8)
            assert s.router.summary()["funding"] == pytest.approx(-log[0]["payment"], abs=1e-8)
            await s.router.poll(funding=True)  # taken once only
            assert len(s.lineage.of(records.FundingPayment)) == 1
            await finish(s)

    run(go())


def test_partial_fills_converge_without_overshoot(tmp_path):
    """With partial fills injected (a market order fills half, the rest expires), repeated targets
    top the position up toward the intended one, never overshoot it, and stop only when the rest is
    below what the venue accepts (its min notional): the venue's own limit, stated, not a guess."""

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            s.sim.set_faults({"partial_fill_ratio": 0.5})
            q = intended(s, 1_000.0)
            m = s.venue.markets[SYM]
            for _ in range(12):
                out = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
                await s.router.poll()
                pos = s.router.position(SYM)
                assert pos <= q + 1e-12
                if not out:
                    break
            pos = s.router.position(SYM)
            assert (await s.venue.fetch_positions())[SYM].qty == pytest.approx(pos)
            assert pos == pytest.approx(q) or (q - pos) * s.mark(SYM) < m.min_notional
            assert pos >= q - 3 * m.lot_size  # it got as close as the filters allow
            assert len(s.accepted()) >= 3  # the fault really split it
            await finish(s)

    run(go())
