"""`kaizen exit eval` through the backtest engine (kaizen.models.exit_engine): the same entries for
every rule, the venue's per-trade accounting, every exit decision a lineage record, no look-ahead
in the exit decision at bar t, purge and embargo of the exit model's training rows, and (slow) the
fixed JSON shape and the learned exit's share of the hindsight oracle on a planted market."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kaizen.backtest.driver import costs_of
from kaizen.config import BacktestConfig, Config, ExitConfig, ModelConfig
from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from kaizen.market.data import Dataset, Klines, SymbolData, load_dataset
from kaizen.models import exit as exit_model
from kaizen.models.exit_engine import (
    EngineEval,
    PeriodExit,
    evaluate,
    run_rule,
    train_period,
    venue_trades,
)
from kaizen.models.exit_rules import baseline_names
from tests.conftest import run_kaizen
from tests.exits.planted_archive import T0, write_planted

H_MS = 3_600_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
RULES = ["time_4", "trail_1_1"]
KEYS = {"net_per_trade_bps", "hit_rate", "avg_hold_bars", "worst_trade_bps", "sharpe", "trades"}


def small_cfg() -> Config:
    return Config(
        symbols=SYMBOLS,
        models=ModelConfig(embargo_bars=12),
        exit=ExitConfig(folds=2, trees=30, embargo_bars=12),
        backtest=BacktestConfig(train_trees=40, train_meta_trees=20),
    )


def small_params(cfg: Config) -> exit_model.ExitParams:
    x = cfg.exit
    return exit_model.ExitParams(
        horizon_bars=cfg.models.horizon_bars, max_hold_bars=x.max_hold_bars, folds=x.folds,
        embargo_bars=x.embargo_bars, interval_ms=H_MS, trees=x.trees, max_depth=x.max_depth, threads=1,
        min_rows=400, min_trades=20,
    )  # fmt: skip


@dataclass
class Small:
    root: Path
    ds: Dataset
    cfg: Config
    params: exit_model.ExitParams
    start: int
    end: int
    ev: EngineEval


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Small:
    """A planted archive (seed 31) evaluated in-process on two rules and the learned exit."""
    tmp = tmp_path_factory.mktemp("engine-eval")
    data = write_planted(tmp / "data", seed=31, n_bars=5000, event_rate=0.06, mu=0.003, reversal=0.002)
    ds = load_dataset(data, SYMBOLS, "1h")
    cfg = small_cfg()
    params = small_params(cfg)
    start = T0 + 130 * 86_400_000
    end = T0 + 5000 * H_MS
    ev = evaluate(
        ds, cfg, costs_of(cfg), params, SYMBOLS, start, end, tmp / "out", backend="interp", rules=RULES
    )
    return Small(tmp, ds, cfg, params, start, end, ev)


def _exit_records(out: Path, name: str) -> list[R.ExitRecord]:
    recs = LineageReader(out / "runs" / "lineage" / name).records()
    return [r for r in recs if isinstance(r, R.ExitRecord)]


def test_same_entries_for_every_rule_through_the_engine(small):
    ev, H = small.ev, small.params.max_hold_bars
    d = ev.detail
    assert set(ev.runs) == {*RULES, "learned"}
    assert d["same_entries"] and d["same_entry_fills"]
    ref = ev.runs["time_4"].trades
    assert len(ref) >= 30 and d["trades"] == len(ref)
    for r in ev.runs.values():
        vt = r.trades
        assert np.array_equal(vt.t_in, ref.t_in) and np.array_equal(vt.side, ref.side)
        assert vt.symbol == ref.symbol and vt.open_at_end == 0 and not r.errors
        assert r.summary["kill_switch"] == ""
        hold = (vt.t_out - vt.t_in) // H_MS
        assert hold.min() >= 1 and hold.max() <= H
        for s in SYMBOLS:  # one trade at a time per symbol, entries more than max_hold bars apart
            t = vt.t_in[np.array(vt.symbol) == s]
            assert (np.diff(t) > H * H_MS).all()
    # the time exit holds exactly its bars; the venue's accounting agrees with the offline value matrix
    assert ((ref.t_out - ref.t_in) == 4 * H_MS).all()
    assert max(d["accounting_parity_median_abs_bps"].values()) < 0.5
    rules = ev.table["rules"]
    assert set(rules) == {*RULES, "learned", "oracle"} and all(set(x) == KEYS for x in rules.values())
    assert {x["trades"] for x in rules.values()} == {len(ref)}
    assert rules["oracle"]["net_per_trade_bps"] >= max(x["net_per_trade_bps"] for x in rules.values())
    # every configuration tried is a trial: the two baselines and the learned exit's candidates
    assert {v["trials"] for v in ev.table["deflated_sharpe"].values()} == {
        len(RULES) + small.params.n_candidates
    }
    assert "oracle" not in ev.table["deflated_sharpe"]


def test_every_exit_decision_is_a_lineage_record(small):
    out = small.root / "out"
    recs = _exit_records(out, "learned")
    n_trades = len(small.ev.runs["learned"].trades)
    assert sum(r.exit for r in recs) == n_trades  # one exit decision closes each trade
    assert {r.rule for r in recs} == {"learned"}
    model = [r for r in recs if r.reason in ("hold", "model")]
    assert model, "no decision came from the model"
    for r in model:
        assert math.isfinite(r.hold_value) and math.isfinite(r.cost) and r.model
        assert r.names == exit_model.NAMES and len(r.values) == len(exit_model.NAMES)
        assert r.side in (-1, 1) and 1 <= r.bars_in_trade <= small.params.max_hold_bars
        assert r.values[exit_model.STATE_NAMES.index("pos_bars")] == r.bars_in_trade
        assert r.exit == (r.hold_value < r.cost) and r.parents
    # the baselines' decisions are records too (position state, no model inputs)
    base = _exit_records(out, "time_4")
    assert sum(r.exit for r in base) == n_trades and all(r.bars_in_trade <= 4 for r in base)


def test_purge_and_embargo_of_the_training_rows(small):
    """Checked on the rows each period's exit model was fitted on: every label known an embargo
    before the period starts; the signal model trained on bars closed by then."""
    p = small.params
    for per in small.ev.periods:
        assert per.signal_data_end <= per.start
        assert int(per.signal_info["data"]["end_ms"]) <= per.start
        assert per.exit_until == per.start - p.embargo_ms
        ex = per.ex
        rows = per.train_rows
        assert len(rows) >= p.min_rows
        assert (ex.label_end.ravel()[rows] <= per.exit_until).all()
        assert (ex.t_dec.ravel()[rows] < per.exit_until).all()
        kind_end = exit_model.label_end(ex, per.selection.kind).ravel()
        assert (kind_end[per.final_rows] <= per.exit_until).all()
        # the purge is not vacuous: known rows inside (until, start] exist and were left out
        y = exit_model.target(ex, p.target_clip)
        late = np.flatnonzero(((ex.label_end > per.exit_until) & np.isfinite(y)).ravel())
        assert len(late) > 0 and not np.isin(late, rows).any()


def _perturbed(ds: Dataset, t_ms: int, seed: int = 9) -> Dataset:
    """Every bar opening at or after t_ms (all of it after the close at t) and every funding
    settlement after t replaced."""
    rng = np.random.default_rng(seed)
    out = {}
    for s, d in ds.symbols.items():
        k = d.klines
        after = k.open_time >= t_ms
        f = np.exp(np.cumsum(np.where(after, 0.01 * rng.standard_normal(len(k)), 0.0)))
        w = np.where(after, 1.001, 1.0)  # wider ranges after t only
        kk = Klines(s, k.interval_ms, k.open_time, k.open * f, k.high * f * w, k.low * f / w, k.close * f,
                    np.where(after, k.volume * 3.0, k.volume))  # fmt: skip
        fr = np.where(d.funding_time > t_ms, d.funding_rate * -2.0, d.funding_rate)
        out[s] = SymbolData(kk, d.funding, d.mark_close, d.funding_time, fr)
    return Dataset(ds.interval, out, list(ds.report))


def test_no_look_ahead_in_the_exit_decision_at_t(small, tmp_path):
    """Changing everything after the close at t (prices, volumes, funding) changes no exit decision
    up to t (nor any model trained before t), and does change decisions after t (the control)."""
    ev, cfg, params = small.ev, small.cfg, small.params
    costs = costs_of(cfg)
    last = ev.periods[-1]
    t = last.start + (small.end - last.start) // 2
    t -= t % H_MS
    pds = _perturbed(small.ds, t)
    periods = []
    for per in ev.periods:  # the walk-forward training again, on the changed data
        q = train_period(per.k, per.start, per.end, pds, cfg, costs, params, tmp_path / "models")
        assert bytes(q.booster.save_raw("json")) == bytes(
            per.booster.save_raw("json")
        )  # before t: same model
        periods.append(q)
    starts = [p.start for p in periods]
    learned = [exit_model.LearnedExit(p.exit_model(params, costs, "interp")) for p in periods]
    from kaizen.models.exit_engine import eval_config

    run_rule("learned", PeriodExit("learned", starts, learned), periods, pds, eval_config(cfg), SYMBOLS,
             small.start, small.end, tmp_path / "runs")  # fmt: skip
    base = _exit_records(small.root / "out", "learned")
    pert = [
        r
        for r in LineageReader(tmp_path / "runs" / "lineage" / "learned").records()
        if isinstance(r, R.ExitRecord)
    ]
    t_ns = t * 1_000_000

    def key(r):
        vals = tuple(v if v == v else "nan" for v in [r.hold_value, *r.values])  # nan == nan here
        return (r.symbol, r.ts, r.exit, r.reason, r.bars_in_trade, vals)

    before = [key(r) for r in base if r.ts <= t_ns]
    assert len(before) > 50
    assert [key(r) for r in pert if r.ts <= t_ns] == before
    after_b = [key(r) for r in base if r.ts > t_ns]
    after_p = [key(r) for r in pert if r.ts > t_ns]
    assert after_b and after_b != after_p  # the perturbation did reach the later decisions


def test_venue_trades_by_hand():
    """Round trips from a trade log: an add, partial closes, a flip is not allowed to merge trades;
    net = realized - commissions + funding received, per unit of entry notional."""

    def fill(t, side, qty, price, fee, pnl, sym="BTCUSDT"):
        return {"symbol": sym, "side": side, "qty": qty, "price": price, "commission": fee, "realizedPnl": pnl,
                "time": t}  # fmt: skip

    log = [
        fill(1000, "BUY", 1.0, 100.0, 0.05, 0.0),
        fill(2000, "BUY", 1.0, 102.0, 0.05, 0.0),
        fill(3000, "SELL", 2.0, 105.0, 0.1, 8.0),
        fill(4000, "SELL", 0.5, 200.0, 0.05, 0.0, "ETHUSDT"),
        fill(6000, "BUY", 0.5, 190.0, 0.05, 5.0, "ETHUSDT"),
        fill(7000, "BUY", 1.0, 110.0, 0.05, 0.0),  # still open at the end
    ]
    funding = [
        {"symbol": "BTCUSDT", "time": 2500, "payment": -0.2},
        {"symbol": "ETHUSDT", "time": 5000, "payment": 0.1},
    ]
    vt = venue_trades(log, funding)
    assert len(vt) == 2 and vt.open_at_end == 1
    assert vt.symbol == ["BTCUSDT", "ETHUSDT"] and list(vt.side) == [1, -1]
    assert vt.notional[0] == pytest.approx(202.0) and vt.price_in[0] == pytest.approx(101.0)
    assert vt.net[0] == pytest.approx((8.0 - 0.2 - 0.2) / 202.0)
    assert vt.net[1] == pytest.approx((5.0 - 0.1 + 0.1) / 100.0)
    assert list(vt.t_out) == [3000, 6000]


@pytest.mark.slow
def test_cli_on_a_planted_market(tmp_path):
    """The CLI end to end (fixed JSON shape, every baseline, the deployed model) on a market whose
    signal decays at a known horizon (4 bars); the learned exit's share of the hindsight oracle's
    edge is reported and must be positive and beat the time exits at the horizon and twice it."""
    data = write_planted(tmp_path / "data", seed=41, n_bars=8000, event_rate=0.06, mu=0.003, reversal=0.002)
    cfg = tmp_path / "k.toml"
    cfg.write_text(
        'symbols = ["BTCUSDT", "ETHUSDT"]\n[models]\nembargo_bars = 12\n[exit]\nfolds = 2\ntrees = 60\nembargo_bars = 12\n'
    )
    out = tmp_path / "out"
    r = run_kaizen("exit", "eval", "--data", str(data), "--config", str(cfg), "--start", "2020-07-15",
                   "--out", str(out), timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    print(r.stdout)
    assert "exit eval [" in r.stderr and "engine path" in r.stdout
    table = json.loads((out / "exits.json").read_text())
    detail = json.loads((out / "exits_detail.json").read_text())
    assert set(table) == {"rules", "learned", "best_baseline", "deflated_sharpe"}
    names = set(baseline_names(4)) | {"learned", "oracle"}
    assert set(table["rules"]) == names and all(set(x) == KEYS for x in table["rules"].values())
    assert len({x["trades"] for x in table["rules"].values()}) == 1 and detail["same_entry_fills"]
    assert table["best_baseline"] in names - {"learned", "oracle"}
    assert {d["trials"] for d in table["deflated_sharpe"].values()} == {len(baseline_names(4)) + 10}
    ev = [ln.split(",") for ln in (data / "truth" / "events.csv").read_text().split()[1:]]
    events = {(sym, int(t) + H_MS, int(z)) for sym, t, z in ev}  # (symbol, entry fill time, side)
    on_event = np.mean([tuple(e) in events for e in detail["entry_fills"]])
    print(f"{len(detail['entry_fills'])} entries, {on_event:.0%} of them at a planted event on its side")
    share = detail["oracle_share"]
    print(f"oracle share: learned {share['learned']:.1%}, time_4 {share['time_4']:.1%}, time_8 {share['time_8']:.1%}, "
          f"best baseline {table['best_baseline']} {share[table['best_baseline']]:.1%}")  # fmt: skip
    assert share["learned"] > 0 and share["learned"] > max(share["time_4"], share["time_8"])
    m = exit_model.ExitModel.load(out / "exit_model", backend="interp")
    assert m.version == detail["deployed_model"]["version"]


def test_cli_errors(tmp_path):
    r = run_kaizen("exit", "eval", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr
    data = write_planted(tmp_path / "data", seed=1, n_bars=300)
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[exit]\nrule = "oracle"\n')
    r = run_kaizen("exit", "eval", "--data", str(data), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "hindsight" in r.stderr and "Traceback" not in r.stderr
    r = run_kaizen("exit", "eval", "--data", str(data), "--start", "2020-05-01", "--end", "2020-04-01",
                   "--out", str(tmp_path / "o"))  # fmt: skip
    assert r.returncode == 2 and "not after" in r.stderr
    r = run_kaizen("exit", "eval", "--help")
    assert r.returncode == 0 and "usage: kaizen exit eval" in r.stdout and "engine" in r.stdout
