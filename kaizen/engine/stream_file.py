"""Read a recorded combined stream (`<recv ns> <raw JSON>` per line, gzip) into one contiguous
buffer with offsets, so a replay hands the core each frame in place, as the socket would."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RecordedStream:
    buf: np.ndarray            # uint8, every frame back to back
    offsets: np.ndarray        # int64, frame i = buf[offsets[i]:offsets[i + 1]]
    recv_ns: np.ndarray        # int64 receive time per frame
    snapshot: dict | None      # the REST depth snapshot recorded with the stream
    snapshot_at: int           # index of the first frame received after the snapshot

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def frame(self, i: int) -> bytes:
        return self.buf[self.offsets[i] : self.offsets[i + 1]].tobytes()


def read_stream(path: str | Path) -> RecordedStream:
    frames: list[bytes] = []
    recv: list[int] = []
    snap, at = None, 0
    with gzip.open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            ts, sep, body = line.rstrip(b"\n").partition(b" ")
            if not sep or not ts.isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<recv ns> <json>'")
            if body.startswith(b'{"lastUpdateId"'):
                snap, at = json.loads(body), len(frames)
                continue
            frames.append(body)
            recv.append(int(ts))
    lens = np.fromiter((len(b) for b in frames), np.int64, len(frames))
    offsets = np.zeros(len(frames) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    buf = np.frombuffer(b"".join(frames), np.uint8).copy()
    return RecordedStream(buf, offsets, np.asarray(recv, np.int64), snap, at)
