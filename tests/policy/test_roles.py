"""Roles, variants, the [policy] config section and RolePortfolio (choice, updates, retirement,
entry, risk caps, lineage records)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from kaizen import config
from kaizen.errors import ConfigError
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import BanditChoice, BanditUpdate, VariantChange
from kaizen.lineage.writer import LineageWriter
from kaizen.policy import FLAT, Role, RolePortfolio, Variant, build_roles, role_seed
from kaizen.policy import reference as ref

CFG = b"""
symbols = ["BTCUSDT", "ETHUSDT"]
[policy]
discount = 0.99
retire_threshold = 0.02
retire_window = 200
min_sample = 30
check_every = 10
regimes = ["trend_high", "range_low"]
[[policy.styles]]
name = "trend"
[[policy.styles.variants]]
id = "good"
horizon_bars = 4
features = ["ret_1", "vol_rv_24"]
params = {max_depth = 4, eta = 0.05}
[[policy.styles.variants]]
id = "bad"
[[policy.styles.variants]]
id = "meh"
[[policy.styles]]
name = "reversion"
[[policy.styles.variants]]
id = "rev_a"
[[policy.roles]]
symbol = "ETHUSDT"
regime = "range_low"
style = "trend"
variants = ["good"]
"""


def _ids():
    n = iter(range(1, 10**9))
    return lambda: next(n)


def test_config_declares_styles_variants_and_roles():
    cfg = config.loads(CFG)
    roles = build_roles(cfg)
    assert len(roles) == 2 * 2 * 2
    btc = roles[Role("BTCUSDT", "trend_high", "trend")]
    assert [v.id for v in btc] == [FLAT, "good", "bad", "meh"]
    assert btc[1].features == ("ret_1", "vol_rv_24") and btc[1].params == {"max_depth": 4, "eta": 0.05}
    assert [v.id for v in roles[Role("ETHUSDT", "range_low", "trend")]] == [FLAT, "good"]
    assert [v.id for v in roles[Role("ETHUSDT", "range_low", "reversion")]] == [FLAT, "rev_a"]
    assert Role("BTCUSDT", "trend_high", "trend").key == "BTCUSDT/trend_high/trend"


@pytest.mark.parametrize(
    "text, needle",
    [
        (b"[policy]\ndiscount = 1.01", "policy.discount"),
        (b"[policy]\ndiscount = 0", "policy.discount"),
        (b"[policy]\nshadow_weight = 2", "policy.shadow_weight"),
        (b"[policy]\nretire_threshold = 1.0", "policy.retire_threshold"),
        (b"[policy]\nretire_window = 0", "policy.retire_window"),
        (b"[policy]\ncandidate_risk_share = 0", "policy.candidate_risk_share"),
        (b"[policy.prior]\nkappa = -1", "policy.prior.kappa"),
        (b"[policy.candidate_prior]\nscale_bps = 0", "policy.candidate_prior.scale_bps"),
        (b"[policy]\nkind = 'ucb'", "policy.kind"),
        (b"[policy]\nbogus = 1", "unknown field `bogus`"),
        (b"[[policy.styles]]\nname = 't'\n[[policy.styles.variants]]\nid = 'flat'", "'flat' is reserved"),
        (
            b"[[policy.styles]]\nname = 't'\n[[policy.styles.variants]]\nid = 'a'\n[[policy.styles.variants]]\nid = 'a'",
            "declares variant 'a' twice",
        ),
        (b"[[policy.styles]]\nname = 't'\n[[policy.styles]]\nname = 't'", "style 't' twice"),
        (b"[[policy.styles]]\nname = 'a b'", "policy.styles[0].name"),
        (
            b"[[policy.roles]]\nsymbol = 'SOLUSDT'\nregime = 'trend_low'\nstyle = 't'\nvariants = []",
            "symbol 'SOLUSDT' is not in 'symbols'",
        ),
        (
            b"[[policy.styles]]\nname = 't'\n[[policy.roles]]\nsymbol = 'BTCUSDT'\nregime = 'trend_low'\n"
            b"style = 't'\nvariants = ['nope']",
            "unknown variant 'nope'",
        ),
    ],  # fmt: skip
)
def test_bad_policy_config_is_a_one_line_error(text, needle):
    with pytest.raises(ConfigError) as err:
        config.loads(text, "cfg.toml")
    msg = str(err.value)
    assert needle in msg and msg.startswith("cfg.toml: ") and "\n" not in msg


def test_role_seed_is_stable_and_distinct():
    a, b = Role("BTCUSDT", "trend_high", "trend"), Role("ETHUSDT", "trend_high", "trend")
    assert role_seed(0, a) == role_seed(0, a) != role_seed(0, b) != role_seed(1, b)
    assert role_seed(0, a) == 6088422192761640404  # blake2b, not Python's per-process salted hash


@pytest.fixture(params=["cython", "reference"])
def impl_kw(request):
    return {} if request.param == "cython" else {"impl": ref.ThompsonPortfolio}


def _play(rp: RolePortfolio, mu: dict[str, float], T: int, seed: int, shadows: bool = True, hook=None):
    g = np.random.default_rng(seed)
    recs, counts = [], Counter()
    for t in range(T):
        vid, r = rp.choose(t)
        recs += r
        counts[vid] += 1
        if vid != FLAT:
            recs += rp.update(vid, mu[vid] + 100.0 * g.standard_normal(), 1.0, t)
        if shadows:
            for other in rp.active():
                if other not in (vid, FLAT):
                    recs += rp.update(other, mu[other] + 100.0 * g.standard_normal(), rp.shadow_weight, t)
        recs += rp.maybe_retire(t)
        if hook:
            recs += hook(t)
    return recs, counts


def test_role_portfolio_retires_losers_keeps_flat_and_writes_records(impl_kw):
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), **impl_kw)
    mu = {"good": 40.0, "bad": -80.0, "meh": -40.0}
    recs, counts = _play(rp, mu, 1500, 9200)
    assert rp.active() == [FLAT, "good"]
    assert counts.most_common(1)[0][0] == "good"
    changes = [r for r in recs if isinstance(r, VariantChange)]
    assert {(c.variant, c.action) for c in changes} == {("bad", "retire"), ("meh", "retire")}
    for c in changes:
        assert c.evidence >= cfg.policy.min_sample and c.prob_best < cfg.policy.retire_threshold
        assert c.role == role.key and c.symbol == "BTCUSDT"
    ups = [r for r in recs if isinstance(r, BanditUpdate)]
    assert all(u.variant != FLAT for u in ups)
    assert {u.shadow for u in ups} == {True, False}
    assert all((u.weight == 1.0) != u.shadow for u in ups)
    good = [u for u in ups if u.variant == "good"][-1]
    assert good.kind == "normal_gamma" and good.alpha > 1.0 and good.beta > 0 and good.kappa > 1.0
    assert good.mean == pytest.approx(rp.bandit.posterior(1)["mean"])
    choices = [r for r in recs if isinstance(r, BanditChoice)]
    assert len(choices) == 1500 and [c.decision for c in choices] == list(range(1, 1501))


def test_flat_wins_a_role_where_every_model_loses(impl_kw):
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), **impl_kw)
    recs, counts = _play(rp, {"good": -30.0, "bad": -80.0, "meh": -40.0}, 1200, 9201)
    assert counts[FLAT] >= 0.8 * 1200
    assert "bad" not in rp.active()
    # Clearly losing models are all retired and the role sits out.
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), **impl_kw)
    _play(rp, {"good": -100.0, "bad": -80.0, "meh": -120.0}, 1200, 9205)
    assert rp.active() == [FLAT]
    assert rp.choose(0)[0] == FLAT


def test_candidate_enters_capped_and_graduates(impl_kw):
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), **impl_kw)
    mu = {"good": 10.0, "bad": -80.0, "meh": -40.0, "fresh": 60.0}
    events = {}

    def hook(t):
        if t == 300:
            i, recs = rp.add(Variant(id="fresh", style="trend"), t)
            assert i == 4 and rp.risk_cap("fresh") == cfg.policy.candidate_risk_share < 1.0
            assert rp.risk_cap("good") == 1.0
            events["enter"] = recs
        return []

    recs, counts = _play(rp, mu, 1200, 9202, hook=hook)
    (enter,) = events["enter"]
    assert enter.action == "enter" and enter.risk_cap == 0.25 and enter.variant == "fresh"
    grad = [r for r in recs if isinstance(r, VariantChange) and r.action == "graduate"]
    assert [g.variant for g in grad] == ["fresh"] and grad[0].evidence >= cfg.policy.min_sample
    assert rp.risk_cap("fresh") == 1.0
    capped = [r for r in recs if isinstance(r, BanditChoice) and r.variant == "fresh" and r.risk_cap < 1.0]
    assert capped and all(c.decision <= grad[0].decision for c in capped)
    assert counts.most_common(1)[0][0] == "fresh"
    with pytest.raises(ValueError, match="already"):
        rp.add(Variant(id="fresh", style="trend"))


def test_update_guards(impl_kw):
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), **impl_kw)
    assert rp.update(FLAT, 50.0) == []  # flat is never updated
    assert rp.update("good", math.nan) == [] and rp.bad_rewards == 1  # counted, not raised
    with pytest.raises(ValueError, match="unknown variant"):
        rp.update("nope", 1.0)
    assert rp.retire("bad", 0, "manual")[0].action == "retire"
    assert rp.update("bad", 5.0) == []  # late reward for a retired variant


def test_beta_kind_counts_wins(impl_kw):
    cfg = config.loads(CFG + b"\n")
    pol = cfg.policy.__class__(
        **{**{f: getattr(cfg.policy, f) for f in cfg.policy.__struct_fields__}, "kind": "beta"}
    )
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], pol, id_fn=_ids(), **impl_kw)
    assert rp.bandit.draw(0) == 0.5  # flat's win rate
    (u,) = rp.update("good", 12.0)
    assert (u.alpha, u.beta, u.kind) == (2.0, 1.0, "beta") and u.reward == 12.0
    (u,) = rp.update("good", -3.0)
    assert (u.alpha, u.beta) == (2.0, 2.0)
    assert rp.update("good", 0.0) == []  # no position: not an observation


def test_records_round_trip_through_the_lineage_log(tmp_path):
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids(), model="m-1")
    recs, _ = _play(rp, {"good": 40.0, "bad": -80.0, "meh": -40.0}, 400, 9203)
    recs += rp.add(Variant(id="fresh", style="trend"), 401)[1]
    assert {type(r) for r in recs} == {BanditChoice, BanditUpdate, VariantChange}
    with LineageWriter(tmp_path) as w:
        for r in recs:
            w.append(r)
    reader = LineageReader(tmp_path)
    assert list(reader.records()) == recs and reader.damage == []


def test_same_seed_same_role_decisions():
    cfg = config.loads(CFG)
    role = Role("BTCUSDT", "trend_high", "trend")
    runs = []
    for _ in range(2):
        rp = RolePortfolio(role, build_roles(cfg)[role], cfg.policy, id_fn=_ids())
        recs, _ = _play(rp, {"good": 40.0, "bad": -80.0, "meh": -40.0}, 300, 9204)
        runs.append([(type(r).__name__, getattr(r, "variant", ""), getattr(r, "draw", 0.0)) for r in recs])
    assert runs[0] == runs[1]
