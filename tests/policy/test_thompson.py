"""ThompsonPortfolio's API and exact posterior arithmetic, for the Cython module and the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaizen.ext import thompson as cy
from kaizen.policy import ThompsonPortfolio
from kaizen.policy import reference as ref


def test_public_api_is_the_cython_class():
    assert ThompsonPortfolio is cy.ThompsonPortfolio
    p = ThompsonPortfolio(4, discount=0.99, seed=0)
    i = p.choose()
    assert 0 <= i < 4
    p.update(i, 12.5, weight=1.0)
    pb = p.prob_best(n_samples=1000)
    assert len(pb) == 4 and math.isclose(float(np.sum(pb)), 1.0)
    p.retire(1)
    assert p.add() == 4


def test_normal_gamma_posterior_is_the_closed_form(Portfolio):
    """gamma = 1: the posterior after weighted rewards equals the textbook Normal–Gamma update."""
    m0, k0, a0, b0 = 3.0, 2.0, 1.5, 5000.0
    p = Portfolio(2, 1.0, 9010, mean=m0, kappa=k0, alpha=a0, beta=b0)
    g = np.random.default_rng(9010)
    x, w = g.normal(10, 80, 200), g.uniform(0.1, 2.0, 200)
    for xi, wi in zip(x, w, strict=True):
        p.update(1, float(xi), float(wi))
    n = w.sum()
    xbar = (w * x).sum() / n
    s = (w * (x - xbar) ** 2).sum()
    post = p.posterior(1)
    assert post["kappa"] == pytest.approx(k0 + n, rel=1e-12)
    assert post["mean"] == pytest.approx((k0 * m0 + n * xbar) / (k0 + n), rel=1e-12)
    assert post["alpha"] == pytest.approx(a0 + n / 2, rel=1e-12)
    assert post["beta"] == pytest.approx(b0 + s / 2 + k0 * n * (xbar - m0) ** 2 / (2 * (k0 + n)), rel=1e-10)
    untouched = p.posterior(0)
    assert (untouched["mean"], untouched["kappa"], untouched["alpha"], untouched["beta"]) == (m0, k0, a0, b0)


def test_discount_shrinks_every_arm_toward_its_prior_once_per_decision(Portfolio):
    """Discounted TS (Raj & Kalyani 2017): per decision every arm's data statistics (weighted count,
    sum of squared deviations) are multiplied by gamma, the mean estimate kept, then the new
    rewards added; several updates within one decision are discounted once."""
    gam, m0, k0, a0, b0 = 0.9, 2.0, 1.5, 1.0, 100.0
    p = Portfolio(3, gam, 9011, mean=m0, kappa=k0, alpha=a0, beta=b0)
    p.choose()
    p.update(0, 10.0)
    p.update(1, -4.0)
    p.update(1, 6.0, 0.5)  # same decision: discounted once, not per update
    before = [p.posterior(i) for i in range(3)]
    assert before[1]["n_eff"] == 1.5
    p.choose()
    p.choose()  # two decisions without rewards
    p.update(2, 1.0)  # applies the pending discount gamma^2
    after = [p.posterior(i) for i in range(3)]
    g2 = gam**2
    for i in (0, 1):
        n, k, m, b = before[i]["n_eff"], before[i]["kappa"], before[i]["mean"], before[i]["beta"]
        xbar = (m * k - k0 * m0) / n
        m2 = 2 * (b - b0) - k0 * n * (xbar - m0) ** 2 / (k0 + n)
        nd = g2 * n
        assert after[i]["n_eff"] == pytest.approx(nd, rel=1e-12)
        assert after[i]["kappa"] - k0 == pytest.approx(g2 * (k - k0), rel=1e-12)
        assert after[i]["alpha"] - a0 == pytest.approx(g2 * (before[i]["alpha"] - a0), rel=1e-12)
        assert after[i]["mean"] == pytest.approx((k0 * m0 + nd * xbar) / (k0 + nd), rel=1e-12)
        assert after[i]["beta"] == pytest.approx(
            b0 + g2 * m2 / 2 + k0 * nd * (xbar - m0) ** 2 / (2 * (k0 + nd))
        )
    assert after[2]["n_eff"] == 1.0  # added after the discount
    # The effective sample saturates at w / (1 - gamma).
    q = Portfolio(1, gam, 9012)
    for _ in range(400):
        q.choose()
        q.update(0, 1.0)
    assert q.posterior(0)["n_eff"] == pytest.approx(1 / (1 - gam), rel=1e-9)


def test_beta_posterior_and_discount(Portfolio):
    p = Portfolio(2, 0.5, 9013, kind="beta", alpha=2.0, beta=3.0)
    p.choose()
    p.update(0, 1.0)
    p.update(0, 0.0, 2.0)
    p.update(0, 0.25, 4.0)
    post = p.posterior(0)
    assert (post["alpha"], post["beta"]) == (2.0 + 1.0 + 1.0, 3.0 + 2.0 + 3.0)
    p.choose()
    p.update(1, 1.0)
    post = p.posterior(0)
    assert post["alpha"] == pytest.approx(2.0 + 0.5 * 2.0) and post["beta"] == pytest.approx(3.0 + 0.5 * 5.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        p.update(0, 1.5)


def test_weighted_update_is_fractional_evidence(Portfolio):
    a, b = Portfolio(1, 1.0, 9014), Portfolio(1, 1.0, 9014)
    a.update(0, 7.0, 2.0)
    b.update(0, 7.0)
    b.update(0, 7.0)
    pa, pb = a.posterior(0), b.posterior(0)
    for k in ("mean", "kappa", "alpha", "beta"):
        assert pa[k] == pytest.approx(pb[k], rel=1e-12)
    assert a.update(0, 5.0, 0.0) is False  # weight 0: no evidence


def test_flat_is_a_fixed_zero_never_updated(Portfolio):
    p = Portfolio(3, 0.99, 9015, flat=True)
    assert p.is_flat(0) and not p.is_flat(1)
    assert p.update(0, 1e6) is False
    assert p.posterior(0)["mean"] == 0.0 and p.draw(0) == 0.0
    with pytest.raises(ValueError, match="flat"):
        p.retire(0)
    b = Portfolio(2, 0.99, 9015, kind="beta", flat=True)
    assert b.draw(0) == 0.5


def test_retire_and_add(Portfolio):
    p = Portfolio(3, 0.99, 9016)
    assert p.retire(1) is True and p.retire(1) is False
    assert p.n_active == 2 and p.n_variants == 3
    assert all(p.choose() != 1 for _ in range(200))
    assert p.update(1, 5.0) is False  # a late reward for a retired variant is ignored
    j = p.add(mean=500.0, kappa=100.0)
    assert j == 3 and p.n_variants == 4 and p.posterior(3)["mean"] == 500.0
    pb = p.prob_best(2000)
    assert pb[1] == 0.0 and math.isclose(float(pb.sum()), 1.0) and pb[3] > 0.9
    p.retire(0)
    p.retire(2)
    p.retire(3)
    with pytest.raises(ValueError, match="no active"):
        p.choose()


def test_prob_best_has_its_own_stream(Portfolio):
    a, b = Portfolio(4, 0.99, 9017), Portfolio(4, 0.99, 9017)
    x1 = a.prob_best(500)
    assert np.array_equal(x1, a.prob_best(500))  # a function of the state
    assert [a.choose() for _ in range(50)] == [b.choose() for _ in range(50)]  # choices unaffected


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda p: p.update(5, 1.0), IndexError),
        (lambda p: p.update(-1, 1.0), IndexError),
        (lambda p: p.update(0, math.nan), ValueError),
        (lambda p: p.update(0, math.inf), ValueError),
        (lambda p: p.update(0, 1.0, -0.5), ValueError),
        (lambda p: p.update(0, 1.0, math.nan), ValueError),
        (lambda p: p.prob_best(0), ValueError),
        (lambda p: p.add(kappa=0.0), ValueError),
        (lambda p: p.add(alpha=-1.0), ValueError),
        (lambda p: p.posterior(3), IndexError),
    ],
)
def test_bad_input_raises_and_leaves_state_alone(Portfolio, call, exc):
    p = Portfolio(3, 0.99, 9018)
    state = p.rng_state
    with pytest.raises(exc):
        call(p)
    assert p.rng_state == state and p.t == 0 and p.n_variants == 3


@pytest.mark.parametrize(
    "kw",
    [
        {"discount": 0.0},
        {"discount": 1.5},
        {"n_variants": 0},
        {"kind": "ucb"},
        {"kappa": 0.0},
        {"alpha": 0.0},
        {"beta": -1.0},
        {"scale": 0.0},
        {"seed": -1},
    ],  # fmt: skip
)
def test_bad_construction(Portfolio, kw):
    args = {"n_variants": 3, "discount": 0.99, "seed": 0, **kw}
    with pytest.raises((ValueError, TypeError)):
        Portfolio(**args)


@pytest.mark.parametrize("kind", ["normal_gamma", "beta"])
def test_cython_and_reference_make_identical_choices(kind):
    """Same seed, same rewards: the same choices, draws, posteriors and prob_best, bit for bit —
    through discounting, shadow updates, retirement and entry."""
    a = cy.ThompsonPortfolio(6, 0.97, 9019, kind=kind, flat=True)
    b = ref.ThompsonPortfolio(6, 0.97, 9019, kind=kind, flat=True)
    g = np.random.default_rng(9019)
    means = np.linspace(-30, 40, 7) if kind == "normal_gamma" else np.linspace(0.2, 0.7, 7)
    for t in range(1500):
        i, j = a.choose(), b.choose()
        assert i == j and a.last_draw == b.last_draw
        r = means[i] + 100 * g.standard_normal() if kind == "normal_gamma" else float(g.random() < means[i])
        a.update(i, r)
        b.update(j, r)
        if t % 5 == 0:
            k = (i + 1) % a.n_variants
            a.update(k, r * 0.5 if kind == "normal_gamma" else r, 0.3)
            b.update(k, r * 0.5 if kind == "normal_gamma" else r, 0.3)
        if t == 700:
            assert a.retire(3) and b.retire(3)
            assert a.add(alpha=2.0) == b.add(alpha=2.0) == 6
    assert a.rng_state == b.rng_state
    assert a.prob_best(300).tobytes() == b.prob_best(300).tobytes()
    for i in range(7):
        assert a.posterior(i) == b.posterior(i)
