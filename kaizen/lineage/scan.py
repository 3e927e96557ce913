"""Frame-level walking of segment files: checksum verification, resync after damage, tail repair.

Shared by the writer (repair on open) and the reader (iteration, verify)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from kaizen.lineage import format as fmt


class Damage(NamedTuple):
    segment: str
    offset: int
    bytes_lost: int
    reason: str


def map_file(path: Path):
    """The file's bytes without reading them all: an mmap (pages load as frames are touched), or
    b"" for an empty file. The map is released when the last view of it goes."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        return mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)


def segment_paths(directory: str | os.PathLike[str]) -> list[Path]:
    """Segments in sequence order (their names are the zero-padded first sequence number)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix == fmt.SEG_SUFFIX and p.stem.isdigit())


def read_index(seg: Path) -> list[fmt.IndexEntry]:
    try:
        data = seg.with_suffix(fmt.IDX_SUFFIX).read_bytes()
    except OSError:
        return []
    size = fmt.INDEX_ENTRY.size
    return [
        fmt.IndexEntry(*fmt.INDEX_ENTRY.unpack_from(data, i)) for i in range(0, len(data) - size + 1, size)
    ]


def walk(
    data: bytes | memoryview,
    start: int,
    end: int,
    seg: str,
    check_payload: bool = True,
    at_eof: bool = True,
    base: int = 0,
) -> Iterator[fmt.FrameHeader | Damage]:
    """Yield frame headers (with checksummed payloads) and Damage for what lies between them.

    A frame is trusted only if its header checksum holds and, with `check_payload`, its payload
    checksum too. After damage the walk resyncs on the next header whose checksum holds. With
    `at_eof` False a short last frame is treated as not yet written (for following a live log).
    `base` is the file offset of data[0] (offsets reported are file offsets).
    """
    pos = start
    mv = memoryview(data)
    while pos < end:
        head = fmt.unpack_frame_header(data, pos, base + pos)
        if head is not None and pos + head.size <= end:
            if not check_payload or _payload_ok(mv, pos, head):
                yield head
                pos += head.size
                continue
            nxt = _resync(data, pos + 1, end)
            yield Damage(seg, base + pos, nxt - pos, "payload checksum mismatch")
            pos = nxt
            continue
        if head is not None:  # a header whose frame runs past the end: a torn (or unfinished) tail
            if at_eof:
                yield Damage(seg, base + pos, end - pos, "torn frame at end of segment")
            return
        if end - pos < fmt.FRAME_HEADER_SIZE and not at_eof:
            return
        nxt = _resync(data, pos + 1, end)
        reason = (
            "bad frame header" if nxt < end or end - pos >= fmt.FRAME_HEADER_SIZE else "torn frame header"
        )
        yield Damage(seg, base + pos, nxt - pos, reason)
        pos = nxt


def _payload_ok(mv: memoryview, pos: int, head: fmt.FrameHeader) -> bool:
    p0 = pos + fmt.FRAME_HEADER_SIZE
    p1 = p0 + head.length
    return fmt.crc32(mv[p0:p1]) == int.from_bytes(mv[p1 : p1 + 4], "little")


def _resync(data, pos: int, end: int) -> int:
    """Offset of the next intact frame header at or after pos (end if none)."""
    find = data.find if hasattr(data, "find") else bytes(data).find  # bytes or mmap
    while True:
        i = find(fmt.FRAME_MAGIC, pos, end)
        if i < 0:
            return end
        head = fmt.unpack_frame_header(data, i, i)
        if head is not None and i + head.size <= end:
            return i
        pos = i + 1


def payload_of(data, head: fmt.FrameHeader) -> memoryview:
    p0 = head.offset + fmt.FRAME_HEADER_SIZE
    return memoryview(data)[p0 : p0 + head.length]


def scan_segment(seg: Path) -> tuple[fmt.SegmentHeader | None, list[fmt.FrameHeader], list[Damage], int]:
    """(segment header, intact frames, damage, file size), checking every checksum."""
    data = map_file(seg)
    header = fmt.unpack_segment_header(data[: fmt.SEG_HEADER_SIZE])
    if header is None:
        lost = len(data)
        return None, [], ([Damage(str(seg), 0, lost, "bad or torn segment header")] if lost else []), lost
    frames: list[fmt.FrameHeader] = []
    damage: list[Damage] = []
    for item in walk(data, fmt.SEG_HEADER_SIZE, len(data), str(seg)):
        (damage if isinstance(item, Damage) else frames).append(item)
    return header, frames, damage, len(data)


def repair_tail(seg: Path) -> tuple[str, int, int] | None:
    """Truncate whatever follows the last intact frame (a torn write), rewrite the index to match.

    Damage *between* intact frames is left in place (a reader skips and reports it); only the
    tail is cut. A segment with no intact frame is removed. Returns (segment, offset, bytes dropped)
    when something was cut.
    """
    header, frames, _damage, size = scan_segment(seg)
    idx = seg.with_suffix(fmt.IDX_SUFFIX)
    if header is None or not frames:  # nothing readable in it: the next segment may reuse its name
        seg.unlink()
        idx.unlink(missing_ok=True)
        return (str(seg), 0, size) if size > (0 if header is None else fmt.SEG_HEADER_SIZE) else None
    end = frames[-1].offset + frames[-1].size if frames else fmt.SEG_HEADER_SIZE
    entries = b"".join(
        fmt.INDEX_ENTRY.pack(f.offset, f.size, f.count, f.first_seq, f.last_seq, f.ts_min, f.ts_max)
        for f in frames
    )
    if idx.exists() and idx.read_bytes() == entries and end == size:
        return None
    with open(seg, "r+b") as fh:
        fh.truncate(end)
        os.fsync(fh.fileno())
    tmp = idx.with_suffix(".idx.tmp")
    tmp.write_bytes(entries)
    os.replace(tmp, idx)
    return (str(seg), end, size - end) if size > end else None


def last_seq_of(seg: Path) -> int | None:
    """Last sequence number in a segment: from its index when it agrees with the file, else a scan."""
    entries = read_index(seg)
    try:
        size = seg.stat().st_size
    except OSError:
        return None
    if entries and entries[-1].offset + entries[-1].size <= size:
        with open(seg, "rb") as fh:
            fh.seek(entries[-1].offset)
            head = fmt.unpack_frame_header(fh.read(fmt.FRAME_HEADER_SIZE), 0, entries[-1].offset)
        if head is not None and head.last_seq == entries[-1].last_seq:
            return head.last_seq
    _, frames, _, _ = scan_segment(seg)
    return frames[-1].last_seq if frames else None
