"""The run's state record, the one-operator lock and the audit trail.

The state record is written atomically after every step (temporary file + fsync + rename
locally; one PutObject on S3), so a killed process resumes from exactly the recorded step.
Every write is conditional on the record being the one this process last read or wrote (its
token: the SHA-256 of the file locally, the ETag with If-Match / If-None-Match on S3), so a run
that another operator's rollback took over stops instead of saving its stale record over it.
The lock carries its owner and an expiry; a second operator is refused with who holds it.
The audit trail lives where the state lives: JSON lines in a local file, or one S3 object per
entry (created with If-None-Match, never overwritten) so that operators on several machines
add to one history without losing an entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from fleetform.aws_session import AwsError, call
from fleetform.errors import FleetformError
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.permissions import declare

DEFAULT_STATE_DIR = ".fleetform/upgrades"
S3_PREFIX = "fleetform/upgrades"
LOCK_MINUTES = 30
SCHEMA = 1

# s3:ListBucket: without it a missing record reads as AccessDenied instead of NoSuchKey;
# s3:GetEncryptionConfiguration: objects are written SSE-KMS with the bucket's default key, which
# S3 uses on the caller's behalf (kms:GenerateDataKey to write, kms:Decrypt to read)
S3_STATE_ACTIONS = declare("state-record-s3", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
                           "s3:GetEncryptionConfiguration", "kms:GenerateDataKey", "kms:Decrypt")
S3_AUDIT_ACTIONS = declare("audit-s3", "s3:PutObject", "s3:GetObject", "s3:ListBucket",
                           "s3:GetEncryptionConfiguration")
AUDIT_PREFIX = "audit"
# an audit key that exists already (a collision of the random part, or a write racing ours) is
# never overwritten: the entry goes to a new key, at most this many times
AUDIT_PUT_ATTEMPTS = 5

# phases of a run (status shows them)
SHIFTING, PAUSED, SHIFTED, ROLLED_BACK, RETIRED = "shifting", "paused", "shifted", "rolled-back", "retired"
ABORTED = "aborted"  # a gate failed before any traffic moved: nothing to roll back
ROLLING_BACK = "rolling-back"  # recorded before the rollback's change: resume finishes it
# progress inside the current step
PENDING, APPLYING, APPLIED, SYNCED = "pending", "applying", "applied", "synced"
PHASES = (SHIFTING, PAUSED, SHIFTED, ROLLED_BACK, RETIRED, ABORTED, ROLLING_BACK)
STEP_STATUSES = (PENDING, APPLYING, APPLIED, SYNCED)


class _Any:
    def __repr__(self) -> str:
        return "ANY"


# ``Store.save(..., expect=ANY)``: write whatever the record holds now (a rollback takes the run over)
ANY: Final = _Any()
Token = str | None  # the record's version as last seen; None: there was no record


class StaleRecord(FleetformError):
    """The record changed since this process last read or wrote it: another operator took the run over."""


class DamagedRecord(FleetformError):
    """The state record cannot be read as a run: never a traceback, always where and what to do."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class RunState:
    account: str
    cluster: str
    from_slot: str
    to_slot: str
    target_version: str | None
    schedule: list[int]
    bake_seconds: int
    weights: dict[str, int]
    run_id: str
    started_at: str
    phase: str = SHIFTING
    step_index: int = 0
    step_status: str = PENDING
    pending_weights: dict[str, int] | None = None
    change_id: str | None = None
    updated_at: str | None = None
    completed_at: str | None = None
    reason: str | None = None
    baseline: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    revision: int = 0  # +1 on every write: no two writes of a record are the same bytes
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "state record") -> RunState:
        """A run from its record; DamagedRecord naming ``where`` and the field when it is not one."""
        if not isinstance(data, dict):
            raise DamagedRecord(_damaged(where, f"a JSON {type(data).__name__}, not an object"))
        problems = _record_problems(data)
        if problems:
            raise DamagedRecord(_damaged(where, "; ".join(problems)))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def current_step(self) -> int | None:
        return self.schedule[self.step_index] if self.step_index < len(self.schedule) else None

    def event(self, moment: datetime, kind: str, **details: Any) -> None:
        self.history.append({"at": iso(moment), "event": kind, **details})


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "account": str, "cluster": str, "from_slot": str, "to_slot": str, "schedule": list, "bake_seconds": int,
    "weights": dict, "run_id": str, "started_at": str, "phase": str, "step_index": int, "step_status": str}


