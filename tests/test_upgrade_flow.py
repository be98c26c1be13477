"""The whole runbook against a real moto server: shift, gates, rollback, resume, lock, hand
changes, retire; through the CLI where exit codes and JSON matter."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_upgrade_support import Env, FakeClock, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.errors import FleetformError
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade.runbook import HandChanged
from fleetform.upgrade.state import ANY, PAUSED, RETIRED, ROLLED_BACK, SHIFTED, LocalStore, Lock, LockHeld
from fleetform.upgrade.weights import WeightedRecords


def invoke(env: Env, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(upgrade_cli.cli, [
        *args, "--config", str(env.config_dir), "--state-dir", str(env.state_dir), "--endpoint-url", env.endpoint])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(name="cli_clock")
def cli_clock_fixture(env: Env, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    monkeypatch.setattr(upgrade_cli, "CLOCK_FACTORY", lambda: env.clock)
    return env.clock


def test_whole_flow_through_the_cli(env: Env, cli_clock: FakeClock) -> None:
    env.traffic_every(30)
    code, out, _ = invoke(env, "plan", "main", "--account", "prod", "--to", "1.36", "--output", "json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    code, out, _ = invoke(env, "verify", "main", "--account", "prod", "--output", "json")
    assert code == 0 and json.loads(out)["blocking"] == []
    code, out, err = invoke(env, "shift", "main", "--account", "prod", "--steps", "5,25,50,100", "--bake", "120",
                            "--yes", "--ttl-wait", "--output", "json")
    assert code == 0, err
    state = json.loads(out)  # the shape of `status`, read back after the run
    assert state["ok"] is True and list(state)[1:] == list(env.runbook().status())
    assert state["phase"] == SHIFTED and state["recorded_weights"] == state["actual_weights"] == {"blue": 0,
                                                                                                  "green": 100}
    assert [e["after"] for e in state["history"] if e["event"] == "weights"] == [
        {"blue": 95, "green": 5}, {"blue": 75, "green": 25}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]
    assert env.weights() == {"blue": 0, "green": 100}
    assert cli_clock.slept >= 4 * 120 + 4 * 60  # bakes and TTL waits, in fake time
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    status = json.loads(out)
    assert status["phase"] == SHIFTED and status["actual_weights"] == status["recorded_weights"]
    assert status["hand_changed"] is False and status["lock"] is None
    assert status["step_index"] == len(status["schedule"])
    code, out, _ = invoke(env, "status", "main", "--account", "prod")
    assert code == 0 and "all 4 steps done" in out and "(pending)" not in out
    # retire: refused during the soak period, allowed after it, with the typed name
    code, _, err = invoke(env, "retire", "main", "--account", "prod", "--confirm", "prod-main-blue")
    assert code == 1 and "soak period" in err
    cli_clock.advance(minutes=1441)
    code, _, err = invoke(env, "retire", "main", "--account", "prod", "--confirm", "prod-main-bleu")
    assert code == 2 and "does not match" in err
    # first pull request: the slot is marked retiring (the pipeline turns deletion protection off) ...
    code, out, _ = invoke(env, "retire", "main", "--account", "prod", "--confirm", "prod-main-blue",
                          "--output", "json")
    assert code == 0, out
    marked = json.loads(out)
    assert marked["step"] == "mark" and "+      blue: {version: \"1.34\", retiring: true}" in marked["diff"]
    assert "run `cluster-upgrade retire main` again" in marked["next"]
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert json.loads(out)["phase"] == SHIFTED
    # ... second pull request: the slot is removed (the pipeline destroys its stack behind allow-destroy)
    code, out, _ = invoke(env, "retire", "main", "--account", "prod", "--confirm", "prod-main-blue",
                          "--output", "json")
    assert code == 0, out
    retired = json.loads(out)
    assert retired["step"] == "remove" and '-      blue: {version: "1.34", retiring: true}' in retired["diff"]
    assert "allow-destroy label" in retired["next"]
    text = (env.config_dir / "prod.yaml").read_text()
    assert "blue:" not in text.split("node_groups")[0].split("main:")[1] and "# Production" in text
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert json.loads(out)["phase"] == RETIRED
    audit = [json.loads(line) for line in (env.state_dir / "audit.jsonl").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["start", *["shift-step-intent", "shift-step"] * 4, "shifted",
                                            "retire-mark", "retire"]
    assert audit[1]["after"] == {"blue": 95, "green": 5} and audit[1]["change_ids"] == []  # before the change
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--audit", "--output", "json")
    assert code == 0 and json.loads(out)["audit"] == audit  # local state: the local audit.jsonl
    step = audit[2]
    assert step["caller"]["account"] == "123456789012" and step["before"] == {"blue": 100, "green": 0}
    assert step["after"] == {"blue": 95, "green": 5} and step["change_ids"] and step["reason"] == "step 1/4"


def test_alarm_firing_during_a_bake_rolls_back_to_blue(env: Env) -> None:
    env.traffic_every(30)
    fired = []

    def fire(moment):  # during the bake of step 2, after its weights went out
        if len(env.display.steps) == 2 and not fired:
            env.set_alarm("prod-main-5xx", "ALARM")
            fired.append(moment)

    env.clock.hooks.append(fire)
    state = env.runbook(yes=True, ttl_wait=False).shift([5, 25, 50, 100], 300)
    assert fired and state.phase == ROLLED_BACK
    assert "prod-main-5xx" in state.reason and "during bake 2/4" in state.reason
    assert env.weights() == {"blue": 100, "green": 0}
    assert state.weights == {"blue": 100, "green": 0}
    events = [e["event"] for e in state.history]
    assert events.count("weights") == 2 and events[-1] == "rollback"


def test_alarm_found_by_the_gate_before_a_step_rolls_back(env: Env) -> None:
    env.traffic_every(30)
    env.clock.hooks.append(lambda m: env.set_alarm("prod-main-latency-p99", "ALARM")
                           if len(env.display.steps) == 1 else None)
    state = env.runbook(yes=True, ttl_wait=False).shift([50, 100], 5)  # shorter than the alarm poll
    assert state.phase == ROLLED_BACK and "gate failed before step 2" in state.reason
    assert env.weights() == {"blue": 100, "green": 0}


def test_green_worse_than_blue_rolls_back(env: Env) -> None:
    env.traffic_every(30, unhealthy={"green"})
    state = env.runbook(yes=True, ttl_wait=False).shift([10, 100], 60)
    assert state.phase == ROLLED_BACK and "5xx-rate" in state.reason
    assert env.weights() == {"blue": 100, "green": 0}
    failed = [g for g in env.display.gate_results if g.status == "fail"]
    assert {g.name for g in failed} == {"5xx-rate", "latency-p99", "promql:error-ratio"}


def test_no_data_pauses_and_never_passes_then_resume_finishes(env: Env) -> None:
    state = env.runbook(yes=True, ttl_wait=False).shift([20, 100], 60)  # no traffic metrics at all
    assert state.phase == PAUSED and "inconclusive" in state.reason and "no data" in state.reason
    assert env.weights() == {"blue": 80, "green": 20}  # the pause holds, it neither advances nor reverts
    env.traffic_every(30)
    env.traffic(env.clock.now())
    state = env.runbook(yes=True, ttl_wait=False).resume()
    assert state.phase == SHIFTED and env.weights() == {"blue": 0, "green": 100}


class Killed(BaseException):
    """Stands for SIGKILL right after a state write."""


class DyingStore(LocalStore):
    def __init__(self, directory, die_after: int) -> None:
        super().__init__(directory)
        self.saves, self.die_after = 0, die_after

    def save(self, key, data, expect=ANY):
        token = super().save(key, data, expect)
        self.saves += 1
        if self.saves == self.die_after:
            raise Killed()
        return token


def _count_saves(env: Env) -> int:
    runbook = env.runbook(yes=True, ttl_wait=True)
    store = DyingStore(env.state_dir, die_after=10**6)
    runbook.store = store
    env.traffic_every(30)
    assert runbook.shift([25, 100], 30).phase == SHIFTED
    return store.saves


def test_a_killed_run_resumes_at_the_recorded_step_without_repeating_or_skipping(
        env: Env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[dict[str, int]] = []
    original = WeightedRecords.change

    def spy(self, weights, comment):
        applied.append(dict(weights))
        return original(self, weights, comment)

    monkeypatch.setattr(WeightedRecords, "change", spy)
    total = _count_saves(env)
    assert total >= 8
    for die_after in range(1, total):
        env.set_weights({"blue": 100, "green": 0})
        applied.clear()
        env.state_dir = tmp_path / f"state-{die_after}"
        runbook = env.runbook(yes=True)
        runbook.store = DyingStore(env.state_dir, die_after)
        with pytest.raises(Killed):
            runbook.shift([25, 100], 30)
        saved = json.loads((env.state_dir / "prod-main.json").read_text())  # complete JSON, never half
        assert saved["run_id"]
        # the dead process's lock has not expired: its owner (same operator, same host) resumes
        state = env.runbook(yes=True).resume()
        assert state.phase == SHIFTED, (die_after, state.reason)
        assert applied == [{"blue": 75, "green": 25}, {"blue": 0, "green": 100}], die_after
        assert env.weights() == {"blue": 0, "green": 100}


def test_second_operator_is_refused_with_who_holds_the_lock(env: Env, cli_clock: FakeClock) -> None:
    other = Lock(LocalStore(env.state_dir), "prod-main", "arn:aws:sts::123456789012:assumed-role/ops/alice on "
                 "laptop pid 1", env.clock.now())
    other.acquire()
    with pytest.raises(LockHeld, match="alice"):
        env.runbook(yes=True).shift([50, 100], 10)
    code, _, err = invoke(env, "shift", "main", "--account", "prod", "--steps", "50,100", "--yes")
    assert code == 1 and "alice" in err and "expires" in err
    code, out, _ = invoke(env, "plan", "main", "--account", "prod", "--to", "1.36", "--output", "json")
    lock_check = next(c for c in json.loads(out)["checks"] if c["id"] == "lock")
    assert code == 1 and lock_check["status"] == "fail" and "alice" in lock_check["detail"]
    assert env.weights() == {"blue": 100, "green": 0}
    cli_clock.advance(minutes=31)  # an expired lock is taken over
    env.traffic_every(30)
    assert env.runbook(yes=True, ttl_wait=False).shift([50, 100], 10).phase == SHIFTED


def test_hand_changed_weights_are_refused_unless_forced(env: Env, cli_clock: FakeClock) -> None:
    env.set_weights({"blue": 70, "green": 30})
    with pytest.raises(HandChanged, match="blue=70, green=30"):
        env.runbook(yes=True).shift([50, 100], 10)
    code, _, err = invoke(env, "shift", "main", "--account", "prod", "--steps", "50,100", "--yes")
    assert code == 1 and "changed outside the runbook" in err
    env.traffic_every(30)
    env.traffic(env.clock.now())
    state = env.runbook(yes=True, force=True, ttl_wait=False).shift([50, 100], 10)
    assert state.phase == SHIFTED
    assert any(e["event"] == "force-accept-weights" for e in state.history)


def test_hand_change_during_a_pause_is_detected_on_resume(env: Env) -> None:
    env.display.answers = [True, False]  # confirm step 1, decline step 2
    env.traffic_every(30)
    state = env.runbook(ttl_wait=False).shift([40, 100], 10)
    assert state.phase == PAUSED and "declined" in state.reason
    env.set_weights({"blue": 10, "green": 90})
    code_status = env.runbook().status()
    assert code_status["hand_changed"] is True
    with pytest.raises(HandChanged):
        env.runbook(yes=True).resume()


@pytest.mark.parametrize("steps, message", [
    ("5,25,50", "last step must be 100"),
    ("50,25,100", "must increase"),
    ("25,25,100", "must increase"),
    ("0", "last step must be 100"),
    ("5,x,100", "whole percentage"),
    ("50,150", "within 0..100"),
    ("", "give percentages"),
])
def test_invalid_schedules_exit_2(steps: str, message: str, tmp_path) -> None:
    # refused before any AWS call: no endpoint is needed to prove it
    result = CliRunner().invoke(upgrade_cli.cli, ["shift", "main", "--account", "prod", "--steps", steps, "--yes",
                                                  "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


def test_rollback_is_never_blocked(env: Env, cli_clock: FakeClock) -> None:
    env.set_alarm("prod-main-5xx", "ALARM")
    env.set_weights({"blue": 40, "green": 60})
    Lock(LocalStore(env.state_dir), "prod-main", "bob", env.clock.now()).acquire()  # a hung shift elsewhere
    code, out, _ = invoke(env, "rollback", "main", "--account", "prod", "--reason", "p99", "--output", "json")
    assert code == 0, out
    assert json.loads(out)["phase"] == ROLLED_BACK and env.weights() == {"blue": 100, "green": 0}
    audit = json.loads((env.state_dir / "audit.jsonl").read_text().splitlines()[-1])
    assert audit["action"] == "rollback" and audit["before"] == {"blue": 40, "green": 60} and audit["reason"] == "p99"


def test_a_stolen_lock_stops_a_running_shift(env: Env) -> None:
    env.traffic_every(30)

    def steal(moment):
        if len(env.display.steps) == 1:
            Lock(LocalStore(env.state_dir), "prod-main", "rollback elsewhere", moment, force=True).acquire()

    env.clock.hooks.append(steal)
    with pytest.raises(FleetformError, match="lock"):
        env.runbook(yes=True, ttl_wait=False).shift([50, 100], 120)
    assert env.weights() == {"blue": 50, "green": 50}


def test_retire_refuses_while_blue_has_traffic(env: Env) -> None:
    env.traffic_every(30)
    runbook = env.runbook(yes=True, ttl_wait=False)
    assert runbook.shift([50, 100], 10).phase == SHIFTED
    env.clock.advance(minutes=1441)
    env.set_weights({"blue": 10, "green": 90})
    with pytest.raises(FleetformError, match="blue still has traffic weight"):
        env.runbook().retire("prod-main-blue")
    env.set_weights({"blue": 0, "green": 100})
    from test_upgrade_support import put_traffic

    put_traffic(env.aws(), "prod-main-blue", env.clock.now(), 250, 0, 100)  # clients with cached DNS
    with pytest.raises(FleetformError, match="still served 250 requests"):
        env.runbook().retire("prod-main-blue")
    assert "blue:" in (env.config_dir / "prod.yaml").read_text()


def test_retire_refuses_before_the_shift_completed(env: Env) -> None:
    with pytest.raises(FleetformError, match="phase is not-started"):
        env.runbook().retire("prod-main-blue")


def test_caller_in_another_account_changes_nothing(env: Env) -> None:
    from botocore.stub import Stubber

    runbook = env.runbook(yes=True)
    sts = runbook.aws.client("sts")
    with Stubber(sts) as stub:
        stub.add_response("get_caller_identity", {"Account": "999999999999", "UserId": "AIDA",
                                                  "Arn": "arn:aws:iam::999999999999:user/mallory"})
        with pytest.raises(FleetformError, match="999999999999.*123456789012"):
            runbook.shift([50, 100], 10)
    assert env.weights() == {"blue": 100, "green": 0}
    assert not (env.state_dir / "prod-main.json").exists()


def test_shift_needs_a_ready_green(env: Env) -> None:
    prod = env.config_dir / "prod.yaml"
    prod.write_text(prod.read_text().replace('green: {version: "1.36"}', 'green: {version: "1.35"}'))
    with pytest.raises(FleetformError, match="not ready.*runs 1.36, expected 1.35"):
        env.runbook(yes=True).shift([50, 100], 10)
    assert env.weights() == {"blue": 100, "green": 0}


def test_status_json_is_stable(env: Env, cli_clock: FakeClock) -> None:
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert code == 0
    assert list(json.loads(out)) == [
        "account", "cluster", "phase", "from_slot", "to_slot", "target_version", "schedule", "step", "step_index",
        "step_status", "recorded_weights", "actual_weights", "weights_error", "hand_changed", "lock", "state_store",
        "reason", "history"]
    assert json.loads(out)["actual_weights"] == {"blue": 100, "green": 0}


def test_a_gate_failing_before_the_first_step_aborts_without_a_change(env: Env, monkeypatch) -> None:
    changes = []
    monkeypatch.setattr(WeightedRecords, "change", lambda self, weights, comment: changes.append(weights))
    env.set_alarm("prod-main-5xx", "ALARM")
    state = env.runbook(yes=True).shift([5, 100], 10)
    assert state.phase == "aborted" and "prod-main-5xx" in state.reason
    assert changes == [] and env.weights() == {"blue": 100, "green": 0}
    env.set_alarm("prod-main-5xx", "OK")  # fixed: a new run may start
    env.traffic_every(30)
    monkeypatch.undo()
    assert env.runbook(yes=True, ttl_wait=False).shift([5, 100], 10).phase == SHIFTED


def test_each_step_asks_unless_yes(env: Env, cli_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upgrade_cli, "interactive", lambda: True)  # an operator at a terminal
    env.traffic_every(30)
    result = CliRunner().invoke(upgrade_cli.cli, [
        "shift", "main", "--account", "prod", "--steps", "30,100", "--bake", "5", "--config", str(env.config_dir),
        "--state-dir", str(env.state_dir), "--endpoint-url", env.endpoint], input="y\nn\n")
    assert result.exit_code == 1
    assert "step 1/2: set blue=70, green=30?" in result.stderr and "step 2/2" in result.stderr
    assert "paused: operator declined step 2" in result.stderr
    assert env.weights() == {"blue": 70, "green": 30}
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert json.loads(out)["phase"] == PAUSED and json.loads(out)["step"] == 100


def test_shift_refuses_without_a_weighted_record_per_slot(env: Env) -> None:
    records = env.records()
    route53 = env.aws().client("route53")
    green = {"Name": "api.familyalbum.example.", "Type": "CNAME", "SetIdentifier": "green", "Weight": 0, "TTL": 60,
             "ResourceRecords": [{"Value": "green.api.familyalbum.example"}]}
    route53.change_resource_record_sets(HostedZoneId=records.zone_id(), ChangeBatch={"Changes": [
        {"Action": "DELETE", "ResourceRecordSet": green}]})
    try:
        with pytest.raises(FleetformError, match="no weighted record for green"):
            env.runbook(yes=True).shift([50, 100], 10)
        assert env.weights() == {"blue": 100}
    finally:
        route53.change_resource_record_sets(HostedZoneId=records.zone_id(), ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": green}]})


def test_a_rollback_killed_half_way_is_finished_by_resume(env: Env) -> None:
    class DiesWhenRollingBack(LocalStore):
        def save(self, key, data, expect=ANY):
            token = super().save(key, data, expect)
            if data["phase"] == "rolling-back":
                raise Killed()
            return token

    env.traffic_every(30)
    env.clock.hooks.append(lambda m: env.set_alarm("prod-main-5xx", "ALARM") if len(env.display.steps) == 1 else None)
    runbook = env.runbook(yes=True, ttl_wait=False)
    runbook.store = DiesWhenRollingBack(env.state_dir)
    with pytest.raises(Killed):
        runbook.shift([50, 100], 60)
    assert env.weights() == {"blue": 50, "green": 50}  # died before the rollback's change went out
    with pytest.raises(FleetformError, match="rolling-back"):
        env.runbook(yes=True).shift([50, 100], 60)
    state = env.runbook(yes=True).resume()
    assert state.phase == ROLLED_BACK and "prod-main-5xx" in state.reason
    assert env.weights() == {"blue": 100, "green": 0}


def test_an_unreachable_endpoint_is_a_message_not_a_traceback(env: Env) -> None:
    from conftest import free_port

    result = CliRunner().invoke(upgrade_cli.cli, [
        "shift", "main", "--account", "prod", "--steps", "50,100", "--yes", "--config", str(env.config_dir),
        "--state-dir", str(env.state_dir), "--endpoint-url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "cannot reach AWS" in result.stderr
    assert isinstance(result.exception, SystemExit)
