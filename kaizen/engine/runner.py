"""Run the engine from a config: start the embedded simulator when paper mode names no venue,
pin the CPU, run on uvloop for the configured time, shut down cleanly, report."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from kaizen.config import Config
from kaizen.errors import ConfigError, KaizenError
from kaizen.progress import Progress


@dataclass
class RunResult:
    summary: dict[str, float]
    lineage_dir: Path
    errors: list[str] = field(default_factory=list)


class SimProcess:
    """`kaizen sim` as a child process; its first stdout line carries the REST and WS URLs."""

    def __init__(
        self, seed: int, speed: float, api_key: str, api_secret: str, host: str = "127.0.0.1", port: int = 0
    ):
        cmd = [
            sys.executable,
            "-m",
            "kaizen",
            "sim",
            "--host",
            host,
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--speed",
            str(speed),
            "--api-key",
            api_key,
            "--api-secret",
            api_secret,
        ]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("kaizen-sim "):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise KaizenError(f"simulator failed to start: {(line + err).strip().splitlines()[-1:] or '?'}")
        fields = dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)
        self.rest_url, self.ws_url = fields["rest"], fields["ws"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def config_hash(cfg: Config) -> str:
    return hashlib.sha256(msgspec.json.encode(cfg)).hexdigest()[:16]


def pin_cpu(cpu: int) -> None:
    if cpu < 0:
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"engine.cpu_pin = {cpu}: cannot pin to that CPU ({exc})") from None


def run(cfg: Config, duration_s: float | None = None, show_progress: bool = True) -> RunResult:
    """Run the engine; returns the summary once it has stopped and flushed its lineage."""
    pin_cpu(cfg.engine.cpu_pin)
    duration = cfg.engine.duration_s if duration_s is None else duration_s
    sim = None
    rest_url, ws_url = cfg.venue.rest_url, cfg.venue.ws_url
    if cfg.mode == "paper" and not rest_url:
        # Fresh credentials for the embedded simulator, handed to our own client through the
        # environment variables the config names (never written anywhere).
        key, secret = secrets.token_hex(16), secrets.token_hex(32)
        os.environ[cfg.venue.api_key_env] = key
        os.environ[cfg.venue.api_secret_env] = secret
        sim = SimProcess(cfg.sim.seed, cfg.sim.speed, key, secret, cfg.sim.host, cfg.sim.port)
        rest_url, ws_url = sim.rest_url, sim.ws_url
    try:
        import uvloop

        return uvloop.run(_run_async(cfg, rest_url, ws_url, duration, show_progress))
    finally:
        if sim is not None:
            sim.stop()


async def _run_async(
    cfg: Config, rest_url: str, ws_url: str, duration: float, show_progress: bool
) -> RunResult:
    from kaizen.engine.engine import Engine
    from kaizen.lineage.writer import LineageWriter
    from kaizen.venue import make_venue

    lineage_dir = Path(cfg.lineage.dir)
    writer = LineageWriter(lineage_dir, cfg.lineage)
    venue = make_venue(cfg, rest_url=rest_url, ws_url=ws_url)
    engine = Engine(cfg, venue, writer, config_hash(cfg), state_path=lineage_dir.parent / "risk_halt.json")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reason = "duration"
    try:
        await engine.start()
        t0 = time.monotonic()
        bar = Progress(duration, "trading") if (show_progress and duration > 0) else None
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if duration > 0 and elapsed >= duration:
                break
            if engine.risk is not None and engine.risk.halted:
                reason = "kill_switch"
                break
            if bar is not None:
                s = engine.router.summary()
                bar.update(
                    elapsed,
                    f"bars {engine.bars} trades {int(s.get('trades', 0))} pnl {s.get('net_pnl', 0.0):+.2f}",
                )
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass
        if stop.is_set():
            reason = "signal"
        if bar is not None:
            bar.close()
        summary = await engine.stop(reason)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await venue.close()
        writer.close()
    (lineage_dir.parent / "summary.json").write_bytes(msgspec.json.encode(summary))
    return RunResult(summary, lineage_dir, engine.errors)
