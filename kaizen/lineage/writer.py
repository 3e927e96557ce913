"""Append-only lineage writer: the producer encodes into an in-memory buffer and returns; a background
thread frames, compresses (zstd, GIL released), checksums and writes.

Producer cost is one msgspec `encode` plus a lock and a list append; every `CHUNK_RECORDS` records
make a chunk, each chunk becomes one frame, and all chunks pending in one cycle are compressed in a
single zstandard call (GIL released) so the writer thread needs the GIL only a few times per cycle.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path

import msgspec
import zstandard

from kaizen.config import LineageConfig
from kaizen.lineage import format as fmt
from kaizen.lineage.records import SCHEMA_VERSION, Base
from kaizen.lineage.scan import last_seq_of, repair_tail, segment_paths

CHUNK_RECORDS = 2048  # records per frame (a frame is also cut at each flush)
WAKE_RECORDS = 8 * CHUNK_RECORDS  # queued records that wake the writer thread before its timer
MAX_PENDING_RECORDS = 1 << 20  # producer blocks past this many queued records (disk or zstd too slow)
DICT_NAME = "zstd.dict"


class _Closed(list):
    """Stands in for the chunk list after close(), so a late append fails loudly at no fast-path cost."""

    def append(self, _item: object) -> None:
        raise RuntimeError("lineage writer is closed")


class _Stamp(msgspec.Struct):
    ts: int = 0


_stamps = msgspec.msgpack.Decoder(list[_Stamp])


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
            self._zc = zstandard.ZstdCompressor(level=self.config.zstd_level, dict_data=self._dict)
        except BaseException:
            self._lockfile.close()
            raise
        self._enc = msgspec.msgpack.Encoder()
        self._encode = self._enc.encode
        self._lock = threading.Lock()
        self._space = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._done = threading.Condition(threading.Lock())
        self._parts: list[bytes] = []
        self._ts: list[int | None] = []
        self._sealed: deque[tuple[list[bytes], list[int | None]]] = deque()
        self._pending = 0
        self._appended = 0  # records handed to us
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
        self.frames_written = 0
        self.bytes_written = 0
        self.raw_bytes = 0
        self._thread = threading.Thread(target=self._run, name="lineage-writer", daemon=True)
        self._thread.start()

    # --- producer side ------------------------------------------------------------------------
    # Each record is encoded into its own small bytes object (pymalloc, no large-buffer reallocs on
    # the producer) and kept in a list; the writer thread joins a chunk into one frame.
    def append(self, record: Base) -> None:
        """Encode `record` and queue it. Returns at once; never does I/O."""
        payload = self._encode(record)
        ts = record.ts
        lock = self._lock
        lock.acquire()
        try:
            parts = self._parts
            parts.append(payload)
            self._ts.append(ts)
            if len(parts) >= CHUNK_RECORDS:
                self._seal()
        finally:
            lock.release()

    def append_encoded(self, payload: bytes | bytearray | memoryview, ts: int | None = None) -> None:
        """Queue one record already encoded with msgspec msgpack (e.g. by the Cython hot path).

        `ts` (the record's ts) saves the writer thread from decoding it for the frame's time span."""
        if type(payload) is not bytes:
            payload = bytes(payload)  # the caller may reuse its buffer
        lock = self._lock
        lock.acquire()
        try:
            parts = self._parts
            parts.append(payload)
            self._ts.append(ts)
            if len(parts) >= CHUNK_RECORDS:
                self._seal()
        finally:
            lock.release()

    def _seal(self) -> None:
        # Called with the lock held: hand the current chunk to the writer thread.
        if self._closed:
            self._parts = []
            raise RuntimeError("lineage writer is closed")
        if self._error is not None:
            raise RuntimeError(f"lineage writer failed: {self._error}") from self._error
        self._move()
        if self._pending >= WAKE_RECORDS and not self._wake.is_set():
            self._wake.set()  # enough for a batch: don't wait for the flush timer
        if self._pending > MAX_PENDING_RECORDS:
            self._lock.release()
            try:
                self._wake.set()
                with self._space:
                    while (
                        self._pending > MAX_PENDING_RECORDS
                        and self._error is None
                        and self._thread.is_alive()
                    ):
                        self._space.wait(0.05)
            finally:
                self._lock.acquire()

    def _move(self) -> None:
        parts = self._parts
        self._sealed.append((parts, self._ts))
        self._appended += len(parts)
        self._pending += len(parts)
        self._parts = []
        self._ts = []

    def flush(self) -> None:
        """Block until every record appended before this call has been written to the OS."""
        with self._lock:
            if self._parts:
                self._move()
            target = self._appended
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
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._parts = self._ts = _Closed()
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
        try:
            while True:
                self._wake.wait(interval)
                self._wake.clear()
                with self._lock:
                    if self._parts:
                        self._move()
                    batch = list(self._sealed)
                    self._sealed.clear()
                if batch:
                    self._write_batch(batch)
                    n = sum(len(parts) for parts, _ in batch)
                    with self._space:
                        self._pending -= n
                        self._space.notify_all()
                    with self._done:
                        self._written += n
                        self._done.notify_all()
                elif self._closing:
                    break
        except BaseException as exc:  # surfaced to the producer on flush/close/next seal
            self._error = exc
        finally:
            try:
                self._close_segment()
            except OSError as exc:
                self._error = self._error or exc
            with self._done:
                self._done.notify_all()

    def _write_batch(self, batch: list[tuple[list[bytes], list[int | None]]]) -> None:
        raws = []
        for parts, _ in batch:  # one copy: the msgpack array header goes in front of the records
            parts.insert(0, fmt.array_header(len(parts)))
            raws.append(b"".join(parts))
            del parts[0]
        spans = []
        for raw, (_, tss) in zip(raws, batch, strict=True):
            if None in tss:  # append_encoded without ts: read them from the records
                tss = [s.ts for s in _stamps.decode(raw)]
            spans.append((min(tss), max(tss)))
        if len(raws) == 1:
            payloads = [self._zc.compress(raws[0])]
        else:  # one call, GIL released for the whole batch
            coll = self._zc.multi_compress_to_buffer(raws, threads=self.config.compress_threads)
            payloads = [coll[i].tobytes() for i in range(len(coll))]
        flags = fmt.FLAG_DICT if self._dict is not None else 0
        now = time.monotonic()
        if self._seg_file is not None and now - self._seg_opened >= self.config.segment_max_seconds:
            self._close_segment()
        out: list[bytes] = []
        entries: list[bytes] = []
        always = self.config.fsync == "always"
        for raw, payload, (ts_min, ts_max), (parts, _) in zip(raws, payloads, spans, batch, strict=True):
            n = len(parts)
            if self._seg_file is None:
                self._open_segment()
            first = self._next_seq
            last = first + n - 1
            head, trail = fmt.pack_frame(payload, len(raw), n, first, last, ts_min, ts_max, flags)
            size = len(head) + len(payload) + len(trail)
            entries.append(fmt.INDEX_ENTRY.pack(self._seg_size, size, n, first, last, ts_min, ts_max))
            out += (head, payload, trail)
            self._seg_size += size
            self._next_seq = last + 1
            self.frames_written += 1
            self.bytes_written += size
            self.raw_bytes += len(raw)
            if always or self._seg_size >= self.config.segment_max_bytes:
                self._emit(out, entries, sync=always)
                out, entries = [], []
                if self._seg_size >= self.config.segment_max_bytes:
                    self._close_segment()
        if out:
            self._emit(out, entries, sync=False)
        if self.config.fsync == "interval" and self._seg_file is not None:
            self._sync()

    def _emit(self, parts: list[bytes], entries: list[bytes], sync: bool) -> None:
        # The frame goes first, its index entry after: an index entry never points past the data.
        self._seg_file.write(b"".join(parts))
        self._seg_file.flush()
        self._idx_file.write(b"".join(entries))
        self._idx_file.flush()
        if sync:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self._seg_file.fileno())
        os.fsync(self._idx_file.fileno())

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
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return zstandard.ZstdCompressionDict(data)


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
