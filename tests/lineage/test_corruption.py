"""Flipped bytes in a middle frame: `kaizen log verify` reports it (segment + offset) and exits 1;
`kaizen log cat` skips it and prints every other record exactly."""

from __future__ import annotations

import json

import msgspec
import pytest

from kaizen.config import LineageConfig
from kaizen.lineage import format as fmt
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import Decision
from kaizen.lineage.scan import read_index, segment_paths
from kaizen.lineage.writer import LineageWriter
from tests.conftest import run_kaizen

N_FRAMES = 9
PER_FRAME = 50


def _write(d):
    recs = [
        Decision(
            id=i,
            ts=1_000 + i,
            symbol="ETHUSDT",
            strategy="s",
            signal=i / 7,
            target_qty=1.0,
            position_qty=0.0,
            price=3000.0 + i / 3,
        )
        for i in range(N_FRAMES * PER_FRAME)
    ]
    with LineageWriter(d, LineageConfig(fsync="never")) as w:
        for i, r in enumerate(recs):
            w.append(r)
            if i % PER_FRAME == PER_FRAME - 1:
                w.flush()  # one frame per flush
    return recs


@pytest.mark.parametrize("where", ["payload", "header", "trailer"])
def test_flipped_bytes_in_middle_frame(tmp_path, where):
    recs = _write(tmp_path)
    seg = segment_paths(tmp_path)[0]
    entries = read_index(seg)
    assert len(entries) == N_FRAMES
    mid = entries[N_FRAMES // 2]
    data = bytearray(seg.read_bytes())
    at = {
        "payload": mid.offset + fmt.FRAME_HEADER_SIZE + 10,
        "header": mid.offset + 20,  # the length field: header checksum must catch it
        "trailer": mid.offset + mid.size - 4,
    }[where]
    for k in range(3):
        data[at + k] ^= 0x5A
    seg.write_bytes(bytes(data))

    v = run_kaizen("log", "verify", str(tmp_path))
    assert v.returncode == 1, v.stdout + v.stderr
    assert f"DAMAGE {seg} offset {mid.offset}: {mid.size} bytes lost" in v.stdout, v.stdout
    assert v.stdout.count("DAMAGE") == 1, v.stdout

    c = run_kaizen("log", "cat", str(tmp_path))
    assert c.returncode == 0, c.stderr
    lost = set(range(mid.first_seq, mid.last_seq + 1))
    expect = [json.loads(msgspec.json.encode(r)) for r in recs if r.id not in lost]
    got = [json.loads(line) for line in c.stdout.splitlines()]
    assert got == expect
    assert f"offset {mid.offset}" in c.stderr

    # The library view agrees, also when seeking through the index past the damage.
    r = LineageReader(tmp_path)
    assert [x.id for x in r.records(seq_from=mid.last_seq + 1)] == list(range(mid.last_seq + 1, len(recs)))
    r = LineageReader(tmp_path)
    assert len(list(r.records())) == len(recs) - PER_FRAME
    assert r.damage == [(str(seg), mid.offset, mid.size)]


def test_verify_clean_log_and_bad_input(tmp_path):
    _write(tmp_path)
    v = run_kaizen("log", "verify", str(tmp_path))
    assert v.returncode == 0 and f"{N_FRAMES} frames, {N_FRAMES * PER_FRAME:,} records" in v.stdout
    missing = run_kaizen("log", "verify", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such lineage log directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_kaizen("log", "cat", str(tmp_path), "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr
    bad = run_kaizen("log", "cat", str(tmp_path), "--type", "decisions")
    assert bad.returncode == 2 and "unknown record type" in bad.stderr
