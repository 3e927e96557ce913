"""Trading safety of the router end to end against the simulator (real ccxt client, real sockets):
reconcile never races an order, one staleness rule, fills from the user-data stream, the kill
switch on a mark update, and a restart with an open position that agrees with the venue's account."""

from __future__ import annotations

import asyncio

import pytest

from kaizen.lineage import records
from kaizen.venue.router import OrderRouter
from kaizen.venue.userstream import UserDataStream
from tests.venue.harness import KEY_ENV, Session, fresh

SYM = "BTCUSDT"


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def lots(s: Session, notional: float) -> float:
    return s.venue.markets[SYM].round_qty(notional / s.mark(SYM))


async def wait_for(cond, timeout=10.0):
    t = 0.0
    while not cond():
        await asyncio.sleep(0.02)
        t += 0.02
        assert t < timeout, "condition not met in time"


def test_order_sent_during_a_reconcile_is_not_counted_twice(tmp_path):
    """The race of the default demo: reconcile took the venue's position while an order of ours
    was being filled, adopted it, and then the order's fill came in on top (mismatches, positions
    past the limits, reduce-only rejects). With the per-symbol lock the order waits."""

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            q = lots(s, 1_000.0)
            real = s.venue.fetch_positions
            calls: list[asyncio.Task] = []

            async def positions_with_an_order_in_flight():
                # reconcile's third position call is its snapshot (after two polls): the order
                # task gets the loop just before it
                if len(calls) < 3:
                    calls.append(None)
                    if len(calls) == 3:
                        calls[2] = asyncio.create_task(
                            s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
                        )
                        await asyncio.sleep(0.3)
                return await real()

            s.venue.fetch_positions = positions_with_an_order_in_flight
            rec = asyncio.create_task(s.router.reconcile())
            await rec
            order = calls[2]
            await asyncio.gather(rec, order)
            s.venue.fetch_positions = real
            for _ in range(3):
                await s.router.poll()
            venue_q = (await s.venue.fetch_positions())[SYM].qty
            assert venue_q == pytest.approx(q)
            assert s.router.position(SYM) == pytest.approx(venue_q)
            assert [r for r in s.lineage.of(records.Reconcile) if r.what == "position"] == []
            assert await s.router.reconcile() == []
            await s.router.stop()

    run(go())


def test_fill_landing_during_a_reconcile_defers_the_comparison(tmp_path):
    """A fill that arrives (here from the user-data stream) between the venue's position snapshot
    and the end of the reconcile must not be overwritten by the older snapshot."""

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            q = lots(s, 800.0)
            real = s.venue.fetch_positions
            injected: list[int] = []

            async def snapshot_then_fill():
                snap = await real()
                if not s.router._locks[SYM].locked() or injected:
                    return snap  # not the reconcile's own snapshot
                injected.append(1)
                # an order outside the router's lock fills right after the snapshot (as a resting
                # order would); its fill reaches the router at once, like a stream event
                await s.venue.place_order(SYM, "buy", q, client_order_id="outside-1")
                for f in await s.venue.fetch_fills(SYM, None):
                    s.router.on_fill(f)
                return snap

            s.venue.fetch_positions = snapshot_then_fill
            out = await s.router.reconcile()
            s.venue.fetch_positions = real
            assert [r for r in out if r.what == "position"] == []  # deferred, not adopted
            assert s.router.reconcile_skipped >= 1
            assert s.router.position(SYM) == pytest.approx(q)
            assert await s.router.reconcile() == []  # next time the comparison is exact and agrees
            assert s.router.position(SYM) == pytest.approx((await real())[SYM].qty)

    run(go())


