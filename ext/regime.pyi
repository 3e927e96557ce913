"""Python-visible API of kaizen.ext.regime (regime features and hysteresis)."""

import numpy as np
import numpy.typing as npt

DERIVED: tuple[str, ...]

class RegimeFeatures:
    interval_h: float
    bars: int
    def __init__(
        self,
        interval_h: float,
        i_ret: int,
        i_rv: int,
        i_pk: int,
        i_lead: int,
        i_hl: int,
        i_ends: int,
        nin: int,
    ) -> None: ...
    def reset(self) -> None: ...
    def update(self, vec: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def run_batch(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...

class Hysteresis:
    confirm: int
    margin: float
    def __init__(self, k: int, margin: float = 0.1, confirm: int = 2) -> None: ...
    def reset(self) -> None: ...
    def step(self, probs: npt.NDArray[np.float64]) -> int: ...
    def run(self, P: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]: ...
    @property
    def current(self) -> int: ...
