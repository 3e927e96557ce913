"""Benchmark: the learned exit's cost on the hot path against the signal predictor, same run.

Run: nice python bench/exit.py [--data DIR] [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--reps N]
     [--exit-model OUT/exit_model]   (a model `kaizen exit eval` deployed, instead of training one)

Both models are trained here at their default sizes on the same data (real Binance 1h BTCUSDT and
ETHUSDT bars, all history, when the data directory exists, else a synthetic archive): the signal
ensemble (6 base forests of 200 trees, depth 4, plus a 100-tree meta model;
kaizen.models.ensemble.train) and the exit model (200 trees, depth 3, on the bars of the signal's
out-of-fold trades; kaizen.models.exit), each loaded through kaizen.models.compile.load_forest
(generated C). Rows are real: the exit model's input rows of those trades, and the feature
vectors of the same bars for the signal. Training takes a few minutes on 2 cores.

Timed with the same harness for both (Forest.latency_ns: clock_gettime around the nogil
predict_ptr call, cycling over prepared float32 rows; median and p99 over reps x rows):
  exit: one evaluation of one open position = one call of the exit forest;
  signal: one prediction = the 6 base forests on their surface's columns + the meta forest on
          their logits (sum of the per-forest medians; a logistic meta, when chosen, is left out).
The engine's own calls, each one Python call into C: Forest.predict_row (the exit model, per open
position) against CompiledEnsemble.predict (the signal, per feature vector).
Python-level rows add the Python calls the engine makes today: LearnedExit.on_bar(ctx) (fills the
row from the BarContext, predicts, decides) against Ensemble.predict(feature vector).
Verdict: the exit model must cost no more than the signal predictor per evaluation, so running it
on every open position at every bar stays within the signal's own budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kaizen.engine.strategy import BarContext, Costs  # noqa: E402
from kaizen.market.data import load_dataset, parse_date_ms  # noqa: E402
from kaizen.models import ensemble  # noqa: E402
from kaizen.models import exit as exit_model  # noqa: E402
from kaizen.models.edge import entry_side  # noqa: E402
from kaizen.models.exit_eval import signal_history  # noqa: E402
from kaizen.models.features import FEATURE_NAMES  # noqa: E402
from kaizen.models.trades import make_trades  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _stats(ns: np.ndarray) -> tuple[float, float]:
    return float(np.median(ns)), float(np.percentile(ns, 99))


def _leaves(raw: bytes) -> int:
    """Leaves of an XGBoost JSON model (the size that matters for the walk down each tree)."""
    from kaizen.models.forest_model import parse_model

    return int(sum(int((t.left < 0).sum()) for t in parse_model(raw).trees))


def _py_ns(fn, n: int) -> np.ndarray:
    out = np.empty(n, np.int64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = time.perf_counter_ns() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--start", default=None)
    ap.add_argument("--end", default="2025-01-01")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--exit-model", default=None, help="a saved exit model directory (skips training it)")
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir() and Path("/work/shared/data").is_dir():
        data = Path("/work/shared/data")
    source = f"real Binance 1h BTCUSDT+ETHUSDT {args.start or 'all'}..{args.end} ({data})"
    tmp = tempfile.TemporaryDirectory(prefix="kaizen-bench-exit-")
    if not data.is_dir():
        from tests.exits.archive import write_archive

        data = write_archive(Path(tmp.name) / "archive", seed=5, n_bars=12_000)
        source = "synthetic archive (no real data found)"
        args.start, args.end = None, None
    t0 = time.perf_counter()
    ds = load_dataset(data, ["BTCUSDT", "ETHUSDT"], "1h", parse_date_ms(args.start, "--start"),
                      parse_date_ms(args.end, "--end"))  # fmt: skip
    costs = Costs()
    tp = ensemble.TrainParams()  # the signal's default sizes
    hist = signal_history(data, ds, 4, costs, tp)
    markets = hist.markets
    sides = [entry_side(m.edge, costs, m.funding_rate, 4)[0] for m in markets]
    trades = make_trades(markets, sides, costs, 16)
    params = exit_model.ExitParams()  # the exit model's default sizes
    ex = exit_model.build_examples(markets, trades, costs, 4)
    rows = exit_model.train_rows(ex, exit_model.target(ex, params.target_clip), int(ex.label_end.max()))
    if args.exit_model:
        xm = exit_model.ExitModel.load(args.exit_model, backend="compiled")
        exit_raw = (Path(args.exit_model) / exit_model.MODEL_FILE).read_bytes()
        source += f"; exit model {args.exit_model}"
    else:  # the model `kaizen exit eval` would deploy: kind and margin chosen, fitted on every row
        sel, fit = exit_model.fit_selected(ex, trades, params, int(ex.label_end.max()))
        if fit is None:
            raise SystemExit(f"too few exit training rows ({len(rows)}) on this span: use more history")
        man = exit_model.manifest_for(params, sel, costs, {})
        xm = exit_model.ExitModel.from_booster(fit.booster, man, backend="compiled")
        exit_raw = bytes(fit.booster.save_raw("json"))
    train_s = time.perf_counter() - t0
    ens_dir = Path(tmp.name) / "signal"
    ensemble.save(hist.results[0], ens_dir, {})
    ens = ensemble.Ensemble.load(ens_dir, backend="compiled")

    # prepared rows: the exit model's rows of real trades; the signal's feature vectors of the same bars
    n_rows = min(2000, len(rows))
    pick = rows[np.linspace(0, len(rows) - 1, n_rows).astype(int)]
    x_exit = np.ascontiguousarray(ex.X.reshape(-1, ex.X.shape[2])[pick], np.float32)
    x_sig = np.ascontiguousarray(x_exit[:, exit_model.N_STATE :], np.float64)
    reps = args.reps
    lat_exit = xm.forest.latency_ns(x_exit, reps)
    sig_parts = {}
    logits = []
    for s in ens.bases:
        cols = ens._cols[s]
        xs = np.ascontiguousarray(x_sig[:, cols], np.float32)
        sig_parts[s] = ens._boosters[s].latency_ns(xs, reps)
        logits.append(ens._boosters[s].predict(xs))
    xl = np.ascontiguousarray(ensemble._logit(np.column_stack(logits)), np.float32)
    meta = ens._boosters["meta"]
    if hasattr(meta, "latency_ns"):  # a forest meta; a logistic meta is a dot product of a few terms
        sig_parts["meta"] = meta.latency_ns(xl, reps)
    sig_med = sum(float(np.median(v)) for v in sig_parts.values())
    sig_p99 = sum(float(np.percentile(v, 99)) for v in sig_parts.values())

    # Python-level: LearnedExit.on_bar on a filled BarContext vs Ensemble.predict on the vector
    rule = exit_model.LearnedExit(xm)
    ctx = BarContext("BTCUSDT", 0, list(FEATURE_NAMES), costs, 24.0)
    pos = ctx.position
    pos.open(1, 1.0, 100.0, 0, -1, 0.006)
    pos.bars_in_trade, pos.last_return, pos.mfe, pos.mae = 3, 0.002, 0.004, -0.001
    ctx.ts_ns, ctx.vol, ctx.funding_rate, ctx.next_funding_ms, ctx.signal_edge = (
        3_600_000_000_000,
        0.006,
        1e-4,
        0,
        0.001,
    )
    feats = np.ascontiguousarray(x_sig)
    n_py = min(20_000, reps * n_rows)

    def on_bar(i: int) -> None:
        ctx.features = feats[i % n_rows]
        rule.on_bar(ctx)

    def predict(i: int) -> None:
        ens.predict(feats[i % n_rows])

    # the calls the engine makes per decision: CompiledEnsemble.predict (the signal, one C call per
    # feature vector) and Forest.predict_row (the exit model, one C call per open position)
    comp = ens.compiled()
    row_fn = xm.forest.predict_row

    def sig_call(i: int) -> None:
        comp.predict(feats[i % n_rows])

    def exit_call(i: int) -> None:
        row_fn(x_exit[i % n_rows])

    on_bar(0), predict(0), sig_call(0), exit_call(0)
    py_exit = _py_ns(on_bar, n_py)
    py_sig = _py_ns(predict, max(n_py // 10, 500))
    call_exit = _py_ns(exit_call, n_py)
    call_sig = _py_ns(sig_call, n_py)

    print(
        f"data: {source}; {len(trades)} signal trades, {len(rows)} exit training rows; trained in {train_s:.0f}s"
    )
    sig_leaves = sum(_leaves((ens_dir / f).read_bytes()) for f in ens.manifest["files"].values())
    print(
        f"exit model ({xm.kind}, {xm.version}): {params.trees} trees depth <= {params.max_depth}, "
        f"{_leaves(exit_raw)} leaves, {len(exit_model.NAMES)} inputs; signal: {len(ens.bases)} bases x "
        f"{tp.trees} trees depth <= {tp.max_depth} + meta {tp.meta_trees} trees, {sig_leaves} leaves"
    )
    print(f"{n_rows} prepared rows x {reps} reps; box shared with other work: figures are indicative")
    print()
    print(f"{'path':58s} {'median ns':>10s} {'p99 ns':>10s}")
    print("-" * 80)
    em, ep = _stats(lat_exit)
    print(f"{'exit: compiled Forest, one open position (predict_ptr)':58s} {em:10.0f} {ep:10.0f}")
    for s, v in sig_parts.items():
        m, p = _stats(v)
        print(f"{'  signal part: ' + s:58s} {m:10.0f} {p:10.0f}")
    what = "6 bases + meta" if "meta" in sig_parts else f"{len(ens.bases)} bases (+ logistic meta)"
    print(f"{'signal: ' + what + ', compiled (sum of parts)':58s} {sig_med:10.0f} {sig_p99:10.0f}")
    cm, cp = _stats(call_exit)
    print(f"{'exit: Forest.predict_row(row), one Python call':58s} {cm:10.0f} {cp:10.0f}")
    gm, gp = _stats(call_sig)
    print(f"{'signal: CompiledEnsemble.predict(vector), one Python call':58s} {gm:10.0f} {gp:10.0f}")
    pm, pp = _stats(py_exit)
    print(f"{'exit: LearnedExit.on_bar(ctx) from Python':58s} {pm:10.0f} {pp:10.0f}")
    sm, sp = _stats(py_sig)
    print(f"{'signal: Ensemble.predict(vector) from Python':58s} {sm:10.0f} {sp:10.0f}")
    print()
    ok = em <= sig_med
    print(
        f"verdict: exit model {em:.0f} ns per open position = {em / sig_med:.0%} of the signal predictor's "
        f"{sig_med:.0f} ns (compiled, same harness) -> {'PASS' if ok else 'FAIL'} (target: <= the signal predictor); "
        f"engine calls: Forest.predict_row {cm:.0f} ns vs CompiledEnsemble.predict {gm:.0f} ns; "
        f"through Python: on_bar {pm / 1e3:.1f} us vs Ensemble.predict {sm / 1e3:.1f} us"
    )
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