def _record_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for key, kind in _REQUIRED.items():
        if key not in data:
            problems.append(f"{key}: missing")
        elif not isinstance(data[key], kind) or isinstance(data[key], bool):
            problems.append(f"{key}: {type(data[key]).__name__}, expected {getattr(kind, '__name__', kind)}")
    if problems:
        return problems
    if data["phase"] not in PHASES:
        problems.append(f"phase: {data['phase']!r} is none of {', '.join(PHASES)}")
    if data["step_status"] not in STEP_STATUSES:
        problems.append(f"step_status: {data['step_status']!r} is none of {', '.join(STEP_STATUSES)}")
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 100 for p in data["schedule"]):
        problems.append(f"schedule: {data['schedule']!r} is not a list of percentages")
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in data["weights"].values()) or \
            set(data["weights"]) - {data["from_slot"], data["to_slot"]}:
        problems.append(f"weights: {data['weights']!r} are not whole weights of the run's two slots")
    if not 0 <= data["step_index"] <= len(data["schedule"]):
        problems.append(f"step_index: {data['step_index']} is outside the schedule")
    return problems


def _damaged(where: str, why: str) -> str:
    return (f"{where}: damaged upgrade state record ({why}). `cluster-upgrade rollback` works without it; "
            "otherwise inspect it, then move it away (a new `shift` starts from the actual weights)")


@dataclass(frozen=True)
class LockInfo:
    owner: str
    acquired_at: str
    expires_at: str

    def expired(self, now: datetime) -> bool:
        return parse_iso(self.expires_at) <= now


class LockHeld(FleetformError):
    def __init__(self, info: LockInfo, key: str) -> None:
        self.info = info
        super().__init__(f"another operator holds the upgrade lock of {key}: {info.owner} since "
                         f"{info.acquired_at} (expires {info.expires_at}); wait, or ask them")


class LockLost(FleetformError):
    pass


class Store(Protocol):
    where: str

    def record_where(self, key: str) -> str: ...

    def read(self, key: str) -> tuple[Any, Token]:
        """The parsed record (None: there is none) and its token; DamagedRecord if it is not JSON."""
        ...

    def save(self, key: str, data: dict[str, Any], expect: Token | _Any = ANY) -> Token:
        """Write the record if its token is still ``expect`` (StaleRecord otherwise); the new token."""
        ...

    def set_aside(self, key: str, suffix: str) -> str | None:
        """Keep an unreadable record under another name (a rollback replaces it); where it went."""
        ...

    def read_lock(self, key: str) -> LockInfo | None: ...

    def create_lock(self, key: str, info: LockInfo, replace: bool) -> bool: ...

    def delete_lock(self, key: str) -> None: ...


