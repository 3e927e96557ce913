"""Load an XGBoost model as a fast predictor: generated C compiled once and cached, a flat
interpreter when no compiler works, or XGBoost's own C API as the reference.

    f = load_forest("model.json")          # compiled if `cc` works, else interpreted
    f.predict(X)                            # as Booster.predict(DMatrix(X))
    f.predict_row(x)
    # Cython: from kaizen.ext.forest cimport Forest; f.predict_ptr(row, out)  (nogil)

Compilation happens here, at load or promotion time, never on the decision path. The cache
(default $KAIZEN_CACHE_DIR or ~/.cache/kaizen/forest) is keyed by the model JSON's hash, the
codegen version, the compiler and its flags; each library has a sidecar with its own sha256,
so a truncated or corrupted file is rebuilt rather than loaded. Every compiled load is checked
against the interpreter on rows built from the model's own thresholds (with NaNs); a model
whose compiled output diverges is refused.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from kaizen.errors import KaizenError
from kaizen.ext.forest import Forest
from kaizen.models import forest_codegen
from kaizen.models.forest_model import ForestModel, model_bytes, parse_model

BACKENDS = ("auto", "compiled", "interp", "capi")
CFLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]
CHECK_ROWS = 256
# Relative tolerance of the load-time self-check; in practice the two agree bit for bit.
CHECK_RTOL = 1e-6

# How many times this process ran the compiler (tests use it to prove cache hits).
compile_count = 0


def default_cache_dir() -> Path:
    env = os.environ.get("KAIZEN_CACHE_DIR")
    return Path(env) / "forest" if env else Path.home() / ".cache" / "kaizen" / "forest"


def _cc() -> str:
    return os.environ.get("CC", "cc")


def _cflags() -> list[str]:
    flags = list(CFLAGS)
    if os.environ.get("KAIZEN_NATIVE") == "1":
        flags.append("-march=native")
    return flags


@functools.cache
def _cc_identity(cc: str) -> str | None:
    """First line of `cc --version`, or None if no working compiler is there."""
    if shutil.which(cc) is None:
        return None
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return (r.stdout.splitlines() or ["?"])[0]


def compiler_available() -> bool:
    return _cc_identity(_cc()) is not None


def cache_key(fm: ForestModel) -> str:
    h = hashlib.sha256()
    for part in (fm.model_hash, forest_codegen.CODEGEN_VERSION, _cc(), _cc_identity(_cc()) or "", *_cflags()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached_ok(so: Path) -> bool:
    side = so.with_suffix(".so.sha256")
    try:
        return side.read_text().strip() == _file_sha256(so)
    except OSError:
        return False


def _compile(fm: ForestModel, key: str, so: Path) -> float:
    """Generate and compile into `so` (atomically, with its sidecar); returns seconds taken."""
    global compile_count
    t0 = time.perf_counter()
    so.parent.mkdir(parents=True, exist_ok=True)
    src = forest_codegen.generate_c(fm, key)
    with tempfile.TemporaryDirectory(dir=so.parent, prefix=".build-") as tmp:
        c_path = Path(tmp) / "forest.c"
        out = Path(tmp) / "forest.so"
        c_path.write_text(src)
        try:
            r = subprocess.run(
                [_cc(), *_cflags(), "-o", str(out), str(c_path), "-lm"],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KaizenError(
                f"model {fm.model_hash[:12]}: C compiler {_cc()!r} failed to run ({e})"
            ) from None
        compile_count += 1
        if r.returncode != 0:
            first = (r.stderr.strip().splitlines() or ["no output"])[0]
            raise KaizenError(f"model {fm.model_hash[:12]}: C compile failed: {first}")
        side_tmp = Path(tmp) / "forest.so.sha256"
        side_tmp.write_text(_file_sha256(out) + "\n")
        os.replace(out, so)
        os.replace(side_tmp, so.with_suffix(".so.sha256"))
    return time.perf_counter() - t0


def _base_forest(fm: ForestModel) -> Forest:
    return Forest(fm.objective, fm.transform, fm.num_features, fm.num_groups, fm.base_margin, fm.model_hash)


def _interp(fm: ForestModel) -> Forest:
    f = _base_forest(fm)
    flat = fm.flat()
    f._attach_interp(
        flat["left"],
        flat["right"],
        flat["feature"],
        flat["threshold"],
        flat["default_left"],
        flat["root"],
        flat["group"],
    )
    return f


def check_rows(fm: ForestModel, n: int = CHECK_ROWS) -> np.ndarray:
    """Rows that exercise both sides of the model's splits: thresholds, their float neighbours, NaN."""
    rng = np.random.default_rng(int(fm.model_hash[:16], 16))
    per_feat: list[list[float]] = [[] for _ in range(fm.num_features)]
    for t in fm.trees:
        for f, thr in zip(t.feature[t.left >= 0], t.threshold[t.left >= 0], strict=True):
            per_feat[int(f)].append(float(thr))
    X = np.empty((n, fm.num_features), dtype=np.float32)
    for j in range(fm.num_features):
        thr = np.asarray(per_feat[j] or [0.0], dtype=np.float32)
        pick = thr[rng.integers(0, len(thr), n)]
        side = rng.integers(0, 3, n)
        X[:, j] = np.where(
            side == 0,
            np.nextafter(pick, np.float32(-np.inf)),
            np.where(side == 1, pick, np.nextafter(pick, np.float32(np.inf))),
        )
    X[rng.random(X.shape) < 0.25] = np.nan
    X[0] = np.nan
    X[1] = 0.0
    return X


