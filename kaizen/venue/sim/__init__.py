"""Local Binance USD-M exchange simulator (REST + websocket) for paper runs, demos and tests.

`from kaizen.venue.sim import Simulator` imports lazily, so `kaizen --help` (which imports the CLI
module of this package) does not pay for aiohttp and picows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Faults", "Simulator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kaizen.venue.sim import simulator

        return getattr(simulator, name)
    raise AttributeError(name)
