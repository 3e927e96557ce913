"""The one-pass level scanner (depth._qnum via apply_depth) accepts exactly what parse_fixed (via
parse_price / parse_qty) accepts, with the same value, on random and edge-case number strings."""

import json
import random

from kaizen.ext.book import OrderBook
from kaizen.ext.depth import apply_depth, parse_price, parse_qty

EDGE = ["1", "1.", ".5", ".", "", "0", "0.0", "61800.20", "61800.25", "61800.2", "1.2.3", "1e5", "-1",
        " 1", "1 ", "00000000000000000000001.0", "123456789012345678", "99999999999999999", "0.001",
        "0.0005", "12.111", "0.000", "1\\\\2", "+1", "1,0"]  # fmt: skip


def _ref(fn, book, s):
    try:
        return fn(book, s)
    except ValueError:
        return None


def _scan(book, price, qty):
    raw = json.dumps([[price, qty]]).encode()
    book.clear()
    if apply_depth(book, raw, b"[]") < 0:
        return None
    bids = book.depth_ticks(1)[0]
    return bids[0] if bids else "empty"


def _check(book, price, qty):
    p, q = _ref(parse_price, book, price), _ref(parse_qty, book, qty)
    want = None if p is None or q is None else (p, q)
    got = _scan(book, price, qty)
    if want is not None and want[1] == 0:
        want = "empty"  # a zero quantity deletes: the book stays empty
    assert got == want, (price, qty, got, want)


def test_edge_cases_agree_with_parse_fixed():
    book = OrderBook(0.1, 0.001, 1, 3)
    for s in EDGE:
        _check(book, s, "1.000")
        _check(book, "61800.10", s)


def test_random_strings_agree_with_parse_fixed():
    rng = random.Random(5)
    book = OrderBook(0.1, 0.001, 1, 3)
    alphabet = "0123456789.0123456789x-"
    for _ in range(5000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        _check(book, s, "0.500")
        _check(book, "100.0", s)
