"""The closing table adds up: net = realized + unrealized - fees - funding, every term printed."""

from __future__ import annotations

import pytest

from kaizen.engine.report import format_summary


def _rows(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines()[2:]:
        label, _, value = line.rpartition("  ")
        out[label.strip()] = float(value.strip().rstrip("%"))
    return out


@pytest.mark.parametrize("unrealized", [0.0, 12.5, -7.25])
def test_closing_table_rows_add_up_to_the_net_figure(unrealized):
    realized, fees, funding = 8.75, 51.82, 0.17
    summary = {
        "net_pnl": realized + unrealized - fees - funding,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fees": fees,
        "funding": funding,
        "trades": 70.0,
    }
    rows = _rows(format_summary(summary))
    net = rows["PnL, net of fees and funding (USDT)"]
    parts = (
        rows["realized trading PnL (USDT)"]
        + rows["unrealized PnL of open positions (USDT)"]
        - rows["fees paid (USDT)"]
        - rows["funding paid (USDT, + = paid)"]
    )
    assert net == pytest.approx(parts, abs=2e-4)  # 4 decimals printed per row
