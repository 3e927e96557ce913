"""On-disk layout of the lineage log (all integers little-endian).

A log directory holds segments `<first_seq:020d>.kzl`, each with a small index `<same>.idx`.

Segment = header (32 B) + frames.
  header: magic b"KZLS", format u16, schema u16, created_ns i64, first_seq u64, flags u32, crc32 u32
Frame = header (56 B) + zstd payload + crc32 u32 of the payload.
  header: magic b"KZLF", format u8, flags u8, reserved u16, length u32 (compressed), raw_length u32,
          count u32, first_seq u64, last_seq u64, ts_min i64, ts_max i64, crc32 u32 of the 52 bytes before.
  The header has its own checksum so a damaged length is never trusted; a reader that meets a bad
  header scans forward for the next magic whose header checksum holds.
  The payload decompresses to one msgpack array of `count` records (msgspec tagged structs), or,
  with FLAG_SPLIT, to that array's records split into a skeleton and a delta-coded number stream
  (kaizen/ext/msgsplit.pyx; `join` restores the array). raw_length is always the array's length.
Index = fixed 48-byte entries, one per frame, written after the frame:
  offset u64, size u32, count u32, first_seq u64, last_seq u64, ts_min i64, ts_max i64.
  It is a hint: readers check it against the frame header and fall back to scanning.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

FORMAT_VERSION = 1
SEG_MAGIC = b"KZLS"
FRAME_MAGIC = b"KZLF"
SEG_SUFFIX = ".kzl"
IDX_SUFFIX = ".idx"

SEG_HEADER = struct.Struct("<4sHHqQI")  # + crc u32
SEG_HEADER_SIZE = SEG_HEADER.size + 4
FRAME_HEADER = struct.Struct("<4sBBHIIIQQqq")  # + crc u32
FRAME_HEADER_SIZE = FRAME_HEADER.size + 4
FRAME_TRAILER_SIZE = 4
INDEX_ENTRY = struct.Struct("<QIIQQqq")
FLAG_DICT = 1  # payload compressed with the configured zstd dictionary
FLAG_SPLIT = 2  # payload is msgsplit output (skeleton + numbers), not the msgpack array itself

crc32 = zlib.crc32


class SegmentHeader(NamedTuple):
    format: int
    schema: int
    created_ns: int
    first_seq: int
    flags: int


class FrameHeader(NamedTuple):
    offset: int
    format: int
    flags: int
    length: int
    raw_length: int
    count: int
    first_seq: int
    last_seq: int
    ts_min: int
    ts_max: int

    @property
    def size(self) -> int:
        return FRAME_HEADER_SIZE + self.length + FRAME_TRAILER_SIZE


class IndexEntry(NamedTuple):
    offset: int
    size: int
    count: int
    first_seq: int
    last_seq: int
    ts_min: int
    ts_max: int


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEG_SUFFIX}"


def pack_segment_header(schema: int, created_ns: int, first_seq: int, flags: int = 0) -> bytes:
    head = SEG_HEADER.pack(SEG_MAGIC, FORMAT_VERSION, schema, created_ns, first_seq, flags)
    return head + struct.pack("<I", crc32(head))


def unpack_segment_header(data: bytes) -> SegmentHeader | None:
    """None when the bytes are not a whole, intact segment header."""
    if len(data) < SEG_HEADER_SIZE:
        return None
    head = data[: SEG_HEADER.size]
    (crc,) = struct.unpack_from("<I", data, SEG_HEADER.size)
    if crc32(head) != crc:
        return None
    magic, fmt, schema, created, first, flags = SEG_HEADER.unpack(head)
    if magic != SEG_MAGIC:
        return None
    return SegmentHeader(fmt, schema, created, first, flags)


def pack_frame(
    payload: bytes,
    raw_length: int,
    count: int,
    first_seq: int,
    last_seq: int,
    ts_min: int,
    ts_max: int,
    flags: int = 0,
) -> tuple[bytes, bytes]:
    """(header, trailer) for a compressed payload; the frame is header + payload + trailer."""
    head = FRAME_HEADER.pack(
        FRAME_MAGIC,
        FORMAT_VERSION,
        flags,
        0,
        len(payload),
        raw_length,
        count,
        first_seq,
        last_seq,
        ts_min,
        ts_max,
    )
    return head + struct.pack("<I", crc32(head)), struct.pack("<I", crc32(payload))


def unpack_frame_header(data, pos: int, offset: int) -> FrameHeader | None:
    """Parse the header at data[pos:]; None if it is short, has no magic, or fails its checksum."""
    if len(data) - pos < FRAME_HEADER_SIZE:
        return None
    if data[pos : pos + 4] != FRAME_MAGIC:
        return None
    (crc,) = struct.unpack_from("<I", data, pos + FRAME_HEADER.size)
    if crc32(data[pos : pos + FRAME_HEADER.size]) != crc:
        return None
    _, fmt, flags, _, length, raw_length, count, first, last, tmin, tmax = FRAME_HEADER.unpack_from(data, pos)
    return FrameHeader(offset, fmt, flags, length, raw_length, count, first, last, tmin, tmax)


def array_header(count: int) -> bytes:
    """msgpack array32 header, so a frame's raw records decode as one array."""
    return b"\xdd" + count.to_bytes(4, "big")
