"""Parse XGBoost's own JSON model format into flat arrays the predictors share.

Semantics follow XGBoost's CPU predictor (2.x/3.x): a row goes left when `x < threshold`
(float32 compare), right when `x >= threshold`, and to the node's default side when x is NaN.
Leaf values live in `split_conditions` at leaf nodes. Margins start from the base score mapped
into margin space (XGBoost 3 stores `base_score` as a user-space value, e.g. a probability for
binary:logistic, possibly as a vector string such as "[5E-1]") and add each tree's leaf in tree
order, in float32, into the output group named by `tree_info`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from kaizen.errors import DataError
from kaizen.ext.forest import log_f32, logit_f32

# Output transforms, shared with ext/forest.pyx (keep the numbers in step).
T_IDENTITY = 0
T_SIGMOID = 1
T_SOFTMAX = 2
T_EXP = 3
T_ARGMAX = 4

# objective -> (transform, how base_score maps to margin)
_OBJECTIVES: dict[str, tuple[int, str]] = {
    "binary:logistic": (T_SIGMOID, "logit"),
    "reg:logistic": (T_SIGMOID, "logit"),
    "binary:logitraw": (T_IDENTITY, "identity"),
    "reg:squarederror": (T_IDENTITY, "identity"),
    "reg:pseudohubererror": (T_IDENTITY, "identity"),
    "reg:absoluteerror": (T_IDENTITY, "identity"),
    "reg:squaredlogerror": (T_IDENTITY, "identity"),
    "count:poisson": (T_EXP, "log"),
    "reg:gamma": (T_EXP, "log"),
    "reg:tweedie": (T_EXP, "log"),
    "multi:softprob": (T_SOFTMAX, "identity"),
    "multi:softmax": (T_ARGMAX, "identity"),
}


@dataclass
class Tree:
    """One tree as XGBoost stores it (node arrays indexed by node id)."""

    left: np.ndarray  # int32, -1 at leaves
    right: np.ndarray  # int32
    feature: np.ndarray  # int32
    threshold: np.ndarray  # float32 (leaf value at leaves)
    default_left: np.ndarray  # bool
    group: int

    def depth(self) -> int:
        depth = np.zeros(len(self.left), dtype=np.int32)
        best = 0
        stack = [0]
        while stack:
            n = stack.pop()
            if self.left[n] >= 0:
                for c in (self.left[n], self.right[n]):
                    depth[c] = depth[n] + 1
                    best = max(best, int(depth[c]))
                    stack.append(int(c))
        return best


@dataclass
class ForestModel:
    objective: str
    transform: int
    num_features: int
    num_groups: int  # margin groups (K for multi-class, else 1)
    base_margin: np.ndarray  # float32[num_outputs]
    trees: list[Tree]
    model_hash: str  # sha256 of the model JSON bytes
    raw_json: bytes = field(repr=False)

    def flat(self) -> dict[str, np.ndarray]:
        """Interpreter layout: all trees' nodes in one struct-of-arrays, children renumbered."""
        offs = np.cumsum([0] + [len(t.left) for t in self.trees]).astype(np.int64)
        cat = lambda name: np.concatenate([getattr(t, name) for t in self.trees])  # noqa: E731
        left = np.concatenate(
            [np.where(t.left >= 0, t.left + o, -1) for t, o in zip(self.trees, offs[:-1], strict=True)]
        )
        right = np.concatenate(
            [np.where(t.right >= 0, t.right + o, -1) for t, o in zip(self.trees, offs[:-1], strict=True)]
        )
        return {
            "left": left.astype(np.int32),
            "right": right.astype(np.int32),
            "feature": cat("feature").astype(np.int32),
            "threshold": cat("threshold").astype(np.float32),
            "default_left": cat("default_left").astype(np.uint8),
            "root": offs[:-1].astype(np.int32),
            "group": np.array([t.group for t in self.trees], dtype=np.int32),
        }


def _parse_base_score(text: object, where: str) -> list[float]:
    s = str(text).strip()
    if s.startswith("["):
        s = s[1:-1]
    try:
        return [float(p) for p in s.split(",") if p.strip()]
    except ValueError:
        raise DataError(f"{where}: base_score {text!r} is not a number") from None


