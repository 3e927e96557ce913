"""From a classifier's probability to an expected return: the one calibration every layer uses.

The signal models predict P(a long's net forward return > 0). Trading needs a magnitude: how much
gross return to expect over the horizon, to weigh against fees, spread and funding. The calibration
is an ordinary least-squares slope of the realized gross forward log return on the out-of-fold
probability, fitted only on out-of-fold predictions (never in-sample ones):

    E[gross return | p] = slope * (p - p_mean)

It deliberately has no intercept term in the forecast: the training period's average drift (a bull
or bear market) is not an edge the model found, and betting on it is buy-and-hold by the back door.
A slope <= 0 (the model ranks returns the wrong way out of sample) means no edge: E = 0. `tstat` is
the slope's t-statistic with a Newey-West (Bartlett) variance over `lags` rows, since forward
returns over a horizon of h bars overlap (pass lags >= h x symbols for pooled rows in time order).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np


class EdgeCalibration(msgspec.Struct, frozen=True):
    slope: float  # gross forward log return per unit of probability above p_mean
    p_mean: float
    tstat: float  # robust t-statistic of the slope
    n: int  # out-of-fold rows it was fitted on

    def expected_return(self, p: float) -> float:
        """Expected gross forward log return over the model's horizon at probability p."""
        if not math.isfinite(p) or self.slope <= 0.0:
            return 0.0
        return self.slope * (p - self.p_mean)

    def to_dict(self) -> dict[str, float]:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EdgeCalibration:
        return cls(float(d["slope"]), float(d["p_mean"]), float(d["tstat"]), int(d["n"]))


NO_EDGE = EdgeCalibration(0.0, 0.5, 0.0, 0)


def fit_edge_calibration(p_oof: np.ndarray, gross_ret: np.ndarray, lags: int = 0) -> EdgeCalibration:
    """OLS slope of gross forward return on out-of-fold probability (rows with both finite, in
    time order), with a Newey-West t-statistic over `lags` rows."""
    p = np.asarray(p_oof, np.float64)
    r = np.asarray(gross_ret, np.float64)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    n = len(p)
    if n < 30:
        return NO_EDGE
    pm = float(p.mean())
    dp = p - pm
    sxx = float(dp @ dp)
    if not sxx > 0:
        return EdgeCalibration(0.0, pm, 0.0, n)
    dr = r - r.mean()
    slope = float(dp @ dr) / sxx
    u = dp * (dr - slope * dp)
    s = float(u @ u)
    for lag in range(1, min(int(lags), n - 1) + 1):  # Bartlett weights
        s += 2.0 * (1.0 - lag / (lags + 1.0)) * float(u[lag:] @ u[:-lag])
    var = max(s, 0.0) / (sxx * sxx)
    t = slope / math.sqrt(var) if var > 0 else 0.0
    return EdgeCalibration(slope, pm, t, n)


def decide_side(
    expected: float, funding_cost: float, round_trip: float, side: int, bars_held: int, min_hold: int
) -> tuple[int, str, float]:
    """The net-edge rule, one home for the strategy and for its out-of-fold evidence.

    `expected` is the expected gross return over the horizon, `funding_cost` what a long pays over
    it (a short receives it), `round_trip` the cost of entering and leaving with taker orders.
    Returns (side, reason, edge of the chosen side net of what it still has to pay):
      - a position younger than `min_hold` bars (the horizon the model was trained on) is held,
        unless the opposite side's edge beats a round trip (then it flips);
      - an older position is kept while its own side's edge is positive (its exit is paid either way);
      - flat enters the side whose edge beats the round trip; otherwise flat.
    """
    long_edge = expected - funding_cost
    short_edge = -expected + funding_cost
    if side != 0:
        own, opp = (long_edge, short_edge) if side > 0 else (short_edge, long_edge)
        if opp > round_trip:
            return -side, "flip", opp - round_trip
        if bars_held < min_hold:
            return side, "hold_horizon", own
        if own > 0:
            return side, "hold_edge", own
    if long_edge > round_trip:
        return 1, "edge_long", long_edge - round_trip
    if short_edge > round_trip:
        return -1, "edge_short", short_edge - round_trip
    return 0, "no_net_edge", max(long_edge, short_edge) - round_trip


