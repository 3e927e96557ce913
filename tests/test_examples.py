from pathlib import Path

import pytest

from kaizen import config
from tests.conftest import REPO, run_kaizen

EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_configs(path: Path):
    cfg = config.load(path)
    assert cfg.symbols


@pytest.mark.parametrize(
    "text, needle",
    [
        ("bogus = 1\n", "unknown field `bogus`"),
        ("[risk]\nmax_open_orders = 'many'\n", "risk.max_open_orders"),
        ("symbols = ['DOGEUSDT']\n", "unknown symbol 'DOGEUSDT'"),
    ],
)
def test_run_with_bad_config_exits_2_with_one_line(tmp_path, text, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = run_kaizen("run", str(cfg))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert needle in lines[0] and "bad.toml" in lines[0]
    assert "Traceback" not in res.stderr


def test_run_with_missing_config(tmp_path):
    res = run_kaizen("run", str(tmp_path / "missing.toml"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"kaizen: error: {tmp_path / 'missing.toml'}: config file not found"
