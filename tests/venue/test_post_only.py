"""Post-only entries end to end: the router against the simulator on 127.0.0.1 through the real ccxt
binanceusdm client. An entry rests at the touch as a post-only limit (GTX) and fills as maker; a
crossing one is refused (-5022), re-quoted once a tick more passive, then falls back exactly once;
reductions, exits, flips and the flatten are never post-only."""

from __future__ import annotations

import asyncio

import pytest

from kaizen.ext.book import OrderBook
from kaizen.lineage import records
from tests.venue.harness import Session, fresh

SYM = "BTCUSDT"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def lots(s: Session, notional: float) -> float:
    return s.venue.markets[SYM].round_qty(notional / s.mark(SYM))


async def venue_book(s: Session) -> OrderBook:
    """The venue's book as the engine would hold it (here from one REST depth snapshot)."""
    m = s.venue.markets[SYM]
    ob = await s.venue.ex.fetch_order_book(s.venue.markets[SYM].venue_symbol, 20)
    book = OrderBook(m.tick_size, m.lot_size)
    for p, q in ob["bids"]:
        book.set(True, float(p), float(q))
    for p, q in ob["asks"]:
        book.set(False, float(p), float(q))
    book.valid = True
    return book


def pin(s: Session, price: float) -> None:
    s.sim.script_price({"symbol": SYM, "price": price})


def sim_orders(s: Session, cids: set[str]) -> list[dict]:
    return [o for o in s.sim.orders_received if o["params"].get("newClientOrderId") in cids]


def entry_router(s: Session, fallback: str = "skip") -> None:
    s.router.entry = "post_only"
    s.router.post_only_fallback = fallback


async def wait_position(s: Session, q: float, timeout: float = 10.0) -> None:
    t = 0.0
    while abs(s.router.position(SYM) - q) > 1e-12:
        await s.router.poll()
        await asyncio.sleep(0.05)
        t += 0.05
        assert t < timeout, f"position {s.router.position(SYM)} never reached {q}"


