"""Kaizen: autonomous crypto-perpetuals trading on a self-improving model loop.

Each domain registers its own sub-commands; heavy imports happen inside handlers so that
`kaizen --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from kaizen.errors import KaizenError

# Modules exposing `register(subparsers)`. Each adds its sub-command(s) with `set_defaults(func=...)`;
# a handler returns an int exit code (or None for 0).
COMMAND_MODULES = (
    "kaizen.venue.sim.cli",  # kaizen sim
    "kaizen.engine.cli",  # kaizen run, kaizen demo
    "kaizen.lineage.cli",  # kaizen log ...
    "kaizen.market.cli",  # kaizen book ...
    "kaizen.models.cli",  # kaizen train ..., kaizen data ...
    "kaizen.models.exit_cli",  # kaizen exit eval (offline evaluator until the engine runs exits)
    "kaizen.market.synth_cli",  # kaizen data synth
    "kaizen.models.regime_cli",  # kaizen regime eval|train
    "kaizen.risk.cli",  # kaizen risk status|rearm
    "kaizen.backtest.cli",  # kaizen backtest, kaizen report
)


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem, exit 2 (argparse would add a usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kaizen", description=__doc__.splitlines()[0])
    from kaizen import __version__

    parser.add_argument("--version", action="version", version=f"kaizen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a domain not built into this tree
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # here, not at exit: a reader gone early shows up inside the try
    except BrokenPipeError:
        return _reader_gone()


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
    except KaizenError as exc:
        print(f"kaizen: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kaizen: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, what `yes | head` reports under pipefail


def _reader_gone() -> int:
    """The reader of our output went away (`kaizen log stats DIR | head -1`): stop quietly.

    As the Python docs advise (signal module, "Note on SIGPIPE"), point stdout at /dev/null so
    the interpreter's final flush of what is still buffered cannot raise again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a descriptor (captured in-process)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