def _self_check(fm: ForestModel, compiled: Forest, extra_rows: np.ndarray | None) -> None:
    X = check_rows(fm)
    if extra_rows is not None:
        X = np.vstack([X, np.asarray(extra_rows, dtype=np.float32).reshape(-1, fm.num_features)])
    want = _interp(fm).predict(X, output_margin=True).astype(np.float64)
    got = compiled.predict(X, output_margin=True).astype(np.float64)
    bad = ~(np.abs(got - want) <= CHECK_RTOL * np.maximum(1.0, np.abs(want)))
    bad = bad.reshape(len(X), -1).any(axis=1)
    if bad.any():
        worst = float(np.nanmax(np.abs(got - want))) if np.isfinite(got).all() else float("nan")
        raise KaizenError(
            f"model {fm.model_hash[:12]}: compiled predictor diverges from the interpreter on "
            f"{int(bad.sum())} of {len(X)} check rows (max |diff| {worst:.3g}); refusing it"
        )


def _load_compiled(fm: ForestModel, cache_dir: Path, extra_rows: np.ndarray | None) -> Forest:
    key = cache_key(fm)
    so = cache_dir / f"{key[:40]}.so"
    compiled_now, seconds = False, 0.0
    if not _cached_ok(so):
        seconds, compiled_now = _compile(fm, key, so), True
    f = _base_forest(fm)
    try:
        f._attach_compiled(str(so), key.encode())
    except KaizenError:
        if compiled_now:
            raise
        f._release()
        seconds, compiled_now = _compile(fm, key, so), True
        f = _base_forest(fm)
        f._attach_compiled(str(so), key.encode())
    try:
        _self_check(fm, f, extra_rows)
    except KaizenError:
        f._release()
        for p in (so, so.with_suffix(".so.sha256")):
            p.unlink(missing_ok=True)
        raise
    f.build_info = {"path": str(so), "compiled": compiled_now, "compile_s": seconds, "key": key}
    return f


def _load_capi(fm: ForestModel) -> Forest:
    from xgboost import libpath  # heavy; only the reference backend needs it

    libs = libpath.find_lib_path()
    if not libs:
        raise KaizenError("backend 'capi': libxgboost not found in the xgboost package")
    f = _base_forest(fm)
    f._attach_capi(libs[0], fm.raw_json)
    return f


def load_forest(
    model: str | os.PathLike | bytes | object,
    backend: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    check_rows: np.ndarray | None = None,
) -> Forest:
    """Load an XGBoost model (JSON path, JSON bytes, or xgboost.Booster) as a Forest.

    backend: "auto" (compiled if a C compiler works, else "interp"), "compiled", "interp",
    or "capi" (XGBoost's C API; reference and baseline). `check_rows` adds rows of your own to
    the compiled self-check.
    """
    if backend not in BACKENDS:
        raise KaizenError(f"forest backend {backend!r} unknown; expected one of {', '.join(BACKENDS)}")
    raw, where = model_bytes(model)
    fm = parse_model(raw, where)
    if backend == "auto":
        backend = "compiled" if compiler_available() else "interp"
    if backend == "interp":
        return _interp(fm)
    if backend == "capi":
        return _load_capi(fm)
    if not compiler_available():
        raise KaizenError(f"backend 'compiled': no working C compiler ({_cc()!r}); use backend='interp'")
    return _load_compiled(fm, Path(cache_dir) if cache_dir else default_cache_dir(), check_rows)
