"""Binance-style websocket streams over picows, on Binance's routed layout.

Entry points (layout "routed", Binance USD-M since 2026-04-23): `/public`, `/market` and
`/private`, each as `/ws/<stream>[/<stream>...]` (raw payloads) and `/stream?streams=a/b`
(payloads wrapped as {"stream": name, "data": ...}); `/private` also takes
`?listenKey=K[&events=E1/E2]` (repeatable on `/stream`). Live SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS work on every connection. A route delivers only its own streams
(kaizen.market.routes.stream_route); anything else subscribed there is acknowledged and stays
silent, as Binance does. The unrouted `/ws` and `/stream` deliver public streams only.

Layout "legacy-public-only": only the unrouted paths exist (routed paths answer 404), with the
public-only behaviour above. Layout "legacy": only the unrouted paths exist and they deliver
every stream and listenKey (Binance before the split; a testnet still on the old layout).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from kaizen.market.routes import PRIVATE, PUBLIC, ROUTES, stream_route

log = logging.getLogger("kaizen.sim.ws")
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()

WS_LAYOUTS = ("routed", "legacy-public-only", "legacy")
LEGACY = "legacy"  # route name of a connection on an unrouted path


class _Conn(WSListener):
    def __init__(
        self,
        hub: WsHub,
        route: str,
        streams: list[str],
        combined: bool,
        events: dict[str, frozenset[str] | None] | None = None,
    ) -> None:
        self.hub = hub
        self.route = route
        # lower-case key -> the name as the client wrote it (echoed back in combined payloads)
        self.streams = {x.lower(): x for x in streams}
        self.events = {k.lower(): v for k, v in (events or {}).items()}  # listenKey -> event filter
        self.combined = combined
        self.transport: WSTransport | None = None
        self.live: dict[str, str] = {}
        self._refresh()

    def _refresh(self) -> None:
        """The subset of subscriptions this connection's route actually delivers."""
        self.live = {k: v for k, v in self.streams.items() if self.hub.delivers(self.route, k)}

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.hub.conns.add(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.conns.discard(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        try:
            req = _dec.decode(frame.get_payload_as_bytes())
            method, rid = req.get("method"), req.get("id")
            params = [str(p) for p in req.get("params") or []]
        except Exception:
            transport.send(WSMsgType.TEXT, _enc.encode({"error": {"code": 3, "msg": "Invalid JSON"}}))
            return
        if method == "SUBSCRIBE":
            # Acknowledged whatever the route; a stream of another route stays silent (Binance).
            self.streams.update({x.lower(): x for x in params})
            self._refresh()
            reply: Any = None
        elif method == "UNSUBSCRIBE":
            for x in params:
                self.streams.pop(x.lower(), None)
            self._refresh()
            reply = None
        elif method == "LIST_SUBSCRIPTIONS":
            reply = sorted(self.streams.values())
        else:
            transport.send(
                WSMsgType.TEXT, _enc.encode({"error": {"code": 2, "msg": "Invalid request"}, "id": rid})
            )
            return
        transport.send(WSMsgType.TEXT, _enc.encode({"result": reply, "id": rid}))


def _send(c: _Conn, msg: bytes) -> None:
    if c.transport is None or c not in c.hub.conns:
        return
    try:
        c.transport.send(WSMsgType.TEXT, msg)
    except Exception:  # a dying connection must not stop the publisher
        log.debug("send failed", exc_info=True)


def _private_events(query: str) -> dict[str, frozenset[str] | None]:
    """`listenKey=K1&events=A/B&listenKey=K2&events=C` -> {K1: {A, B}, K2: {C}} (pairs by position;
    no `events` means every event)."""
    q = parse_qs(query)
    keys = q.get("listenKey", [])
    evs = q.get("events", [])
    out: dict[str, frozenset[str] | None] = {}
    for i, k in enumerate(keys):
        e = evs[i] if i < len(evs) else ""
        names = frozenset(x for x in unquote(e).split("/") if x)
        out[k] = names or None
    return out


class WsHub:
    def __init__(self, host: str, port: int, layout: str = "routed") -> None:
        if layout not in WS_LAYOUTS:
            raise ValueError(f"unknown websocket layout {layout!r} (known: {', '.join(WS_LAYOUTS)})")
        self.host = host
        self.port = port
        self.layout = layout
        self.conns: set[_Conn] = set()
        self.server: Any = None
        self.dropped = 0
        self.refused_paths = 0  # upgrade requests answered 404 (unknown path or route absent)
        self.refuse = False  # fault: refuse new connections
        self.latency_s = 0.0  # fault: every message leaves this much later (order kept)
        self._route_of: dict[str, str] = {}

    async def start(self) -> None:
        self.server = await ws_create_server(self._factory, self.host, self.port, enable_auto_pong=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.disconnect()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def delivers(self, route: str, stream: str) -> bool:
        """Does a connection on `route` (or LEGACY) get data for `stream` (lower-case)?"""
        r = self._route_of.get(stream)
        if r is None:
            r = self._route_of[stream] = stream_route(stream)
        if route == LEGACY:
            return self.layout == "legacy" or r == PUBLIC
        return route == r

    def _factory(self, request: WSUpgradeRequest) -> Any:
        if self.refuse:
            return None
        path = request.path
        if isinstance(path, bytes):
            path = path.decode()
        parts = urlsplit(path)
        segs = parts.path.rstrip("/").split("/")
        if len(segs) > 1 and segs[1] in ROUTES:
            route, rest = segs[1], "/" + "/".join(segs[2:])
            if self.layout != "routed":
                self.refused_paths += 1
                return None
        else:
            route, rest = LEGACY, parts.path.rstrip("/")
        events: dict[str, frozenset[str] | None] = {}
        if rest == "/stream":
            combined = True
            names = parse_qs(parts.query).get("streams", [""])[0]
            streams = [s for s in unquote(names).split("/") if s]
        elif rest == "/ws" or rest.startswith("/ws/"):
            combined = False
            streams = [s for s in rest[3:].split("/") if s]
        else:
            self.refused_paths += 1
            return None
        if route == PRIVATE or (route == LEGACY and self.layout == "legacy"):
            events = _private_events(parts.query)
            streams += list(events)
        return _Conn(self, route, streams, combined, events)

    def wants(self, stream: str) -> bool:
        return any(stream in c.live for c in self.conns)

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Send to every connection that subscribed to `stream` (lower-case key) on a route that
        delivers it."""
        raw = None
        wrapped: dict[str, bytes] = {}
        for c in list(self.conns):
            name = c.live.get(stream)
            if name is None or c.transport is None:
                continue
            if c.events:
                only = c.events.get(stream)
                if only is not None and data.get("e") not in only:
                    continue
            if c.combined:
                msg = wrapped.get(name)
                if msg is None:
                    msg = wrapped[name] = _enc.encode({"stream": name, "data": data})
            else:
                if raw is None:
                    raw = _enc.encode(data)
                msg = raw
            if self.latency_s > 0:
                asyncio.get_running_loop().call_later(self.latency_s, _send, c, msg)
            else:
                _send(c, msg)

    def subscribers(self, stream: str) -> int:
        return sum(1 for c in self.conns if stream in c.live)

    def drop_all(self) -> int:
        """Fault: cut every websocket connection without a close frame."""
        n = 0
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.disconnect()
                n += 1
        self.dropped += n
        return n
