"""Pre-trade risk limits and the kill switch.

`check_order` is the one gate every order passes (the router calls it; nothing else sends orders).
Orders that only reduce exposure are always allowed through the exposure limits (notional,
leverage, staleness) so a position can be cut when limits are already breached; rate, open-order
count and the price band still apply to them. Once the kill switch trips the manager is halted:
every order is refused except the router's reduce-only flatten, until a deliberate `rearm()`.
The halted state is persisted to a small file so a restart does not silently re-arm.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path

from kaizen import rundir
from kaizen.config import RiskConfig

DAY_MS = 86_400_000
_EPS = 1e-9


class RiskManager:
    def __init__(
        self,
        cfg: RiskConfig,
        equity: float,
        *,
        state_path: str | os.PathLike[str] | None = None,
        now_ms: int | None = None,
        clock_rate: float = 1.0,
    ) -> None:
        self.cfg = cfg
        # venue ms per wall ms: 1 live; the simulator's speed in paper. `stale_after_ms` is a wall
        # tolerance (as in the feed's watchdog) applied on the venue clock, so it scales with it.
        self.stale_after_venue_ms = cfg.stale_after_ms * max(clock_rate, 1.0)
        self.equity = float(equity)
        self.peak_equity = float(equity)
        now = _now_ms() if now_ms is None else now_ms
        self._day = now // DAY_MS
        self.day_start_equity = float(equity)
        self.max_drawdown_seen = 0.0
        self._order_times: deque[int] = deque()
        self._last_data_ms: dict[str, int] = {}
        self.state_path = Path(state_path) if state_path is not None else None
        self.halted = False
        self.halt_reason = ""
        if self.state_path is not None and self.state_path.exists():
            state = load_halt_state(self.state_path)
            if state.get("halted"):
                self.halted = True
                self.halt_reason = str(state.get("reason", "halted by a previous run"))

    # --- market data freshness -------------------------------------------------------------------
    def on_market(self, symbol: str, ts_ms: int) -> None:
        if ts_ms > self._last_data_ms.get(symbol, -1):
            self._last_data_ms[symbol] = ts_ms

    def is_stale(self, symbol: str, now_ms: int | None = None) -> bool:
        last = self._last_data_ms.get(symbol)
        if last is None:
            return True
        now = _now_ms() if now_ms is None else now_ms
        return now - last > self.stale_after_venue_ms

    def is_stale_data(self, data_ts_ms: int | None, now_ms: int) -> bool:
        """The one staleness rule, on the venue clock: the data behind a decision (the bar's close or
        the event's time) is stale when it is older than `stale_after_ms` (in venue time: scaled by
        the clock rate) at `now_ms` (the engine's venue-event clock), or when its time is unknown."""
        return data_ts_ms is None or now_ms - data_ts_ms > self.stale_after_venue_ms

    # --- the gate --------------------------------------------------------------------------------
    def check_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        mark_price: float,
        positions: dict[str, float],
        prices: dict[str, float],
        open_orders: int,
        *,
        now_ms: int | None = None,
        pending: dict[str, float] | None = None,
        data_ts_ms: int | None = None,
    ) -> tuple[bool, str]:
        """May this order be sent? `positions` are signed quantities, `pending` signed open-order
        quantities (counted as if filled), `prices` the marks used to value other symbols,
        `data_ts_ms` the venue time of the data behind the order (None: the symbol's latest market
        data, for callers outside the router)."""
        if self.halted:
            return False, f"halted: {self.halt_reason}"
        if not (qty > 0 and math.isfinite(qty) and price > 0 and math.isfinite(price)):
            return False, f"bad order: qty={qty!r} price={price!r}"
        if side not in ("buy", "sell"):
            return False, f"bad side {side!r}"
        now = _now_ms() if now_ms is None else now_ms
        cfg = self.cfg
        if open_orders + 1 > cfg.max_open_orders:
            return False, f"max_open_orders: {open_orders} open, limit {cfg.max_open_orders}"
        self._prune(now)
        if len(self._order_times) + 1 > cfg.max_orders_per_minute:
            return False, f"max_orders_per_minute: limit {cfg.max_orders_per_minute}"
        if mark_price > 0 and math.isfinite(mark_price):
            band = abs(price - mark_price) / mark_price
            if band > cfg.price_band_pct:
                return False, f"price_band: price {price} is {band:.2%} from mark {mark_price}"
        else:
            return False, "price_band: no mark price"
        pend = pending or {}
        signed = qty if side == "buy" else -qty
        cur = positions.get(symbol, 0.0) + pend.get(symbol, 0.0)
        new = cur + signed
        if abs(new) <= abs(cur) + _EPS and new * cur >= -_EPS:
            return True, "reduces exposure"
        stale = self.is_stale(symbol, now) if data_ts_ms is None else self.is_stale_data(data_ts_ms, now)
        if stale:
            return False, f"stale market data on {symbol}: no new risk"
        mark = mark_price
        if abs(new) * mark > cfg.max_notional_per_symbol * (1 + 1e-9):
            return False, (f"max_notional_per_symbol: {abs(new) * mark:.2f} > {cfg.max_notional_per_symbol}")
        equity = self.equity
        if equity <= 0:
            return False, "no equity"
        gross = abs(new) * mark
        net = new * mark
        for sym, pos in positions.items():
            if sym == symbol:
                continue
            q = pos + pend.get(sym, 0.0)
            p = prices.get(sym, 0.0)
            gross += abs(q) * p
            net += q * p
        for sym, q in pend.items():
            if sym != symbol and sym not in positions:
                p = prices.get(sym, 0.0)
                gross += abs(q) * p
                net += q * p
        if gross / equity > cfg.max_gross_leverage * (1 + 1e-9):
            return False, f"max_gross_leverage: {gross / equity:.3f} > {cfg.max_gross_leverage}"
        if abs(net) / equity > cfg.max_net_leverage * (1 + 1e-9):
            return False, f"max_net_leverage: {abs(net) / equity:.3f} > {cfg.max_net_leverage}"
        return True, "ok"

    def record_order(self, now_ms: int | None = None) -> None:
        """Count an order actually sent (for the order-rate limit)."""
        self._order_times.append(_now_ms() if now_ms is None else now_ms)

    def _prune(self, now: int) -> None:
        while self._order_times and self._order_times[0] <= now - 60_000:
            self._order_times.popleft()

    # --- equity, drawdown, kill switch -----------------------------------------------------------
    def on_equity(self, equity: float, now_ms: int | None = None) -> str | None:
        """Update equity; returns the kill reason when this update trips the switch, else None."""
        now = _now_ms() if now_ms is None else now_ms
        day = now // DAY_MS
        if day != self._day:  # a new UTC day: the daily loss limit restarts from here
            self._day = day
            self.day_start_equity = self.equity
        self.equity = float(equity)
        self.peak_equity = max(self.peak_equity, self.equity)
        dd = (self.peak_equity - self.equity) / self.peak_equity if self.peak_equity > 0 else 0.0
        self.max_drawdown_seen = max(self.max_drawdown_seen, dd)
        if self.halted:
            return None
        loss = self.day_start_equity - self.equity
        if loss >= self.cfg.daily_loss_limit:
            return self.trip(f"daily loss {loss:.2f} >= daily_loss_limit {self.cfg.daily_loss_limit}")
        if dd >= self.cfg.max_drawdown:
            return self.trip(f"drawdown {dd:.2%} >= max_drawdown {self.cfg.max_drawdown:.2%}")
        return None

    def trip(self, reason: str) -> str:
        self.halted = True
        self.halt_reason = reason
        print(
            f"kaizen: KILL SWITCH: {reason} -- cancelling all orders, flattening, trading halted "
            "(re-arm with `kaizen risk rearm`)",
            file=sys.stderr,
            flush=True,
        )
        if self.state_path is not None:
            save_halt_state(self.state_path, reason)
        return reason

    def rearm(self) -> None:
        """Deliberate re-arm: clears the halt, restarts drawdown and daily loss from current equity."""
        self.halted = False
        self.halt_reason = ""
        self.peak_equity = self.equity
        self.day_start_equity = self.equity
        if self.state_path is not None:
            clear_halt_state(self.state_path)


