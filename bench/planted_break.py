"""The improvement loop against a planted break (issue 15): for each seed, `kaizen data synth` writes
the same market twice, with the regime-to-signal mapping changed at --break-day and without a break,
and `kaizen backtest` runs the loop (`kaizen`) and `snapshot` over both from --start.

The models see the regime detector's context (`[models] regime_context = true`): the planted signal's
sign depends on the regime, which is what the detector is for. The loop retrains nightly when no
candidate is in shadow, looks at a candidate once a week for up to four weeks (Pocock levels), and
watches its champion on two drift channels (calibration, PnL against its own out-of-fold trades).

Printed per seed: the loop's promotions before the break (a champion that trades is what a break can
hurt) and whether a model (not flat) is champion at the break; after the break, the first drift alarm (in the loop's decisions and in days) and the first
rollback or promotion (in days); the loop's and snapshot's net return before and after the break
(from their lineage: equity at the break bar); and on the market without a break, rollbacks and
alarms within 30 days after the break day (there should be none), and rollbacks over the whole run. The last line is the verdict
against the targets given: alarm within --max-alarm-decisions decisions of the break, a rollback or
promotion within --max-restore-days days after which the loop's net return to the end of the run is
at least -(--restore-tolerance) (it stopped losing), no rollback in 30 days without a break.

    python bench/planted_break.py [--seeds 404,505,606] [--days 420] [--break-day 330] [--start-day 260]

Seeds 404, 505 and 606 were never used to tune anything. Seeds 11 and 12 were, and 101, 202 and 303
were used to design the PnL drift channel (its reference, k and the change-point retrain): they are
development seeds now. Minutes per seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY_MS = 86_400_000
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

CONFIG = """
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
[risk]
max_notional_per_symbol = 10000.0
daily_loss_limit = 10000.0
max_drawdown = 1.0
[models]
regime_context = true
[backtest]
strategies = ["kaizen", "snapshot"]
train_window_days = {train_days}
[loop]
retrain_every = "{retrain}"
shadow_days = {shadow_days}
shadow_looks = {looks}
"""


def kaizen(*args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "kaizen", *args], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"kaizen {' '.join(args[:2])} failed: {res.stderr.strip().splitlines()[-1:]}")


def day(n: float) -> str:
    return (T0 + dt.timedelta(days=n)).strftime("%Y-%m-%d")


def loop_events(lineage: Path) -> dict:
    from kaizen.lineage import records as R
    from kaizen.lineage.reader import LineageReader

    out = {"decisions": [], "alarms": [], "rollbacks": []}
    for r in LineageReader(lineage).records():
        if isinstance(r, R.Decision):
            out["decisions"].append(r.ts // 1_000_000)
        elif isinstance(r, R.DriftAlarm):
            out["alarms"].append(r.ts // 1_000_000)
        elif isinstance(r, R.Rollback):
            out["rollbacks"].append(r.ts // 1_000_000)
    return out


def net_from(lineage: Path, t_ms: int) -> float:
    """Net return (fraction of capital) from `t_ms` to the end of the run, from the lineage."""
    return split_at(lineage, t_ms)[1]


def split_at(lineage: Path, t_ms: int) -> tuple[float, float]:
    """Net return (fraction of capital, after fees, spread and funding) before and from `t_ms`, from
    the strategy's lineage (kaizen.backtest.report.strategy_series: the equity after each close)."""
    from kaizen.backtest.report import strategy_series

    s = strategy_series(lineage)
    cap = s["capital"]
    eq_at = cap
    for t, e in zip(s["t"], s["equity"], strict=True):
        if t > t_ms:
            break
        eq_at = e
    return (eq_at - cap) / cap, (s["equity"][-1] - eq_at) / cap


