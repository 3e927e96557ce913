"""Incremental feature cost per bar and per book event vs the same features computed with numpy
per bar, in one run. Run: `python bench/features.py` (from the repo root, after build_ext).

Rows:
  engine bar_update (C call, as the hot path)   whole 34-feature vector, 1h bars of BTC/ETH/SOL/BNB 2024
  engine on_bar (Python call, returns ndarray)  the same through the Python API
  engine book_update (C call, per book event)   live-only inputs -> book/flow features
  numpy per bar (baseline)                      the same bar features from trailing windows with numpy
Target: <= 1 us per event for the live vector.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kaizen.ext.features import time_bars, time_book  # noqa: E402
from kaizen.market.data import load_dataset, parse_date_ms  # noqa: E402
from kaizen.models.features import FEATURE_NAMES, FeatureEngine, batch_features  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]


def numpy_vector(c, o, h, lo, v, fund, prem, lr):
    """The bar features of the last row from trailing arrays (>= 100 bars), numpy only."""
    r = np.diff(np.log(c))
    out = np.full(len(FEATURE_NAMES), np.nan)
    out[0] = r[-1]
    for j, k in ((1, 4), (2, 12), (3, 24), (4, 72)):
        out[j] = np.log(c[-1] / c[-1 - k])
    rv24_hist = np.array([r[len(r) - 24 - i : len(r) - i].std() for i in range(24)])
    rv24, rv72 = r[-24:].std(), r[-72:].std()
    out[5] = out[3] / (rv24 * np.sqrt(24))
    out[6], out[7] = rv24, rv72
    hl = np.log(h[-24:] / lo[-24:])
    co = np.log(c[-24:] / o[-24:])
    out[8] = np.sqrt(np.mean(hl**2) / (4 * np.log(2)))
    out[9] = np.sqrt(max(0.0, np.mean(0.5 * hl**2 - (2 * np.log(2) - 1) * co**2)))
    out[10] = rv24_hist.std() / rv24_hist.mean()
    out[11] = rv24 / rv72
    out[12] = (c[-1] - c[-24:].mean()) / c[-24:].std()
    out[13] = (c[-1] - c[-72:].mean()) / c[-72:].std()
    out[14] = (c[-1] - lo[-72:].min()) / (h[-72:].max() - lo[-72:].min())
    out[15] = np.corrcoef(r[-24:], r[-25:-1])[0, 1]
    vm = v[-24:].mean()
    out[16] = v[-1] / vm
    lv = np.log1p(v[-24:])
    out[17] = (lv[-1] - lv.mean()) / lv.std()
    out[18] = ((c[-1] - lo[-1]) - (h[-1] - c[-1])) / (h[-1] - lo[-1]) * out[16] if h[-1] > lo[-1] else 0.0
    out[19] = v[-6:].mean() / vm
    out[20] = fund[-1]
    out[21] = fund[-1] - fund[-25]
    out[22] = fund[-72:].mean()
    out[23] = prem[-1]
    p = prem[-24:]
    out[24] = p[np.isfinite(p)].mean() if np.isfinite(p).any() else np.nan
    out[25] = lr[-1]
    out[27] = np.corrcoef(r[-72:], lr[-72:])[0, 1]
    out[28] = np.mean(np.abs(r[-24:] - lr[-24:]))
    return out


def pct(ns: np.ndarray) -> tuple[float, float]:
    return float(np.median(ns)), float(np.percentile(ns, 99))


def main() -> None:
    ds = load_dataset(DATA, SYMS, "1h", parse_date_ms("2024-01-01", ""), None)
    bf = batch_features(ds)
    # feed arrays in feed order
    cols = {k: [] for k in "sid t o h l c v f m".split()}
    for i, d in enumerate(ds.symbols.values()):
        k = d.klines
        cols["sid"].append(np.full(len(k), i, np.int32))
        cols["t"].append(k.open_time)
        for key, a in zip(
            "ohlcvfm", (k.open, k.high, k.low, k.close, k.volume, d.funding, d.mark_close), strict=True
        ):
            cols[key].append(a)
    rank = np.concatenate([np.full(len(d.klines), i) for i, d in enumerate(ds.symbols.values())])
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((rank, cat["t"]))
    a = {k: np.ascontiguousarray(v[order]) for k, v in cat.items()}
    n = len(order)
    rows = []

    fe = FeatureEngine(list(ds.symbols))
    ns = np.empty(n, np.int64)
    time_bars(fe, a["sid"], a["t"], a["o"], a["h"], a["l"], a["c"], a["v"], a["f"], a["m"], ns)
    rows.append(("engine bar_update (C call)", n, *pct(ns)))

    fe2 = FeatureEngine(list(ds.symbols))
    syms = list(ds.symbols)
    py_ns = np.empty(n, np.int64)
    on_bar = fe2.on_bar
    for i in range(n):
        t0 = time.perf_counter_ns()
        on_bar(
            syms[a["sid"][i]],
            int(a["t"][i]),
            a["o"][i],
            a["h"][i],
            a["l"][i],
            a["c"][i],
            a["v"][i],
            a["f"][i],
            a["m"][i],
        )
        py_ns[i] = time.perf_counter_ns() - t0
    rows.append(("engine on_bar (Python call)", n, *pct(py_ns)))

    m = 200_000
    rng = np.random.default_rng(0)
    imb = rng.uniform(-1, 1, m)
    mid = 60_000 + np.cumsum(rng.normal(0, 1, m))
    micro = mid + rng.normal(0, 0.5, m)
    sv = rng.normal(0, 0.1, m)
    bns = np.empty(m, np.int64)
    time_book(fe, 0, imb, micro, mid, sv, bns)
    rows.append(("engine book_update (C call)", m, *pct(bns)))

    # numpy per bar: ETH (has the leader), trailing 100 bars
    d = ds.symbols["ETHUSDT"]
    k = d.klines
    eth = bf.X[bf.rows_of("ETHUSDT")]
    lead = ds.symbols["BTCUSDT"].klines
    lr_full = np.concatenate(([np.nan], np.diff(np.log(lead.close))))
    prem = d.mark_close / k.close - 1
    nps = []
    worst = 0.0
    for i in range(120, min(len(k), 3120)):
        s = slice(i - 100, i + 1)
        t0 = time.perf_counter_ns()
        vec = numpy_vector(
            k.close[s],
            k.open[s],
            k.high[s],
            k.low[s],
            k.volume[s],
            d.funding[s],
            prem[s],
            lr_full[1:][s.start - 1 : i],
        )
        nps.append(time.perf_counter_ns() - t0)
        ok = np.isfinite(vec) & np.isfinite(eth[i])
        worst = max(
            worst, float(np.max(np.abs(vec[ok] - eth[i][ok]) / np.maximum(np.abs(eth[i][ok]), 1e-12)))
        )
    rows.append(("numpy per bar (baseline)", len(nps), *pct(np.array(nps))))

    print(f"{'path':<32} {'calls':>8} {'median ns':>10} {'p99 ns':>10}")
    for name, cnt, med, p99 in rows:
        print(f"{name:<32} {cnt:>8} {med:>10.0f} {p99:>10.0f}")
    print(f"numpy baseline vs engine (ETH 2024, 3000 bars): max rel diff {worst:.2e}")
    print("target <= 1000 ns per event (book_update; bar_update is per bar close)")


if __name__ == "__main__":
    main()
