"""Pluggable training executor: where the loop's training jobs run.

One small interface (`TrainingExecutor`: `submit(fn, *args) -> concurrent.futures.Future`, `map`,
`shutdown`, context manager) with two implementations chosen by `[loop] executor`:

- "local" (default): a `ProcessPoolExecutor` of `[loop] executor_workers` processes started by
  forkserver -- fresh interpreters forked from a clean server process, never from the trading
  process, so no OpenMP (XGBoost) or event-loop threads are inherited; a job that crashes its
  worker breaks only that pool (BrokenProcessPool on its future), never the caller;
- "dask://HOST:PORT": an existing Dask scheduler through `distributed.Client`, whose
  `get_executor()` hands back concurrent.futures futures too. Needs the optional `dask` extra
  (`pip install 'kaizen[dask]'`).

Jobs must be picklable module-level functions (cloudpickle for Dask) that return bytes or other
plain data; keep them deterministic (XGBoost: fixed seed, `nthread` set) so a job gives the same
model wherever it runs -- tests/loop/test_executor.py checks local == Dask byte for byte.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

from kaizen.errors import ConfigError, KaizenError

T = TypeVar("T")


class TrainingExecutor(Protocol):
    name: str

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]: ...

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any]) -> Iterator[T]: ...

    def shutdown(self, wait: bool = True) -> None: ...

    def __enter__(self) -> TrainingExecutor: ...

    def __exit__(self, *exc: object) -> None: ...


class LocalExecutor:
    """A process pool (forkserver by default; "spawn" also works, "fork" is refused)."""

    name = "local"

    def __init__(self, workers: int = 1, *, context: str = "forkserver") -> None:
        if workers < 1:
            raise ConfigError(f"executor workers must be >= 1, got {workers}")
        if context not in ("forkserver", "spawn"):
            raise ConfigError(f"executor context must be forkserver or spawn, got {context!r}")
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(context))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any]) -> Iterator[T]:
        return self._pool.map(fn, *iterables)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class DaskExecutor:
    """Jobs on a Dask cluster: `DaskExecutor("tcp://host:8786")`, or `DaskExecutor(client=c)` with a
    client you own (it is not closed on shutdown). Tasks are submitted impure (`pure=False`): two
    identical jobs both run, as retraining expects."""

    name = "dask"

    def __init__(self, address: str | None = None, *, client: Any = None, timeout: float = 10.0) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - the test extra installs it
            raise KaizenError(
                "the Dask executor needs the optional dependency: pip install 'kaizen[dask]'"
            ) from None
        if client is None and not address:
            raise ConfigError("DaskExecutor needs a scheduler address or a client")
        self._owns = client is None
        if client is None:
            try:
                client = Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise KaizenError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.client = client
        self._exec = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._exec.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any]) -> Iterator[T]:
        return self._exec.map(fn, *iterables)

    def shutdown(self, wait: bool = True) -> None:
        self._exec.shutdown(wait=wait)
        if self._owns:
            self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def make_executor(spec: str = "local", *, workers: int = 1) -> TrainingExecutor:
    """ "local" -> LocalExecutor(workers); "dask://HOST:PORT" -> DaskExecutor("tcp://HOST:PORT")."""
    if spec == "local":
        return LocalExecutor(workers)
    if spec.startswith("dask://") and len(spec) > len("dask://"):
        return DaskExecutor("tcp://" + spec[len("dask://") :])
    raise ConfigError(f"unknown executor {spec!r}: use 'local' or 'dask://HOST:PORT'")


def from_config(loop) -> TrainingExecutor:
    """The executor a `kaizen.config.LoopConfig` names (`executor`, `executor_workers`)."""
    return make_executor(loop.executor, workers=loop.executor_workers)
