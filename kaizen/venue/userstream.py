"""Binance USD-M user-data stream through the `/private` route: fills, order states, balances.

Lifecycle (Binance "User Data Streams" and the 2026 websocket change notice):
- a listenKey comes from `POST /fapi/v1/listenKey` with only the `X-MBX-APIKEY` header (no
  signature); it lives 60 min, and `PUT` extends it (every `keepalive_s`, 30 min by default);
  a PUT answered -1125 means the key is gone, so a new one is made and the socket reopened;
- the socket is `{base}/private/ws?listenKey=<key>` (the form the notice documents, and the one
  ccxt 4.5 opens); on a base declared legacy it is `{base}/ws/<key>`;
- Binance cuts every connection at 24 h: the stream renews it before (`rollover_s`);
- a `listenKeyExpired` event (also pushed when the key is deleted) means nothing more will come on
  that key: the stream makes a new key and reconnects at once;
- any other loss of the socket: reconnect with exponential backoff and full jitter.

After every (re)connect the handler's `on_resync()` is called: events may have been missed while
no socket was open, so the owner reconciles its orders and positions by REST then. Events
parse into the venue's plain types: ORDER_TRADE_UPDATE -> `VenueFill` (for an execution with a
quantity) and `OrderState`; ACCOUNT_UPDATE -> `AccountUpdate`. A bad message is counted and
logged, never raised. The API key and the listenKey (which grants read access to the account's
events) are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Protocol

import msgspec
from picows import WSListener, WSMsgType, WSTransport, ws_connect

from kaizen.market.routes import PRIVATE, check_ws_base, route_base
from kaizen.venue.base import OrderState, VenueFill

log = logging.getLogger("kaizen.venue.userstream")

ROLLOVER_S = 23.5 * 3600  # Binance closes a connection after 24 h; renew it before
KEEPALIVE_S = 30 * 60.0  # a listenKey lives 60 min after its POST or last PUT
LISTEN_KEY_PATH = "/fapi/v1/listenKey"

# Binance order status -> the venue layer's (the same mapping ccxt applies to REST answers)
ORDER_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}
FILL_EXECUTIONS = frozenset({"TRADE", "CALCULATED"})  # CALCULATED: a liquidation fill


class BalanceUpdate(msgspec.Struct, kw_only=True, frozen=True):
    asset: str
    wallet: float
    cross_wallet: float
    change: float  # balance change other than PnL and commission (e.g. a transfer)


class PositionUpdate(msgspec.Struct, kw_only=True, frozen=True):
    symbol: str
    qty: float  # signed
    entry_price: float
    unrealized_pnl: float
    margin_type: str  # "cross" | "isolated"
    isolated_wallet: float


class AccountUpdate(msgspec.Struct, kw_only=True, frozen=True):
    reason: str  # Binance's event reason: ORDER, FUNDING_FEE, DEPOSIT, ...
    ts_ms: int
    balances: list[BalanceUpdate]
    positions: list[PositionUpdate]


class UserDataHandler(Protocol):
    """What the owner of a UserDataStream (the order router) implements. Called on the event loop;
    must not block (schedule REST work as a task from on_resync)."""

    def on_fill(self, fill: VenueFill) -> None: ...

    def on_order(self, order: OrderState) -> None: ...

    def on_account(self, update: AccountUpdate) -> None: ...

    def on_resync(self) -> None: ...


# --- wire format (Binance's single-letter keys; numbers arrive as strings) ----------------------------
class _Order(msgspec.Struct):
    s: str
    c: str
    S: str
    o: str
    i: int
    x: str
    X: str
    q: float = 0.0
    p: float = 0.0
    ap: float = 0.0
    l: float = 0.0  # noqa: E741 (Binance's name)
    z: float = 0.0
    L: float = 0.0
    n: float = 0.0
    N: str = "USDT"
    T: int = 0
    t: int = 0
    m: bool = False
    R: bool = False
    rp: float = 0.0


class _OrderTradeUpdate(msgspec.Struct, tag_field="e", tag="ORDER_TRADE_UPDATE"):
    E: int
    o: _Order
    T: int = 0


class _Bal(msgspec.Struct):
    a: str
    wb: float
    cw: float = 0.0
    bc: float = 0.0


class _Pos(msgspec.Struct):
    s: str
    pa: float
    ep: float = 0.0
    up: float = 0.0
    mt: str = "cross"
    iw: float = 0.0


class _AccountData(msgspec.Struct):
    m: str = ""
    B: list[_Bal] = []
    P: list[_Pos] = []


class _AccountUpdate(msgspec.Struct, tag_field="e", tag="ACCOUNT_UPDATE"):
    E: int
    a: _AccountData
    T: int = 0


class _ListenKeyExpired(msgspec.Struct, tag_field="e", tag="listenKeyExpired"):
    E: int = 0  # Binance sends this one as a string; the decoder is not strict
    listenKey: str = ""


_decoder = msgspec.json.Decoder(_OrderTradeUpdate | _AccountUpdate | _ListenKeyExpired, strict=False)


class _EventProbe(msgspec.Struct):
    e: str = ""


_probe = msgspec.json.Decoder(_EventProbe)


def order_state(ev: _Order, ts_ms: int) -> OrderState:
    return OrderState(
        symbol=ev.s,
        client_order_id=ev.c,
        venue_order_id=str(ev.i),
        side=ev.S.lower(),
        order_type=ev.o.lower(),
        qty=ev.q,
        price=ev.p,
        status=ORDER_STATUS.get(ev.X, ev.X.lower()),
        filled=ev.z,
        avg_price=ev.ap,
        reduce_only=ev.R,
        ts_ms=ts_ms,
    )


def venue_fill(ev: _Order, ts_ms: int) -> VenueFill:
    return VenueFill(
        symbol=ev.s,
        trade_id=str(ev.t),
        venue_order_id=str(ev.i),
        client_order_id=ev.c,
        side=ev.S.lower(),
        qty=ev.l,
        price=ev.L,
        fee=ev.n,
        fee_asset=ev.N,
        maker=ev.m,
        realized_pnl=ev.rp,
        ts_ms=ev.T or ts_ms,
    )


def account_update(ev: _AccountUpdate) -> AccountUpdate:
    a = ev.a
    return AccountUpdate(
        reason=a.m,
        ts_ms=ev.T or ev.E,
        balances=[BalanceUpdate(asset=b.a, wallet=b.wb, cross_wallet=b.cw, change=b.bc) for b in a.B],
        positions=[
            PositionUpdate(
                symbol=p.s,
                qty=p.pa,
                entry_price=p.ep,
                unrealized_pnl=p.up,
                margin_type=p.mt,
                isolated_wallet=p.iw,
            )
            for p in a.P
        ],
    )


class ListenKeyGone(Exception):
    """The venue no longer knows the listenKey (-1125): make a new one."""


class _Listener(WSListener):
    def __init__(self, stream: UserDataStream) -> None:
        self.stream = stream

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            self.stream._on_message(frame.get_payload_as_bytes())
        elif mt == WSMsgType.CLOSE:
            transport.disconnect()


class UserDataStream:
    """One account's user-data stream; `start()` runs it until `stop()`."""

    def __init__(
        self,
        rest_url: str,
        ws_url: str,
        api_key: str,
        handler: UserDataHandler,
        *,
        ws_layout: str = "routed",
        keepalive_s: float = KEEPALIVE_S,
        rollover_s: float = ROLLOVER_S,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        ping_idle_s: float = 10.0,
        timeout_s: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("the user-data stream needs an API key (X-MBX-APIKEY)")
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = check_ws_base(ws_url)
        self.ws_layout = ws_layout
        self._private_base = route_base(self.ws_url, PRIVATE, ws_layout)
        self._api_key = api_key
        self.handler = handler
        self.keepalive_s = keepalive_s
        self.rollover_s = rollover_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ping_idle_s = ping_idle_s
        self.timeout_s = timeout_s
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "connects",
                "disconnects",
                "connect_errors",
                "rollovers",
                "listen_keys",  # POSTs answered
                "listen_key_errors",
                "keepalives",
                "keepalive_errors",
                "expired",  # listenKeyExpired events, and keys the venue no longer knew
                "resyncs",
                "resync_errors",
                "messages",
                "orders",
                "fills",
                "accounts",
                "unknown",
                "bad",
                "handler_errors",
            ),
            0,
        )
        self.unknown_events: dict[str, int] = {}
        self._key = ""
        self._key_gone = asyncio.Event()
        self._transport: WSTransport | None = None
        self._session: Any = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    @classmethod
    def from_config(
        cls,
        cfg: Any,
        handler: UserDataHandler,
        rest_url: str | None = None,
        ws_url: str | None = None,
        **kw: Any,
    ) -> UserDataStream:
        """From a kaizen Config: the API key from the environment variable the config names."""
        key, _ = cfg.api_credentials()
        return cls(
            rest_url or cfg.venue.rest_url,
            ws_url or cfg.venue.ws_url,
            key,
            handler,
            ws_layout=cfg.venue.ws_layout,
            **kw,
        )

    def __repr__(self) -> str:  # never shows the key or the listenKey
        return f"UserDataStream({self.rest_url!r}, {self._private_base!r})"

    @property
    def connected(self) -> bool:
        return self._transport is not None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp

        self._stopping = False
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._task = asyncio.create_task(self._run(), name="kaizen-userstream")

    async def stop(self, close_key: bool = False) -> None:
        """Stop; `close_key` also deletes the listenKey at the venue."""
        self._stopping = True
        if self._transport is not None:
            self._transport.disconnect()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._session is not None:
            if close_key and self._key:
                with contextlib.suppress(Exception):
                    await self._listen_key("DELETE")
            await self._session.close()
            self._session = None

    # --- REST: listenKey ---------------------------------------------------------------------------
    async def _listen_key(self, method: str) -> dict[str, Any]:
        async with self._session.request(
            method, self.rest_url + LISTEN_KEY_PATH, headers={"X-MBX-APIKEY": self._api_key}
        ) as r:
            body = await r.read()
        try:
            data = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and data.get("code") == -1125:
            raise ListenKeyGone("listenKey does not exist (-1125)")
        if r.status != 200 or not isinstance(data, dict):
            code = data.get("code") if isinstance(data, dict) else None
            raise OSError(f"{method} {LISTEN_KEY_PATH}: HTTP {r.status} code {code}")
        return data

    async def _keepalive(self) -> None:
        """PUT every keepalive_s; a failed PUT is retried with backoff while the key still lives."""
        delay = self.keepalive_s
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._listen_key("PUT")
            except ListenKeyGone:
                self.stats["expired"] += 1
                log.warning("user-data stream: the venue no longer knows the listenKey; renewing it")
                self._key_gone.set()
                return
            except Exception as exc:  # aiohttp, HTTP status, timeouts
                self.stats["keepalive_errors"] += 1
                log.warning("user-data stream: listenKey keep-alive failed: %s", exc)
                delay = min(max(delay / 8, 1.0), 60.0)
                continue
            self.stats["keepalives"] += 1
            delay = self.keepalive_s

    # --- connection loop -------------------------------------------------------------------------------
    def _socket_url(self, key: str) -> str:
        if self.ws_layout == "legacy":
            return f"{self._private_base}/ws/{key}"
        return f"{self._private_base}/ws?listenKey={key}"

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                self._key = str((await self._listen_key("POST"))["listenKey"])
                self.stats["listen_keys"] += 1
            except Exception as exc:  # the key is needed before anything else: back off and retry
                self.stats["listen_key_errors"] += 1
                log.warning("user-data stream: listenKey request failed: %s", exc)
            else:
                try:
                    transport, _ = await ws_connect(
                        lambda: _Listener(self),
                        self._socket_url(self._key),
                        enable_auto_ping=True,
                        auto_ping_idle_timeout=self.ping_idle_s,
                        auto_ping_reply_timeout=self.ping_idle_s,
                    )
                except Exception as exc:  # picows and the OS raise various types (no key in them)
                    self.stats["connect_errors"] += 1
                    log.warning(
                        "user-data stream: connect to %s failed: %s", self._private_base, type(exc).__name__
                    )
                else:
                    attempt = 0
                    self._transport = transport
                    self._key_gone.clear()
                    self.stats["connects"] += 1
                    keepalive = asyncio.create_task(self._keepalive(), name="kaizen-userstream-keepalive")
                    try:
                        self._resync()
                        outcome = await self._wait(transport)
                    finally:
                        keepalive.cancel()
                        self._transport = None
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await keepalive
                    if outcome != "disconnected":
                        transport.disconnect()
                        await transport.wait_disconnected()
                        self.stats["rollovers" if outcome == "rollover" else "disconnects"] += 1
                        continue  # a new key or a fresh connection at once, no backoff
                    self.stats["disconnects"] += 1
                    if self._stopping:
                        break
            attempt += 1
            cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(attempt - 1, 30))
            await asyncio.sleep(random.uniform(cap / 2, cap))

    async def _wait(self, transport: WSTransport) -> str:
        """Until the socket drops ('disconnected'), the key lapses ('key_gone') or the connection is
        due for renewal ('rollover')."""
        gone = asyncio.create_task(self._key_gone.wait())
        closed = asyncio.create_task(transport.wait_disconnected())
        try:
            done, _ = await asyncio.wait(
                {gone, closed}, timeout=self.rollover_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for t in (gone, closed):
                t.cancel()
        if closed in done:
            return "disconnected"
        return "key_gone" if gone in done else "rollover"

    def _resync(self) -> None:
        self.stats["resyncs"] += 1
        try:
            self.handler.on_resync()
        except Exception:  # the owner's bug must not stop the stream
            self.stats["resync_errors"] += 1
            log.exception("user-data stream: on_resync failed")

    # --- messages -------------------------------------------------------------------------------------
    def _on_message(self, raw: bytes) -> None:
        self.stats["messages"] += 1
        try:
            ev = _decoder.decode(raw)
        except (msgspec.MsgspecError, ValueError) as exc:
            try:
                kind = _probe.decode(raw).e
            except (msgspec.MsgspecError, ValueError):
                kind = ""
            if kind and kind not in ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "listenKeyExpired"):
                self.stats["unknown"] += 1  # MARGIN_CALL, TRADE_LITE, ACCOUNT_CONFIG_UPDATE, ...
                self.unknown_events[kind] = self.unknown_events.get(kind, 0) + 1
            else:
                self.stats["bad"] += 1
                log.warning("user-data stream: undecodable %s message: %s", kind or "?", str(exc)[:120])
            return
        h = self.handler
        try:
            if type(ev) is _OrderTradeUpdate:
                o = ev.o
                ts = ev.T or ev.E
                if o.x in FILL_EXECUTIONS and o.l > 0:
                    self.stats["fills"] += 1
                    h.on_fill(venue_fill(o, ts))
                self.stats["orders"] += 1
                h.on_order(order_state(o, ts))
            elif type(ev) is _AccountUpdate:
                self.stats["accounts"] += 1
                h.on_account(account_update(ev))
            elif not ev.listenKey or ev.listenKey == self._key:
                self.stats["expired"] += 1
                log.warning("user-data stream: listenKey expired; renewing it")
                self._key_gone.set()
        except Exception:  # the owner's bug must not stop the stream
            self.stats["handler_errors"] += 1
            log.exception("user-data stream: handler failed")
