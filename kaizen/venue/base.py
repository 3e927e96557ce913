"""The venue interface the router trades through, and the plain data it speaks.

Quantities are signed base units where a position is meant (+ long, - short), positive where an
order or fill is meant (its side says the direction). Symbols are Kaizen's ("BTCUSDT"); each adapter
maps them to its ccxt symbol. Money is USDT. Fees and funding amounts are positive when paid by us.
"""

from __future__ import annotations

import logging
import math
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Protocol

import msgspec

from kaizen.errors import KaizenError


class MarketInfo(msgspec.Struct, kw_only=True):
    symbol: str  # Kaizen symbol, e.g. BTCUSDT
    venue_symbol: str  # ccxt unified symbol, e.g. BTC/USDT:USDT
    tick_size: float
    lot_size: float
    min_qty: float
    min_notional: float = 0.0
    max_qty: float = math.inf
    market_lot_size: float = 0.0  # 0: same as lot_size
    market_max_qty: float = math.inf
    price_band_pct: float = 0.0  # venue's own band (Binance PERCENT_PRICE), 0 when unknown
    contract_size: float = 1.0
    funding_interval_hours: float = 8.0

    def round_qty(self, qty: float, market: bool = True) -> float:
        """Round |qty| down to the lot step (toward zero), keep the sign."""
        step = self.market_lot_size if market and self.market_lot_size > 0 else self.lot_size
        return math.copysign(_quantize(abs(qty), step, ROUND_DOWN), qty) if qty else 0.0

    def round_price(self, price: float, side: str | None = None) -> float:
        """Round to the tick: down for a buy, up for a sell (never more aggressive), nearest if None."""
        if side == "buy":
            return _quantize(price, self.tick_size, ROUND_FLOOR)
        if side == "sell":
            return _quantize(price, self.tick_size, ROUND_CEILING)
        lo = _quantize(price, self.tick_size, ROUND_FLOOR)
        hi = _quantize(price, self.tick_size, ROUND_CEILING)
        return lo if price - lo <= hi - price else hi

    def tradable(self, qty: float, price: float, reduce_only: bool = False) -> tuple[bool, str]:
        """Does |qty| at price pass the venue filters? (Binance waives min notional for reduce-only.)"""
        q = abs(qty)
        if q < self.min_qty - 1e-12:
            return False, f"qty {q} < min_qty {self.min_qty}"
        if q > self.max_qty + 1e-12:
            return False, f"qty {q} > max_qty {self.max_qty}"
        if not reduce_only and q * price < self.min_notional - 1e-9:
            return False, f"notional {q * price:.4f} < min_notional {self.min_notional}"
        return True, ""


def _quantize(x: float, step: float, rounding: str) -> float:
    if step <= 0:
        return x
    d = Decimal(repr(x)) / Decimal(repr(step))
    nearest = d.to_integral_value()
    # float noise (0.0029999999999999996 / 0.001) must not cost a whole step
    n = nearest if abs(d - nearest) < Decimal("1e-9") else d.to_integral_value(rounding=rounding)
    return float(n * Decimal(repr(step)))


class OrderState(msgspec.Struct, kw_only=True):
    symbol: str
    client_order_id: str
    venue_order_id: str
    side: str
    order_type: str
    qty: float
    price: float
    status: str  # open | closed | canceled | rejected | expired
    filled: float = 0.0
    avg_price: float = 0.0
    reduce_only: bool = False
    ts_ms: int = 0


class VenueFill(msgspec.Struct, kw_only=True):
    symbol: str
    trade_id: str
    venue_order_id: str
    client_order_id: str
    side: str
    qty: float
    price: float
    fee: float
    fee_asset: str
    maker: bool
    realized_pnl: float
    ts_ms: int


class VenuePosition(msgspec.Struct, kw_only=True):
    symbol: str
    qty: float  # signed
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    liquidation_price: float = 0.0


class VenueFunding(msgspec.Struct, kw_only=True):
    symbol: str
    funding_id: str
    amount: float  # positive = paid by us
    ts_ms: int


class Balance(msgspec.Struct, kw_only=True):
    wallet: float
    equity: float  # wallet + unrealized
    available: float

    def __float__(self) -> float:
        return self.equity


class VenueError(KaizenError):
    """A venue call failed for good (after retries) or was refused; the message is secret-free and
    one line, so a failure at start-up reaches the user as `kaizen: error: ...`, not a traceback."""


class OrderRejected(VenueError):
    """The venue refused the order (filters, margin, bad params): retrying will not help."""


class Redactor(logging.Filter):
    """Replaces secrets in any text (and in log records of the ccxt logger) with '***'."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in self.secrets:
            out = out.replace(s, "***")
        return out

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self(record.getMessage())
            record.args = None
        return True


class Venue(Protocol):
    """What the order router speaks to: a ccxt-backed venue (live, paper) or the in-process
    backtest venue built on the simulator's Exchange. Every call is a coroutine; failures raise
    VenueError (OrderRejected when retrying cannot help)."""

    markets: dict[str, MarketInfo]
    rest_url: str
    ws_url: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def place_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        client_order_id: str,
        order_type: str = "market",
        price: float | None = None,
        reduce_only: bool = False,
        post_only: bool = False,
    ) -> OrderState: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState | None: ...

    async def cancel_order(
        self, symbol: str, client_order_id: str, venue_order_id: str = ""
    ) -> OrderState | None: ...

    async def fetch_open_orders(self, symbol: str) -> list[OrderState]: ...

    async def fetch_positions(self) -> dict[str, VenuePosition]: ...

    async def fetch_balance(self) -> Balance: ...

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[VenueFill]: ...

    async def fetch_funding(self, since_ms: int | None = None) -> list[VenueFunding]: ...
