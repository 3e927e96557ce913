"""A second implementation of the 36 features, written in numpy from the definitions documented in
kaizen.models.features.FEATURES (and the engine's documented conventions), sharing no code with
ext/features.pyx. Whole-series and vectorised: windows are sliding views over each run of
consecutive bars, so it checks the engine's incremental ring-buffer bookkeeping too.

Conventions (from the FEATURES header and the FeatureEngine docstring):
  - r_t = ln(c_t / c_{t-1}); std is the population std; a window of w bars ends at the current bar;
  - a gap (open_time not one interval after the previous bar) starts a new run: no window reaches
    across it, so every feature is nan until its window fits in the new run;
  - a ratio whose denominator is 0 is nan; nan inputs propagate, except where a definition says
    "available" (basis_premium_mean_24);
  - fund_rate is the latest funding rate seen (the input carries "latest settled at the bar close";
    a missing value keeps the previous one);
  - cross-asset features read the leader's bar of the same open time (nan when it has none, and
    for the leader itself);
  - live-only features (book, flow) come from book events, never from bars: nan in batch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAMES = (
    "mom_ret_1", "mom_ret_4", "mom_ret_12", "mom_ret_24", "mom_ret_72", "mom_sharpe_24",
    "vol_rv_24", "vol_rv_72", "vol_parkinson_24", "vol_garman_klass_24", "vol_of_vol_24",
    "vol_ratio_24_72",
    "mr_z_24", "mr_z_72", "mr_range_pos_72", "mr_autocorr_24",
    "vlm_ratio_24", "vlm_z_24", "vlm_clv_signed", "vlm_trend_6_24",
    "fund_rate", "fund_chg_24", "fund_mean_72", "basis_premium", "basis_premium_mean_24",
    "x_leader_ret_1", "x_leader_ret_4", "x_corr_72", "x_spread_24", "x_rel_mom_24",
    "book_imbalance", "book_micro_drift", "book_imbalance_ema", "flow_signed_volume",
    "vol_hl_1", "vol_ends_1",
)  # fmt: skip


def _div(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    out = np.full(a.shape, np.nan)
    ok = b != 0
    out[ok] = a[ok] / b[ok]
    return out


class _Runs:
    """Positions of each bar inside its run of consecutive bars."""

    def __init__(self, t: np.ndarray, interval_ms: int):
        n = len(t)
        start = np.ones(n, bool)
        start[1:] = np.diff(t) != interval_ms
        first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
        self.pos = np.arange(n) - first  # 0 at the first bar of a run

    def windows(self, x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, values): values[k] = x[i-w+1 .. i] for every bar i whose run holds w bars."""
        n = len(x)
        rows = np.flatnonzero(self.pos >= w - 1)
        if n < w or not len(rows):
            return rows, np.empty((0, w))
        return rows, sliding_window_view(x, w)[rows - (w - 1)]

    def lag(self, x: np.ndarray, k: int) -> np.ndarray:
        """x_{t-k} within the run, nan where the run is shorter."""
        out = np.full(len(x), np.nan)
        ok = self.pos >= k
        out[ok] = x[np.flatnonzero(ok) - k]
        return out

    def rolling(self, x: np.ndarray, w: int, fn) -> np.ndarray:
        out = np.full(len(x), np.nan)
        rows, win = self.windows(x, w)
        if len(rows):
            out[rows] = fn(win)
        return out


def _mean(win):
    return win.mean(axis=1)


