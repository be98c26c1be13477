"""The audit trail where the state is: one SSE-KMS S3 object per entry, created with If-None-Match,
merged across operators by `status --audit`; a failed write stops a shift step before its change."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from botocore.stub import ANY, Stubber
from test_upgrade_flow import cli_clock_fixture, invoke  # noqa: F401 - fixture
from test_upgrade_state import BUCKET, s3_env_fixture  # noqa: F401 - fixture
from test_upgrade_support import Env, FakeClock, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade import state as state_mod
from fleetform.upgrade.aws import connect
from fleetform.upgrade.runbook import Options, Runbook
from fleetform.upgrade.state import (
    PENDING,
    ROLLED_BACK,
    S3_PREFIX,
    SHIFTED,
    AuditFailed,
    LocalStore,
    S3AuditLog,
    S3Store,
)
from fleetform.upgrade.target import resolve

CALLER = {"account": "123456789012", "arn": "arn:aws:sts::123456789012:assumed-role/ops/alice", "user_id": "A"}
KEY_ARN = "arn:aws:kms:ap-northeast-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-000000000001"


@pytest.fixture(name="s3_audit")
def s3_audit_fixture(s3_env: Env) -> Env:
    """The state bucket with no audit entry yet (moto is seeded once per module)."""
    s3 = s3_env.aws().client("s3")
    for key in _audit_objects(s3_env):
        s3.delete_object(Bucket=BUCKET, Key=key)
    return s3_env


def _audit_objects(env: Env) -> list[str]:
    listing = env.aws().client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{S3_PREFIX}/audit/prod/main/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_entries_are_kms_encrypted_objects_that_are_never_overwritten(s3_audit: Env,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = s3_audit.aws().client("s3")
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}]})
    # two operators' writers whose clocks and random parts collide: the second must not overwrite
    suffixes = iter(["aaaaaaaaaaaa", "aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(state_mod.secrets, "token_hex", lambda _: next(suffixes))
    moment = s3_audit.clock.now()
    alice, bob = (S3AuditLog(S3Store(connect(None, "ap-northeast-1", s3_audit.endpoint), BUCKET)) for _ in range(2))
    alice.record(moment, CALLER, "shift-step", account="prod", cluster="main", after={"blue": 95, "green": 5})
    bob.record(moment, {**CALLER, "arn": CALLER["arn"].replace("alice", "bob")}, "rollback", account="prod",
               cluster="main", after={"blue": 100, "green": 0})
    keys = _audit_objects(s3_audit)
    stamp, retry = (m.strftime("%Y%m%dT%H%M%S.%fZ") for m in (moment, moment + timedelta(microseconds=1)))
    assert keys == [f"{S3_PREFIX}/audit/prod/main/{stamp}-aaaaaaaaaaaa.json",  # bob's first try: 412, a new key
                    f"{S3_PREFIX}/audit/prod/main/{retry}-bbbbbbbbbbbb.json"]
    first = json.loads(s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read())
    assert first["action"] == "shift-step" and first["caller"]["arn"].endswith("/alice")  # untouched by bob
    for key in keys:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == KEY_ARN  # the bucket's key
    assert [e["action"] for e in alice.entries("prod", "main")] == ["shift-step", "rollback"]
    assert alice.entries("prod", "other") == []


def test_an_entry_is_never_written_over_an_existing_key(s3_audit: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_mod.secrets, "token_hex", lambda _: "cccccccccccc")
    log = S3AuditLog(S3Store(s3_audit.aws(), BUCKET))
    moment = s3_audit.clock.now()
    taken = f"{S3_PREFIX}/audit/prod/main/{moment.strftime('%Y%m%dT%H%M%S.%fZ')}-cccccccccccc.json"
    s3_audit.aws().client("s3").put_object(Bucket=BUCKET, Key=taken, Body=b'{"action": "earlier"}')
    log.record(moment, CALLER, "start", account="prod", cluster="main")  # taken: the next microsecond's key
    assert json.loads(s3_audit.aws().client("s3").get_object(Bucket=BUCKET, Key=taken)["Body"].read()) == {
        "action": "earlier"}
    assert [e["action"] for e in log.entries("prod", "main")] == ["earlier", "start"]
    # every key taken: an error, still nothing overwritten
    monkeypatch.setattr(log, "_stamp", lambda _: moment.strftime("%Y%m%dT%H%M%S.%fZ"))
    with pytest.raises(AuditFailed, match=r"cannot write the audit entry 'shift-step' of prod/main to s3://"
                                          rf"{BUCKET}/fleetform/upgrades/audit/: 5 keys .* nothing was overwritten"):
        log.record(moment, CALLER, "shift-step", account="prod", cluster="main")
    assert len(_audit_objects(s3_audit)) == 2


def test_two_concurrent_writers_lose_nothing(s3_audit: Env) -> None:
    moment = s3_audit.clock.now()  # the same clock reading for both, all the time
    writers = {name: S3AuditLog(S3Store(connect(None, "ap-northeast-1", s3_audit.endpoint), BUCKET))
               for name in ("alice", "bob")}
    start = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            start.wait()
            for number in range(20):
                writers[name].record(moment, {**CALLER, "arn": name}, "shift-step", account="prod", cluster="main",
                                     reason=f"{name} {number}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = writers["alice"].entries("prod", "main")
    assert len(entries) == 40 and len(_audit_objects(s3_audit)) == 40
    for name in writers:  # each writer's entries complete and in the order written
        assert [e["reason"] for e in entries if e["caller"]["arn"] == name] == [f"{name} {n}" for n in range(20)]


def _stubbed_trail(env: Env) -> tuple[S3AuditLog, Stubber]:
    """An S3 audit trail whose S3 client is a Stubber (AccessDenied where wanted)."""
    audit_aws = connect(None, "ap-northeast-1", env.endpoint)
    stub = Stubber(audit_aws.client("s3"))
    stub.add_response("get_bucket_encryption", {"ServerSideEncryptionConfiguration": {"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}]}},
        {"Bucket": BUCKET})
    return S3AuditLog(S3Store(audit_aws, BUCKET)), stub


def _failing_audit(env: Env) -> tuple[Runbook, Stubber]:
    """A runbook with local state and a stubbed S3 audit trail."""
    target = resolve(load_config(env.config_dir), "main", "prod")
    trail, stub = _stubbed_trail(env)
    runbook = Runbook(target, env.aws(), LocalStore(env.state_dir), trail, env.display, env.clock,
                      Options(yes=True, ttl_wait=False, insync_interval=1))
    return runbook, stub


def _denied(stub: Stubber) -> None:
    stub.add_client_error("put_object", "AccessDenied", "User is not authorized to perform: s3:PutObject",
                          403, expected_params={"Bucket": BUCKET, "Key": ANY, "Body": ANY, "IfNoneMatch": "*",
                                                "ContentType": "application/json", "ServerSideEncryption": "aws:kms",
                                                "SSEKMSKeyId": KEY_ARN})


def test_a_failed_audit_write_stops_the_step_before_the_weights_change(env: Env) -> None:
    env.traffic_every(30)
    runbook, stub = _failing_audit(env)
    stub.add_response("put_object", {"ETag": '"1"'})  # "start" is written
    _denied(stub)  # the first step's intent is not
    with stub, pytest.raises(AuditFailed, match=r"cannot write the audit entry 'shift-step-intent' of prod/main to "
                                                r"s3://.*AccessDenied"):
        runbook.shift([50, 100], 30)
    stub.assert_no_pending_responses()
    assert env.weights() == {"blue": 100, "green": 0}  # nothing moved
    state = runbook.load()
    assert state.step_index == 0 and state.step_status == PENDING and state.pending_weights is None
    assert [e["event"] for e in state.history if e["event"] == "weights"] == []
    assert LocalStore(env.state_dir).read_lock("prod-main") is None  # the lock is released


def test_through_the_cli_a_run_the_trail_cannot_hold_does_not_start(s3_audit: Env, cli_clock: FakeClock,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    s3_audit.traffic_every(30)
    trail, stub = _stubbed_trail(s3_audit)
    _denied(stub)  # the "start" entry
    with stub, monkeypatch.context() as patch:
        patch.setattr(upgrade_cli, "audit_trail", lambda store, local_path: trail)
        code, out, err = invoke(s3_audit, "shift", "main", "--account", "prod", "--steps", "50,100", "--bake", "60",
                                "--yes")
    assert code == 1 and "Traceback" not in err
    assert "error: cannot write the audit entry 'start' of prod/main to s3://familyalbum-upgrade-state/fleetform/" \
           "upgrades/audit/: PutObject: AccessDenied" in " ".join(err.split())
    assert s3_audit.weights() == {"blue": 100, "green": 0}
    code, out, _ = invoke(s3_audit, "status", "main", "--account", "prod", "--audit", "--output", "json")
    status = json.loads(out)
    assert status["phase"] == "not-started" and status["lock"] is None and status["audit"] == []


def test_a_rollback_is_never_blocked_by_the_audit_trail_but_reports_it(env: Env) -> None:
    env.set_weights({"blue": 50, "green": 50})
    runbook, stub = _failing_audit(env)
    _denied(stub)  # rollback-intent
    _denied(stub)  # rollback
    with stub, pytest.raises(AuditFailed, match=r"rolled back to blue=100, green=0 \(change .*\), but the audit "
                                                r"trail is missing it: .*'rollback-intent'.*'rollback'"):
        runbook.rollback("p99")
    assert env.weights() == {"blue": 100, "green": 0}
    state = runbook.load()
    assert state.phase == ROLLED_BACK
    assert [e["action"] for e in state.history if e["event"] == "audit-failed"] == ["rollback-intent", "rollback"]
    assert any("rolling back all the same" in note for note in env.display.notes)


def test_status_audit_merges_every_operators_entries_from_s3(s3_audit: Env, cli_clock: FakeClock) -> None:
    s3_audit.traffic_every(30)
    code, out, err = invoke(s3_audit, "shift", "main", "--account", "prod", "--steps", "50,100", "--bake", "60",
                            "--yes", "--no-ttl-wait", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["phase"] == SHIFTED
    assert not (s3_audit.state_dir / "audit.jsonl").exists()  # the trail is where the state is
    # another operator, on the bastion, wrote an entry during the first step's bake (their clock)
    first_step = next(e for e in json.loads(out)["history"] if e["event"] == "weights")
    bastion = S3AuditLog(S3Store(connect(None, "ap-northeast-1", s3_audit.endpoint), BUCKET))
    moment = state_mod.parse_iso(first_step["at"]) + timedelta(seconds=1)
    bastion.record(moment, {**CALLER, "arn": "arn:aws:sts::123456789012:assumed-role/ops/bob"}, "note",
                   account="prod", cluster="main", reason="watching from the bastion")
    code, out, err = invoke(s3_audit, "status", "main", "--account", "prod", "--audit", "--output", "json")
    assert code == 0, err
    audit = json.loads(out)["audit"]
    assert [a["action"] for a in audit] == ["start", "shift-step-intent", "shift-step", "note", "shift-step-intent",
                                            "shift-step", "shifted"]
    assert [a["at"] for a in audit] == sorted(a["at"] for a in audit)
    step = audit[2]
    assert step["before"] == {"blue": 100, "green": 0} and step["after"] == {"blue": 50, "green": 50}
    assert step["change_ids"] and step["reason"] == "step 1/2" and audit[1]["change_ids"] == []
    assert len(_audit_objects(s3_audit)) == 7
    code, out, _ = invoke(s3_audit, "status", "main", "--account", "prod", "--audit")
    assert code == 0 and f"s3://{BUCKET}/fleetform/upgrades/audit/" in out and "7 entries" in out
    assert "watching from the bastion" in out and "blue=100, green=0 -> blue=50, green=50" in out
    code, out, _ = invoke(s3_audit, "status", "main", "--account", "prod", "--output", "json")
    assert "audit" not in json.loads(out)  # only when asked
