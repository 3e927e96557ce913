"""`/status`: the engine's state as JSON, and `kaizen status [URL]` printing it as tables."""

from __future__ import annotations

import math
import time
from typing import Any

from kaizen.ops.metrics import EngineMetrics, drift_state, stream_ages


def _num(x: float) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def models(eng: Any) -> dict[str, dict[str, str]]:
    """The model serving each role: the improvement loop's champion and candidate when the strategy
    runs the loop, the strategy's own model version otherwise."""
    strat = getattr(eng, "strategy", None)
    if strat is None:
        return {}
    loop = getattr(strat, "loop", None)
    if loop is not None:
        cand = getattr(loop, "candidate", None)
        return {
            "signal": {
                "champion": str(getattr(loop.champion, "version", "")),
                "candidate": str(getattr(cand, "version", "")) if cand is not None else "",
            }
        }
    version = getattr(strat, "version", "") or getattr(getattr(strat, "model", None), "version", "")
    name = (
        str(version)
        if str(version).startswith(strat.name)
        else f"{strat.name}@{version}"
        if version
        else strat.name
    )
    return {"signal": {"champion": name, "candidate": ""}}


def build_status(
    eng: Any, metrics: EngineMetrics | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    router = getattr(eng, "router", None)
    risk = getattr(eng, "risk", None)
    out: dict[str, Any] = {"time": time.time(), **(extra or {})}
    out["mode"] = getattr(eng, "mode", "")
    out["symbols"] = list(getattr(eng, "symbols", []))
    out["bars"] = int(getattr(eng, "bars", 0))
    out["decisions"] = int(getattr(eng, "decisions", 0))
    out["errors"] = len(getattr(eng, "errors", ()))
    positions: dict[str, dict[str, float | None]] = {}
    if router is not None:
        for sym in router.symbols:
            b = router.books[sym]
            positions[sym] = {
                "qty": _num(b.qty),
                "avg_price": _num(b.avg),
                "mark": _num(b.mark),
                "unrealized": _num(b.unrealized()),
                "realized": _num(b.realized),
            }
        s = router.summary()
        out["pnl"] = {k: _num(v) for k, v in s.items()}
        out["open_orders"] = router.open_order_count()
    out["positions"] = positions
    out["models"] = models(eng)
    out["streams"] = {sym: {k: _num(v) for k, v in d.items()} for sym, d in stream_ages(eng).items()}
    out["market_status"] = dict(getattr(eng, "status", {}))
    if risk is not None:
        out["risk"] = {
            "equity": _num(risk.equity),
            "peak_equity": _num(risk.peak_equity),
            "day_start_equity": _num(risk.day_start_equity),
            "max_drawdown_seen": _num(risk.max_drawdown_seen),
            "limits": _risk_limits(risk.cfg),
        }
        out["kill_switch"] = {
            "halted": bool(risk.halted),
            "reason": risk.halt_reason or (getattr(router, "kill_reason", "") if router else ""),
        }
    drift = drift_state(eng)
    drift.pop("_counts", None)
    out["drift"] = drift
    if metrics is not None:
        metrics.fold()
        out["latency_us"] = {k: {**s.quantiles(), "n": s.n} for k, s in metrics.stages.items()}
        out["latency_us"] = {
            k: {kk: (_num(vv) if kk != "n" else vv) for kk, vv in d.items()}
            for k, d in out["latency_us"].items()
        }
        feed = getattr(eng, "feed", None)
        out["messages"] = int(feed.stats.get("messages", 0)) if feed is not None else 0
        out["rates_per_s"] = {k: _num(v) for k, v in metrics.rates.items()}
    return out


def _risk_limits(rc: Any) -> dict[str, float]:
    import msgspec

    return {k: v for k, v in msgspec.structs.asdict(rc).items() if isinstance(v, int | float)}


# ---- the table -----------------------------------------------------------------------------------
def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and spec:
        return format(v, spec)
    return str(v)


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [title, "  (none)"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  " + "  ".join("-" * w for w in widths)
    body = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [title, line, sep, *body]


def format_status(st: dict[str, Any]) -> str:
    ks = st.get("kill_switch", {})
    halted = ks.get("halted")
    lines = [
        f"kaizen {st.get('mode', '?')} run {st.get('run_dir', '')}".rstrip(),
        f"  uptime {st.get('uptime_s', 0):.0f} s   bars {st.get('bars', 0)}   decisions {st.get('decisions', 0)}"
        f"   messages {st.get('messages', 0)}   open orders {st.get('open_orders', 0)}   errors {st.get('errors', 0)}",
        "  rates /s: "
        + ("   ".join(f"{k} {_fmt(v, '.1f')}" for k, v in st.get("rates_per_s", {}).items()) or "-"),
        f"  kill switch: {'HALTED: ' + str(ks.get('reason', '')) if halted else 'armed (trading)'}",
        "",
    ]
    pos = st.get("positions", {})
    lines += _table(
        "positions",
        ["symbol", "qty", "avg price", "mark", "unrealized", "realized", "market"],
        [
            [
                s,
                _fmt(p.get("qty"), ".6g"),
                _fmt(p.get("avg_price"), ".6g"),
                _fmt(p.get("mark"), ".6g"),
                _fmt(p.get("unrealized"), "+.4f"),
                _fmt(p.get("realized"), "+.4f"),
                str(st.get("market_status", {}).get(s, "")),
            ]
            for s, p in pos.items()
        ],
    )
    pnl = st.get("pnl", {})
    lines += [""] + _table("pnl (USDT)", ["metric", "value"], [[k, _fmt(v, "+.4f")] for k, v in pnl.items()])
    risk = st.get("risk", {})
    if risk:
        rows = [
            [k, _fmt(risk.get(k), ".4f")]
            for k in ("equity", "peak_equity", "day_start_equity", "max_drawdown_seen")
        ]
        rows += [[f"limit {k}", _fmt(v, "g")] for k, v in risk.get("limits", {}).items()]
        lines += [""] + _table("risk", ["item", "value"], rows)
    lines += [""] + _table(
        "models",
        ["role", "champion", "candidate"],
        [[r, d.get("champion", ""), d.get("candidate", "") or "-"] for r, d in st.get("models", {}).items()],
    )
    rows = [
        [sym, kind, _fmt(age, ".3f")]
        for sym, d in st.get("streams", {}).items()
        for kind, age in sorted(d.items())
    ]
    lines += [""] + _table("last message age (s)", ["symbol", "stream", "age"], rows)
    lat = st.get("latency_us", {})
    lines += [""] + _table(
        "latency, recent (µs)",
        ["stage", "p50", "p99", "samples"],
        [
            [k, _fmt(d.get("p50"), ".1f"), _fmt(d.get("p99"), ".1f"), str(d.get("n", 0))]
            for k, d in lat.items()
        ],
    )
    drift = st.get("drift", {})
    if drift:
        lines += [""] + _table(
            "drift",
            ["channel", "statistic", "threshold", "decisions"],
            [
                [k, _fmt(d["statistic"], ".3f"), _fmt(d["threshold"], ".3f"), f"{d['decisions']:.0f}"]
                for k, d in drift.items()
            ],
        )
    return "\n".join(lines)


def fetch_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET URL/status (URL: http://HOST:PORT); one-line KaizenError when nothing answers."""
    import json
    import urllib.error
    import urllib.request

    from kaizen.errors import KaizenError

    base = url.rstrip("/")
    if base.endswith("/status"):
        base = base[: -len("/status")]
    try:
        with urllib.request.urlopen(base + "/status", timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise KaizenError(f"{base}/status: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KaizenError(f"no kaizen engine answers at {base} ({reason})") from None
    except ValueError as exc:
        raise KaizenError(f"{base}/status: not JSON ({exc})") from None