HALT_FILE = rundir.HALT_FILE  # beside the run's lineage log


def save_halt_state(path: Path, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"halted": True, "reason": reason, "ts_ms": _now_ms()}))
    os.replace(tmp, path)


def load_halt_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        # An unreadable halt file is treated as halted: re-arming must be deliberate.
        return {"halted": True, "reason": f"unreadable halt file {path}"}
    return data if isinstance(data, dict) else {"halted": True, "reason": f"bad halt file {path}"}


def clear_halt_state(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def position_headroom(
    risk: RiskManager,
    symbol: str,
    sign: float,
    mark: float,
    positions: dict[str, float],
    prices: dict[str, float],
    pending: dict[str, float] | None = None,
) -> float:
    """Largest |position| in `symbol` on side `sign` that the notional and leverage limits allow,
    given the other symbols' positions (and pending orders). Used to clamp a target before sizing
    it into an order; `check_order` stays the gate."""
    cfg = risk.cfg
    if mark <= 0 or risk.equity <= 0:
        return 0.0
    pend = pending or {}
    gross_other = 0.0
    net_other = 0.0
    for sym in set(positions) | set(pend):
        if sym == symbol:
            continue
        q = positions.get(sym, 0.0) + pend.get(sym, 0.0)
        p = prices.get(sym, 0.0)
        gross_other += abs(q) * p
        net_other += q * p
    cap = cfg.max_notional_per_symbol
    cap = min(cap, cfg.max_gross_leverage * risk.equity - gross_other)
    # |net_other + sign * n| <= L * equity  ->  sign * n <= L*eq - sign*net_other
    cap = min(cap, cfg.max_net_leverage * risk.equity - sign * net_other)
    return max(0.0, cap) / mark
