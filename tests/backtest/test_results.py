"""What a backtest writes: the summary's shape, its accounting against the lineage and the venue's
own books, the report, and determinism (a second run gives the same bytes)."""

from __future__ import annotations

import json
import math
import re

import msgspec

from kaizen.backtest.report import strategy_series
from kaizen.engine.report import Ledger
from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from tests.backtest.conftest import backtest, write_config

STRATEGIES = ["buy_and_hold", "baseline_momentum", "snapshot", "periodic_retrain", "kaizen"]
KEYS = {"net_return", "sharpe", "sortino", "max_drawdown", "fees", "funding", "turnover", "trades", "exposure",
        "per_symbol"}  # fmt: skip


def test_summary_has_every_strategy_and_the_agreed_keys(bt_run):
    s = json.loads((bt_run / "summary.json").read_text())
    assert set(s) >= {"strategies", "start", "end", "symbols", "config_hash", "data_hash"}
    assert list(s["strategies"]) == sorted(STRATEGIES)  # written sorted
    for name, m in s["strategies"].items():
        assert KEYS <= set(m), name
        assert set(m["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert s["start"] == "2023-06-01" and s["end"] == "2023-07-16"
    bh = s["strategies"]["buy_and_hold"]
    assert bh["trades"] == 4  # two buys at the start, two sells at the end
    assert s["strategies"]["baseline_momentum"]["trades"] > 10
    out = (bt_run / "stdout.txt").read_text()
    assert re.search(r"wall time \d+\.\d s", out)


def test_accounting_agrees_with_lineage_and_with_the_venue(bt_run):
    """Net PnL, fees and funding of the summary (from the in-process venue's wallet and logs) equal
    an independent replay of the lineage's Fill and FundingPayment records."""
    s = json.loads((bt_run / "summary.json").read_text())["strategies"]
    traded_funding = False
    for name in STRATEGIES:
        led = Ledger()
        fills = 0
        for rec in LineageReader(bt_run / "lineage" / name).records():
            led.apply(rec)
            fills += isinstance(rec, R.Fill)
        m = s[name]
        cap = led.capital
        assert cap == 10_000.0
        assert all(abs(q) < 1e-9 for q in led.pos.values()), f"{name}: flat at the end"
        assert math.isclose(led.fees, m["fees"], rel_tol=1e-9, abs_tol=1e-9), name
        assert math.isclose(led.funding, m["funding"], rel_tol=1e-9, abs_tol=1e-9), name
        assert math.isclose(led.equity() - cap, m["net_pnl"], rel_tol=1e-9, abs_tol=1e-6), name
        assert math.isclose(m["net_return"], m["net_pnl"] / cap, rel_tol=1e-12)
        assert fills == m["trades"]
        # the venue's wallet is capital + realized - fees - funding, and the ledger agrees
        assert math.isclose(led.realized, m["realized_pnl"], rel_tol=1e-9, abs_tol=1e-6), name
        traded_funding |= m["funding"] != 0.0
    assert traded_funding, "no strategy held a position through a funding settlement"


def test_report_holds_every_equity_series_and_needs_no_network(bt_run):
    html = (bt_run / "report.html").read_text()
    # plotly.js is inline: no script or stylesheet is fetched (the slow test opens it offline in Chromium)
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", html)
    assert "Plotly.newPlot" in html and len(html) > 3_000_000
    data = json.loads(
        re.search(r'<script type="application/json" id="kaizen-series">(.*?)</script>', html, re.S)[1]
    )
    assert set(data) == set(STRATEGIES)
    for name, ser in data.items():
        assert len(ser["t"]) == len(ser["equity"]) >= 44, name  # a point per day
        # the report's curve (rebuilt from lineage) ends where the summary says
        assert math.isclose(ser["equity"][-1] - 10_000.0, json.loads((bt_run / "summary.json").read_text())[
            "strategies"][name]["net_pnl"], abs_tol=1e-6)  # fmt: skip


def test_report_command_rebuilds_from_lineage_alone(bt_run, tmp_path):
    import shutil

    from tests.conftest import run_kaizen

    copy = tmp_path / "copy"
    shutil.copytree(bt_run / "lineage", copy / "lineage")  # no summary.json, no models
    res = run_kaizen("report", str(copy))
    assert res.returncode == 0, res.stderr
    html = (copy / "report.html").read_text()
    data = json.loads(re.search(r'id="kaizen-series">(.*?)</script>', html, re.S)[1])
    assert set(data) == set(STRATEGIES)
    orig = json.loads(
        re.search(r'id="kaizen-series">(.*?)</script>', (bt_run / "report.html").read_text(), re.S)[1]
    )
    assert data == orig


def test_equity_curve_from_lineage_tracks_the_venue_every_bar(bt_run):
    """Not only the end: the lineage ledger's equity at every bar close gives the same maximum
    drawdown as the venue's curve the summary was computed from."""
    from kaizen.stats import max_drawdown

    s = json.loads((bt_run / "summary.json").read_text())["strategies"]
    for name in ("baseline_momentum", "snapshot"):
        ser = strategy_series(bt_run / "lineage" / name)
        bars = set(ser["bar_times"])
        curve = [ser["capital"]] + [e for t, e in zip(ser["t"], ser["equity"], strict=True) if t in bars]
        assert len(curve) > 1000
        assert math.isclose(max_drawdown(curve), s[name]["max_drawdown"], rel_tol=1e-9, abs_tol=1e-12), name


def test_same_inputs_same_bytes(bt_run, tmp_path, shared_data):
    """Determinism: a second run gives a byte-identical summary.json and identical records."""
    backtest(tmp_path / "again", shared_data, write_config(tmp_path))
    assert (tmp_path / "again" / "summary.json").read_bytes() == (bt_run / "summary.json").read_bytes()
    for name in STRATEGIES:
        a = [msgspec.json.encode(r) for r in LineageReader(bt_run / "lineage" / name).records()]
        b = [msgspec.json.encode(r) for r in LineageReader(tmp_path / "again" / "lineage" / name).records()]
        assert a == b, name
