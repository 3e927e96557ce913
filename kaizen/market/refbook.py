"""Plain-Python reference L2 book (sorted dicts): the oracle the Cython book is tested against,
and the baseline in bench/book.py. Same Python API as kaizen.ext.book.OrderBook."""

from __future__ import annotations

import math

from sortedcontainers import SortedDict


class PyOrderBook:
    def __init__(
        self,
        tick_size: float,
        lot_size: float,
        price_precision: int = -1,
        qty_precision: int = -1,
        **_: object,
    ):
        if not (tick_size > 0) or not (lot_size > 0):
            raise ValueError(f"tick_size and lot_size must be > 0, got {tick_size!r}, {lot_size!r}")
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.bids: SortedDict = SortedDict()  # tick -> lots
        self.asks: SortedDict = SortedDict()
        self.valid = False
        self.last_update_id = 0
        self.ts_ns = 0
        self.updates = 0

    def set_level(self, is_bid: bool, tick: int, lots: int) -> None:
        if tick <= 0 or lots < 0:
            raise ValueError(f"bad level tick={tick} lots={lots}")
        side = self.bids if is_bid else self.asks
        if lots:
            side[tick] = lots
        else:
            side.pop(tick, None)
        self.updates += 1

    def set(self, is_bid: bool, price: float, qty: float) -> None:
        if not (price > 0) or not (qty >= 0) or price > 1e15 or qty > 1e15:
            raise ValueError(f"bad level price={price!r} qty={qty!r}")
        self.set_level(is_bid, round(price / self.tick_size), round(qty / self.lot_size))

    def apply(self, is_bid: bool, levels: list[tuple[int, int]]) -> None:
        for tick, lots in levels:
            self.set_level(is_bid, tick, lots)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    @property
    def best_bid_tick(self) -> int | None:
        return self.bids.peekitem(-1)[0] if self.bids else None

    @property
    def best_ask_tick(self) -> int | None:
        return self.asks.peekitem(0)[0] if self.asks else None

    def level_count(self, is_bid: bool) -> int:
        return len(self.bids if is_bid else self.asks)

    def lots_at(self, tick: int, is_bid: bool) -> int:
        return (self.bids if is_bid else self.asks).get(tick, 0)

    def qty_at(self, price: float, is_bid: bool) -> float:
        return self.lots_at(round(price / self.tick_size), is_bid) * self.lot_size

    def best_bid(self) -> float:
        return self.bids.peekitem(-1)[0] * self.tick_size if self.bids else math.nan

    def best_ask(self) -> float:
        return self.asks.peekitem(0)[0] * self.tick_size if self.asks else math.nan

    def best_bid_qty(self) -> float:
        return self.bids.peekitem(-1)[1] * self.lot_size if self.bids else 0.0

    def best_ask_qty(self) -> float:
        return self.asks.peekitem(0)[1] * self.lot_size if self.asks else 0.0

    def mid(self) -> float:
        if not self.bids or not self.asks:
            return math.nan
        return (self.bids.peekitem(-1)[0] + self.asks.peekitem(0)[0]) * 0.5 * self.tick_size

    def microprice(self) -> float:
        if not self.bids or not self.asks:
            return math.nan
        pb, qb = self.bids.peekitem(-1)
        pa, qa = self.asks.peekitem(0)
        return (pb * qa + pa * qb) / (qa + qb) * self.tick_size

    def depth_ticks(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        if n <= 0:
            return [], []
        bids = [(t, self.bids[t]) for t in self.bids.islice(max(0, len(self.bids) - n), reverse=True)]
        asks = [(t, self.asks[t]) for t in self.asks.islice(0, n)]
        return bids, asks

    def depth(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        b, a = self.depth_ticks(n)
        return (
            [(t * self.tick_size, q * self.lot_size) for t, q in b],
            [(t * self.tick_size, q * self.lot_size) for t, q in a],
        )

    def imbalance(self, k: int) -> float:
        if k <= 0:
            return math.nan
        b, a = self.depth_ticks(k)
        vb = sum(q for _, q in b)
        va = sum(q for _, q in a)
        return math.nan if vb + va == 0 else (vb - va) / (vb + va)

    def volume_to(self, price: float) -> float:
        tick = round(price / self.tick_size)
        if self.bids and tick <= self.bids.peekitem(-1)[0]:
            return sum(self.bids[t] for t in self.bids.irange(minimum=tick)) * self.lot_size
        if self.asks and tick >= self.asks.peekitem(0)[0]:
            return sum(self.asks[t] for t in self.asks.irange(maximum=tick)) * self.lot_size
        return 0.0

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids.peekitem(-1)[0] >= self.asks.peekitem(0)[0])
