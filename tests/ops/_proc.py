"""A real `kaizen run` child process for the operations tests: its stdout is read on a thread
so a test can wait for a line (the status URL, a reload message) without blocking the engine."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import REPO

STATUS_LINE = re.compile(r"kaizen run: status (http://127\.0\.0\.1:\d+)/status")


def write_config(path: Path, run_dir: Path, *, symbols=("BTCUSDT", "ETHUSDT"), extra: str = "",
                 venue: str = "", speed: float = 600.0, risk: str = "") -> Path:  # fmt: skip
    text = f"""mode = "paper"
symbols = {list(symbols)!r}
{venue}
[risk]
max_open_orders = 8
{risk}
[lineage]
dir = "{run_dir / "lineage"}"
[sim]
speed = {speed}
[engine]
duration_s = 0
status_port = 0
{extra}
""".replace("'", '"')
    path.write_text(text)
    return path


class EngineProc:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        full = dict(os.environ)
        full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
        full.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kaizen", "run", str(config), "--no-progress"],
            cwd=REPO,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.url = ""

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._q.put(line.rstrip("\n"))

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def wait_line(self, pattern: str | re.Pattern, timeout: float = 60.0) -> re.Match:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        for line in list(self.lines):
            if m := rx.search(line):
                return m
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and self._q.empty():
                raise AssertionError(
                    f"no line matching {rx.pattern!r} (rc {self.proc.poll()}); stdout: {self.lines[-10:]}; "
                    f"stderr: {self.stderr[-2000:]}"
                )
            try:
                line = self._q.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if m := rx.search(line):
                return m

    def wait_ready(self, timeout: float = 90.0) -> str:
        self.url = self.wait_line(STATUS_LINE, timeout).group(1)
        return self.url

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
