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
    assert loop.retrain_every_s == 86400 and loop.shadow_s == 7 * 86400
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


# --- ranges: every numeric key of every section ----------------------------------------------------
RANGES = config.numeric_ranges()
# Keys whose valid values depend on another key: the TOML that makes the boundary value legal.
COMPANIONS: dict[str, str] = {}


def _meta(key: str):
    info = config._field_info(key)
    return info.type if hasattr(info, "extra_json_schema") else info


def _toml(key: str, value) -> bytes:
    section, _, name = key.rpartition(".")
    text = f"{name} = {value!r}\n" + COMPANIONS.get(key, "")
    return (f"[{section}]\n{text}" if section else text).encode()


def _outside(key: str) -> list:
    """Values just outside each bound of the key's range."""
    m = _meta(key)
    is_int = type(m).__name__ == "IntType"
    step = (lambda v: 1) if is_int else (lambda v: max(1e-9, abs(v) * 1e-6))
    out = []
    if m.gt is not None:
        out.append(m.gt)
    if m.ge is not None:
        out.append(m.ge - step(m.ge))
    if m.lt is not None:
        out.append(m.lt)
    if m.le is not None:
        out.append(m.le + step(m.le))
    return [int(v) if is_int else float(v) for v in out]


def _inside(key: str) -> list:
    """The closed bounds themselves and values just inside open ones."""
    m = _meta(key)
    is_int = type(m).__name__ == "IntType"
    step = (lambda v: 1) if is_int else (lambda v: max(1e-9, abs(v) * 1e-6))
    out = [v for v in (m.ge, m.le) if v is not None]
    if m.gt is not None:
        out.append(m.gt + step(m.gt))
    if m.lt is not None:
        out.append(m.lt - step(m.lt))
    return [int(v) if is_int else float(v) for v in out]


def test_every_numeric_key_has_a_range():
    assert len(RANGES) > 40
    missing = [k for k, r in RANGES.items() if r is None]
    assert not missing, f"numeric config keys without a valid range: {missing}"
    sections = {k.split(".")[0] for k in RANGES}
    assert {"venue", "fees", "risk", "strategy", "models", "loop", "lineage", "sim", "engine"} <= sections


@pytest.mark.parametrize("key, value", [(k, v) for k in RANGES for v in _outside(k)], ids=lambda x: str(x))
def test_out_of_range_is_refused_in_one_line_naming_key_and_range(key, value):
    with pytest.raises(ConfigError) as err:
        config.loads(_toml(key, value), "cfg.toml")
    msg = str(err.value)
    bounds, unit = RANGES[key]
    assert msg == f"cfg.toml: {key} must be {bounds} ({unit}), got {value!r}"


@pytest.mark.parametrize("key, value", [(k, v) for k in RANGES for v in _inside(k)], ids=lambda x: str(x))
def test_range_bounds_themselves_are_accepted(key, value):
    cfg = config.loads(_toml(key, value), "cfg.toml")
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert node == value


@pytest.mark.parametrize(
    "text, line",
    [
        (b"[risk]\nmax_drawdown = 25", "cfg.toml: risk.max_drawdown must be > 0 and <= 1 (fraction), got 25"),
        (b"[risk]\ndaily_loss_limit = -5", "cfg.toml: risk.daily_loss_limit must be > 0 (USDT), got -5"),
        (
            b"[risk]\ndaily_loss_limit = inf",
            "cfg.toml: risk.daily_loss_limit must be a finite number, got inf",
        ),
        (
            b"[risk]\nmax_drawdown = nan",
            "cfg.toml: risk.max_drawdown must be > 0 and <= 1 (fraction), got nan",
        ),
        (b"[sim]\nseed = -1", "cfg.toml: sim.seed must be >= 0 and < 4_294_967_296 (seed), got -1"),
        (b"[strategy]\nentry_z = 0", "cfg.toml: strategy.entry_z must be > 0 and <= 100 (standard deviations), got 0"),
    ],
)
def test_issue_17_values_are_refused(text, line):
    with pytest.raises(ConfigError) as err:
        config.loads(text, "cfg.toml")
    assert str(err.value) == line


def test_cli_prints_the_range_error_as_one_line(tmp_path):
    from tests.conftest import run_kaizen

    cfg = tmp_path / "bad.toml"
    cfg.write_text("[risk]\nmax_drawdown = 25\n")
    res = run_kaizen("run", str(cfg))
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == f"kaizen: error: {cfg}: risk.max_drawdown must be > 0 and <= 1 (fraction), got 25"
    )
