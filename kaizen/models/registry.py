"""Model registry: immutable, content-addressed model versions and movable pointers per role.

Layout of a registry directory::

    objects/ab/ab12...ef        model files, named by the sha256 of their bytes (read-only, shared)
    versions/<version>.json     one immutable ModelVersion per file (JSON), never rewritten
    pointers.json               every role's pointers + the commit number + the lineage outbox
    emitted                     number of the last commit whose lineage records were handed over
    lock                        flock'd by whoever moves pointers (one mover at a time, any process)

A version (`ModelVersion`) is named by a hash of its content: the sha256 of each model file, the
role, parents, training data range and hash, parameters, validation metrics and the training run.
Registering the same content twice returns the same version; nothing about a version ever changes.

Pointers per role: `champion` (a version or `flat`, the default), `shadows` (a set),
`last_known_good` ("" when none; `flat` counts) and `retired` (a set). They move only through
`add_shadow`, `retire`, `promote` and `rollback`. A promotion moves up to four pointers (champion ->
new, old champion -> last known-good, the new one out of the shadows); all pointers of all roles
live in ONE file, so a move of any number of pointers is committed by one atomic rename:

    1. write pointers.json.tmp-<pid>-<rand> (new state, commit number txn + 1, and the outbox: the
       PointerMove records of this commit), fsync it;
    2. rename it over pointers.json, fsync the directory            <- the commit point;
    3. hand the outbox records to the lineage appender and flush it (if it has `flush`);
    4. write `emitted` = txn (write-then-rename; not fsync'd: losing it only re-emits).
    If the appender fails at 3, the move stands (it is committed; a warning is logged) and its
    records stay in the outbox, carried into the next commit, until a delivery succeeds.

A crash before 2 leaves the previous state (and a temp file `recover()` deletes); a crash after 2
leaves the new state, and `recover()` (run on open) re-emits the outbox when `emitted` < txn. So
pointer moves are atomic and durable once a call returns, and their lineage records are delivered
at least once, always with the same record ids (a reader keeps the first of equal ids).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import msgspec

from kaizen.errors import RegistryError
from kaizen.lineage.ids import new_id
from kaizen.lineage.records import PointerMove

FLAT = "flat"
"""The pseudo-version of every role that holds no position: always valid, never stored."""

STATE_FILE = "pointers.json"
EMITTED_FILE = "emitted"
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,80}$")
_VERSION = re.compile(r"^[0-9a-f]{16}$")
_TMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")

# Test seam: a failpoint called with the name of each step of a write ("object", "version",
# "state_tmp", "state_renamed", "state_synced", "emitted", "marked"). Crash tests set it in a child
# process to SIGKILL itself at one exact step; it is None otherwise.
_FAULT: Callable[[str], None] | None = None
log = logging.getLogger(__name__)


def _fault(step: str) -> None:
    if _FAULT is not None:
        _FAULT(step)


class LineageAppender(Protocol):
    """Anything records can be handed to, e.g. kaizen.lineage.writer.LineageWriter. If it also has
    `flush()`, the registry calls it before counting the records as delivered."""

    def append(self, record) -> None: ...


Scalar = str | int | float | bool


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable model version. `files`: logical name -> sha256 of the bytes (stored under
    objects/); `data_start`/`data_end`: the training data range (ns, end exclusive); `run_id`: the
    training run; `retrain_id`: its Retrain lineage record id; `created_ts` is not hashed."""

    version: str
    role: str
    files: dict[str, str]
    sizes: dict[str, int]
    parents: list[str] = []
    data_start: int = 0
    data_end: int = 0
    data_hash: str = ""
    params: dict[str, Scalar] = {}
    metrics: dict[str, float] = {}
    run_id: str = ""
    retrain_id: int = 0
    kind: str = ""
    created_ts: int = 0


class RolePointers(msgspec.Struct, kw_only=True):
    champion: str = FLAT
    shadows: list[str] = []
    last_known_good: str = ""
    retired: list[str] = []


