"""Drift detector: is the live model still doing what it said it would?

Each live decision gives, per channel, what the model expected and what happened: the predicted
probability p and the outcome y in {0, 1} (calibration; the hit rate is the same with p = the
model's stated hit probability and y = 1 on a hit), or the expected and realized net PnL in
volatility units. The residual r = (realized - expected) / scale (scale: e.g. sqrt(p (1 - p)) or 1)
is standardized with a warm-up estimate -- z = (r - mean) / sd over the first `warmup` decisions
after a (re)start -- clipped to +-`clip` (one flash crash must not decide alone), and fed to a
two-sided CUSUM (Page 1954):

    S+ = max(0, S+ + z - k),   S- = max(0, S- - z - k),   alarm when S+ > h or S- > h.

`k` = 0.5 is tuned to detect a shift of 2k = 1 warm-up sd fastest. The threshold `h` is not
guessed: `calibrate` finds it by simulation so that the mean run length between false alarms on
stationary data is the configured ARL0 (decisions after the warm-up), including the error of the
warm-up estimate itself; on real residuals, simulate a stationary bootstrap of them (keeps their
fat tails and autocorrelation). With C channels per role, each gets ARL0 x C, so the role's false
alarm rate stays at or below 1 / ARL0.

Why not river: its PageHinkley tracks a running mean since the last reset (no frozen warm-up
reference) and its threshold is in raw units; ADWIN's false-alarm control is a confidence delta,
not a run length; and calibration needs ~10^8 detector updates, which a per-object detector
(~2 us per update in river 0.26, measured here) makes minutes, while the vectorised CUSUM below
runs all streams at once. The live monitor iterates `cusum_step`; the simulator computes the same
recurrence for whole blocks in closed form (`_reflected`, Lindley's identity); a test checks the
two alarm for alarm on the same residuals.

Calibration (bench/drift_calibration.py; k 0.5, warm-up 200, clip 4, two-sided; threshold from
seed 1, ARL measured on fresh streams; shared 2-core box):

    residuals                ARL0     h      ARL measured   P(no alarm in 720)  delay 1 sd  0.5 sd
    iid Gaussian             2,000   6.51    1,959 +- 63         0.624              13.5     64.9
    iid Gaussian            20,000   8.89   19,631 +- 639        0.934              18.5    120.3
    BTC 1h (y - p), 4h      20,000  16.32   20,992 +- 769        0.909              33.2
    BTC 1h 4h-return / vol  20,000  45.13   21,670 +- 820        0.899             160.8
    always fires                 -      -        1               0                   1        1
    never fires                  -      -      inf               1                 inf      inf

The Gaussian threshold (8.89) on the real residuals gives an ARL of only 501 and 129 decisions:
overlapping 4-bar outcomes make residuals autocorrelated (lag-1 0.49 and 0.76), so real thresholds
must come from `DriftMonitor.calibrated` (a stationary bootstrap of the model's own residuals).
P(no alarm in N) is below exp(-N / ARL0) (0.934 vs 0.965 at ARL0 20,000): the warm-up estimate makes
run lengths a mixture, so early false alarms are likelier than a geometric law says.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import msgspec
import numpy as np

from kaizen.lineage.ids import new_id
from kaizen.lineage.records import DriftAlarm

Sides = Literal["both", "upper", "lower"]


def cusum_step(sp, sn, z, k: float):
    """One CUSUM update, for floats or arrays."""
    return np.maximum(0.0, sp + z - k), np.maximum(0.0, sn - z - k)


def cusum_stat(sp, sn, sides: Sides):
    if sides == "upper":
        return sp
    if sides == "lower":
        return sn
    return np.maximum(sp, sn)


def standardize(r, mean, sd, clip: float):
    return np.clip((r - mean) / sd, -clip, clip)


def clipped_reference(r: np.ndarray, clip: float) -> tuple[float, float]:
    """(location, sd) of residuals `r` such that the clipped standardized values the CUSUM sees have
    mean 0: Huber's location estimate with the cut at `clip` sds. The plain mean is wrong once the
    residuals are skewed (a trade's return has a long tail on one side): clipping then shifts the mean
    of z, and the CUSUM on the other side drifts towards a false alarm; no threshold then reaches a
    long ARL0 on the bootstrap of the same residuals (seed 505 at strength 0.24 before this)."""
    x = np.asarray(r, np.float64)
    x = x[np.isfinite(x)]
    sd = float(np.std(x)) if len(x) else 0.0
    if not sd > 0:
        return (float(np.mean(x)) if len(x) else 0.0), sd
    lo, hi = float(np.min(x)), float(np.max(x))  # mean(clip((x - m) / sd)) falls in m: bisect
    for _ in range(60):
        m = 0.5 * (lo + hi)
        if float(np.mean(np.clip((x - m) / sd, -clip, clip))) > 0:
            lo = m
        else:
            hi = m
    return 0.5 * (lo + hi), sd


def warmup_estimate(r: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd ddof 1) of the warm-up residuals; sd floored so a constant warm-up cannot divide
    by zero."""
    mean = np.mean(r, axis=axis)
    sd = np.std(r, axis=axis, ddof=1)
    return mean, np.maximum(sd, 1e-12)


def siegmund_arl(h: float, k: float, sides: Sides = "both") -> float:
    """Siegmund's approximation of a CUSUM's in-control ARL for N(0, 1) data with known parameters
    (a starting point for the simulation; the warm-up estimate makes the real ARL differ)."""
    b = h + 1.166
    one = (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k) if k > 0 else b * b
    return one / 2 if sides == "both" else one


# --- stream generators for the simulation -----------------------------------------------------------
class Sampler:
    """Draws residuals for many parallel streams, `draw(rng, steps, streams) -> steps x streams`."""

    def draw(self, rng: np.random.Generator, steps: int, streams: int) -> np.ndarray:
        return rng.standard_normal((steps, streams))

    def scale(self) -> float:
        return 1.0


class StationaryBootstrapSampler(Sampler):
    """Politis-Romano stationary bootstrap of a residual series for many streams at once: each
    stream continues its current block with probability 1 - 1/block, else jumps to a random start
    (wrapping circularly). Keeps the series' marginal law (fat tails) and short-range dependence.
    Mean block length defaults to the Politis-White optimum (kaizen.stats.optimal_block)."""

    def __init__(self, residuals: np.ndarray, block: float | None = None) -> None:
        from kaizen.stats import optimal_block

        self.x = np.asarray(residuals, np.float64)
        self.x = self.x[np.isfinite(self.x)]
        if len(self.x) < 50:
            raise ValueError("stationary bootstrap needs at least 50 finite residuals")
        self.block = optimal_block(self.x) if block is None else max(1.0, float(block))
        self._pos: np.ndarray | None = None

    def draw(self, rng: np.random.Generator, steps: int, streams: int) -> np.ndarray:
        n = len(self.x)
        if self._pos is None or len(self._pos) != streams:
            self._pos = rng.integers(0, n, streams)
        jump = rng.random((steps, streams)) < 1.0 / self.block
        starts = rng.integers(0, n, (steps, streams))
        out = np.empty((steps, streams))
        pos = self._pos
        for t in range(steps):
            pos = np.where(jump[t], starts[t], (pos + 1) % n)
            out[t] = self.x[pos]
        self._pos = pos
        return out

    def scale(self) -> float:
        return float(np.std(self.x, ddof=1))


def _reflected(x: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """The CUSUM recurrence S_t = max(0, S_{t-1} + x_t) for a whole steps x streams block at once,
    from S_0 = s0, by Lindley's identity S_t = C_t - min(-S_0, min_{s<=t} C_s), C = cumsum(x).
    Equal to iterating `cusum_step` (tests/loop/test_drift.py checks it against the live monitor)."""
    c = np.cumsum(x, axis=0)
    return c - np.minimum(-s0, np.minimum.accumulate(c, axis=0))


def simulate_run_lengths(
    thresholds: Sequence[float],
    *,
    k: float = 0.5,
    warmup: int = 200,
    clip: float = 4.0,
    sides: Sides = "both",
    streams: int = 1000,
    horizon: int = 20_000,
    seed: int = 0,
    sampler: Sampler | None = None,
    shift: float = 0.0,
    shift_at: int = 0,
    chunk: int = 1024,
    reference: tuple[float, float] | None = None,
) -> np.ndarray:
    """Run lengths of the monitor's CUSUM on `streams` simulated streams, for every threshold at
    once (the first-passage times of one path over each level). Returns streams x len(thresholds):
    the number of post-warm-up decisions up to and including the first alarm, or horizon + 1 when
    none came (censored). `shift` (in sds of the sampler's residuals) is added to every residual
    from post-warm-up decision `shift_at` on: the change to detect. Each stream draws its own
    warm-up and standardizes with it, as the live monitor does; with `reference` (mean, sd) every
    stream standardizes with that fixed pair instead (a channel referenced to the model's own
    out-of-fold residuals: no warm-up)."""
    sampler = sampler or Sampler()
    rng = np.random.default_rng(seed)
    h = np.sort(np.asarray(thresholds, np.float64))
    g = len(h)
    if reference is None:
        mean, sd = warmup_estimate(sampler.draw(rng, warmup, streams))
    else:
        mean, sd = np.full(streams, float(reference[0])), np.full(streams, float(reference[1]))
    delta = shift * sampler.scale()
    sp = np.zeros(streams)
    sn = np.zeros(streams)
    peak = np.full(streams, -1.0)  # running max of the statistic so far
    rl = np.full((streams, g), horizon + 1, np.int64)
    live = np.arange(streams)  # streams that have not crossed every threshold yet
    t = 0
    while t < horizon and len(live):
        steps = min(chunk, horizon - t)
        r = sampler.draw(rng, steps, streams)[:, live]
        if delta:
            r[max(0, shift_at - t) :] += delta
        z = standardize(r, mean[live], sd[live], clip)
        up = _reflected(z - k, sp[live])
        dn = _reflected(-z - k, sn[live])
        stat = cusum_stat(up, dn, sides)
        sp[live], sn[live] = up[-1], dn[-1]
        run = np.maximum(np.maximum.accumulate(stat, axis=0), peak[live][None, :])
        peak[live] = run[-1]
        crossed = np.sum(rl[live] <= horizon, axis=1)  # < g for every live stream
        for i in np.flatnonzero(run[-1] > h[crossed]):
            s = live[i]
            todo = rl[s] > horizon
            # first index where the running max exceeds each level not crossed before this block
            first = np.searchsorted(run[:, i], h[todo], side="right")
            inside = first < steps
            idx = np.flatnonzero(todo)[inside]
            rl[s, idx] = t + first[inside] + 1
        t += steps
        live = live[rl[live, -1] > horizon]
    return rl


def arl_estimate(rl: np.ndarray, horizon: int) -> tuple[float, float, int]:
    """(ARL, its standard error, alarms) from possibly censored run lengths: total exposure over
    the number of alarms -- the reciprocal of the pooled false-alarm rate per decision, which is
    the mean run length between false alarms of a monitor that restarts after each alarm."""
    alarms = int(np.sum(rl <= horizon))
    exposure = float(np.sum(np.minimum(rl, horizon)))
    if alarms == 0:
        return math.inf, math.inf, 0
    arl = exposure / alarms
    return arl, arl / math.sqrt(alarms), alarms


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """Threshold h found for a target ARL0, and what was measured at it."""

    arl0: float  # target mean run length between false alarms (post-warm-up decisions)
    threshold: float
    arl_measured: float
    arl_se: float
    false_alarm_rate: float  # per decision, = 1 / arl_measured
    k: float
    warmup: int
    clip: float
    sides: str
    streams: int
    horizon: int
    source: str  # "gaussian" | "bootstrap(block=...)"
    seed: int


def calibrate(
    arl0: float,
    *,
    k: float = 0.5,
    warmup: int = 200,
    clip: float = 4.0,
    sides: Sides = "both",
    residuals: np.ndarray | None = None,
    block: float | None = None,
    streams: int = 1000,
    seed: int = 0,
    grid: int = 81,
    validate: bool = True,
    reference: tuple[float, float] | None = None,
) -> Calibration:
    """Find the CUSUM threshold whose mean run length between false alarms on stationary data is
    `arl0`, by simulation: iid N(0, 1) residuals, or a stationary bootstrap of `residuals` (real
    ones). One simulation gives the run length at every threshold of a grid around Siegmund's
    approximation (common random numbers, so ARL(h) is monotone); log ARL is interpolated at
    log arl0. Streams are censored at 4 x arl0. With `validate`, the ARL at the threshold found is
    then measured on fresh streams (seed + 1): `arl_measured` is an independent check, not the
    fit; without it, `arl_measured` is read off the grid point nearest the threshold."""
    if not arl0 > 1 or warmup < 10 or clip <= 0 or k < 0:
        raise ValueError("calibrate: arl0 > 1, warmup >= 10, clip > 0 and k >= 0 are required")
    sampler: Sampler = Sampler() if residuals is None else StationaryBootstrapSampler(residuals, block)
    h0 = _solve(lambda h: siegmund_arl(h, k, sides), arl0)
    lo, hi = max(0.1, h0 - 2.0), h0 + 2.5
    horizon = int(math.ceil(4 * arl0))
    for _ in range(10):  # dependent or fat-tailed residuals can need a much higher h than Siegmund's
        hs = np.linspace(lo, hi, grid)
        rl = simulate_run_lengths(
            hs,
            k=k,
            warmup=warmup,
            clip=clip,
            sides=sides,
            streams=streams,
            horizon=horizon,
            seed=seed,
            sampler=sampler if residuals is None else StationaryBootstrapSampler(residuals, block),
            reference=reference,
        )
        # no alarm in any stream: ARL beyond anything measured, i.e. above arl0 (horizon 4 x arl0)
        arls = np.array([arl_estimate(rl[:, j], horizon)[0] for j in range(len(hs))])
        la = np.maximum.accumulate(np.log(arls))
        if la[0] > math.log(arl0):
            lo, hi = max(0.05, lo - (hi - lo)), lo
        elif la[-1] < math.log(arl0):
            lo, hi = hi, hi + 2 * (hi - lo)
        else:
            break
    else:
        raise RuntimeError(f"calibrate: no threshold in {lo:.2f}..{hi:.2f} reaches ARL0 {arl0}")
    j = int(np.searchsorted(la, math.log(arl0)))  # the first grid point at or above arl0
    if j > 0 and math.isfinite(la[j]):
        h = float(np.interp(math.log(arl0), la[j - 1 : j + 1], hs[j - 1 : j + 1]))
    else:  # measured ARL jumps from below arl0 to no alarm at all: the grid point, not below it
        h = float(hs[j])
    if validate:
        sampler = Sampler() if residuals is None else StationaryBootstrapSampler(residuals, block)
        rl = simulate_run_lengths(
            [h],
            k=k,
            warmup=warmup,
            clip=clip,
            sides=sides,
            streams=streams,
            horizon=horizon,
            seed=seed + 1,
            sampler=sampler,
            reference=reference,
        )
        arl, se, _ = arl_estimate(rl[:, 0], horizon)
    else:
        j = min(int(np.searchsorted(hs, h)), len(hs) - 1)
        arl, se, _ = arl_estimate(rl[:, j], horizon)
    src = "gaussian" if residuals is None else f"bootstrap(block={sampler.block:.1f})"
    return Calibration(
        arl0=float(arl0),
        threshold=h,
        arl_measured=arl,
        arl_se=se,
        false_alarm_rate=1.0 / arl,
        k=k,
        warmup=warmup,
        clip=clip,
        sides=sides,
        streams=streams,
        horizon=horizon,
        source=src,
        seed=seed,
    )


def _solve(f: Callable[[float], float], target: float) -> float:
    lo, hi = 0.0, 1.0
    while f(hi) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


@functools.lru_cache(maxsize=32)
def gaussian_threshold(arl0: float, k: float, warmup: int, clip: float, sides: Sides) -> float:
    """Calibrated threshold for Gaussian residuals (seeded, cached per process)."""
    return calibrate(
        arl0, k=k, warmup=warmup, clip=clip, sides=sides, seed=20_240_601, validate=False
    ).threshold


# --- the live monitor -------------------------------------------------------------------------------
class _Channel:
    __slots__ = ("name", "sides", "h", "k", "reference", "warm", "mean", "sd", "sp", "sn", "n", "ready", "zero_up",
                 "zero_dn")  # fmt: skip

    def __init__(
        self, name: str, sides: Sides, h: float, k: float, reference: tuple[float, float] | None = None
    ) -> None:
        self.name, self.sides, self.h, self.k, self.reference = name, sides, h, k, reference
        self.clear()

    def clear(self) -> None:
        self.warm: list[float] = []
        self.mean = 0.0
        self.sd = 1.0
        self.sp = 0.0
        self.sn = 0.0
        self.n = 0  # decisions since the reset, warm-up included
        self.ready = False
        # ts of the last update that left each side's CUSUM at 0: on an alarm, the maximum-likelihood
        # estimate of when the change began (the CUSUM's change point; None before any update)
        self.zero_up: int | None = None
        self.zero_dn: int | None = None
        if self.reference is not None:  # referenced to the model's own out-of-fold residuals
            self.mean, self.sd = self.reference
            self.ready = True


class DriftMonitor:
    """Per role: one CUSUM per channel on standardized residuals; `update` returns a DriftAlarm
    lineage record on an alarm (and restarts that channel's CUSUM, keeping its warm-up estimate),
    else None. `reset` after a rollback or promotion starts a new warm-up for the new model.

    `channels`: name -> sides ("both", "upper": realized above expected, "lower": below). The
    threshold per channel comes from `thresholds` if given, else `gaussian_threshold` at
    ARL0 x number of channels (pass thresholds calibrated on real residuals when you have them)."""

    def __init__(
        self,
        role: str,
        *,
        arl0: float = 20_000.0,
        k: float = 0.5,
        warmup: int = 200,
        clip: float = 4.0,
        channels: Mapping[str, Sides] | None = None,
        thresholds: Mapping[str, float] | None = None,
        model: str = "",
        ks: Mapping[str, float] | None = None,
        references: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        """`ks`: a channel's own CUSUM k (default `k`); `references`: a channel's fixed (mean, sd)
        standardization (the model's out-of-fold residuals) in place of a live warm-up."""
        channels = dict(channels or {"calibration": "both"})
        if not channels:
            raise ValueError("DriftMonitor needs at least one channel")
        self.role, self.arl0, self.k, self.warmup, self.clip = (
            role,
            float(arl0),
            float(k),
            int(warmup),
            float(clip),
        )
        self.model = model
        per = self.arl0 * len(channels)
        self.channels: dict[str, _Channel] = {}
        for name, sides in channels.items():
            if sides not in ("both", "upper", "lower"):
                raise ValueError(f"channel {name}: sides must be both, upper or lower, not {sides!r}")
            kc = float((ks or {}).get(name, self.k))
            ref = (references or {}).get(name)
            h = (thresholds or {}).get(name)
            if h is None:
                h = gaussian_threshold(per, kc, self.warmup, self.clip, sides)
            self.channels[name] = _Channel(name, sides, float(h), kc, ref)

    @classmethod
    def from_config(cls, role: str, loop, **kw) -> DriftMonitor:
        """From a kaizen.config.LoopConfig: drift_arl0, drift_k, drift_warmup, drift_clip and, when
        set, drift_threshold (used for every channel instead of calibrating)."""
        channels = kw.pop("channels", None) or {"calibration": "both"}
        thresholds = kw.pop("thresholds", None)
        if thresholds is None and loop.drift_threshold is not None:
            thresholds = {c: loop.drift_threshold for c in channels}
        return cls(
            role,
            arl0=loop.drift_arl0,
            k=loop.drift_k,
            warmup=loop.drift_warmup,
            clip=loop.drift_clip,
            channels=channels,
            thresholds=thresholds,
            **kw,
        )

    @classmethod
    def calibrated(
        cls,
        role: str,
        residuals: Mapping[str, np.ndarray],
        *,
        arl0: float = 20_000.0,
        k: float = 0.5,
        warmup: int = 200,
        clip: float = 4.0,
        sides: Mapping[str, Sides] | None = None,
        streams: int = 1000,
        seed: int = 0,
        model: str = "",
        ks: Mapping[str, float] | None = None,
        references: Mapping[str, tuple[float, float]] | None = None,
        rates: Mapping[str, float] | None = None,
        skip_failed: bool = False,
    ) -> tuple[DriftMonitor, dict[str, Calibration]]:
        """A monitor whose per-channel thresholds are calibrated on a stationary bootstrap of real
        residuals r = (realized - expected) / scale of the model (e.g. from its out-of-fold
        predictions), at ARL0 x number of channels each. Overlapping outcomes make residuals
        autocorrelated, and a Gaussian threshold then false-alarms many times more often than its
        ARL0 says (tests/loop/test_drift.py); this is the calibration to use in production.

        `rates`: the share of the role's decisions a channel sees (default 1); ARL0 counts the
        role's decisions, so a channel fed on one decision in four gets a quarter of the run length
        in its own updates, the same false-alarm rate in time.

        `skip_failed`: a channel for which no threshold reaches its ARL0 (RuntimeError from
        `calibrate`) is left out of the monitor and of the returned calibrations instead of raising
        (the caller reports it); RuntimeError still when no channel is left."""
        sides = dict(sides or {})
        per = float(arl0) * len(residuals)
        cals: dict[str, Calibration] = {}
        for i, (name, r) in enumerate(residuals.items()):
            try:
                cals[name] = calibrate(
                    max(per * float((rates or {}).get(name, 1.0)), 50.0),
                    k=float((ks or {}).get(name, k)),
                    warmup=warmup,
                    clip=clip,
                    sides=sides.get(name, "both"),
                    residuals=np.asarray(r),
                    streams=streams,
                    seed=seed + i,
                    reference=(references or {}).get(name),
                )
            except RuntimeError:
                if not skip_failed:
                    raise
        if not cals:
            raise RuntimeError(f"calibrate: no channel of {sorted(residuals)} reaches its ARL0")
        mon = cls(
            role,
            arl0=arl0,
            k=k,
            warmup=warmup,
            clip=clip,
            channels={name: sides.get(name, "both") for name in cals},
            thresholds={name: c.threshold for name, c in cals.items()},
            model=model,
            ks=ks,
            references=references,
        )
        return mon, cals

    def threshold(self, channel: str) -> float:
        return self.channels[channel].h

    def reset(self, model: str | None = None) -> None:
        """Forget everything (new warm-up on every channel), e.g. after a rollback; `model` names
        the version now monitored."""
        if model is not None:
            self.model = model
        for ch in self.channels.values():
            ch.clear()

    def update(
        self,
        expected: float,
        realized: float,
        *,
        ts: int,
        channel: str | None = None,
        scale: float = 1.0,
        parents: Sequence[int] = (),
        symbol: str = "",
    ) -> DriftAlarm | None:
        """Feed one decision's (expected, realized) pair on `channel` (optional with one channel).
        Non-finite input or scale <= 0 is ignored (counted in no statistic) and returns None."""
        if channel is None:
            if len(self.channels) != 1:
                raise ValueError(f"DriftMonitor({self.role}): name the channel ({', '.join(self.channels)})")
            ch = next(iter(self.channels.values()))
        else:
            ch = self.channels[channel]
        if not (math.isfinite(expected) and math.isfinite(realized) and math.isfinite(scale) and scale > 0):
            return None
        r = (realized - expected) / scale
        ch.n += 1
        if not ch.ready:
            ch.warm.append(r)
            if len(ch.warm) >= self.warmup:
                m, s = warmup_estimate(np.asarray(ch.warm))
                ch.mean, ch.sd, ch.ready = float(m), float(s), True
                ch.warm = []
            return None
        z = float(standardize(r, ch.mean, ch.sd, self.clip))
        sp, sn = cusum_step(ch.sp, ch.sn, z, ch.k)
        ch.sp, ch.sn = float(sp), float(sn)
        if ch.zero_up is None or ch.sp == 0.0:
            ch.zero_up = int(ts)
        if ch.zero_dn is None or ch.sn == 0.0:
            ch.zero_dn = int(ts)
        stat = float(cusum_stat(ch.sp, ch.sn, ch.sides))
        if stat <= ch.h:
            return None
        up = ch.sp >= ch.sn if ch.sides == "both" else ch.sides == "upper"
        direction = "up" if up else "down"
        rec = DriftAlarm(
            id=new_id(),
            ts=int(ts),
            parents=list(parents),
            model=self.model,
            symbol=symbol,
            role=self.role,
            statistic=stat,
            threshold=ch.h,
            detail=(
                f"{ch.name}: realized {'above' if up else 'below'} expected; CUSUM {stat:.2f} > {ch.h:.2f} "
                f"after {ch.n - (0 if ch.reference is not None else self.warmup)} decisions past warm-up "
                f"(ARL0 {self.arl0:.0f})"
            ),
            channel=ch.name,
            direction=direction,
            n=ch.n,
            arl0=self.arl0,
            stats={
                "warmup_mean": ch.mean,
                "warmup_sd": ch.sd,
                "k": ch.k,
                "warmup": 0.0 if ch.reference is not None else float(self.warmup),
                "last_z": z,
                # the change point: the last decision before the climb to the alarm (ms, as stats are
                # floats; ts is in ns)
                "change_ms": float((ch.zero_up if up else ch.zero_dn) // 1_000_000),
            },
        )
        ch.sp = ch.sn = 0.0  # restart the CUSUM, keep the warm-up reference
        return rec
