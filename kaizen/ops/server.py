"""A minimal HTTP/1.1 server on the engine's own event loop: GET /status (JSON) and GET /metrics
(Prometheus text format). One request per connection (Connection: close); no threads, so a scrape
runs between two messages like any other task and never races the engine's state.

Binds 127.0.0.1 only: the endpoint has no authentication and reveals positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("kaizen.ops.server")

MAX_REQUEST = 8192


class StatusServer:
    def __init__(
        self, status: Callable[[], dict[str, Any]], metrics: Callable[[], bytes], port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:  # fmt: skip
        self._status = status
        self._metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        self.requests += 1
        try:
            parts = head[:MAX_REQUEST].split(b"\r\n", 1)[0].split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
            path = target.split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == b"/status":
                status, ctype = "200 OK", "application/json"
                body = msgspec.json.encode(self._status())
            elif path == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self._metrics()
            elif path == b"/":
                status, ctype, body = "200 OK", "text/plain", b"kaizen engine: /status /metrics\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found: try /status or /metrics\n"
        except Exception as exc:  # a bug in a status field must not take the engine down
            log.exception("status request failed")
            status, ctype, body = (
                "500 Internal Server Error",
                "text/plain",
                f"{type(exc).__name__}: {exc}\n".encode(),
            )
        hdr = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(hdr if method == b"HEAD" else hdr + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
