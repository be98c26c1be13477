"""State record, lock and audit log: atomic writes, one operator at a time, S3 when configured."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from test_upgrade_support import Env, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.upgrade.runbook import Runbook
from fleetform.upgrade.state import (
    ANY,
    SHIFTED,
    AuditLog,
    LocalStore,
    Lock,
    LockHeld,
    LockLost,
    S3Store,
    StaleRecord,
    utcnow,
    write_atomic,
)
from fleetform.upgrade.target import resolve


def test_write_atomic_never_leaves_half_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prod-main.json"
    write_atomic(path, json.dumps({"step_index": 1}))

    def boom(*args):
        raise OSError("disk gone")

    for target in ("fsync", "replace"):  # killed while writing, or just before the rename
        with monkeypatch.context() as patch:
            patch.setattr(os, target, boom)
            with pytest.raises(OSError):
                write_atomic(path, json.dumps({"step_index": 2, "padding": "x" * 100_000}))
        assert json.loads(path.read_text()) == {"step_index": 1}
        assert [p.name for p in tmp_path.iterdir()] == ["prod-main.json"]  # no temporary left behind
    write_atomic(path, json.dumps({"step_index": 3}))
    assert json.loads(path.read_text()) == {"step_index": 3}


def test_lock_owner_expiry_and_takeover(tmp_path: Path) -> None:
    store, now = LocalStore(tmp_path), utcnow()
    first = Lock(store, "prod-main", "alice", now)
    info = first.acquire()
    assert info.owner == "alice" and info.expires_at > info.acquired_at
    with pytest.raises(LockHeld, match=r"alice since .* \(expires"):
        Lock(store, "prod-main", "bob", now + timedelta(minutes=5)).acquire()
    Lock(store, "prod-main", "alice", now).acquire()  # the same owner may re-enter (resume after a crash)
    later = Lock(store, "prod-main", "bob", now + timedelta(minutes=31))
    later.acquire()  # expired: taken over
    with pytest.raises(LockLost, match="taken over by bob"):
        first.refresh(now + timedelta(minutes=32))
    first.release()  # not alice's any more: left alone
    assert store.read_lock("prod-main").owner == "bob"
    later.release()
    assert store.read_lock("prod-main") is None


def test_audit_log_is_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    caller = {"account": "333333333333", "arn": "arn:aws:sts::333333333333:assumed-role/ops/alice", "user_id": "A"}
    log.record(utcnow(), caller, "shift-step", account="prod", cluster="main", before={"blue": 100, "green": 0},
               after={"blue": 95, "green": 5}, change_ids=["C1"], reason="step 1/4")
    log.record(utcnow(), caller, "rollback", account="prod", cluster="main", reason="p99")
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [entry["action"] for entry in lines] == ["shift-step", "rollback"]
    assert set(lines[0]) == {"at", "caller", "action", "account", "cluster", "before", "after", "change_ids", "reason"}
    assert lines[0]["caller"]["arn"].endswith("/alice") and lines[0]["change_ids"] == ["C1"]


BUCKET = "familyalbum-upgrade-state"


@pytest.fixture(name="s3_env")
def s3_env_fixture(env: Env) -> Env:
    s3 = env.aws().client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    prod = env.config_dir / "prod.yaml"
    prod.write_text(prod.read_text().replace("alarms: [prod-main-5xx, prod-main-latency-p99]",
                                             f"alarms: [prod-main-5xx, prod-main-latency-p99]\n"
                                             f"      state_bucket: {BUCKET}"))
    return env


def test_s3_store_and_lock(s3_env: Env) -> None:
    store = S3Store(s3_env.aws(), BUCKET)
    key = f"test-{id(store)}"
    assert store.read(key) == (None, None) and store.read_lock(key) is None
    first = store.save(key, {"phase": "shifting", "step_index": 2}, expect=None)
    data, token = store.read(key)
    assert data == {"phase": "shifting", "step_index": 2} and token == first
    with pytest.raises(StaleRecord):  # If-None-Match: a record exists now
        store.save(key, {"phase": "shifting", "step_index": 9}, expect=None)
    second = store.save(key, {"phase": "shifting", "step_index": 3}, expect=first)  # If-Match: still ours
    with pytest.raises(StaleRecord):  # If-Match on the ETag we no longer hold: somebody wrote since
        store.save(key, {"phase": "shifting", "step_index": 4}, expect=first)
    store.save(key, {"phase": "rolled-back", "step_index": 3}, expect=ANY)  # a rollback takes over
    with pytest.raises(StaleRecord):
        store.save(key, {"phase": "shifting", "step_index": 4}, expect=second)
    assert store.read(key)[0]["phase"] == "rolled-back"
    now = utcnow()
    with Lock(store, key, "alice", now):
        with pytest.raises(LockHeld, match="alice"):
            Lock(store, key, "bob", now).acquire()
    assert store.read_lock(key) is None


def test_a_whole_shift_with_state_in_s3(s3_env: Env) -> None:
    config = load_config(s3_env.config_dir)
    target = resolve(config, "main", "prod")
    assert target.cluster.upgrade.state_bucket == BUCKET
    aws = s3_env.aws()
    runbook = Runbook(target, aws, S3Store(aws, BUCKET), AuditLog(s3_env.state_dir / "audit.jsonl"),
                      s3_env.display, s3_env.clock)
    runbook.options.yes, runbook.options.ttl_wait, runbook.options.insync_interval = True, False, 1
    s3_env.traffic_every(30)
    state = runbook.shift([50, 100], 30)
    assert state.phase == SHIFTED
    body = aws.client("s3").get_object(Bucket=BUCKET, Key="fleetform/upgrades/prod-main.json")["Body"].read()
    assert json.loads(body)["phase"] == SHIFTED
    assert not (s3_env.state_dir / "prod-main.json").exists()


def test_the_lock_of_a_killed_process_of_the_same_operator_is_taken_over(tmp_path: Path) -> None:
    import subprocess
    import sys

    from fleetform.upgrade.state import owner_id

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store, now = LocalStore(tmp_path), utcnow()
    me = owner_id("arn:aws:sts::333333333333:assumed-role/ops/alice")
    ghost = me.rpartition(" pid ")[0] + f" pid {dead.pid}"
    Lock(store, "prod-main", ghost, now).acquire()
    Lock(store, "prod-main", me, now).acquire()  # the same operator on this host, its process gone
    assert store.read_lock("prod-main").owner == me
    elsewhere = f"arn:aws:sts::333333333333:assumed-role/ops/alice on other-host pid {dead.pid}"
    store.delete_lock("prod-main")
    Lock(store, "prod-main", elsewhere, now).acquire()
    with pytest.raises(LockHeld):  # another host: we cannot know its process is gone
        Lock(store, "prod-main", me, now).acquire()
