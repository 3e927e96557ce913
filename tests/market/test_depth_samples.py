"""Binance's published depth samples (CSV): the snapshot parses exactly, and the sample diff, which
is ~20 minutes newer than the snapshot, is recognised as unbridgeable (stale snapshot)."""

from __future__ import annotations

import csv
import json

from kaizen.market.sync import StreamProcessor


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_depth_samples(shared_data):
    d = shared_data / "futures/um/depth-samples"
    snap_rows = read(d / "btcusdt-depth-snap.csv")
    upd_rows = read(d / "btcusdt-depth-update.csv")
    snap = {
        "lastUpdateId": int(snap_rows[0]["last_update_id"]),
        "E": int(snap_rows[0]["timestamp"]),
        "bids": [[r["price"], r["qty"]] for r in snap_rows if r["side"] == "b"],
        "asks": [[r["price"], r["qty"]] for r in snap_rows if r["side"] == "a"],
    }
    u0 = upd_rows[0]
    diff = {
        "stream": "btcusdt@depth@0ms",
        "data": {
            "e": "depthUpdate",
            "E": int(u0["timestamp"]),
            "T": int(u0["timestamp"]),
            "s": "BTCUSDT",
            "U": int(u0["first_update_id"]),
            "u": int(u0["last_update_id"]),
            "pu": int(u0["pu"]),
            "b": [[r["price"], r["qty"]] for r in upd_rows if r["side"] == "b"],
            "a": [[r["price"], r["qty"]] for r in upd_rows if r["side"] == "a"],
        },
    }
    proc = StreamProcessor(
        ["BTCUSDT"],
        {"BTCUSDT": 0.1},
        {"BTCUSDT": 0.001},
        book_kwargs={"price_precision": 2, "qty_precision": 3},
    )
    proc.process(json.dumps(diff).encode())  # buffered: no snapshot yet
    assert proc.stats["depthUpdate"] == 1 and not proc.book("BTCUSDT").valid
    assert not proc.process_snapshot("BTCUSDT", json.dumps(snap).encode())
    assert proc.stats["stale_snapshot"] == 1 and not proc.book("BTCUSDT").valid
    # The snapshot alone, parsed: every level exactly as published, best first.
    proc2 = StreamProcessor(
        ["BTCUSDT"],
        {"BTCUSDT": 0.1},
        {"BTCUSDT": 0.001},
        book_kwargs={"price_precision": 2, "qty_precision": 3},
    )
    assert proc2.process_snapshot("BTCUSDT", json.dumps(snap).encode())
    bids, asks = proc2.book("BTCUSDT").depth_strings(1000)
    assert bids == sorted(snap["bids"], key=lambda x: -float(x[0]))
    assert asks == sorted(snap["asks"], key=lambda x: float(x[0]))
