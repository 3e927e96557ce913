"""Registry crash safety with real processes: a child registering versions and moving pointers
(shadow, promote, retire, rollback) is SIGKILLed at random moments -- and, in a second test, at each
named step of a write. After every kill the registry is re-opened (recover) and checked:

- consistency: fsck is clean (pointer invariants, every version file and object intact);
- atomicity: replaying the PointerMove records in the lineage log commit by commit gives exactly
  the pointers on disk, and the log holds every record of every commit up to the registry's commit
  number and none beyond it (no half-moved promotion, no record of an uncommitted move);
- durability: every move the child reported (acknowledged on a pipe after the call returned) is
  there: its commit number <= the registry's and its records are in the log.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import select
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from kaizen.config import LineageConfig
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import PointerMove
from kaizen.lineage.writer import LineageWriter
from kaizen.models import registry as regmod
from kaizen.models.registry import FLAT, ModelRegistry, RolePointers

ROLES = ("signal", "exit")
STEPS = ("object", "version", "state_tmp", "state_renamed", "state_synced", "emitted", "marked")
LOG = LineageConfig(fsync="never", flush_interval_ms=5)


def _child(root: str, log: str, ack_fd: int, seed: int, fault: str, fault_at: int) -> None:
    try:
        if fault:
            hits = [0]

            def die(step: str) -> None:
                if step == fault:
                    hits[0] += 1
                    if hits[0] >= fault_at:
                        os.kill(os.getpid(), signal.SIGKILL)

            regmod._FAULT = die
        w = LineageWriter(log, LOG)
        reg = ModelRegistry(root, lineage=w)
        rng = random.Random(seed)
        k = 0
        while True:
            role = rng.choice(ROLES)
            rp = reg.pointers(role)
            r = rng.random()
            if len(rp.shadows) < 2 or r < 0.3:
                k += 1
                mv = reg.register(
                    role,
                    {"model.json": f"{seed}-{k}".encode() * 50, "model.so": os.urandom(64)},
                    parents=[rp.champion] if rp.champion != FLAT else [],
                    data_start=k,
                    data_end=k + 1,
                    run_id=f"run-{seed}-{k}",
                )
                moves, action, v = (
                    reg.add_shadow(role, mv.version, reason="nightly"),
                    "add_shadow",
                    mv.version,
                )
            elif r < 0.6:
                v = rng.choice(rp.shadows)
                moves, action = reg.promote(role, v, reason="gate passed"), "promote"
            elif r < 0.8:
                v = rng.choice(rp.shadows)
                moves, action = reg.retire(role, v, reason="gate failed"), "retire"
            elif rp.last_known_good and rp.last_known_good != rp.champion:
                moves, action, v = reg.rollback(role, reason="drift"), "rollback", rp.last_known_good
            else:
                continue
            # Reported only after the call returned: committed, delivered to the log and flushed.
            os.write(ack_fd, f"{moves[0].txn} {role} {action} {v}\n".encode())
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(3)


def _replay(moves: list[PointerMove]) -> dict[str, RolePointers]:
    roles: dict[str, RolePointers] = defaultdict(RolePointers)
    for m in sorted(moves, key=lambda m: (m.txn, m.id)):
        rp = roles[m.role]
        if m.pointer == "champion":
            rp.champion = m.new
        elif m.pointer == "last_known_good":
            rp.last_known_good = m.new
        else:
            s = rp.shadows if m.pointer == "shadow" else rp.retired
            if m.old:
                s.remove(m.old)
            if m.new:
                s.append(m.new)
    return dict(roles)


def _check(root: Path, log: Path, acks: list[tuple[int, str, str, str]]) -> tuple[int, int]:
    with LineageWriter(log, LOG) as w:
        reg = ModelRegistry(root, lineage=w)  # recover() runs here
    assert reg.fsck() == [], reg.fsck()
    assert not list(root.rglob("*.tmp-*")), "temp files left after recover"
    by_id: dict[int, PointerMove] = {}
    dups = 0
    for rec in LineageReader(log).records():
        assert isinstance(rec, PointerMove)
        if rec.id in by_id:
            assert by_id[rec.id] == rec, "two different records with one id"
            dups += 1  # re-delivered after a kill between commit and delivery: same record, same id
        by_id[rec.id] = rec
    moves = list(by_id.values())
    txns = {m.txn for m in moves}
    assert txns == set(range(1, reg.txn + 1)), (
        f"log has commits {sorted(txns)[-5:]} but registry is at {reg.txn}"
    )
    replayed = _replay(moves)
    for role in set(replayed) | set(reg.roles()):
        assert replayed.get(role, RolePointers()) == reg.pointers(role), f"{role}: log and pointers disagree"
    by_txn = defaultdict(list)
    for m in moves:
        by_txn[m.txn].append(m)
    for txn, role, action, _v in acks:
        assert txn <= reg.txn, f"acknowledged commit {txn} lost (registry at {reg.txn})"
        assert {(m.role, m.action) for m in by_txn[txn]} == {(role, action)}
    return reg.txn, dups


def _run(tmp_path: Path, trials: int, seed: int, faults: list[tuple[str, int]] | None = None) -> dict:
    ctx = mp.get_context("fork")
    rng = random.Random(seed)
    root, log = tmp_path / "reg", tmp_path / "log"
    acks: list[tuple[int, str, str, str]] = []
    stats = {"kills": 0, "acked": 0, "redelivered": 0, "commits": 0, "during_open": 0}
    for i in range(trials):
        fault, fault_at = faults[i] if faults else ("", 0)
        rfd, wfd = os.pipe()
        p = ctx.Process(
            target=_child, args=(str(root), str(log), wfd, rng.randrange(1 << 30), fault, fault_at)
        )
        p.start()
        os.close(wfd)
        if fault:
            p.join(20)
            if p.exitcode is None:  # the step was not reached in time: kill it anyway
                os.kill(p.pid, signal.SIGKILL)
        else:
            data = b""
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0, 0.01))  # sometimes while opening / recovering
                stats["during_open"] += 1
            else:
                # once the child is moving pointers (first report in), at a random moment after
                ready, _, _ = select.select([rfd], [], [], 20)
                assert ready, "child reported no move within 20 s"
                data = os.read(rfd, 1 << 16)
                time.sleep(rng.uniform(0.0, 0.08))
            os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL, f"child exited with {p.exitcode}, not killed"
        if fault:
            data = b""
        while chunk := os.read(rfd, 1 << 16):
            data += chunk
        os.close(rfd)
        for line in data.decode().splitlines():
            txn, role, action, v = line.split()
            acks.append((int(txn), role, action, v))
        stats["kills"] += 1
        txn, dups = _check(root, log, acks)
        stats["commits"], stats["redelivered"] = txn, dups
    stats["acked"] = len(acks)
    return stats


def test_sigkill_during_moves_60_trials(tmp_path):
    s = _run(tmp_path, trials=60, seed=11)
    print(f"registry crash test: {s}")
    assert s["kills"] == 60 and s["acked"] >= 50 and s["commits"] >= s["acked"]


def test_sigkill_at_every_write_step(tmp_path):
    """Each named step of a write, reached after a random number of earlier hits, is where the child
    kills itself: every step of a promotion is covered by at least two kills."""
    rng = random.Random(5)
    faults = [(step, rng.randint(1, 6)) for step in STEPS for _ in range(2)]
    s = _run(tmp_path, trials=len(faults), seed=12, faults=faults)
    print(f"failpoint crash test: {s}")
    assert s["kills"] == len(faults) and s["commits"] > 0


@pytest.mark.slow
def test_sigkill_during_moves_400_trials(tmp_path):
    s = _run(tmp_path, trials=400, seed=13)
    print(f"registry crash test: {s}")
    assert s["kills"] == 400
