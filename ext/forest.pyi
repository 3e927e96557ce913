"""Python-visible API of kaizen.ext.forest (see forest.pyx). Build via kaizen.models.compile.load_forest."""

import numpy as np
import numpy.typing as npt

def logit_f32(p: float) -> float: ...
def log_f32(v: float) -> float: ...

class Forest:
    num_features: int
    num_outputs: int  # width of one prediction (K for multi:softprob, else 1)
    num_groups: int  # margin groups (K for multi-class, else 1)
    transform: int
    objective: str
    backend: str  # "compiled" | "interp" | "capi"
    model_hash: str  # sha256 of the model JSON
    build_info: dict | None  # compiled: {"path", "compiled", "compile_s", "key"}
    def __init__(
        self,
        objective: str,
        transform: int,
        num_features: int,
        num_groups: int,
        base_margin: npt.NDArray[np.float32],
        model_hash: str,
    ) -> None: ...
    def predict(self, X: npt.ArrayLike, output_margin: bool = False) -> npt.NDArray[np.floating]: ...
    def predict_row(self, x: npt.ArrayLike) -> float | npt.NDArray[np.float64]: ...
    def latency_ns(self, X: npt.ArrayLike, reps: int = 1) -> npt.NDArray[np.int64]: ...
