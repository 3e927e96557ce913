"""Binance USD-M websocket routes: which entry point serves which stream.

Since 2026-04-23 Binance serves USD-M futures websockets through three routed entry points under
one base (`wss://fstream.binance.com`): `/public` (high-frequency book data), `/market` (the rest
of the market data) and `/private` (user data by listenKey), each as `/ws/<stream>` and
`/stream?streams=a/b`. The unrouted `/ws` and `/stream` still accept connections and
subscriptions but deliver only the public streams. Sources (see kaizen/venue/sim/README.md):
Binance "Important WebSocket Change Notice — Base URL Split & Migration" (USD-M futures docs,
announced 2026-03-06) and ccxt 4.5.90 `pro/binance.py` `get_future_ws_category` (depth,
rpiDepth, bookTicker and trade are public; everything else is market).

This module is the one home of that mapping: the live feed, the user-data stream and the
simulator all ask it.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

PUBLIC = "public"
MARKET = "market"
PRIVATE = "private"
ROUTES = (PUBLIC, MARKET, PRIVATE)

WsLayout = Literal["routed", "legacy"]
WS_LAYOUTS: tuple[str, ...] = ("routed", "legacy")

# Stream kinds (the token after '@', or after '!' for all-market streams, without a level count).
PUBLIC_KINDS = frozenset({"depth", "rpidepth", "bookticker", "trade"})


def stream_kind(name: str) -> str:
    """'btcusdt@depth5@100ms' -> 'depth', '!bookTicker' -> 'bookticker', a listenKey -> ''."""
    n = name.lower()
    if n.startswith("!"):
        token = n[1:].split("@", 1)[0]
    elif "@" in n:
        token = n.split("@", 2)[1]
    else:
        return ""
    return token.rstrip("0123456789")


def stream_route(name: str) -> str:
    """The entry point that serves a stream: PUBLIC, MARKET, or PRIVATE for a listenKey (a name
    with neither '@' nor a leading '!')."""
    kind = stream_kind(name)
    if not kind:
        return PRIVATE
    return PUBLIC if kind in PUBLIC_KINDS else MARKET


def check_ws_base(url: str) -> str:
    """The websocket base URL (routes are derived from it), normalised; ValueError if it is not one."""
    u = urlsplit(url.strip())
    if u.scheme not in ("ws", "wss") or not u.netloc:
        raise ValueError(f"websocket base must be ws(s)://host[:port], got {url!r}")
    if u.query or u.fragment:
        raise ValueError(f"websocket base must not carry a query, got {url!r}")
    path = u.path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if last in ("ws", "stream", *ROUTES):
        raise ValueError(
            f"websocket base {url!r} ends in /{last}: give the base only (e.g. wss://fstream.binance.com); "
            "the /public, /market and /private routes are derived from it"
        )
    return f"{u.scheme}://{u.netloc}{path}"


def route_base(base: str, route: str, layout: str = "routed") -> str:
    """Base URL of a route: `{base}/{route}` on the routed layout, `base` itself on the legacy one."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}")
    if layout == "legacy":
        return base
    if layout != "routed":
        raise ValueError(f"unknown websocket layout {layout!r} (known: {', '.join(WS_LAYOUTS)})")
    return f"{base}/{route}"


def combined_url(base: str, route: str, streams: list[str], layout: str = "routed") -> str:
    return f"{route_base(base, route, layout)}/stream?streams={'/'.join(streams)}"


def group_by_route(streams: list[str], layout: str = "routed") -> dict[str, list[str]]:
    """Streams per connection: keyed by route on the routed layout; on the legacy layout every
    stream shares one connection to the unrouted base, keyed 'legacy'."""
    out: dict[str, list[str]] = {}
    for s in streams:
        key = stream_route(s) if layout == "routed" else "legacy"
        out.setdefault(key, []).append(s)
    return out
