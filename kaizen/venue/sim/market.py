"""Seeded synthetic market as the simulator serves it: index and premium from the shared market
model, an L2 ladder around the mark price with Binance-style update ids, and background trades.

The price process (regime chain, index, premium, planted signal) is the kernel in
kaizen.ext.marketmodel with the parameters of kaizen.venue.sim.model.MarketModel; the simulator
advances it once per publish tick for all symbols (one RNG stream, independent of our orders), and
`kaizen data synth` runs the very same kernel in batch. A SymbolMarket reads its slot of it:
- mark = index (1 + premium); the book is centred on the mark; last trades print at the touch.
A scripted price (POST /_sim/price) pins the mark of a symbol (premium 0) until released; the
symbol's slot is frozen meanwhile (the other symbols' paths do not change).
With `replay`, real candles drive the index instead and the process is not used.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kaizen.venue.sim.spec import SymbolSpec

if TYPE_CHECKING:
    from kaizen.ext.marketmodel import MarketProcess
    from kaizen.venue.sim.replay import ReplaySeries

LEVELS = 20
INTEREST_8H = 0.0001
CLAMP = 0.0005
FUNDING_CAP = 0.0075
FUNDING_INTERVAL_MS = 8 * 3_600_000


@dataclass
class Trade:
    trade_id: int
    price_ticks: int
    lots: int
    buyer_maker: bool
    time_ms: int


class SymbolMarket:
    """One symbol's market: its slot of the shared price process (or a replay), the working and
    published ladders, trade ids and the funding accumulator.

    Without `process` (and without `replay`) the market owns a one-symbol process of the demo
    model seeded from `rng`, and `step` advances it; with a shared process its owner (the
    simulator) advances it before calling `step`.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        rng: random.Random,
        index: float,
        replay: ReplaySeries | None = None,
        book_rng: random.Random | None = None,
        process: MarketProcess | None = None,
        slot: int = 0,
    ) -> None:
        self.spec = spec
        self.rng = rng  # replay premium noise; seeds the book when book_rng is not given
        self.replay = replay  # real candles drive the index instead of the model
        self.book_rng = book_rng if book_rng is not None else random.Random(rng.random())
        self.owns_process = False
        if replay is None and process is None:
            from kaizen.venue.sim.model import MarketModel

            process = MarketModel.demo().process([spec.annual_vol], [index], rng.getrandbits(64))
            slot, self.owns_process = 0, True
        self.process = process if replay is None else None
        self.slot = slot
        self._index = index  # replay only
        self._premium = 0.0001  # replay only
        self._scripted: float | None = None
        self.bids: dict[int, int] = {}  # working ladder (ticks -> lots)
        self.asks: dict[int, int] = {}
        self.last_u = 1_000_000
        self.trade_seq = 5_000_000
        # funding: time-weighted premium since the last settlement
        self.prem_sum = 0.0
        self.prem_time = 0.0
        self.last_trade_ticks = 0
        self.rebuild(0)
        self.pub_bids: dict[int, int] = dict(self.bids)  # as last published (snapshot source)
        self.pub_asks: dict[int, int] = dict(self.asks)

    # -- model state --------------------------------------------------------------------------
    @property
    def index(self) -> float:
        return self.process.index(self.slot) if self.process is not None else self._index

    @index.setter
    def index(self, price: float) -> None:
        if self.process is not None:
            self.process.set_index(self.slot, price)  # a range re-anchors at the new level
        else:
            self._index = price

    @property
    def premium(self) -> float:
        return self.process.premium(self.slot) if self.process is not None else self._premium

    @property
    def regime(self) -> int:
        """Regime id (kaizen.venue.sim.model.REGIMES); -1 for a replayed symbol."""
        return self.process.regime(self.slot) if self.process is not None else -1

    @property
    def trend(self) -> bool:
        return 0 <= self.regime < 2

    @property
    def high_vol(self) -> bool:
        return self.regime >= 0 and bool(self.regime & 1)

    @property
    def direction(self) -> float:
        return self.process.direction(self.slot) if self.process is not None else 1.0

    @property
    def scripted(self) -> float | None:
        return self._scripted

    @scripted.setter
    def scripted(self, price: float | None) -> None:
        self._scripted = price
        if self.process is not None:
            self.process.set_frozen(self.slot, price is not None)

    # -- prices -----------------------------------------------------------------------------
    @property
    def mark(self) -> float:
        if self.scripted is not None:
            return self.scripted
        return self.index * (1.0 + self.premium)

    @property
    def index_price(self) -> float:
        return self.scripted if self.scripted is not None else self.index

    def best_bid(self) -> int:
        return max(self.bids) if self.bids else self.touch()[0]

    def best_ask(self) -> int:
        return min(self.asks) if self.asks else self.touch()[1]

    def touch(self) -> tuple[int, int]:
        tick = self.spec.tick_f
        bid = int(math.floor(self.mark / tick - self.spec.spread_ticks / 2.0 + 1e-9))
        return bid, bid + self.spec.spread_ticks

    def last_price_ticks(self) -> int:
        return self.last_trade_ticks or self.best_bid()

    def funding_estimate(self) -> float:
        p = self.prem_sum / self.prem_time if self.prem_time > 0 else self.current_premium()
        return funding_rate(p)

    def current_premium(self) -> float:
        return 0.0 if self.scripted is not None else self.premium

    # -- evolution --------------------------------------------------------------------------
    def step(self, dt: float, now_ms: int = 0) -> None:
        """Account dt sim seconds: funding accumulator, the replayed index, and the model when this
        market owns its process (a shared process is advanced by its owner first)."""
        if dt <= 0:
            return
        self.prem_sum += self.current_premium() * dt
        self.prem_time += dt
        if self.owns_process:
            self.process.step(dt / 3_600.0)
        if self.replay is not None and self.scripted is None:
            self._index = self.replay.price_at(now_ms)
            a = min(1.0, dt / 3_600.0)
            noise = 0.0003 * math.sqrt(2 * a) * self.rng.gauss(0.0, 1.0)
            self._premium += a * (0.0001 - self._premium) + noise

    def rebuild(self, _now_ms: int) -> None:
        """Re-centre the working ladder on the mark: keep most surviving levels, refresh a few."""
        rng = self.book_rng
        bid, ask = self.touch()
        mean = self.spec.level_qty_lots
        for side, start, sign in ((self.bids, bid, -1), (self.asks, ask, 1)):
            want = {start + sign * i: i for i in range(LEVELS)}
            for p in list(side):
                if p not in want:
                    del side[p]
            for p, i in want.items():
                if p not in side or rng.random() < 0.15:
                    side[p] = max(1, int(rng.expovariate(1.0) * mean * (1.0 + 0.15 * i)))

    def background_trades(self, now_ms: int, n: int) -> list[Trade]:
        out = []
        for _ in range(n):
            buy = self.book_rng.random() < 0.5
            price = self.best_ask() if buy else self.best_bid()
            lots = max(1, int(self.book_rng.expovariate(1.0) * self.spec.level_qty_lots * 0.05))
            self.trade_seq += 1
            out.append(Trade(self.trade_seq, price, lots, not buy, now_ms))
            self.last_trade_ticks = price
        return out

    def diff(
        self, own_bids: dict[int, int] | None = None, own_asks: dict[int, int] | None = None
    ) -> tuple[list[list[str]], list[list[str]]] | None:
        """Changes of the public book (working ladder + our resting orders) against the published
        one, as Binance depth rows; updates the published state. None when nothing changed."""
        fp, fq = self.spec.fmt_price, self.spec.fmt_qty
        bids, asks = _merge(self.bids, own_bids), _merge(self.asks, own_asks)
        b = _changes(self.pub_bids, bids)
        a = _changes(self.pub_asks, asks)
        if not b and not a:
            return None
        self.pub_bids = bids
        self.pub_asks = asks
        return (
            [[fp(p), fq(q)] for p, q in sorted(b, reverse=True)],
            [[fp(p), fq(q)] for p, q in sorted(a)],
        )


def _merge(ladder: dict[int, int], own: dict[int, int] | None) -> dict[int, int]:
    out = dict(ladder)
    for p, q in (own or {}).items():
        out[p] = out.get(p, 0) + q
    return out


def _changes(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    out.extend((p, 0) for p in old if p not in new)
    return out


def funding_rate(avg_premium: float) -> float:
    """Binance: F = P + clamp(I - P, -0.05 %, +0.05 %), then capped at +-0.75 % per interval."""
    f = avg_premium + min(CLAMP, max(-CLAMP, INTEREST_8H - avg_premium))
    return max(-FUNDING_CAP, min(FUNDING_CAP, f))


def next_funding_ms(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
