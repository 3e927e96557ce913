"""`kaizen book replay` through the real CLI in a child process; recorder → replay round trip."""

from __future__ import annotations

import gzip
import json

from kaizen.market.recorder import Recorder
from kaizen.market.replay import infer_instrument, replay
from kaizen.market.sync import StreamProcessor
from tests.conftest import run_kaizen

CAPTURE = "futures/um/stream/btcusdt_20240808.gz"


def test_replay_json_shape(shared_data):
    res = run_kaizen("book", "replay", str(shared_data / CAPTURE), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["symbol"] == "BTCUSDT"
    for side in ("bids", "asks"):
        lv = out["top"][side]
        assert len(lv) == 5 and all(isinstance(p, str) and isinstance(q, str) for p, q in lv)
        assert all(
            len(p.split(".")[1]) == 2 and len(q.split(".")[1]) == 3 for p, q in lv
        )  # as the venue prints
    assert [float(p) for p, _ in out["top"]["bids"]] == sorted(
        (float(p) for p, _ in out["top"]["bids"]), reverse=True
    )
    assert [float(p) for p, _ in out["top"]["asks"]] == sorted(float(p) for p, _ in out["top"]["asks"])
    assert float(out["top"]["bids"][0][0]) < float(out["top"]["asks"][0][0])
    assert out["messages"] == {"depthUpdate": 6551, "bookTicker": 66089, "trade": 21313, "snapshot": 1}
    assert out["gaps"] == 0 and out["resyncs"] == 0
    assert out["bookticker_checked"] > 60_000 and out["bookticker_disagreements"] == 0


def test_replay_text_and_errors(shared_data, tmp_path):
    res = run_kaizen("book", "replay", str(shared_data / CAPTURE))
    assert res.returncode == 0 and "unexplained disagreements=0" in res.stdout and "BTCUSDT" in res.stdout
    res = run_kaizen("book", "replay", str(tmp_path / "missing.gz"))
    assert res.returncode == 2 and "missing.gz" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    res = run_kaizen("book", "replay", str(bad))
    assert res.returncode == 2 and "bad.gz" in res.stderr and "Traceback" not in res.stderr
    res = run_kaizen("book", "replay", str(shared_data / CAPTURE), "--speed", "0")
    assert res.returncode == 2 and "--speed" in res.stderr


def test_recorder_round_trip_and_paced(shared_data, tmp_path):
    src = shared_data / CAPTURE
    with gzip.open(src, "rb") as fh:
        head = [ln.rstrip(b"\n").split(b" ", 1) for _, ln in zip(range(800), fh, strict=False)]
    rec_path = tmp_path / "rec.gz"
    with Recorder(rec_path, flush_every_s=0.01) as rec:
        for ts, raw in head:
            if raw.startswith(b'{"lastUpdateId"'):
                rec.write_snapshot(int(ts), "BTCUSDT", raw)  # the wrapped form our feed writes
            else:
                rec.write(int(ts), raw)
    inst = infer_instrument(rec_path)
    assert inst["symbol"] == "BTCUSDT" and inst["tick_size"] == 0.1
    a = StreamProcessor(["BTCUSDT"], {"BTCUSDT": 0.1}, {"BTCUSDT": 0.001})
    replay(rec_path, a, "BTCUSDT", paced=True, speed=1000.0)
    b = StreamProcessor(["BTCUSDT"], {"BTCUSDT": 0.1}, {"BTCUSDT": 0.001})
    for ts, raw in head:
        if raw.startswith(b'{"lastUpdateId"'):
            b.process_snapshot("BTCUSDT", raw, int(ts))
        else:
            b.process(raw, int(ts))
    assert a.stats == b.stats and a.stats["snapshot"] == 1 and a.book("BTCUSDT").valid
    assert a.book("BTCUSDT").depth_ticks(2000) == b.book("BTCUSDT").depth_ticks(2000)


def test_fast_and_paced_replay_agree_and_count_bad_lines(shared_data, tmp_path):
    with gzip.open(shared_data / CAPTURE, "rb") as fh:
        head = [ln for _, ln in zip(range(1500), fh, strict=False)]
    junk = [b"no-timestamp here\n", b"12x {}\n", b"\n", b"99999999999999999999999 {}\n", b"5 not json\n"]
    body = b"".join(head[:700] + junk + head[700:])
    path = tmp_path / "mixed.gz"
    path.write_bytes(gzip.compress(body[:-1]))  # no final newline: the last line still counts
    fast = StreamProcessor(["BTCUSDT"], {"BTCUSDT": 0.1}, {"BTCUSDT": 0.001})
    n_fast = replay(path, fast, "BTCUSDT")
    paced = StreamProcessor(["BTCUSDT"], {"BTCUSDT": 0.1}, {"BTCUSDT": 0.001})
    n_paced = replay(path, paced, "BTCUSDT", paced=True, speed=1e6)
    assert n_fast == n_paced == 1500 + 4  # the blank line is not counted
    assert fast.stats == paced.stats
    assert fast.stats["bad"] == 4 and fast.book("BTCUSDT").valid
