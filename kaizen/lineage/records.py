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
    capital: float = 0.0  # equity at start (USDT): the base of every PnL figure of the run


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


class Bar(Base, tag="bar"):
    """A closed bar as the engine saw it (built from trades live, read from klines in a backtest),
    with the mark price the books were valued at when it closed (nan when none)."""

    open_time: int  # ms
    interval_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    mark: float = float("nan")


# --- signal ---------------------------------------------------------------------------------------
class FeatureSnapshot(Base, tag="features"):
    bar_ts: int
    feature_set: str  # names the definitions (kaizen.models.features.FEATURES and their versions)
    names: list[str]  # the engine writes them in a run's first snapshot of a feature_set only
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
    edge: float = 0.0  # expected net return over the horizon behind the target (0 when not modelled)
    data_ts: int = 0  # ns: the close of the bar the decision was made on


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
    post_only: bool = False  # a limit that may only add liquidity (its fills are maker)
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


class PointerMove(Base, tag="pointer_move"):
    """One registry pointer moved (kaizen.models.registry). `pointer` is "champion",
    "last_known_good", "shadow" or "retired"; for the set-valued pointers `old`/`new` say whether the
    version left ("old") or joined ("new") the set. `action` is the registry operation that moved it
    ("promote", "rollback", "add_shadow", "retire", "set_champion", ...); all moves of one commit
    share `txn`, the registry's commit number; `parents` are the decision records behind it."""

    role: str
    pointer: str
    old: str
    new: str
    reason: str
    action: str = ""
    txn: int = 0


class ShadowComparison(Base, tag="shadow"):
    role: str
    champion: str
    shadow: str
    metric: str
    champion_value: float
    shadow_value: float
    n: int
    # Validation gate (kaizen.loop.gate): the paired test on per-decision net differences, the
    # candidate's deflated Sharpe counting every trial of the role, and what the gate decided.
    test: str = ""
    statistic: float = 0.0
    p_value: float = 1.0
    dsr: float = 0.0
    n_trials: int = 0
    decision: str = ""  # "promote" | "retire" | "keep_waiting"
    reason: str = ""
    stats: dict[str, float] = {}


class DriftAlarm(Base, tag="drift"):
    role: str
    statistic: float
    threshold: float
    detail: str = ""
    # Drift monitor (kaizen.loop.drift): which residual channel, which side of the CUSUM crossed,
    # decisions seen since the last reset, the configured ARL0 and the warm-up standardisation.
    channel: str = ""
    direction: str = ""  # "up" | "down"
    n: int = 0
    arl0: float = 0.0
    stats: dict[str, float] = {}


class Rollback(Base, tag="rollback"):
    role: str
    from_version: str
    to_version: str
    reason: str


class BanditUpdate(Base, tag="bandit"):
    """A variant's posterior after a reward (kaizen.policy). kind "normal_gamma": alpha and beta
    are the shape and rate of the Gamma posterior of the reward's precision, mean and kappa the
    Normal part (mu | tau ~ N(mean, 1 / (kappa tau))); kind "beta": alpha and beta of the Beta
    posterior of the win rate, mean = alpha / (alpha + beta). n_eff is the discounted evidence."""

    role: str
    variant: str
    reward: float  # bps net of fees and funding (as given to the role's portfolio)
    alpha: float
    beta: float
    kind: str = "normal_gamma"
    mean: float = 0.0
    kappa: float = 0.0
    n_eff: float = 0.0
    weight: float = 1.0  # 1 for the traded variant, the shadow weight for counterfactual rewards
    shadow: bool = False
    decision: int = 0  # the role's decision clock


class BanditChoice(Base, tag="bandit_choice"):
    """The variant a role's Thompson draw picked for a decision."""

    role: str
    variant: str
    draw: float  # the winning posterior draw
    decision: int  # the role's decision clock after this choice
    risk_cap: float = 1.0  # share of the role's risk the variant may use (< 1 while a candidate)


class VariantChange(Base, tag="variant_change"):
    """A variant entering a role's portfolio, graduating from candidate, or being retired."""

    role: str
    variant: str
    action: str  # "enter" | "graduate" | "retire"
    reason: str = ""
    prob_best: float = 0.0
    evidence: float = 0.0  # weighted rewards seen
    risk_cap: float = 1.0
    decision: int = 0


Record = (
    RunStart
    | RunEnd
    | BookResync
    | MarketStatus
    | BadMessage
    | Bar
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
    | PointerMove
    | ShadowComparison
    | DriftAlarm
    | Rollback
    | BanditUpdate
    | BanditChoice
    | VariantChange
)

RECORD_TYPES: dict[str, type[Base]] = {cls.__struct_config__.tag: cls for cls in Record.__args__}
