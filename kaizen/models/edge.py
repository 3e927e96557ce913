"""From a classifier's probability to an expected return and a side: the one calibration every
layer built on the signal uses (the ensemble strategy, its out-of-fold evidence, the exit model's
training positions, the exit evaluation).

The signal models predict P(a long's net forward return > 0). Trading needs a magnitude: how much
gross return to expect over the horizon, to weigh against fees, spread and funding. The calibration
is an ordinary least-squares slope of the realized gross forward log return on the out-of-fold
probability, fitted only on out-of-fold predictions (never in-sample ones):

    E(p) = slope * (p - p_mean)

It deliberately has no intercept term in the forecast: the training period's average drift (a bull
or bear market) is not an edge the model found, and betting on it is buy-and-hold by the back door.
A slope <= 0 (the model ranks returns the wrong way out of sample) means no edge: E = 0. `tstat` is
the slope's t-statistic with a Newey-West (Bartlett) variance over `lags` rows, since forward
returns over a horizon of h bars overlap (pass lags >= h x symbols for pooled rows in time order).

A side is entered when its expected return beats the round trip of taker fills plus the funding it
expects to pay over the horizon (`entry_side`, `decide_side`):

    long  if E - round_trip - f * H / F > 0
    short if -E - round_trip + f * H / F > 0

(f the latest settled funding rate, H the hold in hours, F the funding interval in hours; a long
pays positive funding, a short receives it).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from kaizen.engine.strategy import Costs


class EdgeCalibration(msgspec.Struct, frozen=True):
    slope: float  # gross forward log return per unit of probability above p_mean
    p_mean: float
    tstat: float = 0.0  # robust t-statistic of the slope
    n: int = 0  # out-of-fold rows it was fitted on
    fitted_until_ms: int = 0  # labels known by this time (walk-forward fits); 0 when not recorded

    @property
    def b(self) -> float:
        """The slope that is used: 0 when the fit found no usable edge."""
        return self.slope if self.slope > 0 else 0.0

    @property
    def p_bar(self) -> float:
        return self.p_mean

    def expected_return(self, p: float) -> float:
        """Expected gross forward log return over the model's horizon at probability p."""
        if not math.isfinite(p) or self.slope <= 0.0:
            return 0.0
        return self.slope * (p - self.p_mean)

    def edge(self, p: float | np.ndarray) -> float | np.ndarray:
        """`expected_return` for a float or an array (long-positive fraction; nan stays nan)."""
        return (
            self.b * (np.asarray(p, np.float64) - self.p_mean)
            if isinstance(p, np.ndarray)
            else (self.b * (p - self.p_mean))
        )

    def to_dict(self) -> dict[str, float]:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EdgeCalibration:
        return cls(float(d["slope"]), float(d["p_mean"]), float(d.get("tstat", 0.0)), int(d.get("n", 0)),
                   int(d.get("fitted_until_ms", 0)))  # fmt: skip


NO_EDGE = EdgeCalibration(0.0, 0.5, 0.0, 0)


def fit_edge_calibration(
    p_oof: np.ndarray, gross_ret: np.ndarray, lags: int = 0, *, fitted_until_ms: int = 0
) -> EdgeCalibration:
    """OLS slope of gross forward return on out-of-fold probability (rows with both finite, in
    time order), with a Newey-West t-statistic over `lags` rows. Fewer than 2 distinct
    probabilities or a slope <= 0: no edge (b = 0)."""
    p = np.asarray(p_oof, np.float64)
    r = np.asarray(gross_ret, np.float64)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    n = len(p)
    if n < 2:
        return EdgeCalibration(0.0, 0.5, 0.0, n, fitted_until_ms)
    pm = float(p.mean())
    dp = p - pm
    sxx = float(dp @ dp)
    if not sxx > 0:
        return EdgeCalibration(0.0, pm, 0.0, n, fitted_until_ms)
    dr = r - r.mean()
    slope = float(dp @ dr) / sxx
    u = dp * (dr - slope * dp)
    s = float(u @ u)
    for lag in range(1, min(int(lags), n - 1) + 1):  # Bartlett weights
        s += 2.0 * (1.0 - lag / (lags + 1.0)) * float(u[lag:] @ u[:-lag])
    var = max(s, 0.0) / (sxx * sxx)
    t = slope / math.sqrt(var) if var > 0 else 0.0
    return EdgeCalibration(slope, pm, t, n, fitted_until_ms)


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


