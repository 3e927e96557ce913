"""`kaizen demo` as a user runs it: a real subprocess (simulator child, engine, training worker),
its console and its lineage log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaizen.lineage.reader import LineageReader

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^(kaizen \(trained ensemble \+ loop\)|buy-and-hold \(equal weight, 1x\))\s+([+-]\d+\.\d+)\s+"
                 r"([+-]\d+\.\d+)%\s+(\d+\.\d+)\s+([+-]\d+\.\d+)\s+(\d+)$", re.M)  # fmt: skip


def _demo(tmp_path: Path, *args: str, timeout: float) -> tuple[str, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "kaizen", "demo", "--out", str(tmp_path / "run"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, wall


def _check_report(out: str, run: Path) -> dict[str, tuple[float, ...]]:
    assert "closing report" in out
    rows = {m.group(1).split(" ")[0]: tuple(float(x) for x in m.groups()[1:]) for m in ROW.finditer(out)}
    assert set(rows) == {"kaizen", "buy-and-hold"}, out[-2500:]
    trades = rows["kaizen"][4]
    # the trained model traded, or the report says why it did not
    assert trades > 0 or "the model did not trade" in out
    # the model's row is the engine's own accounting, written beside the lineage
    summ = json.loads((run / "summary.json").read_text())
    assert summ["kaizen"]["trades"] == trades
    assert abs(summ["kaizen"]["net_pnl"] - rows["kaizen"][0]) < 0.01
    assert abs(summ["buy_and_hold"]["net_pnl"] - rows["buy-and-hold"][0]) < 0.01
    return rows


def _lineage_kinds(run: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in LineageReader(run / "lineage").records(
        types=["retrain", "shadow", "model_swap", "drift", "rollback", "fill"]
    ):
        tag = type(rec).__name__
        counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_demo_short_trains_trades_and_runs_the_loop(tmp_path: Path) -> None:
    out, wall = _demo(tmp_path, "--duration", "36", "--history-days", "4", "--no-progress", timeout=170)
    run = tmp_path / "run"
    rows = _check_report(out, run)
    assert "trained the ensemble in" in out
    # the loop during the trading minutes: a retrain and a shadow comparison, named as they happened
    # (console lines "[sim ... | wall ...] KIND: ...") and in the closing report and the lineage
    assert re.search(r"\] RETRAIN: model \w+", out), out[-3000:]
    assert re.search(r"\] SHADOW COMPARISON: \w+ vs champion", out), out[-3000:]
    report = out[out.index("closing report") :]
    assert re.search(r"retrain\s+model", report) and re.search(r"shadow comparison\s+\w+ vs", report)
    kinds = _lineage_kinds(run)
    assert kinds.get("Retrain", 0) >= 2  # the initial model and at least one retrain while trading
    assert kinds.get("ShadowComparison", 0) >= 1
    assert kinds.get("ModelSwap", 0) >= 1  # the initial model's deployment
    assert kinds.get("Fill", 0) == rows["kaizen"][4]
    assert wall < 90


@pytest.mark.slow
def test_demo_default_shows_the_loop_within_three_minutes(tmp_path: Path) -> None:
    """The default demo, within 3 minutes of wall time: retrains and shadow comparisons while it
    trades and, after the planted break (sim hour 10), a drift alarm and a rollback or a promotion,
    each named on the console as it happened, in the closing report and in the lineage."""
    out, wall = _demo(tmp_path, timeout=400)
    run = tmp_path / "run"
    _check_report(out, run)
    assert wall < 180, f"kaizen demo took {wall:.0f} s"
    events = json.loads((run / "events.json").read_text())["events"]
    kinds = [e["kind"] for e in events]
    for k in ("retrain", "shadow comparison", "deployment"):
        assert k in kinds, kinds
    after = [e for e in events if e["sim_h"] > 10.0]  # the default --break-hour
    assert any(e["kind"] == "drift alarm" for e in after), events
    assert any(e["kind"] in ("rollback", "promotion") for e in after), events
    report = out[out.index("closing report") :]
    for e in events:  # each named on the console as it happened, and in the report
        assert f"] {e['kind'].upper()}: " in out
        assert re.search(rf"{e['kind']}\s+\S", report)
    lk = _lineage_kinds(run)
    assert lk.get("DriftAlarm", 0) == kinds.count("drift alarm")
    assert lk.get("Rollback", 0) == kinds.count("rollback")
