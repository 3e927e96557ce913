"""From the meta model's probability to an expected return and a trade/no-trade side.

One home for the calibration every layer built on the signal uses (the ensemble strategy's
entries, the exit model's training positions, the exit evaluation):

    E(p) = b * (p - p_bar)

the expected gross forward log return over the signal's horizon (long-positive fraction), with
b and p_bar fitted by least squares of the gross forward return on out-of-fold probabilities
(never in-sample ones). A side is entered when its expected return beats the round trip of taker
fills plus the funding it expects to pay over the horizon:

    long  if E - round_trip - f * H / F > 0
    short if -E - round_trip + f * H / F > 0

(f the latest settled funding rate, H the hold in hours, F the funding interval in hours; a long
pays positive funding, a short receives it). At most one side qualifies since round_trip > 0.

A slope b <= 0 means the out-of-fold predictions carry no usable edge: the calibration then says
E = 0 everywhere (never trade) instead of betting against the model.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from kaizen.engine.strategy import Costs


class EdgeCalibration(msgspec.Struct, frozen=True):
    b: float  # gross forward return per unit of probability (0: no usable edge)
    p_bar: float  # the probability at which the expected return is zero
    n: int = 0  # rows fitted on
    fitted_until_ms: int = 0  # labels known by this time (walk-forward fits); 0 when not recorded

    def edge(self, p: float | np.ndarray) -> float | np.ndarray:
        """Expected gross forward return over the horizon, long-positive (fraction)."""
        return self.b * (p - self.p_bar)


def fit_edge_calibration(
    p_oof: np.ndarray, gross_fwd_ret: np.ndarray, fitted_until_ms: int = 0
) -> EdgeCalibration:
    """Least squares of gross forward returns on out-of-fold probabilities (non-finite pairs
    ignored). Fewer than 2 distinct probabilities or a slope <= 0: b = 0 (no trade)."""
    p = np.asarray(p_oof, np.float64)
    r = np.asarray(gross_fwd_ret, np.float64)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    n = len(p)
    if n < 2:
        return EdgeCalibration(0.0, 0.5, n, fitted_until_ms)
    pm, rm = float(p.mean()), float(r.mean())
    var = float(np.mean((p - pm) ** 2))
    if not var > 0:
        return EdgeCalibration(0.0, pm, n, fitted_until_ms)
    b = float(np.mean((p - pm) * (r - rm))) / var
    if not b > 0:
        return EdgeCalibration(0.0, pm, n, fitted_until_ms)
    return EdgeCalibration(b, pm - rm / b, n, fitted_until_ms)


def net_edge(side, edge, costs: Costs, funding_rate, hold_hours: float, funding_interval_hours: float = 8.0):
    """Expected net return of holding `side` over the horizon: side * E - round trip - side *
    expected funding (plain arithmetic: floats or arrays; a nan funding rate counts as 0)."""
    if isinstance(funding_rate, np.ndarray):
        f = np.nan_to_num(funding_rate, nan=0.0)
    else:
        f = funding_rate if funding_rate == funding_rate else 0.0  # nan -> 0
    return side * edge - costs.round_trip - side * f * (hold_hours / funding_interval_hours)


def entry_side(
    edge: float | np.ndarray,
    costs: Costs,
    funding_rate: float | np.ndarray,
    hold_hours: float,
    funding_interval_hours: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(side in {-1, 0, +1}, expected net return of that side) per row (see the module doc).
    A non-finite edge gives side 0 and net nan."""
    e = np.asarray(edge, np.float64)
    f = np.broadcast_to(np.asarray(funding_rate, np.float64), e.shape)
    net_long = net_edge(1.0, e, costs, f, hold_hours, funding_interval_hours)
    net_short = net_edge(-1.0, e, costs, f, hold_hours, funding_interval_hours)
    side = np.where(net_long > 0, 1, np.where(net_short > 0, -1, 0)).astype(np.int8)
    net = np.where(side > 0, net_long, np.where(side < 0, net_short, np.maximum(net_long, net_short)))
    side[~np.isfinite(e)] = 0
    net = np.where(np.isfinite(e), net, math.nan)
    return side, net


def walk_forward_edge(
    t: np.ndarray,
    label_end: np.ndarray,
    p_oof: np.ndarray,
    gross_fwd_ret: np.ndarray,
    refit_every_ms: int,
    embargo_ms: int,
    min_rows: int = 500,
) -> tuple[np.ndarray, list[EdgeCalibration]]:
    """The edge each row would have seen live: rows with refit time R <= t < R + refit_every_ms use
    the calibration fitted at R on the out-of-fold rows whose labels were known by R - embargo
    (purged like the training folds). nan where no calibration exists yet (fewer than min_rows).
    Refit times are on a grid of refit_every_ms from the first row. Returns (edge per row, fits)."""
    t = np.asarray(t, np.int64)
    out = np.full(len(t), np.nan)
    if len(t) == 0:
        return out, []
    if refit_every_ms <= 0:
        raise ValueError("walk_forward_edge: refit_every_ms must be > 0")
    usable = np.isfinite(p_oof) & np.isfinite(gross_fwd_ret)
    fits: list[EdgeCalibration] = []
    lo = int(t.min())
    hi = int(t.max())
    r = lo
    while r <= hi:
        rows = np.flatnonzero((t >= r) & (t < r + refit_every_ms))
        if len(rows):
            known = usable & (label_end <= r - embargo_ms)
            if int(known.sum()) >= min_rows:
                cal = fit_edge_calibration(p_oof[known], gross_fwd_ret[known], r - embargo_ms)
                fits.append(cal)
                out[rows] = cal.edge(p_oof[rows])
        r += refit_every_ms
    return out, fits