def _std(win):
    # a constant window's std is 0 exactly (the mean of equal floats need not round back to them)
    return np.where(np.ptp(win, axis=1) == 0, 0.0, win.std(axis=1))


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation; nan if a side is constant (or any value is nan)."""
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    sxx, syy, sxy = (da * da).sum(1), (db * db).sum(1), (da * db).sum(1)
    out = np.full(len(a), np.nan)
    ok = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0) & (sxx > 0) & (syy > 0)
    out[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
    return out


def _ffill(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(len(x)), -1)
    idx = np.maximum.accumulate(idx)
    out = np.full(len(x), np.nan)
    out[idx >= 0] = x[idx[idx >= 0]]
    return out


def symbol_features(t, o, h, lo, c, v, funding, mark, interval_ms, leader=None) -> np.ndarray:
    """Features of one symbol's bars (rows in time order). `leader`: the leader's own
    (t, feature matrix) from this function, or None for the leader itself."""
    n = len(t)
    X = np.full((n, len(NAMES)), np.nan)
    F = {name: X[:, j] for j, name in enumerate(NAMES)}  # views: assigning [:] writes X
    runs = _Runs(t, interval_ms)
    r = np.log(c / runs.lag(c, 1))
    for k in (1, 4, 12, 24, 72):
        F[f"mom_ret_{k}"][:] = np.log(c / runs.lag(c, k))
    rv24 = runs.rolling(r, 24, _std)
    rv72 = runs.rolling(r, 72, _std)
    F["vol_rv_24"][:] = rv24
    F["vol_rv_72"][:] = rv72
    F["mom_sharpe_24"][:] = _div(F["mom_ret_24"], rv24 * np.sqrt(24.0))
    hl2 = np.log(h / lo) ** 2
    co2 = np.log(c / o) ** 2
    F["vol_parkinson_24"][:] = np.sqrt(runs.rolling(hl2, 24, _mean) / (4 * np.log(2)))
    gk = runs.rolling(0.5 * hl2 - (2 * np.log(2) - 1) * co2, 24, _mean)
    F["vol_garman_klass_24"][:] = np.where(np.isnan(gk), np.nan, np.sqrt(np.maximum(gk, 0.0)))
    F["vol_of_vol_24"][:] = _div(runs.rolling(rv24, 24, _std), runs.rolling(rv24, 24, _mean))
    F["vol_ratio_24_72"][:] = _div(rv24, rv72)
    F["vol_hl_1"][:] = np.log(h / lo)
    F["vol_ends_1"][:] = _div(np.abs(2 * c - h - lo) + np.abs(2 * o - h - lo), 2 * (h - lo))
    for w in (24, 72):
        F[f"mr_z_{w}"][:] = _div(c - runs.rolling(c, w, _mean), runs.rolling(c, w, _std))
    hi72 = runs.rolling(h, 72, lambda win: win.max(axis=1))
    lo72 = runs.rolling(lo, 72, lambda win: win.min(axis=1))
    F["mr_range_pos_72"][:] = _div(c - lo72, hi72 - lo72)
    rows, win = runs.windows(r, 25)  # 24 pairs (r_t, r_{t-1})
    if len(rows):
        F["mr_autocorr_24"][rows] = _corr(win[:, 1:], win[:, :-1])
    v24 = runs.rolling(v, 24, _mean)
    F["vlm_ratio_24"][:] = _div(v, v24)
    lv = np.log1p(v)
    F["vlm_z_24"][:] = _div(lv - runs.rolling(lv, 24, _mean), runs.rolling(lv, 24, _std))
    clv = np.where(h > lo, _div((c - lo) - (h - c), h - lo), 0.0)
    F["vlm_clv_signed"][:] = clv * F["vlm_ratio_24"]
    F["vlm_trend_6_24"][:] = _div(runs.rolling(v, 6, _mean), v24)
    fund = _ffill(np.asarray(funding, float))
    F["fund_rate"][:] = fund
    F["fund_chg_24"][:] = fund - runs.lag(fund, 24)
    F["fund_mean_72"][:] = runs.rolling(fund, 72, _mean)
    prem = np.where(np.isfinite(mark) & (mark > 0), mark / c - 1.0, np.nan)
    F["basis_premium"][:] = prem
    # "mean of the available basis_premium over 24 bars": the finite ones among the last 24 of
    # the run (fewer while the run is shorter)
    padded = np.concatenate([np.full(23, np.nan), prem])
    win = sliding_window_view(padded, 24).copy()
    win[np.arange(24)[None, :] < (23 - runs.pos)[:, None]] = np.nan  # before the run started
    cnt = np.isfinite(win).sum(1)
    F["basis_premium_mean_24"][:] = np.where(cnt > 0, np.nansum(win, 1) / np.maximum(cnt, 1), np.nan)
    if leader is not None:
        lt, LX = leader
        j = np.searchsorted(lt, t)
        j = np.minimum(j, len(lt) - 1)
        has = lt[j] == t
        col = {name: i for i, name in enumerate(NAMES)}

        def lead(name):
            out = np.full(n, np.nan)
            out[has] = LX[j[has], col[name]]
            return out

        lr = lead("mom_ret_1")
        F["x_leader_ret_1"][:] = lr
        F["x_leader_ret_4"][:] = lead("mom_ret_4")
        F["x_rel_mom_24"][:] = F["mom_ret_24"] - lead("mom_ret_24")
        rows, wr = runs.windows(r, 72)
        if len(rows):
            F["x_corr_72"][rows] = _corr(wr, runs.windows(lr, 72)[1])
        F["x_spread_24"][:] = runs.rolling(np.abs(r - lr), 24, _mean)
    return X


def dataset_features(symbols: dict, leader: str, interval_ms: int) -> dict[str, np.ndarray]:
    """{symbol: features} for a dict of kaizen.market.data.SymbolData (the leader's computed first)."""
    out: dict[str, np.ndarray] = {}

    def one(d, lead):
        k = d.klines
        return symbol_features(
            k.open_time, k.open, k.high, k.low, k.close, k.volume, d.funding, d.mark_close, interval_ms, lead
        )

    lead = None
    if leader in symbols:
        out[leader] = one(symbols[leader], None)
        lead = (symbols[leader].klines.open_time, out[leader])
    for s, d in symbols.items():
        if s != leader:
            out[s] = one(d, lead)
    return out


def live_features(events: list[tuple]) -> np.ndarray:
    """The four live-only features after each event of a timeline of ("bar", volume) and
    ("book", imbalance, microprice, mid, signed_volume) events of one symbol, by their
    definitions: the latest imbalance, the latest microprice / mid - 1, an EMA (alpha 0.1 per event,
    started at the first event) of the imbalance, and the signed volume since the last bar close
    over mean(v, 24) (nan before 24 bars); all nan until the first book event."""
    out = np.full((len(events), 4), np.nan)
    vols: list[float] = []
    imb = drift = ema = np.nan
    signed, seen = 0.0, 0
    for k, ev in enumerate(events):
        vmean = np.mean(vols[-24:]) if len(vols) >= 24 else np.nan
        if ev[0] == "bar":
            vols.append(ev[1])
            vmean = np.mean(vols[-24:]) if len(vols) >= 24 else np.nan
            if seen:
                out[k] = imb, drift, ema, (signed / vmean if vmean != 0 else np.nan)
            signed = 0.0
            continue
        _, imb, micro, mid, sv = ev
        drift = micro / mid - 1.0 if mid > 0 else np.nan
        ema = imb if seen == 0 or not np.isfinite(ema) else ema + 0.1 * (imb - ema)
        signed += sv if np.isfinite(sv) else 0.0
        seen += 1
        out[k] = imb, drift, ema, (signed / vmean if vmean != 0 else np.nan)
    return out
