"""Position sizing: volatility targeting per symbol, scaled by signal confidence and the bandit's
allocation, capped by config, and aware of the next funding payment."""

from __future__ import annotations

import math


def size_position(
    signal_confidence: float,
    price: float,
    vol_per_bar: float,
    bars_per_year: float,
    equity: float,
    vol_target_annual: float,
    bandit_allocation: float,
    max_notional: float,
    *,
    next_funding_rate: float = 0.0,
    expected_edge: float | None = None,
) -> float:
    """Signed target quantity (base units).

    notional = equity * vol_target / annualised vol * |confidence| * allocation, capped at
    max_notional; the sign is the signal's. `signal_confidence` is clipped to [-1, 1] and the
    allocation to [0, 1]. Funding awareness: a long pays a positive rate, a short receives it. With
    `expected_edge` (fractional return expected over the hold, before funding) the size is scaled by
    the edge left after the next funding payment, and is zero when funding eats all of it.
    Any non-finite or non-positive input that makes the size undefined gives 0.
    """
    values = (
        signal_confidence,
        price,
        vol_per_bar,
        bars_per_year,
        equity,
        vol_target_annual,
        bandit_allocation,
    )
    if not all(math.isfinite(v) for v in values) or not math.isfinite(max_notional):
        return 0.0
    if price <= 0 or vol_per_bar <= 0 or bars_per_year <= 0 or equity <= 0 or vol_target_annual <= 0:
        return 0.0
    conf = max(-1.0, min(1.0, signal_confidence))
    alloc = max(0.0, min(1.0, bandit_allocation))
    if conf == 0.0 or alloc == 0.0 or max_notional <= 0:
        return 0.0
    annual_vol = vol_per_bar * math.sqrt(bars_per_year)
    notional = equity * vol_target_annual / annual_vol * abs(conf) * alloc
    if expected_edge is not None and math.isfinite(next_funding_rate):
        side = 1.0 if conf > 0 else -1.0
        funding_cost = side * next_funding_rate  # >0: this side pays at the next settlement
        edge = abs(expected_edge)
        if edge <= 0 or funding_cost >= edge:
            return 0.0
        notional *= (edge - max(funding_cost, 0.0)) / edge
    notional = min(notional, max_notional)
    qty = notional / price
    for _ in range(4):  # float rounding must never put qty * price above the cap
        if qty * price <= max_notional:
            break
        qty = math.nextafter(qty, 0.0)
    return math.copysign(qty, conf)
