"""`kaizen run` with `[strategy] name = "kaizen"`: the improvement loop on the wall clock, in a real
paper run against the embedded simulator (real ccxt client, real websockets, a real process). The
loop trains from stored history plus the bars the engine closes (non-blocking, in its executor's
process), shadows the candidate beside the champion (flat) and lets the gate decide; everything is
in the lineage and the registry, which lives in the state directory so a restart keeps it."""

from __future__ import annotations

import json

from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from kaizen.market.synth import SynthParams, generate, write_archive
from kaizen.venue.sim.simulator import START_EPOCH_MS
from tests.conftest import run_kaizen

HOUR_MS = 3_600_000


def _config(tmp_path, history, out, state) -> str:
    return f"""
symbols = ["BTCUSDT", "ETHUSDT"]
[sim]
seed = 5
speed = 600.0
[lineage]
dir = {json.dumps(str(out / "lineage"))}
[risk]
state_dir = {json.dumps(str(state))}
[strategy]
name = "kaizen"
bar_seconds = 60
[models]
interval = "1m"
horizon_bars = 4
embargo_bars = 4
[backtest]
train_trees = 30
train_meta_trees = 15
train_window_days = 5
[loop]
history_dir = {json.dumps(str(history))}
retrain_every = "20m"
shadow_hours = 0.25
shadow_looks = 1
gate_min_decisions = 10
"""


def test_kaizen_run_trains_shadows_and_gates_on_the_wall_clock(tmp_path):
    days = 3.0
    start = START_EPOCH_MS - int(days * 24 * HOUR_MS) - HOUR_MS  # history ends before the venue's clock
    ds, truth = generate(SynthParams(seed=4242, days=days, interval="1m", symbols=("BTCUSDT", "ETHUSDT"),
                                     start_ms=start))  # fmt: skip
    write_archive(ds, truth, tmp_path / "history")
    out, state = tmp_path / "run", tmp_path / "state"
    cfg = tmp_path / "loop.toml"
    cfg.write_text(_config(tmp_path, tmp_path / "history", out, state))
    res = run_kaizen("run", str(cfg), "--duration", "14", "--no-progress", timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "improvement loop: history from" in res.stdout + res.stderr
    recs = list(LineageReader(out / "lineage").records())
    retrains = [r for r in recs if isinstance(r, R.Retrain)]
    assert retrains, "the loop trained nothing"
    # trained on history + live bars, never on a bar after the training time
    assert all(r.data_end <= r.ts + 60 * 1_000_000_000 for r in retrains)
    assert retrains[0].data_start < START_EPOCH_MS * 1_000_000  # the stored history is in it
    shadow_preds = [r for r in recs if isinstance(r, R.Prediction) and r.shadow]
    assert shadow_preds, "no shadow predictions"
    comps = [r for r in recs if isinstance(r, R.ShadowComparison)]
    assert comps and comps[0].n >= 10 and comps[0].decision in ("promote", "retire")
    moves = [r for r in recs if isinstance(r, R.PointerMove)]
    assert any(m.action == "add_shadow" for m in moves)
    decisions = [r for r in recs if isinstance(r, R.Decision)]
    assert decisions and {d.strategy for d in decisions} == {"kaizen"}
    # the registry is in the state directory, its pointers on disk
    pointers = json.loads((state / "loop" / "registry" / "pointers.json").read_text())
    assert "signal" in json.dumps(pointers)
    assert run_kaizen("log", "verify", str(out / "lineage")).returncode == 0


def test_kaizen_strategy_without_history_is_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('symbols = ["BTCUSDT"]\n[strategy]\nname = "kaizen"\nbar_seconds = 60\n[models]\ninterval = "1m"\n')
    res = run_kaizen("run", str(cfg), "--duration", "1", "--no-progress", timeout=60)
    assert res.returncode == 2
    assert "loop.history_dir" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_history_past_the_live_clock_is_dropped_at_the_first_live_bar():
    """An archive that runs past the live clock (e.g. replayed against the simulator's 2024 epoch):
    stored bars from the first live bar on are dropped, so live bars are added after it."""
    from types import SimpleNamespace

    from kaizen.loop.live import LiveLoop
    from kaizen.market.barstore import BarStore

    ds, _ = generate(SynthParams(seed=7, days=2.0, interval="1h", symbols=("BTCUSDT",), start_ms=START_EPOCH_MS))
    store = BarStore(["BTCUSDT"], HOUR_MS, history=ds)
    clocks = []
    live = LiveLoop(SimpleNamespace(on_clock=lambda view, t: clocks.append(t)), store, HOUR_MS)
    t0 = START_EPOCH_MS + 24 * HOUR_MS  # the live clock starts a day into the stored history
    for i in range(3):
        bar = SimpleNamespace(symbol="BTCUSDT", open_time_ns=(t0 + i * HOUR_MS) * 1_000_000, open=1.0, high=1.0,
                              low=1.0, close=1.0, volume=1.0)  # fmt: skip
        live.on_bar_closed(bar, 1.0, 0.0)
    assert live.dropped == 24
    k = store.dataset().symbols["BTCUSDT"].klines
    assert len(k) == 24 + 3 and k.open_time[24] == t0 and float(k.close[-1]) == 1.0
    assert clocks == [t0 + HOUR_MS, t0 + 2 * HOUR_MS, t0 + 3 * HOUR_MS]
