"""Python-visible API of kaizen.ext.marketmodel (the synthetic market's price process)."""

import numpy as np
import numpy.typing as npt

REGIMES: tuple[str, str, str, str]

def normals(seed: int, n: int) -> npt.NDArray[np.float64]: ...

class MarketProcess:
    t_h: float
    switches: int
    def __init__(
        self,
        shapes: npt.NDArray[np.float64],
        phi_before: npt.NDArray[np.float64],
        phi_after: npt.NDArray[np.float64],
        market_dwell_h: npt.NDArray[np.float64],
        own_dwell_h: npt.NDArray[np.float64],
        rejoin_h: npt.NDArray[np.float64],
        follow: float,
        corr: float,
        fast_tau_h: float,
        signal_tau_h: float,
        signal_clip: float,
        break_h: float,
        premium_base: float,
        premium_sd: float,
        premium_relax_h: float,
        base_sigma: npt.NDArray[np.float64],
        start_price: npt.NDArray[np.float64],
        seed: int,
    ) -> None: ...
    def step(self, dt_h: float) -> None: ...
    def run_bars(
        self,
        n_bars: int,
        substeps: int,
        dt_h: float,
        mark_open: npt.NDArray[np.float64],
        mark_high: npt.NDArray[np.float64],
        mark_low: npt.NDArray[np.float64],
        mark_close: npt.NDArray[np.float64],
        premium_mean: npt.NDArray[np.float64],
        signal_close: npt.NDArray[np.float64],
        regime_close: npt.NDArray[np.int8],
        direction_close: npt.NDArray[np.int8],
    ) -> None: ...
    @property
    def n_symbols(self) -> int: ...
    def index(self, i: int) -> float: ...
    def premium(self, i: int) -> float: ...
    def regime(self, i: int) -> int: ...
    def direction(self, i: int) -> float: ...
    def signal(self, i: int) -> float: ...
    def sigma(self, i: int) -> float: ...
    def set_index(self, i: int, price: float) -> None: ...
    def set_frozen(self, i: int, frozen: bool) -> None: ...
    def state(self, i: int) -> dict[str, float | int | bool]: ...
    @property
    def market_regime(self) -> int: ...
    @property
    def after_break(self) -> bool: ...
