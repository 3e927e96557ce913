"""Post-only entries in a backtest (the in-process venue's fill model): entries rest at the decision's
price and fill as maker only when a later bar trades through them; filled entries pay the maker fee
(read from the venue's own trade log), unfilled ones are cancelled at the next bar and leave no
position; exits stay taker. Same real candles with market entries for comparison."""

from __future__ import annotations

import msgspec
import pytest

from kaizen.backtest.driver import Job, run_job
from kaizen.config import BacktestConfig, Config, RiskConfig, RouterConfig, StrategyConfig
from kaizen.engine.report import pnl_from_records
from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from kaizen.market.data import load_dataset

SYMBOLS = ["BTCUSDT"]
START, END = 1_685_577_600_000, 1_690_848_000_000  # 2023-06-01 .. 2023-08-01


def _run(tmp, ds, entry: str):
    cfg = Config(
        symbols=SYMBOLS,
        risk=RiskConfig(max_notional_per_symbol=10_000.0, daily_loss_limit=10_000.0, max_drawdown=1.0),
        strategy=StrategyConfig(name="baseline_momentum", entry_z=0.5),
        backtest=BacktestConfig(capital=10_000.0),
        router=RouterConfig(entry=entry),
    )
    cfg = msgspec.structs.replace(cfg, models=msgspec.structs.replace(cfg.models, interval="1h"))
    out = tmp / entry
    job = Job(name="bm", kind="baseline_momentum", cfg=cfg, data_dir="", symbols=SYMBOLS,
              start_ms=START, end_ms=END, out_dir=str(out))  # fmt: skip
    res = run_job(job, ds=ds)
    recs = list(LineageReader(out / "lineage" / "bm").records())
    return res, recs


def test_post_only_entries_pay_maker_fees_and_unfilled_ones_leave_no_position(tmp_path, shared_data):
    ds = load_dataset(str(shared_data), SYMBOLS, "1h", end_ms=END)
    res, recs = _run(tmp_path, ds, "post_only")
    assert res.errors == []
    maker_fee = 0.0002  # [fees] maker, the in-process venue's schedule
    orders = {o.client_order_id: o for o in recs if isinstance(o, R.Order) and o.client_order_id}
    trades = res.trade_log
    by_cid: dict[str, list[dict]] = {}
    for t in trades:
        by_cid.setdefault(t["clientOrderId"], []).append(t)
    posts = [o for o in orders.values() if o.post_only]
    filled = [o for o in posts if o.client_order_id in by_cid]
    unfilled = [o for o in posts if o.client_order_id not in by_cid]
    assert len(filled) >= 3 and len(unfilled) >= 3, (len(filled), len(unfilled))
    # every post-only order is a limit that added exposure; every reduction is a market order
    assert all(o.order_type == "limit" and not o.reduce_only for o in posts)
    assert all(not o.post_only and o.order_type == "market" for o in orders.values() if o.reduce_only)
    # filled entries: maker, at their own price, the maker rate on the venue's own trade log
    for o in filled:
        for t in by_cid[o.client_order_id]:
            assert t["maker"] and t["price"] == pytest.approx(o.price)
            assert t["commission"] == pytest.approx(t["price"] * t["qty"] * maker_fee, rel=1e-9)
    # everything else paid taker
    assert not any(t["maker"] for cid, ts in by_cid.items() if not orders[cid].post_only for t in ts)
    # unfilled entries: cancelled with nothing executed, and the position did not move
    decisions = sorted((d for d in recs if isinstance(d, R.Decision)), key=lambda d: d.ts)
    by_id = {d.id: d for d in decisions}
    for o in unfilled:
        dec = by_id[o.parents[0]]
        nxt = next(d for d in decisions if d.ts > dec.ts and d.symbol == dec.symbol)
        assert nxt.position_qty == dec.position_qty, (o, dec, nxt)
    fills = [f for f in recs if isinstance(f, R.Fill)]
    assert {f.client_order_id for f in fills if f.maker} == {o.client_order_id for o in filled}
    # flat at the end (the driver's closing flatten) by the fills alone
    assert pnl_from_records(recs)["open_position_symbols"] == 0
    s = res.summary
    maker_fills = s["per_symbol"]["BTCUSDT"]["maker_fills"]
    assert maker_fills == sum(len(by_cid[o.client_order_id]) for o in filled)
    # the market-entry run on the same candles pays taker on every fill
    res_m, recs_m = _run(tmp_path, ds, "market")
    assert res_m.summary["per_symbol"]["BTCUSDT"]["maker_fills"] == 0
    assert not any(o.post_only for o in recs_m if isinstance(o, R.Order))
    m = res_m.summary
    maker_paid = sum(t["commission"] for t in trades if t["maker"])
    print(
        f"\npost_only: net {s['net_pnl']:+.2f} fees {s['fees']:.2f} (maker {maker_paid:.2f}) "
        f"fills {len(trades)} maker fills {maker_fills:.0f}; entries filled {len(filled)}, "
        f"unfilled {len(unfilled)}\n"
        f"market:    net {m['net_pnl']:+.2f} fees {m['fees']:.2f} fills {len(res_m.trade_log)}"
    )
