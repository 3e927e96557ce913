"""Run summaries: the engine's own accounting, and an independent recomputation from lineage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kaizen.lineage import records as R

ROWS = (
    ("net_pnl", "PnL, net of fees and funding (USDT)", "{:+.4f}"),
    ("realized_pnl", "realized trading PnL (USDT)", "{:+.4f}"),
    ("unrealized_pnl", "unrealized PnL of open positions (USDT)", "{:+.4f}"),
    ("fees", "fees paid (USDT)", "{:.4f}"),
    ("funding", "funding paid (USDT, + = paid)", "{:+.4f}"),
    ("trades", "trades (fills)", "{:.0f}"),
    ("decisions_traded", "decisions that traded", "{:.0f}"),
    ("fees_per_decision", "fees per decision that traded (USDT)", "{:.4f}"),
    ("maker_fees_per_decision", "  of which maker (post-only entries, USDT)", "{:.4f}"),
    ("taker_fees_per_decision", "  of which taker (USDT)", "{:.4f}"),
    ("max_drawdown", "max drawdown (fraction of peak equity)", "{:.4%}"),
    ("bars", "bars closed", "{:.0f}"),
    ("decisions", "decisions", "{:.0f}"),
)


def format_summary(summary: dict[str, float]) -> str:
    width = max(len(label) for _, label, _ in ROWS)
    lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  {'-' * 14}"]
    for key, label, fmt in ROWS:
        if key in summary:
            lines.append(f"{label.ljust(width)}  {fmt.format(summary[key]):>14}")
    return "\n".join(lines)


class Ledger:
    """Average-cost accounting replayed from lineage records alone: `Fill` and `FundingPayment`
    move cash and positions, `Bar` records give each symbol's valuation price (the mark when the
    bar had one, else its close), `RunStart` the capital. The independent check on the venue's and
    the router's books, and the source of `kaizen report`'s curves."""

    def __init__(self, capital: float = 0.0) -> None:
        self.capital = capital
        self.pos: dict[str, float] = {}
        self.avg: dict[str, float] = {}
        self.price: dict[str, float] = {}
        self.realized = 0.0
        self.fees = 0.0
        self.funding = 0.0  # + = paid
        self.trades = 0
        self.by_symbol: dict[str, dict[str, float]] = {}

    def _sym(self, s: str) -> dict[str, float]:
        d = self.by_symbol.get(s)
        if d is None:
            d = self.by_symbol[s] = {"realized_pnl": 0.0, "fees": 0.0, "funding": 0.0, "trades": 0.0}
        return d

    def apply(self, rec: Any) -> None:
        if isinstance(rec, R.Fill):
            self._fill(rec)
        elif isinstance(rec, R.FundingPayment):
            self.funding += rec.amount
            self._sym(rec.symbol)["funding"] += rec.amount
        elif isinstance(rec, R.Bar):
            self.price[rec.symbol] = rec.mark if rec.mark == rec.mark and rec.mark > 0 else rec.close
        elif isinstance(rec, R.RunStart) and rec.capital:
            self.capital = rec.capital

    def _fill(self, rec: R.Fill) -> None:
        s = rec.symbol
        self.trades += 1
        self.fees += rec.fee
        d = self._sym(s)
        d["fees"] += rec.fee
        d["trades"] += 1
        q = rec.qty if rec.side == "buy" else -rec.qty
        p0, a0 = self.pos.get(s, 0.0), self.avg.get(s, 0.0)
        if p0 == 0 or (p0 > 0) == (q > 0):  # opening or adding
            new = p0 + q
            self.avg[s] = (a0 * abs(p0) + rec.price * abs(q)) / abs(new)
            self.pos[s] = new
        else:  # reducing, maybe flipping
            closed = min(abs(q), abs(p0))
            r = closed * (rec.price - a0) * (1 if p0 > 0 else -1)
            self.realized += r
            d["realized_pnl"] += r
            new = p0 + q
            self.pos[s] = new
            if abs(new) < 1e-12:
                self.pos[s] = 0.0
                self.avg[s] = 0.0
            elif (new > 0) != (p0 > 0):
                self.avg[s] = rec.price

    def unrealized(self) -> float:
        return sum(q * (self.price.get(s, self.avg.get(s, 0.0)) - self.avg.get(s, 0.0)) for s, q in self.pos.items() if q)

    def equity(self) -> float:
        return self.capital + self.realized - self.fees - self.funding + self.unrealized()


def pnl_from_records(records: Iterable[Any]) -> dict[str, float]:
    """Recompute PnL from Fill and FundingPayment records alone (average-cost accounting).

    Realized PnL is booked when a fill reduces a position; what is still open at the end is left
    out (the engine flattens on stop), so this equals the engine's net PnL for a flat book.
    """
    led = Ledger()
    for rec in records:
        if isinstance(rec, R.Fill | R.FundingPayment):
            led.apply(rec)
    return {
        "realized_pnl": led.realized,
        "fees": led.fees,
        "funding": led.funding,
        "net_pnl": led.realized - led.fees - led.funding,
        "trades": float(led.trades),
        "open_position_symbols": float(sum(1 for v in led.pos.values() if abs(v) > 1e-12)),
    }
