"""A strategy's results from the in-process venue's own books: its wallet, trade log and funding
log (the Exchange's accounting, not the router's), and the equity curve sampled at every close.

Returns are daily: equity at the last close of each UTC day. Sharpe and Sortino are annualised by
sqrt(365) (crypto trades every day). Everything is net of fees, spread, slippage and funding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kaizen import stats

DAY_MS = 86_400_000


def daily_returns(equity_t: list[int], equity: list[float], capital: float) -> np.ndarray:
    """Net daily returns from an equity curve sampled at bar closes (ms), starting from capital."""
    if not equity_t:
        return np.zeros(0)
    t = np.asarray(equity_t, np.int64)
    e = np.asarray(equity, np.float64)
    day = (t - 1) // DAY_MS  # a close at 00:00 ends the previous day
    last = np.flatnonzero(np.diff(day, append=day[-1] + 1))  # last sample of each day
    eod = np.concatenate(([capital], e[last]))
    return eod[1:] / eod[:-1] - 1.0


def strategy_metrics(
    ex: Any,
    equity_t: list[int],
    equity: list[float],
    gross: list[float],
    capital: float,
    symbols: list[str],
    decisions: int,
) -> dict[str, Any]:
    trades = ex.trade_log
    funding = ex.funding_log
    final = float(equity[-1]) if equity else capital
    daily = daily_returns(equity_t, equity, capital)
    curve = np.concatenate(([capital], np.asarray(equity, np.float64)))
    per: dict[str, dict[str, float]] = {}
    for s in symbols:
        ts = [t for t in trades if t["symbol"] == s]
        fs = [f for f in funding if f["symbol"] == s]
        realized = float(sum(t["realizedPnl"] for t in ts))
        fees = float(sum(t["commission"] for t in ts))
        paid = -float(sum(f["payment"] for f in fs))  # + = paid by us
        per[s] = {
            "net_pnl": realized - fees - paid,
            "realized_pnl": realized,
            "fees": fees,
            "funding": paid,
            "trades": float(len(ts)),
            "turnover": float(sum(t["quoteQty"] for t in ts)) / capital,
            "maker_fills": float(sum(1 for t in ts if t["maker"])),
            "liquidations": float(sum(1 for t in ts if t.get("liquidation"))),
        }
    fees = sum(p["fees"] for p in per.values())
    paid = sum(p["funding"] for p in per.values())
    realized = sum(p["realized_pnl"] for p in per.values())
    g = np.asarray(gross, np.float64)
    return {
        "net_return": final / capital - 1.0,
        "net_pnl": final - capital,
        "final_equity": final,
        "sharpe": stats.sharpe(daily, 365.0),
        "sortino": stats.sortino(daily, 365.0),
        "max_drawdown": stats.max_drawdown(curve),
        "fees": fees,
        "funding": paid,
        "realized_pnl": realized,
        "turnover": sum(p["turnover"] for p in per.values()),
        "trades": float(sum(p["trades"] for p in per.values())),
        "exposure": float(np.mean(g) / capital) if len(g) else 0.0,
        "time_in_market": float(np.mean(g > 0)) if len(g) else 0.0,
        "days": float(len(daily)),
        "decisions": float(decisions),
        "per_symbol": per,
    }
