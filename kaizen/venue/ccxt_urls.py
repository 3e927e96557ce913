"""Point a ccxt `binanceusdm` client at another Binance USD-M compatible base URL (the simulator).

Every entry of `exchange.urls['api']` keeps its path and gets the new scheme and host, so no
request can leave for the real Binance hosts, whichever API family ccxt picks. With `ws_url`
(a websocket base, e.g. the simulator's `ws=` URL) the websocket table (`urls['api']['ws']`, used
by `ccxt.pro`) is rewritten the same way: ccxt 4.5 derives the routes itself from its linear entry
`.../ws`, opening `{base}/public/ws/...`, `{base}/market/ws/...` and `{base}/private/ws?listenKey=`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _rewriter(base_url: str, schemes: tuple[str, ...]) -> Any:
    base = urlsplit(base_url.rstrip("/"))

    def rewrite(url: Any) -> Any:
        if isinstance(url, str) and url.startswith(tuple(f"{s}://" for s in schemes)):
            u = urlsplit(url)
            return urlunsplit((base.scheme, base.netloc, base.path + u.path, u.query, u.fragment))
        if isinstance(url, dict):
            return {k: rewrite(v) for k, v in url.items()}
        return url

    return rewrite


def point_binanceusdm_at(exchange: Any, rest_url: str, ws_url: str | None = None) -> Any:
    """Rewrite the client's API URLs to `rest_url` (e.g. "http://127.0.0.1:8123"), and its
    websocket URLs to `ws_url` when given (e.g. "ws://127.0.0.1:8124"), and set the options ccxt
    needs to load markets and trade against a futures-only venue. Returns the client."""
    base = urlsplit(rest_url.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError(f"rest_url must be http(s)://host:port, got {rest_url!r}")
    rewrite = _rewriter(rest_url, ("http", "https"))
    if ws_url is not None:
        from kaizen.market.routes import check_ws_base

        rest_rewrite, ws_rewrite = rewrite, _rewriter(check_ws_base(ws_url), ("ws", "wss"))

        def rewrite(url: Any) -> Any:
            return ws_rewrite(rest_rewrite(url))

    api = dict(exchange.urls["api"])
    exchange.urls = dict(exchange.urls)
    exchange.urls["api"] = {k: rewrite(v) for k, v in api.items()}
    for key in ("test", "demo"):  # sandbox tables too, so set_sandbox_mode cannot escape either
        if isinstance(exchange.urls.get(key), dict):
            exchange.urls[key] = rewrite(exchange.urls[key])
    opts = exchange.options
    opts["defaultType"] = "future"
    fm = opts.get("fetchMarkets")
    opts["fetchMarkets"] = {**fm, "types": ["linear"]} if isinstance(fm, dict) else ["linear"]
    opts["fetchCurrencies"] = False  # the spot wallet endpoints (sapi) are not a futures venue's
    opts["warnOnFetchOpenOrdersWithoutSymbol"] = False
    exchange.has["fetchCurrencies"] = False
    return exchange
