"""Writer behaviour: several producer threads, flush visibility, close semantics, bad config."""

from __future__ import annotations

import threading

import pytest

from kaizen.config import LineageConfig
from kaizen.errors import ConfigError
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import Decision
from kaizen.lineage.writer import LineageWriter


def _dec(i: int, t: int = 0) -> Decision:
    return Decision(
        id=i, ts=i, strategy=f"t{t}", signal=float(i), target_qty=0.0, position_qty=0.0, price=1.0
    )


def test_threads_append_concurrently(tmp_path):
    n, k = 20_000, 4
    with LineageWriter(tmp_path, LineageConfig(fsync="never", flush_interval_ms=1)) as w:

        def run(t):
            for i in range(n):
                w.append(_dec(t * n + i, t))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(k)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    got = list(LineageReader(tmp_path).records())
    assert sorted(x.id for x in got) == list(range(n * k))
    for t in range(k):  # each thread's records stay in its own order
        mine = [x.id for x in got if x.strategy == f"t{t}"]
        assert mine == sorted(mine)


def test_flush_makes_records_readable_and_close_drains(tmp_path):
    w = LineageWriter(tmp_path, LineageConfig(flush_interval_ms=60_000))  # the timer never fires here
    for i in range(10):
        w.append(_dec(i))
    w.flush()
    assert [x.id for x in LineageReader(tmp_path).records()] == list(range(10))
    for i in range(10, 5000):
        w.append(_dec(i))
    w.close()
    assert [x.id for x in LineageReader(tmp_path).records()] == list(range(5000))
    with pytest.raises(RuntimeError, match="closed"):
        w.append(_dec(1))
    w.close()  # idempotent


def test_bad_level_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="zstd_level"):
        LineageWriter(tmp_path, LineageConfig(zstd_level=99))
    with pytest.raises(ConfigError, match="cannot read lineage.zstd_dict"):
        LineageWriter(tmp_path, LineageConfig(zstd_dict=str(tmp_path / "missing.dict")))


def test_one_writer_per_directory(tmp_path):
    from kaizen.errors import KaizenError

    w = LineageWriter(tmp_path)
    with pytest.raises(KaizenError, match="another lineage writer"):
        LineageWriter(tmp_path)
    w.close()
    LineageWriter(tmp_path).close()  # released on close
