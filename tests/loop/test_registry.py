"""Model registry: immutable content-addressed versions, pointer moves and their lineage records."""

from __future__ import annotations

import os

import msgspec
import pytest

from kaizen.config import LineageConfig
from kaizen.errors import RegistryError
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import PointerMove
from kaizen.lineage.writer import LineageWriter
from kaizen.models import registry as regmod
from kaizen.models.registry import FLAT, ModelRegistry


class Sink:
    def __init__(self):
        self.records = []
        self.flushes = 0

    def append(self, rec):
        self.records.append(rec)

    def flush(self):
        self.flushes += 1


def _reg(reg, role="signal", tag=b"a", **kw):
    return reg.register(
        role,
        {"model.json": b'{"trees": "' + tag + b'"}', "model.so": b"\x7fELF" + tag},
        data_start=1,
        data_end=2,
        params={"trees": 200, "eta": 0.05, "pooled": True, "objective": "binary:logistic"},
        metrics={"auc": 0.55},
        run_id="run-1",
        **kw,
    )


def test_versions_are_content_addressed_and_immutable(tmp_path):
    reg = ModelRegistry(tmp_path)
    a = _reg(reg)
    assert len(a.version) == 16
    assert _reg(reg) == a  # same content: same version, nothing rewritten
    b = _reg(reg, tag=b"b", parents=[a.version])
    assert b.version != a.version and b.parents == [a.version]
    assert reg.read(a.version, "model.so") == b"\x7fELFa"
    p = reg.path(a.version, "model.json")
    assert p.name == a.files["model.json"] and p.stat().st_mode & 0o222 == 0  # stored read-only
    # the same bytes under two versions are stored once
    c = reg.register("signal", {"model.json": b'{"trees": "a"}'}, run_id="other")
    assert c.files["model.json"] == a.files["model.json"]
    assert len([f for f in (tmp_path / "objects").rglob("*") if f.is_file()]) == 4
    # a different role with the same files is a different version
    d = _reg(reg, role="exit")
    assert d.version != a.version and d.role == "exit"
    # a fresh process sees the same versions
    reg2 = ModelRegistry(tmp_path)
    assert reg2.version(a.version) == a and [v.version for v in reg2.versions("exit")] == [d.version]
    assert reg2.fsck() == []


def test_register_rejects_bad_input(tmp_path):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="at least one model file"):
        reg.register("signal", {})
    with pytest.raises(RegistryError, match="bad role"):
        reg.register("sig/../x", {"m": b"x"})
    with pytest.raises(RegistryError, match="unknown model version"):
        reg.register("signal", {"m": b"x"}, parents=["0123456789abcdef"])
    with pytest.raises(RegistryError, match="unknown model version"):
        reg.version("../../etc/passwd")


def test_promotion_moves_every_pointer_in_one_commit(tmp_path):
    sink = Sink()
    reg = ModelRegistry(tmp_path, lineage=sink)
    a, b = _reg(reg).version, _reg(reg, tag=b"b").version
    assert reg.champion("signal") == FLAT and reg.last_known_good("signal") == ""
    reg.add_shadow("signal", a, reason="nightly", ts=10, parents=[77])
    reg.add_shadow("signal", b, reason="nightly", ts=10)
    moves = reg.promote("signal", a, reason="gate: p=0.01 DSR=0.97", ts=20, parents=[99])
    assert reg.txn == 3
    assert [(m.pointer, m.old, m.new) for m in moves] == [
        ("champion", FLAT, a),
        ("last_known_good", "", FLAT),
        ("shadow", a, ""),
    ]
    assert all(m.txn == 3 and m.parents == [99] and m.ts == 20 and m.action == "promote" for m in moves)
    assert sink.records[-3:] == moves and sink.flushes == 3
    rp = reg.pointers("signal")
    assert (rp.champion, rp.shadows, rp.last_known_good, rp.retired) == (a, [b], FLAT, [])
    reg.promote("signal", b, reason="better", ts=30)
    assert reg.last_known_good("signal") == a and reg.shadows("signal") == []
    # drift: roll back to a; b is retired; a second rollback goes flat
    moves = reg.rollback("signal", reason="drift alarm 123", ts=40, parents=[123])
    assert [(m.pointer, m.old, m.new) for m in moves] == [
        ("champion", b, a),
        ("last_known_good", a, FLAT),
        ("retired", "", b),
    ]
    reg.rollback("signal", reason="drift again", ts=50)
    rp = reg.pointers("signal")
    assert (rp.champion, rp.last_known_good, rp.retired) == (FLAT, "", [b, a])
    with pytest.raises(RegistryError, match="no last known-good"):
        reg.rollback("signal", reason="x")
    # every move is in the sink, in commit order, once
    assert [m.txn for m in sink.records] == sorted(m.txn for m in sink.records)
    assert len({m.id for m in sink.records}) == len(sink.records)
    # pointers survive re-opening
    reg2 = ModelRegistry(tmp_path, lineage=Sink())
    assert reg2.pointers("signal") == rp and reg2.txn == reg.txn and reg2.recovery.reemitted == 0


