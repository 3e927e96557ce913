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


def pnl_from_records(records: Iterable[Any]) -> dict[str, float]:
    """Recompute PnL from Fill and FundingPayment records alone (average-cost accounting).

    Realized PnL is booked when a fill reduces a position; what is still open at the end is left
    out (the engine flattens on stop), so this equals the engine's net PnL for a flat book.
    """
    pos: dict[str, float] = {}
    avg: dict[str, float] = {}
    realized = fees = funding = 0.0
    trades = 0
    for rec in records:
        if isinstance(rec, R.Fill):
            trades += 1
            fees += rec.fee
            q = rec.qty if rec.side == "buy" else -rec.qty
            p0, a0 = pos.get(rec.symbol, 0.0), avg.get(rec.symbol, 0.0)
            if p0 == 0 or (p0 > 0) == (q > 0):  # opening or adding
                new = p0 + q
                avg[rec.symbol] = (a0 * abs(p0) + rec.price * abs(q)) / abs(new)
                pos[rec.symbol] = new
            else:  # reducing, maybe flipping
                closed = min(abs(q), abs(p0))
                realized += closed * (rec.price - a0) * (1 if p0 > 0 else -1)
                new = p0 + q
                pos[rec.symbol] = new
                if abs(new) < 1e-12:
                    pos[rec.symbol] = 0.0
                    avg[rec.symbol] = 0.0
                elif (new > 0) != (p0 > 0):
                    avg[rec.symbol] = rec.price
        elif isinstance(rec, R.FundingPayment):
            funding += rec.amount
    return {
        "realized_pnl": realized,
        "fees": fees,
        "funding": funding,
        "net_pnl": realized - fees - funding,
        "trades": float(trades),
        "open_position_symbols": float(sum(1 for v in pos.values() if abs(v) > 1e-12)),
    }
