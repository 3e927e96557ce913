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


def test_loop_section_keys_and_defaults():
    loop = config.loads(b"").loop
    assert loop.retrain_every_s == 86400 and loop.shadow_s == 3 * 86400
    assert loop.executor == "local" and loop.gate_alpha == 0.05 and loop.gate_test == "both"
    assert loop.drift_arl0 == 20_000 and loop.drift_threshold is None
    loop = config.loads(
        b'[loop]\nretrain_every = "12h"\nshadow_days = 2.5\nexecutor = "dask://10.0.0.5:8786"'
    ).loop
    assert loop.retrain_every_s == 12 * 3600 and loop.shadow_s == 2.5 * 86400
    assert loop.executor == "dask://10.0.0.5:8786"
    legacy = config.loads(b"[loop]\nretrain_every_hours = 6\nshadow_hours = 36").loop
    assert legacy.retrain_every_s == 6 * 3600 and legacy.shadow_s == 36 * 3600


@pytest.mark.parametrize(
    "text, needle",
    [
        (b'[loop]\nretrain_every = "1w"', "loop.retrain_every"),
        (b'[loop]\nretrain_every = "0h"', "loop.retrain_every"),
        (b'[loop]\nretrain_every = "1d"\nretrain_every_hours = 24', "not both"),
        (b"[loop]\nshadow_days = 2\nshadow_hours = 48", "not both"),
        (b"[loop]\nshadow_days = 0", "loop.shadow_days"),
        (b'[loop]\nexecutor = "ray://x:1"', "loop.executor"),
        (b'[loop]\nexecutor = "dask://host"', "loop.executor"),
        (b"[loop]\ngate_alpha = 0.5", "loop.gate_alpha"),
        (b'[loop]\ngate_test = "t"', "loop.gate_test"),
        (b"[loop]\ndrift_arl0 = 5", "loop.drift_arl0"),
        (b"[loop]\ndrift_threshold = -1", "loop.drift_threshold"),
        (b"[loop]\nexecutor_workers = 0", "loop.executor_workers"),
    ],
)
def test_bad_loop_config_names_the_key(text, needle):
    with pytest.raises(ConfigError) as err:
        config.loads(text, "cfg.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)
