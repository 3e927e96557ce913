"""Python-visible API of kaizen.ext.recbuf: the lineage writer's producer-side record buffer."""

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

class Chunk:
    @property
    def count(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def parts(self) -> list[bytes]: ...

class RecordBuffer:
    appended: int
    outstanding: int
    closed: bool
    def __init__(
        self,
        sealed: deque[Chunk],
        encoder: msgspec.msgpack.Encoder,
        on_seal: Callable[[int], object],
        chunk_records: int,
        chunk_bytes: int,
    ) -> None: ...
    def append(self, record: Any) -> None: ...
    def append_encoded(self, payload: bytes | bytearray | memoryview, ts: int | None = None) -> None: ...
    def seal(self) -> int: ...
    def recycle(self, chunk: Chunk, keep: int = 64) -> None: ...
    @property
    def pending_in_current(self) -> int: ...
