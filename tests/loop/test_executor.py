"""Training executor: the same XGBoost job through the local process pool and through a real Dask
cluster (distributed.LocalCluster on 127.0.0.1, worker processes) gives the same model bytes."""

from __future__ import annotations

import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from kaizen.config import LoopConfig
from kaizen.errors import ConfigError, KaizenError
from kaizen.loop import executor as ex
from tests.loop import jobs

SEEDS = [3, 4]


@pytest.fixture(scope="module")
def reference() -> list[bytes]:
    return [jobs.fit_xgboost(s) for s in SEEDS]


def test_local_pool_runs_real_training(reference):
    with ex.from_config(LoopConfig(executor_workers=2)) as pool:
        assert isinstance(pool, ex.LocalExecutor) and pool.workers == 2
        fut = pool.submit(jobs.fit_xgboost, SEEDS[0])
        assert isinstance(fut, Future)
        assert fut.result(timeout=60) == reference[0]
        assert list(pool.map(jobs.fit_xgboost, SEEDS)) == reference
    assert reference[0] != reference[1] and reference[0].startswith(b"{")


def test_a_crashing_job_breaks_only_its_pool():
    with ex.LocalExecutor(1) as pool:
        with pytest.raises(BrokenProcessPool):
            pool.submit(jobs.crash).result(timeout=60)


def test_dask_local_cluster_gives_the_same_models(reference):
    from distributed import LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as cluster:
        spec = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
        with ex.make_executor(spec) as dask:
            assert isinstance(dask, ex.DaskExecutor)
            fut = dask.submit(jobs.fit_xgboost, SEEDS[0])
            assert isinstance(fut, Future)
            assert fut.result(timeout=60) == reference[0]
            assert list(dask.map(jobs.fit_xgboost, SEEDS)) == reference
    elapsed = time.perf_counter() - t0
    print(f"Dask LocalCluster: start, 3 XGBoost fits, stop in {elapsed:.1f} s")
    assert elapsed < 60


def test_bad_specs_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown executor"):
        ex.make_executor("ray://x:1")
    with pytest.raises(ConfigError, match=">= 1"):
        ex.LocalExecutor(0)
    with pytest.raises(KaizenError, match="cannot reach the Dask scheduler") as err:
        ex.DaskExecutor("tcp://127.0.0.1:9", timeout=1)
    assert "\n" not in str(err.value)
