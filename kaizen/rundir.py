"""What a run directory is, in one place.

`kaizen run` and `kaizen demo` write one directory per run: the lineage log in a sub-directory
(`[lineage] dir`, `RUN/lineage` for the demo), and beside it `summary.json` when the run ended,
`risk_halt.json` while the kill switch is halted, `run.json` (the run's persisted identity) and the
embedded simulator's `sim.log`. A directory is a run directory when it holds any of those files or
a lineage log in `lineage/` (a config naming another lineage directory still gets `run.json` and
`summary.json` beside it); commands that take a run directory refuse anything else, so a typo
never reads as "armed, nothing wrong".
"""

from __future__ import annotations

import os
from pathlib import Path

from kaizen.errors import KaizenError

RUNS_ROOT = "runs"  # where `kaizen demo` and the example configs put their run directories
LINEAGE_DIR = "lineage"
SUMMARY_FILE = "summary.json"
HALT_FILE = "risk_halt.json"
RUN_FILE = "run.json"
SIM_LOG = "sim.log"
MARKER_FILES = (RUN_FILE, SUMMARY_FILE, HALT_FILE)


def has_segments(path: str | os.PathLike[str]) -> bool:
    """Does this directory hold a lineage log (segment files)?"""
    from kaizen.lineage.scan import segment_paths

    p = Path(path)
    return p.is_dir() and bool(segment_paths(p))


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    if not p.is_dir():
        return False
    if any((p / name).is_file() for name in MARKER_FILES):
        return True
    return lineage_of(p) is not None


def lineage_of(run_dir: str | os.PathLike[str]) -> Path | None:
    """The lineage log of a run directory (`RUN/lineage`), None when there is none."""
    p = Path(run_dir) / LINEAGE_DIR
    return p if has_segments(p) else None


def require_run_dir(path: str | os.PathLike[str]) -> Path:
    """The path as a run directory, or a one-line error saying what it is not."""
    p = Path(path)
    if not p.exists():
        raise KaizenError(f"{p}: run directory not found")
    if has_segments(p) and not is_run_dir(p):
        raise KaizenError(f"{p}: this is a lineage log; its run directory is {p.parent}")
    if not is_run_dir(p):
        raise KaizenError(
            f"{p}: not a run directory (no {', '.join(MARKER_FILES)} nor a lineage log; "
            f"`kaizen run` and `kaizen demo` create one, e.g. {RUNS_ROOT}/demo-<time>)"
        )
    return p


def resolve_log(path: str | os.PathLike[str]) -> Path:
    """A lineage log directory given either the log itself or the run directory holding it."""
    p = Path(path)
    if has_segments(p):
        return p
    found = lineage_of(p) if p.is_dir() else None
    return found if found is not None else p


def latest_log(root: str | os.PathLike[str] = RUNS_ROOT, depth: int = 3) -> Path | None:
    """The lineage log under `root` written to most recently (searched `depth` levels down)."""
    from kaizen.lineage.scan import segment_paths

    best: tuple[float, Path] | None = None
    level = [Path(root)]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for d in level:
            try:
                segs = segment_paths(d)
                children = [c for c in d.iterdir() if c.is_dir()]
            except OSError:
                continue
            if segs:
                mtime = max(s.stat().st_mtime for s in segs)
                if best is None or mtime > best[0]:
                    best = (mtime, d)
            nxt += children
        level = nxt
    return best[1] if best else None


def run_identity(run_dir: str | os.PathLike[str]) -> str:
    """The run's persisted identity: `run.json` holds a run id made at the first start and a count
    of starts. Client order ids are tagged by the run id (so a restarted process recognises, and
    cancels, the orders a killed one left) and their digests by `<run id>#<start>`, so no two
    processes of the run ever make the same id."""
    import json
    import secrets

    p = Path(run_dir) / RUN_FILE
    data: dict = {}
    if p.exists():
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            raise KaizenError(f"{p}: unreadable run identity; move it away to start a new run") from None
    run_id = str(data.get("run_id") or f"run-{secrets.token_hex(6)}")
    starts = int(data.get("starts", 0)) + 1
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "starts": starts}))
    os.replace(tmp, p)
    return f"{run_id}#{starts}"
