"""The Cython book and the plain-Python reference book run the same assertions (as uvloop runs its
tests against asyncio), and equal each other, under random updates, deletes and far levels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.ext.book import OrderBook
from kaizen.market.refbook import PyOrderBook

CENTER = 600_000  # ticks (60,000.0 at tick 0.1)

IMPLS = {
    "cython": lambda: OrderBook(0.1, 0.001),
    "cython-small-window": lambda: OrderBook(0.1, 0.001, window=16),
    "python": lambda: PyOrderBook(0.1, 0.001),
}

near = st.integers(-40, 40)
far = st.integers(-400_000, 400_000)
op = st.tuples(st.booleans(), st.one_of(near, near, near, far), st.one_of(st.just(0), st.integers(1, 5000)))
ops_strategy = st.lists(op, max_size=300)


def apply_ops(book, ops):
    model = {True: {}, False: {}}
    for is_bid, off, lots in ops:
        tick = CENTER + off if is_bid else CENTER + 100 + off
        book.set_level(is_bid, tick, lots)
        if lots:
            model[is_bid][tick] = lots
        else:
            model[is_bid].pop(tick, None)
    return model


def check_against_model(book, model):
    bids = sorted(model[True].items(), reverse=True)
    asks = sorted(model[False].items())
    assert book.best_bid_tick == (bids[0][0] if bids else None)
    assert book.best_ask_tick == (asks[0][0] if asks else None)
    assert book.level_count(True) == len(bids)
    assert book.level_count(False) == len(asks)
    for n in (1, 5, 64, 10_000):
        b, a = book.depth_ticks(n)
        assert list(b) == bids[:n]
        assert list(a) == asks[:n]
    for k in (1, 3, 20):
        vb = sum(q for _, q in bids[:k])
        va = sum(q for _, q in asks[:k])
        want = (vb - va) / (vb + va) if vb + va else math.nan
        got = book.imbalance(k)
        assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, abs=1e-12)
    if bids and asks:
        (pb, qb), (pa, qa) = bids[0], asks[0]
        assert book.mid() == pytest.approx((pb + pa) * 0.05)
        assert book.microprice() == pytest.approx((pb * qa + pa * qb) / (qa + qb) * 0.1)
        assert book.crossed() == (pb >= pa)
        # volume to a price a few levels deep on each side
        for side, levels in ((True, bids), (False, asks)):
            probe = levels[min(3, len(levels) - 1)][0]
            if (side and (not asks or probe < asks[0][0])) or (not side and (not bids or probe > bids[0][0])):
                want = sum(q for t, q in levels if (t >= probe if side else t <= probe)) * 0.001
                assert book.volume_to(probe * 0.1) == pytest.approx(want)
    else:
        assert math.isnan(book.mid())
    for t, q in bids[:5]:
        assert book.lots_at(t, True) == q
    for t, q in asks[:5]:
        assert book.lots_at(t, False) == q
    assert book.lots_at(CENTER + 10**6, True) == 0


@pytest.mark.parametrize("impl", list(IMPLS))
@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy)
def test_book_matches_model(impl, ops):
    book = IMPLS[impl]()
    model = apply_ops(book, ops)
    check_against_model(book, model)


@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy, checkpoints=st.lists(st.integers(0, 300), max_size=5))
def test_cython_equals_python_reference(ops, checkpoints):
    cy, py, small = OrderBook(0.1, 0.001), PyOrderBook(0.1, 0.001), OrderBook(0.1, 0.001, window=16)
    stops = set(checkpoints) | {len(ops)}
    for i in range(len(ops) + 1):
        if i in stops:
            for n in (1, 10, 1000):
                assert cy.depth(n) == py.depth(n) == small.depth(n)
            assert cy.imbalance(5) == pytest.approx(py.imbalance(5), nan_ok=True)
            assert cy.best_bid() == pytest.approx(py.best_bid(), nan_ok=True)
            assert cy.best_ask() == pytest.approx(py.best_ask(), nan_ok=True)
        if i == len(ops):
            break
        is_bid, off, lots = ops[i]
        tick = CENTER + off if is_bid else CENTER + 100 + off
        for b in (cy, py, small):
            b.set_level(is_bid, tick, lots)


def test_far_levels_memory_is_bounded():
    book = OrderBook(0.1, 0.001, window=64, max_far_levels=100)
    book.set_level(True, CENTER, 5)
    for i in range(1, 1000):
        book.set_level(True, CENTER - 100 - i * 7, 1)  # all far below the window
    # Only the 100 nearest far levels are kept (plus the dense window); the farthest are dropped.
    assert book.level_count(True) <= 100 + 64
    assert book.dropped_far_levels > 0
    bids, _ = book.depth_ticks(1000)
    assert bids[0] == (CENTER, 5)
    assert [t for t, _ in bids] == sorted((t for t, _ in bids), reverse=True)
    assert bids[-1][0] >= CENTER - 100 - 999 * 7  # the nearest survive, the farthest went


def test_touch_moves_across_window_and_back():
    book, ref = OrderBook(0.1, 0.001, window=32), PyOrderBook(0.1, 0.001)
    for b in (book, ref):
        for i in range(200):
            b.set_level(False, CENTER + i, i + 1)
        for i in range(199):  # eat the asks from the touch up: the touch walks out of the window
            b.set_level(False, CENTER + i, 0)
        b.set_level(False, CENTER + 5, 3)  # and jumps back far below
    assert book.depth_ticks(10) == ref.depth_ticks(10)
    assert book.best_ask_tick == CENTER + 5


@pytest.mark.parametrize("impl", list(IMPLS))
def test_bad_levels_rejected(impl):
    book = IMPLS[impl]()
    for args in ((True, 0, 1), (True, -5, 1), (False, 10, -1)):
        with pytest.raises(ValueError):
            book.set_level(*args)
    for price, qty in (
        (float("nan"), 1.0),
        (100.0, float("nan")),
        (-1.0, 1.0),
        (100.0, -1.0),
        (1e300, 1.0),
        (float("inf"), 1.0),
    ):
        with pytest.raises(ValueError):
            book.set(True, price, qty)
    assert book.best_bid_tick is None


def test_book_formats_like_the_venue():
    book = OrderBook(0.1, 0.001, price_precision=2, qty_precision=3)
    book.set_level(True, 618002, 2507)
    book.set_level(False, 618003, 10)
    assert book.depth_strings(5) == ([["61800.20", "2.507"]], [["61800.30", "0.010"]])
