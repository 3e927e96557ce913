"""The synthetic market: one model (kaizen.ext.marketmodel) for the simulator and the batch
generator, deterministic per seed, realistic by the stated parameters, with a real planted signal
whose regime mapping changes at the break. Seeds used here were not used to tune anything."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.market.data import load_dataset
from kaizen.market.synth import SYMBOLS, SynthParams, generate, read_truth, write_archive
from kaizen.venue.sim.model import REGIMES, MarketModel
from kaizen.venue.sim.spec import SPECS


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    p = SynthParams(seed=311, days=20, break_day=10)
    a = write_archive(*generate(p), tmp_path / "a")
    b = write_archive(*generate(p), tmp_path / "b")
    c = write_archive(*generate(msgspec.structs.replace(p, seed=312)), tmp_path / "c")
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert set(da) == set(dc) and da != dc
    assert "truth/regimes.csv" in da and "truth/signal.json" in da
    assert "futures/um/markPriceKlines/SOLUSDT/1h/SOLUSDT-1h.csv.gz" in da


def test_archive_reads_back_as_the_in_memory_dataset(tmp_path: Path) -> None:
    ds, truth = generate(SynthParams(seed=313, days=15))
    root = write_archive(ds, truth, tmp_path)
    back = load_dataset(root, list(SYMBOLS), "1h")
    assert back.report == []  # no gaps, no repairs
    for s in SYMBOLS:
        a, b = ds.symbols[s], back.symbols[s]
        for col in ("open_time", "open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(a.klines, col), getattr(b.klines, col)), (s, col)
        assert np.array_equal(a.funding, b.funding) and np.array_equal(a.mark_close, b.mark_close)
    t = read_truth(root)
    assert t is not None and set(t) == set(SYMBOLS)
    assert np.array_equal(t["ETHUSDT"][1], truth.regime["ETHUSDT"])
    assert np.array_equal(t["ETHUSDT"][0], ds.symbols["ETHUSDT"].klines.open_time)


def test_live_steps_and_batch_bars_are_the_same_path() -> None:
    """The simulator advances the kernel step by step; the generator runs whole bars: same math,
    same RNG stream, so the same seed and step size give the same prices and regimes."""
    model = MarketModel.synth(break_day=1.0)
    vols = [SPECS[s].annual_vol for s in SYMBOLS]
    prices = [SPECS[s].start_price for s in SYMBOLS]
    n, sub, dt = 48, 20, 1.0 / 20
    batch = model.process(vols, prices, seed=321)
    arr = [np.empty((4, n)) for _ in range(6)]
    reg, dirn = np.empty((4, n), np.int8), np.empty((4, n), np.int8)
    batch.run_bars(n, sub, dt, *arr, reg, dirn)
    live = model.process(vols, prices, seed=321)
    for b in range(n):
        for _ in range(sub):
            live.step(dt)
        for i in range(4):
            assert live.index(i) * (1 + live.premium(i)) == arr[3][i, b]
            assert live.regime(i) == reg[i, b]
    assert live.after_break and live.t_h == pytest.approx(48.0)


def test_simulator_runs_the_planted_model_with_a_break() -> None:
    from kaizen.venue.sim import Simulator

    sim = Simulator(seed=5, model=MarketModel.synth(break_day=0.5), speed=600.0)
    assert sim.process is not None and not sim.process.after_break
    for _ in range(800):  # 800 ticks of 60 sim seconds: past the break at 12 h
        sim.step_once()
    assert sim.process.after_break
    st = sim.state()["markets"]["BTCUSDT"]
    assert st["regime"] in REGIMES and st["mark"] > 0
    # the default market is the demo model (fast regimes, no planted signal)
    assert Simulator(seed=5).model.name == "demo"


def _realized(days: int, seed: int, model: MarketModel | None = None):
    return generate(SynthParams(seed=seed, days=days, model=model))


def test_stated_realism_holds_on_the_data() -> None:
    """Mean dwell >= 3 days, high-vol volatility <= 3x the low one, trend drift per bar far under
    the bar's volatility, regimes co-moving across symbols - measured, not just declared."""
    ds, truth = _realized(365, 331)
    info = truth.info["model"]
    assert info["derived"]["mean_dwell_h"] >= 72 and info["derived"]["high_over_low_vol"] <= 3.0
    switches = sum(int((np.diff(r) != 0).sum()) for r in truth.regime.values())
    assert 365 * 4 / switches >= 3.0  # measured mean dwell in days
    ratios, drifts = [], []
    for s in SYMBOLS:
        r = np.diff(np.log(ds.symbols[s].klines.close))
        reg, d = truth.regime[s][1:], truth.direction[s][1:]
        sd = {k: r[reg == k].std() for k in range(4)}
        ratios += [sd[1] / sd[0], sd[3] / sd[2]]
        for k in (0, 1):  # trends: mean return in the trend's direction over the bar's sd
            m = reg == k
            drifts.append((r[m] * d[m]).mean() / sd[k])
    assert all(2.0 < x < 3.0 for x in ratios), ratios
    assert all(-0.05 < x < 0.2 for x in drifts) and np.mean(drifts) > 0, drifts
    # co-movement: symbols share the regime far more often than independent chains would (1/4)
    same = np.mean([(truth.regime["BTCUSDT"] == truth.regime[s]).mean() for s in SYMBOLS[1:]])
    assert same > 0.5