def test_target_without_data_time_or_on_stale_data_adds_no_risk(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM], stale_after_ms=2_000) as s:
            q = lots(s, 500.0)
            m = s.mark(SYM)
            assert await s.router.set_target(SYM, q, m, m) == []  # no data time: stale
            assert await s.router.set_target(SYM, q, m, m, data_ts_ms=fresh() - 5_000) == []
            # fresh market data on the symbol does not make an old decision fresh
            s.router.on_market(SYM, m, fresh())
            assert await s.router.set_target(SYM, q, m, m, data_ts_ms=fresh() - 5_000) == []
            assert s.sim.orders_received == []
            orders = await s.router.set_target(SYM, q, m, m, data_ts_ms=fresh())
            assert [o.status for o in orders] == ["filled"]
            await s.router.poll()
            # stale data may still reduce
            orders = await s.router.set_target(SYM, 0.0, m, m, data_ts_ms=fresh() - 5_000)
            assert [(o.status, o.reduce_only) for o in orders] == [("filled", True)]

    run(go())


def test_fills_and_order_states_come_from_the_user_data_stream(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM, "ETHUSDT"]) as s:
            import os

            us = UserDataStream(s.sim.rest_url, s.sim.ws_url, os.environ[KEY_ENV], s.router)
            s.router.attach_stream(us)
            await us.start()
            try:
                await wait_for(lambda: us.connected)
                # the connect's resync (a reconcile by REST) runs first
                await wait_for(lambda: s.router._resync_task is not None and s.router._resync_task.done())
                calls = {"n": 0}
                real = s.venue.fetch_fills

                async def counted(*a):
                    calls["n"] += 1
                    return await real(*a)

                s.venue.fetch_fills = counted
                for i, notional in enumerate((900.0, -400.0, 0.0)):
                    q = lots(s, notional)
                    await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), [i + 1], data_ts_ms=fresh())
                    await wait_for(lambda q=q: s.router.position(SYM) == pytest.approx(q))
                    await s.router.poll()  # equity and marks only: the stream is connected
                assert calls["n"] == 0, "fills were fetched by REST while the stream was up"
                assert us.stats["fills"] >= 3 and us.stats["handler_errors"] == 0
                assert not s.router.orders  # every order final and retired
                ours = {o["params"]["newClientOrderId"] for o in s.accepted()}
                trades = [t for t in s.sim.trade_log if t["clientOrderId"] in ours]
                summ = s.router.summary()
                assert summ["trades"] == len(trades)
                assert summ["fees"] == pytest.approx(sum(t["commission"] for t in trades), rel=1e-9)
                assert summ["realized_pnl"] == pytest.approx(sum(t["realizedPnl"] for t in trades), abs=1e-6)
                # a reconnect resyncs by REST (the reconcile path) and finds nothing to fix
                before = s.router.reconciles
                s.sim.ws.drop_all()  # the venue cuts every socket
                await wait_for(lambda: s.router.reconciles > before and us.connected)
                await wait_for(lambda: s.router._resync_task is not None and s.router._resync_task.done())
                assert calls["n"] > 0
                assert s.router.mismatches == 0
            finally:
                await us.stop()

    run(go())


def test_kill_switch_trips_on_a_mark_update_without_a_poll(tmp_path, capfd):
    async def go():
        async with Session(
            tmp_path, [SYM], daily_loss_limit=20.0, max_drawdown=0.9, max_notional_per_symbol=5_000.0
        ) as s:
            p0 = s.mark(SYM)
            s.sim.script_price({"symbol": SYM, "price": p0})
            q = s.venue.markets[SYM].round_qty(2_000.0 / p0)
            await s.router.set_target(SYM, q, p0, p0, data_ts_ms=fresh())
            await s.router.poll()
            sent = s.router.orders_sent
            p1 = p0 * (1 - 25.0 / (q * p0))  # a 25 USDT loss, past the 20 limit
            s.sim.script_price({"symbol": SYM, "price": p1})
            s.router.on_market(SYM, p1, fresh())  # a mark from the feed, no poll
            assert s.risk.halted
            await wait_for(lambda: s.router._kill_task is not None and s.router._kill_task.done())
            assert s.router.orders_sent > sent  # the flatten
            await s.router.poll(check_risk=False)
            assert (await s.venue.fetch_positions())[SYM].qty == 0
            assert any(r.kind == "kill_switch" for r in s.lineage.of(records.RiskEvent))

    run(go())
    assert "KILL SWITCH" in capfd.readouterr().err


