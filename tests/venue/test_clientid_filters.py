import math
import re

from hypothesis import given
from hypothesis import strategies as st

from kaizen.venue.base import MarketInfo
from kaizen.venue.clientid import belongs_to_run, make_client_id

BINANCE_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


@given(
    st.text(min_size=1, max_size=50),
    st.sampled_from(["BTCUSDT", "ETHUSDT"]),
    st.integers(0, 2**63),
    st.integers(0, 10**9),
)
def test_client_id_valid_and_deterministic(run, sym, dec, seq):
    a = make_client_id(run, sym, dec, seq)
    assert BINANCE_RE.match(a)
    assert a == make_client_id(run, sym, dec, seq)
    assert a != make_client_id(run, sym, dec, seq + 1)
    assert belongs_to_run(a, run)


def test_client_ids_unique_over_a_run():
    ids = {
        make_client_id("run-1", s, d, q) for s in ("BTCUSDT", "ETHUSDT") for d in range(50) for q in range(40)
    }
    assert len(ids) == 2 * 50 * 40


M = MarketInfo(
    symbol="BTCUSDT",
    venue_symbol="BTC/USDT:USDT",
    tick_size=0.1,
    lot_size=0.001,
    min_qty=0.001,
    min_notional=100.0,
)


def test_rounding():
    assert M.round_qty(0.0129) == 0.012
    assert M.round_qty(-0.0129) == -0.012
    assert M.round_price(100.07, "buy") == 100.0
    assert M.round_price(100.01, "sell") == 100.1
    assert M.round_price(100.06) == 100.1
    assert not M.tradable(0.0005, 1e6)[0]
    assert not M.tradable(0.001, 50_000.0)[0]  # 50 < min notional
    assert M.tradable(0.001, 50_000.0, reduce_only=True)[0]


@given(st.floats(-1e4, 1e4))
def test_round_qty_is_on_the_lot_and_toward_zero(q):
    r = M.round_qty(q)
    assert abs(r) <= abs(q) + 1e-12
    assert abs(r / 0.001 - round(r / 0.001)) < 1e-6
    assert abs(q) - abs(r) < 0.001 + 1e-9
    assert r == 0 or math.copysign(1, r) == math.copysign(1, q)
