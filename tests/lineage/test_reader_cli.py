"""Reader filters and index seeking, segment rolling, unknown record types, and the `kaizen log` CLI."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import msgspec

from kaizen.config import LineageConfig
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import Base, Decision, Order
from kaizen.lineage.scan import read_index, segment_paths
from kaizen.lineage.writer import LineageWriter
from tests.conftest import REPO, run_kaizen
from tests.lineage.demo import T0, demo_records


def _write(d, recs, **cfg):
    with LineageWriter(d, LineageConfig(fsync="never", **cfg)) as w:
        for r in recs:
            w.append(r)
    return recs


def test_filters_match_a_plain_python_filter(tmp_path):
    recs = _write(tmp_path, demo_records(bars=30))
    r = LineageReader(tmp_path)
    assert list(r.records()) == recs
    assert list(r.records(types=["decision"])) == [x for x in recs if x.__struct_config__.tag == "decision"]
    assert list(r.records(symbol="ETHUSDT", types="order")) == [
        x for x in recs if isinstance(x, Order) and x.symbol == "ETHUSDT"
    ]
    assert list(r.records(model="base-mom-v3")) == [x for x in recs if x.model == "base-mom-v3"]
    since, until = T0 + 5 * 3_600_000_000_000, T0 + 9 * 3_600_000_000_000
    assert list(r.records(since_ns=since, until_ns=until)) == [x for x in recs if since <= x.ts <= until]
    assert list(r.records(seq_from=17, seq_to=40)) == recs[17:41]
    assert r.damage == []


def test_rolls_by_size_and_seeks_by_index(tmp_path):
    recs = [
        Decision(id=i, ts=10 * i, strategy="s", signal=float(i), target_qty=0.0, position_qty=0.0, price=1.0)
        for i in range(20_000)
    ]
    with LineageWriter(tmp_path, LineageConfig(fsync="never", segment_max_bytes=20_000)) as w:
        for i, r in enumerate(recs):
            w.append(r)
            if i % 500 == 499:
                w.flush()
    segs = segment_paths(tmp_path)
    assert len(segs) >= 3
    assert [int(s.stem) for s in segs] == sorted(int(s.stem) for s in segs)
    assert int(segs[0].stem) == 0 and all(read_index(s) for s in segs)
    r = LineageReader(tmp_path)
    frames = list(r.frames(seq_from=12_100, seq_to=12_200))
    assert len(frames) == 1  # the index picked the one frame, nothing else was decompressed
    assert [x.id for x in r.records(seq_from=12_100, seq_to=12_200)] == list(range(12_100, 12_201))
    frames = list(r.frames(since_ns=10 * 19_990))
    assert len(frames) == 1
    assert [x.id for x in r.records(since_ns=10 * 19_990)] == list(range(19_990, 20_000))
    assert list(r.records()) == recs


def test_rolls_by_time(tmp_path):
    cfg = LineageConfig(fsync="never", segment_max_seconds=0)  # every write cycle starts a new segment
    with LineageWriter(tmp_path, cfg) as w:
        for i in range(3):
            w.append(
                Decision(id=i, ts=i, strategy="s", signal=0.0, target_qty=0.0, position_qty=0.0, price=1.0)
            )
            w.flush()
    assert len(segment_paths(tmp_path)) == 3
    assert [x.id for x in LineageReader(tmp_path).records()] == [0, 1, 2]


class FutureThing(Base, tag="future_thing"):  # a record type this reader does not know
    payload: str


def test_unknown_record_type_is_named_not_a_crash(tmp_path):
    enc = msgspec.msgpack.Encoder()
    with LineageWriter(tmp_path) as w:
        w.append(Decision(id=1, ts=1, strategy="s", signal=0.0, target_qty=0.0, position_qty=0.0, price=1.0))
        w.append_encoded(enc.encode(FutureThing(id=2, ts=2, payload="x")))
        w.append(Order(id=3, ts=3, client_order_id="c", side="buy", order_type="market", qty=1.0))
    r = LineageReader(tmp_path)
    assert [x.id for x in r.records()] == [1, 3]
    assert r.unknown == {("future_thing", 1): 1}
    assert "unknown type 'future_thing' (segment schema 1" in r.unknown_messages()[0]
    c = run_kaizen("log", "cat", str(tmp_path))
    assert c.returncode == 0 and len(c.stdout.splitlines()) == 2
    assert "unknown type 'future_thing'" in c.stderr


def test_trace_walks_back_to_training_data_and_forward_to_fills(tmp_path):
    recs = _write(tmp_path, demo_records(bars=4))
    by_id = {x.id: x for x in recs}
    order = next(x for x in recs if isinstance(x, Order))
    dec = by_id[order.parents[0]]
    fill = next(x for x in recs if x.parents == [order.id])
    t = run_kaizen("log", "trace", str(tmp_path), str(dec.id))
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].startswith("decision (model meta-v7): ")
    body = "\n".join(lines)
    for pid in dec.parents:  # features and both predictions
        assert f'"id":{pid},' in body
    assert (
        "<- features" in body
        and "<- prediction (model base-mom-v3)" in body
        and "<- prediction (model meta-v7)" in body
    )
    assert (
        "trained by run nightly-20240531 on data 2024-03-03T00:00:00.000 .. 2024-05-31T23:00:00.000" in body
    )
    assert '-> order: {"type":"order"' in body and f'"id":{order.id},' in body
    assert f'"id":{fill.id},' in body and "-> fill" in body
    missing = run_kaizen("log", "trace", str(tmp_path), "12345")
    assert missing.returncode == 2 and "no record with id 12345" in missing.stderr


def test_ls_stats_cat_filters(tmp_path):
    recs = _write(tmp_path, demo_records(bars=10))
    ls = run_kaizen("log", "ls", str(tmp_path))
    assert ls.returncode == 0 and f"{len(recs):,} records" in ls.stdout and "ok" in ls.stdout
    st = run_kaizen("log", "stats", str(tmp_path))
    assert st.returncode == 0
    n_dec = sum(1 for x in recs if isinstance(x, Decision))
    assert any(line.split()[:2] == ["decision", str(n_dec)] for line in st.stdout.splitlines()), st.stdout
    assert "meta-v7" in st.stdout and "BTCUSDT" in st.stdout
    c = run_kaizen(
        "log",
        "cat",
        str(tmp_path),
        "--type",
        "decision",
        "--symbol",
        "BTCUSDT",
        "--since",
        "2024-06-01T03:00",
        "--until",
        "2024-06-01T06:00:00Z",
        "--model",
        "meta-v7",
    )
    got = [json.loads(line) for line in c.stdout.splitlines()]
    expect = [
        json.loads(msgspec.json.encode(x))
        for x in recs
        if isinstance(x, Decision)
        and x.symbol == "BTCUSDT"
        and T0 + 3 * 3600 * 10**9 <= x.ts <= T0 + 6 * 3600 * 10**9
    ]
    assert got == expect and len(got) == 3


def test_tail_follow_sees_records_as_they_are_written(tmp_path):
    with LineageWriter(tmp_path, LineageConfig(flush_interval_ms=5)) as w:
        w.append(Decision(id=1, ts=1, strategy="s", signal=0.0, target_qty=0.0, position_qty=0.0, price=1.0))
        w.flush()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kaizen",
                "log",
                "tail",
                "-f",
                "-n",
                "1",
                "--interval",
                "0.05",
                str(tmp_path),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in p.stdout], daemon=True).start()
        try:
            assert json.loads(lines.get(timeout=30))["id"] == 1
            for i in range(2, 5):
                w.append(
                    Decision(
                        id=i, ts=i, strategy="s", signal=0.0, target_qty=0.0, position_qty=0.0, price=1.0
                    )
                )
                w.flush()
                assert json.loads(lines.get(timeout=30))["id"] == i
            assert lines.empty()
        finally:
            p.kill()
            p.wait()


def test_trained_dictionary_round_trip(tmp_path):
    import zstandard

    recs = demo_records(bars=40)
    enc = msgspec.msgpack.Encoder()
    samples = [enc.encode(x) for x in recs] * 20
    dict_path = tmp_path / "lineage.dict"
    dict_path.write_bytes(zstandard.train_dictionary(4096, samples).as_bytes())
    log = tmp_path / "log"
    _write(log, recs, zstd_dict=str(dict_path))
    assert (log / "zstd.dict").read_bytes() == dict_path.read_bytes()
    r = LineageReader(log)
    assert list(r.records()) == recs and r.damage == []
    assert run_kaizen("log", "verify", str(log)).returncode == 0
    # the dictionary is part of the log: without it frames are reported, not misread
    (log / "zstd.dict").unlink()
    r = LineageReader(log)
    assert list(r.records()) == [] and "needs zstd.dict" in r.damage_detail[0].reason


def test_time_filter_is_exact_when_timestamps_are_out_of_order(tmp_path):
    import random

    rng = random.Random(5)
    recs = [
        Decision(
            id=i,
            ts=rng.randrange(0, 10**6),
            strategy="s",
            signal=0.0,
            target_qty=0.0,
            position_qty=0.0,
            price=1.0,
        )
        for i in range(5000)
    ]
    with LineageWriter(tmp_path, LineageConfig(fsync="never", segment_max_bytes=8000)) as w:
        for i, r in enumerate(recs):
            w.append(r)
            if i % 300 == 0:
                w.flush()
    r = LineageReader(tmp_path)
    for lo, hi in [(0, 10), (123_456, 130_000), (999_000, 10**6), (500_000, 400_000)]:
        assert list(r.records(since_ns=lo, until_ns=hi)) == [x for x in recs if lo <= x.ts <= hi]


def test_frame_being_written_is_not_damage_while_the_writer_is_open(tmp_path):
    from kaizen.lineage import format as fmt

    w = LineageWriter(tmp_path)
    w.append(Decision(id=1, ts=1, strategy="s", signal=0.0, target_qty=0.0, position_qty=0.0, price=1.0))
    w.flush()
    seg = segment_paths(tmp_path)[0]
    frame = seg.read_bytes()[fmt.SEG_HEADER_SIZE :]
    with open(seg, "ab") as fh:  # what a reader sees mid-write: a whole header, half a payload
        fh.write(frame[: fmt.FRAME_HEADER_SIZE + 5])
    r = LineageReader(tmp_path)
    assert [x.id for x in r.records()] == [1] and r.damage == []
    w._lockfile.close()  # as if the writer had died: now the half frame is a torn tail
    r = LineageReader(tmp_path)
    assert [x.id for x in r.records()] == [1]
    assert r.damage == [(str(seg), len(frame) + fmt.SEG_HEADER_SIZE, fmt.FRAME_HEADER_SIZE + 5)]
    w.close()  # nothing pending: writes nothing, stops its thread
