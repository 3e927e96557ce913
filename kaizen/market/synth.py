"""A synthetic market with planted truth, in the Binance archive layout every command reads.

    from kaizen.market.synth import SynthParams, generate, write_archive
    ds, truth = generate(SynthParams(seed=1, days=365, interval="1h", break_day=200))
    write_archive(ds, truth, "data/synth-1")

The prices come from the simulator's market model (kaizen.venue.sim.model.MarketModel, the Cython
kernel kaizen.ext.marketmodel) run in batch: `substep_s` steps inside each bar, the mark's
open/high/low/close recorded per bar. Last-trade klines print at the touch around the mark (half a
spread away, rounded to the tick); funding settles every 8 h from the time-averaged premium with
Binance's clamp (kaizen.venue.sim.market.funding_rate). Volume is lognormal, higher with the
bar's absolute return and the regime's volatility (the live simulator's volume comes from its
own book instead).

Truth beside the data: DIR/truth/regimes.csv (time = bar open ms, symbol, regime in force at the
bar's close) and DIR/truth/signal.json (every model parameter, the planted signal's regime mapping
before and after the break, the break time, and the planted edge per symbol and regime against a
taker's round trip). Same seed, same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from kaizen.errors import DataError
from kaizen.market.data import (
    FUNDING_HEADER,
    KLINE_HEADER,
    Dataset,
    Klines,
    SymbolData,
    interval_ms,
)
from kaizen.venue.sim.model import REGIMES, MarketModel

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FUNDING_MS = 8 * 3_600_000
# Volume per hour in base units at the low-vol regime's typical bar (orders of magnitude of 2024).
BASE_VOLUME_H = {"BTCUSDT": 9_000.0, "ETHUSDT": 120_000.0, "SOLUSDT": 1_500_000.0, "BNBUSDT": 40_000.0}
# The trader the planted edge is measured against: taker fee per side + half spread + slippage.
TAKER_FEE = 0.0005
SPREAD_SLIPPAGE = 0.00015
HOLD_H = 4.0


class SynthParams(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    days: float = 365.0
    interval: str = "1h"
    break_day: float | None = None
    symbols: tuple[str, ...] | list[str] = SYMBOLS
    start_ms: int = START_MS
    substep_s: float | None = None  # default: min(60 s, interval / 6)
    model: MarketModel | None = None  # default: MarketModel.synth(break_day)

    def resolved_model(self) -> MarketModel:
        if self.model is None:
            return MarketModel.synth(self.break_day)
        if self.break_day is None:
            return self.model
        return msgspec.structs.replace(self.model, break_h=24.0 * self.break_day)


@dataclass
class SynthDataset(Dataset):
    """A Dataset plus what the archive holds beyond it (mark OHLC, funding settlements)."""

    mark_ohlc: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    settlements: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    decimals: dict[str, tuple[int, int]] = field(default_factory=dict)  # klines, mark klines


@dataclass
class Truth:
    """What was planted, per symbol, aligned with the dataset's bars."""

    open_time: np.ndarray  # int64 ms, shared by every symbol
    regime: dict[str, np.ndarray]  # int8 regime id (REGIMES) in force at each bar's close
    direction: dict[str, np.ndarray]  # int8 +1/-1, the trend's sign (meaningful in trends)
    signal: dict[str, np.ndarray]  # planted expected drift per hour / hourly sigma at the close
    info: dict  # the content of signal.json

    def labels(self, symbol: str) -> list[str]:
        return [REGIMES[int(k)] for k in self.regime[symbol]]


def check(p: SynthParams) -> int:
    """Validate the parameters (DataError naming the bad one); return the number of bars."""
    iv = interval_ms(p.interval)
    if not p.days > 0:
        raise DataError(f"synth: --days must be > 0, got {p.days}")
    if p.break_day is not None and not 0 < p.break_day < p.days:
        raise DataError(f"synth: --break-day must be inside (0, {p.days}), got {p.break_day}")
    unknown = [s for s in p.symbols if s not in SYMBOLS]
    if unknown or not p.symbols or len(set(p.symbols)) != len(p.symbols):
        raise DataError(f"synth: symbols must be distinct, from {', '.join(SYMBOLS)}; got {list(p.symbols)}")
    if p.start_ms % iv:
        raise DataError(f"synth: start {p.start_ms} is not on the {p.interval} grid")
    n = int(round(p.days * 86_400_000 / iv))
    if n < 2:
        raise DataError(f"synth: {p.days} days of {p.interval} is fewer than 2 bars")
    return n


