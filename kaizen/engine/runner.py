"""`kaizen run`: the engine as an operated process.

Start-up: the embedded simulator when paper mode names no venue, the lineage writer (its own
thread: framing, compression and disk never run on the event loop), the venue, the engine; then
the event-loop thread is pinned to `[engine] cpu_pin` (other threads to the other cores), the
stages are timed (kaizen.ops.instrument), the status/metrics endpoint starts on 127.0.0.1, and
the garbage collector is frozen and scheduled (kaizen.ops.process).

Signals: SIGTERM/SIGINT stop taking new risk, cancel open orders, flatten when
`[engine] flatten_on_stop`, drain and close the lineage log, exit 0. SIGHUP reloads the safe
part of the config file (kaizen.ops.reload), logging what changed.

Each phase is its own method of `Session` so that features (user-data stream, restart) slot in
as separate steps.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        extra_args: tuple[str, ...] = (),
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
            *extra_args,
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


def check_cpu_pin(cpu: int) -> None:
    """Fail fast (before any child process starts) on a core this machine does not have; the
    pinning itself happens once the process's threads exist (Session.start)."""
    if cpu < 0:
        return
    from kaizen.ops.process import available_cpus

    cpus = available_cpus()
    if cpu not in cpus:
        raise ConfigError(
            f"engine.cpu_pin = {cpu}: no such core available to this process "
            f"(cores: {','.join(map(str, cpus))})"
        )


def say(msg: str) -> None:
    """Operator lines go to stdout (stderr carries only errors)."""
    print(f"kaizen run: {msg}", flush=True)


