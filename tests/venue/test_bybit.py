"""Bybit linear end to end: the real ccxt `bybit` client (through kaizen's BybitLinear adapter and
the order router) against the simulator's Bybit v5 dialect on 127.0.0.1, HMAC-signed as Bybit
signs. Checked against what the venue itself says, never against the config: fees charged at
Bybit's published rates and equal to the simulator's own trade log, positions and balances equal
to the simulator's account, funding with the venue's sign, no duplicate order under each fault,
cursor pages past 100 rows, and the v5 auth errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from kaizen.lineage import records
from kaizen.venue.base import VenueError
from kaizen.venue.ccxt_venue import kaizen_to_unified, unified_to_kaizen
from tests.venue.harness import Session, fresh

SYM = "BTCUSDT"
# Bybit's non-VIP USDT-perpetual rates (help center, "Perpetual & Futures Contract: Fees Explained",
# 2024-10-16): maker 0.02 %, taker 0.055 %. The simulator charges them; the config says otherwise.
PUBLISHED = (0.0002, 0.00055)


def bybit(tmp_path, symbols=(SYM,), **kw) -> Session:
    fees = {"maker_fee": PUBLISHED[0], "taker_fee": PUBLISHED[1]}
    return Session(tmp_path, list(symbols), venue="bybit", sim_kw=fees, **kw)


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def intended(s: Session, notional: float) -> float:
    return s.venue.markets[SYM].round_qty(notional / s.mark(SYM))


async def settle(s: Session, target: float) -> None:
    for _ in range(60):
        await s.router.poll()
        if abs(s.router.position(SYM) - target) < 1e-9:
            return
        await asyncio.sleep(0.05)


def test_symbol_mapping():
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"):
        assert unified_to_kaizen(kaizen_to_unified(s)) == s
    assert kaizen_to_unified("SOLUSDT") == "SOL/USDT:USDT"


def test_bybit_end_to_end_orders_fills_fees_positions_balance(tmp_path):
    async def go():
        async with bybit(tmp_path, symbols=(SYM, "ETHUSDT")) as s:
            assert s.cfg.fees.taker == 0.0005  # the config's (Binance) default, not Bybit's rate
            assert s.venue.fees == PUBLISHED  # the adapter took the account's rates from the venue
            m = s.venue.markets[SYM]
            spec = s.sim.markets[SYM].spec
            assert (m.tick_size, m.lot_size, m.min_qty) == (
                float(spec.tick),
                float(spec.lot),
                float(spec.min_qty),
            )
            q = intended(s, 1_000.0)
            orders = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[11], data_ts_ms=fresh())
            assert [o.status for o in orders] == ["filled"]
            await settle(s, q)
            q2 = -intended(s, 500.0)  # through zero to a short
            await s.router.set_target(SYM, q2, s.mark(SYM), s.mark(SYM), parents=[12], data_ts_ms=fresh())
            await settle(s, q2)
            positions = await s.venue.fetch_positions()
            assert positions["ETHUSDT"].qty == 0  # listed although flat
            pos = positions[SYM]
            assert pos.qty == pytest.approx(q2) == pytest.approx(s.router.position(SYM))
            assert pos.qty == pytest.approx(spec.qty_of(s.sim.exchange.account.positions[SYM].lots))
            # fees: what the router booked == the simulator's trade log == value x published taker rate
            trades = [t for t in s.sim.trade_log if t["clientOrderId"].startswith("kz")]
            assert len(trades) >= 2 and all(not t["maker"] for t in trades)
            summ = s.router.summary()
            assert summ["fees"] == pytest.approx(sum(t["commission"] for t in trades), rel=1e-9)
            assert summ["fees"] == pytest.approx(sum(t["quoteQty"] for t in trades) * PUBLISHED[1], rel=1e-9)
            assert summ["realized_pnl"] == pytest.approx(sum(t["realizedPnl"] for t in trades), abs=1e-6)
            # balance: the unified account's own figures
            bal = await s.venue.fetch_balance()
            acct = s.sim.exchange.account_json()
            assert bal.wallet == pytest.approx(float(acct["totalWalletBalance"]), abs=1e-6)
            assert bal.equity == pytest.approx(float(acct["totalMarginBalance"]), abs=1e-4)
            assert bal.available == pytest.approx(float(acct["availableBalance"]), abs=1e-4)
            assert bal.equity != bal.wallet  # an open position: unrealized PnL is in equity only
            assert await s.router.reconcile() == []
            fills = s.lineage.of(records.Fill)
            assert fills and {f.parents[0] for f in fills} <= {o.id for o in s.lineage.of(records.Order)}
            await s.router.stop()
            assert await s.venue.fetch_open_orders(SYM) == []
            assert s.sim.rest.unknown_paths == []

    run(go())


FAULTS = {
    "5xx": {"rest_5xx": 2},
    "429": {"rest_429": 1},
    "timeout_after_accept": {"timeout_after_accept": 1, "timeout_s": 2.0},
    "timeout_before": {"timeout": 1, "timeout_s": 2.0},
}


@pytest.mark.parametrize("fault", [*FAULTS, "disconnect_mid_order"])
def test_bybit_fault_no_duplicate_and_intended_position(tmp_path, fault):
    async def go():
        async with bybit(tmp_path, proxy=fault == "disconnect_mid_order") as s:
            q = intended(s, 1_000.0)
            if fault == "disconnect_mid_order":
                s.proxy.cut_orders = 1
            else:
                s.sim.set_faults({**FAULTS[fault], "paths": ["/v5/order/create"], "methods": ["POST"]})
            orders = await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), parents=[1], data_ts_ms=fresh())
            assert len(orders) == 1 and orders[0].status in ("filled", "accepted"), orders
            cid = orders[0].client_order_id
            if fault == "disconnect_mid_order":
                assert s.proxy.cuts == 1
            else:
                assert s.sim.fault_log and s.sim.fault_log[0]["path"] == "/v5/order/create"
            assert len(s.accepted(cid)) == 1 and len(s.accepted()) == 1
            if fault in ("timeout_after_accept", "disconnect_mid_order"):
                assert s.venue.stats["found_after_error"] == 1  # found by orderLinkId, not resent
            await settle(s, q)
            assert s.router.position(SYM) == pytest.approx(q)
            assert (await s.venue.fetch_positions())[SYM].qty == pytest.approx(q)
            await s.router.stop()
            assert len(s.accepted()) == 1

    run(go())


def test_bybit_funding_has_the_venue_sign(tmp_path):
    """A long through a settlement at a positive rate pays: the adapter reports the payment as paid
    (+) and equal to the simulator's own funding log."""

    async def go():
        async with bybit(tmp_path) as s:
            q = intended(s, 1_000.0)
            await s.router.set_target(SYM, q, s.mark(SYM), s.mark(SYM), data_ts_ms=fresh())
            await settle(s, q)
            # a rich perp (time-weighted premium 0.2 %): funding positive, longs pay
            s.sim.markets[SYM].prem_sum, s.sim.markets[SYM].prem_time = 0.002, 1.0
            s.sim.advance(s.sim.exchange.next_funding - s.sim.now_ms() + 1)
            log = [f for f in s.sim.funding_log if f["symbol"] == SYM]
            assert len(log) == 1 and log[0]["payment"] < 0  # the venue took it from the wallet
            got = await s.venue.fetch_funding()
            assert [f.amount for f in got] == pytest.approx(
                [-log[0]["payment"]], abs=1e-8
            )  # 8 decimals on the wire
            assert got[0].amount > 0

    run(go())


