"""`kaizen run` as a new user meets it: live without keys stops in one line before any network call,
a halt recorded in the state directory stops a new run (with another lineage directory) with a
one-line notice and a non-zero exit, and the run's identity persists across starts."""

from __future__ import annotations

from kaizen import rundir
from kaizen.risk.limits import save_halt_state
from kaizen.venue.clientid import belongs_to_run, make_client_id
from tests.conftest import run_kaizen


def test_live_without_keys_is_one_line_before_the_network():
    res = run_kaizen(
        "run", "examples/live-binance.toml", "--duration", "1", "--no-progress",
        env={"KAIZEN_API_KEY": "", "KAIZEN_API_SECRET": ""}, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "KAIZEN_API_KEY" in lines[0] and "KAIZEN_API_SECRET" in lines[0]
    assert "Traceback" not in res.stderr


def test_halt_in_the_state_dir_stops_a_new_run_with_another_lineage_dir(tmp_path):
    state = tmp_path / "state"
    save_halt_state(state / rundir.HALT_FILE, "daily loss 41.00 >= daily_loss_limit 20")
    cfg = tmp_path / "paper.toml"
    cfg.write_text(
        'mode = "paper"\nsymbols = ["BTCUSDT"]\n'
        f'[risk]\nstate_dir = "{state}"\n'
        f'[lineage]\ndir = "{tmp_path / "other" / "lineage"}"\n'
        "[sim]\nspeed = 600\n"
    )
    res = run_kaizen("run", str(cfg), "--duration", "5", "--no-progress", timeout=120)
    assert res.returncode == 3, (res.returncode, res.stderr[-2000:])
    notice = [ln for ln in res.stderr.splitlines() if "TRADING HALTED" in ln]
    assert len(notice) == 1 and "daily loss 41.00" in notice[0] and "kaizen risk rearm" in notice[0]
    assert "TRADING HALTED" in res.stdout  # and in the closing report
    assert (state / rundir.HALT_FILE).exists()  # still halted: re-arming is deliberate


def test_run_identity_persists_and_ids_never_repeat(tmp_path):
    a = rundir.run_identity(tmp_path)
    b = rundir.run_identity(tmp_path)
    assert a.split("#")[0] == b.split("#")[0] and a != b
    ca, cb = make_client_id(a, "BTCUSDT", 0, 1), make_client_id(b, "BTCUSDT", 0, 1)
    assert ca != cb  # a restarted process never reuses a killed one's id
    assert belongs_to_run(ca, b) and belongs_to_run(cb, a)  # but recognises its orders
    assert not belongs_to_run(ca, rundir.run_identity(tmp_path / "another"))
