"""Drift monitor: calibrated false-alarm rate, detection delay, and the live monitor equal to the
simulator it is calibrated with. Seeds 1-2 were used while building the calibration (bench); the
seeds here were not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaizen.config import LineageConfig, LoopConfig
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.writer import LineageWriter
from kaizen.loop import drift
from kaizen.loop.drift import DriftMonitor


class Replay(drift.Sampler):
    """Hands out the columns of a fixed matrix, in order: the same residuals the live monitor gets."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.t = x, 0

    def draw(self, rng, steps, streams):
        out = self.x[self.t : self.t + steps, :streams]
        self.t += steps
        return out.copy()


def _first_alarms(mon: DriftMonitor, x: np.ndarray, warmup: int) -> int:
    for t, r in enumerate(x):
        if mon.update(0.0, float(r), ts=t) is not None:
            return t - warmup + 1
    return len(x) - warmup + 1


def test_live_monitor_equals_the_simulator():
    """Same residuals, same threshold: the first alarm of the live DriftMonitor (scalar CUSUM) is
    the run length the vectorised simulator (Lindley form) reports, for each side."""
    rng = np.random.default_rng(9001)
    warmup, horizon, streams = 50, 700, 40
    x = rng.standard_t(3, (warmup + horizon, streams)) + np.linspace(0, 0.4, warmup + horizon)[:, None]
    for sides in ("both", "upper", "lower"):
        hs = [2.0, 4.0, 6.0]
        rl = drift.simulate_run_lengths(
            hs, warmup=warmup, horizon=horizon, streams=streams, sides=sides, sampler=Replay(x), chunk=97
        )
        for j, h in enumerate(hs):
            live = [
                _first_alarms(
                    DriftMonitor("r", warmup=warmup, channels={"c": sides}, thresholds={"c": h}),
                    x[:, i],
                    warmup,
                )
                for i in range(streams)
            ]
            assert live == list(rl[:, j]), (sides, h)
        assert (rl[:, 0] <= rl[:, 1]).all() and (rl[:, 1] <= rl[:, 2]).all()


def test_calibrated_false_alarm_rate_matches_its_target():
    """Calibrate h for ARL0 = 400 on one seed; measure the ARL at h on fresh streams: within three
    combined standard errors of the target."""
    cal = drift.calibrate(400, warmup=100, streams=1500, seed=9101)
    rl = drift.simulate_run_lengths([cal.threshold], warmup=100, streams=3000, horizon=1600, seed=9102)
    arl, se, alarms = drift.arl_estimate(rl[:, 0], 1600)
    tol = 3 * math.hypot(se, cal.arl_se)
    print(f"ARL0 400: h={cal.threshold:.3f}, measured ARL {arl:.0f} +- {se:.0f} ({alarms} alarms)")
    assert abs(arl - 400) <= tol
    assert abs(cal.arl_measured - 400) <= 3 * math.hypot(cal.arl_se, se)
    # Siegmund (known parameters) is only the starting point; the warm-up estimate moves h
    assert 3.0 < cal.threshold < 7.0


def test_no_alarm_in_n_decisions_with_the_expected_probability():
    """Stable stream, ARL0 2000, N = 300 decisions after a 100-decision warm-up: the live monitor's
    share of alarm-free streams matches P(RL > N) from an independent simulation (binomial, 3 sd)."""
    warmup, n, streams = 100, 300, 300
    cal = drift.calibrate(2000, warmup=warmup, seed=9201, validate=False)
    ref = drift.simulate_run_lengths([cal.threshold], warmup=warmup, streams=4000, horizon=n, seed=9202)
    p = float(np.mean(ref[:, 0] > n))
    rng = np.random.default_rng(9203)
    quiet = 0
    for _ in range(streams):
        mon = DriftMonitor("r", arl0=2000, warmup=warmup, thresholds={"calibration": cal.threshold})
        x = rng.standard_normal(warmup + n) * 0.3 + 0.1  # any location and scale: standardized away
        quiet += all(mon.update(0.0, float(v), ts=0) is None for v in x)
    sd = math.sqrt(p * (1 - p) / streams + p * (1 - p) / 4000)
    print(
        f"no alarm in {n}: live {quiet / streams:.3f}, expected {p:.3f} (exp(-N/ARL0) = {math.exp(-n / 2000):.3f})"
    )
    assert abs(quiet / streams - p) <= 3 * sd
    # Not geometric: the warm-up estimate makes run lengths a mixture (a stream whose warm-up sd came
    # out low alarms early, one whose sd came out high almost never), so at the same mean the chance
    # of an early false alarm is higher than exp(-N / ARL0) suggests. The loop's "no rollback in N"
    # claims must use this simulated survival, not the formula.
    assert p < math.exp(-n / 2000)


