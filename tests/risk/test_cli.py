"""The re-arm command, through the real CLI dispatcher in a child process (the lead adds
kaizen.risk.cli to COMMAND_MODULES; until then the test loads it through a tiny wrapper)."""

import subprocess
import sys

from kaizen.config import RiskConfig
from kaizen.risk import HALT_FILE, RiskManager
from tests.conftest import REPO

WRAPPER = (
    "import sys, argparse; from kaizen.risk import cli; from kaizen.errors import KaizenError\n"
    "p = argparse.ArgumentParser(prog='kaizen'); sub = p.add_subparsers(); cli.register(sub)\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "try: sys.exit(a.func(a))\n"
    "except KaizenError as e: print(f'kaizen: error: {e}', file=sys.stderr); sys.exit(2)\n"
)


def kz(*args):
    import kaizen.cli as kcli

    if "kaizen.risk.cli" in kcli.COMMAND_MODULES:
        cmd = [sys.executable, "-m", "kaizen", *args]
    else:
        cmd = [sys.executable, "-c", WRAPPER, *args]
    return subprocess.run(
        cmd,
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
