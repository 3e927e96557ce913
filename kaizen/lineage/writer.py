"""Append-only lineage writer: the producer encodes into an in-memory buffer and returns; a background
thread frames, compresses (zstd, GIL released), checksums and writes.

Producer cost is one msgspec `encode` (for `append`) and a memcpy into a reusable chunk
(kaizen/ext/recbuf.pyx); every `CHUNK_RECORDS` records or `CHUNK_BYTES` bytes make a chunk, and each
chunk becomes one frame: split into skeleton + delta-coded numbers (kaizen/ext/msgsplit.pyx, GIL
released), zstd-compressed (GIL released), checksummed and written. Written chunks go back to the
producer's buffer, so steady-state appends touch no fresh memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

import msgspec
import zstandard

from kaizen.config import LineageConfig
from kaizen.ext import msgsplit
from kaizen.ext.recbuf import Chunk, RecordBuffer
from kaizen.lineage import format as fmt
from kaizen.lineage.records import SCHEMA_VERSION, Base
from kaizen.lineage.scan import last_seq_of, repair_tail, segment_paths

CHUNK_RECORDS = 4096  # records per frame (a frame is also cut at each flush)
CHUNK_BYTES = 2 << 20  # ... or at this many bytes of records
WAKE_CHUNKS = 4  # sealed chunks that wake the writer thread before its flush timer
MAX_PENDING_CHUNKS = 16  # producer blocks past this many chunks in flight (disk or zstd too slow);
# chunks are reused, so this also bounds the buffer memory: 16 x ~2 MiB. Smaller keeps a writer that
# shares the producer's core working on chunks still in cache; larger rides out longer disk stalls.
DICT_NAME = "zstd.dict"
# Past MAX_PENDING_CHUNKS the producer (the event loop) is never blocked for records a run can do
# without: market data, features, predictions and decisions are dropped and counted (a RiskEvent
# says how many once the writer caught up). Orders, fills, funding, risk events and reconciles are
# small and are what the books are rebuilt from: they are kept, blocking only past this hard bound.
HARD_PENDING_CHUNKS = 2 * MAX_PENDING_CHUNKS
CRITICAL_TAGS = frozenset(
    {"order", "fill", "funding", "risk", "reconcile", "run_start", "run_end", "model_swap", "pointer_move",
     "rollback"}
)  # fmt: skip


class _Stamp(msgspec.Struct):
    ts: int = 0


_stamps = msgspec.msgpack.Decoder(list[_Stamp])
_stamp = msgspec.msgpack.Decoder(_Stamp)
log = logging.getLogger("kaizen.lineage")


def _ts_or_zero(payload: bytes) -> int:
    try:
        return _stamp.decode(payload).ts
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0


def _one_record(payload: bytes) -> bool:
    sp = msgsplit.split([payload])
    return sp is not None and sp[1] == 1


class LineageWriter:
    """Thread-safe appender. `append` / `append_encoded` never touch the disk."""

    def __init__(self, directory: str | os.PathLike[str], config: LineageConfig | None = None) -> None:
        self.config = config or LineageConfig()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not -7 <= self.config.zstd_level <= 22:
            from kaizen.errors import ConfigError

            raise ConfigError(f"lineage.zstd_level must be in -7..22, got {self.config.zstd_level}")
        self._lockfile = _lock_dir(self.dir)  # one writer per log; the kernel drops it if we die
        try:
            self.repaired: list[tuple[str, int, int]] = []  # (segment, offset, bytes dropped) at open
            segs = segment_paths(self.dir)
            if segs:
                dropped = repair_tail(segs[-1])
                if dropped is not None:
                    self.repaired.append(dropped)
            self._next_seq = self._find_next_seq()
            self._dict = self._load_dict()
            self._zc = _compressor(self.config, self._dict)
        except BaseException:
            self._lockfile.close()
            raise
        self._enc = msgspec.msgpack.Encoder()
        self._space = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._done = threading.Condition(threading.Lock())
        self._sealed: deque[Chunk] = deque()
        self._buf = RecordBuffer(self._sealed, self._enc, self._on_seal, CHUNK_RECORDS, CHUNK_BYTES)
        # The hot path calls the Cython buffer directly (no Python frame in between).
        self.append = self._buf.append
        self.append_encoded = self._buf.append_encoded
        self.dropped = 0  # non-critical records dropped while the writer was behind
        self._dropped_reported = 0
        self._overloaded = False
        self._written = 0  # records written to the OS
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._seg_file = None
        self._idx_file = None
        self._seg_path: Path | None = None
        self._seg_size = 0
        self._seg_opened = 0.0
        self._last_fsync = 0.0
        self._dirty = False  # written to the OS since the last fsync
        self.frames_written = 0
        self.malformed = 0  # append_encoded payloads that were not one well-formed msgpack record
        self.bytes_written = 0
        self.raw_bytes = 0
        self._thread = threading.Thread(target=self._run, name="lineage-writer", daemon=True)
        self._thread.start()

    # --- producer side ------------------------------------------------------------------------
    # `append` and `append_encoded` are replaced per instance by the RecordBuffer's methods; these
    # definitions document them and serve subclasses.
    def append(self, record: Base) -> None:
        """Encode `record` and queue it. Returns at once; never does I/O."""
        self._buf.append(record)

    def append_encoded(self, payload: bytes | bytearray | memoryview, ts: int | None = None) -> None:
        """Queue one record already encoded with msgspec msgpack (e.g. by the Cython hot path); it is
        copied, so the caller may reuse its buffer. `ts` is accepted for compatibility and unused:
        the writer reads each record's ts itself."""
        self._buf.append_encoded(payload, ts)

    def _on_seal(self, _count: int) -> None:
        # Called by the buffer after it handed a chunk over (producer thread, GIL held).
        if self._error is not None:
            raise RuntimeError(f"lineage writer failed: {self._error}") from self._error
        buf = self._buf
        if buf.outstanding >= WAKE_CHUNKS and not self._wake.is_set():
            self._wake.set()  # enough for a batch: don't wait for the flush timer
        if buf.outstanding > MAX_PENDING_CHUNKS and not self._overloaded:
            # disk or zstd too slow: from now on only critical records are kept (drop-and-count),
            # so the producer never waits here
            self._wake.set()
            self._overloaded = True
            self.append = self._append_overloaded
            self.append_encoded = self._append_encoded_overloaded
        if buf.outstanding > HARD_PENDING_CHUNKS:
            self._wait_for_space(HARD_PENDING_CHUNKS)

    def _wait_for_space(self, bound: int) -> None:
        buf = self._buf
        self._wake.set()
        with self._space:
            while buf.outstanding > bound and self._error is None and self._thread.is_alive():
                self._space.wait(0.05)

    def _caught_up(self) -> bool:
        if self._buf.outstanding > MAX_PENDING_CHUNKS // 2:
            return False
        self._overloaded = False
        self.append = self._buf.append
        self.append_encoded = self._buf.append_encoded
        n = self.dropped - self._dropped_reported
        if n:
            self._dropped_reported = self.dropped
            from kaizen.lineage.ids import new_id
            from kaizen.lineage.records import RiskEvent

            self._buf.append(
                RiskEvent(
                    id=new_id(),
                    ts=time.time_ns(),
                    kind="lineage_dropped",
                    detail=f"{n} non-critical records dropped (writer behind; {self.dropped} in this run)",
                )
            )
        return True

    def _append_overloaded(self, record: Base) -> None:
        if self._caught_up():
            self._buf.append(record)
        elif type(record).__struct_config__.tag in CRITICAL_TAGS:
            self._buf.append(record)
        else:
            self.dropped += 1

    def _append_encoded_overloaded(self, payload, ts: int | None = None) -> None:
        if self._caught_up():
            self._buf.append_encoded(payload, ts)
        else:
            self.dropped += 1  # pre-encoded records are the hot path's market data

    def flush(self) -> None:
        """Block until every record appended before this call has been written to the OS: it then
        survives the death of this process. With fsync = "always" it is also on disk (file data, index
        and the segment's directory entry fsync'd) when this returns: an acknowledged record survives
        a power loss too. "interval" fsyncs at most one flush interval after the write, "never" leaves
        it to the OS."""
        target = self._buf.seal()
        self._wake.set()
        with self._done:
            while self._written < target and self._error is None and self._thread.is_alive():
                self._done.wait(0.05)
        if self._error is not None:
            raise RuntimeError(f"lineage writer failed: {self._error}") from self._error

    def close(self) -> None:
        """Drain everything, fsync (unless fsync = "never") and close the files."""
        if self._closed:
            return
        if self._overloaded:  # the drop count goes into the log before it closes
            self._wait_for_space(MAX_PENDING_CHUNKS // 2)
            self._caught_up()
        try:
            self.flush()
        finally:
            self._closed = True
            self._buf.closed = True  # a late append raises
            self._buf.seal()  # anything appended during the flush above still gets written
            self._closing = True
            self._wake.set()
            self._thread.join()
            self._lockfile.close()
        if self._error is not None:
            raise RuntimeError(f"lineage writer failed: {self._error}") from self._error

    def __enter__(self) -> LineageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def next_seq(self) -> int:
        """Sequence number the next written record will get (records are numbered from 0)."""
        return self._next_seq

    # --- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.config.flush_interval_ms / 1000.0
        sealed = self._sealed
        try:
            while True:
                self._wake.wait(interval)
                self._wake.clear()
                self._buf.seal()  # what the producer has so far goes out with this cycle
                batch = []
                while sealed:
                    batch.append(sealed.popleft())
                if batch:
                    self._write_batch(batch)
                    n = 0
                    for chunk in batch:
                        n += chunk.count
                        self._buf.recycle(chunk, MAX_PENDING_CHUNKS + 2)
                    with self._space:
                        self._written += n
                        self._space.notify_all()
                    with self._done:
                        self._done.notify_all()
                elif self._closing:
                    break
                elif self._sync_due(time.monotonic()):  # idle: what was written gets its fsync
                    self._sync()
        except BaseException as exc:  # surfaced to the producer on flush/close/next seal
            self._error = exc
        finally:
            try:
                self._close_segment()
            except OSError as exc:
                self._error = self._error or exc
            with self._done:
                self._done.notify_all()

    def _frame_input(self, chunk: Chunk) -> tuple[bytes, int, int, int, int, int] | None:
        """(zstd input, raw length, records, ts_min, ts_max, flags) for one chunk; None if nothing in
        it is a well-formed record. Malformed payloads (from `append_encoded`) are dropped and counted."""
        if self.config.split_numbers:
            sp = msgsplit.split_chunk(chunk)
            if sp is None or sp[1] != chunk.count:
                parts = self._drop_malformed(chunk.parts())
                sp = msgsplit.split(parts) if parts else None
            if sp is None:
                return None
            data, n, ts_min, ts_max, nbytes = sp
            return data, nbytes + 5, n, ts_min, ts_max, fmt.FLAG_SPLIT
        parts = chunk.parts()
        raw = fmt.array_header(len(parts)) + b"".join(parts)
        try:
            tss = [s.ts for s in _stamps.decode(raw)]
        except (msgspec.DecodeError, msgspec.ValidationError):
            parts = self._drop_malformed(parts)
            if not parts:
                return None
            raw = fmt.array_header(len(parts)) + b"".join(parts)
            tss = [_ts_or_zero(p) for p in parts]
        return raw, len(raw), len(parts), min(tss), max(tss), 0

    def _drop_malformed(self, parts: list[bytes]) -> list[bytes]:
        # Slow path, only when a chunk holds a bad payload: check each one on its own.
        keep = [p for p in parts if _one_record(p)]
        dropped = len(parts) - len(keep)
        if dropped:
            self.malformed += dropped
            log.error(
                "lineage: dropped %d malformed record(s) from append_encoded (%d in all)",
                dropped,
                self.malformed,
            )
        return keep

    def _write_batch(self, batch: list[Chunk]) -> None:
        frames = [f for f in map(self._frame_input, batch) if f is not None]
        if not frames:
            return
        if len(frames) == 1 or not self.config.compress_threads:
            payloads = [self._zc.compress(f[0]) for f in frames]
        else:  # one call, zstd workers in parallel
            coll = self._zc.multi_compress_to_buffer(
                [f[0] for f in frames], threads=self.config.compress_threads
            )
            payloads = [coll[i].tobytes() for i in range(len(coll))]
        flags = fmt.FLAG_DICT if self._dict is not None else 0
        now = time.monotonic()
        if self._seg_file is not None and now - self._seg_opened >= self.config.segment_max_seconds:
            self._close_segment()
        out: list[bytes] = []
        entries: list[bytes] = []
        for (_, raw_length, n, ts_min, ts_max, split), payload in zip(frames, payloads, strict=True):
            if self._seg_file is None:
                self._open_segment()
            first = self._next_seq
            last = first + n - 1
            head, trail = fmt.pack_frame(payload, raw_length, n, first, last, ts_min, ts_max, flags | split)
            size = len(head) + len(payload) + len(trail)
            entries.append(fmt.INDEX_ENTRY.pack(self._seg_size, size, n, first, last, ts_min, ts_max))
            out += (head, payload, trail)
            self._seg_size += size
            self._next_seq = last + 1
            self.frames_written += 1
            self.bytes_written += size
            self.raw_bytes += raw_length
            if self._seg_size >= self.config.segment_max_bytes:
                self._emit(out, entries)
                out, entries = [], []
                self._close_segment()  # fsync'd unless fsync = "never"
        if out:
            self._emit(out, entries)
        # "always": this cycle is on disk before any record of it is acknowledged (flush returns after
        # `_written` moves, which happens after this); "interval": at most one flush interval late.
        if self.config.fsync == "always" or self._sync_due(now):
            self._sync()

    def _sync_due(self, now: float) -> bool:
        return (
            self.config.fsync == "interval"
            and self._dirty
            and now - self._last_fsync >= self.config.flush_interval_ms / 1000.0
        )

    def _emit(self, parts: list[bytes], entries: list[bytes]) -> None:
        # The frame goes first, its index entry after: an index entry never points past the data.
        self._seg_file.write(b"".join(parts))
        self._seg_file.flush()
        self._idx_file.write(b"".join(entries))
        self._idx_file.flush()
        self._dirty = True

    def _sync(self) -> None:
        if self._seg_file is None:
            return
        os.fsync(self._seg_file.fileno())
        os.fsync(self._idx_file.fileno())
        self._last_fsync = time.monotonic()
        self._dirty = False

    def _open_segment(self) -> None:
        path = self.dir / fmt.segment_name(self._next_seq)
        self._seg_file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in _close_segment
        self._idx_file = open(path.with_suffix(fmt.IDX_SUFFIX), "wb", buffering=0)  # noqa: SIM115
        flags = fmt.FLAG_DICT if self._dict is not None else 0
        header = fmt.pack_segment_header(SCHEMA_VERSION, time.time_ns(), self._next_seq, flags)
        self._seg_file.write(header)
        self._seg_size = len(header)
        self._seg_path = path
        self._seg_opened = time.monotonic()
        if self.config.fsync != "never":
            os.fsync(self._seg_file.fileno())
            _fsync_dir(self.dir)

    def _close_segment(self) -> None:
        if self._seg_file is None:
            return
        if self.config.fsync != "never":
            self._sync()
        self._seg_file.close()
        self._idx_file.close()
        self._seg_file = self._idx_file = None

    # --- open-time helpers --------------------------------------------------------------------
    def _find_next_seq(self) -> int:
        for seg in reversed(segment_paths(self.dir)):
            last = last_seq_of(seg)
            if last is not None:
                return last + 1
        return 0

    def _load_dict(self) -> zstandard.ZstdCompressionDict | None:
        path = self.config.zstd_dict
        if not path:
            return None
        from kaizen.errors import ConfigError

        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read lineage.zstd_dict: {exc.strerror}") from None
        # The log carries its own copy so readers need no config.
        target = self.dir / DICT_NAME
        if target.exists() and target.read_bytes() != data:
            raise ConfigError(f"{path}: lineage.zstd_dict differs from the dictionary already in {self.dir}")
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.config.fsync != "never":  # without it no frame of this log can be read
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
            if self.config.fsync != "never":
                _fsync_dir(self.dir)
        return zstandard.ZstdCompressionDict(data)


def _compressor(config: LineageConfig, dict_data) -> zstandard.ZstdCompressor:
    if not config.zstd_fast:
        return zstandard.ZstdCompressor(level=config.zstd_level, dict_data=dict_data)
    # The preset, tuned on bench/lineage.py's records after the split pre-filter: the skeleton is
    # nearly all repeats and the numbers are short varints, so level 1 keeps 93% of level 3's ratio
    # (14.6x vs 15.6x against msgpack) at a third of its CPU (~60 vs ~175 ns/record on the dev box).
    # Without the split (split_numbers = false) a tuned "fast" strategy (larger hash table, 5-byte
    # matches) is the better preset. Decompression needs no parameters: no format change either way.
    if config.split_numbers:
        return zstandard.ZstdCompressor(level=1, dict_data=dict_data)
    params = zstandard.ZstdCompressionParameters(
        strategy=zstandard.STRATEGY_FAST,
        window_log=20,
        hash_log=16,
        chain_log=16,
        search_log=1,
        min_match=5,
        target_length=0,
    )
    return zstandard.ZstdCompressor(compression_params=params, dict_data=dict_data)


def _lock_dir(directory: Path):
    import fcntl

    from kaizen.errors import KaizenError

    fh = open(directory / "writer.lock", "a+b")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise KaizenError(f"{directory}: another lineage writer has this log open") from None
    return fh


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
