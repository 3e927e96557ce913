"""Shared fixtures. Tests read real market data from $KAIZEN_DATA, else the nearest `shared/data`
beside the checkout or one of its parents (a git worktree under ../wt/NAME finds ../../shared/data)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find_data() -> Path:
    for var in ("KAIZEN_DATA", "KAIZEN_TEST_DATA"):  # data elsewhere (e.g. a worktree not beside shared/)
        if os.environ.get(var):
            return Path(os.environ[var])
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"


DATA = _find_data()

# Compiled predictors are cached per test session, not in the user's ~/.cache (child processes
# inherit this).
os.environ.setdefault("KAIZEN_CACHE_DIR", tempfile.mkdtemp(prefix="kaizen-test-cache-"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real market data not found at {DATA}")
    return DATA


def run_kaizen(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, **kw
) -> subprocess.CompletedProcess:
    """Run the real `kaizen` CLI in a child process (works installed or from source)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kaizen", *args],
        cwd=kw.pop("cwd", REPO),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
