import pytest

from tests.conftest import DATA

STREAM = DATA / "futures/um/stream/btcusdt_20240808.gz"


@pytest.fixture(scope="session")
def stream():
    if not STREAM.exists():
        pytest.skip(f"{STREAM} not available")
    from kaizen.engine.stream_file import read_stream

    return read_stream(STREAM)


@pytest.fixture(scope="session")
def models():
    """A small real model set (1h BTCUSDT candles, 10 trees) and its compiled forests."""
    from kaizen.engine.hotpath import compile_models, train_small

    m = train_small(DATA, start="2024-05-01", trees=10)
    return m, compile_models(m)