def run_seed(seed: int, a: argparse.Namespace, tmp: Path) -> dict:
    res: dict = {"seed": seed}
    cfg = tmp / "c.toml"
    cfg.write_text(CONFIG.format(train_days=a.train_days, retrain=a.retrain_every, shadow_days=a.shadow_days,
                                 looks=a.looks))  # fmt: skip
    brk_ms = int((T0 + dt.timedelta(days=a.break_day)).timestamp() * 1000)
    for label, extra in (("break", ["--break-day", str(a.break_day)]), ("none", [])):
        data = tmp / f"data-{seed}-{label}"
        out = tmp / f"out-{seed}-{label}"
        if a.signal_strength is not None:
            extra = [*extra, "--signal-strength", str(a.signal_strength)]
        kaizen("data", "synth", "--seed", str(seed), "--days", str(a.days), "--out", str(data), *extra)
        t = time.monotonic()
        end_day = a.days if label == "break" else a.break_day + 30
        kaizen("backtest", "--data", str(data), "--config", str(cfg), "--start", day(a.start_day),
               "--end", day(end_day), "--out", str(out), "--no-progress")  # fmt: skip
        res[f"{label}_wall_s"] = time.monotonic() - t
        ev = loop_events(out / "lineage" / "kaizen")
        summ = json.loads((out / "summary.json").read_text())["strategies"]["kaizen"]
        kinds = [(_ms(e["ts"]), e["kind"]) for e in summ["events"]]
        if label == "break":
            res["promotions_before"] = sum(1 for ts, k in kinds if ts < brk_ms and k == "promotion")
            # is a model (not flat) the champion when the break comes? A champion rolled back to flat
            # before the break has nothing left for the break to hurt
            swaps = [e for e in summ["events"] if e["kind"] in ("promotion", "rollback") and _ms(e["ts"]) < brk_ms]
            res["champion_at_break"] = bool(swaps) and swaps[-1]["to"] != "flat"
            after = [x for x in ev["alarms"] if x >= brk_ms]
            res["alarm_days"] = (after[0] - brk_ms) / DAY_MS if after else None
            res["alarm_decisions"] = (
                sum(1 for d in ev["decisions"] if brk_ms <= d <= after[0]) if after else None
            )
            acts = [ts for ts, k in kinds if ts >= brk_ms and k in ("rollback", "promotion")]
            res["restore_days"] = (min(acts) - brk_ms) / DAY_MS if acts else None
            # what the loop and snapshot made from that action to the end of the run
            res["loop_after_restore"] = net_from(out / "lineage" / "kaizen", min(acts)) if acts else None
            res["snapshot_after_restore"] = net_from(out / "lineage" / "snapshot", min(acts)) if acts else None
            for name in ("kaizen", "snapshot"):
                pre, post = split_at(out / "lineage" / name, brk_ms)
                key = "loop" if name == "kaizen" else name
                res[f"{key}_pre"], res[f"{key}_post"] = pre, post
        else:
            res["rollbacks_no_break_30d"] = sum(1 for x in ev["rollbacks"] if brk_ms <= x < brk_ms + 30 * DAY_MS)
            res["alarms_no_break_30d"] = sum(1 for x in ev["alarms"] if brk_ms <= x < brk_ms + 30 * DAY_MS)
            res["rollbacks_no_break_all"] = len(ev["rollbacks"])  # over the whole run, before the break day too
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="404,505,606")
    p.add_argument("--days", type=int, default=420)
    p.add_argument("--break-day", type=int, default=330)
    p.add_argument("--start-day", type=int, default=260)
    p.add_argument("--train-days", type=int, default=240)
    p.add_argument("--retrain-every", default="1d")
    p.add_argument("--shadow-days", type=float, default=7.0)
    p.add_argument("--looks", type=int, default=4)
    p.add_argument("--signal-strength", type=float, default=None, help="synth's planted signal (default 0.06)")
    p.add_argument("--max-alarm-decisions", type=int, default=3000)
    p.add_argument("--max-restore-days", type=float, default=30.0)
    p.add_argument("--restore-tolerance", type=float, default=0.005,
                   help="after the restoring action the loop's net return to the end must be >= minus this")
    p.add_argument("--keep", type=Path, default=None, help="keep the synthetic archives and runs in this directory")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kaizen-break-") as td:
        work = Path(td) if a.keep is None else a.keep
        work.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in a.seeds.split(",")):
            rows.append(run_seed(seed, a, work))
            print(json.dumps(rows[-1]), flush=True)
    hdr = ("seed", "promotions_before", "alarm_decisions", "alarm_days", "restore_days", "loop_pre", "loop_post",
           "snapshot_pre", "snapshot_post", "loop_after_restore", "snapshot_after_restore",
           "rollbacks_no_break_30d", "alarms_no_break_30d", "rollbacks_no_break_all", "champion_at_break",
           "break_wall_s")  # fmt: skip
    print(" ".join(f"{h:>14}" for h in hdr))
    for r in rows:
        print(" ".join(f"{_fmt(r.get(h)):>14}" for h in hdr))
    ok_alarm = all(r["alarm_decisions"] is not None and r["alarm_decisions"] <= a.max_alarm_decisions for r in rows)
    ok_restore = all(
        r["restore_days"] is not None and r["restore_days"] <= a.max_restore_days
        and r["loop_after_restore"] >= -a.restore_tolerance
        for r in rows
    )  # fmt: skip
    ok_quiet = all(r["rollbacks_no_break_30d"] == 0 for r in rows)
    armed = all(r["champion_at_break"] for r in rows)
    print(
        f"verdict: a model is champion at the break on every seed {'yes' if armed else 'NO'}; "
        f"alarm within {a.max_alarm_decisions} decisions {'PASS' if ok_alarm else 'FAIL'}; "
        f"rollback/promotion within {a.max_restore_days:g} days, then net >= -{a.restore_tolerance:.1%} to the end "
        f"{'PASS' if ok_restore else 'FAIL'}; "
        f"no rollback in 30 days without a break {'PASS' if ok_quiet else 'FAIL'}"
    )
    return 0


def _ms(iso: str) -> int:
    return int(dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp() * 1000)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:+.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


if __name__ == "__main__":
    raise SystemExit(main())
