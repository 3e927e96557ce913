"""Recorder: writes what arrives as `receive_time_ns<space>raw_json` gzip lines.

The hot path only appends to a list; a background thread compresses and writes, so disk and
zlib never block the event loop (DESIGN: nothing blocking on the hot path).
"""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path


class Recorder:
    def __init__(self, path: str | Path, flush_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = gzip.open(self.path, "ab")
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flush_every = flush_every_s
        self.lines = 0
        self._thread = threading.Thread(target=self._run, name="kaizen-recorder", daemon=True)
        self._thread.start()

    def write(self, recv_ns: int, raw: bytes) -> None:
        """Called on the event loop for each message (bytes exactly as received)."""
        line = b"%d %s\n" % (recv_ns, raw.rstrip(b"\r\n"))
        with self._lock:
            self._pending.append(line)

    def write_snapshot(self, recv_ns: int, symbol: str, raw: bytes) -> None:
        self.write(recv_ns, b'{"stream":"%s@snapshot","data":%s}' % (symbol.lower().encode(), raw))

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._fh.write(b"".join(batch))
            self.lines += len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self._flush_every):
            self._drain()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()
        self._fh.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def now_ns() -> int:
    return time.time_ns()