def test_bybit_fills_past_one_page(tmp_path):
    """230 fills (the venue answers at most 100 per call): every one comes back, once."""

    async def go():
        async with bybit(tmp_path) as s:
            ex = s.sim.exchange
            spec = s.sim.markets[SYM].spec
            lots = int(spec.min_notional * 1.2 / s.mark(SYM) / spec.lot_f) + 1
            for i in range(230):
                side = "BUY" if i % 2 == 0 else "SELL"
                order = {"symbol": SYM, "side": side, "type": "MARKET", "quantity": spec.fmt_qty(lots)}
                ex.new_order({**order, "newClientOrderId": f"kz-page-{i}"})
            fills = await s.venue.fetch_fills(SYM, since_ms=s.sim.now_ms() - 3_600_000)
            ours = [t for t in ex.trade_log if t["clientOrderId"].startswith("kz-page-")]
            assert len(ours) >= 230
            assert sorted(f.trade_id for f in fills) == sorted(str(t["id"]) for t in ours)
            assert {f.client_order_id for f in fills} == {f"kz-page-{i}" for i in range(230)}
            # each fee crosses the wire with 8 decimals
            assert sum(f.fee for f in fills) == pytest.approx(
                sum(t["commission"] for t in ours), abs=len(ours) * 5e-9
            )

    run(go())


def test_bybit_orders_states_post_only_and_cancel_by_client_id(tmp_path):
    async def go():
        async with bybit(tmp_path) as s:
            mkt = s.sim.markets[SYM]
            ask = mkt.spec.price_of(mkt.best_ask())
            q = intended(s, 500.0)
            st = await s.venue.place_order(
                SYM, "buy", q, client_order_id="kz-po-1", order_type="limit", price=ask, post_only=True
            )
            assert st.status == "canceled" and st.filled == 0
            assert s.sim.exchange.by_client["kz-po-1"].reject_reason == "EC_PostOnlyWillTakeLiquidity"
            assert not [t for t in s.sim.trade_log if t["clientOrderId"] == "kz-po-1"]
            # a resting bid 1 % under the mark, cancelled by its client id (Bybit's orderLinkId)
            tick = s.venue.markets[SYM].tick_size
            bid = round(s.mark(SYM) * 0.99 / tick) * tick
            st = await s.venue.place_order(
                SYM, "buy", q, client_order_id="kz-rest-1", order_type="limit", price=bid
            )
            assert (st.status, st.side, st.qty) == ("open", "buy", q)
            assert [o.client_order_id for o in await s.venue.fetch_open_orders(SYM)] == ["kz-rest-1"]
            gone = await s.venue.cancel_order(SYM, "kz-rest-1")
            assert gone is not None and gone.status == "canceled"
            assert await s.venue.cancel_order(SYM, "kz-rest-1") is None  # no longer open
            assert await s.venue.fetch_open_orders(SYM) == []

    run(go())


@pytest.mark.parametrize("what", ["secret", "clock"])
def test_bybit_auth_errors(tmp_path, what):
    async def go():
        async with bybit(tmp_path) as s:
            if what == "secret":
                s.venue.ex.secret = "not-the-secret"
            else:
                s.venue.ex.nonce = lambda: int(time.time() * 1000) - 60_000  # a clock a minute behind
            with pytest.raises(VenueError) as err:
                await s.venue.fetch_balance()
            text = str(err.value)
            assert ("10004" in text) if what == "secret" else ("10002" in text)
            assert "\n" not in text and "not-the-secret" not in text

    run(go())