def simulate_rule(
    p: np.ndarray,
    close: np.ndarray,
    t: np.ndarray,
    sid: np.ndarray,
    funding: np.ndarray,
    cal: EdgeCalibration,
    *,
    horizon: int,
    round_trip: float,
    interval_ms: int,
    funding_interval_h: float = 8.0,
) -> dict[str, float]:
    """Trade `decide_side` bar by bar on rows with a finite p (per symbol, in time order): a position
    taken at a row's close earns the next bar's log return, pays half the round trip per side
    changed, and pays funding at the latest settled rate pro rata per bar. A gap flattens for free
    (no price to trade at; rare). Returns the daily net return series' statistics, the symbols
    weighted equally (each gets 1/N of the capital)."""
    hold_h = horizon * interval_ms / 3_600_000
    per_bar_f = interval_ms / 3_600_000 / funding_interval_h
    symbols = np.unique(sid)
    pnl_by_day: dict[int, float] = {}
    trades = 0
    for s in symbols:
        rows = np.flatnonzero((sid == s) & np.isfinite(p))
        if len(rows) < 2:
            continue
        side, held = 0, 0
        for a, b in zip(rows[:-1], rows[1:], strict=True):
            fr = funding[a] if np.isfinite(funding[a]) else 0.0
            e = cal.expected_return(float(p[a]))
            new, _, _ = decide_side(e, fr * hold_h / funding_interval_h, round_trip, side, held, horizon)
            cost = abs(new - side) * round_trip / 2.0
            trades += new != side and new != 0
            held = held + 1 if new == side and new != 0 else (1 if new != 0 else 0)
            side = new
            ret = 0.0
            if t[b] - t[a] == interval_ms:
                ret = side * np.log(close[b] / close[a]) - side * fr * per_bar_f
            else:
                side, held = 0, 0
            day = int(t[b] // 86_400_000)
            pnl_by_day[day] = pnl_by_day.get(day, 0.0) + (ret - cost) / len(symbols)
    days = np.array([pnl_by_day[d] for d in sorted(pnl_by_day)])
    n = len(days)
    sd = float(days.std(ddof=1)) if n > 1 else 0.0
    mean = float(days.mean()) if n else 0.0
    return {
        "oof_days": float(n),
        "oof_trades": float(trades),
        "oof_net_return": float(days.sum()),
        "oof_daily_tstat": mean / sd * np.sqrt(n) if sd > 0 else 0.0,
        "oof_sharpe": mean / sd * np.sqrt(365.0) if sd > 0 else 0.0,
    }


def edge_evidence(
    p_oof: np.ndarray,
    gross_ret: np.ndarray,
    close: np.ndarray,
    t: np.ndarray,
    sid: np.ndarray,
    funding: np.ndarray,
    *,
    horizon: int,
    interval_ms: int,
    round_trip: float,
    lags: int = 0,
) -> dict[str, float]:
    """The calibration, and the net-edge rule traded on the out-of-fold rows with it (the evidence
    the `kaizen` strategy asks for before it trades at all): daily net returns, their t-statistic
    and Sharpe. The calibration's two numbers are fitted on those same rows; the predictions are
    out of fold."""
    cal = fit_edge_calibration(p_oof, gross_ret, lags)
    out = cal.to_dict()
    out.update(
        simulate_rule(
            np.asarray(p_oof, np.float64), close, t, sid, funding, cal,
            horizon=horizon, round_trip=round_trip, interval_ms=interval_ms,
        )
    )  # fmt: skip
    out["round_trip"] = float(round_trip)
    return out
