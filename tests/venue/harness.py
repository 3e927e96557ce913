"""Shared pieces of the end-to-end venue tests: a real simulator on 127.0.0.1, the real ccxt client
through make_venue, a JSON-lines lineage file, and a byte-level TCP proxy that cuts a connection
after an order request went through (the venue accepted it, the answer never comes back)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import msgspec

from kaizen.config import Config, RiskConfig, VenueConfig
from kaizen.risk import RiskManager
from kaizen.venue import make_venue
from kaizen.venue.ccxt_venue import RetryPolicy
from kaizen.venue.router import OrderRouter

KEY_ENV, SECRET_ENV = "KZ_E2E_API_KEY", "KZ_E2E_API_SECRET"


class JsonlLineage:
    """Appends every record as one JSON line (the real segment log is the lineage package's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Any] = []
        self._f = path.open("ab")

    def append(self, record: Any) -> None:
        self.records.append(record)
        self._f.write(msgspec.json.encode(record) + b"\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def of(self, cls: type) -> list[Any]:
        return [r for r in self.records if isinstance(r, cls)]


class CutProxy:
    """TCP proxy on 127.0.0.1. While `cut_orders` > 0, a connection that carried a
    new-order request (Binance `POST /fapi/v1/order`, Bybit `POST /v5/order/create`) is closed when
    the venue's answer arrives, without relaying it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_orders = 0
        self.cuts = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        state = {"armed": False}

        async def up() -> None:
            while data := await cr.read(65536):
                if self.cut_orders > 0 and (
                    b"POST /fapi/v1/order " in data or b"POST /v5/order/create" in data
                ):
                    state["armed"] = True
                uw.write(data)
                await uw.drain()
            uw.close()

        async def down() -> None:
            while data := await ur.read(65536):
                if state["armed"]:
                    self.cut_orders -= 1
                    self.cuts += 1
                    break  # drop the answer and cut both sides
                cw.write(data)
                await cw.drain()
            cw.close()
            uw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


def make_cfg(symbols: list[str], venue: str = "binanceusdm", **risk: Any) -> Config:
    return Config(
        mode="paper",
        symbols=symbols,
        venue=VenueConfig(name=venue, api_key_env=KEY_ENV, api_secret_env=SECRET_ENV, timeout_ms=1500),
        risk=RiskConfig(**risk),
    )


class Session:
    """A simulator + venue + risk + router, torn down in order."""

    def __init__(
        self,
        tmp: Path,
        symbols: list[str],
        key: str = "e2e-key-0001",
        secret: str = "e2e-secret-0001",
        proxy: bool = False,
        sim_kw: dict | None = None,
        venue: str = "binanceusdm",
        **risk: Any,
    ) -> None:
        self.tmp, self.symbols, self.key, self.secret = tmp, symbols, key, secret
        self.use_proxy = proxy
        self.sim_kw = sim_kw or {}
        self.cfg = make_cfg(symbols, venue, **risk)

    async def __aenter__(self) -> Session:
        from kaizen.venue.sim import Simulator

        os.environ[KEY_ENV], os.environ[SECRET_ENV] = self.key, self.secret
        self.sim = Simulator(
            seed=7,
            speed=60.0,
            symbols=tuple(self.symbols),
            api_key=self.key,
            api_secret=self.secret,
            **self.sim_kw,
        )
        await self.sim.start()
        url = self.sim.rest_url
        self.proxy = None
        if self.use_proxy:
            self.proxy = CutProxy(self.sim.port)
            await self.proxy.start()
            url = f"http://127.0.0.1:{self.proxy.port}"
        self.venue = make_venue(self.cfg, rest_url=url)
        self.venue.retry = RetryPolicy(attempts=8, base_s=0.02, cap_s=0.3, max_retry_after_s=2.0)
        # ccxt's client-side throttle (Binance weights x 50 ms: 1.5 s per funding-income call) only
        # adds waiting on loopback; the simulator enforces its own limits (the 429 fault test).
        self.venue.ex.enableRateLimit = False
        await self.venue.connect()
        bal = await self.venue.fetch_balance()
        self.risk = RiskManager(self.cfg.risk, equity=bal.equity, state_path=self.tmp / "risk_halt.json")
        self.lineage = JsonlLineage(self.tmp / "lineage.jsonl")
        self.router = OrderRouter(
            self.venue, self.risk, self.lineage, self.symbols, run_id=f"e2e-{self.tmp.name}"
        )
        await self.router.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.venue.close()
        finally:
            if self.proxy is not None:
                await self.proxy.stop()
            await self.sim.stop()
            self.lineage.close()

    def accepted(self, client_id: str | None = None) -> list[dict]:
        out = [o for o in self.sim.orders_received if o.get("accepted")]
        if client_id is not None:
            out = [o for o in out if o["params"].get("newClientOrderId") == client_id]
        return out

    def mark(self, symbol: str) -> float:
        return float(self.sim.markets[symbol].mark)


def fresh() -> int:
    """Now on the router's default clock (wall ms): the data time of a target decided just now."""
    import time

    return time.time_ns() // 1_000_000
