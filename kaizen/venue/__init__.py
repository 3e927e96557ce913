"""Venues: ccxt-backed adapters (Binance USD-M, Bybit linear), the order router, the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaizen.config import Config
    from kaizen.venue.ccxt_venue import CcxtVenue


def make_venue(cfg: Config, rest_url: str | None = None, ws_url: str | None = None) -> CcxtVenue:
    """The venue named in `cfg.venue.name`, pointed at `rest_url` (or cfg.venue.rest_url) when given.
    Credentials come from the environment variables the config names, never from the config."""
    url = rest_url or cfg.venue.rest_url or None
    ws = ws_url or cfg.venue.ws_url or ""
    if cfg.venue.name == "binanceusdm":
        from kaizen.venue.binance import BinanceUSDM

        return BinanceUSDM(cfg, url, ws_url=ws)
    if cfg.venue.name == "bybit":
        from kaizen.venue.bybit import BybitLinear

        return BybitLinear(cfg, url, ws_url=ws)
    from kaizen.errors import ConfigError

    raise ConfigError(f"unknown venue.name {cfg.venue.name!r}")


__all__ = ["make_venue"]
