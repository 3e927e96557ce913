import pytest

from kaizen import config
from kaizen.errors import ConfigError


def test_defaults_are_valid():
    cfg = config.loads(b"")
    assert cfg.mode == "paper"
    assert cfg.fees.taker == pytest.approx(0.0005)


@pytest.mark.parametrize(
    "text, needle",
    [
        (b"bogus = 1", "unknown field `bogus`"),
        (b"[risk]\nmax_open_orders = 'x'", "risk.max_open_orders"),
        (b"symbols = ['XRPUSDT']", "unknown symbol 'XRPUSDT'"),
        (b"[lineage]\nflush_interval_ms = 0", "lineage.flush_interval_ms"),
        (b"mode = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(text, needle):
    with pytest.raises(ConfigError) as err:
        config.loads(text, "cfg.toml")
    assert needle in str(err.value)
    assert str(err.value).startswith("cfg.toml: ")
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")
