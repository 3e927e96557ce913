"""Live start-up: missing keys are one line before any network, an unreachable venue is one line
(no traceback), and the shipped live example runs where it is run (no core pinned that a small
machine lacks)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from kaizen import config
from tests.conftest import REPO, run_kaizen

EXAMPLE = REPO / "examples" / "live-binance.toml"


def _local_config(tmp_path: Path, port: int) -> Path:
    text = EXAMPLE.read_text()
    text = text.replace("https://fapi.binance.com", f"http://127.0.0.1:{port}")
    text = text.replace("wss://fstream.binance.com", f"ws://127.0.0.1:{port}")
    text = text.replace("runs/live/lineage", str(tmp_path / "run" / "lineage"))
    cfg = tmp_path / "live.toml"
    cfg.write_text(text)
    return cfg


class _Listener:
    """A TCP port on 127.0.0.1 that counts connections and closes them at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            c.close()

    def close(self) -> None:
        self.sock.close()


def _env(**kv: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAIZEN_API_KEY", "KAIZEN_API_SECRET")}
    env.update(kv)
    return env


def test_live_without_keys_is_one_line_before_any_network(tmp_path):
    lis = _Listener()
    try:
        res = run_kaizen(
            "run", str(_local_config(tmp_path, lis.port)), "--no-progress", env=_env(), timeout=60
        )
    finally:
        lis.close()
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "KAIZEN_API_KEY and KAIZEN_API_SECRET not set" in lines[0], res.stderr
    assert lis.connections == 0


def test_unreachable_venue_at_start_is_one_line(tmp_path):
    lis = _Listener()  # accepts and hangs up: every request fails at the transport
    key, secret = "k" * 64, "s" * 64
    try:
        res = run_kaizen(
            "run",
            str(_local_config(tmp_path, lis.port)),
            "--no-progress",
            env=_env(KAIZEN_API_KEY=key, KAIZEN_API_SECRET=secret),
            timeout=120,
        )
    finally:
        lis.close()
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    errors = [x for x in res.stderr.splitlines() if x.startswith("kaizen: error:")]
    assert len(errors) == 1 and "gave up after" in errors[0], res.stderr[-2000:]
    assert key not in res.stderr and secret not in res.stderr
    assert lis.connections > 0


def test_shipped_live_example_pins_no_core_this_machine_lacks():
    cfg = config.load(EXAMPLE)
    pin = cfg.engine.cpu_pin
    assert pin == -1 or pin in os.sched_getaffinity(0)
