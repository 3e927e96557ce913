"""Run directories (what `kaizen risk` and `kaizen log` accept and default to) and output to a
reader that goes away early (`kaizen log stats DIR | head -1`), through the real CLI in child
processes and real pipes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kaizen.config import LineageConfig
from kaizen.lineage.records import Decision
from kaizen.lineage.writer import LineageWriter
from kaizen.rundir import HALT_FILE, is_run_dir, latest_log, require_run_dir
from tests.conftest import REPO, run_kaizen


def _log(d, n=10, ts0=0):
    with LineageWriter(d, LineageConfig(fsync="never")) as w:
        for i in range(n):
            w.append(
                Decision(
                    id=i,
                    ts=ts0 + i,
                    strategy="s",
                    signal=float(i),
                    target_qty=0.0,
                    position_qty=0.0,
                    price=1.0,
                )
            )


def test_is_run_dir(tmp_path):
    assert not is_run_dir(tmp_path)
    assert not is_run_dir(tmp_path / "missing")
    _log(tmp_path / "run" / "lineage")
    assert is_run_dir(tmp_path / "run")
    assert not is_run_dir(tmp_path / "run" / "lineage")  # the log itself: its parent is the run
    (tmp_path / "halted").mkdir()
    (tmp_path / "halted" / HALT_FILE).write_text("{}")
    assert is_run_dir(tmp_path / "halted")
    assert require_run_dir(tmp_path / "run") == tmp_path / "run"


@pytest.mark.parametrize("action", [["status"], ["rearm", "--yes"]])
def test_risk_refuses_a_folder_that_is_not_a_run_directory(tmp_path, action):
    res = run_kaizen("risk", action[0], str(tmp_path), *action[1:])
    assert res.returncode == 2, res.stdout
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a run directory" in lines[0] and "armed" not in lines[0]
    _log(tmp_path / "lineage")
    res = run_kaizen("risk", action[0], str(tmp_path / "lineage"), *action[1:])
    assert res.returncode == 2
    assert f"this is a lineage log; its run directory is {tmp_path}" in res.stderr


def test_demo_run_directory_is_what_log_and_risk_default_to(tmp_path):
    """`kaizen demo` with no --out writes runs/demo-<time>; `kaizen log` with no DIR reads the most
    recent log there, `kaizen risk status` accepts the run directory."""
    nothing = run_kaizen("log", "ls", cwd=tmp_path)
    assert nothing.returncode == 2 and "no lineage log under ./runs" in nothing.stderr
    _log(tmp_path / "runs" / "old-run" / "lineage", n=3)
    demo = run_kaizen("demo", "--duration", "2", "--speed", "600", "--no-progress", cwd=tmp_path, timeout=180)
    assert demo.returncode == 0, demo.stderr
    (run_dir,) = (tmp_path / "runs").glob("demo-*")
    st = run_kaizen("log", "stats", cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    assert f"reading {os.path.join('runs', run_dir.name, 'lineage')}" in st.stderr
    assert "run_start" in st.stdout and "run_end" in st.stdout
    assert latest_log(tmp_path / "runs") == run_dir / "lineage"
    by_run_dir = run_kaizen("log", "stats", str(run_dir))  # the run directory works as DIR too
    assert by_run_dir.returncode == 0 and by_run_dir.stdout == st.stdout
    risk = run_kaizen("risk", "status", str(run_dir))
    assert risk.returncode == 0 and "armed" in risk.stdout


# --- a reader that goes away ------------------------------------------------------------------------
LOG_COMMANDS = [["ls"], ["cat"], ["tail", "-n", "1000"], ["stats"], ["verify"], ["trace", "5"]]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe") / "lineage"
    _log(d, n=30_000)
    return d


def _kaizen(*args, stdout):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "kaizen", *args], cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE
    )


@pytest.mark.parametrize("cmd", LOG_COMMANDS, ids=lambda c: c[0])
def test_log_commands_to_a_closed_pipe_exit_quietly(big_log, cmd):
    """The pipe's read end is closed before the child writes: its first write fails with EPIPE."""
    r, w = os.pipe()
    os.close(r)
    proc = _kaizen("log", cmd[0], str(big_log), *cmd[1:], stdout=w)
    os.close(w)
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "", err.decode()
    assert proc.returncode == 141


def test_head_1_of_a_long_listing(big_log):
    """`kaizen log cat DIR | head -1`: the reader takes one line and leaves mid-stream."""
    proc = _kaizen("log", "cat", str(big_log), stdout=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.startswith(b'{"type":"decision"') or b'"decision"' in first
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""
    assert proc.returncode == 141
