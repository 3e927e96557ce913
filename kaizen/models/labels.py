"""Labels net of costs: the forward log return over `horizon` bars of a long entered at the bar
close, minus the round-trip taker fee and the funding a long expects to pay over the hold."""

from __future__ import annotations

import numpy as np


def net_forward_return(
    open_time: np.ndarray,
    close: np.ndarray,
    funding: np.ndarray,
    horizon: int,
    interval_ms: int,
    fee: float,
    funding_interval_hours: float = 8.0,
) -> np.ndarray:
    """One symbol's rows in time order. nan where the window runs past the data or across a gap.

    cost = 2 * fee (taker in and out) + funding_rate_t * hold_hours / funding_interval_hours
    (a long pays positive funding; the latest settled rate is the forecast of the next ones).
    """
    n = len(close)
    out = np.full(n, np.nan)
    if n <= horizon:
        return out
    t0 = open_time[:-horizon]
    t1 = open_time[horizon:]
    ok = (t1 - t0) == horizon * interval_ms  # no gap inside the window
    gross = np.log(close[horizon:] / close[:-horizon])
    hold_h = horizon * interval_ms / 3_600_000
    f = np.nan_to_num(funding[:-horizon], nan=0.0)
    net = gross - 2.0 * fee - f * hold_h / funding_interval_hours
    out[:-horizon] = np.where(ok, net, np.nan)
    return out


def label_end_ms(open_time: np.ndarray, horizon: int, interval_ms: int) -> np.ndarray:
    """When each row's label is known: the close of bar t + horizon."""
    return open_time + (horizon + 1) * interval_ms
