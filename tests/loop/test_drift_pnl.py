"""The PnL drift channel: on the decisions the champion's rule trades, the gross return realized in
the trade's direction, standardized with the model's own out-of-fold trades (a fixed reference, no
live warm-up) and a CUSUM k sized to the edge those trades realized. Seeds here were never used for
tuning."""

from __future__ import annotations

import numpy as np

from kaizen.loop import drift
from kaizen.loop.drift import DriftMonitor
from kaizen.loop.loop import pnl_reference
from kaizen.models.edge import EdgeCalibration
from tests.loop.test_drift import Replay


def test_live_monitor_with_a_reference_equals_the_simulator():
    rng = np.random.default_rng(9301)
    horizon, streams, ref = 600, 30, (0.1, 1.3)
    x = rng.standard_t(4, (horizon, streams)) * 1.3 + 0.1 - np.linspace(0, 0.8, horizon)[:, None]
    hs = [3.0, 6.0]
    rl = drift.simulate_run_lengths(hs, k=0.1, horizon=horizon, streams=streams, sides="lower",
                                    sampler=Replay(x), chunk=71, reference=ref)  # fmt: skip
    for j, h in enumerate(hs):
        for i in range(streams):
            mon = DriftMonitor("r", channels={"pnl": "lower"}, thresholds={"pnl": h}, ks={"pnl": 0.1},
                               references={"pnl": ref})  # fmt: skip
            first = next((t + 1 for t, r in enumerate(x[:, i]) if mon.update(0.0, float(r), ts=t)), horizon + 1)
            assert first == rl[i, j]


def _oof(rng: np.random.Generator, n: int, edge_sd: float):
    """Out-of-fold rows: p around 0.5, gross forward return = slope (p - 0.5) + noise."""
    p = 0.5 + rng.normal(0, 0.05, n)
    gross = 0.05 * (p - 0.5) + rng.normal(0, edge_sd, n)
    return p, gross, EdgeCalibration(slope=0.05, p_mean=0.5, tstat=5.0, n=n)


def test_reference_k_is_half_the_realized_edge_in_sds():
    p, g, cal = _oof(np.random.default_rng(9302), 20_000, 0.01)
    res = pnl_reference(cal, p, g, round_trip=0.002)
    assert res is not None
    r, k, (mu, sd) = res
    e = 0.05 * (p - 0.5)
    traded = np.abs(e) > 0.002
    assert len(r) == traded.sum()
    assert np.array_equal(r, np.sign(e[traded]) * g[traded])
    # a calibrated model: its trades realize what it expected, on average
    assert abs(mu - np.abs(e[traded]).mean()) < 3 * sd / np.sqrt(len(r))
    assert abs(sd - 0.01) < 0.0005
    assert abs(k - 0.5 * mu / sd) < 1e-12
    # no usable edge (slope <= 0), too few traded rows, or trades that realized nothing: no channel
    assert pnl_reference(EdgeCalibration(slope=-0.01, p_mean=0.5), p, g, 0.002) is None
    assert pnl_reference(cal, p[:300], g[:300], 0.002) is None
    assert pnl_reference(cal, p, -np.sign(p - 0.5) * np.abs(g), 0.002) is None


def test_pnl_channel_is_quiet_while_the_edge_holds_and_alarms_when_it_is_gone():
    """A weak edge (about 0.23 residual sds per traded decision), the default ARL0 of 20,000. Measured
    on 30 other seeds: no alarm within 1,000 traded decisions in 29 of 30 with the edge intact;
    with it gone, alarms after 79 to 422 traded decisions (median ~190)."""
    rng = np.random.default_rng(9303)
    p, g, cal = _oof(rng, 40_000, 0.015)
    r, k, ref = pnl_reference(cal, p, g, round_trip=0.002)
    mon, cals = DriftMonitor.calibrated("signal", {"pnl": r}, arl0=20_000, ks={"pnl": k}, references={"pnl": ref},
                                        sides={"pnl": "lower"}, streams=200, seed=5)  # fmt: skip
    assert cals["pnl"].k == k and abs(cals["pnl"].arl_measured / 20_000 - 1) < 0.25

    def feed(edge_on: bool, traded: int, shrink: float = 1.0) -> int | None:
        n = 0
        while n < traded:
            e = shrink * 0.05 * rng.normal(0, 0.05)
            if abs(e) <= 0.002:
                continue
            n += 1
            s = np.sign(e)
            if mon.update(0.0, s * ((e if edge_on else 0.0) + rng.normal(0, 0.015)), ts=n, channel="pnl"):
                return n
        return None

    assert feed(True, 1_000) is None
    mon.reset()
    at = feed(False, 3_000)
    assert at is not None and at <= 1_000, at
    # the predictions shrink as the edge goes (what a break did to the loop's champion): still found
    mon.reset()
    at = feed(False, 3_000, shrink=0.5)
    assert at is not None and at <= 1_500, at


def test_a_channel_fed_part_of_the_decisions_gets_its_share_of_the_run_length():
    """ARL0 counts the role's decisions: the PnL channel, fed only the traded ones (a share f),
    is calibrated to f x ARL0 of its own updates, the same false-alarm rate in time."""
    r = np.random.default_rng(9304).standard_t(5, 5_000)
    _, cals = DriftMonitor.calibrated("signal", {"calibration": r, "pnl": r}, arl0=1_000, rates={"pnl": 0.25},
                                      streams=100, seed=3)  # fmt: skip
    assert cals["calibration"].arl0 == 2_000 and cals["pnl"].arl0 == 500
    assert cals["pnl"].threshold < cals["calibration"].threshold


def test_pnl_in_vol_units_is_one_series_across_calm_and_wild_regimes():
    """A signal whose edge scales with volatility (the synthetic market's, and a vol-targeted one's):
    in returns, the calm regime's trades read as a long shortfall against the pooled mean; in units
    of the bar's vol the two regimes are one series."""
    rng = np.random.default_rng(9305)
    n = 20_000
    vol = np.where((np.arange(n) // 2_000) % 2 == 0, 0.004, 0.010)  # regimes of 2,000 decisions
    p = 0.5 + rng.normal(0, 0.05, n)
    cal = EdgeCalibration(slope=0.05, p_mean=0.5, tstat=5.0, n=n)
    e = 0.05 * (p - 0.5)
    gross = np.sign(e) * 0.3 * vol + rng.normal(0, 1.0, n) * vol  # 0.3 sd of edge in every regime
    raw = pnl_reference(cal, p, gross, round_trip=0.0005)
    units = pnl_reference(cal, p, gross, round_trip=0.0005, vol=vol)
    assert raw is not None and units is not None
    traded = np.abs(e) > 0.0005
    assert np.allclose(units[0], np.sign(e[traded]) * gross[traded] / vol[traded])
    assert abs(units[1] - 0.15) < 0.02  # k: half the 0.3-sd edge
    # the calm regime's mean, standardized by the pooled reference: far below 0 in returns
    calm = (vol[traded] == 0.004)
    z_raw = (raw[0][calm] - raw[2][0]) / raw[2][1]
    z_units = (units[0][calm] - units[2][0]) / units[2][1]
    assert np.mean(z_raw) < -0.1 and abs(np.mean(z_units)) < 0.03
    # rows without a positive vol are left out
    vol2 = vol.copy()
    vol2[:100] = np.nan
    vol2[100:200] = 0.0
    assert len(pnl_reference(cal, p, gross, round_trip=0.0005, vol=vol2)[0]) == traded[200:].sum()
