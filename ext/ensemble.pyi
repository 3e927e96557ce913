"""Python-visible API of kaizen.ext.ensemble (the compiled signal ensemble)."""

import numpy.typing as npt

from kaizen.ext.forest import Forest

class CompiledEnsemble:
    num_bases: int
    num_features: int
    num_extra: int
    meta_mode: int  # 0 forest, 1 logistic
    version: str
    def __init__(
        self,
        bases: list[tuple[Forest, list[int]]],
        meta: Forest | dict,
        num_features: int,
        num_extra: int = 0,
        version: str = "",
    ) -> None: ...
    def predict(self, x: npt.ArrayLike, extra: npt.ArrayLike | None = None) -> float: ...
    def base_predictions(self) -> list[float]: ...