def test_restart_with_an_open_position_agrees_with_the_venue_account(tmp_path):
    """Open a position, abandon the router (a killed process), start a new one: equity, unrealized
    PnL and position must equal the venue's own account (the old code counted the unrealized PnL
    twice: once in the starting equity and again from the adopted entry price)."""

    async def go():
        async with Session(tmp_path, [SYM]) as s:
            p0 = s.mark(SYM)
            s.sim.script_price({"symbol": SYM, "price": p0})
            q = lots(s, 2_000.0)
            await s.router.set_target(SYM, q, p0, p0, data_ts_ms=fresh())
            await s.router.poll()
            s.sim.script_price({"symbol": SYM, "price": p0 * 1.01})  # +1 %: ~20 USDT unrealized
            bal = await s.venue.fetch_balance()
            pos = (await s.venue.fetch_positions())[SYM]
            assert abs(pos.unrealized_pnl) > 5
            # the restart: a new risk manager and router from the venue's account, as Engine.start does
            from kaizen.risk import RiskManager

            risk = RiskManager(s.cfg.risk, equity=bal.equity)
            r2 = OrderRouter(s.venue, risk, s.lineage, [SYM], run_id="restarted", starting_equity=bal.equity)
            await r2.start()
            await r2.poll()
            bal = await s.venue.fetch_balance()
            pos = (await s.venue.fetch_positions())[SYM]
            summ = r2.summary()
            assert r2.position(SYM) == pytest.approx(pos.qty)
            assert summ["unrealized_pnl"] == pytest.approx(pos.unrealized_pnl, abs=1e-6)
            assert risk.equity == pytest.approx(bal.equity, abs=1e-6)
            assert r2.starting_equity + r2.net_pnl() == pytest.approx(bal.equity, abs=1e-6)
            assert risk.day_start_equity == pytest.approx(bal.equity, abs=1e-6)
            assert risk.max_drawdown_seen == pytest.approx(0.0, abs=1e-9)
            await r2.set_target(SYM, 0.0, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
            await r2.poll()
            bal2 = await s.venue.fetch_balance()
            assert risk.equity == pytest.approx(bal2.equity, abs=1e-6)
            await r2.stop()

    run(go())


def test_resize_whose_edge_does_not_cover_its_round_trip_is_not_traded(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            s.router.rebalance_band = 0.0  # the fraction band off: only the cost band acts
            cost = s.router.round_trip_cost()
            assert cost == pytest.approx(2 * s.venue.fees[1]) and cost > 0
            m = s.mark(SYM)
            q = lots(s, 600.0)
            out = await s.router.set_target(SYM, q, m, m, [1], data_ts_ms=fresh(), edge=cost / 4)
            assert [o.status for o in out] == ["filled"]  # an entry is the strategy's call
            await s.router.poll()
            sent = s.router.orders_sent
            q2 = lots(s, 900.0)
            assert await s.router.set_target(SYM, q2, m, m, [2], data_ts_ms=fresh(), edge=cost / 2) == []
            assert await s.router.set_target(SYM, q / 2, m, m, [3], data_ts_ms=fresh(), edge=cost / 2) == []
            assert s.router.orders_sent == sent
            out = await s.router.set_target(SYM, q2, m, m, [4], data_ts_ms=fresh(), edge=cost * 3)
            assert [o.status for o in out] == ["filled"]
            await s.router.poll()
            out = await s.router.set_target(SYM, 0.0, m, m, [5], data_ts_ms=fresh(), edge=0.0)
            assert [o.status for o in out] == ["filled"]  # an exit always goes

    run(go())
