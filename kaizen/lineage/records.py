"""Lineage record types: one msgspec tagged union, so every record self-describes on disk.

Every record has `id` (unique, sortable int from `kaizen.lineage.ids.new_id`), `ts` (ns, the
clock of the mode: venue/replay time in paper and backtest, wall time live), `parents` (ids it
derives from), `model` (the model version that produced it, "" where none) and `symbol` ("" where
none). Bump SCHEMA_VERSION when a field changes meaning; adding a new type is compatible.
"""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1


class Base(msgspec.Struct, kw_only=True, tag_field="type", array_like=False, omit_defaults=False):
    id: int
    ts: int
    parents: list[int] = []
    model: str = ""
    symbol: str = ""


# --- run ------------------------------------------------------------------------------------------
class RunStart(Base, tag="run_start"):
    mode: str
    version: str
    config_hash: str
    symbols: list[str]


class RunEnd(Base, tag="run_end"):
    reason: str
    summary: dict[str, float] = {}


# --- market ---------------------------------------------------------------------------------------
class BookResync(Base, tag="book_resync"):
    reason: str
    last_update_id: int = 0
    bytes_dropped: int = 0


class MarketStatus(Base, tag="market_status"):
    status: str  # "valid" | "invalid" | "stale"
    reason: str = ""


class BadMessage(Base, tag="bad_message"):
    reason: str
    count: int = 1


# --- signal ---------------------------------------------------------------------------------------
class FeatureSnapshot(Base, tag="features"):
    bar_ts: int
    feature_set: str
    names: list[str]
    values: list[float]


class Prediction(Base, tag="prediction"):
    role: str
    value: float
    features_id: int = 0
    shadow: bool = False


class Decision(Base, tag="decision"):
    strategy: str
    signal: float
    target_qty: float
    position_qty: float
    price: float
    reason: str = ""


class ExitRecord(Base, tag="exit"):
    """An exit rule's answer at a bar close of an open position: the predicted value of holding one
    more interval, what it was compared against, the position's state and the inputs used."""

    rule: str = ""
    exit: bool = False
    hold_value: float = 0.0  # predicted net value of holding one more interval (fraction); nan: none
    cost: float = 0.0  # the cost of staying it was compared against (fraction); nan: none
    reason: str = ""
    side: int = 0
    bars_in_trade: int = 0
    entry_price: float = 0.0
    unrealized: float = 0.0  # return since entry at this close, + = in the position's favour
    mfe: float = 0.0
    mae: float = 0.0
    entry_regime: int = -1
    entry_vol: float = 0.0
    names: list[str] = []
    values: list[float] = []


# --- execution ------------------------------------------------------------------------------------
class Order(Base, tag="order"):
    client_order_id: str
    side: str  # "buy" | "sell"
    order_type: str  # "market" | "limit"
    qty: float
    price: float = 0.0
    reduce_only: bool = False
    status: str = "new"  # new | accepted | rejected | canceled | filled
    venue_order_id: str = ""
    error: str = ""


class Fill(Base, tag="fill"):
    client_order_id: str
    trade_id: str
    side: str
    qty: float
    price: float
    fee: float  # in quote currency, positive = paid
    fee_asset: str = "USDT"
    maker: bool = False
    realized_pnl: float = 0.0


class FundingPayment(Base, tag="funding"):
    rate: float
    position_qty: float
    mark_price: float
    amount: float  # quote currency, positive = paid by us, negative = received


class RiskEvent(Base, tag="risk"):
    kind: str  # e.g. "limit", "kill_switch", "rearm", "stale"
    detail: str


class Reconcile(Base, tag="reconcile"):
    what: str  # "position" | "open_order" | "balance"
    ours: str
    venue: str
    action: str = ""


# --- models and loop ------------------------------------------------------------------------------
class Retrain(Base, tag="retrain"):
    run_id: str
    role: str
    data_start: int
    data_end: int
    data_hash: str = ""
    metrics: dict[str, float] = {}
    candidates: list[str] = []


class ModelSwap(Base, tag="model_swap"):
    role: str
    old: str
    new: str
    reason: str


class ShadowComparison(Base, tag="shadow"):
    role: str
    champion: str
    shadow: str
    metric: str
    champion_value: float
    shadow_value: float
    n: int


class DriftAlarm(Base, tag="drift"):
    role: str
    statistic: float
    threshold: float
    detail: str = ""


class Rollback(Base, tag="rollback"):
    role: str
    from_version: str
    to_version: str
    reason: str


class BanditUpdate(Base, tag="bandit"):
    role: str
    variant: str
    reward: float
    alpha: float
    beta: float


Record = (
    RunStart
    | RunEnd
    | BookResync
    | MarketStatus
    | BadMessage
    | FeatureSnapshot
    | Prediction
    | Decision
    | ExitRecord
    | Order
    | Fill
    | FundingPayment
    | RiskEvent
    | Reconcile
    | Retrain
    | ModelSwap
    | ShadowComparison
    | DriftAlarm
    | Rollback
    | BanditUpdate
)

RECORD_TYPES: dict[str, type[Base]] = {cls.__struct_config__.tag: cls for cls in Record.__args__}
