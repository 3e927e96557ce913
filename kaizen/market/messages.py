"""Binance USD-M futures stream messages as typed msgspec Structs (combined-stream envelope).

Depth levels stay `msgspec.Raw` (unparsed JSON slices); `kaizen.ext.depth` scans them straight
into the book, so no Python object is made per price level. Prices/quantities of single values
arrive as strings; the decoder is non-strict so they decode into floats.
"""

from __future__ import annotations

import math

import msgspec


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: int  # event time, ms
    s: str
    U: int  # first update id in this event
    u: int  # final update id in this event
    pu: int  # final update id of the previous event
    b: msgspec.Raw
    a: msgspec.Raw
    T: int = 0  # transaction time, ms


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    E: int
    s: str
    p: float
    q: float
    m: bool  # buyer is the maker
    a: int = 0
    f: int = 0
    l: int = 0  # noqa: E741 (Binance's name)
    T: int = 0


class Trade(msgspec.Struct, tag_field="e", tag="trade"):
    E: int
    s: str
    p: float
    q: float
    m: bool
    t: int = 0
    T: int = 0
    X: str = "MARKET"


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    E: int = 0
    T: int = 0


class MarkPrice(msgspec.Struct, tag_field="e", tag="markPriceUpdate"):
    E: int
    s: str
    p: float  # mark price
    i: float = math.nan  # index price
    P: float = math.nan  # estimated settle price
    r: float = math.nan  # funding rate
    T: int = 0  # next funding time, ms


Event = DepthUpdate | AggTrade | Trade | BookTicker | MarkPrice


class Envelope(msgspec.Struct):
    stream: str
    data: Event


class DepthSnapshot(msgspec.Struct):
    """REST /fapi/v1/depth answer."""

    lastUpdateId: int
    bids: msgspec.Raw
    asks: msgspec.Raw
    E: int = 0
    T: int = 0


envelope_decoder = msgspec.json.Decoder(Envelope, strict=False)
snapshot_decoder = msgspec.json.Decoder(DepthSnapshot, strict=False)


class _Probe(msgspec.Struct):
    stream: str = ""
    data: dict = {}


_probe_decoder = msgspec.json.Decoder(_Probe)


def classify_undecodable(raw: bytes) -> str:
    """Why a message failed to decode: 'unknown:<e>' for a well-formed event of a type we do not
    handle, 'bad' otherwise."""
    try:
        probe = _probe_decoder.decode(raw)
    except (msgspec.MsgspecError, ValueError):
        return "bad"
    e = probe.data.get("e") if isinstance(probe.data, dict) else None
    if isinstance(e, str) and e not in KNOWN_EVENTS:
        return f"unknown:{e}"
    return "bad"


KNOWN_EVENTS = frozenset({"depthUpdate", "aggTrade", "trade", "bookTicker", "markPriceUpdate"})


def finite_pos(x: float) -> bool:
    return x > 0.0 and x < 1e15  # False for NaN too


def stream_names(
    symbol: str, depth_stream: str = "depth@100ms", extra: tuple[str, ...] = ("aggTrade", "markPrice")
) -> list[str]:
    s = symbol.lower()
    return [f"{s}@{depth_stream}", *(f"{s}@{x}" for x in extra)]
