"""`kaizen log ...`: list, print, follow, count, verify and trace a lineage log."""

from __future__ import annotations

import argparse
import sys
import time

from kaizen.errors import KaizenError


def register(subparsers) -> None:
    log = subparsers.add_parser("log", help="inspect a lineage log (segments, records, verify, trace)")
    sub = log.add_subparsers(dest="log_command", metavar="SUBCOMMAND")
    log.set_defaults(func=lambda args: (log.print_help(), 2)[1])

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "dir",
            nargs="?",
            default=None,
            help="a lineage log or the run directory holding it (default: the log under ./runs "
            "written to most recently, as `kaizen run` and `kaizen demo` write there)",
        )
        p.set_defaults(func=func)
        return p

    add("ls", "list segments: size, record count, sequence and time span, compression ratio", _ls)
    p = add("cat", "print records as JSON lines, filtered", _cat)
    _filters(p)
    p = add("tail", "print the last records; with -f keep following the log", _tail)
    p.add_argument("-n", type=int, default=10, help="records to show first (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing records as they are written")
    p.add_argument("--interval", type=float, default=0.2, help="poll interval in seconds with -f")
    p = add("stats", "counts and rates by type, symbol and model version", _stats)
    _filters(p)
    add("verify", "check every checksum and decode every record; exit 1 on damage", _verify)
    p = add(
        "trace", "walk one record (a decision) back to its inputs and models, forward to orders/fills", _trace
    )
    p.add_argument("id", help="record id (decimal or 0x hex)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", action="append", help="record type (repeatable), e.g. decision, order, fill")
    p.add_argument("--symbol", help="e.g. BTCUSDT")
    p.add_argument("--model", help="model version")
    p.add_argument("--since", help="ns since epoch or ISO time (UTC if no zone)")
    p.add_argument("--until", help="ns since epoch or ISO time (UTC if no zone)")
    p.add_argument("--seq-from", type=int, help="first sequence number")
    p.add_argument("--seq-to", type=int, help="last sequence number")


