"""`kaizen run` in paper mode on the embedded simulator, which serves Binance's routed layout: the
engine trades on it; the same run declared `venue.ws_layout = "legacy"` gets the book but no trade
or mark price, and its lineage says which streams are silent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.lineage.reader import LineageReader
from tests.conftest import run_kaizen

CONFIG = """
mode = "paper"
symbols = ["BTCUSDT", "ETHUSDT"]
[venue]
ws_layout = "{layout}"
api_key_env = "KZ_LAYOUT_KEY"
api_secret_env = "KZ_LAYOUT_SECRET"
[risk]
stale_after_ms = 1000
[lineage]
dir = "{out}/lineage"
[sim]
seed = 19
speed = 600.0
"""


def _run(tmp_path: Path, layout: str) -> tuple[dict, list]:
    cfg = tmp_path / f"{layout}.toml"
    out = tmp_path / layout
    cfg.write_text(CONFIG.format(layout=layout, out=out))
    res = run_kaizen("run", str(cfg), "--duration", "6", "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PnL, net of fees and funding" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    stale = [r for r in LineageReader(out / "lineage").records() if type(r).__name__ == "MarketStatus"]
    return summary, [r for r in stale if r.status == "stale"]


# the legacy run repeats at engine level what test_feed_routes shows for the feed: slow suite only
@pytest.mark.parametrize("layout", ["routed", pytest.param("legacy", marks=pytest.mark.slow)])
def test_paper_run_on_the_routed_simulator(tmp_path, layout):
    summary, stale = _run(tmp_path, layout)
    if layout == "routed":
        assert summary["bars"] > 20 and summary["decisions"] > 10  # 6 s at 600x: ~60 bars a symbol
        assert stale == []
    else:
        assert summary["bars"] == 0 and summary["decisions"] == 0
        reasons = {r.symbol: r.reason for r in stale}
        assert set(reasons) == {"BTCUSDT", "ETHUSDT"}
        for sym, reason in reasons.items():
            assert f"stream {sym.lower()}@markPrice@1s on the unrouted /stream" in reason
