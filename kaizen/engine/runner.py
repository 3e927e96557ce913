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
    halted: str = ""  # the kill switch's one-line halt notice ("" when armed)


class SimProcess:
    """`kaizen sim` as a child process; its first stdout line carries the REST and WS URLs.

    Credentials go through the environment (not argv, which the process list shows); the child's
    stderr goes to a log file so a chatty simulator can never block on a full pipe.
    """

    def __init__(
        self,
        seed: int,
        speed: float,
        api_key: str,
        api_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        balance: float = 10_000.0,
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
            "--balance",
            str(balance),
        ]
        env = dict(os.environ, KAIZEN_SIM_API_KEY=api_key, KAIZEN_SIM_API_SECRET=api_secret)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.log_path = log_path
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        self._err = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err, text=True, env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("kaizen-sim "):
            self.proc.kill()
            self.proc.wait()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path else []
            raise KaizenError(f"simulator failed to start: {(tail or [line.strip() or 'no output'])[0]}")
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
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if hasattr(self._err, "close"):
            self._err.close()


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
    from kaizen.venue.session import check_credentials

    check_credentials(cfg)  # live without keys: one line, before any network call
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
        sim = SimProcess(
            cfg.sim.seed,
            cfg.sim.speed,
            key,
            secret,
            cfg.sim.host,
            cfg.sim.port,
            log_path=Path(cfg.lineage.dir).parent / "sim.log",
            balance=cfg.sim.starting_balance,
        )
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
    from kaizen.venue import session as vs

    lineage_dir = Path(cfg.lineage.dir)
    writer = LineageWriter(lineage_dir, cfg.lineage)
    venue = make_venue(cfg, rest_url=rest_url, ws_url=ws_url)
    engine = Engine(
        cfg, venue, writer, config_hash(cfg), state_path=vs.halt_path(cfg), run_id=vs.run_id_for(cfg)
    )
    stream = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reason = "duration"
    try:
        await vs.start_venue(engine)
        if engine.risk.halted:  # a halted start says so, in one line, and trades nothing
            print(f"kaizen: {vs.halt_line(engine.risk, vs.state_dir(cfg))}", file=sys.stderr)
        stream = await vs.start_user_stream(cfg, engine.router, rest_url, ws_url)
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
        if stream is not None:
            await stream.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await venue.close()
        writer.close()
    (lineage_dir.parent / "summary.json").write_bytes(msgspec.json.encode(summary))
    return RunResult(summary, lineage_dir, engine.errors, vs.halt_line(engine.risk, vs.state_dir(cfg)))