def test_planted_signal_is_real_and_its_mapping_changes_at_the_break() -> None:
    """With the regime shapes switched off (no drift, no range pull, no sub-bar feedback) what is
    left to predict is the planted signal: trading in its direction earns its stated size before
    the break, in the regimes the mapping names, and the mapping changes at the break."""
    base = MarketModel.synth()
    r = msgspec.structs.replace(
        base.regime, trend_drift=0.0, range_half_life_h=1e9, fast_gain_trend=0.0, fast_gain_range=0.0
    )
    days, brk = 1460, 730
    model = msgspec.structs.replace(base, regime=r, break_h=24.0 * brk)
    ds, truth = generate(SynthParams(seed=337, days=days, model=model))
    s = model.signal
    h = 4
    decay = s.tau_h * (1 - math.exp(-h / s.tau_h))  # hours of drift a signal value is worth over h
    phases = (
        ("before", s.before, slice(72, brk * 24 - h)),
        ("after", s.after, slice(brk * 24 + 72, days * 24 - h)),
    )
    pooled = []
    for phase, mapping, rows in phases:
        for k, kind in enumerate(mapping):
            edge, theory = [], []
            for sym in SYMBOLS:
                c = np.log(ds.symbols[sym].klines.close)
                sig, reg = truth.signal[sym], truth.regime[sym]
                sigma = SPECS[sym].annual_vol / math.sqrt(8760) * model.regime.shapes()[k, 0]
                idx = np.arange(len(c))[rows]
                idx = idx[reg[idx] == k]
                if kind == "none":
                    assert np.all(sig[idx] == 0.0), (phase, REGIMES[k])
                    continue
                idx = idx[np.abs(sig[idx]) >= 0.5 * s.strength]  # the signal is at least half a sd
                edge.append((c[idx + h] - c[idx]) / sigma * np.sign(sig[idx]))
                theory.append(np.abs(sig[idx]) * decay)
            if kind == "none":
                continue
            e, th = np.concatenate(edge), np.concatenate(theory)
            assert len(e) > 2000, (phase, REGIMES[k], len(e))
            se = e.std() / math.sqrt(len(e) / h)  # overlapping h-bar windows: ~n / h independent
            tol = max(3 * se, 0.25 * th.mean())
            assert abs(e.mean() - th.mean()) < tol, (phase, REGIMES[k], e.mean(), th.mean())
            pooled.append(e)
    e = np.concatenate(pooled)
    assert e.mean() > 6 * e.std() / math.sqrt(len(e) / h)  # real: far from zero


def test_signal_json_states_the_mapping_break_and_exploitability() -> None:
    _, truth = generate(SynthParams(seed=341, days=30, break_day=12))
    sig = truth.info["signal"]
    assert sig["mapping_before"] == dict(zip(REGIMES, MarketModel.synth().signal.before, strict=True))
    assert sig["mapping_after"] == dict(zip(REGIMES, MarketModel.synth().signal.after, strict=True))
    assert sig["break_time_ms"] == truth.open_time[0] + 12 * 86_400_000
    edge = truth.info["edge"]
    # exploitable only in some regimes: never where the mapping says none, not for BTC in low vol
    for sym in SYMBOLS:
        for phase, mapping in (("before", sig["mapping_before"]), ("after", sig["mapping_after"])):
            ex = edge["exploitable"][sym][phase]
            assert all(mapping[r] != "none" for r in ex)
    assert "trend_low" not in edge["exploitable"]["BTCUSDT"]["before"]
    assert "trend_high" in edge["exploitable"]["BTCUSDT"]["before"]


def test_bad_parameters_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="break-day"):
        generate(SynthParams(seed=1, days=10, break_day=20))
    with pytest.raises(DataError, match="symbols"):
        generate(SynthParams(seed=1, days=10, symbols=["DOGEUSDT"]))
    with pytest.raises(DataError, match="interval"):
        generate(SynthParams(seed=1, days=10, interval="7m"))


def test_kaizen_sim_serves_the_planted_market_with_a_break() -> None:
    """`kaizen sim --break-day B` (a real process) runs the planted model and crosses the break in
    sim time; a bad value is a one-line error."""
    import json as _json
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import REPO, run_kaizen

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "kaizen", "sim", "--seed", "3", "--speed", "600", "--break-day", "0.002"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        rest = dict(p.split("=", 1) for p in proc.stdout.readline().split()[1:])["rest"]
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(rest + "/_sim/state", timeout=10) as r:
                model = _json.load(r)["model"]
            assert model["name"] == "synth" and model["breakHours"] == pytest.approx(0.048)
            if model["afterBreak"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert model["afterBreak"] and model["simHours"] >= 0.048
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    r = run_kaizen("sim", "--market", "demo", "--break-day", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no planted signal" in r.stderr
