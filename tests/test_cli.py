from tests.conftest import run_kaizen


def test_help_lists_commands():
    res = run_kaizen("--help")
    assert res.returncode == 0
    assert "usage: kaizen" in res.stdout


def test_no_command_is_an_error():
    res = run_kaizen()
    assert res.returncode == 2
