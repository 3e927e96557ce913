"""The backtest report: one self-contained HTML file (plotly.js embedded, opens offline), built from
the lineage logs alone (`Ledger` replays Fill, FundingPayment and Bar records), never from the
run's in-memory results: if the lineage lacked anything, the report would show it.

Charts: equity and drawdown of every strategy, net PnL per symbol, cumulative fees and funding, the
position of every strategy over the price of one symbol, and a trades table. The series behind the
equity curves are also embedded as JSON (`<script id="kaizen-series">`) for tools and tests.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.engine.report import Ledger
from kaizen.lineage import records as R

MAX_TABLE_ROWS = 2000
MAX_POINTS = 20_000


def strategy_series(lineage_dir: Path) -> dict[str, Any]:
    """Replay one strategy's lineage: equity after each bar close, fees and funding to date, the
    position per symbol after each close, each symbol's price, the fills."""
    from kaizen.lineage.reader import LineageReader

    led = Ledger()
    t_out: list[int] = []
    eq: list[float] = []
    fees: list[float] = []
    fund: list[float] = []
    pos: dict[str, list[tuple[int, float]]] = {}
    px: dict[str, list[tuple[int, float]]] = {}
    fills: list[dict[str, Any]] = []
    champions: list[tuple[int, str, str, str]] = []  # (ms, role, version, action) per champion move
    loop_events: list[tuple[int, str, str]] = []  # (ms, kind, detail): alarms, comparisons
    choices: dict[tuple[int, str], int] = {}  # (day, variant) -> bandit decisions
    cur = None
    bar_times: set[int] = set()

    def sample(ts: int) -> None:
        t_out.append(ts // 1_000_000)
        eq.append(led.equity())
        fees.append(led.fees)
        fund.append(led.funding)
        for s, q in led.pos.items():
            pos.setdefault(s, []).append((ts // 1_000_000, q))

    for rec in LineageReader(lineage_dir).records():
        if isinstance(rec, R.RunStart):
            led.apply(rec)
            continue
        # a point after every group of records of one time (a bar close with its orders and fills,
        # or a funding settlement): the state the run was in at that time
        if cur is not None and rec.ts > cur:
            sample(cur)
        if cur is None or rec.ts > cur:
            cur = rec.ts
        if isinstance(rec, R.Bar):
            bar_times.add(rec.ts // 1_000_000)
            px.setdefault(rec.symbol, []).append((rec.ts // 1_000_000, rec.close))
        elif isinstance(rec, R.PointerMove) and rec.pointer == "champion":
            champions.append((rec.ts // 1_000_000, rec.role, rec.new, rec.action))
        elif isinstance(rec, R.DriftAlarm):
            loop_events.append((rec.ts // 1_000_000, "drift_alarm", rec.detail))
        elif isinstance(rec, R.BanditChoice):
            key = (rec.ts // 86_400_000_000_000, rec.variant)
            choices[key] = choices.get(key, 0) + 1
        elif isinstance(rec, R.Fill):
            fills.append(
                {"ts": rec.ts // 1_000_000, "symbol": rec.symbol, "side": rec.side, "qty": rec.qty,
                 "price": rec.price, "fee": rec.fee, "maker": rec.maker, "realized": rec.realized_pnl}
            )  # fmt: skip
        led.apply(rec)
    if cur is not None:
        sample(cur)
    return {
        "champions": champions,
        "loop_events": loop_events,
        "choices": choices,
        "bar_times": sorted(bar_times),
        "t": t_out,
        "equity": eq,
        "fees": fees,
        "funding": fund,
        "position": pos,
        "price": px,
        "fills": fills,
        "capital": led.capital,
        "per_symbol": {s: d["realized_pnl"] - d["fees"] - d["funding"] for s, d in led.by_symbol.items()},
        "net_pnl": led.equity() - led.capital,
        "ledger_fees": led.fees,
        "ledger_funding": led.funding,
    }


def _daily(t: list[int], v: list[float]) -> tuple[list[int], list[float]]:
    if not t:
        return [], []
    ta = np.asarray(t, np.int64)
    day = (ta - 1) // 86_400_000
    last = np.flatnonzero(np.diff(day, append=day[-1] + 1))
    return [int(x) for x in ta[last]], [float(v[i]) for i in last]


def _dates(ms: list[int]) -> list[str]:
    return [dt.datetime.fromtimestamp(m / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M") for m in ms]


def build_report(out: Path, symbol: str = "BTCUSDT") -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lin = out / "lineage"
    names = sorted(p.name for p in lin.iterdir() if p.is_dir()) if lin.is_dir() else []
    summary_path = out / "summary.json"
    order = list(json.loads(summary_path.read_text())["strategies"]) if summary_path.exists() else []
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    series = {n: strategy_series(lin / n) for n in names}
    from plotly.colors import qualitative

    palette = qualitative.Plotly
    color = {n: palette[i % len(palette)] for i, n in enumerate(names)}
    figs: list[tuple[str, Any]] = []
    embedded: dict[str, Any] = {}

    f = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.04,
                      subplot_titles=("Equity (USDT, net of all costs)", "Drawdown"))  # fmt: skip
    for n, s in series.items():
        td, ed = _daily(s["t"], s["equity"])
        embedded[n] = {"t": td, "equity": ed}
        e = np.asarray(ed, np.float64)
        dd = (e / np.maximum.accumulate(e) - 1.0) if len(e) else e
        x = _dates(td)
        f.add_trace(go.Scatter(x=x, y=ed, name=n, mode="lines", legendgroup=n), row=1, col=1)
        f.add_trace(
            go.Scatter(x=x, y=dd.tolist(), name=n, mode="lines", legendgroup=n, showlegend=False),
            row=2,
            col=1,
        )
    f.update_yaxes(tickformat=".0%", row=2, col=1)
    f.update_layout(height=650)
    figs.append(("Equity and drawdown", f))

    syms = sorted({sym for s in series.values() for sym in s["per_symbol"]})
    f = go.Figure()
    for n, s in series.items():
        f.add_trace(
            go.Bar(name=n, x=syms, y=[s["per_symbol"].get(sym, 0.0) for sym in syms], marker_color=color[n])
        )
    f.update_layout(barmode="group", title="Net PnL per symbol (USDT, net of fees and funding)", height=420)
    figs.append(("Per-symbol PnL", f))

    f = make_subplots(
        rows=1, cols=2, subplot_titles=("Fees paid to date (USDT)", "Funding paid to date (USDT, + = paid)")
    )
    for n, s in series.items():
        td, fd = _daily(s["t"], s["fees"])
        _, gd = _daily(s["t"], s["funding"])
        f.add_trace(go.Scatter(x=_dates(td), y=fd, name=n, mode="lines", legendgroup=n), row=1, col=1)
        f.add_trace(
            go.Scatter(x=_dates(td), y=gd, name=n, mode="lines", legendgroup=n, showlegend=False),
            row=1,
            col=2,
        )
    f.update_layout(height=420)
    figs.append(("Fees and funding", f))

    f = make_subplots(specs=[[{"secondary_y": True}]])
    price = next((s["price"].get(symbol) for s in series.values() if s["price"].get(symbol)), None) or []
    step = max(1, len(price) // MAX_POINTS)
    if price:
        f.add_trace(go.Scatter(x=_dates([p[0] for p in price[::step]]), y=[p[1] for p in price[::step]],
                               name=f"{symbol} price", line={"color": "black", "width": 1}), secondary_y=False)  # fmt: skip
    for n, s in series.items():
        p = s["position"].get(symbol, [])[::step]
        if p:
            f.add_trace(go.Scatter(x=_dates([a for a, _ in p]), y=[b for _, b in p], name=f"{n} position",
                                   mode="lines", line={"shape": "hv", "color": color[n]}), secondary_y=True)  # fmt: skip
    f.update_yaxes(title_text="price", secondary_y=False)
    f.update_yaxes(title_text="position (base units)", secondary_y=True)
    f.update_layout(title=f"Position over price: {symbol}", height=500)
    figs.append(("Position over price", f))

    loop_fig = _loop_timeline(series)
    if loop_fig is not None:
        figs.append(("Model versions (champion per role) and drift alarms", loop_fig))
    bandit_fig = _bandit_allocation(series)
    if bandit_fig is not None:
        figs.append(("Bandit allocation: share of decisions per variant, by day", bandit_fig))

    rows = [dict(r, strategy=n) for n, s in series.items() for r in s["fills"]]
    rows.sort(key=lambda r: (r["ts"], r["strategy"]))
    shown = rows[-MAX_TABLE_ROWS:]
    table = _table(shown, len(rows))

    parts = []
    for i, (title, fig) in enumerate(figs):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    body = "\n".join(parts)
    summary_html = _summary_table(summary_path)
    data_json = json.dumps(embedded, separators=(",", ":")).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Kaizen backtest report</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} th{{background:#eee}}</style></head>
<body><h1>Kaizen backtest</h1>
<p>Rebuilt from the lineage logs in <code>{html.escape(str(lin))}</code>. All figures are net of fees, spread,
slippage and funding.</p>
{summary_html}
{body}
<h2>Trades</h2>
{table}
<script type="application/json" id="kaizen-series">{data_json}</script>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _loop_timeline(series: dict[str, Any]):
    """The champion of each role over time (step chart over the versions in order of appearance)
    with promotions and rollbacks marked, and drift alarms: one trace per strategy and role."""
    import plotly.graph_objects as go

    if not any(s["champions"] for s in series.values()):
        return None
    f = go.Figure()
    for n, s in series.items():
        roles = sorted({r for _, r, _, _ in s["champions"]})
        for role in roles:
            moves = [(t, v, a) for t, r, v, a in s["champions"] if r == role]
            names: list[str] = []
            y = []
            for _, v, _ in moves:
                if v not in names:
                    names.append(v)
                y.append(names.index(v))
            x = _dates([t for t, _, _ in moves])
            f.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line={"shape": "hv"}, name=f"{n} {role}",
                                   text=[f"{a}: {v}" for _, v, a in moves], hovertemplate="%{x} %{text}"))  # fmt: skip
            for kind, sym in (("promote", "triangle-up"), ("rollback", "x")):
                pts = [(t, names.index(v)) for t, v, a in moves if a == kind]
                if pts:
                    f.add_trace(go.Scatter(x=_dates([t for t, _ in pts]), y=[v for _, v in pts], mode="markers",
                                           marker={"symbol": sym, "size": 11}, name=f"{n} {kind}"))  # fmt: skip
        alarms = s["loop_events"]
        if alarms:
            f.add_trace(go.Scatter(x=_dates([t for t, _, _ in alarms]), y=[-0.5] * len(alarms), mode="markers",
                                   marker={"symbol": "star", "size": 12, "color": "red"}, name=f"{n} drift alarm",
                                   text=[d for _, _, d in alarms], hovertemplate="%{x} %{text}"))  # fmt: skip
    f.update_yaxes(title_text="champion (0 = first version seen; flat included)")
    f.update_layout(height=420)
    return f


def _bandit_allocation(series: dict[str, Any]):
    import plotly.graph_objects as go

    if not any(s["choices"] for s in series.values()):
        return None
    f = go.Figure()
    for n, s in series.items():
        ch = s["choices"]
        if not ch:
            continue
        days = sorted({d for d, _ in ch})
        variants = sorted({v for _, v in ch})
        total = {d: sum(ch.get((d, v), 0) for v in variants) for d in days}
        x = _dates([d * 86_400_000 for d in days])
        for v in variants:
            f.add_trace(go.Scatter(x=x, y=[ch.get((d, v), 0) / total[d] for d in days], name=f"{n} {v}",
                                   stackgroup=n, mode="lines"))  # fmt: skip
    f.update_yaxes(tickformat=".0%")
    f.update_layout(height=420)
    return f


def _summary_table(path: Path) -> str:
    if not path.exists():
        return ""
    from kaizen.backtest.runner import format_table

    return f"<pre>{html.escape(format_table(json.loads(path.read_text())))}</pre>"


def _table(rows: list[dict[str, Any]], total: int) -> str:
    head = ["time (UTC)", "strategy", "symbol", "side", "qty", "price", "fee", "maker", "realized PnL"]
    out = [f"<p>{total} fills in all; the last {len(rows)} are shown (every fill is in the lineage).</p>"
           if total > len(rows) else f"<p>{total} fills.</p>",
           "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]  # fmt: skip
    for r in rows:
        cells = [_dates([r["ts"]])[0], r["strategy"], r["symbol"], r["side"], f"{r['qty']:g}", f"{r['price']:g}",
                 f"{r['fee']:.4f}", "yes" if r["maker"] else "", f"{r['realized']:+.2f}"]  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)
