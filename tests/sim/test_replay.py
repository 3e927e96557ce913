"""Replay of real Binance candles and funding (../shared/data) as the simulator's market."""

from __future__ import annotations

import csv
import gzip

import pytest

from kaizen.errors import DataError
from kaizen.venue.sim.replay import load_replay
from tests.sim.helpers import admin, run, sim_and_client

EIGHT_H = 8 * 3_600_000


def test_replay_series_follows_the_candles(shared_data) -> None:  # noqa: ANN001
    s = load_replay(shared_data, "SOLUSDT", "1h")
    path = next((shared_data / "futures/um/klines/SOLUSDT/1h").glob("*.csv.gz"))
    with gzip.open(path, "rt") as fh:
        first = next(csv.DictReader(fh))
    t0 = int(first["open_time"])
    assert s.start_ms == t0
    assert s.price_at(t0) == float(first["open"])
    assert s.price_at(int(first["close_time"])) == float(first["close"])
    inside = [s.price_at(t0 + k * 60_000) for k in range(60)]
    assert min(inside) == pytest.approx(float(first["low"]), abs=0.05)
    assert max(inside) == pytest.approx(float(first["high"]), abs=0.05)
    assert s.funding_rate(1_704_096_000_000) is not None  # 2024-01-01 08:00 UTC


def test_replay_bad_dir_is_a_data_error(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="no kline CSV"):
        load_replay(tmp_path, "SOLUSDT", "1h")
    d = tmp_path / "futures/um/klines/SOLUSDT/1h"
    d.mkdir(parents=True)
    (d / "x.csv").write_text("open_time,open,high,low,close,volume,close_time\n1,2,3,oops,2,1,5\n")
    with pytest.raises(DataError, match="row 2"):
        load_replay(tmp_path, "SOLUSDT", "1h")


def test_replay_simulator_prices_and_recorded_funding_through_ccxt(shared_data) -> None:  # noqa: ANN001
    async def go() -> None:
        async with sim_and_client(
            symbols=("SOLUSDT", "BNBUSDT"), replay_dir=str(shared_data), speed=60.0
        ) as (sim, ex):
            sol = sim.markets["SOLUSDT"].replay
            assert sim.start_time_ms == 1_704_067_200_000  # both symbols' 1h data start 2024-01-01
            t = await ex.fetch_order_book("SOL/USDT:USDT", 5)
            mid = (t["bids"][0][0] + t["asks"][0][0]) / 2
            assert mid == pytest.approx(sol.price_at(sim.now_ms()), rel=0.003)
            await ex.create_order("SOL/USDT:USDT", "market", "buy", 10, None, {"newClientOrderId": "rp-1"})
            await admin(sim, "POST", "/_sim/advance", {"ms": EIGHT_H})
            hist = await ex.fetch_funding_rate_history("SOL/USDT:USDT")
            want = sol.funding_rate(1_704_096_000_000)
            assert hist[-1]["timestamp"] == 1_704_096_000_000
            assert hist[-1]["fundingRate"] == pytest.approx(want, abs=1e-8)
            f = sim.funding_log[-1]
            assert f["rate"] == want and f["payment"] == pytest.approx(-10 * f["mark"] * want)

    run(go())
