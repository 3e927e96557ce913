"""Lineage: every step of the hot path and the loop as a typed record in a crash-safe segment log.

    from kaizen.lineage.writer import LineageWriter
    with LineageWriter("runs/lineage", cfg.lineage) as w:   # repairs a torn tail on open
        w.append(record)                                    # encode + queue; no I/O
        w.append_encoded(payload)                           # hot path: already msgspec-msgpack encoded

    from kaizen.lineage.reader import LineageReader
    r = LineageReader("runs/lineage")
    for rec in r.records(types=["decision"], symbol="BTCUSDT", since_ns=..., model="meta-v7"): ...
    r.damage   # [(segment, offset, bytes_lost)] met while reading; r.unknown: record types too new

Layout on disk: `format.py`. Frame walking, checksums and tail repair: `scan.py`. `kaizen log`:
`cli.py`; trace: `trace.py`.
"""
