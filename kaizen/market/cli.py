"""`kaizen book ...`: order-book tools (replay of recorded streams)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    book = subparsers.add_parser("book", help="order book tools: replay recorded market streams")
    sub = book.add_subparsers(dest="book_command", metavar="BOOK_COMMAND")
    rp = sub.add_parser("replay", help="replay a recorded stream file through the decode → book path")
    rp.add_argument("file", help="recording: receive_ns<space>raw_json lines, gzip or plain")
    rp.add_argument("--json", action="store_true", help="print one JSON object (for machines)")
    rp.add_argument("--paced", action="store_true", help="replay at the recorded pace instead of full speed")
    rp.add_argument("--speed", type=float, default=1.0, help="pace multiplier with --paced (default 1)")
    rp.add_argument(
        "--tick-size", type=float, default=None, help="price tick (default: inferred from the file)"
    )
    rp.add_argument(
        "--lot-size", type=float, default=None, help="quantity step (default: inferred from the file)"
    )
    rp.add_argument("--levels", type=int, default=5, help="levels per side to print (default 5)")
    rp.set_defaults(func=_replay)
    book.set_defaults(func=lambda args: (book.print_help(), 2)[1])


class _LineCount:
    """Progress adapter: the line total of a gzip stream is unknown, so show the count."""

    def __init__(self, prog) -> None:
        self.prog = prog

    def update(self, n: int) -> None:
        self.prog.update(0, f"{n} lines")


def _replay(args: argparse.Namespace) -> int:
    import time

    from kaizen.errors import KaizenError
    from kaizen.market.replay import infer_instrument, replay
    from kaizen.market.sync import StreamProcessor
    from kaizen.progress import Progress

    if args.speed <= 0:
        raise KaizenError(f"--speed must be > 0, got {args.speed}")
    if args.levels <= 0:
        raise KaizenError(f"--levels must be > 0, got {args.levels}")
    inst = infer_instrument(args.file)
    tick = args.tick_size or inst["tick_size"]
    lot = args.lot_size or inst["lot_size"]
    if tick <= 0 or lot <= 0:
        raise KaizenError(f"--tick-size/--lot-size must be > 0, got {tick}, {lot}")
    sym = inst["symbol"]
    proc = StreamProcessor(
        [sym],
        {sym: tick},
        {sym: lot},
        book_kwargs={"price_precision": inst["price_precision"], "qty_precision": inst["qty_precision"]},
    )
    t0 = time.perf_counter()
    with Progress(1, label=f"replay {sym}") as prog:
        lines = replay(args.file, proc, sym, paced=args.paced, speed=args.speed, progress=_LineCount(prog))
    elapsed = time.perf_counter() - t0
    book = proc.book(sym)
    bids, asks = book.depth_strings(args.levels)
    s = proc.stats
    messages = {
        k: s[k]
        for k in ("depthUpdate", "bookTicker", "trade", "aggTrade", "markPriceUpdate", "snapshot")
        if s[k]
    }
    for k, v in proc.unknown_types.items():
        messages[k] = v
    if s["bad"]:
        messages["bad"] = s["bad"]
    out = {
        "symbol": sym,
        "top": {"bids": bids, "asks": asks},
        "messages": messages,
        "gaps": s["gaps"],
        "resyncs": s["resyncs"],
        "bookticker_checked": s["bookticker_checked"],
        "bookticker_disagreements": s["bookticker_disagreements"],
        "bookticker_behind": s["bookticker_behind"],
        "valid": bool(book.valid),
        "last_update_id": book.last_update_id,
        "lines": lines,
        "seconds": round(elapsed, 3),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{sym}  valid={book.valid}  last_update_id={book.last_update_id}  ({lines} lines in {elapsed:.2f}s)"
    )
    print(f"{'bid qty':>12} {'bid':>12} | {'ask':<12} {'ask qty':<12}")
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else ["", ""]
        a = asks[i] if i < len(asks) else ["", ""]
        print(f"{b[1]:>12} {b[0]:>12} | {a[0]:<12} {a[1]:<12}")
    print("messages: " + ", ".join(f"{k}={v}" for k, v in messages.items()))
    print(f"gaps={s['gaps']} resyncs={s['resyncs']} bad={s['bad']}")
    chk = s["bookticker_checked"]
    dis = s["bookticker_disagreements"]
    rate = 100.0 * (chk - dis) / chk if chk else float("nan")
    print(
        f"bookTicker: checked={chk} agreement={rate:.3f}% unexplained disagreements={dis} "
        f"(book behind ticker, explained: {s['bookticker_behind']})"
    )
    return 0
