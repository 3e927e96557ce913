"""Binance-style websocket market data over picows: combined `/stream?streams=a/b` (payloads wrapped
as {"stream": name, "data": ...}) and single `/ws/<stream>` (raw payloads); live SUBSCRIBE /
UNSUBSCRIBE / LIST_SUBSCRIPTIONS requests as Binance answers them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

log = logging.getLogger("kaizen.sim.ws")
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


class _Conn(WSListener):
    def __init__(self, hub: WsHub, streams: list[str], combined: bool) -> None:
        self.hub = hub
        # lower-case key -> the name as the client wrote it (echoed back in combined payloads)
        self.streams = {x.lower(): x for x in streams}
        self.combined = combined
        self.transport: WSTransport | None = None

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
            self.streams.update({x.lower(): x for x in params})
            reply: Any = None
        elif method == "UNSUBSCRIBE":
            for x in params:
                self.streams.pop(x.lower(), None)
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


class WsHub:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.conns: set[_Conn] = set()
        self.server: Any = None
        self.dropped = 0
        self.refuse = False  # fault: refuse new connections
        self.latency_s = 0.0  # fault: every message leaves this much later (order kept)

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

    def _factory(self, request: WSUpgradeRequest) -> Any:
        if self.refuse:
            return None
        path = request.path
        if isinstance(path, bytes):
            path = path.decode()
        parts = urlsplit(path)
        if parts.path.rstrip("/") == "/stream":
            names = parse_qs(parts.query).get("streams", [""])[0]
            streams = [s for s in unquote(names).split("/") if s]
            return _Conn(self, streams, combined=True)
        if parts.path.startswith("/ws"):
            rest = parts.path[3:].strip("/")
            streams = [s for s in rest.split("/") if s]
            return _Conn(self, streams, combined=False)
        return None

    def wants(self, stream: str) -> bool:
        return any(stream in c.streams for c in self.conns)

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Send to every subscriber of `stream` (lower-case key)."""
        raw = None
        wrapped: dict[str, bytes] = {}
        for c in list(self.conns):
            name = c.streams.get(stream)
            if name is None or c.transport is None:
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

    def drop_all(self) -> int:
        """Fault: cut every websocket connection without a close frame."""
        n = 0
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.disconnect()
                n += 1
        self.dropped += n
        return n
