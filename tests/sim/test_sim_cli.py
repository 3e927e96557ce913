"""`kaizen sim` as a real process: first line, serving, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REPO


def _spawn(*extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "kaizen", "sim", "--seed", "3", "--speed", "120", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sim_cli_first_line_serves_and_exits_cleanly(sig: int) -> None:
    proc = _spawn()
    try:
        line = proc.stdout.readline().rstrip("\n")
        parts = line.split()
        assert parts[0] == "kaizen-sim", line
        fields = dict(p.split("=", 1) for p in parts[1:])
        assert set(fields) == {"rest", "ws"}
        assert fields["rest"].startswith("http://127.0.0.1:") and fields["ws"].startswith("ws://127.0.0.1:")
        with urllib.request.urlopen(fields["rest"] + "/fapi/v1/exchangeInfo", timeout=10) as r:
            info = json.load(r)
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
        with urllib.request.urlopen(
            fields["rest"] + "/fapi/v1/depth?symbol=BTCUSDT&limit=5", timeout=10
        ) as r:
            depth = json.load(r)
        assert len(depth["bids"]) == 5 and float(depth["bids"][0][0]) < float(depth["asks"][0][0])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sim_cli_bad_input_is_one_line_exit_2() -> None:
    proc = _spawn("--symbols", "DOGEUSDT")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "DOGEUSDT" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_sim_cli_replay_missing_data_is_one_line_exit_2(tmp_path) -> None:  # noqa: ANN001
    proc = _spawn("--replay", str(tmp_path), "--symbols", "SOLUSDT")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert str(tmp_path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sim_cli_faults_from_the_command_line() -> None:
    import urllib.error

    proc = _spawn("--faults", '{"rest_5xx": 1}')
    try:
        rest = proc.stdout.readline().split()[1].split("=", 1)[1]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(rest + "/fapi/v1/ping", timeout=10)
        assert info.value.code == 503 and json.load(info.value)["code"] == -1001
        with urllib.request.urlopen(rest + "/fapi/v1/ping", timeout=10) as r:
            assert json.load(r) == {}
        with urllib.request.urlopen(rest + "/_sim/fault_log", timeout=10) as r:
            assert [f["fault"] for f in json.load(r)] == ["5xx"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    bad = _spawn("--faults", '{"nope": 1}')
    out, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and "nope" in err and "Traceback" not in err
