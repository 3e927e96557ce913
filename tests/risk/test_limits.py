import json

from kaizen.config import RiskConfig
from kaizen.risk import RiskManager, position_headroom

NOW = 1_700_000_000_000


def mk(**kw):
    cfg = RiskConfig(
        **{
            **dict(
                max_notional_per_symbol=1_000.0,
                max_gross_leverage=2.0,
                max_net_leverage=1.0,
                max_open_orders=2,
                max_orders_per_minute=3,
                price_band_pct=0.05,
                daily_loss_limit=100.0,
                max_drawdown=0.2,
                stale_after_ms=5_000,
            ),
            **kw,
        }
    )
    r = RiskManager(cfg, equity=1_000.0, now_ms=NOW)
    for s in ("BTCUSDT", "ETHUSDT"):
        r.on_market(s, NOW)
    return r


def check(
    r, side, qty, price=100.0, mark=100.0, pos=None, prices=None, open_orders=0, now=NOW, sym="BTCUSDT"
):
    return r.check_order(
        sym,
        side,
        qty,
        price,
        mark,
        pos or {},
        prices or {"BTCUSDT": 100.0, "ETHUSDT": 100.0},
        open_orders,
        now_ms=now,
    )


def test_each_limit_names_itself():
    r = mk()
    assert check(r, "buy", 5)[0]
    assert check(r, "buy", 11)[1].startswith("max_notional_per_symbol")
    assert check(r, "buy", 1, price=106.0)[1].startswith("price_band")
    assert check(r, "buy", 1, open_orders=2)[1].startswith("max_open_orders")
    # ETH long 9 (900) + BTC long 2 -> net 1100 > 1.0 * equity
    assert check(r, "buy", 2, pos={"ETHUSDT": 9.0})[1].startswith("max_net_leverage")
    # ETH short 9, BTC long 10: net 100, gross 1900 <= 2000 ok; gross with ETH short 11 too -> breaches
    assert check(r, "buy", 10, pos={"ETHUSDT": -9.0})[0]
    r.cfg.max_notional_per_symbol = 5_000
    assert check(r, "buy", 10, pos={"ETHUSDT": -11.0})[1].startswith("max_gross_leverage")


def test_order_rate_and_stale():
    r = mk()
    for _ in range(3):
        assert check(r, "buy", 1)[0]
        r.record_order(NOW)
    assert check(r, "buy", 1)[1].startswith("max_orders_per_minute")
    r.on_market("BTCUSDT", NOW + 60_001)
    assert check(r, "buy", 1, now=NOW + 60_001)[0]
    r2 = mk()
    stale_now = NOW + 5_001
    assert "stale" in check(r2, "buy", 1, now=stale_now)[1]
    # reducing an existing long on stale data is still allowed
    assert check(r2, "sell", 1, pos={"BTCUSDT": 3.0}, now=stale_now)[0]


def test_reducing_allowed_over_limits_but_not_flip():
    r = mk()
    assert check(r, "sell", 5, pos={"BTCUSDT": 20.0})[0]  # over notional, reducing
    assert check(r, "sell", 40, pos={"BTCUSDT": 20.0})[1].startswith("max_notional")  # flips to -20


def test_kill_switch_daily_loss_and_drawdown(tmp_path):
    state = tmp_path / "risk_halt.json"
    r = RiskManager(mk().cfg, equity=1_000.0, state_path=state, now_ms=NOW)
    assert r.on_equity(950.0, NOW) is None
    reason = r.on_equity(899.0, NOW)
    assert reason and "daily loss" in reason and r.halted
    assert check(r, "buy", 0.1)[1].startswith("halted")
    assert json.loads(state.read_text())["halted"] is True
    # a restart stays halted until a deliberate re-arm
    r2 = RiskManager(r.cfg, equity=899.0, state_path=state, now_ms=NOW)
    assert r2.halted
    r2.rearm()
    assert not r2.halted and not state.exists()
    r3 = RiskManager(
        r.cfg.__class__(
            **{**{f: getattr(r.cfg, f) for f in r.cfg.__struct_fields__}, "daily_loss_limit": 1e9}
        ),
        equity=1_000.0,
        now_ms=NOW,
    )
    r3.on_equity(1_500.0, NOW)
    assert r3.on_equity(1_201.0, NOW) is None
    assert "drawdown" in r3.on_equity(1_199.0, NOW)


def test_daily_loss_resets_on_new_utc_day():
    r = RiskManager(mk(max_drawdown=0.9).cfg, equity=1_000.0, now_ms=NOW)
    assert r.on_equity(920.0, NOW) is None
    day2 = NOW + 86_400_000
    assert r.on_equity(910.0, day2) is None  # day-2 loss is measured from 920
    assert r.on_equity(819.0, day2) is not None


def test_headroom_matches_gate():
    r = mk(max_notional_per_symbol=5_000.0)
    pos = {"ETHUSDT": -9.0}
    room = position_headroom(r, "BTCUSDT", 1.0, 100.0, pos, {"ETHUSDT": 100.0})
    assert room > 0
    assert check(r, "buy", room * (1 - 1e-9), pos=pos)[0]
    assert not check(r, "buy", room * 1.01, pos=pos)[0]