class PaperTrader:
    """The net-edge rule traded on paper, per symbol, bar by bar: one home for the out-of-fold
    evidence (`simulate_rule`), the improvement loop's shadow books and the variant portfolio's
    counterfactual rewards. A position taken at a close earns the next bar's log return, pays a
    taker side (fee + half spread + slippage) per unit of side changed, and pays funding at the
    latest settled rate pro rata per bar (a long pays a positive rate). Returns are fractions of
    notional, per decision."""

    def __init__(
        self, horizon: int, round_trip: float, interval_ms: int, funding_interval_h: float = 8.0
    ) -> None:
        self.horizon = horizon
        self.round_trip = round_trip
        self.hold_h = horizon * interval_ms / 3_600_000
        self.per_bar_f = interval_ms / 3_600_000 / funding_interval_h
        self.funding_interval_h = funding_interval_h
        self.state: dict[str, list] = {}  # symbol -> [side, held, close, funding per bar, cost]

    def step(self, symbol: str, close: float, expected: float, funding_rate: float) -> tuple[int, float]:
        """Settle the previous decision at this close, then decide; returns (side now, net return of
        the previous decision, nan at a symbol's first bar). `expected` nan: no view, flat."""
        st = self.state.get(symbol)
        reward = math.nan
        side, held = 0, 0
        if st is not None:
            side, held, c0, fbar, cost = st
            if c0 > 0 and close > 0:
                reward = side * math.log(close / c0) - side * fbar - cost
        fr = funding_rate if math.isfinite(funding_rate) else 0.0
        if math.isfinite(expected):
            new, _, _ = decide_side(
                expected,
                fr * self.hold_h / self.funding_interval_h,
                self.round_trip,
                side,
                held,
                self.horizon,
            )
        else:
            new = 0
        held = held + 1 if new == side and new != 0 else (1 if new != 0 else 0)
        self.state[symbol] = [new, held, close, fr * self.per_bar_f, abs(new - side) * self.round_trip / 2.0]
        return new, reward

    def reset(self, symbol: str) -> None:
        """Flat, at no cost (a gap in the data: no price to trade at)."""
        self.state.pop(symbol, None)


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
    """`PaperTrader` over the rows with a finite p (per symbol, in time order); a gap flattens for
    free. Returns the daily net return series' statistics, the symbols weighted equally (each gets
    1/N of the capital)."""
    symbols = np.unique(sid)
    pnl_by_day: dict[int, float] = {}
    trades = 0
    pt = PaperTrader(horizon, round_trip, interval_ms, funding_interval_h)
    for s in symbols:
        rows = np.flatnonzero((sid == s) & np.isfinite(p))
        key = str(s)
        prev_t = None
        for a in rows:
            if prev_t is not None and t[a] - prev_t != interval_ms:
                pt.reset(key)
            before = pt.state.get(key, [0])[0]
            side, reward = pt.step(key, float(close[a]), cal.expected_return(float(p[a])), float(funding[a]))
            trades += side != before and side != 0
            if reward == reward:
                day = int(t[a] // 86_400_000)
                pnl_by_day[day] = pnl_by_day.get(day, 0.0) + reward / len(symbols)
            prev_t = t[a]
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
                cal = fit_edge_calibration(p_oof[known], gross_fwd_ret[known], fitted_until_ms=r - embargo_ms)
                fits.append(cal)
                out[rows] = cal.edge(p_oof[rows])
        r += refit_every_ms
    return out, fits
