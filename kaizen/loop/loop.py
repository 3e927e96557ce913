"""The improvement loop: retrain, shadow, validate, promote or retire, watch for drift, roll back.

One object, two clocks: the backtest driver calls `on_clock(view, t)` at every bar close of the
replay (the replay clock pauses while a model trains, so a run is reproducible); live and paper
call it from a periodic task on the wall clock with a data view over stored history. At any time
it reads data only through the view, so only data before that time.

Role: "signal" (the pooled signal ensemble, one decision per symbol per bar). Its pointers live in
a `ModelRegistry`; the champion starts as `flat`: no model trades until it has beaten doing
nothing, net of fees, spread and funding, in shadow.

- Retrain (`[loop] retrain_every`, default daily): when no candidate is in shadow, train one on
  the rolling window ending now (kaizen.backtest.training.train_signal_model through the
  configured executor: a local process pool, or Dask), register it, start shadowing it. One
  candidate at a time ("fewer but better candidates"): a night with a candidate in shadow trains
  nothing, so the training cost is one model per shadow period, not one per night.
- Shadow: every version in play (champion, candidate) runs a `PaperBook`: the same features, the
  same net-edge rule (kaizen.models.edge.decide_side) and the same costs as the traded book, so
  each produces a per-decision net return series on the same decisions; shadows' predictions are
  `Prediction(shadow=True)` records and never trade.
- Validate (every `[loop] shadow_days` after the candidate entered, up to `shadow_looks` times):
  the ValidationGate's paired test and deflated Sharpe (counting every candidate ever trained for
  the role) decide promote, retire, or keep waiting for the next look (group-sequential, Pocock's
  level per look: a weak real edge needs weeks of decisions, and a fresh candidate every week
  would throw that evidence away); when the candidate is retired, `flat` is tested against the
  champion on the same decisions, so a champion that loses to doing nothing goes flat. Each evaluation is a `ShadowComparison` record; each pointer move a
  registry `PointerMove` record naming it as parent.
- Drift: the channels in `[loop] drift_channels` feed a CUSUM `DriftMonitor`: the champion's PnL
  (default; on the decisions its rule trades, the gross return realized in the trade's direction
  in units of the bar's vol, `pnl_reference`) and, when configured, its calibration on the side it
  leans to (did that side come with the probability it gave it, h bars later? `lean_pair`). Each
  is standardized by the same residuals on the model's own out-of-fold rows (no live warm-up: it
  starts watching at promotion), centred where the clipped values have mean 0. Thresholds are
  calibrated on those out-of-fold residuals to a mean of `[loop] drift_arl0` decisions between
  false alarms; both residuals are oriented (positive = better than the model said) and by default
  only the lower side alarms (`[loop] drift_sides = "lower"`: a model doing better than it said is
  no reason to roll it back). An alarm rolls the role back to the last known-good version at once
  (`DriftAlarm` + `Rollback` records)
  and trading goes on. With `[loop] retrain_from_change` the candidate in shadow (trained across
  the change) is retired, and the next candidates are trained from the alarm's change point on
  (the CUSUM's estimate of when the model stopped working; its Retrain records name the alarm as
  parent) once `change_min_days` of data exist: a window of mostly old-market data would teach
  the next candidate the relation that just broke.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.config import Config
from kaizen.engine.strategy import BarContext, Costs, Target
from kaizen.lineage import records as R
from kaizen.lineage.ids import new_id
from kaizen.loop.gate import KEEP_WAITING, PROMOTE, GateConfig, ValidationGate, comparison_record
from kaizen.models.edge import EdgeCalibration, PaperTrader
from kaizen.models.registry import FLAT, ModelRegistry

log = logging.getLogger(__name__)

ROLE = "signal"
DAY_MS = 86_400_000


def pnl_reference(
    edge: EdgeCalibration,
    p: np.ndarray,
    gross: np.ndarray,
    round_trip: float,
    clip: float = 4.0,
    vol: np.ndarray | None = None,
) -> tuple[np.ndarray, float, tuple[float, float]] | None:
    """The PnL channel's reference from a model's out-of-fold rows (time order): on the rows whose
    expected return clears the round trip (the rule's entry test), the realized gross forward
    return in the model's direction, side x gross, in units of the bar's vol when `vol` is given
    (BarContext.vol; rows without a positive vol are left out). In vol units a signal whose
    strength scales with volatility earns the same per trade in calm and in wild regimes; in
    returns, the calm regimes' smaller trades read as days-long shortfalls against the pooled mean
    (seed 505 at strength 0.24: no threshold reached ARL0). Returns (those returns, k, (mean, sd)) or None
    with < 200 such rows or no realized edge. The mean is the clipped one the CUSUM sees
    (drift.clipped_reference). k is half the realized edge in sds (mean / sd): the CUSUM is tuned to
    the shift that losing the whole edge makes, the change a rollback is for.

    Realized, not realized minus expected: after a break the model's expected returns shrink with
    its predictions (seed 101 at strength 0.24: mean |e| 1.17 % before, 0.32 % after) while what its
    trades earn falls to nothing, and a residual against a shrinking expectation hides most of that
    fall (a shift of 0.25 sd against 0.47 sd here)."""
    if not edge.b > 0:
        return None
    e = edge.edge(np.asarray(p, np.float64))
    g = np.asarray(gross, np.float64)
    ok = np.isfinite(e) & np.isfinite(g) & (np.abs(e) > round_trip)
    unit = np.ones_like(g)
    if vol is not None:
        unit = np.asarray(vol, np.float64)
        ok &= np.isfinite(unit) & (unit > 0)
    if ok.sum() < 200:
        return None
    from kaizen.loop.drift import clipped_reference

    r = np.sign(e[ok]) * g[ok] / unit[ok]
    mean, sd = clipped_reference(r, clip)
    if not (sd > 0 and mean > 0):
        return None
    k = float(np.clip(0.5 * mean / sd, 0.02, 0.5))
    return r, k, (mean, sd)


def lean_pair(p: Any, y: Any) -> tuple[Any, Any]:
    """Calibration oriented by the model's lean: expected, the probability it gives the side it
    leans to (max(p, 1 - p)); realized, 1 when that side's outcome came (y for a long lean, 1 - y
    for a short one). Oriented, the residual's sign says better or worse than the model said, so a
    one-sided detector alarms only on worse (`[loop] drift_sides`), and a model whose signal flips
    sign shows as a fall: unoriented, its errors on the two sides cancel on average."""
    p = np.asarray(p, np.float64)
    y = np.asarray(y, np.float64)
    return np.maximum(p, 1.0 - p), np.where(p >= 0.5, y, 1.0 - y)


class PaperBook:
    """One model version traded on paper for every symbol (kaizen.models.edge.PaperTrader): the
    side the net-edge rule takes and the net return of each decision. `flat` (model None) earns 0."""

    def __init__(self, version: str, model: Any, horizon: int, costs: Costs, interval_ms: int) -> None:
        self.version = version
        self.model = model
        self.trader = PaperTrader(horizon, costs.round_trip, interval_ms)

    def step(self, ctx: BarContext) -> tuple[int, float, float, float]:
        """(side for the next bar, p, expected return, net return of the previous decision or nan)."""
        if self.model is None:
            first = ctx.symbol not in self.trader.state
            self.trader.state[ctx.symbol] = [0, 0, ctx.close, 0.0, 0.0]
            return 0, math.nan, 0.0, (math.nan if first else 0.0)
        p = self.model.predict(ctx.inputs)
        e = self.model.edge.expected_return(p) if math.isfinite(p) else math.nan
        side, reward = self.trader.step(ctx.symbol, ctx.close, e, ctx.funding_rate)
        return side, p, (e if math.isfinite(e) else 0.0), reward


class ImprovementLoop:
    def __init__(
        self,
        cfg: Config,
        root: Path,
        lineage: Any,
        costs: Costs,
        interval_ms: int,
        *,
        now_ns: Callable[[], int],
        train: Callable[..., tuple[Path, dict]] | None = None,
        blocking: bool = True,
    ) -> None:
        from kaizen.loop.executor import from_config

        self.cfg = cfg
        self.lc = cfg.loop
        self.costs = costs
        self.interval_ms = interval_ms
        self.horizon = cfg.models.horizon_bars
        self.lineage = lineage
        self.now_ns = now_ns
        self.registry = ModelRegistry(root / "registry", lineage=lineage)
        self.models_root = root / "models"
        self.gate = ValidationGate(GateConfig.from_loop(self.lc))
        self.executor = from_config(self.lc)
        self._train = train
        # backtest: the replay clock waits for a training job (reproducible); live: the job runs in
        # the executor's processes and the candidate enters shadow at the first clock after it ends
        self.blocking = blocking
        self._job: Any = None
        self.retrain_ms = int(self.lc.retrain_every_s * 1000)
        self.shadow_ms = int(self.lc.shadow_s * 1000)
        self.next_retrain = -(2**62)
        self.dirs: dict[str, Path] = {}  # version -> model directory
        self.retrain_rec: dict[str, int] = {}  # version -> id of its Retrain record
        self.trials = 0  # candidates ever trained for the role (the DSR's N)
        self.champion = self._book(self.registry.champion(ROLE))
        self.candidate: PaperBook | None = None
        self.cand_since = 0
        self.cand_look = 1  # the gate's next group-sequential look at the candidate (1..shadow_looks)
        self.window: dict[str, list[float]] = {}
        self.monitor: Any = None
        self.change_ms: int | None = None  # a drift alarm's change point: train from it (retrain_from_change)
        self.change_parent = 0  # the alarm's record id (a parent of the Retrain records cut at it)
        self.pending: dict[str, deque] = {}  # symbol -> (p, e, close, funding, vol) of the champion's calls
        self.pnl_vol = False  # the PnL channel in vol units (the champion's out-of-fold rows kept vol)
        self.counts = dict.fromkeys(("retrains", "promotions", "retirements", "rollbacks", "drift_alarms",
                                     "drift_channels_uncalibrated"), 0)  # fmt: skip
        self.events: list[dict[str, Any]] = []
        for v in self.registry.shadows(ROLE):  # a restart: the candidate in shadow is retired
            self._move("retire", v, "restart: shadow period lost")
        if self.champion.version != FLAT:  # a restart with a champion: it is watched from the start
            self._new_monitor(self.champion.version)

    # ---- versions ---------------------------------------------------------------------------------
    def _book(self, version: str, shadow: bool = False) -> PaperBook:
        """A version's paper book. A shadow predicts through the interpreted forest: most candidates
        are retired after their week, and compiling each one (a C compiler run) cost more than its
        whole week of predictions; the champion that trades is compiled (the load-time self-check
        holds the two backends to the same outputs)."""
        from kaizen.engine.strategies.ensemble import load_signal_model

        backend = "interp" if shadow else "auto"
        model = None if version == FLAT else load_signal_model(self._dir(version), backend=backend)
        return PaperBook(version, model, self.horizon, self.costs, self.interval_ms)

    def _dir(self, version: str) -> Path:
        d = self.dirs.get(version)
        if d is None:  # a restart: materialize the registry's immutable files
            d = self.models_root / "registry" / version
            if not (d / "manifest.json").exists():
                d.mkdir(parents=True, exist_ok=True)
                for name in self.registry.version(version).files:
                    (d / name).write_bytes(self.registry.read(version, name))
            self.dirs[version] = d
        return d

    # ---- the clock ---------------------------------------------------------------------------------
    def on_clock(self, view: Any, t_ms: int) -> None:
        """Everything due at time t (a bar close): the gate on a candidate whose shadow period is
        over, then a retrain when one is due and no candidate is in shadow."""
        if self._job is not None and self._job.done():
            fut, self._job = self._job, None
            self._registered(*fut.result(), t_ms)
        if self.candidate is not None and t_ms - self.cand_since >= self.cand_look * self.shadow_ms:
            self._validate(t_ms)
        if t_ms >= self.next_retrain:
            self.next_retrain = t_ms - t_ms % self.retrain_ms + self.retrain_ms
            if self.candidate is None and self._job is None:
                self._retrain(view, t_ms)

    def _retrain(self, view: Any, t_ms: int) -> None:
        from kaizen.backtest.training import train_signal_model

        since = t_ms - int(self.cfg.backtest.train_window_days * DAY_MS)
        if self.change_ms is not None:
            if self.change_ms <= since:  # the rolling window has moved past the change
                self.change_ms = None
            elif t_ms - self.change_ms < self.lc.change_min_days * DAY_MS:
                return  # too little data since the change yet: nothing trained across it
            else:
                since = self.change_ms
        ds = view.dataset(until_ms=t_ms, since_ms=since)
        fut = self.executor.submit(
            self._train or train_signal_model, ds, self.cfg, self.costs, self.models_root
        )
        if self.blocking:
            self._registered(*fut.result(), t_ms)
        else:
            self._job = fut

    def _registered(self, mdir: Path, info: dict, t_ms: int) -> None:
        """A trained candidate: register it, log its Retrain record, start shadowing it."""
        self.trials += 1
        self.counts["retrains"] += 1
        files = {p.name: p for p in sorted(Path(mdir).iterdir()) if p.is_file()}
        d = info["data"]
        mv = self.registry.register(
            ROLE, files, data_start=int(d["start_ms"]) * 1_000_000, data_end=int(d["end_ms"]) * 1_000_000,
            data_hash=d["hash"], metrics={k: float(v) for k, v in info.get("edge", {}).items()
                                          if isinstance(v, int | float)},
            run_id=f"train-{info.get('version', '')}", kind="ensemble", ts=self.now_ns(),
            params={"window_days": float(self.cfg.backtest.train_window_days), "horizon_bars": self.horizon},
        )  # fmt: skip
        v = mv.version
        self.dirs[v] = Path(mdir)
        rec = R.Retrain(
            id=new_id(), ts=self.now_ns(), model=v, run_id=f"train-{info.get('version', '')}", role=ROLE,
            data_start=int(d["start_ms"]) * 1_000_000, data_end=int(d["end_ms"]) * 1_000_000,
            data_hash=d["hash"], metrics={k: float(x) for k, x in info.get("edge", {}).items()
                                          if isinstance(x, int | float)}, candidates=[v],
            parents=[self.change_parent] if self.change_ms is not None and self.change_parent else [],
        )  # fmt: skip
        self.lineage.append(rec)
        self.retrain_rec[v] = rec.id
        if v == self.champion.version or v in self.registry.retired(ROLE):
            return  # the same content again (no new data): nothing to shadow
        self._move("add_shadow", v, "nightly retrain: candidate in shadow", parents=[rec.id])
        self.candidate = self._book(v, shadow=True)
        self.cand_since = t_ms
        self.cand_look = 1
        self.window = {"champion": [], "candidate": []}

    def _validate(self, t_ms: int) -> None:
        cand = self.candidate
        champ = np.asarray(self.window["champion"], np.float64)
        cnd = np.asarray(self.window["candidate"], np.float64)
        res = self.gate.evaluate(
            champ, cnd, n_trials=max(self.trials, 1), role=ROLE, champion=self.champion.version,
            candidate=cand.version, expired=True, look=self.cand_look,
        )  # fmt: skip
        parents = [self.retrain_rec[cand.version]] if cand.version in self.retrain_rec else []
        cmp = comparison_record(res, ts=self.now_ns(), parents=parents)
        self.lineage.append(cmp)
        if res.decision == KEEP_WAITING:  # ahead of the champion, not yet significant: next look
            self.cand_look += 1
            return
        self.candidate = None
        if res.decision == PROMOTE:
            self._promote(cand.version, f"gate: {res.reason}", cmp.id, t_ms)
            return
        self._move("retire", cand.version, f"gate: {res.reason}", parents=[cmp.id])
        self.counts["retirements"] += 1
        self.events.append(self._event(t_ms, "retirement", cand.version, cand.version))
        # flat is always a candidate: a champion that loses to doing nothing goes flat
        if self.champion.version != FLAT and len(champ):
            flat = self.gate.evaluate(champ, np.zeros_like(champ), n_trials=max(self.trials, 1), role=ROLE,
                                      champion=self.champion.version, candidate=FLAT, final=True, expired=True)  # fmt: skip
            fcmp = comparison_record(flat, ts=self.now_ns())
            self.lineage.append(fcmp)
            if flat.decision == PROMOTE:
                self._promote(FLAT, f"gate: flat beats the champion: {flat.reason}", fcmp.id, t_ms)

    def _promote(self, version: str, reason: str, parent: int, t_ms: int) -> None:
        old = self.champion.version
        self._move("promote", version, reason, parents=[parent])
        self.champion = (
            self._book(version)
            if version != FLAT
            else PaperBook(FLAT, None, self.horizon, self.costs, self.interval_ms)
        )
        self.counts["promotions"] += 1
        self.events.append(self._event(t_ms, "promotion", old, version))
        self.lineage.append(R.ModelSwap(id=new_id(), ts=self.now_ns(), parents=[parent], role=ROLE, model=version,
                                        old=old, new=version, reason=reason[:300]))  # fmt: skip
        self._new_monitor(version)
        self.pending.clear()

    def _new_monitor(self, version: str) -> None:
        from kaizen.loop.drift import DriftMonitor, clipped_reference

        if version == FLAT:
            self.monitor = None
            return
        lc = self.lc
        oof = np.load(self._dir(version) / "oof.npz")
        order = np.argsort(oof["t"], kind="stable")
        ref = None
        # in vol units when the model kept its rows' vol (an older model directory: in returns)
        self.pnl_vol = "vol" in oof.files
        if "pnl" in lc.drift_channels and "gross" in oof.files:
            ref = pnl_reference(self.champion.model.edge, oof["p"][order], oof["gross"][order], self.costs.round_trip,
                                lc.drift_clip, oof["vol"][order] if self.pnl_vol else None)  # fmt: skip
        resid: dict[str, np.ndarray] = {}
        ks: dict[str, float] = {}
        refs: dict[str, tuple[float, float]] = {}
        rates: dict[str, float] = {}
        # calibration when configured, and as the fallback when the PnL channel has no reference
        # (an old model directory, or no edge): a champion is always watched
        if "calibration" in lc.drift_channels or ref is None:
            exp_, real_ = self.drift_pair(oof["p"], oof["y"])
            resid["calibration"] = r = (real_ - exp_)[order]
            ok = r[np.isfinite(r)]
            if len(ok) >= 200 and np.std(ok) > 0:
                # referenced to the out-of-fold residuals like the PnL channel, not to a live warm-up:
                # 200 live decisions are two days of four symbols that move together, and a warm-up
                # taken in one trend made the channel alarm when the next one came (seed 303, 0.12)
                refs["calibration"] = clipped_reference(ok, lc.drift_clip)
        if ref is not None:
            resid["pnl"], ks["pnl"], refs["pnl"] = ref
            rates["pnl"] = len(resid["pnl"]) / max(len(order), 1)  # it sees the traded decisions only
        if lc.drift_threshold is not None:
            self.monitor = DriftMonitor.from_config(ROLE, lc, channels=dict.fromkeys(resid, lc.drift_sides),
                                                    model=version, ks=ks, references=refs)  # fmt: skip
            return
        try:
            self.monitor, cals = DriftMonitor.calibrated(
                ROLE, resid, arl0=lc.drift_arl0, k=lc.drift_k, warmup=lc.drift_warmup, clip=lc.drift_clip,
                streams=300, model=version, ks=ks, references=refs, rates=rates,
                sides=dict.fromkeys(resid, lc.drift_sides), skip_failed=True,
            )  # fmt: skip
        except RuntimeError:  # trading goes on; the log and the summary's count say it is unwatched
            self.counts["drift_channels_uncalibrated"] += len(resid)
            log.error("no drift channel of %s reaches ARL0 %g: the champion is not watched for drift", version,
                      lc.drift_arl0)  # fmt: skip
            self.monitor = None
            return
        for name in resid.keys() - cals.keys():  # no threshold reached ARL0: that channel cannot be trusted
            self.counts["drift_channels_uncalibrated"] += 1
            log.warning("drift channel %s of %s: no threshold reaches ARL0 %g; not watched", name, version,
                        lc.drift_arl0)  # fmt: skip

    # ---- per bar ------------------------------------------------------------------------------------
    def decide(self, ctx: BarContext, name: str) -> Target:
        """The champion's target for this symbol (flat when the champion is flat); shadows predict
        and log; paired per-decision returns accumulate for the gate; drift is checked."""
        role = f"{ctx.symbol}/{ROLE}"
        side, p, e, reward = self.champion.step(ctx)
        recs: list[Any] = []
        if self.candidate is not None:
            cs, cp, ce, creward = self.candidate.step(ctx)
            recs.append(R.Prediction(id=new_id(), ts=ctx.ts_ns, symbol=ctx.symbol, model=self.candidate.version,
                                     role=role, value=float(cp) if math.isfinite(cp) else 0.0, shadow=True))  # fmt: skip
            if math.isfinite(reward) and math.isfinite(creward):
                self.window["champion"].append(reward)
                self.window["candidate"].append(creward)
        recs.extend(self._drift(ctx, p, e))
        ctx.signal_edge = e
        version = self.champion.version
        if version == FLAT:
            return Target(
                exposure=0.0, reason="champion_flat", value=0.0, model=f"{name}:flat", role=role, records=recs
            )
        return Target(exposure=float(side), reason="champion", value=p if math.isfinite(p) else 0.0, edge=e,
                      model=f"{name}:{version}", role=role, records=recs)  # fmt: skip

    def _drift(self, ctx: BarContext, p: float, e: float) -> list[Any]:
        """The champion's call at this bar (probability p, expected return e), judged `horizon` bars
        later: calibration (did a long's net forward return, taker fees in and out and funding,
        come out > 0?) and PnL (on a trade the rule's entry test takes, the gross return in its
        direction, against what its out-of-fold trades realized)."""
        if self.monitor is None:
            return []
        q = self.pending.setdefault(ctx.symbol, deque())
        fr = ctx.funding_rate if math.isfinite(ctx.funding_rate) else 0.0
        q.append((p, e, ctx.close, fr, ctx.vol))  # e: the champion's expected return at p (PaperBook.step)
        if len(q) <= self.horizon:
            return []
        p0, e0, c0, f0, v0 = q.popleft()
        if not (math.isfinite(p0) and c0 > 0):
            return []
        gross = math.log(ctx.close / c0)
        alarm = None
        chans = self.monitor.channels
        if "calibration" in chans:
            net = gross - 2 * self.cfg.fees.taker - f0 * self.horizon * self.interval_ms / 3.6e6 / 8
            exp_, real_ = self.drift_pair(p0, 1.0 if net > 0 else 0.0)
            alarm = self.monitor.update(float(exp_), float(real_), ts=ctx.ts_ns, symbol=ctx.symbol,
                                        channel="calibration")  # fmt: skip
        unit = (v0 if math.isfinite(v0) and v0 > 0 else math.nan) if self.pnl_vol else 1.0
        if alarm is None and "pnl" in chans and abs(e0) > self.costs.round_trip and math.isfinite(unit):
            side = 1.0 if e0 > 0 else -1.0  # the trade the rule's entry test takes (pnl_reference)
            # against the out-of-fold trades' realized edge (the channel's reference mean), in vol units
            alarm = self.monitor.update(0.0, side * gross / unit, ts=ctx.ts_ns, symbol=ctx.symbol, channel="pnl")
        if alarm is None:
            return []
        self.counts["drift_alarms"] += 1
        t_ms = ctx.ts_ns // 1_000_000
        self.events.append(self._event(t_ms, "drift_alarm", self.champion.version, self.champion.version))
        out = [alarm]
        lkg = self.registry.last_known_good(ROLE)
        if lkg and lkg != self.champion.version:
            old = self.champion.version
            rb = R.Rollback(id=new_id(), ts=ctx.ts_ns, parents=[alarm.id], role=ROLE, model=lkg, from_version=old,
                            to_version=lkg, reason=alarm.detail[:300])  # fmt: skip
            out.append(rb)
            self.lineage.append(alarm)
            self.lineage.append(rb)
            self.registry.rollback(
                ROLE, reason=f"drift alarm: {alarm.detail}"[:300], ts=ctx.ts_ns, parents=[rb.id]
            )
            self.champion = self._book(self.registry.champion(ROLE))
            self.counts["rollbacks"] += 1
            self.events.append(self._event(t_ms, "rollback", old, self.champion.version))
            self._new_monitor(self.champion.version)
            self.pending.clear()
            cp = alarm.stats.get("change_ms", math.nan)
            if self.lc.retrain_from_change and math.isfinite(cp):
                self.change_ms, self.change_parent = int(cp), alarm.id
                self.next_retrain = t_ms  # due at the next clock, once there is data enough since cp
                if self.candidate is not None:  # trained across the change: not worth a shadow period
                    self._move("retire", self.candidate.version, "drift alarm: trained across the change point",
                               parents=[rb.id])  # fmt: skip
                    self.counts["retirements"] += 1
                    self.events.append(self._event(t_ms, "retirement", self.candidate.version, self.candidate.version))
                    self.candidate = None
            elif self.candidate is not None:  # its pairing was against the champion that failed:
                self.window = {"champion": [], "candidate": []}  # a new evaluation from here
                self.cand_since, self.cand_look = t_ms, 1
            return []
        return out

    @staticmethod
    def drift_pair(p: Any, y: Any) -> tuple[Any, Any]:
        """(expected, realized) the calibration channel compares, from the probability of a
        profitable long and its outcome (scalars or arrays; the same map calibrates the threshold on
        the out-of-fold predictions): `lean_pair`. A subclass may watch another channel."""
        return lean_pair(p, y)

    # ---- helpers -------------------------------------------------------------------------------------
    def _move(self, action: str, version: str, reason: str, parents: list[int] | None = None) -> None:
        getattr(self.registry, action)(
            ROLE, version, reason=reason[:300], ts=self.now_ns(), parents=parents or []
        )

    def _event(self, t_ms: int, kind: str, frm: str, to: str) -> dict[str, Any]:
        import datetime as dt

        ts = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"ts": ts, "kind": kind, "role": ROLE, "from": frm, "to": to}

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class LoopStrategy:
    """The `kaizen` strategy: the improvement loop's champion trades (Strategy protocol); the
    driver (or the live runner) calls `on_clock` at every bar close."""

    def __init__(self, loop: ImprovementLoop, name: str = "kaizen") -> None:
        self.loop = loop
        self.name = name
        self.version = f"{name}@loop"

    def on_clock(self, view: Any, t_ms: int) -> None:
        self.loop.on_clock(view, t_ms)

    def decide(self, ctx: BarContext) -> Target:
        return self.loop.decide(ctx, self.name)


__all__ = ["ImprovementLoop", "LoopStrategy", "PaperBook", "ROLE", "KEEP_WAITING"]
