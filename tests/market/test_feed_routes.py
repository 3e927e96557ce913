"""The live feed against the simulator's websocket layouts (real picows sockets, real REST snapshots).

On the routed layout (Binance since 2026-04-23) the feed gets book, trades and mark price and
builds bars that a strategy decides on. A feed still on the legacy unrouted URL gets the book but
never a trade or a mark price: it must say so, naming the silent streams, within a stated time.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from kaizen.config import StrategyConfig
from kaizen.engine.bars import Bar, BarBuilder
from kaizen.engine.strategies.baseline import BaselineMomentum
from kaizen.ext.features import FeatureEngine
from kaizen.lineage.records import MarketStatus
from kaizen.market.feed import MarketFeed
from tests.market.helpers import Collect

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TICK = {"BTCUSDT": 0.1, "ETHUSDT": 0.01}
LOT = {"BTCUSDT": 0.001, "ETHUSDT": 0.001}


class BarDecider:
    """A feed handler as the engine is one (on_trade/on_mark/on_book/on_status): bars from the
    trades through the engine's BarBuilder on the venue's event clock, and a baseline decision at
    each bar close while the symbol's status is valid."""

    def __init__(self, bar_s: float) -> None:
        self.builders = {s: BarBuilder(s, bar_s) for s in SYMBOLS}
        self.strategy = BaselineMomentum(StrategyConfig())
        self.fe = FeatureEngine(SYMBOLS, interval_ms=int(bar_s * 1000))
        self.status = dict.fromkeys(SYMBOLS, "invalid")
        self.statuses: list[tuple[str, str, str]] = []
        self.bars: list[Bar] = []
        self.decisions: list[tuple[str, float, str]] = []
        self.marks: dict[str, float] = {}
        self.trades = 0
        self.last_ns = 0

    def on_trade(self, symbol, ts_ns, price, qty, buyer_is_maker):
        self.trades += 1
        self._clock(ts_ns)
        for bar in self.builders[symbol].on_trade(ts_ns, price, qty, buyer_is_maker):
            self._bar(bar)

    def on_mark(self, symbol, ts_ns, mark, index, funding_rate, next_funding_ms):
        self.marks[symbol] = mark
        self._clock(ts_ns)

    def on_book(self, symbol, ts_ns, book):
        self._clock(ts_ns)

    def on_status(self, symbol, status, reason):
        self.status[symbol] = status
        self.statuses.append((symbol, status, reason))

    def _clock(self, ts_ns):
        if ts_ns > self.last_ns:
            self.last_ns = ts_ns
            for b in self.builders.values():
                for bar in b.on_clock(ts_ns):
                    self._bar(bar)

    def _bar(self, bar):
        self.bars.append(bar)
        sid = self.fe.symbol_index(bar.symbol)
        self.fe.update_sid(sid, bar.open_time_ns // 1_000_000, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if self.status[bar.symbol] == "valid":
            f = self.fe.out_view(sid)
            names = self.fe.names
            signal, reason = self.strategy.signal(
                *(float(f[names.index(n)]) for n in ("mom_ret_4", "mom_ret_24", "vol_rv_24", "vol_ratio_24_72"))
            )
            self.decisions.append((bar.symbol, signal, reason))


async def _run(sim_layout: str, feed_layout: str, seconds: float, drop_at: float = 0.0, **feed_kw):
    from kaizen.venue.sim import Simulator

    sim = Simulator(seed=31, speed=600.0, symbols=SYMBOLS, ws_layout=sim_layout)
    await sim.start()
    h, lin = BarDecider(bar_s=60.0), Collect()
    feed = MarketFeed(
        sim.ws_url, sim.rest_url, SYMBOLS, TICK, LOT, h, lineage=lin, ws_layout=feed_layout, **feed_kw
    )
    t0 = time.monotonic()
    stale_at: dict[str, float] = {}
    await feed.start()
    try:
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(0.02)
            if drop_at and time.monotonic() - t0 >= drop_at:
                drop_at = 0.0
                sim.ws.drop_all()  # every socket cut, no close frame
            for name in feed.silent_streams():
                stale_at.setdefault(name, time.monotonic() - t0)
        marks = {s: m.mark for s, m in sim.markets.items()}
        subs = {(c.route, s) for c in sim.ws.conns for s in c.streams}
        return feed, h, lin, stale_at, marks, subs
    finally:
        await feed.stop()
        await sim.stop()


@pytest.mark.parametrize("layout", ["routed", "legacy"])
def test_feed_builds_bars_and_decides_when_it_speaks_the_venues_layout(layout):
    # routed feed on today's Binance layout; a feed declared legacy on a venue still on it
    feed, h, lin, stale_at, marks, subs = asyncio.run(_run(layout, layout, 3.0, stale_after_ms=1000))
    if layout == "routed":
        assert set(feed.urls) == {"public", "market"}
        assert {(r, s.split("@", 1)[1]) for r, s in subs} == {
            ("public", "depth@100ms"),
            ("public", "bookticker"),
            ("market", "aggtrade"),
            ("market", "markprice@1s"),
        }
    else:
        assert set(feed.urls) == {"legacy"} and {r for r, _ in subs} == {"legacy"}
    assert stale_at == {} and not any(
        isinstance(r, MarketStatus) and r.status == "stale" for r in lin.records
    )
    for sym in SYMBOLS:
        assert feed.book(sym).valid and h.status[sym] == "valid"
        bars = [b for b in h.bars if b.symbol == sym]
        # 3 s at 600x is 30 one-minute bars; trades fill most of them
        assert len(bars) >= 15 and sum(b.trades > 0 for b in bars) >= 10
        assert sum(1 for d in h.decisions if d[0] == sym) >= 8
        assert abs(h.marks[sym] / marks[sym] - 1) < 0.01
    s = feed.stats
    assert s["aggTrade"] > 0 and s["markPriceUpdate"] > 0 and s["bookticker_disagreements"] == 0


def test_legacy_feed_on_todays_venue_reports_the_silent_market_streams_in_time():
    # Stated times: a stream is reported silent within its limit plus one watchdog period
    # (a quarter of the smallest limit, here 0.25 s), plus 0.5 s of slack for a shared machine.
    # Limits here: aggTrade 2 s (set), markPrice@1s 3 s (3 missed updates), book streams 1 s.
    feed, h, lin, stale_at, marks, subs = asyncio.run(
        _run("legacy-public-only", "legacy", 4.2, stale_after_ms=1000, silence_ms={"aggTrade": 2000})
    )
    market = {f"{s.lower()}@{x}" for s in SYMBOLS for x in ("aggTrade", "markPrice@1s")}
    assert set(stale_at) == market  # the book streams kept talking, the market ones never did
    for name, t in stale_at.items():
        limit = 2.0 if "aggTrade" in name else 3.0
        assert limit <= t <= limit + 0.25 + 0.5, (name, t)
    stale = [r for r in lin.records if isinstance(r, MarketStatus) and r.status == "stale"]
    assert len(stale) == 4
    for r in stale:
        name = next(n for n in market if f"stream {n} " in r.reason)
        assert r.symbol == name.split("@")[0].upper()
        assert "on the unrouted /stream" in r.reason and "/market since 2026-04-23" in r.reason
    # the book synced from /stream and REST, but no trade, no mark, no bar, no decision
    assert h.trades == 0 and h.bars == [] and h.decisions == [] and h.marks == {}
    for sym in SYMBOLS:
        assert h.status[sym] == "stale" and not feed.book(sym).valid
        assert feed.book(sym).last_update_id > 0
    assert feed.stats["depthUpdate"] > 0 and feed.stats["stale_events"] == 4


def test_a_lost_connection_marks_its_streams_stale_at_once_and_recovers():
    feed, h, lin, stale_at, marks, subs = asyncio.run(
        _run("routed", "routed", 4.0, drop_at=1.5, stale_after_ms=1000, backoff_initial_s=0.2)
    )
    assert feed.stats["connects_public"] == 2 and feed.stats["connects_market"] == 2
    lost = [r for sym, st, r in h.statuses if st == "stale"]
    for sym in SYMBOLS:
        for name in (f"{sym.lower()}@aggTrade", f"{sym.lower()}@markPrice@1s"):
            assert f"stream {name}: connection to /market lost" in lost
        assert f"stream {sym.lower()}@bookTicker: connection to /public lost" in lost
        assert h.status[sym] == "valid" and feed.book(sym).valid  # back after the reconnect
        late = [
            b for b in h.bars if b.symbol == sym and b.trades > 0 and b.open_time_ns > h.last_ns - 10 * 60e9
        ]
        assert late, "no bar with trades after the reconnect"
    # none of them waited for a silence limit: the loss itself was the news
    assert not any("silent for" in r for r in lost)
