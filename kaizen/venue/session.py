"""Start-up and shutdown pieces of a paper or live run that belong to the venue layer, each called
from the runner by one line: the credential check, the run's persisted identity, and the
user-data stream that feeds the router its fills and order states."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kaizen import rundir
from kaizen.errors import ConfigError, KaizenError

log = logging.getLogger("kaizen.venue.session")

STREAM_VENUES = ("binanceusdm", "binance")  # venues whose user-data stream kaizen speaks


def check_credentials(cfg: Any) -> None:
    """Live trading needs both key variables set: say so in one line before any network call."""
    if cfg.mode != "live":
        return
    key, secret = cfg.api_credentials()
    missing = [n for n, v in ((cfg.venue.api_key_env, key), (cfg.venue.api_secret_env, secret)) if not v]
    if missing:
        raise ConfigError(
            f"live trading on {cfg.venue.name} needs the API key and secret in the environment: "
            f"{' and '.join(missing)} not set"
        )


def state_dir(cfg: Any) -> Path:
    """Where the halt state and the run identity live: `[risk] state_dir`, else the run directory."""
    return Path(cfg.risk.state_dir) if cfg.risk.state_dir else Path(cfg.lineage.dir).parent


def halt_path(cfg: Any) -> Path:
    return state_dir(cfg) / rundir.HALT_FILE


def run_id_for(cfg: Any) -> str:
    """The run's identity, persisted in its state directory."""
    return rundir.run_identity(state_dir(cfg))


async def start_venue(engine: Any) -> None:
    """`engine.start()` with any venue failure as one line (no traceback)."""
    from kaizen.venue.base import VenueError

    try:
        await engine.start()
    except VenueError as exc:
        raise KaizenError(f"venue start-up failed: {str(exc).splitlines()[0][:300]}") from None


async def start_user_stream(cfg: Any, router: Any, rest_url: str, ws_url: str) -> Any:
    """The user-data stream feeding `router` (fills, order states, account updates; a REST
    reconcile after every reconnect); None where the venue has none kaizen speaks (REST polling
    stays the path there)."""
    if cfg.venue.name not in STREAM_VENUES or router is None:
        return None
    from kaizen.venue.userstream import UserDataStream

    stream = UserDataStream.from_config(cfg, router, rest_url=rest_url, ws_url=ws_url)
    router.attach_stream(stream)
    await stream.start()
    return stream


def halt_line(risk: Any, run_dir: Path) -> str:
    """One line for a halted run (console, report), '' when trading is armed."""
    if risk is None or not risk.halted:
        return ""
    return f"TRADING HALTED: {risk.halt_reason} (re-arm with `kaizen risk rearm {run_dir}`)"
