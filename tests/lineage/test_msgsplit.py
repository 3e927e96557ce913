"""The frame pre-filter (kaizen.ext.msgsplit): lossless on any msgpack, byte-identical to the plain
Python reference (kaizen.lineage.splitref), malformed input refused, damaged input never crashes."""

from __future__ import annotations

import math
import random
import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.ext import msgsplit
from kaizen.lineage import format as fmt
from kaizen.lineage import splitref

IMPLS = [pytest.param(msgsplit, id="cython"), pytest.param(splitref, id="reference")]
enc = msgspec.msgpack.Encoder()

# Any msgpack value msgspec writes: every int width, every float (NaN, -0.0, inf, subnormals),
# str/bytes of every length class, nesting, maps keyed by the context keys.
FLOAT = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
DECIMAL = st.integers(-(10**9), 10**9).flatmap(lambda n: st.integers(0, 8).map(lambda e: n / 10**e))
INT = st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(-40, 300))
TEXT = st.one_of(
    st.sampled_from(["BTCUSDT", "ETHUSDT", "decision", "meta-1", "buy", ""]), st.text(max_size=40)
)
LEAF = st.one_of(FLOAT, DECIMAL, INT, TEXT, st.binary(max_size=40), st.booleans(), st.none())
KEY = st.one_of(
    st.sampled_from(["type", "symbol", "model", "role", "side", "ts", "id", "px"]), st.text(max_size=8)
)
VALUE = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEY, inner, max_size=6), max_leaves=30
)
RECORD = st.dictionaries(KEY, VALUE, max_size=12)


def raw_of(parts: list[bytes]) -> bytes:
    return fmt.array_header(len(parts)) + b"".join(parts)


def ts_of(rec) -> int:
    ts = rec.get("ts", 0) if isinstance(rec, dict) else 0
    if isinstance(ts, bool) or not isinstance(ts, int):
        return 0
    return ts - (1 << 64) if ts >= 1 << 63 else ts


@settings(max_examples=300, deadline=None)
@given(recs=st.lists(st.one_of(RECORD, VALUE), min_size=1, max_size=25))
def test_any_msgpack_round_trips_and_matches_reference(recs):
    parts = [enc.encode(r) for r in recs]
    got = msgsplit.split(parts)
    assert got == splitref.split(parts)  # same bytes: one format, two implementations
    data, n, ts_min, ts_max, nbytes = got
    assert (n, nbytes) == (len(parts), sum(map(len, parts)))
    tss = [ts_of(r) for r in recs]
    assert (ts_min, ts_max) == (min(tss), max(tss))
    raw = raw_of(parts)
    assert msgsplit.join(data, len(raw), n) == raw
    assert splitref.join(data, len(raw), n) == raw


@pytest.mark.parametrize("impl", IMPLS)
def test_special_floats_survive_bit_for_bit(impl):
    values = [
        0.0,
        -0.0,
        math.inf,
        -math.inf,
        math.nan,
        5e-324,
        -5e-324,
        1.7976931348623157e308,
        0.1,
        0.30000000000000004,
        43012.3,
        1e15,
        9.0e15,
        123456789.123,
        -2.5e-7,
    ]
    nan_payload = struct.unpack(">d", bytes.fromhex("7ff8000000000bad"))[0]
    recs = [{"type": "x", "symbol": "BTCUSDT", "v": v, "w": [v, -v]} for v in values + [nan_payload] * 3]
    parts = [enc.encode(r) for r in recs]
    data, n, *_ = impl.split(parts)
    raw = raw_of(parts)
    assert impl.join(data, len(raw), n) == raw  # bytes, so NaN payloads and -0.0 are checked too