def test_illegal_moves_change_nothing(tmp_path):
    reg = ModelRegistry(tmp_path, lineage=Sink())
    a, b = _reg(reg).version, _reg(reg, tag=b"b").version
    other = _reg(reg, role="exit").version
    reg.add_shadow("signal", a, reason="r")
    before = (reg.txn, (tmp_path / "pointers.json").read_bytes())
    for call, msg in [
        (lambda: reg.add_shadow("signal", a, reason="r"), "already a shadow"),
        (lambda: reg.add_shadow("signal", other, reason="r"), "belongs to role"),
        (lambda: reg.promote("signal", other, reason="r"), "belongs to role"),
        (lambda: reg.retire("signal", b + "0", reason="r"), "unknown model version"),
        (lambda: reg.promote("signal", FLAT, reason="r"), "already the champion"),
        (lambda: reg.rollback("signal", reason="r"), "no last known-good"),
    ]:
        with pytest.raises(RegistryError, match=msg):
            call()
    assert (reg.txn, (tmp_path / "pointers.json").read_bytes()) == before
    reg.retire("signal", a, reason="lost to flat")
    with pytest.raises(RegistryError, match="retired"):
        reg.promote("signal", a, reason="r")
    with pytest.raises(RegistryError, match="retired"):
        reg.add_shadow("signal", a, reason="r")
    reg.promote("signal", b, reason="r")
    with pytest.raises(RegistryError, match="champion or last known-good"):
        reg.retire("signal", b, reason="r")


def test_outbox_is_redelivered_after_a_crash_before_delivery(tmp_path):
    """A commit whose records never reached the appender (process died in between) is delivered by
    the next open, with the same record ids; a delivered one is not delivered twice."""
    first = Sink()
    reg = ModelRegistry(tmp_path, lineage=first)
    a = _reg(reg).version
    reg.add_shadow("signal", a, reason="r")
    moves = reg.promote("signal", a, reason="r")
    (tmp_path / "emitted").write_text("1\n")  # as if we died between the rename and the delivery
    sink = Sink()
    reg2 = ModelRegistry(tmp_path, lineage=sink)
    assert reg2.recovery.reemitted == 3
    assert sink.records == moves  # same records, same ids
    again = Sink()
    ModelRegistry(tmp_path, lineage=again)
    assert again.records == []


def test_recover_removes_temp_files_of_dead_writers(tmp_path):
    reg = ModelRegistry(tmp_path)
    a = _reg(reg).version
    dead = 2**22 + 12345  # above pid_max on this box: no such process
    for p in [
        tmp_path / f"pointers.json.tmp-{dead}-abcd",
        tmp_path / "versions" / f"x.json.tmp-{dead}-00ff",
        tmp_path / "objects" / "ab" / f"ab00.tmp-{dead}-1234",
    ]:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"partial")
    live = tmp_path / f"pointers.json.tmp-{os.getpid()}-beef"
    live.write_bytes(b"mine, in progress")
    rep = ModelRegistry(tmp_path).recovery
    assert len(rep.temp_files_removed) == 3 and live.exists()
    assert ModelRegistry(tmp_path).fsck() == [] and a


def test_corrupt_files_are_one_line_errors(tmp_path):
    reg = ModelRegistry(tmp_path)
    a = _reg(reg).version
    obj = reg.path(a, "model.so")
    os.chmod(obj, 0o644)
    obj.write_bytes(b"flipped")
    with pytest.raises(RegistryError, match="corrupt"):
        reg.read(a, "model.so")
    assert any("corrupt" in p for p in reg.fsck())
    (tmp_path / "pointers.json").write_bytes(b'{"txn": 3, "roles": {')
    with pytest.raises(RegistryError, match="unreadable pointer state") as err:
        ModelRegistry(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "pointers.json").write_bytes(
        msgspec.json.encode({"txn": 1, "roles": {"signal": {"champion": "0123456789abcdef"}}})
    )
    with pytest.raises(RegistryError, match="unknown model version"):
        ModelRegistry(tmp_path)


def test_moves_reach_a_real_lineage_log(tmp_path):
    with LineageWriter(tmp_path / "log", LineageConfig(fsync="never")) as w:
        reg = ModelRegistry(tmp_path / "reg", lineage=w)
        a = _reg(reg).version
        reg.add_shadow("signal", a, reason="nightly")
        reg.promote("signal", a, reason="gate")
    recs = list(LineageReader(tmp_path / "log").records())
    assert all(isinstance(r, PointerMove) for r in recs)
    assert [(r.action, r.pointer) for r in recs] == [
        ("add_shadow", "shadow"),
        ("promote", "champion"),
        ("promote", "last_known_good"),
        ("promote", "shadow"),
    ]
    assert recs[1].model == a


def test_failpoint_hook_is_off_by_default():
    assert regmod._FAULT is None


class FailingSink(Sink):
    def __init__(self):
        super().__init__()
        self.fail = True

    def append(self, rec):
        if self.fail:
            raise OSError("disk full")
        super().append(rec)


def test_failed_delivery_keeps_the_move_and_retries(tmp_path):
    sink = FailingSink()
    reg = ModelRegistry(tmp_path, lineage=sink)
    a = _reg(reg).version
    first = reg.add_shadow("signal", a, reason="r")  # committed even though the log refused it
    assert reg.shadows("signal") == [a] and sink.records == []
    sink.fail = False
    second = reg.promote("signal", a, reason="r")
    assert sink.records == first + second  # the earlier records ride along with the next commit
    again = Sink()
    ModelRegistry(tmp_path, lineage=again)
    assert again.records == []
