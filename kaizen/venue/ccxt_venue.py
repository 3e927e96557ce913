"""The venue interface implemented once on ccxt's async clients; Binance USD-M and Bybit linear
subclass it for what differs (symbols, filters, order-id params, lookup by client id).

Idempotent placement: an order's client id is fixed before the first attempt. On a transient error
(timeout, 5xx, disconnect, 429) we back off, then ask the venue for that client id before sending
again, so an order the venue accepted while its answer was lost is found, never doubled.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

from kaizen.config import Config
from kaizen.errors import KaizenError
from kaizen.venue.base import (
    Balance,
    MarketInfo,
    OrderRejected,
    OrderState,
    Redactor,
    VenueError,
    VenueFill,
    VenueFunding,
    VenuePosition,
)

log = logging.getLogger("kaizen.venue")


class RetryPolicy:
    def __init__(
        self, attempts: int = 6, base_s: float = 0.05, cap_s: float = 2.0, max_retry_after_s: float = 30.0
    ):
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_retry_after_s = max_retry_after_s

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Exponential backoff with full jitter; a venue's Retry-After is honoured (bounded)."""
        d = random.uniform(0.5, 1.0) * min(self.cap_s, self.base_s * (2**attempt))
        if retry_after_s is not None and retry_after_s > 0:
            d = max(d, min(retry_after_s, self.max_retry_after_s))
        return d


def kaizen_to_unified(symbol: str) -> str:
    """BTCUSDT -> BTC/USDT:USDT (linear USDT perpetual)."""
    if not symbol.endswith("USDT") or len(symbol) <= 4:
        raise KaizenError(f"symbol {symbol!r} is not a USDT perpetual")
    base = symbol[:-4]
    return f"{base}/USDT:USDT"


def unified_to_kaizen(symbol: str) -> str:
    base, _, rest = symbol.partition("/")
    quote = rest.split(":")[0]
    return f"{base}{quote}"


_CODE = re.compile(r'"(?:code|retCode)"\s*:\s*"?(-?\d+)')


