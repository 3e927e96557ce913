"""Symbol specifications of the simulated venue: Binance USD-M filters and simplified leverage brackets.

Prices are held as integer ticks and quantities as integer lots inside the simulator, so matching and
filters are exact; they become decimal strings only on the wire, formatted to the tick/lot precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin bracket (Binance `leverageBracket`): applies to a position notional
    up to `notional_cap`; `cum` is the maintenance amount so the margin curve is continuous."""

    notional_cap: float
    mmr: float
    cum: float
    max_leverage: int


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base: str
    start_price: float
    tick: str  # as Binance writes it, e.g. "0.10"
    lot: str
    min_qty: str
    max_qty: str
    market_max_qty: str
    min_notional: float
    price_precision: int  # digits after the point on the wire
    qty_precision: int
    annual_vol: float  # base volatility of the synthetic market
    spread_ticks: int
    level_qty_lots: float  # mean resting quantity per level, in lots
    brackets: tuple[Bracket, ...]

    @property
    def tick_f(self) -> float:
        return float(self.tick)

    @property
    def lot_f(self) -> float:
        return float(self.lot)

    def fmt_price(self, ticks: int) -> str:
        return f"{ticks * self.tick_f:.{self.price_precision}f}"

    def fmt_qty(self, lots: int) -> str:
        return f"{lots * self.lot_f:.{self.qty_precision}f}"

    def price_of(self, ticks: int) -> float:
        return round(ticks * self.tick_f, self.price_precision)

    def qty_of(self, lots: int) -> float:
        return round(lots * self.lot_f, self.qty_precision)

    def to_ticks(self, text: str) -> int | None:
        """Exact ticks for a price string, or None when it is not a multiple of the tick size."""
        return _exact_units(text, self.tick)

    def to_lots(self, text: str) -> int | None:
        return _exact_units(text, self.lot)

    def bracket_for(self, notional: float) -> Bracket:
        for b in self.brackets:
            if notional <= b.notional_cap:
                return b
        return self.brackets[-1]


def _exact_units(text: str, unit: str) -> int | None:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
        step = Decimal(unit)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    q = value / step
    if q != q.to_integral_value():
        return None
    return int(q)


_INF = math.inf
# Simplified Binance brackets (the first few of each symbol's real table; cum chosen so the
# maintenance margin is continuous across brackets, as Binance defines it).
_BTC = (
    Bracket(50_000, 0.004, 0.0, 125),
    Bracket(500_000, 0.005, 50.0, 100),
    Bracket(10_000_000, 0.01, 2_550.0, 50),
    Bracket(_INF, 0.025, 152_550.0, 20),
)
_ETH = (
    Bracket(50_000, 0.005, 0.0, 100),
    Bracket(500_000, 0.01, 250.0, 50),
    Bracket(_INF, 0.025, 7_750.0, 20),
)
_ALT = (
    Bracket(10_000, 0.01, 0.0, 75),
    Bracket(100_000, 0.025, 150.0, 25),
    Bracket(_INF, 0.05, 2_650.0, 10),
)

SPECS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec(
            "BTCUSDT",
            "BTC",
            42_000.0,
            "0.10",
            "0.001",
            "0.001",
            "1000",
            "120",
            100.0,
            2,
            3,
            0.55,
            1,
            2_000.0,
            _BTC,
        ),
        SymbolSpec(
            "ETHUSDT",
            "ETH",
            2_300.0,
            "0.01",
            "0.001",
            "0.001",
            "10000",
            "2000",
            20.0,
            2,
            3,
            0.65,
            1,
            20_000.0,
            _ETH,
        ),
        SymbolSpec(
            "SOLUSDT", "SOL", 100.0, "0.0100", "1", "1", "1000000", "5000", 5.0, 4, 0, 0.95, 1, 300.0, _ALT
        ),
        SymbolSpec(
            "BNBUSDT",
            "BNB",
            310.0,
            "0.010",
            "0.01",
            "0.01",
            "100000",
            "2000",
            5.0,
            3,
            2,
            0.6,
            2,
            1_500.0,
            _ALT,
        ),
    )
}

# Price band for limit orders (Binance PERCENT_PRICE filter).
PERCENT_UP = 1.05
PERCENT_DOWN = 0.95


# Binance USD-M fee schedule by VIP tier, (maker, taker) as fractions of notional (USDT-paid,
# no BNB discount). Tier 0 is the regular user tier the design card quotes (0.02 % / 0.05 %).
BINANCE_USDM_FEE_TIERS: dict[int, tuple[float, float]] = {
    0: (0.00020, 0.00050),
    1: (0.00016, 0.00040),
    2: (0.00014, 0.00035),
    3: (0.00012, 0.00032),
    4: (0.00010, 0.00030),
    5: (0.00008, 0.00027),
    6: (0.00006, 0.00025),
    7: (0.00004, 0.00022),
    8: (0.00002, 0.00020),
    9: (0.00000, 0.00017),
}
