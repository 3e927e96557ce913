from tests.conftest import run_kaizen


def test_help_lists_commands():
    res = run_kaizen("--help")
    assert res.returncode == 0
    assert "usage: kaizen" in res.stdout


def test_no_command_is_an_error():
    res = run_kaizen()
    assert res.returncode == 2


def test_bad_arguments_give_one_line():
    res = run_kaizen("demo", "--duration", "soon")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "kaizen demo: error: argument --duration: invalid float value: 'soon' (see --help)"
    ]
