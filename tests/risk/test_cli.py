"""The re-arm command, through the real CLI dispatcher in a child process."""

import subprocess
import sys

from kaizen.config import RiskConfig
from kaizen.risk import HALT_FILE, RiskManager
from tests.conftest import REPO


def kz(*args):
    return subprocess.run(
        [sys.executable, "-m", "kaizen", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_rearm_is_deliberate(tmp_path):
    r = RiskManager(RiskConfig(daily_loss_limit=10.0), equity=100.0, state_path=tmp_path / HALT_FILE)
    r.on_equity(85.0)
    assert r.halted
    st = kz("risk", "status", str(tmp_path))
    assert st.returncode == 1 and "HALTED" in st.stdout and "daily loss" in st.stdout
    no = kz("risk", "rearm", str(tmp_path))
    assert no.returncode == 2 and "--yes" in no.stderr and "Traceback" not in no.stderr
    assert RiskManager(RiskConfig(), equity=100.0, state_path=tmp_path / HALT_FILE).halted
    yes = kz("risk", "rearm", str(tmp_path), "--yes")
    assert yes.returncode == 0, yes.stderr
    assert not RiskManager(RiskConfig(), equity=100.0, state_path=tmp_path / HALT_FILE).halted
    bad = kz("risk", "rearm", str(tmp_path / "nope"), "--yes")
    assert bad.returncode == 2 and "run directory not found" in bad.stderr
