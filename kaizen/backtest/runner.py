"""`kaizen backtest`: check the inputs, train what must exist at --start, run every strategy through
the engine (in parallel worker processes), write summary.json, the lineage logs and the report.

Strategies (`[backtest] strategies`):
  buy_and_hold       equal weight across the symbols present, bought at each symbol's first bar
  baseline_momentum  the named yardstick
  flat               never trades (net 0: the bar every model has to clear)
  snapshot           the ensemble trained once on the window before --start, never retrained
  periodic_retrain   retrained every `retrain_every_days` on the rolling window, deployed at once
                     with no validation (what FreqAI does)
  regime_bandit      per (symbol, regime, style) a Thompson-sampling portfolio over trained
                     variants and flat (kaizen/engine/strategies/bandit.py)
  kaizen             the improvement loop (kaizen/loop/loop.py): retrained on schedule, candidates
                     in shadow, promoted only past the validation gate, rolled back on drift;
                     flat until a model has beaten flat net of costs
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from kaizen.backtest.driver import DAY_MS, Job, Result, costs_of, run_job
from kaizen.config import SUPPORTED_SYMBOLS, Config
from kaizen.errors import DataError, KaizenError
from kaizen.market.data import Dataset, interval_ms, load_dataset, parse_date_ms

KINDS = {
    "buy_and_hold": "buy_and_hold",
    "baseline_momentum": "baseline_momentum",
    "flat": "flat",
    "snapshot": "ensemble",
    "periodic_retrain": "ensemble",
    "kaizen": "loop",
    "regime_bandit": "bandit",
}
SUMMARY_KEYS = ("net_return", "sharpe", "sortino", "max_drawdown", "fees", "funding", "turnover", "trades", "exposure")


def resolve_symbols(cfg: Config, data: Path, explicit: bool) -> list[str]:
    iv = cfg.models.interval
    if explicit:
        missing = [s for s in cfg.symbols if not (data / "futures/um/klines" / s / iv).is_dir()]
        if missing:
            raise DataError(f"{data}: no {iv} klines for {', '.join(missing)} (futures/um/klines/SYMBOL/{iv}/)")
        return list(cfg.symbols)
    syms = [s for s in SUPPORTED_SYMBOLS if (data / "futures/um/klines" / s / iv).is_dir()]
    if not syms:
        raise DataError(f"{data}: no futures/um/klines/SYMBOL/{iv}/ folders")
    return syms


def check_data(ds: Dataset, symbols: list[str], start_ms: int, end_ms: int, iv: int) -> list[str]:
    """One-line errors for data a backtest cannot use honestly; returns the notes to report."""
    notes = list(ds.report)
    first = min(int(ds.symbols[s].klines.open_time[0]) for s in symbols if s in ds.symbols)
    last = max(int(ds.symbols[s].klines.open_time[-1]) for s in symbols if s in ds.symbols)
    if start_ms < first:
        raise DataError(f"--start {_day(start_ms)} is before the first bar in the data ({_day(first)})")
    if start_ms > last:
        raise DataError(f"--start {_day(start_ms)} is after the last bar in the data ({_day(last)})")
    for s in symbols:
        d = ds.symbols.get(s)
        if d is None:
            continue
        k = d.klines
        traded = k.open_time[(k.open_time >= start_ms) & (k.open_time < end_ms)]
        if len(traded) == 0:
            notes.append(f"{s}: no bars between --start and --end; not traded")
            continue
        if len(d.funding_time) == 0:
            raise DataError(f"{s}: no funding series (futures/um/fundingRate/{s}/): funding is never assumed zero")
        t0 = int(traded[0])
        if int(d.funding_time[0]) > t0 + 8 * 3_600_000 + iv:
            raise DataError(
                f"{s}: funding data starts {_day(int(d.funding_time[0]))}, after its first traded bar {_day(t0)}"
            )
        if int(d.funding_time[-1]) < int(traded[-1]) - 8 * 3_600_000 - iv:
            raise DataError(f"{s}: funding data ends {_day(int(d.funding_time[-1]))}, before its last bar")
        ft = d.funding_time[(d.funding_time >= t0) & (d.funding_time <= int(traded[-1]))]
        if len(ft) > 1:
            gap = int(np.max(np.diff(ft)))
            if gap > 24 * 3_600_000:
                i = int(np.argmax(np.diff(ft)))
                raise DataError(f"{s}: funding settlements missing for {gap / 3_600_000:.0f} h after {_day(int(ft[i]))}")
    return notes


def _day(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def make_jobs(cfg: Config, data: Path, symbols: list[str], start_ms: int, end_ms: int, out: Path, chash: str) -> list[Job]:
    jobs = []
    for name in cfg.backtest.strategies:
        if name not in KINDS:
            raise KaizenError(f"backtest.strategies: unknown strategy {name!r} (known: {', '.join(KINDS)})")
        jobs.append(
            Job(
                name=name,
                kind=KINDS[name],
                cfg=cfg,
                data_dir=str(data),
                symbols=symbols,
                start_ms=start_ms,
                end_ms=end_ms,
                out_dir=str(out),
                config_hash=chash,
                retrain_every_ms=int(cfg.backtest.retrain_every_days * DAY_MS) if name == "periodic_retrain" else 0,
            )
        )
    return jobs


def _worker(job: Job, queue: Any) -> Result:
    def progress(done: int, total: int) -> None:
        queue.put((job.name, done, total))

    return run_job(job, progress)


def run_backtest(
    cfg: Config,
    data: Path,
    start: str | None,
    end: str | None,
    out: Path,
    explicit_symbols: bool,
    show_progress: bool = True,
) -> dict[str, Any]:
    from kaizen.backtest.training import data_hash, train_signal_model
    from kaizen.engine.runner import config_hash
    from kaizen.progress import Progress

    t0 = time.monotonic()
    if not data.is_dir():
        raise DataError(f"{data}: data directory not found")
    iv = interval_ms(cfg.models.interval)
    symbols = resolve_symbols(cfg, data, explicit_symbols)
    start_ms = parse_date_ms(start, "--start")
    end_ms = parse_date_ms(end, "--end")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise KaizenError(f"--end {end} is not after --start {start}")
    ds = load_dataset(data, symbols, cfg.models.interval, end_ms=end_ms)
    last_close = max(int(d.klines.open_time[-1]) + iv for d in ds.symbols.values())
    if start_ms is None:  # default: the last quarter of the data
        first = min(int(d.klines.open_time[0]) for d in ds.symbols.values())
        start_ms = first + (last_close - first) * 3 // 4 // DAY_MS * DAY_MS
    if end_ms is None or end_ms > last_close:  # the summary says what was evaluated: no more than the data
        end_ms = last_close
    notes = check_data(ds, symbols, start_ms, end_ms, iv)
    for n in notes:
        print(f"data: {n}", file=sys.stderr)
    chash = config_hash(cfg)
    dhash = data_hash(ds)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "report.html"):
        (out / stale).unlink(missing_ok=True)
    if (out / "lineage").exists():
        print(f"backtest: replacing the previous results in {out}", file=sys.stderr)
        shutil.rmtree(out / "lineage")
    jobs = make_jobs(cfg, data, symbols, start_ms, end_ms, out, chash)
    if any(j.kind == "ensemble" and not j.retrain_every_ms for j in jobs) or any(j.retrain_every_ms for j in jobs):
        # the model every ensemble strategy starts from: trained once, here, on data before --start
        from kaizen.market.view import DataView

        view = DataView(ds, now_ms=start_ms)
        window = int(cfg.backtest.train_window_days * DAY_MS)
        tds = view.dataset(until_ms=start_ms, since_ms=start_ms - window)
        bar = Progress(1, "train at --start") if show_progress else None
        mdir, _ = train_signal_model(tds, cfg, costs_of(cfg), out / "models")
        if bar is not None:
            bar.close()
        for j in jobs:
            if j.kind == "ensemble":
                j.model_dir = str(mdir)
    # the slowest first (the loop trains a candidate every shadow period, then the bandit's variants,
    # then periodic retraining), so the pool's other worker takes the rest meanwhile
    jobs.sort(key=lambda j: (j.kind != "loop", j.kind != "bandit", -j.retrain_every_ms, j.kind != "ensemble"))
    results: dict[str, Result] = {}
    workers = max(1, min(cfg.backtest.workers, len(jobs)))
    done: dict[str, tuple[int, int]] = {j.name: (0, 1) for j in jobs}
    bar = Progress(1.0, "backtest") if show_progress else None
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        queue = mgr.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futs = {pool.submit(_worker, j, queue): j.name for j in jobs}
            pending = set(futs)
            while pending:
                finished = [f for f in pending if f.done()]
                for f in finished:
                    pending.discard(f)
                    r = f.result()  # a worker's KaizenError surfaces here as one line
                    results[r.name] = r
                    done[r.name] = (1, 1)
                while not queue.empty():
                    name, d, tot = queue.get_nowait()
                    done[name] = (d, tot)
                if bar is not None:
                    frac = sum(d / t for d, t in done.values()) / len(done)
                    bar.update(frac, f"{len(results)}/{len(jobs)} strategies done")
                if pending:
                    time.sleep(0.2)
            _ = as_completed
    if bar is not None:
        bar.close()
    summary = {
        "strategies": {name: results[name].summary for name in cfg.backtest.strategies},
        "start": _day(start_ms),
        "end": _day(end_ms),
        "symbols": symbols,
        "interval": cfg.models.interval,
        "config_hash": chash,
        "data_hash": dhash,
    }
    (out / "summary.json").write_bytes(msgspec.json.format(msgspec.json.encode(_sorted(summary)), indent=2))
    from kaizen.backtest.report import build_report

    build_report(out, cfg.backtest.report_symbol)
    wall = time.monotonic() - t0
    decisions = sum(r.bar_decisions for r in results.values())
    print(format_table(summary))
    for r in results.values():
        if r.errors:
            print(f"{r.name}: {len(r.errors)} engine error(s) (logged to lineage); first: {r.errors[0]}")
    print(f"summary: {out / 'summary.json'}; report: {out / 'report.html'}; lineage: {out / 'lineage'}")
    print(f"wall time {wall:.1f} s ({decisions} bar-decisions over {len(results)} strategies)")
    return summary


def _sorted(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _sorted(x[k]) for k in sorted(x)}
    if isinstance(x, list):
        return [_sorted(v) for v in x]
    return x


def format_table(summary: dict[str, Any]) -> str:
    cols = [("net_return", "net ret", "{:+.2%}"), ("sharpe", "Sharpe", "{:+.2f}"), ("sortino", "Sortino", "{:+.2f}"),
            ("max_drawdown", "max DD", "{:.2%}"), ("fees", "fees", "{:,.0f}"), ("funding", "funding", "{:+,.0f}"),
            ("turnover", "turnover", "{:,.1f}x"), ("trades", "fills", "{:,.0f}"), ("exposure", "exposure", "{:.2f}")]  # fmt: skip
    head = f"{'strategy':<18}" + "".join(f"{c[1]:>11}" for c in cols)
    lines = [f"backtest {summary['start']} .. {summary['end']}, {', '.join(summary['symbols'])}, "
             f"{summary['interval']} bars; net of fees, spread, slippage and funding (USDT)", head, "-" * len(head)]  # fmt: skip
    for name, m in summary["strategies"].items():
        lines.append(f"{name:<18}" + "".join(f"{fmt.format(m[k]):>11}" for k, _, fmt in cols))
    return "\n".join(lines)


__all__ = ["run_backtest", "format_table", "check_data", "KINDS", "SUMMARY_KEYS"]
_ = json
