"""Read a lineage log: filter by type, symbol, model, time and sequence; skip and report damage.

Seeking uses each segment's index (sequence and time span per frame) so a filtered read only
decompresses frames that can match; whatever the index does not cover is walked and checksummed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec
import zstandard

from kaizen.ext import msgsplit
from kaizen.lineage import format as fmt
from kaizen.lineage.records import RECORD_TYPES, SCHEMA_VERSION, Base, Record
from kaizen.lineage.scan import Damage, map_file, payload_of, read_index, segment_paths, walk

DICT_NAME = "zstd.dict"


class _Tag(msgspec.Struct):
    type: str = ""


class Frame(NamedTuple):
    segment: str
    schema: int
    header: fmt.FrameHeader


def writer_active(directory: Path) -> bool:
    """True while a LineageWriter holds this log open (it holds an exclusive flock)."""
    import fcntl

    try:
        fh = open(directory / "writer.lock", "rb")  # noqa: SIM115
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


class LineageReader:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.damage: list[tuple[str, int, int]] = []  # (segment, offset, bytes lost)
        self.damage_detail: list[Damage] = []
        self.unknown: dict[tuple[str, int], int] = {}  # (tag, segment schema) -> records skipped
        self._dec = msgspec.msgpack.Decoder(list[Record])
        self._one = msgspec.msgpack.Decoder(Record)
        self._raw = msgspec.msgpack.Decoder(list[msgspec.Raw])
        self._tag = msgspec.msgpack.Decoder(_Tag)
        dict_path = self.dir / DICT_NAME
        self._zd = zstandard.ZstdDecompressor()
        self._zd_dict = (
            zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dict_path.read_bytes()))
            if dict_path.exists()
            else None
        )

    def segments(self) -> list[Path]:
        return segment_paths(self.dir)

    # --- frames -------------------------------------------------------------------------------
    def _report(self, d: Damage) -> None:
        self.damage.append((d.segment, d.offset, d.bytes_lost))
        self.damage_detail.append(d)

    def frames(
        self,
        seq_from: int | None = None,
        seq_to: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> Iterator[tuple[Frame, memoryview]]:
        """Intact frames that may hold matching records, with their compressed payloads."""
        segs = self.segments()
        self._newest = segs[-1] if segs else None
        starts = [int(p.stem) for p in segs]
        for i, seg in enumerate(segs):
            if seq_to is not None and starts[i] > seq_to:
                break
            if seq_from is not None and i + 1 < len(segs) and starts[i + 1] <= seq_from:
                continue  # the next segment starts at or before seq_from
            yield from self._segment_frames(seg, seq_from, seq_to, since_ns, until_ns)

    def _segment_frames(self, seg, seq_from, seq_to, since_ns, until_ns):
        try:
            data = map_file(seg)
        except OSError as exc:
            self._report(Damage(str(seg), 0, 0, f"cannot read: {exc.strerror}"))
            return
        header = fmt.unpack_segment_header(data[: fmt.SEG_HEADER_SIZE])
        if header is None:
            if len(data):
                self._report(Damage(str(seg), 0, len(data), "bad or torn segment header"))
            return
        if header.format > fmt.FORMAT_VERSION:
            self._report(
                Damage(str(seg), 0, len(data), f"segment format {header.format} is newer than this reader")
            )
            return

        def wanted(first, last, tmin, tmax) -> bool:
            return not (
                (seq_from is not None and last < seq_from)
                or (seq_to is not None and first > seq_to)
                or (since_ns is not None and tmax < since_ns)
                or (until_ns is not None and tmin > until_ns)
            )

        pos = fmt.SEG_HEADER_SIZE
        end = len(data)
        for e in read_index(seg):
            if e.offset < pos or e.offset + e.size > end:
                break  # the index disagrees with the file from here: walk the rest
            if e.offset > pos:  # something the index does not cover: check it
                for item in walk(data, pos, e.offset, str(seg)):
                    if isinstance(item, Damage):
                        self._report(item)
                    elif wanted(item.first_seq, item.last_seq, item.ts_min, item.ts_max):
                        yield Frame(str(seg), header.schema, item), payload_of(data, item)
                pos = e.offset
            if not wanted(e.first_seq, e.last_seq, e.ts_min, e.ts_max):
                pos = e.offset + e.size
                continue
            head = fmt.unpack_frame_header(data, e.offset, e.offset)
            if head is None or head.size != e.size or head.first_seq != e.first_seq:
                break
            for item in walk(data, e.offset, e.offset + e.size, str(seg)):
                if isinstance(item, Damage):
                    self._report(item)
                else:
                    yield Frame(str(seg), header.schema, item), payload_of(data, item)
            pos = e.offset + e.size
        # The newest segment of a log a writer has open may end in a frame being written: not damage.
        growing = seg == self._newest and writer_active(self.dir)
        for item in walk(data, pos, end, str(seg), at_eof=not growing):
            if isinstance(item, Damage):
                self._report(item)
            elif wanted(item.first_seq, item.last_seq, item.ts_min, item.ts_max):
                yield Frame(str(seg), header.schema, item), payload_of(data, item)

    def frame_bytes(self, frame: Frame, payload: memoryview) -> bytes | None:
        """The frame's records as one msgpack array (decompressed, un-split); None, reported, if damaged."""
        head = frame.header
        if head.flags & fmt.FLAG_DICT:
            if self._zd_dict is None:
                self._report(Damage(frame.segment, head.offset, head.size, f"needs {DICT_NAME}, not found"))
                return None
            zd = self._zd_dict
        else:
            zd = self._zd
        split = head.flags & fmt.FLAG_SPLIT
        try:  # split output is at most 11/9 of the records' bytes (+ its 4-byte length)
            raw = zd.decompress(
                payload, max_output_size=2 * head.raw_length + 64 if split else head.raw_length
            )
        except zstandard.ZstdError as exc:
            self._report(Damage(frame.segment, head.offset, head.size, f"zstd: {exc}"))
            return None
        if split:
            try:
                raw = msgsplit.join(raw, head.raw_length, head.count)
            except ValueError as exc:
                self._report(Damage(frame.segment, head.offset, head.size, str(exc)))
                return None
        return raw

    def decode_frame(self, frame: Frame, payload: memoryview) -> list[Base]:
        """Decompress and decode one frame; records of unknown type are counted in `unknown`."""
        head = frame.header
        raw = self.frame_bytes(frame, payload)
        if raw is None:
            return []
        try:
            return self._dec.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        # Slow path: decode one by one, so one record this reader does not know costs only itself.
        out: list[Base] = []
        try:
            items = self._raw.decode(raw)
        except msgspec.DecodeError as exc:
            self._report(Damage(frame.segment, head.offset, head.size, f"undecodable frame: {exc}"))
            return []
        for item in items:
            try:
                out.append(self._one.decode(item))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                try:
                    tag = self._tag.decode(item).type
                except (msgspec.ValidationError, msgspec.DecodeError):
                    tag = "?"
                if tag not in RECORD_TYPES:
                    key = (tag, frame.schema)
                    self.unknown[key] = self.unknown.get(key, 0) + 1
                else:
                    self._report(Damage(frame.segment, head.offset, 0, f"bad {tag!r} record: {exc}"))
        return out

    def unknown_messages(self) -> list[str]:
        return [
            f"skipped {n} record(s) of unknown type {tag!r} (segment schema {schema}, this reader knows "
            f"schema {SCHEMA_VERSION}: upgrade kaizen to read them)"
            for (tag, schema), n in sorted(self.unknown.items())
        ]

    # --- records ------------------------------------------------------------------------------
    def records(
        self,
        types: Iterable[str] | str | None = None,
        symbol: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        model: str | None = None,
        seq_from: int | None = None,
        seq_to: int | None = None,
    ) -> Iterator[Base]:
        for _seq, rec in self.records_with_seq(types, symbol, since_ns, until_ns, model, seq_from, seq_to):
            yield rec

    def records_with_seq(
        self,
        types=None,
        symbol=None,
        since_ns=None,
        until_ns=None,
        model=None,
        seq_from=None,
        seq_to=None,
    ) -> Iterator[tuple[int, Base]]:
        classes = None
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            classes = tuple(RECORD_TYPES[n] for n in names if n in RECORD_TYPES)
        for frame, payload in self.frames(seq_from, seq_to, since_ns, until_ns):
            recs = self.decode_frame(frame, payload)
            seq = frame.header.first_seq
            if len(recs) != frame.header.count:
                seq = None  # some records were skipped: sequence numbers are no longer exact
            for k, rec in enumerate(recs):
                s = seq + k if seq is not None else -1
                if seq_from is not None and 0 <= s < seq_from:
                    continue
                if seq_to is not None and s > seq_to:
                    break
                if classes is not None and not isinstance(rec, classes):
                    continue
                if symbol is not None and rec.symbol != symbol:
                    continue
                if model is not None and rec.model != model:
                    continue
                if since_ns is not None and rec.ts < since_ns:
                    continue
                if until_ns is not None and rec.ts > until_ns:
                    continue
                yield s, rec