class CcxtVenue:
    name = "ccxt"
    ccxt_id = ""
    # Venue error codes that mean "not processed / state unknown, try again" even where ccxt maps
    # them to a non-network error class (ccxt's linear table maps Binance -1001 to ExchangeError).
    TRANSIENT_CODES: frozenset[int] = frozenset()

    def __init__(
        self, cfg: Config, rest_url: str | None = None, *, ws_url: str = "", retry: RetryPolicy | None = None
    ) -> None:
        import ccxt.async_support as ccxt_async

        self.cfg = cfg
        self.rest_url = rest_url or ""
        self.ws_url = ws_url
        self.symbols = list(cfg.symbols)
        key, secret = cfg.api_credentials()
        if cfg.mode == "live" and not (key and secret):
            from kaizen.errors import ConfigError

            missing = [
                n for n, v in ((cfg.venue.api_key_env, key), (cfg.venue.api_secret_env, secret)) if not v
            ]
            raise ConfigError(
                f"live trading needs the API key and secret in the environment: {' and '.join(missing)} "
                "not set (export them; they are never read from a file)"
            )
        self._redact = Redactor(key, secret)
        # ccxt logs request headers (which carry the API key) at DEBUG; give it a logger that redacts.
        self._logger = logging.getLogger(f"kaizen.venue.ccxt.{self.name}.{id(self):x}")
        self._logger.addFilter(self._redact)
        klass = getattr(ccxt_async, self.ccxt_id)
        self.ex = klass(
            {
                "apiKey": key,
                "secret": secret,
                "enableRateLimit": True,
                "timeout": cfg.venue.timeout_ms,
                "options": self._options(),
            }
        )
        self.ex.logger = self._logger
        # ccxt's `verbose` mode prints request headers (the API key) through `log`: redact there too.
        self.ex.log = lambda *args: print(self._redact(" ".join(str(a) for a in args)))
        del key, secret
        if rest_url:
            self._point_at(rest_url)
        self.retry = retry or RetryPolicy()
        self.markets: dict[str, MarketInfo] = {}
        self.fees: tuple[float, float] = (cfg.fees.maker, cfg.fees.taker)
        self.stats = {"retries": 0, "lookups": 0, "found_after_error": 0}

    # --- hooks per venue -----------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {}

    def _point_at(self, rest_url: str) -> None:
        raise NotImplementedError

    def _market_info(self, symbol: str, m: dict) -> MarketInfo:
        raise NotImplementedError

    def _order_params(self, client_order_id: str, reduce_only: bool, post_only: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        if post_only:
            params["postOnly"] = True
        return params

    def _cancel_params(self, client_order_id: str) -> dict[str, Any]:
        return {"clientOrderId": client_order_id}

    async def _lookup(self, symbol: str, client_order_id: str) -> dict | None:
        raise NotImplementedError

    async def _after_load(self) -> None:
        return None

    # --- public --------------------------------------------------------------------------------------
    def __repr__(self) -> str:  # never shows credentials
        return f"<{type(self).__name__} {self.ccxt_id} symbols={self.symbols}>"

    def redact(self, text: object) -> str:
        return self._redact(text)

    async def connect(self) -> None:
        await self._call("load_markets", self.ex.load_markets)
        for sym in self.symbols:
            vsym = kaizen_to_unified(sym)
            if vsym not in self.ex.markets:
                raise KaizenError(f"venue {self.ccxt_id} has no market {sym!r} (config 'symbols')")
            self.markets[sym] = self._market_info(sym, self.ex.markets[vsym])
        await self._after_load()
        await self._load_fees()

    async def _load_fees(self) -> None:
        """The account's own maker/taker rates where the venue reports them (they follow the VIP tier
        and region, not the config); `[fees]` stays the fallback, and a difference is logged."""
        try:
            raw = await self._call(
                "fetch_trading_fee", self.ex.fetch_trading_fee, kaizen_to_unified(self.symbols[0])
            )
        except VenueError as exc:
            log.warning("%s: trading fees not reported (%s); using [fees] from the config", self.ccxt_id, exc)
            return
        maker, taker = raw.get("maker"), raw.get("taker")
        if maker is None or taker is None:
            return
        venue = (float(maker), float(taker))
        if venue != self.fees:
            log.warning(
                "%s: the account's fees are maker %g taker %g, the config says maker %g taker %g; using the account's",
                self.ccxt_id,
                *venue,
                *self.fees,
            )
        self.fees = venue

    async def close(self) -> None:
        await self.ex.close()

    def funding_interval_hours(self, symbol: str) -> float:
        m = self.markets.get(symbol)
        return m.funding_interval_hours if m else 8.0

    async def place_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        client_order_id: str,
        order_type: str = "market",
        price: float | None = None,
        reduce_only: bool = False,
        post_only: bool = False,
    ) -> OrderState:
        """Send one order, idempotently (see module doc). Raises OrderRejected or VenueError."""
        import ccxt

        vsym = kaizen_to_unified(symbol)
        params = self._order_params(client_order_id, reduce_only, post_only)
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                found = await self._find(symbol, client_order_id)
                if found is not None:
                    self.stats["found_after_error"] += 1
                    return found
            try:
                raw = await self.ex.create_order(vsym, order_type, side, qty, price, dict(params))
                return self._order_state(symbol, raw, client_order_id)
            except ccxt.BaseError as exc:
                if not self.is_transient(exc):
                    text = str(exc).lower()
                    if "duplicat" in text or "-4116" in text:  # that client id exists: it is ours
                        found = await self._find(symbol, client_order_id)
                        if found is not None:
                            return found
                    raise OrderRejected(self._describe(exc)) from None
                # timeout, 5xx, disconnect, 429/418: the order's state is unknown
                last = exc
                self.stats["retries"] += 1
                delay = self.retry.delay(attempt, self._retry_after(exc))
                log.warning(
                    "%s place %s: %s; retrying in %.2fs",
                    self.ccxt_id,
                    client_order_id,
                    self.redact(type(exc).__name__),
                    delay,
                )
                await asyncio.sleep(delay)
        found = await self._find(symbol, client_order_id)
        if found is not None:
            return found
        raise VenueError(
            f"{self.ccxt_id} place {client_order_id}: gave up after "
            f"{self.retry.attempts} attempts ({self._describe(last)})"
        )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        return await self._find(symbol, client_order_id)

    async def cancel_order(
        self, symbol: str, client_order_id: str, venue_order_id: str = ""
    ) -> OrderState | None:
        """Cancel by client id; None when the venue no longer has it open (filled or gone)."""
        import ccxt

        vsym = kaizen_to_unified(symbol)
        for attempt in range(self.retry.attempts):
            try:
                raw = await self.ex.cancel_order(
                    venue_order_id or None,
                    vsym,
                    self._cancel_params(client_order_id) if not venue_order_id else {},
                )
                return self._order_state(symbol, raw, client_order_id)
            except ccxt.OrderNotFound:
                return None
            except ccxt.BaseError as exc:
                if self.is_transient(exc):
                    self.stats["retries"] += 1
                    await asyncio.sleep(self.retry.delay(attempt, self._retry_after(exc)))
                    continue
                text = str(exc).lower()
                if "unknown order" in text or "-2011" in text or "-2013" in text:
                    return None
                raise VenueError(self._describe(exc)) from None
        raise VenueError(
            f"{self.ccxt_id} cancel {client_order_id}: gave up after {self.retry.attempts} attempts"
        )

    async def fetch_open_orders(self, symbol: str) -> list[OrderState]:
        raw = await self._call("fetch_open_orders", self.ex.fetch_open_orders, kaizen_to_unified(symbol))
        return [self._order_state(symbol, o, "") for o in raw]

    async def _raw_positions(self) -> list[dict]:
        vsyms = [kaizen_to_unified(s) for s in self.symbols]
        return await self._call("fetch_positions", self.ex.fetch_positions, vsyms)

    async def fetch_positions(self) -> dict[str, VenuePosition]:
        raw = await self._raw_positions()
        out: dict[str, VenuePosition] = {}
        for p in raw:
            sym = unified_to_kaizen(p.get("symbol") or "")
            if sym not in self.markets:
                continue
            contracts = float(p.get("contracts") or 0.0) * float(p.get("contractSize") or 1.0)
            side = p.get("side")
            qty = -contracts if side == "short" else contracts
            info = p.get("info") or {}
            if "positionAmt" in info:  # one-way mode: the signed amount is authoritative
                qty = float(info["positionAmt"])
            prev = out.get(sym)
            out[sym] = VenuePosition(
                symbol=sym,
                qty=qty + (prev.qty if prev else 0.0),
                entry_price=float(p.get("entryPrice") or 0.0),
                mark_price=float(p.get("markPrice") or 0.0),
                unrealized_pnl=float(p.get("unrealizedPnl") or 0.0) + (prev.unrealized_pnl if prev else 0.0),
                liquidation_price=float(p.get("liquidationPrice") or 0.0),
            )
        for sym in self.symbols:
            out.setdefault(
                sym, VenuePosition(symbol=sym, qty=0.0, entry_price=0.0, mark_price=0.0, unrealized_pnl=0.0)
            )
        return out

    async def fetch_balance(self) -> Balance:
        raw = await self._call("fetch_balance", self.ex.fetch_balance)
        info = raw.get("info") or {}
        usdt = raw.get("USDT") or {}
        wallet = _num(info.get("totalWalletBalance"), usdt.get("total"))
        equity = _num(info.get("totalMarginBalance"), usdt.get("total"))
        avail = _num(info.get("availableBalance"), usdt.get("free"))
        return Balance(wallet=wallet, equity=equity, available=avail)

    FILL_PAGE = 1000
    FILL_PAGES_MAX = 50

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[VenueFill]:
        """Every fill since `since_ms` (inclusive), page by page: a full page means there may be
        more, so the next page starts at the last fill's time (trades at that ms are deduplicated
        by id). Without `since_ms`, the latest page only (the account's recent history)."""
        out: dict[str, VenueFill] = {}
        since = since_ms
        for _ in range(self.FILL_PAGES_MAX):
            raw = await self._call(
                "fetch_my_trades", self.ex.fetch_my_trades, kaizen_to_unified(symbol), since, self.FILL_PAGE
            )
            new = 0
            for t in raw:
                f = self._fill(symbol, t)
                if f.trade_id not in out:
                    out[f.trade_id] = f
                    new += 1
            if since is None or len(raw) < self.FILL_PAGE or new == 0:
                break
            since = max(f.ts_ms for f in out.values())
        return sorted(out.values(), key=lambda f: (f.ts_ms, f.trade_id))

    @staticmethod
    def _fill(symbol: str, t: dict) -> VenueFill:
        """A ccxt trade as our fill (the venue's own fee and realized PnL, not a recomputation)."""
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        return VenueFill(
            symbol=symbol,
            trade_id=str(t.get("id")),
            venue_order_id=str(t.get("order") or ""),
            client_order_id=str(
                t.get("clientOrderId") or info.get("clientOrderId") or info.get("orderLinkId") or ""
            ),
            side=str(t.get("side")),
            qty=float(t.get("amount") or 0.0),
            price=float(t.get("price") or 0.0),
            fee=float(fee.get("cost") or 0.0),
            fee_asset=str(fee.get("currency") or "USDT"),
            maker=t.get("takerOrMaker") == "maker",
            realized_pnl=_num(info.get("realizedPnl"), info.get("execPnl")),
            ts_ms=int(t.get("timestamp") or 0),
        )

    async def fetch_funding(self, since_ms: int | None = None) -> list[VenueFunding]:
        raw = await self._call("fetch_funding_history", self.ex.fetch_funding_history, None, since_ms, 1000)
        out = []
        for f in raw:
            sym = unified_to_kaizen(f.get("symbol") or "")
            info = f.get("info") or {}
            fid = str(f.get("id") or info.get("tranId") or f"{sym}:{f.get('timestamp')}")
            out.append(
                VenueFunding(
                    symbol=sym,
                    funding_id=fid,
                    amount=-float(f.get("amount") or 0.0),
                    ts_ms=int(f.get("timestamp") or 0),
                )
            )
        return out

    async def fetch_next_funding(self, symbol: str) -> tuple[float, int]:
        """(the predicted rate of the next settlement, its time in ms) for sizing's funding awareness."""
        raw = await self._call("fetch_funding_rate", self.ex.fetch_funding_rate, kaizen_to_unified(symbol))
        return float(raw.get("fundingRate") or 0.0), int(
            raw.get("fundingTimestamp") or raw.get("nextFundingTimestamp") or 0
        )

    # --- helpers -------------------------------------------------------------------------------------
    async def _find(self, symbol: str, client_order_id: str) -> OrderState | None:
        self.stats["lookups"] += 1
        raw = await self._call_retry(lambda: self._lookup(symbol, client_order_id))
        return None if raw is None else self._order_state(symbol, raw, client_order_id)

    async def _call(self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await self._call_retry(lambda: fn(*args), what)

    async def _call_retry(self, thunk: Callable[[], Awaitable[Any]], what: str = "lookup") -> Any:
        """Idempotent calls only: retried on transient errors with backoff and jitter."""
        import ccxt

        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            try:
                return await thunk()
            except ccxt.BaseError as exc:
                if not self.is_transient(exc):
                    raise VenueError(f"{self.ccxt_id} {what}: {self._describe(exc)}") from None
                last = exc
                self.stats["retries"] += 1
                await asyncio.sleep(self.retry.delay(attempt, self._retry_after(exc)))
        raise VenueError(
            f"{self.ccxt_id} {what}: gave up after {self.retry.attempts} attempts ({self._describe(last)})"
        )

    def is_transient(self, exc: Exception) -> bool:
        """Worth retrying (after a lookup, for orders): network/timeout/5xx/429 or a venue code
        that says the request was not processed or its outcome is unknown."""
        import ccxt

        if isinstance(exc, ccxt.OperationFailed):  # NetworkError (timeouts, 5xx, 429), BadResponse
            return True
        m = _CODE.search(str(exc))
        return bool(m) and int(m.group(1)) in self.TRANSIENT_CODES

    def _retry_after(self, exc: Exception) -> float | None:
        """Retry-After of the answer that raised `exc` (429/418/503), if the venue sent one."""
        headers = getattr(self.ex, "last_response_headers", None) or {}
        for k, v in headers.items():
            if k.lower() == "retry-after":
                try:
                    return float(v)
                except (TypeError, ValueError):
                    return None
        return None

    def _describe(self, exc: Exception | None) -> str:
        if exc is None:
            return "no error"
        return self.redact(f"{type(exc).__name__}: {exc}")[:500]

    def _order_state(self, symbol: str, o: dict, client_order_id: str) -> OrderState:
        info = o.get("info") or {}
        return OrderState(
            symbol=symbol,
            client_order_id=str(
                o.get("clientOrderId")
                or info.get("clientOrderId")
                or info.get("orderLinkId")
                or client_order_id
            ),
            venue_order_id=str(o.get("id") or ""),
            side=str(o.get("side") or ""),
            order_type=str(o.get("type") or ""),
            qty=float(o.get("amount") or 0.0),
            price=float(o.get("price") or 0.0),
            status=str(o.get("status") or "open"),
            filled=float(o.get("filled") or 0.0),
            avg_price=float(o.get("average") or 0.0),
            reduce_only=bool(o.get("reduceOnly") or False),
            ts_ms=int(o.get("timestamp") or 0),
        )


def _num(*values: Any) -> float:
    for v in values:
        if v is None or v == "":
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            return x
    return 0.0
