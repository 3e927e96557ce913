"""Post-only entries through the whole paper engine (`kaizen run` against the embedded simulator,
real ccxt client and websockets): `[router] entry = "post_only"` reaches the router from the config,
entries quote at the engine's book and fill as maker, every reduction is a market order, and the
maker/taker split of the fees equals the simulator's own trade log."""

from __future__ import annotations

import json
import math

import pytest

from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from tests.conftest import run_kaizen


@pytest.mark.slow  # ~27 s: the engine's start-up and shutdown dominate the 8 s of trading
def test_paper_engine_sends_post_only_entries_and_market_reductions(tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "paper.toml"
    cfg.write_text(
        'symbols = ["BTCUSDT", "ETHUSDT"]\n[strategy]\nbar_seconds = 20\n'
        '[router]\nentry = "post_only"\npost_only_fallback = "skip"\n'
        # 600x: the book moves a minute of sim time between two updates, so a quote at the touch
        # is often refused as crossing (-5022); still 3-4 entries of ~15 fill as maker per run
        f"[sim]\nseed = 11\nspeed = 600.0\n[lineage]\ndir = {json.dumps(str(out / 'lineage'))}\n"
    )
    res = run_kaizen("run", str(cfg), "--duration", "8", "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "of which maker" in res.stdout  # the closing table splits fees per decision
    summary = json.loads((out / "summary.json").read_text())
    recs = list(LineageReader(out / "lineage").records())
    orders = [r for r in recs if isinstance(r, R.Order) and r.client_order_id]
    fills = [r for r in recs if isinstance(r, R.Fill)]
    by_cid = {o.client_order_id: o for o in orders}
    posts = [o for o in orders if o.post_only]
    assert posts, "no post-only entry was sent"
    assert all(o.order_type == "limit" and not o.reduce_only for o in posts)
    assert all(o.order_type == "market" and not o.post_only for o in orders if o.reduce_only)
    maker = [f for f in fills if f.maker]
    assert maker, "no post-only entry filled"
    # a maker fill is always a post-only order's, and a post-only order's fills are always maker
    assert all(by_cid[f.client_order_id].post_only == f.maker for f in fills if f.client_order_id in by_cid)
    assert math.isclose(summary["maker_fees"], sum(f.fee for f in maker), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(
        summary["taker_fees"], sum(f.fee for f in fills if not f.maker), rel_tol=1e-9, abs_tol=1e-12
    )
    print(
        f"\n{len(orders)} orders, {len(posts)} post-only; {len(fills)} fills, {len(maker)} maker; "
        f"fees maker {summary['maker_fees']:.4f} taker {summary['taker_fees']:.4f}; "
        f"would cross {summary['post_only_would_cross']:.0f}; decisions traded "
        f"{summary['decisions_traded']:.0f}, filled {summary['decisions_filled']:.0f}"
    )