def _round(x: np.ndarray, decimals: int) -> np.ndarray:
    """Round to `decimals` so the value is exactly what "%.{decimals}f" writes and a reader parses
    back (k / 10^d is the nearest double to the decimal k / 10^d)."""
    s = 10.0**decimals
    return np.rint(x * s) / s


def generate(p: SynthParams) -> tuple[Dataset, Truth]:
    """The synthetic market and its truth, in memory (see the module doc)."""
    from kaizen.venue.sim.market import funding_rate
    from kaizen.venue.sim.spec import SPECS

    n = check(p)
    iv = interval_ms(p.interval)
    model = p.resolved_model().validate()
    symbols = list(p.symbols)
    specs = [SPECS[s] for s in symbols]
    bar_s = iv / 1000.0
    sub_s = p.substep_s if p.substep_s is not None else min(60.0, bar_s / 6.0)
    substeps = max(1, int(round(bar_s / sub_s)))
    dt_h = bar_s / substeps / 3_600.0
    rng = np.random.Generator(np.random.PCG64([p.seed, 0x5EED]))  # start prices, spread side, volume
    starts = [sp.start_price * (1.0 + 0.05 * (rng.random() - 0.5)) for sp in specs]
    proc = model.process([sp.annual_vol for sp in specs], starts, p.seed)
    k = len(symbols)
    mo, mh, ml, mc, pm, sig = (np.empty((k, n)) for _ in range(6))
    reg = np.empty((k, n), np.int8)
    dirn = np.empty((k, n), np.int8)
    proc.run_bars(n, substeps, dt_h, mo, mh, ml, mc, pm, sig, reg, dirn)
    open_time = p.start_ms + np.arange(n, dtype=np.int64) * iv
    close_time = open_time + iv
    # funding: a settlement at the start (the interest rate: nothing has accrued yet) and at every
    # 8 h boundary after it up to the last close, from the premium averaged since the previous one
    first = (p.start_ms // FUNDING_MS + 1) * FUNDING_MS
    settle = np.concatenate(
        ([p.start_ms], np.arange(first, int(close_time[-1]) + 1, FUNDING_MS, dtype=np.int64))
    ).astype(np.int64)
    shapes = model.regime.shapes()
    out: dict[str, SymbolData] = {}
    funding_by_sym: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    mark_by_sym: dict[str, tuple[np.ndarray, ...]] = {}
    decimals: dict[str, tuple[int, int]] = {}  # price decimals of klines and mark klines
    for i, (sym, sp) in enumerate(zip(symbols, specs, strict=True)):
        # the exchange's tick, or a finer one where the path has wandered so low that the tick would
        # exceed 1 bp of the price (a real listing's tick is set for its price level)
        tick = min(sp.tick_f, 10.0 ** math.floor(math.log10(float(ml[i].min()) * 1e-4)))
        dec = max(sp.price_precision, -math.floor(math.log10(tick) + 1e-9))
        mark_dec = max(dec + 2, 6)
        decimals[sym] = (dec, mark_dec)
        m_o, m_h, m_l, m_c = (_round(a[i], mark_dec) for a in (mo, mh, ml, mc))
        # last trades at the touch: half a spread above or below the mark, on the tick grid
        hs = sp.spread_ticks * tick / 2.0
        side = np.where(rng.random((2, n)) < 0.5, -1.0, 1.0)
        o = _round(np.rint((mo[i] + side[0] * hs) / tick) * tick, dec)
        c = _round(np.rint((mc[i] + side[1] * hs) / tick) * tick, dec)
        h = np.maximum(_round(np.rint((mh[i] + hs) / tick) * tick, dec), np.maximum(o, c))
        lo = np.minimum(_round(np.rint((ml[i] - hs) / tick) * tick, dec), np.minimum(o, c))
        # volume: lognormal, with the bar's |return| and the regime's volatility
        vm = shapes[reg[i].astype(np.intp), 0] / model.regime.vol_low
        sigma_bar = (
            sp.annual_vol / math.sqrt(8_760.0) * shapes[reg[i].astype(np.intp), 0] * math.sqrt(bar_s / 3600)
        )
        absr = np.abs(np.log(mc[i] / mo[i])) / sigma_bar
        vol = (
            BASE_VOLUME_H[sym]
            * (bar_s / 3600.0)
            * vm
            * (0.6 + 0.4 * absr)
            * np.exp(0.3 * rng.standard_normal(n))
        )
        vol = _round(vol, sp.qty_precision)
        # funding from the bar-mean premium, time-averaged over each 8 h interval
        cum = np.concatenate(([0.0], np.cumsum(pm[i])))
        hi = np.searchsorted(close_time, settle[1:], "right")
        lo_i = np.searchsorted(close_time, np.maximum(settle[1:] - FUNDING_MS, p.start_ms), "right")
        mean_prem = (cum[hi] - cum[lo_i]) / np.maximum(hi - lo_i, 1)
        fr = np.array([funding_rate(model.premium_base)] + [funding_rate(float(x)) for x in mean_prem])
        fr = _round(fr, 8)
        funding_by_sym[sym] = (settle, fr)
        idx = np.searchsorted(settle, close_time, "right") - 1
        funding = fr[idx]  # idx >= 0: the first settlement is at the start
        kl = Klines(sym, iv, open_time.copy(), o, h, lo, c, vol, path="<synth>")
        out[sym] = SymbolData(kl, funding, m_c)
        mark_by_sym[sym] = (m_o, m_h, m_l, m_c)
    ds = SynthDataset(
        p.interval, out, [], mark_ohlc=mark_by_sym, settlements=funding_by_sym, decimals=decimals
    )
    truth = Truth(
        open_time=open_time,
        regime={s: reg[i].copy() for i, s in enumerate(symbols)},
        direction={s: dirn[i].copy() for i, s in enumerate(symbols)},
        signal={s: sig[i].copy() for i, s in enumerate(symbols)},
        info=_signal_info(p, model, symbols, specs, starts, substeps, n),
    )
    return ds, truth


def planted_edge_bp(model: MarketModel, annual_vol: float, regime: int, after: bool) -> float:
    """Expected gross return (bp, before costs) from the planted signal of a HOLD_H-hour position
    taken in the signal's direction when it is at its clip: phi sigma clip tau (1 - e^{-H/tau})
    (the state decays with tau; fresh returns only add to it)."""
    s = model.signal
    kind = (s.after if after else s.before)[regime]
    if kind == "none" or s.strength == 0:
        return 0.0
    sigma_h = annual_vol / math.sqrt(8_760.0) * model.regime.shapes()[regime, 0]
    return 1e4 * s.strength * sigma_h * s.clip * s.tau_h * (1.0 - math.exp(-HOLD_H / s.tau_h))


def _signal_info(p, model, symbols, specs, starts, substeps, n) -> dict:
    s = model.signal
    round_trip_bp = 2e4 * (TAKER_FEE + SPREAD_SLIPPAGE)
    edges = {}
    for sym, sp in zip(symbols, specs, strict=True):
        per = {}
        for phase in ("before", "after") if model.break_h is not None else ("before",):
            per[phase] = {
                r: round(planted_edge_bp(model, sp.annual_vol, j, phase == "after"), 3)
                for j, r in enumerate(REGIMES)
            }
        edges[sym] = per
    break_ms = None if model.break_h is None else int(p.start_ms + model.break_h * 3_600_000)
    return {
        "generator": "kaizen data synth",
        "seed": p.seed,
        "days": p.days,
        "interval": p.interval,
        "bars": n,
        "substeps_per_bar": substeps,
        "start_ms": p.start_ms,
        "symbols": {
            sym: {"annual_vol": sp.annual_vol, "start_price": start}
            for sym, sp, start in zip(symbols, specs, starts, strict=True)
        },
        "regimes": list(REGIMES),
        "model": model.describe(),
        "signal": {
            "form": "expected log drift per hour = phi * sigma_h * clip(s_norm, +-clip); s_norm = EMA sum "
            "of the symbol's log returns (time constant tau_h) / (sigma_h * sqrt(tau_h / 2)); phi = "
            "+strength (momentum), -strength (reversion), 0 (none) by the regime in force",
            "strength": s.strength,
            "tau_h": s.tau_h,
            "clip": s.clip,
            "mapping_before": dict(zip(REGIMES, s.before, strict=True)),
            "mapping_after": dict(zip(REGIMES, s.after, strict=True)) if model.break_h is not None else None,
            "break_day": p.break_day,
            "break_time_ms": break_ms,
        },
        "edge": {
            "what": f"planted signal only: expected gross bp of a {HOLD_H:g} h hold entered at the "
            "signal's clip, vs a taker round trip (fee + spread/slippage, both sides)",
            "round_trip_bp": round_trip_bp,
            "bp": edges,
            "exploitable": {
                sym: {ph: [r for r, v in per.items() if v > round_trip_bp] for ph, per in e.items()}
                for sym, e in edges.items()
            },
        },
    }


# ------------------------------------------------------------------------------------- writing


def _gz(path: Path, text: str) -> None:
    """gzip with a fixed header (no name, mtime 0) so the same data gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(text.encode("ascii"))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def _kline_text(open_time: np.ndarray, cols: list[np.ndarray], decs: list[int], iv: int) -> str:
    fmts = [f"%.{d}f" for d in decs]
    lines = [KLINE_HEADER]
    ct = open_time + iv - 1
    for j in range(len(open_time)):
        lines.append(
            f"{open_time[j]}," + ",".join(f % c[j] for f, c in zip(fmts, cols, strict=True)) + f",{ct[j]}"
        )
    return "\n".join(lines) + "\n"


def write_archive(ds: Dataset, truth: Truth, out_dir: str | Path) -> Path:
    """Write the dataset (klines, mark-price klines, funding) and the truth under out_dir."""
    from kaizen.venue.sim.spec import SPECS

    root = Path(out_dir)
    iv = interval_ms(ds.interval)
    if not isinstance(ds, SynthDataset):
        raise DataError("write_archive: the dataset was not made by kaizen.market.synth.generate")
    for sym, d in ds.symbols.items():
        sp = SPECS[sym]
        k = d.klines
        dec, mark_dec = ds.decimals[sym]
        text = _kline_text(
            k.open_time, [k.open, k.high, k.low, k.close, k.volume], [dec] * 4 + [sp.qty_precision], iv
        )
        _gz(root / "futures/um/klines" / sym / ds.interval / f"{sym}-{ds.interval}.csv.gz", text)
        mo, mh, ml, mc = ds.mark_ohlc[sym]
        zero = np.zeros(len(k))
        text = _kline_text(k.open_time, [mo, mh, ml, mc, zero], [mark_dec] * 4 + [0], iv)
        _gz(root / "futures/um/markPriceKlines" / sym / ds.interval / f"{sym}-{ds.interval}.csv.gz", text)
        ft, fr = ds.settlements[sym]
        lines = [FUNDING_HEADER] + [f"{t},8,{r:.8f}" for t, r in zip(ft, fr, strict=True)]
        _gz(root / "futures/um/fundingRate" / sym / f"{sym}-fundingRate.csv.gz", "\n".join(lines) + "\n")
    tdir = root / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    rows = ["time,symbol,regime"]
    for sym in ds.symbols:
        rows.extend(
            f"{t},{sym},{REGIMES[r]}"
            for t, r in zip(truth.open_time.tolist(), truth.regime[sym].tolist(), strict=True)
        )
    (tdir / "regimes.csv").write_text("\n".join(rows) + "\n")
    (tdir / "signal.json").write_text(json.dumps(truth.info, indent=2, sort_keys=True) + "\n")
    return root


def read_truth(root: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """DIR/truth/regimes.csv as {symbol: (open_time ms, regime id)}; None when there is none."""
    path = Path(root) / "truth" / "regimes.csv"
    if not path.is_file():
        return None
    ids = {r: i for i, r in enumerate(REGIMES)}
    by: dict[str, tuple[list[int], list[int]]] = {}
    with path.open() as fh:
        header = fh.readline().strip()
        if header != "time,symbol,regime":
            raise DataError(f"{path}: expected header 'time,symbol,regime', found {header!r}")
        for lineno, line in enumerate(fh, start=2):
            parts = line.strip().split(",")
            if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in ids:
                raise DataError(f"{path}: line {lineno}: expected time,symbol,regime ({', '.join(REGIMES)})")
            t, r = by.setdefault(parts[1], ([], []))
            t.append(int(parts[0]))
            r.append(ids[parts[2]])
    return {s: (np.array(t, np.int64), np.array(r, np.int8)) for s, (t, r) in by.items()}