def run(
    cfg: Config,
    duration_s: float | None = None,
    show_progress: bool = True,
    config_path: str | Path | None = None,
) -> RunResult:
    """Run the engine; returns the summary once it has stopped and flushed its lineage.
    `config_path`: the file SIGHUP re-reads (no reload without it)."""
    from kaizen.venue.session import check_credentials

    check_credentials(cfg)  # live without keys: one line, before any network call
    check_cpu_pin(cfg.engine.cpu_pin)
    logging.basicConfig(
        level=cfg.engine.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger().setLevel(cfg.engine.log_level.upper())
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

        session = Session(cfg, rest_url, ws_url, duration, show_progress, config_path)
        return uvloop.run(session.run())
    finally:
        if sim is not None:
            sim.stop()


async def _run_async(
    cfg: Config, rest_url: str, ws_url: str, duration: float, show_progress: bool, config_path=None
) -> RunResult:
    """The run on an already running event loop (tests drive it with an in-process simulator)."""
    return await Session(cfg, rest_url, ws_url, duration, show_progress, config_path).run()


class Session:
    """One run of the engine, phase by phase: open, start, watch, shutdown, close."""

    def __init__(
        self,
        cfg: Config,
        rest_url: str,
        ws_url: str,
        duration: float,
        show_progress: bool = True,
        config_path: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.rest_url, self.ws_url = rest_url, ws_url
        self.duration = duration
        self.show_progress = show_progress
        self.config_path = Path(config_path) if config_path is not None else None
        self.lineage_dir = Path(cfg.lineage.dir)
        self.run_dir = self.lineage_dir.parent
        self.stop_event: asyncio.Event | None = None
        self.stop_signal = ""
        self.engine: Any = None
        self.writer: Any = None
        self.venue: Any = None
        self.metrics: Any = None
        self.server: Any = None
        self.gc: Any = None
        self._housekeeping: asyncio.Task | None = None
        self._signals: list[int] = []
        self._t0 = time.monotonic()
        self.stream: Any = None  # the user-data stream (fills and order updates)
        self.live_loop: Any = None  # [strategy] name = "kaizen": the improvement loop (kaizen.loop.live)

    async def run(self) -> RunResult:
        try:
            self.open()
            await self.start()
            reason = await self.watch()
            summary = await self.shutdown(reason)
        finally:
            await self.close()
        from kaizen.venue import session as vs

        (self.run_dir / "summary.json").write_bytes(msgspec.json.encode(summary))
        halted = vs.halt_line(self.engine.risk, vs.state_dir(self.cfg))
        return RunResult(summary, self.lineage_dir, self.engine.errors, halted)

    # ---- phases --------------------------------------------------------------------------------------
    def open(self) -> None:
        """Writer, venue and engine objects; signal handlers (nothing connects yet)."""
        from kaizen.engine.engine import Engine
        from kaizen.lineage.writer import LineageWriter
        from kaizen.ops.metrics import EngineMetrics
        from kaizen.venue import make_venue
        from kaizen.venue import session as vs

        cfg = self.cfg
        self.stop_event = asyncio.Event()
        self.writer = LineageWriter(self.lineage_dir, cfg.lineage)
        self.venue = make_venue(cfg, rest_url=self.rest_url, ws_url=self.ws_url)
        # the halt state and the run's identity live in the run's state directory, so a new run
        # with another lineage directory still finds a halt, and client ids never repeat
        extra: dict[str, Any] = {}
        if cfg.strategy.name == "kaizen":  # the improvement loop on the wall clock (kaizen.loop.live)
            from kaizen.loop.live import build_live_loop

            # the registry lives with the halt state and the run identity: a restart keeps its champion
            root = vs.state_dir(cfg) / "loop"
            self.live_loop = build_live_loop(cfg, root, self.writer, self._now_ns)
            extra = {"strategy": self.live_loop.strategy, "on_bar_closed": self.live_loop.on_bar_closed}
            say(f"improvement loop: history from {cfg.loop.history_dir}, registry in {root}")
        self.engine = Engine(
            cfg, self.venue, self.writer, config_hash(cfg), state_path=vs.halt_path(cfg), run_id=vs.run_id_for(cfg),
            **extra,
        )  # fmt: skip
        if self.live_loop is not None:
            self.live_loop.engine = self.engine
        self.metrics = EngineMetrics()
        self.install_signals()

    async def start(self) -> None:
        """Pin, connect, time the stages, serve status, freeze the start-up heap."""
        from kaizen.ops.instrument import instrument
        from kaizen.ops.process import GcScheduler, pin_hot_thread

        cfg = self.cfg
        # The lineage writer thread exists now: it goes to the other cores, the loop to its own.
        if cfg.engine.cpu_pin >= 0:
            say(pin_hot_thread(cfg.engine.cpu_pin))
        from kaizen.venue import session as vs

        await vs.start_venue(self.engine)  # adopt/cancel the crashed run's orders, equity from the venue
        if self.engine.risk.halted:  # a halted start says so, in one line, and trades nothing
            print(f"kaizen: {vs.halt_line(self.engine.risk, vs.state_dir(cfg))}", file=sys.stderr)
        self.stream = await vs.start_user_stream(cfg, self.engine.router, self.rest_url, self.ws_url)
        if cfg.engine.stage_timing:
            skipped = instrument(self.engine, self.metrics)
        else:
            self.metrics.engine, skipped = self.engine, []
        if skipped:
            say(f"stages not timed (compiled seams): {', '.join(skipped)}")
        await self.start_status_server()
        self.gc = GcScheduler(cfg.engine.gc_every_s, cfg.engine.gc_full_every_s, self.metrics.stage("gc"))
        say(self.gc.freeze())
        self._housekeeping = asyncio.create_task(self._fold_metrics(), name="kaizen-metrics")

    async def start_status_server(self) -> None:
        port = self.cfg.engine.status_port
        if port < 0:
            return
        from kaizen.ops.server import StatusServer

        self.server = StatusServer(self.status, self.metrics.render, port=port)
        try:
            await self.server.start()
        except OSError as exc:
            raise ConfigError(
                f"engine.status_port = {port}: cannot listen on 127.0.0.1 ({exc.strerror})"
            ) from None
        (self.run_dir / "status.url").write_text(self.server.url + "\n")
        say(f"status {self.server.url}/status  metrics {self.server.url}/metrics  (pid {os.getpid()})")

    async def watch(self) -> str:
        """Until the duration is over, a signal arrives or the kill switch halts trading."""
        engine, stop = self.engine, self.stop_event
        t0 = time.monotonic()
        bar = Progress(self.duration, "trading") if (self.show_progress and self.duration > 0) else None
        reason = "duration"
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if self.duration > 0 and elapsed >= self.duration:
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
        return reason

    async def shutdown(self, reason: str) -> dict[str, float]:
        """No new risk, cancel open orders, flatten if configured, settle the books (engine.stop)."""
        if reason == "signal":
            say(f"{self.stop_signal or 'signal'}: stopping (no new orders, cancel open orders"
                f"{', flatten' if self.engine.cfg.engine.flatten_on_stop else ''})")  # fmt: skip
        return await self.engine.stop(reason)

    async def close(self) -> None:
        """Release everything, whatever happened before: the lineage log is drained and closed last."""
        if self.stop_event is not None:
            self.remove_signals()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
            (self.run_dir / "status.url").unlink(missing_ok=True)
        if self.gc is not None:
            await self.gc.stop()
        if self.stream is not None:
            await self.stream.stop()
        if self.venue is not None:
            await self.venue.close()
        if self.live_loop is not None:  # a training job in flight ends with its process pool
            self.live_loop.close()
        if self.writer is not None:
            self.writer.close()

    def _now_ns(self) -> int:
        """The engine's clock (the venue's time of its latest event) for the loop's records."""
        return self.engine.now_ns() if self.engine is not None else time.time_ns()

    # ---- signals -------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig)
            self._signals.append(sig)
        if hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            self._signals.append(signal.SIGHUP)

    def remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        if self.stop_event.is_set():
            say(f"{signal.Signals(sig).name}: already stopping")
            return
        self.stop_signal = signal.Signals(sig).name
        self.stop_event.set()
        if self.engine is not None:  # when the stop began, in the log, before the cancels and flatten
            from kaizen.lineage import records as R
            from kaizen.lineage.ids import new_id

            self.writer.append(
                R.RiskEvent(
                    id=new_id(), ts=self.engine.now_ns(), kind="stop_requested", detail=self.stop_signal
                )
            )

    def reload(self) -> None:
        """SIGHUP: re-read the config file, apply its safe changes or refuse (one line)."""
        from kaizen import config
        from kaizen.lineage import records as R
        from kaizen.lineage.ids import new_id
        from kaizen.ops import reload as rl

        if self.config_path is None:
            say("SIGHUP: no config file to reload (started without one)")
            return
        try:
            new = config.load(self.config_path)
        except KaizenError as exc:
            self.metrics.reloads["refused"] += 1
            say(f"SIGHUP: reload refused: {exc}")
            return
        p = rl.plan(self.engine.cfg, new)
        ts = self.engine.now_ns()
        if not p.changes:
            say("SIGHUP: config unchanged")
            return
        if not p.ok:
            self.metrics.reloads["refused"] += 1
            detail = f"{', '.join(p.unsafe)} cannot change while running (restart needed); nothing applied"
            self.writer.append(
                R.RiskEvent(id=new_id(), ts=ts, kind="config_reload_refused", detail=detail[:500])
            )
            say(f"SIGHUP: reload refused: {detail}")
            return
        rl.apply(self.engine, new)
        self.engine.config_hash = config_hash(new)
        self.metrics.reloads["applied"] += 1
        detail = p.describe()
        self.writer.append(R.RiskEvent(id=new_id(), ts=ts, kind="config_reload", detail=detail[:2000]))
        say(f"SIGHUP: config reloaded: {detail}")

    # ---- status -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        from kaizen.ops.status import build_status

        extra = {
            "run_dir": str(self.run_dir),
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - self._t0,
            "config_hash": self.engine.config_hash,
            "stopping": bool(self.stop_event is not None and self.stop_event.is_set()),
            "reloads": dict(self.metrics.reloads),
            "gc": {"collections": self.gc.collections, "collected": self.gc.collected} if self.gc else {},
        }
        return build_status(self.engine, self.metrics, extra)

    async def _fold_metrics(self) -> None:
        warned = False
        while True:  # histograms folded between messages, so a scrape has little to do
            await asyncio.sleep(1.0)
            self.metrics.fold()
            feed = self.engine.feed
            self.metrics.update_rates(
                {
                    "messages": float(feed.stats.get("messages", 0)) if feed is not None else 0.0,
                    "bars": float(self.engine.bars),
                    "orders": float(getattr(self.engine.router, "orders_sent", 0)),
                }
            )
            if (
                not warned
                and self.cfg.engine.stage_timing
                and feed is not None
                and feed.stats.get("messages", 0) > 100
            ):
                warned = True
                if self.metrics.stage("message").n == 0:  # a listener that no longer calls the seam
                    say("stage 'message' is not timed: the listener bypasses MarketFeed._on_message")
