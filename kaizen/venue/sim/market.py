"""Seeded synthetic market: regime-switching index prices, a premium (perp over index), an L2 ladder
around the mark price with Binance-style update ids, and background trades.

Model (per symbol, sim time t in seconds, year = 365 d):
- regime in {trend, range} x {low, high vol}; switches as a Poisson process (mean 4 h sim).
- log index += drift dt + sigma sqrt(dt) z, z = 0.6 common + 0.8 own shock (cross-asset correlation).
  trend: drift = +-3 sigma_base / year; range: mean reversion to an anchor (half-life ~1.4 h).
- premium: Ornstein-Uhlenbeck around +1 bp (tilted by the trend direction), sd ~3 bp.
- mark = index (1 + premium); the book is centred on the mark; last trades print at the touch.
A scripted price (POST /_sim/price) pins the mark of a symbol (premium 0) until released.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kaizen.venue.sim.spec import SymbolSpec

if TYPE_CHECKING:
    from kaizen.venue.sim.replay import ReplaySeries

YEAR_S = 365.0 * 86_400.0
LEVELS = 20
INTEREST_8H = 0.0001
CLAMP = 0.0005
FUNDING_CAP = 0.0075
FUNDING_INTERVAL_MS = 8 * 3_600_000
REGIME_MEAN_S = 4 * 3_600.0


@dataclass
class Trade:
    trade_id: int
    price_ticks: int
    lots: int
    buyer_maker: bool
    time_ms: int


@dataclass
class SymbolMarket:
    spec: SymbolSpec
    rng: random.Random  # the price process only, so the path does not depend on our orders
    index: float
    premium: float = 0.0001
    anchor: float = 0.0
    trend: bool = False
    high_vol: bool = False
    direction: float = 1.0
    scripted: float | None = None
    bids: dict[int, int] = field(default_factory=dict)  # working ladder (ticks -> lots)
    asks: dict[int, int] = field(default_factory=dict)
    pub_bids: dict[int, int] = field(default_factory=dict)  # as last published (snapshot source)
    pub_asks: dict[int, int] = field(default_factory=dict)
    last_u: int = 1_000_000
    trade_seq: int = 5_000_000
    # funding: time-weighted premium since the last settlement
    prem_sum: float = 0.0
    prem_time: float = 0.0
    last_trade_ticks: int = 0
    replay: ReplaySeries | None = None  # real candles drive the index instead of the random walk
    book_rng: random.Random | None = None  # ladder sizes and background trades

    def __post_init__(self) -> None:
        if self.book_rng is None:
            self.book_rng = random.Random(self.rng.random())
        self.anchor = self.index
        self.rebuild(0)
        self.pub_bids = dict(self.bids)
        self.pub_asks = dict(self.asks)

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
    def step(self, dt: float, common_z: float, now_ms: int = 0) -> None:
        """Advance the price process by dt sim seconds (no book rebuild)."""
        if dt <= 0:
            return
        rng = self.rng
        if self.replay is not None:
            self.prem_sum += self.current_premium() * dt
            self.prem_time += dt
            if self.scripted is None:
                self.index = self.replay.price_at(now_ms)
                a = min(1.0, dt / 3_600.0)
                self.premium += a * (0.0001 - self.premium) + 0.0003 * math.sqrt(2 * a) * rng.gauss(0.0, 1.0)
            return
        if rng.random() < dt / REGIME_MEAN_S:
            self.trend = rng.random() < 0.5
            self.high_vol = rng.random() < 0.35
            self.direction = 1.0 if rng.random() < 0.5 else -1.0
            self.anchor = self.index
        self.prem_sum += self.current_premium() * dt
        self.prem_time += dt
        if self.scripted is not None:
            return
        base = self.spec.annual_vol
        sigma = base * (1.7 if self.high_vol else 0.6)
        z = 0.6 * common_z + 0.8 * rng.gauss(0.0, 1.0)
        if self.trend:
            drift = self.direction * 3.0 * base * dt / YEAR_S
        else:
            drift = -math.log(self.index / self.anchor) * dt / 7_200.0
        self.index *= math.exp(drift - 0.5 * sigma * sigma * dt / YEAR_S + sigma * math.sqrt(dt / YEAR_S) * z)
        theta = 1.0 / 3_600.0
        target = 0.0001 + (0.0002 * self.direction if self.trend else 0.0)
        a = min(1.0, theta * dt)
        self.premium += a * (target - self.premium) + 0.0003 * math.sqrt(2 * a) * rng.gauss(0.0, 1.0)

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