def _to_margin(values: list[float], how: str, where: str) -> list[float]:
    out = []
    for v in values:
        v32 = float(np.float32(v))
        if how == "logit":
            if not 0.0 < v32 < 1.0:
                raise DataError(f"{where}: base_score {v} outside (0, 1) for a logistic objective")
            out.append(logit_f32(v32))  # float32 -logf(1/p - 1), as XGBoost computes it
        elif how == "log":
            if v32 <= 0.0:
                raise DataError(f"{where}: base_score {v} must be > 0 for a log-link objective")
            out.append(log_f32(v32))
        else:
            out.append(v32)
    return out


def model_bytes(model: object) -> tuple[bytes, str]:
    """(JSON bytes, name for errors) from a path, a Booster, or JSON bytes/str."""
    if isinstance(model, bytes | bytearray):
        return bytes(model), "<model bytes>"
    if isinstance(model, str | os.PathLike):
        path = os.fspath(model)
        try:
            with open(path, "rb") as fh:
                return fh.read(), path
        except OSError as e:
            raise DataError(f"{path}: cannot read model ({e.strerror})") from None
    if hasattr(model, "save_raw"):
        return bytes(model.save_raw("json")), "<xgboost.Booster>"
    raise DataError(f"model must be a path, JSON bytes or xgboost.Booster, not {type(model).__name__}")


def parse_model(raw: bytes, where: str = "<model>") -> ForestModel:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(
            f"{where}: not an XGBoost JSON model ({e.__class__.__name__}: {str(e)[:80]})"
        ) from None
    try:
        learner = doc["learner"]
        lmp = learner["learner_model_param"]
        objective = learner["objective"]["name"]
        gb = learner["gradient_booster"]
    except (KeyError, TypeError):
        raise DataError(f"{where}: not an XGBoost JSON model (missing learner/objective keys)") from None
    if gb.get("name") != "gbtree":
        raise DataError(f"{where}: booster {gb.get('name')!r} not supported (only gbtree)")
    if objective not in _OBJECTIVES:
        raise DataError(f"{where}: objective {objective!r} not supported")
    transform, link = _OBJECTIVES[objective]
    num_features = int(lmp["num_feature"])
    num_class = int(lmp.get("num_class", "0"))
    num_target = int(lmp.get("num_target", "1"))
    if num_target != 1:
        raise DataError(f"{where}: multi-target models (num_target={num_target}) not supported")
    k = max(num_class, 1)
    base = _to_margin(_parse_base_score(lmp["base_score"], where), link, where)
    if len(base) == 1 and k > 1:
        base = base * k
    if len(base) != k:
        raise DataError(f"{where}: base_score has {len(base)} values for {k} outputs")
    m = gb["model"]
    tree_info = m["tree_info"]
    trees = []
    for i, t in enumerate(m["trees"]):
        if int(t["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise DataError(f"{where}: tree {i} has vector leaves (multi-target), not supported")
        if any(int(s) != 0 for s in t.get("split_type", [])):
            raise DataError(f"{where}: tree {i} has categorical splits, not supported")
        left = np.asarray(t["left_children"], dtype=np.int32)
        feat = np.asarray(t["split_indices"], dtype=np.int32)
        if len(left) == 0:
            raise DataError(f"{where}: tree {i} has no nodes")
        internal = left >= 0
        if internal.any() and (feat[internal].max() >= num_features or feat[internal].min() < 0):
            raise DataError(f"{where}: tree {i} splits on a feature outside 0..{num_features - 1}")
        thr = np.asarray(t["split_conditions"], dtype=np.float64).astype(np.float32)
        if np.isnan(thr).any():
            raise DataError(f"{where}: tree {i} has a NaN threshold or leaf value")
        if not np.isfinite(thr[internal]).all():
            raise DataError(f"{where}: tree {i} has an infinite split threshold")
        g = int(tree_info[i])
        if not 0 <= g < k:
            raise DataError(f"{where}: tree {i} belongs to output {g}, model has {k}")
        trees.append(
            Tree(
                left=left,
                right=np.asarray(t["right_children"], dtype=np.int32),
                feature=np.where(internal, feat, 0).astype(np.int32),
                threshold=thr,
                default_left=np.asarray(t["default_left"], dtype=bool),
                group=g,
            )
        )
    if not trees:
        raise DataError(f"{where}: model has no trees")
    if not all(math.isfinite(b) for b in base):
        raise DataError(f"{where}: base_score is not finite")
    return ForestModel(
        objective=objective,
        transform=transform,
        num_features=num_features,
        num_groups=k,
        base_margin=np.asarray(base, dtype=np.float32),
        trees=trees,
        model_hash=hashlib.sha256(raw).hexdigest(),
        raw_json=raw,
    )
