"""A small, realistic lineage chain for tests: retrain -> model -> features -> predictions ->
decision -> order -> fill, for two symbols over a few bars."""

from __future__ import annotations

from kaizen.lineage.ids import new_id
from kaizen.lineage.records import (
    Decision,
    FeatureSnapshot,
    Fill,
    FundingPayment,
    Order,
    Prediction,
    Retrain,
    RunStart,
)

T0 = 1_717_200_000_000_000_000  # 2024-06-01T00:00:00Z
HOUR = 3_600_000_000_000


def demo_records(bars: int = 6) -> list:
    recs: list = [
        RunStart(
            id=new_id(),
            ts=T0,
            mode="backtest",
            version="0.1.0",
            config_hash="abc123",
            symbols=["BTCUSDT", "ETHUSDT"],
        )
    ]
    recs.append(
        Retrain(
            id=new_id(),
            ts=T0,
            run_id="nightly-20240531",
            role="meta",
            data_start=T0 - 90 * 24 * HOUR,
            data_end=T0 - HOUR,
            data_hash="d41d8c",
            metrics={"sharpe": 1.3},
            candidates=["meta-v7", "base-mom-v3"],
        )
    )
    for b in range(bars):
        ts = T0 + b * HOUR
        for k, sym in enumerate(("BTCUSDT", "ETHUSDT")):
            price = (67000.0 if sym == "BTCUSDT" else 3800.0) * (1 + 0.001 * b)
            feat = FeatureSnapshot(
                id=new_id(),
                ts=ts,
                symbol=sym,
                bar_ts=ts,
                feature_set="v1",
                names=["ret_1", "vol_20"],
                values=[0.001 * b, 0.02],
            )
            base = Prediction(
                id=new_id(),
                ts=ts,
                symbol=sym,
                model="base-mom-v3",
                role="base_momentum",
                value=0.1 * b,
                features_id=feat.id,
                parents=[feat.id],
            )
            meta = Prediction(
                id=new_id(),
                ts=ts,
                symbol=sym,
                model="meta-v7",
                role="meta",
                value=0.2 * b - 0.3,
                features_id=feat.id,
                parents=[feat.id, base.id],
            )
            dec = Decision(
                id=new_id(),
                ts=ts + 1,
                symbol=sym,
                model="meta-v7",
                strategy="ensemble",
                signal=meta.value,
                target_qty=0.01 * (b - 2),
                position_qty=0.01 * (b - 3),
                price=price,
                parents=[feat.id, base.id, meta.id],
            )
            recs += [feat, base, meta, dec]
            if b % 2 == k % 2:
                order = Order(
                    id=new_id(),
                    ts=ts + 2,
                    symbol=sym,
                    client_order_id=f"kz-{b}-{sym}",
                    side="buy",
                    order_type="market",
                    qty=0.01,
                    parents=[dec.id],
                    status="accepted",
                )
                fill = Fill(
                    id=new_id(),
                    ts=ts + 3,
                    symbol=sym,
                    client_order_id=order.client_order_id,
                    trade_id=f"t{b}{k}",
                    side="buy",
                    qty=0.01,
                    price=price,
                    fee=price * 0.01 * 0.0005,
                    parents=[order.id],
                )
                recs += [order, fill]
        if b % 8 == 7:
            recs.append(
                FundingPayment(
                    id=new_id(),
                    ts=ts,
                    symbol="BTCUSDT",
                    rate=0.0001,
                    position_qty=0.01,
                    mark_price=67000.0,
                    amount=0.067,
                )
            )
    return recs
