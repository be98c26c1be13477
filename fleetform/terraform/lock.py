"""The pipeline lock: one apply per stack at a time, across CodeBuild builds.

Each stack's lock is an object ``fleetform-locks/<stack>.lock`` holding its owner and expiry,
created with ``If-None-Match: *`` (S3 conditional write), so of two merges only one creates it.
An expired lock (a build that died) is taken over with ``If-Match`` on its ETag, so two builds
cannot both take it over. Terraform's own state lock (``use_lockfile``) still guards each
command; this lock spans the whole apply of a set of stacks. Without a bucket (local state,
laptops), the same protocol runs on files created with O_EXCL.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from fleetform.errors import FleetformError

DEFAULT_TTL_SECONDS = 2 * 3600
LOCK_PREFIX = "fleetform-locks/"


class LockHeld(FleetformError):
    """Another run holds a stack's lock."""


@dataclass(frozen=True)
class LockInfo:
    stack: str
    owner: str
    created: float
    expires: float

    def describe(self) -> str:
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.expires))
        return f"{self.owner} (until {until})"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, stack: str) -> LockInfo:
        try:
            data = json.loads(text)
            return cls(stack, str(data["owner"]), float(data["created"]), float(data["expires"]))
        except (ValueError, KeyError, TypeError):
            return cls(stack, "<unreadable lock>", 0.0, float("inf"))


def default_owner() -> str:
    """The CodeBuild build id in the pipeline, else user@host:pid."""
    build = os.environ.get("CODEBUILD_BUILD_ID")
    if build:
        return build
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


class StackLock(Protocol):
    owner: str

    def acquire(self, stack: str) -> None: ...

    def release(self, stack: str) -> None: ...

    def where(self, stack: str) -> str: ...


class S3Lock:
    """Locks as S3 objects; ``client`` is a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, owner: str | None = None,
                 ttl_seconds: int = DEFAULT_TTL_SECONDS, prefix: str = LOCK_PREFIX) -> None:
        self.client = client
        self.bucket = bucket
        self.owner = owner or default_owner()
        self.ttl = ttl_seconds
        self.prefix = prefix

    def key(self, stack: str) -> str:
        return f"{self.prefix}{stack}.lock"

    def where(self, stack: str) -> str:
        return f"s3://{self.bucket}/{self.key(stack)}"

    def _info(self, stack: str) -> LockInfo:
        now = time.time()
        return LockInfo(stack, self.owner, now, now + self.ttl)

    def acquire(self, stack: str) -> None:
        from botocore.exceptions import ClientError

        body = self._info(stack).to_json().encode()
        # the state bucket has Object Lock (stacks/bootstrap.py): S3 refuses uploads there without a checksum
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(stack), Body=body, IfNoneMatch="*",
                                   ContentType="application/json", ChecksumAlgorithm="SHA256")
            return
        except ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise FleetformError(f"cannot create lock {self.where(stack)}: {exc}") from None
        current = self.client.get_object(Bucket=self.bucket, Key=self.key(stack))
        held = LockInfo.from_json(current["Body"].read(), stack)
        if held.expires > time.time():
            raise LockHeld(f"stack {stack} is being applied by {held.describe()}; lock {self.where(stack)}. "
                           "Wait for that run, or delete the object if it is dead.")
        try:  # expired: take it over, unless someone else just did
            self.client.put_object(Bucket=self.bucket, Key=self.key(stack), Body=body, IfMatch=current["ETag"],
                                   ContentType="application/json", ChecksumAlgorithm="SHA256")
        except ClientError as exc:
            raise LockHeld(f"stack {stack}: another run took over the expired lock {self.where(stack)} "
                           f"({_code(exc)})") from None

    def release(self, stack: str) -> None:
        from botocore.exceptions import ClientError

        try:
            current = self.client.get_object(Bucket=self.bucket, Key=self.key(stack))
            if LockInfo.from_json(current["Body"].read(), stack).owner != self.owner:
                return  # taken over after expiry: not ours to delete
            self.client.delete_object(Bucket=self.bucket, Key=self.key(stack), IfMatch=current["ETag"])
        except ClientError:
            return


class FileLock:
    """Locks as files created with O_EXCL in ``directory`` (one machine only)."""

    def __init__(self, directory: str | Path, owner: str | None = None,
                 ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.directory = Path(directory)
        self.owner = owner or default_owner()
        self.ttl = ttl_seconds

    def where(self, stack: str) -> str:
        return str(self.directory / f"{stack}.lock")

    def acquire(self, stack: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = Path(self.where(stack))
        now = time.time()
        body = LockInfo(stack, self.owner, now, now + self.ttl).to_json()
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = LockInfo.from_json(path.read_bytes(), stack)
                if held.expires > time.time():
                    raise LockHeld(f"stack {stack} is being applied by {held.describe()}; lock {path}. "
                                   "Wait for that run, or delete the file if it is dead.") from None
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(body)
            return
        raise LockHeld(f"stack {stack}: could not take over the expired lock {path}")

    def release(self, stack: str) -> None:
        path = Path(self.where(stack))
        with contextlib.suppress(FileNotFoundError):
            if LockInfo.from_json(path.read_bytes(), stack).owner == self.owner:
                path.unlink()


@contextlib.contextmanager
def holding(lock: StackLock, stacks: Sequence[str]) -> Iterator[None]:
    """Hold every stack's lock (taken in name order, so two runs cannot deadlock), then release."""
    taken: list[str] = []
    try:
        for stack in sorted(set(stacks)):
            lock.acquire(stack)
            taken.append(stack)
        yield
    finally:
        for stack in reversed(taken):
            lock.release(stack)


def _code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code") or getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode"))
