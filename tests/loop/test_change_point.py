"""After a drift alarm the loop trains from the alarm's change point on, not across it: the CUSUM's
estimate of when the change began (the last decision its statistic stood at zero before the climb to
the alarm) is in the DriftAlarm record, and the next training window starts there once
`[loop] change_min_days` of data exist. Seeds here were never used for tuning."""

from __future__ import annotations

import numpy as np
import pytest

from kaizen import config
from kaizen.backtest.driver import costs_of
from kaizen.lineage.writer import LineageWriter
from kaizen.loop.drift import DriftMonitor
from kaizen.loop.loop import DAY_MS, ImprovementLoop

MS = 1_000_000  # ns per ms: the monitor takes ts in ns, the change point comes back in ms


@pytest.mark.parametrize("seed", [7101, 7102, 7103])
def test_the_alarm_names_the_change_point(seed):
    """N(0, 1) residuals, the mean falls by 0.5 sd at decision 1,000: the alarm comes later, and the
    change point it names is near 1,000, far closer than the alarm itself. (h 16, k 0.25: an in-control
    run length of ~40,000 by Siegmund's approximation, so a false alarm first is a ~2 % event.)"""
    rng = np.random.default_rng(seed)
    mon = DriftMonitor("r", channels={"pnl": "lower"}, thresholds={"pnl": 16.0}, ks={"pnl": 0.25},
                       references={"pnl": (0.0, 1.0)})  # fmt: skip
    alarm = None
    for i in range(10_000):
        x = rng.standard_normal() - (0.5 if i >= 1_000 else 0.0)
        alarm = mon.update(0.0, float(x), ts=i * MS, channel="pnl")
        if alarm is not None:
            break
    assert alarm is not None and i > 1_000
    cp = alarm.stats["change_ms"]
    assert abs(cp - 1_000) < 0.5 * (i - 1_000) + 30, (cp, i)
    assert cp <= i


class _View:
    """Records the window a retrain asks for, and stops there (no model is trained here)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def dataset(self, until_ms: int, since_ms: int):
        self.asked.append((since_ms, until_ms))
        raise _Asked


class _Asked(Exception):
    pass


def _loop(tmp_path, **loop_kw) -> ImprovementLoop:
    cfg = config.loads("[backtest]\ntrain_window_days = 240\n[loop]\nretrain_every = \"1d\"\n")
    cfg = config.Config(**{**{f: getattr(cfg, f) for f in cfg.__struct_fields__},
                           "loop": __import__("msgspec").structs.replace(cfg.loop, **loop_kw)})  # fmt: skip
    w = LineageWriter(tmp_path / "lin")
    return ImprovementLoop(cfg, tmp_path / "loop", w, costs_of(cfg), 3_600_000, now_ns=lambda: 0)


def _window(loop: ImprovementLoop, t_ms: int) -> tuple[int, int] | None:
    view = _View()
    try:
        loop._retrain(view, t_ms)
    except _Asked:
        return view.asked[-1]
    return None


def test_training_windows_start_at_the_change_point(tmp_path):
    loop = _loop(tmp_path, change_min_days=21.0)
    t = 400 * DAY_MS
    assert _window(loop, t) == (t - 240 * DAY_MS, t)  # no change known: the rolling window
    loop.change_ms = t - 10 * DAY_MS
    assert _window(loop, t) is None  # 10 days since the change: nothing trained across it
    assert _window(loop, t + 11 * DAY_MS) == (t - 10 * DAY_MS, t + 11 * DAY_MS)  # 21 days: from the change
    assert loop.change_ms == t - 10 * DAY_MS
    later = t - 10 * DAY_MS + 241 * DAY_MS
    assert _window(loop, later) == (later - 240 * DAY_MS, later)  # the window has moved past it
    assert loop.change_ms is None
    loop.close()
