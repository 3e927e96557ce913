"""`kaizen risk status|rearm`: inspect and deliberately re-arm the kill switch of a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from kaizen.errors import KaizenError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("risk", help="kill switch state: status, rearm")
    sub = p.add_subparsers(dest="risk_command", metavar="ACTION")
    s = sub.add_parser("status", help="print whether the run directory's kill switch is halted")
    s.add_argument("run_dir", help="the run directory (holds risk_halt.json when halted)")
    s.set_defaults(func=_status)
    r = sub.add_parser("rearm", help="re-arm a halted kill switch (deliberate: needs --yes)")
    r.add_argument("run_dir", help="the run directory (holds risk_halt.json when halted)")
    r.add_argument("--yes", action="store_true", help="confirm that trading may resume")
    r.set_defaults(func=_rearm)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _halt_file(run_dir: str) -> Path:
    from kaizen.rundir import HALT_FILE, require_run_dir

    return require_run_dir(run_dir) / HALT_FILE


def _status(args: argparse.Namespace) -> int:
    from kaizen.risk.limits import load_halt_state

    path = _halt_file(args.run_dir)
    if not path.exists():
        print(f"{args.run_dir}: armed (not halted)")
        return 0
    state = load_halt_state(path)
    print(f"{args.run_dir}: HALTED: {state.get('reason', '?')}")
    return 1


def _rearm(args: argparse.Namespace) -> int:
    from kaizen.risk.limits import clear_halt_state, load_halt_state

    path = _halt_file(args.run_dir)
    if not path.exists():
        print(f"{args.run_dir}: not halted; nothing to re-arm")
        return 0
    if not args.yes:
        raise KaizenError(f"{path}: re-arming resumes trading; pass --yes to confirm")
    reason = load_halt_state(path).get("reason", "?")
    clear_halt_state(path)
    print(f"{args.run_dir}: kill switch re-armed (was halted: {reason})")
    return 0