def test_entry_rests_post_only_at_the_touch_and_fills_as_maker(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            entry_router(s)
            p0 = s.mark(SYM)
            pin(s, p0)
            book = await venue_book(s)
            s.router.on_market(SYM, p0, fresh(), book)
            q = lots(s, 1_000.0)
            orders = await s.router.set_target(SYM, q, p0, p0, parents=[21], data_ts_ms=fresh())
            assert len(orders) == 1
            o = orders[0]
            assert (o.order_type, o.post_only, o.status, o.side) == ("limit", True, "accepted", "buy")
            assert o.price == pytest.approx(book.best_bid())  # at the touch, our side
            sent = sim_orders(s, {o.client_order_id})
            assert len(sent) == 1 and sent[0]["params"]["timeInForce"] == "GTX" and sent[0]["accepted"]
            await s.router.poll()
            assert s.router.position(SYM) == 0.0 and s.router.resting(SYM)  # it rests, unfilled
            # the market falls through our price: the venue fills the resting buy at its price
            tick = s.venue.markets[SYM].tick_size
            pin(s, o.price - 20 * tick)
            await wait_position(s, q)
            trades = [t for t in s.sim.trade_log if t["clientOrderId"] == o.client_order_id]
            assert trades and all(t["maker"] for t in trades)
            assert sum(t["qty"] for t in trades) == pytest.approx(q)
            assert all(t["price"] == pytest.approx(o.price) for t in trades)
            # the fee is the simulator's maker rate, read back from its own trade log
            rate = {round(t["commission"] / (t["price"] * t["qty"]), 10) for t in trades}
            assert rate == {round(s.sim.exchange.maker_fee, 10)}
            assert s.sim.exchange.maker_fee < s.sim.exchange.taker_fee
            fills = [f for f in s.lineage.of(records.Fill) if f.client_order_id == o.client_order_id]
            assert fills and all(f.maker for f in fills) and all(f.parents == [o.id] for f in fills)
            summ = s.router.summary()
            assert summ["maker_fees"] == pytest.approx(sum(t["commission"] for t in trades), rel=1e-9)
            assert summ["taker_fees"] == pytest.approx(0.0, abs=1e-12)
            assert summ["maker_fees_per_decision"] == pytest.approx(summ["fees_per_decision"])
            assert summ["decisions_filled"] == summ["decisions_traded"] == 1
            assert not s.router.resting(SYM)
            await s.router.stop()
            assert await s.venue.fetch_open_orders(SYM) == []

    run(go())


@pytest.mark.parametrize("fallback", ["market", "skip"])
def test_crossing_post_only_is_refused_requoted_once_then_falls_back_once(tmp_path, fallback):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            entry_router(s, fallback)
            p0 = s.mark(SYM)
            pin(s, p0)
            tick = s.venue.markets[SYM].tick_size
            q = lots(s, 1_000.0)
            # the decision's price is stale by 50 ticks up (no book): a buy there takes liquidity,
            # and so does the re-quote a tick lower
            ref = p0 + 50 * tick
            orders = await s.router.set_target(SYM, q, ref, p0, parents=[31], data_ts_ms=fresh())
            want = [("rejected", True, "limit"), ("rejected", True, "limit")]
            if fallback == "market":
                want.append(("filled", False, "market"))
            assert [(o.status, o.post_only, o.order_type) for o in orders] == want
            assert "-5022" in orders[0].error and "-5022" in orders[1].error
            assert orders[1].price == pytest.approx(orders[0].price - tick)
            assert all(o.parents == [31] for o in orders)
            sent = sim_orders(s, {o.client_order_id for o in orders})
            assert len(sent) == len(want)  # exactly one re-quote and at most one fallback
            assert [o["params"].get("timeInForce") for o in sent[:2]] == ["GTX", "GTX"]
            assert all(not o["accepted"] and "-5022" in str(o["error"]) for o in sent[:2])
            assert s.router.post_only_would_cross == 2
            if fallback == "market":
                assert sent[2]["params"]["type"] == "MARKET" and sent[2]["accepted"]
                assert s.router.post_only_fallbacks == 1
                await wait_position(s, q)
                trades = [t for t in s.sim.trade_log if t["clientOrderId"] == orders[2].client_order_id]
                assert trades and not any(t["maker"] for t in trades)
                assert s.router.summary()["taker_fees"] == pytest.approx(sum(t["commission"] for t in trades))
            else:
                assert s.router.post_only_fallbacks == 0 and s.router.post_only_skipped == 1
                summ = s.router.summary()
                assert (summ["decisions_traded"], summ["decisions_filled"], summ["fees"]) == (1, 0, 0)
                await s.router.poll()
                assert s.router.position(SYM) == 0.0
                assert (await s.venue.fetch_positions())[SYM].qty == 0.0
            await s.router.stop()

    run(go())


def test_requote_a_tick_passive_rests_without_a_fallback(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            entry_router(s, "market")
            p0 = s.mark(SYM)
            pin(s, p0)
            book = await venue_book(s)
            ask, bid = book.best_ask(), book.best_bid()
            tick = s.venue.markets[SYM].tick_size
            assert ask - bid == pytest.approx(tick)  # one-tick spread: ask - tick is the bid
            q = lots(s, 1_000.0)
            orders = await s.router.set_target(SYM, q, ask, p0, parents=[41], data_ts_ms=fresh())
            assert [(o.status, o.post_only) for o in orders] == [("rejected", True), ("accepted", True)]
            assert orders[1].price == pytest.approx(bid)
            assert s.router.post_only_fallbacks == 0 and s.router.resting(SYM)
            await s.router.stop()  # cancels the resting entry
            assert await s.venue.fetch_open_orders(SYM) == []
            assert s.router.position(SYM) == 0.0

    run(go())


def test_reductions_exits_flips_and_flatten_are_never_post_only(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            p0 = s.mark(SYM)
            pin(s, p0)
            q = lots(s, 1_000.0)
            await s.router.set_target(SYM, q, p0, p0, parents=[51], data_ts_ms=fresh())  # market entry
            await wait_position(s, q)
            entry_router(s, "skip")
            book = await venue_book(s)
            s.router.on_market(SYM, p0, fresh(), book)
            half = s.venue.markets[SYM].round_qty(q / 2)
            seen: list[records.Order] = []
            for i, tgt in enumerate([half, 0.0]):  # a reduction, then the exit
                out = await s.router.set_target(SYM, tgt, p0, p0, parents=[60 + i], data_ts_ms=fresh())
                seen += out
                await wait_position(s, tgt)
            assert [(o.order_type, o.post_only, o.reduce_only) for o in seen] == [("market", False, True)] * 2
            # an entry from flat and an addition on the same side are post-only
            await s.router.set_target(SYM, q, p0, p0, parents=[70], data_ts_ms=fresh())
            entry = s.lineage.of(records.Order)[-1]
            assert entry.post_only and entry.order_type == "limit"
            pin(s, entry.price - 20 * s.venue.markets[SYM].tick_size)
            await wait_position(s, q)
            p1 = s.mark(SYM)
            s.router.on_market(SYM, p1, fresh(), await venue_book(s))
            add = await s.router.set_target(SYM, 2 * q, p1, p1, parents=[71], data_ts_ms=fresh())
            assert [(o.order_type, o.post_only, o.status) for o in add] == [("limit", True, "accepted")]
            # a flip through zero is not: the resting addition is cancelled, the flip goes at market
            flip = await s.router.set_target(SYM, -q, p1, p1, parents=[72], data_ts_ms=fresh())
            assert [(o.order_type, o.post_only) for o in flip] == [("market", False)]
            await wait_position(s, -q)
            # the kill switch's flatten: reduce-only market orders
            await s.router.kill("test")
            kill = [o for o in s.lineage.of(records.Order) if o.client_order_id][-1]
            assert (kill.order_type, kill.post_only, kill.reduce_only) == ("market", False, True)
            assert (await s.venue.fetch_positions())[SYM].qty == 0.0
            exits = [o for o in s.lineage.of(records.Order) if o.reduce_only]
            assert len(exits) == 3 and not any(o.post_only for o in exits)
            gtx = [o for o in s.sim.orders_received if o["params"].get("timeInForce") == "GTX"]
            assert [o["params"]["newClientOrderId"] for o in gtx] == [
                entry.client_order_id,
                add[0].client_order_id,
            ]

    run(go())


def test_resting_entry_past_its_ttl_is_cancelled_by_the_poll(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM]) as s:
            entry_router(s)
            s.router.entry_ttl_ms = 300
            p0 = s.mark(SYM)
            pin(s, p0)
            s.router.on_market(SYM, p0, fresh(), await venue_book(s))
            q = lots(s, 1_000.0)
            (o,) = await s.router.set_target(SYM, q, p0, p0, parents=[81], data_ts_ms=fresh())
            assert o.post_only and o.status == "accepted"
            await s.router.poll()  # younger than the TTL: left resting
            assert s.router.resting(SYM) and len(await s.venue.fetch_open_orders(SYM)) == 1
            await asyncio.sleep(0.4)
            await s.router.poll()
            assert s.router.entries_expired == 1 and not s.router.resting(SYM)
            assert await s.venue.fetch_open_orders(SYM) == []
            assert s.router.position(SYM) == 0.0 == (await s.venue.fetch_positions())[SYM].qty

    run(go())


def test_bybit_cancel_on_arrival_counts_as_crossing(tmp_path):
    """Bybit accepts a crossing PostOnly order and cancels it at once (EC_PostOnlyWillTakeLiquidity)
    instead of refusing it: the router treats it like -5022 (one re-quote, then the fallback)."""

    async def go():
        async with Session(tmp_path, [SYM], venue="bybit") as s:
            entry_router(s, "market")
            p0 = s.mark(SYM)
            pin(s, p0)
            tick = s.venue.markets[SYM].tick_size
            q = lots(s, 1_000.0)
            orders = await s.router.set_target(SYM, q, p0 + 50 * tick, p0, parents=[91], data_ts_ms=fresh())
            assert [(o.status, o.post_only, o.order_type) for o in orders] == [
                ("rejected", True, "limit"),
                ("rejected", True, "limit"),
                ("filled", False, "market"),
            ]
            assert "on arrival" in orders[0].error and s.router.post_only_fallbacks == 1
            await wait_position(s, q)
            await s.router.stop()

    run(go())


def test_expired_entry_is_replanned_at_the_new_touch_until_its_decision_goes_stale(tmp_path):
    async def go():
        async with Session(tmp_path, [SYM], stale_after_ms=1_500) as s:
            entry_router(s)
            s.router.entry_ttl_ms, s.router.entry_replan = 300, True
            p0 = s.mark(SYM)
            pin(s, p0)
            s.router.on_market(SYM, p0, fresh(), await venue_book(s))
            q = lots(s, 1_000.0)
            (first,) = await s.router.set_target(SYM, q, p0, p0, parents=[101], data_ts_ms=fresh())
            # the market moves up (not through the buy): the entry waits below the touch
            tick = s.venue.markets[SYM].tick_size
            pin(s, p0 + 30 * tick)
            book = await venue_book(s)
            s.router.on_market(SYM, p0 + 30 * tick, fresh(), book)
            await asyncio.sleep(0.4)
            await s.router.poll()
            assert s.router.entries_expired == 1 and s.router.entries_replanned == 1
            again = [o for o in s.lineage.of(records.Order) if o.parents == [101]]
            assert [o.client_order_id for o in again][0] == first.client_order_id and len(again) == 2
            assert again[1].post_only and again[1].price == pytest.approx(book.best_bid())
            assert again[1].price > first.price
            open_ids = [o.client_order_id for o in await s.venue.fetch_open_orders(SYM)]
            assert open_ids == [again[1].client_order_id]  # the first was cancelled
            # past stale_after_ms the decision adds nothing: the next expiry cancels and stops
            await asyncio.sleep(1.6)
            await s.router.poll()
            assert s.router.entries_expired == 2
            assert [o for o in s.lineage.of(records.Order) if o.parents == [101]] == again
            assert await s.venue.fetch_open_orders(SYM) == [] and s.router.position(SYM) == 0.0

    run(go())