class LocalStore:
    """Files under .fleetform/upgrades/: <key>.json, <key>.lock."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.where = str(self.directory)

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{key}{suffix}"

    def record_where(self, key: str) -> str:
        return str(self._path(key, ".json"))

    def read(self, key: str) -> tuple[Any, Token]:
        path = self._path(key, ".json")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise DamagedRecord(_damaged(str(path), str(exc))) from exc
        return _parse(raw, str(path)), _digest(raw)

    def save(self, key: str, data: dict[str, Any], expect: Token | _Any = ANY) -> Token:
        path = self._path(key, ".json")
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        # compare and replace under an exclusive lock of a guard file, so two writers cannot interleave
        with open(self._path(key, ".json.guard"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if not isinstance(expect, _Any):
                try:
                    current: Token = _digest(path.read_bytes())
                except FileNotFoundError:
                    current = None
                if current != expect:
                    raise StaleRecord(stale_message(str(path)))
            write_atomic(path, text)
        return _digest(text.encode())

    def set_aside(self, key: str, suffix: str) -> str | None:
        path = self._path(key, ".json")
        aside = path.with_name(f"{path.name}.{suffix}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return None
        return str(aside)

    def read_lock(self, key: str) -> LockInfo | None:
        return _lock_info(_read_json(self._path(key, ".lock")), str(self._path(key, ".lock")))

    def create_lock(self, key: str, info: LockInfo, replace: bool) -> bool:
        path = self._path(key, ".lock")
        text = json.dumps(asdict(info), indent=2) + "\n"
        if replace:
            write_atomic(path, text)
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        # written whole beside it, then linked into place: the lock appears with its content or not at
        # all (an O_EXCL create, then a write, let another operator read an empty lock in between)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def delete_lock(self, key: str) -> None:
        self._path(key, ".lock").unlink(missing_ok=True)


class S3Store:
    """Objects under s3://<bucket>/fleetform/upgrades/ (upgrade.state_bucket), written SSE-KMS."""

    def __init__(self, aws: Aws, bucket: str) -> None:
        self.aws = aws
        self.bucket = bucket
        self.where = f"s3://{bucket}/{S3_PREFIX}"
        self._sse: dict[str, str] | None = None

    def encryption(self) -> dict[str, str]:
        """PutObject arguments for SSE-KMS: the bucket's default KMS key when it has one (so the
        bucket owner's key is kept), else the account's AWS managed key aws/s3. Looked up once."""
        if self._sse is None:
            key = None
            try:
                config = call(self.aws.client("s3").get_bucket_encryption, Bucket=self.bucket)
            except AwsError as exc:
                if exc.code != "ServerSideEncryptionConfigurationNotFoundError":
                    raise
            else:
                for rule in config.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
                    default = rule.get("ApplyServerSideEncryptionByDefault", {})
                    if default.get("SSEAlgorithm", "").startswith("aws:kms") and default.get("KMSMasterKeyID"):
                        key = default["KMSMasterKeyID"]
            self._sse = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": key} if key else {})}
        return self._sse

    def get_raw(self, key: str) -> tuple[bytes | None, Token]:
        try:
            body = call(self.aws.client("s3").get_object, Bucket=self.bucket, Key=f"{S3_PREFIX}/{key}")
        except AwsError as exc:
            if exc.code in ("NoSuchKey", "404"):
                return None, None
            raise
        return body["Body"].read(), body.get("ETag")

    def get_json(self, key: str) -> Any:
        raw, _ = self.get_raw(key)
        return None if raw is None else _parse(raw, f"{self.where}/{key}")

    def put_json(self, key: str, data: dict[str, Any], only_if_absent: bool = False) -> bool:
        """Write ``key`` (SSE-KMS); with ``only_if_absent`` never over an existing object: False then."""
        try:
            self._put(key, json.dumps(data, indent=2, sort_keys=True).encode(), None if only_if_absent else ANY)
        except StaleRecord:
            return False
        return True

    def _put(self, key: str, body: bytes, expect: Token | _Any) -> Token:
        """PutObject; unless ``expect`` is ANY, only over the object of that ETag (None: only if absent)."""
        extra = {} if isinstance(expect, _Any) else {"IfNoneMatch": "*"} if expect is None else {"IfMatch": expect}
        try:
            answer = call(self.aws.client("s3").put_object, Bucket=self.bucket, Key=f"{S3_PREFIX}/{key}",
                          Body=body, ContentType="application/json", **self.encryption(), **extra)
        except AwsError as exc:
            if extra and exc.code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412"):
                raise StaleRecord(stale_message(f"{self.where}/{key}")) from exc
            raise
        return answer.get("ETag")

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``<S3_PREFIX>/<prefix>`` (relative to S3_PREFIX), in S3's (lexicographic) order."""
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{S3_PREFIX}/{prefix}"}
        while True:
            page = call(self.aws.client("s3").list_objects_v2, **kwargs)
            keys.extend(item["Key"][len(S3_PREFIX) + 1:] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def record_where(self, key: str) -> str:
        return f"{self.where}/{key}.json"

    def read(self, key: str) -> tuple[Any, Token]:
        raw, etag = self.get_raw(f"{key}.json")
        return (None, None) if raw is None else (_parse(raw, self.record_where(key)), etag)

    def save(self, key: str, data: dict[str, Any], expect: Token | _Any = ANY) -> Token:
        return self._put(f"{key}.json", json.dumps(data, indent=2, sort_keys=True).encode(), expect)

    def set_aside(self, key: str, suffix: str) -> str | None:
        raw, _ = self.get_raw(f"{key}.json")
        if raw is None:
            return None
        self._put(f"{key}.json.{suffix}", raw, None)
        return f"{self.where}/{key}.json.{suffix}"

    def read_lock(self, key: str) -> LockInfo | None:
        return _lock_info(self.get_json(f"{key}.lock"), f"{self.where}/{key}.lock")

    def create_lock(self, key: str, info: LockInfo, replace: bool) -> bool:
        return self.put_json(f"{key}.lock", asdict(info), only_if_absent=not replace)

    def delete_lock(self, key: str) -> None:
        call(self.aws.client("s3").delete_object, Bucket=self.bucket, Key=f"{S3_PREFIX}/{key}.lock")


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedRecord(_damaged(str(path), str(exc))) from exc
    return _parse(raw, str(path))


def _parse(raw: bytes, where: str) -> Any:
    """The JSON of a record, lock or audit entry; an object or a list, never None (that is "no record")."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if data is None:
            raise DamagedRecord(_damaged(where, "JSON null, not an object"))
        return data
    except UnicodeDecodeError as exc:
        raise DamagedRecord(_damaged(where, f"not UTF-8: byte {exc.start}")) from None
    except json.JSONDecodeError as exc:
        raise DamagedRecord(_damaged(where, f"not JSON: {exc}")) from None


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stale_message(where: str) -> str:
    """Why a run whose record another operator rewrote stops (its fence failed)."""
    return (f"{where} changed since this run last wrote it: another operator (a rollback?) took the run over; "
            "stopping without changing anything: see `cluster-upgrade status`")


def _lock_info(data: Any, where: str) -> LockInfo | None:
    if data is None:
        return None
    fields = ("owner", "acquired_at", "expires_at")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        raise DamagedRecord(f"{where}: damaged upgrade lock (expected an object with {', '.join(fields)}); "
                            "if no run is in progress, delete it")
    try:
        parse_iso(data["expires_at"])
    except ValueError:
        raise DamagedRecord(f"{where}: damaged upgrade lock (expires_at {data['expires_at']!r} is no time); "
                            "if no run is in progress, delete it") from None
    return LockInfo(*(data[f] for f in fields))


def owner_id(caller_arn: str) -> str:
    return f"{caller_arn} on {socket.gethostname()} pid {os.getpid()}"


def _dead_here(owner: str, me: str) -> bool:
    """The holder is the same caller on this host, and its process is gone (killed mid-run)."""
    theirs, mine = owner.rpartition(" pid "), me.rpartition(" pid ")
    if theirs[0] != mine[0] or not theirs[2].isdigit():
        return False
    try:
        os.kill(int(theirs[2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lock:
    """One operator at a time: ``with Lock(store, key, owner, now):``; expired locks are taken over."""

    def __init__(self, store: Store, key: str, owner: str, now: datetime, minutes: int = LOCK_MINUTES,
                 force: bool = False) -> None:
        self.store, self.key, self.owner, self.minutes, self.force = store, key, owner, minutes, force
        self.now = now
        self.info: LockInfo | None = None

    def _info(self, now: datetime) -> LockInfo:
        return LockInfo(self.owner, iso(now), iso(now + timedelta(minutes=self.minutes)))

    def acquire(self) -> LockInfo:
        info = self._info(self.now)
        if not self.store.create_lock(self.key, info, replace=False):
            held = self.store.read_lock(self.key)
            if (held is not None and held.owner != self.owner and not held.expired(self.now) and not self.force
                    and not _dead_here(held.owner, self.owner)):
                raise LockHeld(held, self.key)
            self.store.create_lock(self.key, info, replace=True)
        self.info = info
        return info

    def refresh(self, now: datetime) -> None:
        """Extend the expiry; stop if someone took the lock over, or took it and let it go (a rollback does)."""
        held = self.store.read_lock(self.key)
        if held is None or held.owner != self.owner:
            who = held.owner if held else "another operator, who has released it since"
            raise LockLost(f"the upgrade lock of {self.key} was taken over by {who} (a rollback?); "
                           "stopping here without changing anything: see `cluster-upgrade status`")
        self.info = self._info(now)
        self.store.create_lock(self.key, self.info, replace=True)

    def release(self) -> None:
        held = self.store.read_lock(self.key)
        if held is not None and held.owner == self.owner:
            self.store.delete_lock(self.key)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AuditFailed(FleetformError):
    """An audit entry could not be written: the step that needed it does not happen."""


class AuditTrail:
    """Who moved which weights when: ``record`` builds the entry, ``write`` keeps it, ``entries`` reads
    the history of one cluster back in time order."""

    where: str

    def record(self, moment: datetime, caller: dict[str, str], action: str, *, account: str, cluster: str,
               before: dict[str, int] | None = None, after: dict[str, int] | None = None,
               change_ids: list[str] | None = None, reason: str | None = None, **extra: Any) -> dict[str, Any]:
        """Write one entry; AuditFailed (naming where and why) if it cannot be kept."""
        entry = {"at": iso(moment), "caller": caller, "action": action, "account": account, "cluster": cluster,
                 "before": before, "after": after, "change_ids": change_ids or [], "reason": reason, **extra}
        try:
            self.write(moment, entry)
        except (OSError, FleetformError) as exc:
            raise AuditFailed(f"cannot write the audit entry {action!r} of {account}/{cluster} to {self.where}: "
                              f"{exc}") from exc
        return entry

    def write(self, moment: datetime, entry: dict[str, Any]) -> None:
        raise NotImplementedError

    def entries(self, account: str, cluster: str) -> list[dict[str, Any]]:
        raise NotImplementedError


class AuditLog(AuditTrail):
    """JSON lines in a local file: when, who (caller identity), action, weights before/after, change ids, reason."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def write(self, moment: datetime, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self, account: str, cluster: str) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FleetformError(f"{self.path}:{number}: unreadable audit entry ({exc})") from exc
            if entry.get("account") == account and entry.get("cluster") == cluster:
                found.append(entry)
        return found  # appended in time order on this machine


class S3AuditLog(AuditTrail):
    """One object per entry: s3://<bucket>/fleetform/upgrades/audit/<account>/<cluster>/<time>-<random>.json.

    Each is created with If-None-Match (an existing key is never overwritten; the entry takes a new
    key instead), SSE-KMS like the state record. The key starts with the entry's time to the
    microsecond, so listing the prefix gives the merged history of every operator in time order;
    one writer's keys strictly increase even when its clock does not move between entries.
    """

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.where = f"{store.where}/{AUDIT_PREFIX}/"
        self._last: str = ""

    @staticmethod
    def prefix(account: str, cluster: str) -> str:
        return f"{AUDIT_PREFIX}/{account}/{cluster}/"

    def _stamp(self, moment: datetime) -> str:
        stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        if stamp <= self._last:
            stamp = (parse_stamp(self._last) + timedelta(microseconds=1)).strftime("%Y%m%dT%H%M%S.%fZ")
        self._last = stamp
        return stamp

    def write(self, moment: datetime, entry: dict[str, Any]) -> None:
        prefix = self.prefix(entry["account"], entry["cluster"])
        for _ in range(AUDIT_PUT_ATTEMPTS):
            if self.store.put_json(f"{prefix}{self._stamp(moment)}-{secrets.token_hex(6)}.json", entry,
                                   only_if_absent=True):
                return
        raise FleetformError(f"{AUDIT_PUT_ATTEMPTS} keys under {prefix} were taken or in conflict; nothing "
                             "was overwritten")

    def entries(self, account: str, cluster: str) -> list[dict[str, Any]]:
        return [entry for key in sorted(self.store.list_keys(self.prefix(account, cluster)))
                if (entry := self.store.get_json(key)) is not None]


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def audit_trail(store: Store, local_path: str | Path) -> AuditTrail:
    """The audit trail that goes with ``store``: in S3 next to an S3 state record, else the local file."""
    return S3AuditLog(store) if isinstance(store, S3Store) else AuditLog(local_path)