def test_detection_delay_for_a_one_sd_shift():
    """ARL0 2000: a shift of 1 warm-up sd in the residual mean is detected after a mean of
    ~(h + 1.17) / (1 - k) decisions; a detector that always fires has delay 1 but ARL0 1, one
    that never fires has ARL0 and delay infinite."""
    cal = drift.calibrate(2000, seed=9301, validate=False)
    rl = drift.simulate_run_lengths([cal.threshold], streams=2000, horizon=2000, seed=9302, shift=1.0)
    delay = float(rl[:, 0].mean())
    print(
        f"h={cal.threshold:.2f}: delay for a 1-sd shift {delay:.1f} decisions "
        f"(p90 {np.percentile(rl[:, 0], 90):.0f}); always-fires: delay 1, ARL0 1; never-fires: inf, inf"
    )
    assert (rl[:, 0] <= 2000).all()
    assert 8 < delay < 20
    # the live monitor sees the same delay (shift after 300 quiet decisions: conditional delay)
    rng = np.random.default_rng(9303)
    delays = []
    for _ in range(150):
        mon = DriftMonitor("r", warmup=200, thresholds={"calibration": cal.threshold})
        x = rng.standard_normal(200 + 300 + 200)
        x[500:] += 1.0
        first = [t for t, v in enumerate(x) if mon.update(0.0, float(v), ts=t) is not None]
        after = [t for t in first if t >= 500]
        delays.append(after[0] - 499 if after else 10_000)
    print(f"live monitor, shift after 300 quiet decisions: mean delay {np.mean(delays):.1f}")
    assert np.mean(delays) < 25


def test_bootstrap_calibration_restores_the_target_on_dependent_residuals():
    """Residuals with fat tails and autocorrelation (overlapping outcomes): a threshold calibrated on
    Gaussian data false-alarms far more often than its ARL0 says; calibrating on a stationary
    bootstrap of the residuals themselves holds the target."""
    rng = np.random.default_rng(9401)
    e = rng.standard_t(4, 6004)
    resid = e[3:] + e[2:-1] + e[1:-2] + e[:-3]  # 4-bar overlapping sum: lag-1 autocorrelation 0.75
    gauss = drift.calibrate(500, warmup=100, seed=9402, validate=False)
    mon, cals = DriftMonitor.calibrated(
        "signal", {"pnl": resid}, arl0=500, warmup=100, seed=9403, streams=800
    )
    boot = cals["pnl"]
    assert mon.threshold("pnl") == boot.threshold and boot.source.startswith("bootstrap")
    sampler = drift.StationaryBootstrapSampler(resid)
    rl = drift.simulate_run_lengths(
        [gauss.threshold], warmup=100, streams=800, horizon=2000, seed=9404, sampler=sampler
    )
    arl_g, _, _ = drift.arl_estimate(rl[:, 0], 2000)
    print(
        f"ARL0 500 on dependent residuals: Gaussian h={gauss.threshold:.2f} gives ARL {arl_g:.0f}; "
        f"bootstrap h={boot.threshold:.2f} gives {boot.arl_measured:.0f} +- {boot.arl_se:.0f} ({boot.source})"
    )
    assert arl_g < 250
    assert boot.threshold > gauss.threshold
    assert abs(boot.arl_measured - 500) <= 3 * boot.arl_se + 0.05 * 500


def test_monitor_api(tmp_path):
    mon = DriftMonitor(
        "signal",
        arl0=1000,
        warmup=20,
        channels={"calibration": "both", "pnl": "lower"},
        thresholds={"calibration": 4.0, "pnl": 3.0},
        model="abc",
    )
    with pytest.raises(ValueError, match="name the channel"):
        mon.update(0.5, 1.0, ts=1)
    rng = np.random.default_rng(9501)
    for i in range(20):
        assert mon.update(0.5, float(rng.random() < 0.5), ts=i, channel="calibration", scale=0.5) is None
        assert mon.update(0.0, float(rng.standard_normal()), ts=i, channel="pnl") is None
    # non-finite input is ignored
    assert mon.update(float("nan"), 1.0, ts=0, channel="pnl") is None
    assert mon.update(0.0, 1.0, ts=0, channel="pnl", scale=0.0) is None
    # PnL far below expectation: the lower-sided channel alarms, naming itself
    alarm = None
    for i in range(50):
        alarm = alarm or mon.update(0.0, -3.0, ts=100 + i, channel="pnl", parents=[7])
    assert alarm is not None and alarm.channel == "pnl" and alarm.direction == "down"
    assert (
        alarm.role == "signal" and alarm.model == "abc" and alarm.threshold == 3.0 and alarm.statistic > 3.0
    )
    assert alarm.parents == [7] and alarm.arl0 == 1000 and {"warmup_mean", "warmup_sd"} <= set(alarm.stats)
    # far ABOVE expectation never alarms a lower-sided channel
    mon.reset(model="def")
    assert mon.model == "def"
    for i in range(20):
        mon.update(0.0, float(rng.standard_normal()), ts=i, channel="pnl")
    assert all(mon.update(0.0, 5.0, ts=i, channel="pnl") is None for i in range(100))
    with LineageWriter(tmp_path, LineageConfig(fsync="never")) as w:
        w.append(alarm)
    assert list(LineageReader(tmp_path).records()) == [alarm]


def test_from_config_uses_the_loop_section():
    cfg = LoopConfig(drift_arl0=800, drift_warmup=50, drift_threshold=5.5)
    mon = DriftMonitor.from_config("exit", cfg)
    assert mon.arl0 == 800 and mon.warmup == 50 and mon.threshold("calibration") == 5.5
    auto = DriftMonitor.from_config(
        "exit", LoopConfig(drift_arl0=800, drift_warmup=50), channels={"a": "both", "b": "both"}
    )
    # two channels: each calibrated at ARL0 x 2, so the role's rate stays <= 1/ARL0
    assert auto.threshold("a") == pytest.approx(drift.gaussian_threshold(1600.0, 0.5, 50, 4.0, "both"))
    assert auto.threshold("a") > drift.gaussian_threshold(800.0, 0.5, 50, 4.0, "both")
