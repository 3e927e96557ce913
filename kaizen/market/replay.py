"""Recorded streams: `receive_time_ns<space>raw_json` lines (gzip). The replayer feeds a file
through the very same decode → book path as the live feed (StreamProcessor), at full speed or
paced by the recorded receive times.

A REST snapshot is a bare `{"lastUpdateId":...}` line (single-symbol files, as in the shared
capture) or `{"stream":"<sym>@snapshot","data":{...}}` (what our recorder writes).
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaizen.errors import DataError
from kaizen.market.sync import StreamProcessor

SNAP_BARE = b'{"lastUpdateId"'
SNAP_TAG = b'@snapshot"'


def open_blocks(path: str | Path, chunk: int = 1 << 22) -> Iterator[bytes]:
    """Decompressed blocks of a (gzip) recording, 4 MiB at a time; handles concatenated members
    (appended recordings)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        with open(p, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
            fh.seek(0)
            dec = zlib.decompressobj(47) if gz else None
            while True:
                block = fh.read(chunk)
                if not block:
                    break
                if dec is None:
                    yield block
                    continue
                data = dec.decompress(block)
                while dec.eof and dec.unused_data:
                    rest = dec.unused_data
                    dec = zlib.decompressobj(47)
                    data += dec.decompress(rest)
                yield data
            if dec is not None:
                tail = dec.flush()
                if tail:
                    yield tail
                if not dec.eof:
                    raise DataError(f"{p}: truncated gzip stream")
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, corrupt
        raise DataError(f"{p}: cannot read ({exc})") from None


def open_lines(path: str | Path) -> Iterator[bytes]:
    """Lines of a (gzip) recording, without the newline."""
    tail = b""
    for data in open_blocks(path):
        parts = (tail + data).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail


def split_line(line: bytes) -> tuple[int, bytes] | None:
    sp = line.find(b" ")
    if sp <= 0:
        return None
    try:
        return int(line[:sp]), line[sp + 1 :].rstrip(b"\r\n")
    except ValueError:
        return None


def snapshot_symbol(raw: bytes) -> tuple[str | None, bytes] | None:
    """(symbol or None for a bare snapshot, snapshot json) if the line is a snapshot."""
    if raw.startswith(SNAP_BARE):
        return None, raw
    head = raw[:64]
    if SNAP_TAG in head and raw.startswith(b'{"stream"'):
        try:
            obj = json.loads(raw)
            return obj["stream"].split("@")[0].upper(), json.dumps(obj["data"]).encode()
        except (ValueError, KeyError, AttributeError, TypeError):
            return None
    return None


def _decimals(s: str) -> int:
    return len(s.split(".", 1)[1]) if "." in s else 0


def infer_instrument(path: str | Path, max_lines: int = 5000) -> dict[str, Any]:
    """Symbol, tick/lot size and printed precision from a recording: the grid is the gcd of the
    snapshot's (or the first diffs') prices and quantities."""
    symbol = None
    prices: list[str] = []
    qtys: list[str] = []
    for i, line in enumerate(open_lines(path)):
        if i >= max_lines and symbol and prices:
            break
        parts = split_line(line)
        if parts is None:
            continue
        raw = parts[1]
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        data = obj.get("data", obj)
        if not isinstance(data, dict):
            continue
        if symbol is None and isinstance(data.get("s"), str):
            symbol = data["s"].upper()
        for key in ("bids", "asks", "b", "a"):
            lv = data.get(key)
            if isinstance(lv, list):
                for item in lv:
                    if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
                        prices.append(item[0])
                        qtys.append(item[1])
        if "lastUpdateId" in data and prices:
            break
    if symbol is None or not prices:
        raise DataError(f"{path}: no depth data found to infer the instrument")
    pdp = max(_decimals(p) for p in prices)
    qdp = max(_decimals(q) for q in qtys)
    g = 0
    for p in prices:
        g = math.gcd(g, round(float(p) * 10**pdp))
    lg = 0
    for q in qtys:
        v = round(float(q) * 10**qdp)
        if v:
            lg = math.gcd(lg, v)
    return {
        "symbol": symbol,
        "tick_size": (g or 1) / 10**pdp,
        "lot_size": (lg or 1) / 10**qdp,
        "price_precision": pdp,
        "qty_precision": qdp,
    }


def replay(
    path: str | Path,
    processor: StreamProcessor,
    default_symbol: str,
    paced: bool = False,
    speed: float = 1.0,
    progress: Any = None,
) -> int:
    """Feed a recording through processor; returns lines read. Unparseable lines count as bad."""
    if not paced:
        return _replay_fast(path, processor, default_symbol, progress)
    n = 0
    process = processor.process
    t0_rec = None
    t0_wall = 0.0
    for line in open_lines(path):
        if not line or line == b"\r":
            continue
        n += 1
        sp = line.find(b" ")
        head = line[:sp] if sp > 0 else b""
        recv_ns = int(head) if head.isdigit() else -1
        if not 0 <= recv_ns < 2**63:
            _bad_line(processor)
            continue
        raw = line[sp + 1 :]
        if t0_rec is None:
            t0_rec, t0_wall = recv_ns, time.monotonic()
        delay = (recv_ns - t0_rec) / 1e9 / speed - (time.monotonic() - t0_wall)
        if delay > 0:
            time.sleep(delay)
        if raw[2:3] == b"l" or SNAP_TAG in raw[:64]:  # {"lastUpdateId"...: a bare snapshot
            snap = snapshot_symbol(raw)
            if snap is not None:
                processor.process_snapshot(snap[0] or default_symbol, snap[1], recv_ns)
                continue
        process(raw, recv_ns)
        if progress is not None and not n & 4095:
            progress.update(n)
    return n


def _bad_line(processor: StreamProcessor) -> None:
    processor.stats["messages"] += 1
    processor._bad("", "unparseable recording line", 0)


def _replay_fast(path: str | Path, processor: StreamProcessor, default_symbol: str, progress: Any) -> int:
    """Full speed: lines are scanned in C (kaizen.ext.lines) and handed to the same processor."""
    from kaizen.ext.lines import scan_block

    def on_snapshot(raw: bytes, recv_ns: int) -> None:
        snap = snapshot_symbol(raw)
        if snap is None:
            _bad_line(processor)
        else:
            processor.process_snapshot(snap[0] or default_symbol, snap[1], recv_ns)

    def on_bad() -> None:
        _bad_line(processor)

    n = 0
    tail = b""
    process = processor.process
    for data in open_blocks(path):
        buf = tail + data if tail else data
        used, lines = scan_block(buf, process, on_snapshot, on_bad)
        tail = buf[used:]
        n += lines
        if progress is not None:
            progress.update(n)
    if tail:
        n += scan_block(tail, process, on_snapshot, on_bad, True)[1]
    return n
