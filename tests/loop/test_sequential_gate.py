"""Group-sequential looks at one candidate (GateConfig.looks, `[loop] shadow_looks`): up to four
looks, one per shadow period, each at Pocock's level. Over >= 200 zero-edge candidates the chance
that ANY look promotes stays within the test level, where testing every look at alpha does not;
and a weak real edge that one period cannot show is promoted within four.

Measured (dm test, min_dsr 0): zero edge promoted 13/240 and 16/240 with Pocock looks against 33/240
each when every look tests at alpha; edge 0.12: 60/240 after one period, 112/240 within four.

Seeds 8101-8103 were never used for tuning (the return scenarios are tests/loop/returns.py's)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from kaizen.loop.gate import KEEP_WAITING, PROMOTE, RETIRE, GateConfig, ValidationGate, pocock_alpha
from tests.loop.returns import scenario

TRIALS = 240
LOOKS = 4
PERIOD = 300  # decisions per shadow period
LIMIT = int(sps.binom.ppf(0.999, TRIALS, 0.05))


def _run(gate: ValidationGate, champ: np.ndarray, cand: np.ndarray) -> tuple[str, int]:
    """The loop's procedure on one candidate: a look at the end of each period until a decision."""
    for look in range(1, gate.config.looks + 1):
        n = look * PERIOD
        r = gate.evaluate(champ[:n], cand[:n], n_trials=1, candidate="c", look=look)
        if r.decision != KEEP_WAITING:
            return r.decision, look
    raise AssertionError("the last look must decide")


def test_pocock_levels():
    assert pocock_alpha(0.05, 1) == 0.05
    a2, a4 = pocock_alpha(0.05, 2), pocock_alpha(0.05, 4)
    assert 0.028 < a2 < 0.032 and 0.017 < a4 < 0.021 and a4 < a2
    # the level is what makes the overall rate alpha: max of the 4 correlated looks' z
    rng = np.random.default_rng(3)
    z = np.cumsum(rng.standard_normal((200_000, 4)), axis=1) / np.sqrt(np.arange(1, 5))
    assert abs((z.max(axis=1) > sps.norm.isf(a4)).mean() - 0.05) < 0.003


@pytest.mark.parametrize("seed", [8101, 8102])
def test_sequential_looks_hold_the_level_on_zero_edge(seed):
    champ, cand = scenario(np.random.default_rng(seed), LOOKS * PERIOD, TRIALS, horizon=4)
    seq = ValidationGate(GateConfig(test="dm", min_dsr=0.0, looks=LOOKS))
    naive = ValidationGate(GateConfig(test="dm", min_dsr=0.0))
    outcomes = [_run(seq, champ[:, i], cand[:, i]) for i in range(TRIALS)]
    promoted = sum(d == PROMOTE for d, _ in outcomes)
    # the same four looks, each at alpha: promote at the first look with p < alpha
    naive_promoted = sum(
        any(naive.evaluate(champ[: k * PERIOD, i], cand[: k * PERIOD, i], n_trials=1).checks["p_value"]
            for k in range(1, LOOKS + 1))
        for i in range(TRIALS)
    )  # fmt: skip
    assert promoted <= LIMIT, f"{promoted}/{TRIALS} zero-edge candidates promoted (limit {LIMIT})"
    assert naive_promoted > promoted  # the inflation the Pocock level removes
    # futility: a candidate behind the champion at an interim look is retired early
    early = sum(d == RETIRE and look < LOOKS for d, look in outcomes)
    assert early > TRIALS // 4


def test_a_weak_edge_one_period_cannot_show_is_promoted_within_four():
    champ, cand = scenario(np.random.default_rng(8103), LOOKS * PERIOD, TRIALS, horizon=4, edge=0.12)
    one = ValidationGate(GateConfig(test="dm", min_dsr=0.0))
    seq = ValidationGate(GateConfig(test="dm", min_dsr=0.0, looks=LOOKS))
    single = sum(one.evaluate(champ[:PERIOD, i], cand[:PERIOD, i], n_trials=1).decision == PROMOTE for i in range(TRIALS))
    outcomes = [_run(seq, champ[:, i], cand[:, i]) for i in range(TRIALS)]
    within = sum(d == PROMOTE for d, _ in outcomes)
    # measured: 60 of 240 promoted after one period, 112 within four
    assert within > 1.5 * single, (single, within)