class _State(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: int = FORMAT
    txn: int = 0
    roles: dict[str, RolePointers] = {}
    outbox: list[PointerMove] = []


class RecoveryReport(msgspec.Struct, kw_only=True):
    txn: int
    temp_files_removed: list[str]
    reemitted: int  # lineage records of the last commit handed over again (crash before delivery)


_state_dec = msgspec.json.Decoder(_State)
_version_dec = msgspec.json.Decoder(ModelVersion)
_enc = msgspec.json.Encoder()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _write_durable(path: Path, data: bytes, step: str | None = None) -> None:
    """Write-then-rename with the file fsync'd before the rename and the directory after it."""
    tmp = _tmp_name(path)
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if step:
        _fault(f"{step}_tmp")
    os.replace(tmp, path)
    if step:
        _fault(f"{step}_renamed")
    _fsync_dir(path.parent)
    if step:
        _fault(f"{step}_synced")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def version_hash(meta: Mapping[str, object]) -> str:
    """16 hex digits of sha256 over the canonical JSON of the version's content (sorted keys)."""
    return hashlib.sha256(msgspec.json.encode(meta, order="sorted")).hexdigest()[:16]


class ModelRegistry:
    """A registry directory. Open with `ModelRegistry(root, lineage=writer)`; `recover()` runs at
    open. Thread-safe; pointer moves from several processes are serialised by a file lock and each
    starts from the state on disk."""

    def __init__(self, root: str | os.PathLike[str], lineage: LineageAppender | None = None) -> None:
        self.root = Path(root)
        self.lineage = lineage
        for sub in ("objects", "versions"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self._state = _State()
        self._versions: dict[str, ModelVersion] = {}
        self.recovery = self.recover()

    # --- recovery -------------------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Bring the directory to a consistent state after a crash: delete temp files of dead
        writers, load and check the pointers, and re-emit the last commit's lineage records if they
        were not confirmed delivered. Idempotent; called by the constructor."""
        with self._locked():
            removed = []
            for d in (self.root, self.root / "versions", *sorted((self.root / "objects").glob("*"))):
                if not d.is_dir():
                    continue
                for p in d.iterdir():
                    m = _TMP.search(p.name)
                    if m and not _pid_alive(int(m.group(1))):
                        p.unlink(missing_ok=True)
                        removed.append(str(p.relative_to(self.root)))
            if removed:
                for d in {Path(self.root / r).parent for r in removed}:
                    _fsync_dir(d)
            self._state = self._load_state()
            self._check(self._state)
            reemitted = 0
            if self._state.outbox and self._emitted() < self._state.txn:
                reemitted = self._deliver(self._state)
            return RecoveryReport(txn=self._state.txn, temp_files_removed=removed, reemitted=reemitted)

    def _load_state(self) -> _State:
        path = self.root / STATE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return _State()
        try:
            st = _state_dec.decode(data)
        except msgspec.DecodeError as exc:  # only disk corruption can do this: renames are atomic
            raise RegistryError(f"{path}: unreadable pointer state ({exc})") from None
        if st.format != FORMAT:
            raise RegistryError(f"{path}: pointer state format {st.format}, this Kaizen reads {FORMAT}")
        return st

    def _emitted(self) -> int:
        try:
            return int((self.root / EMITTED_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _deliver(self, st: _State) -> int:
        if self.lineage is not None and st.outbox:
            for rec in st.outbox:
                self.lineage.append(rec)
            _fault("emitted")
            flush = getattr(self.lineage, "flush", None)
            if flush is not None:
                flush()
        path = self.root / EMITTED_FILE
        tmp = _tmp_name(path)
        tmp.write_text(f"{st.txn}\n")
        os.replace(tmp, path)
        _fault("marked")
        return len(st.outbox) if self.lineage is not None else 0

    @contextlib.contextmanager
    def _locked(self):
        with self._mutex, open(self.root / "lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- versions -------------------------------------------------------------------------------
    def register(
        self,
        role: str,
        files: Mapping[str, bytes | str | os.PathLike[str]],
        *,
        parents: Iterable[str] = (),
        data_start: int = 0,
        data_end: int = 0,
        data_hash: str = "",
        params: Mapping[str, Scalar] | None = None,
        metrics: Mapping[str, float] | None = None,
        run_id: str = "",
        retrain_id: int = 0,
        kind: str = "",
        ts: int | None = None,
    ) -> ModelVersion:
        """Store the model files (bytes, or paths to read) content-addressed and record an immutable
        version. Returns the existing version when the same content was registered before. Moves no
        pointer. Objects are durable before the version file names them."""
        _check_name(role, "role")
        if not files:
            raise RegistryError(f"register {role}: a version needs at least one model file")
        hashes: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for name, src in files.items():
            _check_name(name, "file name")
            data = src if isinstance(src, bytes | bytearray) else Path(src).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            self._put_object(digest, bytes(data))
            hashes[name], sizes[name] = digest, len(data)
        parents = list(parents)
        for p in parents:
            if p != FLAT:
                self.version(p)  # must exist
        meta = {
            "role": role,
            "files": hashes,
            "sizes": sizes,
            "parents": parents,
            "data_start": int(data_start),
            "data_end": int(data_end),
            "data_hash": data_hash,
            "params": dict(params or {}),
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "run_id": run_id,
            "retrain_id": int(retrain_id),
            "kind": kind,
        }
        vid = version_hash(meta)
        path = self.root / "versions" / f"{vid}.json"
        if path.exists():
            return self.version(vid)
        mv = ModelVersion(version=vid, created_ts=time.time_ns() if ts is None else ts, **meta)
        tmp = _tmp_name(path)
        with open(tmp, "xb") as fh:
            fh.write(_enc.encode(mv))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # create-exclusive: a version file is written once, never replaced
        except FileExistsError:
            pass  # another process registered the same content at the same moment
        finally:
            os.unlink(tmp)
        _fsync_dir(path.parent)
        _fault("version")
        return self.version(vid)

    def _put_object(self, digest: str, data: bytes) -> None:
        d = self.root / "objects" / digest[:2]
        path = d / digest
        if path.exists():
            return
        d.mkdir(exist_ok=True)
        tmp = _tmp_name(path)
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
        _fsync_dir(d)
        _fault("object")

    def version(self, version: str) -> ModelVersion:
        mv = self._versions.get(version)
        if mv is not None:
            return mv
        if not _VERSION.match(version):
            raise RegistryError(f"unknown model version {version!r}")
        path = self.root / "versions" / f"{version}.json"
        try:
            mv = _version_dec.decode(path.read_bytes())
        except FileNotFoundError:
            raise RegistryError(f"unknown model version {version!r} (no {path})") from None
        except msgspec.DecodeError as exc:
            raise RegistryError(f"{path}: unreadable version file ({exc})") from None
        if mv.version != version:
            raise RegistryError(f"{path}: names version {mv.version}")
        self._versions[version] = mv
        return mv

    def versions(self, role: str | None = None) -> list[ModelVersion]:
        out = [self.version(p.stem) for p in sorted((self.root / "versions").glob("*.json"))]
        out = [v for v in out if role is None or v.role == role]
        return sorted(out, key=lambda v: (v.created_ts, v.version))

    def path(self, version: str, name: str) -> Path:
        """Path of one model file of a version (read-only, content-addressed)."""
        mv = self.version(version)
        try:
            digest = mv.files[name]
        except KeyError:
            raise RegistryError(f"version {version} has no file {name!r} (has {sorted(mv.files)})") from None
        return self.root / "objects" / digest[:2] / digest

    def read(self, version: str, name: str) -> bytes:
        """The bytes of one model file, checked against their hash."""
        p = self.path(version, name)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"{p}: model file of {version} missing") from None
        if hashlib.sha256(data).hexdigest() != p.name:
            raise RegistryError(f"{p}: model file of {version} is corrupt (hash mismatch)")
        return data

    # --- pointers (read) ------------------------------------------------------------------------
    @property
    def txn(self) -> int:
        """Number of pointer commits so far."""
        return self._state.txn

    def reload(self) -> None:
        """Re-read the pointers from disk (for processes that only read)."""
        with self._mutex:
            self._state = self._load_state()

    def roles(self) -> list[str]:
        return sorted(self._state.roles)

    def pointers(self, role: str) -> RolePointers:
        rp = self._state.roles.get(role) or RolePointers()
        return RolePointers(
            champion=rp.champion,
            shadows=list(rp.shadows),
            last_known_good=rp.last_known_good,
            retired=list(rp.retired),
        )

    def champion(self, role: str) -> str:
        return self.pointers(role).champion

    def shadows(self, role: str) -> list[str]:
        return self.pointers(role).shadows

    def last_known_good(self, role: str) -> str:
        return self.pointers(role).last_known_good

    def retired(self, role: str) -> list[str]:
        return self.pointers(role).retired

    # --- pointers (move) ------------------------------------------------------------------------
    def add_shadow(
        self, role: str, version: str, *, reason: str, ts: int | None = None, parents: Iterable[int] = ()
    ) -> list[PointerMove]:
        """Start shadowing `version` (registered for `role`, not champion, not retired)."""

        def change(rp: RolePointers) -> None:
            self._check_version(role, version)
            if version in rp.shadows:
                raise RegistryError(f"{role}: {version} is already a shadow")
            if version == rp.champion or version in rp.retired:
                raise RegistryError(f"{role}: {version} is the champion or retired; it cannot shadow")
            rp.shadows.append(version)

        return self._move(role, "add_shadow", reason, ts, parents, change)

    def retire(
        self, role: str, version: str, *, reason: str, ts: int | None = None, parents: Iterable[int] = ()
    ) -> list[PointerMove]:
        """Retire a shadow (or any version no pointer holds). The champion and the last known-good
        are replaced by `promote`/`rollback`, not retired directly."""

        def change(rp: RolePointers) -> None:
            self._check_version(role, version)
            if version in (rp.champion, rp.last_known_good):
                raise RegistryError(f"{role}: {version} is the champion or last known-good; not retired")
            if version in rp.retired:
                raise RegistryError(f"{role}: {version} is already retired")
            if version in rp.shadows:
                rp.shadows.remove(version)
            rp.retired.append(version)

        return self._move(role, "retire", reason, ts, parents, change)

    def promote(
        self, role: str, version: str, *, reason: str, ts: int | None = None, parents: Iterable[int] = ()
    ) -> list[PointerMove]:
        """Make `version` (a version of `role`, or FLAT) the champion, in one commit: it leaves the
        shadows, and the old champion becomes the last known-good."""

        def change(rp: RolePointers) -> None:
            if version != FLAT:
                self._check_version(role, version)
            if version == rp.champion:
                raise RegistryError(f"{role}: {version} is already the champion")
            if version in rp.retired:
                raise RegistryError(f"{role}: {version} is retired; it cannot be promoted")
            if version in rp.shadows:
                rp.shadows.remove(version)
            rp.last_known_good = rp.champion
            rp.champion = version

        return self._move(role, "promote", reason, ts, parents, change)

    def rollback(
        self, role: str, *, reason: str, ts: int | None = None, parents: Iterable[int] = ()
    ) -> list[PointerMove]:
        """Put the last known-good back as champion, in one commit: the failing champion is retired
        (unless it is FLAT) and the last known-good becomes FLAT (a second rollback goes flat)."""

        def change(rp: RolePointers) -> None:
            lkg = rp.last_known_good
            if not lkg or lkg == rp.champion:
                raise RegistryError(f"{role}: no last known-good version to roll back to")
            failed = rp.champion
            rp.champion = lkg
            rp.last_known_good = FLAT if lkg != FLAT else ""
            if failed != FLAT and failed not in rp.retired:
                rp.retired.append(failed)

        return self._move(role, "rollback", reason, ts, parents, change)

    def _move(
        self,
        role: str,
        action: str,
        reason: str,
        ts: int | None,
        parents: Iterable[int],
        change: Callable[[RolePointers], None],
    ) -> list[PointerMove]:
        _check_name(role, "role")
        ts = time.time_ns() if ts is None else int(ts)
        parents = [int(p) for p in parents]
        with self._locked():
            st = self._load_state()  # another process may have committed since we last looked
            before = st.roles.get(role) or RolePointers()
            after = RolePointers(
                champion=before.champion,
                shadows=list(before.shadows),
                last_known_good=before.last_known_good,
                retired=list(before.retired),
            )
            change(after)
            txn = st.txn + 1
            # Records of earlier commits whose delivery failed ride along until one succeeds.
            pending = list(st.outbox) if self._emitted() < st.txn else []
            records = [
                PointerMove(
                    id=new_id(),
                    ts=ts,
                    parents=parents,
                    model=new or old,
                    role=role,
                    pointer=pointer,
                    old=old,
                    new=new,
                    reason=reason,
                    action=action,
                    txn=txn,
                )
                for pointer, old, new in _diff(before, after)
            ]
            roles = dict(st.roles)
            roles[role] = after
            new_state = _State(txn=txn, roles=roles, outbox=pending + records)
            self._check(new_state)
            _write_durable(self.root / STATE_FILE, _enc.encode(new_state), step="state")
            self._state = new_state
            try:
                self._deliver(new_state)
            except Exception as exc:  # the move is committed; its records wait in the outbox
                log.warning("registry commit %d: lineage delivery failed (%s); will retry", txn, exc)
            return records

    # --- checks ---------------------------------------------------------------------------------
    def _check_version(self, role: str, version: str) -> None:
        mv = self.version(version)
        if mv.role != role:
            raise RegistryError(f"version {version} belongs to role {mv.role!r}, not {role!r}")

    def _check(self, st: _State) -> None:
        """The pointer invariants; a violation means a bug or a hand-edited file."""
        for role, rp in st.roles.items():
            problems = check_pointers(rp)
            for v in {rp.champion, rp.last_known_good, *rp.shadows, *rp.retired} - {FLAT, ""}:
                try:
                    self._check_version(role, v)
                except RegistryError as exc:
                    problems.append(str(exc))
            if problems:
                raise RegistryError(f"{self.root / STATE_FILE}: role {role}: {'; '.join(problems)}")

    def fsck(self) -> list[str]:
        """Full check: pointer invariants, every version file readable and named by its content
        hash, every object present and matching its hash. Returns the problems found."""
        problems = []
        for role, rp in self._state.roles.items():
            problems += [f"{role}: {p}" for p in check_pointers(rp)]
        for p in sorted((self.root / "versions").glob("*.json")):
            try:
                mv = self.version(p.stem)
            except RegistryError as exc:
                problems.append(str(exc))
                continue
            meta = msgspec.to_builtins(mv)
            del meta["version"], meta["created_ts"]
            if version_hash(meta) != mv.version:
                problems.append(f"{p}: content does not hash to its name")
            for name in mv.files:
                try:
                    self.read(mv.version, name)
                except RegistryError as exc:
                    problems.append(str(exc))
        return problems


def check_pointers(rp: RolePointers) -> list[str]:
    """Invariants of one role's pointers (no registry access)."""
    out = []
    if len(set(rp.shadows)) != len(rp.shadows) or len(set(rp.retired)) != len(rp.retired):
        out.append("a version is listed twice in shadows or retired")
    if rp.champion in rp.shadows or rp.champion in rp.retired:
        out.append(f"champion {rp.champion} is also a shadow or retired")
    if set(rp.shadows) & set(rp.retired):
        out.append("a version is both shadow and retired")
    if FLAT in rp.shadows or FLAT in rp.retired:
        out.append("flat is listed as a shadow or retired")
    if rp.last_known_good and (rp.last_known_good == rp.champion or rp.last_known_good in rp.retired):
        out.append(f"last known-good {rp.last_known_good} is the champion or retired")
    if not rp.champion:
        out.append("no champion")
    return out


def _diff(before: RolePointers, after: RolePointers) -> list[tuple[str, str, str]]:
    """(pointer, old, new) for each pointer that moved; for the sets one entry per version."""
    out = []
    if before.champion != after.champion:
        out.append(("champion", before.champion, after.champion))
    if before.last_known_good != after.last_known_good:
        out.append(("last_known_good", before.last_known_good, after.last_known_good))
    for name in ("shadows", "retired"):
        b, a = getattr(before, name), getattr(after, name)
        pointer = name.rstrip("s") if name == "shadows" else name
        out += [(pointer, v, "") for v in b if v not in a]
        out += [(pointer, "", v) for v in a if v not in b]
    return out


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name or ""):
        raise RegistryError(f"bad {what} {name!r}: use 1-80 of A-Z a-z 0-9 _ . : -")
