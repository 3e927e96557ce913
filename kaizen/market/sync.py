"""Stream processing shared by the live feed and the replayer: decode → per-symbol book sync.

Book synchronisation follows Binance's USD-M futures rules ("How to manage a local order book
correctly"): buffer diffs, get a REST snapshot, drop diffs with u < lastUpdateId, the first
applied diff must have U <= lastUpdateId <= u, and every later diff's pu must equal the previous
diff's u. On a gap (or a malformed diff, or a crossed book) the book is marked invalid, a
BookResync lineage record is written, and a new snapshot is requested; diffs are buffered
meanwhile. A duplicate or stale diff (u <= last applied u) is counted and ignored: the book is
still exact through the last applied u.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from kaizen.ext.book import OrderBook
from kaizen.ext.depth import apply_depth, last_error, ticker_agrees
from kaizen.lineage.ids import new_id
from kaizen.lineage.records import BadMessage, BookResync, MarketStatus
from kaizen.market.messages import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    MarkPrice,
    Trade,
    classify_undecodable,
    envelope_decoder,
    finite_pos,
    snapshot_decoder,
)

WAIT_SNAPSHOT = 0  # buffering diffs until a snapshot arrives
WAIT_FIRST = 1  # snapshot applied; waiting for the diff that straddles lastUpdateId
SYNCED = 2

MS = 1_000_000


class SymbolState:
    __slots__ = (
        "symbol",
        "book",
        "state",
        "last_u",
        "snap_id",
        "buffer",
        "tick",
        "lot",
        "bt_pending",
        "last_seen",
        "seen",
        "silent",
        "stale",
    )

    def __init__(self, symbol: str, book: OrderBook, max_buffer: int) -> None:
        self.symbol = symbol
        self.book = book
        self.state = WAIT_SNAPSHOT
        self.last_u = 0
        self.snap_id = 0
        self.buffer: deque[DepthUpdate] = deque(maxlen=max_buffer)
        self.tick = book.tick_size
        self.lot = book.lot_size
        self.bt_pending: list[BookTicker] = []  # tickers newer than the book, awaiting the next diff
        self.last_seen = 0  # receive time (ns) of the last message for this symbol
        self.seen: dict[type, int] = {}  # receive time (ns) of the last message, per event type
        # Why the symbol is stale: event type (None: the whole symbol) -> the reason given
        self.silent: dict[type | None, str] = {}
        self.stale = False


def _counter_names() -> list[str]:
    return [
        "messages",
        "depthUpdate",
        "bookTicker",
        "trade",
        "aggTrade",
        "markPriceUpdate",
        "snapshot",
        "bad",
        "unknown",
        "unknown_symbol",
        "gaps",
        "resyncs",
        "duplicates",
        "pre_snapshot_dropped",
        "buffer_overflow",
        "stale_snapshot",
        "crossed",
        "levels",
        "bookticker_checked",
        "bookticker_disagreements",
        "bookticker_behind",
        "bookticker_skipped",
    ]


class StreamProcessor:
    """Decodes combined-stream messages and keeps one synced OrderBook per symbol.

    handler (optional) gets on_trade/on_mark/on_book/on_status; lineage (optional) has
    .append(record); request_snapshot(symbol) (optional) is called when a symbol needs a new
    REST snapshot (the feed fetches it and calls on_snapshot).
    """

    def __init__(
        self,
        symbols: list[str],
        tick_sizes: dict[str, float],
        lot_sizes: dict[str, float],
        handler: Any = None,
        lineage: Any = None,
        request_snapshot: Callable[[str], None] | None = None,
        max_buffer: int = 10_000,
        book_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.handler = handler
        self.lineage = lineage
        self.request_snapshot = request_snapshot
        self.symbols: dict[str, SymbolState] = {}
        for sym in symbols:
            s = sym.upper()
            book = OrderBook(tick_sizes[s], lot_sizes[s], **(book_kwargs or {}))
            self.symbols[s] = SymbolState(s, book, max_buffer)
        self.stats: dict[str, int] = dict.fromkeys(_counter_names(), 0)
        self.unknown_types: dict[str, int] = {}
        self.bad_reasons: dict[str, int] = {}
        self.disagreements: list[dict] = []  # first few, for reports
        self._dispatch = {
            DepthUpdate: self._on_depth,
            BookTicker: self._on_bookticker,
            Trade: self._on_trade,
            AggTrade: self._on_trade,
            MarkPrice: self._on_mark,
        }

    # --- entry points ----------------------------------------------------------------------------
    def process(self, raw: bytes, recv_ns: int = 0) -> None:
        """One combined-stream message (bytes as received)."""
        stats = self.stats
        stats["messages"] += 1
        try:
            env = envelope_decoder.decode(raw)
        except (msgspec.MsgspecError, ValueError) as exc:
            kind = classify_undecodable(raw)
            if kind.startswith("unknown:"):
                stats["unknown"] += 1
                self.unknown_types[kind[8:]] = self.unknown_types.get(kind[8:], 0) + 1
            else:
                self._bad("", f"undecodable: {str(exc)[:80]}", recv_ns)
            return
        data = env.data
        st = self.symbols.get(data.s)
        if st is None:
            stats["unknown_symbol"] += 1
            return
        st.last_seen = recv_ns
        kind = type(data)
        st.seen[kind] = recv_ns
        if st.stale:
            self._fresh(st, kind, recv_ns)
        self._dispatch[kind](st, data, recv_ns)

    def process_snapshot(self, symbol: str, raw: bytes, recv_ns: int = 0) -> bool:
        """A REST depth snapshot for symbol; True when it was usable."""
        st = self.symbols.get(symbol.upper())
        self.stats["snapshot"] += 1
        if st is None:
            self.stats["unknown_symbol"] += 1
            return False
        try:
            snap = snapshot_decoder.decode(raw)
        except (msgspec.MsgspecError, ValueError) as exc:
            self._bad(st.symbol, f"bad snapshot: {str(exc)[:80]}", recv_ns)
            self._want_snapshot(st)
            return False
        book = st.book
        book.clear()
        if apply_depth(book, snap.bids, snap.asks) < 0 or snap.lastUpdateId <= 0:
            book.clear()
            self._bad(st.symbol, f"bad snapshot levels: {last_error() or 'lastUpdateId'}", recv_ns)
            self._want_snapshot(st)
            return False
        if book.crossed():
            book.clear()
            self.stats["crossed"] += 1
            self._bad(st.symbol, "crossed snapshot", recv_ns)
            self._want_snapshot(st)
            return False
        st.snap_id = snap.lastUpdateId
        book.last_update_id = snap.lastUpdateId
        book.ts_ns = (snap.T or snap.E) * MS
        st.state = WAIT_FIRST
        pending = list(st.buffer)
        st.buffer.clear()
        for m in pending:
            self._on_depth(st, m, recv_ns, False)
        return st.state != WAIT_SNAPSHOT

    def book(self, symbol: str) -> OrderBook:
        return self.symbols[symbol.upper()].book

    # --- depth -----------------------------------------------------------------------------------
    def _on_depth(self, st: SymbolState, m: DepthUpdate, recv_ns: int, count: bool = True) -> None:
        if count:
            self.stats["depthUpdate"] += 1
        state = st.state
        if state == SYNCED:
            if m.pu != st.last_u:
                if m.u <= st.last_u:
                    self.stats["duplicates"] += 1
                    self._bad(st.symbol, f"duplicate/stale diff u={m.u} <= {st.last_u}", recv_ns, count=False)
                    return
                self.stats["gaps"] += 1
                self._resync(st, f"gap: pu={m.pu} expected {st.last_u}", m.E * MS)
                st.buffer.append(m)
                return
            if st.bt_pending:
                after = self._check_pending(st, m)
                self._apply(st, m, recv_ns)
                for t in after:
                    if st.state == SYNCED and not self._agrees(st, t):
                        self._disagree(st, t)
                return
            self._apply(st, m, recv_ns)
        elif state == WAIT_FIRST:
            if m.u < st.snap_id:
                self.stats["pre_snapshot_dropped"] += 1
                return
            if m.U > st.snap_id:
                # The snapshot is older than the diffs we hold: it cannot be bridged.
                self.stats["stale_snapshot"] += 1
                self._resync(st, f"snapshot {st.snap_id} older than diff U={m.U}", m.E * MS)
                st.buffer.append(m)
                return
            self._apply(st, m, recv_ns)
        else:
            if len(st.buffer) == st.buffer.maxlen:
                self.stats["buffer_overflow"] += 1
            st.buffer.append(m)

    def _apply(self, st: SymbolState, m: DepthUpdate, recv_ns: int) -> None:
        book = st.book
        n = apply_depth(book, m.b, m.a)
        ts = m.E * MS
        if n < 0:
            self._bad(st.symbol, f"bad depth levels: {last_error()}", recv_ns)
            self._resync(st, "bad depth message", ts)
            return
        self.stats["levels"] += n
        st.last_u = m.u
        book.last_update_id = m.u
        book.ts_ns = ts
        if book.crossed():
            self.stats["crossed"] += 1
            self._resync(st, "crossed book", ts)
            return
        if st.state != SYNCED:
            st.state = SYNCED
            book.valid = not st.stale
            if not st.stale:  # a silent stream keeps the symbol stale whatever the book does
                self._status(st.symbol, ts, "valid", f"synced at u={m.u}")
        h = self.handler
        if h is not None:
            h.on_book(st.symbol, ts, book)

    def _resync(self, st: SymbolState, reason: str, ts: int) -> None:
        self.stats["resyncs"] += 1
        was_valid = st.book.valid
        st.book.valid = False
        st.state = WAIT_SNAPSHOT
        st.buffer.clear()
        st.bt_pending.clear()
        if self.lineage is not None:
            self.lineage.append(
                BookResync(id=new_id(), ts=ts, symbol=st.symbol, reason=reason, last_update_id=st.last_u)
            )
        if was_valid:
            self._status(st.symbol, ts, "invalid", reason)
        self._want_snapshot(st)

    def _want_snapshot(self, st: SymbolState) -> None:
        if self.request_snapshot is not None:
            self.request_snapshot(st.symbol)

    def mark_stale(self, symbol: str, ts: int, reason: str, kind: type | None = None) -> bool:
        """Watchdog: a stream (`kind`, the event type it carries) or, with kind None, the whole
        symbol has been silent too long. The book is unusable until every silent stream speaks
        again. Each newly silent stream gets its own "stale" status record; True if this one was
        newly silent."""
        st = self.symbols[symbol.upper()]
        if kind in st.silent or (kind is None and st.stale):
            return False
        st.silent[kind] = reason
        st.stale = True
        st.book.valid = False
        self._status(st.symbol, ts, "stale", reason)
        return True

    def _fresh(self, st: SymbolState, kind: type, ts: int) -> None:
        """A message of `kind` arrived: that stream (and a whole-symbol silence) is over."""
        st.silent.pop(kind, None)
        st.silent.pop(None, None)
        if not st.silent:
            self._unstale(st, ts)

    def _unstale(self, st: SymbolState, ts: int) -> None:
        st.stale = False
        if st.state == SYNCED:
            st.book.valid = True
            self._status(st.symbol, ts, "valid", "data resumed")

    def invalidate(self, symbol: str, reason: str, ts: int) -> None:
        """Mark a symbol's book unusable and resync it (e.g. after a reconnect)."""
        st = self.symbols[symbol.upper()]
        if st.last_u == 0 and st.state == WAIT_SNAPSHOT:
            # Never synced yet (first connect): nothing to resync, just get a snapshot.
            st.buffer.clear()
            self._want_snapshot(st)
            return
        self._resync(st, reason, ts)

    # --- bookTicker consistency check ---------------------------------------------------------------
    def _on_bookticker(self, st: SymbolState, m: BookTicker, recv_ns: int) -> None:
        """Check the book's touch against every ticker not older than the last applied diff.

        The book after the diff ending at u_k is exact for update ids in [u_k, U_k+1). A ticker
        with id u_k must agree. One with a later id that disagrees waits for the diffs: if its id
        precedes the next diff's U the book was exact and it is an unexplained disagreement; if it
        equals a diff's u it is compared exactly after that diff; if it falls strictly inside a
        diff's [U, u) the book was behind (the ticker reports an update the diff stream had not
        delivered yet) and it is counted as explained (bookticker_behind).
        """
        self.stats["bookTicker"] += 1
        if not (finite_pos(m.b) and finite_pos(m.a) and 0.0 <= m.B < 1e15 and 0.0 <= m.A < 1e15):
            self._bad(st.symbol, f"bad bookTicker b={m.b} a={m.a}", recv_ns)
            return
        if st.state != SYNCED or m.u < st.last_u:
            self.stats["bookticker_skipped"] += 1
            return
        self.stats["bookticker_checked"] += 1
        if self._agrees(st, m):
            return
        if m.u == st.last_u:
            self._disagree(st, m)
        else:
            st.bt_pending.append(m)

    def _check_pending(self, st: SymbolState, m: DepthUpdate) -> list[BookTicker]:
        """Resolve tickers that disagreed while newer than the book, given the next diff m
        (before it is applied). Returns those to compare exactly after applying m (id == m.u)."""
        after, keep = [], []
        for t in st.bt_pending:
            if t.u < m.U:
                self._disagree(st, t)  # the book was exact for t.u: no excuse
            elif t.u == m.u:
                after.append(t)
            elif t.u < m.u:
                self.stats["bookticker_behind"] += 1  # t.u falls inside this diff's range
            else:
                keep.append(t)
        st.bt_pending = keep
        return after

    @staticmethod
    def _agrees(st: SymbolState, m: BookTicker) -> bool:
        return ticker_agrees(st.book, m.b, m.B, m.a, m.A)

    def _disagree(self, st: SymbolState, m: BookTicker) -> None:
        self.stats["bookticker_disagreements"] += 1
        book = st.book
        if len(self.disagreements) < 20:
            self.disagreements.append(
                {
                    "u": m.u,
                    "book_u": st.last_u,
                    "ticker": [m.b, m.B, m.a, m.A],
                    "book": [book.best_bid(), book.best_bid_qty(), book.best_ask(), book.best_ask_qty()],
                }
            )

    # --- trades, mark price ---------------------------------------------------------------------------
    def _on_trade(self, st: SymbolState, m: Trade | AggTrade, recv_ns: int) -> None:
        self.stats["aggTrade" if type(m) is AggTrade else "trade"] += 1
        if not finite_pos(m.p) or not (0.0 <= m.q < 1e15) or m.E <= 0:
            self._bad(st.symbol, f"bad trade p={m.p} q={m.q}", recv_ns)
            return
        h = self.handler
        if h is not None:
            h.on_trade(st.symbol, m.E * MS, m.p, m.q, m.m)

    def _on_mark(self, st: SymbolState, m: MarkPrice, recv_ns: int) -> None:
        self.stats["markPriceUpdate"] += 1
        if not finite_pos(m.p) or m.E <= 0:
            self._bad(st.symbol, f"bad mark p={m.p}", recv_ns)
            return
        h = self.handler
        if h is not None:
            h.on_mark(st.symbol, m.E * MS, m.p, m.i, m.r, m.T)

    # --- bookkeeping ------------------------------------------------------------------------------------
    def _bad(self, symbol: str, reason: str, ts: int, count: bool = True) -> None:
        if count:
            self.stats["bad"] += 1
        key = reason.split(":")[0]
        self.bad_reasons[key] = self.bad_reasons.get(key, 0) + 1
        if self.lineage is not None:
            self.lineage.append(BadMessage(id=new_id(), ts=ts, symbol=symbol, reason=reason))

    def _status(self, symbol: str, ts: int, status: str, reason: str) -> None:
        if self.lineage is not None:
            self.lineage.append(MarketStatus(id=new_id(), ts=ts, symbol=symbol, status=status, reason=reason))
        h = self.handler
        if h is not None:
            h.on_status(symbol, status, reason)
