"""Python-visible API of kaizen.ext.features (the incremental feature engine)."""

import numpy as np
import numpy.typing as npt

NAMES: tuple[str, ...]
BAR_OK: int
BAR_RESET: int
BAR_STALE: int
BAR_INVALID: int

class FeatureEngine:
    symbols: list[str]
    def __init__(self, symbols: list[str], leader: str = "BTCUSDT", interval_ms: int = 3_600_000) -> None: ...
    def symbol_index(self, symbol: str) -> int: ...
    def on_bar(
        self,
        symbol: str,
        open_time_ms: int,
        o: float,
        h: float,
        l: float,
        c: float,
        volume: float,
        funding_rate: float = ...,
        mark_close: float = ...,
    ) -> npt.NDArray[np.float64]: ...
    def update_sid(
        self,
        sid: int,
        open_time_ms: int,
        o: float,
        h: float,
        l: float,
        c: float,
        volume: float,
        funding_rate: float = ...,
        mark_close: float = ...,
    ) -> int: ...
    def out_view(self, sid: int) -> npt.NDArray[np.float64]: ...
    def on_book(self, symbol: str, imbalance: float, microprice: float, mid: float, signed_volume: float) -> None: ...
    def vector(self, symbol: str) -> npt.NDArray[np.float64]: ...
    def resets(self, symbol: str) -> int: ...
    def run_batch(self, sid, open_time, o, h, l, c, v, funding, mark, out, status) -> None: ...
    @property
    def names(self) -> list[str]: ...
    @property
    def surfaces(self) -> dict[str, list[int]]: ...
    @property
    def leader(self) -> str | None: ...

def time_bars(fe: FeatureEngine, sid, open_time, o, h, l, c, v, funding, mark, ns) -> None: ...
def time_book(fe: FeatureEngine, sid: int, imb, micro, mid, sv, ns) -> None: ...
def time_book_batch(fe: FeatureEngine, sid: int, imb, micro, mid, sv) -> int: ...
