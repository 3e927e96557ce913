"""A dependency-free progress bar for long CLI work (stderr, redrawn at most 10 times a second)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: float, label: str = "", stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(float(total), 1e-12)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0.0
        self._t0 = time.monotonic()
        self._last = 0.0
        self._enabled = True

    def update(self, done: float, note: str = "") -> None:
        self.done = min(float(done), self.total)
        now = time.monotonic()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        frac = self.done / self.total
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = now - self._t0
        eta = f" ETA {elapsed / frac - elapsed:5.0f}s" if 0.01 < frac < 1.0 else ""
        msg = f"\r{self.label} [{bar}] {frac * 100:5.1f}% {elapsed:6.1f}s{eta} {note}"
        try:
            self.stream.write(msg[:160].ljust(80))
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def advance(self, step: float = 1.0, note: str = "") -> None:
        self.update(self.done + step, note)

    def close(self) -> None:
        self.update(self.total)
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
