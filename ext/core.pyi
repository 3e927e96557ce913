"""Typed interface of kaizen.ext.core (see core.pyx)."""

from typing import Any

import numpy as np

from kaizen.ext.book import OrderBook
from kaizen.ext.ensemble import CompiledEnsemble
from kaizen.ext.features import FeatureEngine
from kaizen.ext.forest import Forest
from kaizen.ext.regime import Hysteresis, RegimeFeatures
from kaizen.ext.thompson import ThompsonPortfolio

STAGES: tuple[str, ...]
FLAGS: dict[str, int]
NCOLS: int

def monotonic_ns() -> int: ...

class DecisionCore:
    book: OrderBook
    features: FeatureEngine
    regime_features: RegimeFeatures
    regime_forest: Forest
    hysteresis: Hysteresis
    bandit: ThompsonPortfolio
    signal: CompiledEnsemble
    exit_model: Forest
    regime: int
    arm: int
    p_signal: float
    p_exit: float
    equity: float
    risk_fraction: float
    vol_target: float
    exit_threshold: float
    fee_rate: float
    max_position_lots: int
    max_order_lots: int
    max_notional: float
    price_band_bps: float
    kill_switch: bool
    paper_fill: bool
    bar_every_msgs: int
    interval_ms: int
    position_lots: int
    entry_price: float
    bars_held: int
    order_len: int
    order_side: int
    order_lots: int
    order_price_ticks: int
    order_reduce_only: bool
    order_seq: int
    msgs: int
    depth_msgs: int
    trade_msgs: int
    ticker_msgs: int
    bars_closed: int
    orders: int
    rejects: int
    errors: int
    skipped: int
    gaps: int
    synced_book: bool
    def __init__(self, book: OrderBook, features: FeatureEngine, symbol: str, **kw: Any) -> None: ...
    def load_snapshot(self, bids: Any, asks: Any, last_update_id: int) -> None: ...
    def warm_bar(self, open_time_ms: int, o: float, h: float, l: float, c: float, v: float) -> None: ...
    def on_order(self, n: int) -> int: ...
    def on_bytes(self, frame: bytes, recv_ns: int) -> int: ...
    def order_bytes(self) -> bytes: ...
    def stage_stamps(self) -> list[int]: ...
    def regime_probs(self) -> list[float]: ...
    def swap_models(self, *, signal: CompiledEnsemble | None = ..., exit_model: Forest | None = ...,
                    regime_forest: Forest | None = ...) -> None: ...
    def set_position(self, lots: int, entry_price: float) -> None: ...
    def on_fill(self, side: int, lots: int, price: float) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def replay(self, buf: np.ndarray, offsets: np.ndarray, trace: np.ndarray | None = ..., start: int = ...,
               stop: int = ...) -> int: ...
