"""`kaizen backtest`: the one engine on a replay clock, strategies side by side, and the report."""