@pytest.mark.parametrize("impl", IMPLS)
def test_same_layout_records_with_other_strings_keep_their_own_context(impl):
    # Same length and shape, only the symbol differs: the layout cache must not mix them up.
    rng = random.Random(3)
    recs = []
    for i in range(400):
        sym = ("BTCUSDT", "ETHUSDT", "SOLUSDT")[rng.randrange(3)]
        recs.append(
            {
                "type": "d",
                "bid": round(rng.uniform(10, 50000), 2),
                "id": 2**40 + i,
                "ts": 1_700_000_000_000_000_000 + i,
                "symbol": sym,
            }
        )
    parts = [enc.encode(r) for r in recs]
    got = impl.split(parts)
    assert got == splitref.split(parts)
    data, n, ts_min, ts_max, _ = got
    assert (ts_min, ts_max) == (recs[0]["ts"], recs[-1]["ts"])
    raw = raw_of(parts)
    assert msgsplit.join(data, len(raw), n) == raw


def test_price_like_records_shrink_before_zstd():
    # Tick prices random-walking per symbol: each number costs ~1-2 bytes instead of 9.
    rng = random.Random(5)
    px = {"BTCUSDT": 43000.0, "ETHUSDT": 2300.0}
    recs = []
    for i in range(4000):
        sym = ("BTCUSDT", "ETHUSDT")[i % 2]
        px[sym] = round(px[sym] + rng.randint(-50, 50) * 0.1, 1)
        recs.append(
            {"type": "q", "bid": px[sym], "ask": round(px[sym] + 0.1, 1), "ts": i * 1000, "symbol": sym}
        )
    parts = [enc.encode(r) for r in recs]
    data, *_ = msgsplit.split(parts)
    skel = int.from_bytes(data[:4], "little")
    numbers = len(data) - 4 - skel
    assert numbers < 3 * 3 * len(recs)  # 3 numbers per record, under 3 bytes each (raw: 27 bytes)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "parts",
    [
        [b"\xc1"],  # never-used type byte
        [b"\x92\x01"],  # array of 2 with 1 item
        [b"\xcb\x00\x00"],  # truncated float
        [b"\xda\x00\x05ab"],  # str16 longer than the data
        [b"\x91" * 70 + b"\x01"],  # nested deeper than the walker allows
        [b"\x92\x01", b"\x02"],  # a record split across parts
    ],
)
def test_malformed_input_is_refused(impl, parts):
    assert impl.split(parts) is None


def test_non_bytes_parts_are_refused():
    assert msgsplit.split([bytearray(b"\x01")]) is None


@settings(max_examples=300, deadline=None)
@given(
    recs=st.lists(RECORD, min_size=1, max_size=10),
    flips=st.lists(st.tuples(st.integers(0), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_damaged_split_data_raises_or_keeps_the_length(recs, flips):
    parts = [enc.encode(r) for r in recs]
    data, n, *_ = msgsplit.split(parts)
    raw = raw_of(parts)
    bad = bytearray(data)
    for pos, x in flips:
        bad[pos % len(bad)] ^= x
    for impl in (msgsplit, splitref):
        try:
            out = impl.join(bytes(bad), len(raw), n)
        except ValueError:
            continue
        assert len(out) == len(raw)  # undetected damage is the frame checksum's job; no overrun here


@pytest.mark.parametrize("impl", IMPLS)
def test_join_refuses_wrong_lengths_and_counts(impl):
    parts = [enc.encode({"type": "x", "v": 1.5, "ts": 7})]
    data, n, *_ = impl.split(parts)
    raw = raw_of(parts)
    for length, count in ((len(raw) + 1, n), (len(raw) - 1, n), (len(raw), n + 1)):
        with pytest.raises(ValueError, match="split frame"):
            impl.join(data, length, count)
    with pytest.raises(ValueError, match="split frame"):
        impl.join(data[:3], len(raw), n)


@settings(max_examples=500, deadline=None)
@given(blobs=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_arbitrary_bytes_are_split_losslessly_or_refused(blobs):
    got = msgsplit.split(blobs)
    assert got == splitref.split(blobs)
    if got is not None:  # a blob may hold 0, 1 or several whole objects
        data, n, *_ = got
        raw = fmt.array_header(n) + b"".join(blobs)
        assert msgsplit.join(data, len(raw), n) == raw