def parse_time(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise KaizenError(
            f"{flag} {text!r}: not ns since epoch nor an ISO time (e.g. 2024-01-31T12:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def _reader(args):
    from kaizen.lineage.reader import LineageReader
    from kaizen.lineage.scan import segment_paths
    from kaizen.rundir import RUNS_ROOT, latest_log, resolve_log

    if args.dir is None:
        found = latest_log(RUNS_ROOT)
        if found is None:
            raise KaizenError(
                f"no lineage log under ./{RUNS_ROOT}; pass DIR (a run directory or its lineage/ folder)"
            )
        print(f"kaizen: reading {found}", file=sys.stderr)
        args.dir = str(found)
    d = resolve_log(args.dir)
    if not d.is_dir():
        raise KaizenError(f"{d}: no such lineage log directory")
    if not segment_paths(d):
        raise KaizenError(f"{d}: no lineage segments (*.kzl) here")
    args.dir = str(d)
    return LineageReader(d)


def _check_types(types: list[str] | None) -> None:
    from kaizen.lineage.records import RECORD_TYPES

    for t in types or []:
        if t not in RECORD_TYPES:
            raise KaizenError(f"--type {t!r}: unknown record type (known: {', '.join(sorted(RECORD_TYPES))})")


def _query(args) -> dict:
    _check_types(args.type)
    return dict(
        types=args.type,
        symbol=args.symbol,
        model=args.model,
        since_ns=parse_time(args.since, "--since"),
        until_ns=parse_time(args.until, "--until"),
        seq_from=args.seq_from,
        seq_to=args.seq_to,
    )


def _warn(reader) -> None:
    for seg, off, lost in reader.damage:
        print(
            f"kaizen: warning: damaged data skipped in {seg} at offset {off} ({lost} bytes)", file=sys.stderr
        )
    for msg in reader.unknown_messages():
        print(f"kaizen: warning: {msg}", file=sys.stderr)


def _emit(lines: list[bytes]) -> None:
    # A reader that goes away (`kaizen log cat | head`) raises BrokenPipeError here; kaizen.cli.main
    # turns it into a quiet exit for every command.
    sys.stdout.buffer.write(b"".join(lines))
    sys.stdout.flush()


# --- handlers -------------------------------------------------------------------------------------
def _ls(args) -> int:
    from kaizen.lineage import format as fmt
    from kaizen.lineage.scan import scan_segment

    r = _reader(args)
    rows = []
    for seg in r.segments():
        header, frames, damage, size = scan_segment(seg)
        raw = sum(f.raw_length for f in frames)
        comp = sum(f.length for f in frames)
        n = sum(f.count for f in frames)
        rows.append(
            (
                seg.name,
                size,
                len(frames),
                n,
                f"{frames[0].first_seq}-{frames[-1].last_seq}" if frames else "-",
                _span(min(f.ts_min for f in frames), max(f.ts_max for f in frames)) if frames else "-",
                f"{raw / comp:.2f}x" if comp else "-",
                f"schema {header.schema}" if header else "bad header",
                f"{len(damage)} damaged" if damage else "ok",
            )
        )
    head = ("segment", "bytes", "frames", "records", "seq", "time span (UTC)", "ratio", "schema", "check")
    _table([head, *rows])
    total = sum(row[1] for row in rows)
    print(
        f"{len(rows)} segment(s), {total:,} bytes, {sum(row[3] for row in rows):,} records, "
        f"frame overhead {fmt.FRAME_HEADER_SIZE + fmt.FRAME_TRAILER_SIZE} B"
    )
    return 0


def _span(a: int, b: int) -> str:
    return f"{_iso(a)} .. {_iso(b)}"


def _iso(ns: int) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    except (OverflowError, OSError, ValueError):
        return str(ns)


def _table(rows: list[tuple]) -> None:
    widths = [max(len(f"{row[i]}") for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                f"{v}".ljust(w) if isinstance(v, str) else f"{v}".rjust(w)
                for v, w in zip(row, widths, strict=True)
            )
        )


def _cat(args) -> int:
    import msgspec

    r = _reader(args)
    q = _query(args)
    enc = msgspec.json.Encoder()
    lines: list[bytes] = []
    for rec in r.records(**q):
        lines.append(enc.encode(rec) + b"\n")
        if len(lines) >= 4096:
            _emit(lines)
            lines = []
    _emit(lines)
    _warn(r)
    return 0


def _tail(args) -> int:
    import msgspec

    r = _reader(args)
    enc = msgspec.json.Encoder()
    # One mechanism for the first read and for following: read whole frames only, remember where
    # each segment was read to (a frame being written is not damage yet, just not there yet).
    seen: dict[str, int] = {}
    first = _poll(r, seen)
    if args.n > 0:
        _emit([enc.encode(x) + b"\n" for x in first[-args.n :]])
    if not args.follow:
        _warn(r)
        return 0
    while True:
        time.sleep(args.interval)
        out = _poll(r, seen)
        if out:
            _emit([enc.encode(x) + b"\n" for x in out])


def _poll(r, seen: dict[str, int]) -> list:
    from kaizen.lineage import format as fmt
    from kaizen.lineage.reader import Frame
    from kaizen.lineage.scan import segment_paths, walk

    out: list = []
    for seg in segment_paths(r.dir):
        pos = seen.get(seg.name, 0)
        try:
            with open(seg, "rb") as fh:
                if pos == 0:
                    header = fmt.unpack_segment_header(fh.read(fmt.SEG_HEADER_SIZE))
                    if header is None:
                        continue
                    seen[seg.name + "/schema"] = header.schema
                    pos = fmt.SEG_HEADER_SIZE
                fh.seek(pos)
                data = fh.read()
        except OSError:
            continue
        schema = seen.get(seg.name + "/schema", 0)
        base = pos
        for item in walk(data, 0, len(data), str(seg), at_eof=False, base=base):
            if isinstance(item, fmt.FrameHeader):
                p0 = item.offset - base + fmt.FRAME_HEADER_SIZE
                out += r.decode_frame(Frame(str(seg), schema, item), memoryview(data)[p0 : p0 + item.length])
                pos = item.offset + item.size
            else:
                print(
                    f"kaizen: warning: damaged data skipped in {item.segment} at offset {item.offset} "
                    f"({item.bytes_lost} bytes)",
                    file=sys.stderr,
                )
                pos = item.offset + item.bytes_lost
        seen[seg.name] = pos
    return out


def _stats(args) -> int:
    from collections import Counter

    r = _reader(args)
    q = _query(args)
    by_type: Counter = Counter()
    by_symbol: Counter = Counter()
    by_model: Counter = Counter()
    span: dict[str, list[int]] = {}
    n = 0
    for rec in r.records(**q):
        tag = rec.__struct_config__.tag
        by_type[tag] += 1
        if rec.symbol:
            by_symbol[rec.symbol] += 1
        if rec.model:
            by_model[rec.model] += 1
        s = span.setdefault(tag, [rec.ts, rec.ts])
        if rec.ts < s[0]:
            s[0] = rec.ts
        if rec.ts > s[1]:
            s[1] = rec.ts
        n += 1
    print(f"{n:,} records")
    rows = [("type", "count", "per second", "first (UTC)", "last (UTC)")]
    for tag, c in by_type.most_common():
        a, b = span[tag]
        rate = f"{c / ((b - a) / 1e9):.3f}" if b > a else "-"
        rows.append((tag, c, rate, _iso(a), _iso(b)))
    _table(rows)
    if by_symbol:
        print()
        _table([("symbol", "count"), *by_symbol.most_common()])
    if by_model:
        print()
        _table([("model", "count"), *by_model.most_common()])
    _warn(r)
    return 0


def _verify(args) -> int:
    from kaizen.lineage.scan import scan_segment

    r = _reader(args)
    frames = records = 0
    for frame, payload in r.frames():
        frames += 1
        records += len(r.decode_frame(frame, payload))
    bad_headers = []
    for seg in r.segments():
        header, _, _, _ = scan_segment(seg)
        if header is not None and header.schema > _schema():
            bad_headers.append(f"{seg}: written with schema {header.schema}, this reader knows {_schema()}")
    for msg in bad_headers + r.unknown_messages():
        print(f"note: {msg}")
    if r.damage_detail:
        for d in r.damage_detail:
            print(f"DAMAGE {d.segment} offset {d.offset}: {d.bytes_lost} bytes lost ({d.reason})")
        print(
            f"{len(r.damage_detail)} damaged region(s); {frames} intact frames, {records:,} records readable"
        )
        return 1
    print(f"OK: {len(r.segments())} segment(s), {frames} frames, {records:,} records, every checksum holds")
    return 0


def _schema() -> int:
    from kaizen.lineage.records import SCHEMA_VERSION

    return SCHEMA_VERSION


def _trace(args) -> int:
    import msgspec

    from kaizen.lineage.trace import trace

    try:
        rid = int(args.id, 0)
    except ValueError:
        raise KaizenError(f"trace id {args.id!r}: not an integer record id") from None
    r = _reader(args)
    result = trace(r, rid)
    if result is None:
        raise KaizenError(f"{args.dir}: no record with id {rid}")
    enc = msgspec.json.Encoder()
    for depth, role, rec in result:
        pad = "  " * depth
        print(f"{pad}{role}: {enc.encode(rec).decode()}")
    _warn(r)
    return 0
