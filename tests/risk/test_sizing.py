import math

from hypothesis import given
from hypothesis import strategies as st

from kaizen.risk import size_position


def test_vol_target_formula():
    # 1 % per bar, 365*24 hourly bars: annual vol = 0.01*sqrt(8760) = 0.936; target 0.5 of 10k equity.
    qty = size_position(1.0, 100.0, 0.01, 8760, 10_000.0, 0.5, 1.0, 1e9)
    expected_notional = 10_000.0 * 0.5 / (0.01 * math.sqrt(8760))
    assert math.isclose(qty * 100.0, expected_notional, rel_tol=1e-12)
    # confidence and allocation scale linearly, the sign follows the signal
    half = size_position(-0.5, 100.0, 0.01, 8760, 10_000.0, 0.5, 0.5, 1e9)
    assert math.isclose(half, -qty * 0.25, rel_tol=1e-12)


def test_cap_and_degenerate_inputs():
    assert size_position(1.0, 100.0, 1e-6, 8760, 1e6, 0.5, 1.0, 2_000.0) * 100.0 == 2_000.0
    for bad in ({"price": 0.0}, {"vol": 0.0}, {"vol": math.nan}, {"equity": -1.0}, {"conf": 0.0}):
        args = dict(conf=1.0, price=100.0, vol=0.01, equity=1e4)
        args.update(bad)
        assert (
            size_position(args["conf"], args["price"], args["vol"], 8760, args["equity"], 0.5, 1.0, 2e3)
            == 0.0
        )


def test_funding_awareness():
    base = size_position(1.0, 100.0, 0.01, 8760, 10_000.0, 0.5, 1.0, 1e9, expected_edge=0.002)
    # A long pays a positive rate: half the edge gone -> half the size; all of it -> no position.
    paid = size_position(
        1.0, 100.0, 0.01, 8760, 10_000.0, 0.5, 1.0, 1e9, next_funding_rate=0.001, expected_edge=0.002
    )
    assert math.isclose(paid, base / 2, rel_tol=1e-12)
    assert (
        size_position(
            1.0, 100.0, 0.01, 8760, 1e4, 0.5, 1.0, 1e9, next_funding_rate=0.003, expected_edge=0.002
        )
        == 0
    )
    # A short receives a positive rate: not reduced.
    short = size_position(
        -1.0, 100.0, 0.01, 8760, 10_000.0, 0.5, 1.0, 1e9, next_funding_rate=0.001, expected_edge=0.002
    )
    assert math.isclose(short, -base, rel_tol=1e-12)


@given(
    st.floats(-5, 5),
    st.floats(1e-3, 1e6),
    st.floats(1e-6, 1.0),
    st.floats(1.0, 1e6),
    st.floats(0.0, 1e7),
    st.floats(0.01, 3.0),
    st.floats(-1, 2),
    st.floats(0.0, 1e6),
)
def test_never_exceeds_cap(conf, price, vol, equity, max_notional, target, alloc, bpy):
    q = size_position(conf, price, vol, bpy, equity, target, alloc, max_notional)
    assert math.isfinite(q)
    assert abs(q) * price <= max_notional * (1 + 1e-12)
    assert q == 0 or math.copysign(1, q) == math.copysign(1, conf)
