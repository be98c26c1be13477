"""Issue 12's faults, one example each (the model-based test interleaves them at random): a second
shift after a finished one, a rollback during another operator's shift, a hand edit in the last bake,
damaged state records, and the command-line contract (no-TTY refusal, JSON errors, exit statuses)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from click.testing import CliRunner
from test_upgrade_flow import cli_clock_fixture, invoke  # noqa: F401 - fixture
from test_upgrade_support import Env, FakeClock, RecordingDisplay, env_fixture, seeded_fixture  # noqa: F401

from fleetform.errors import FleetformError
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade.state import PAUSED, ROLLED_BACK, SHIFTED, LocalStore
from fleetform.upgrade.weights import WeightedRecords


@pytest.fixture(name="changes")
def changes_fixture(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, int]]]:
    """Every Route 53 change of the weights, in order: (comment, weights)."""
    seen: list[tuple[str, dict[str, int]]] = []
    original = WeightedRecords.change

    def spy(self: WeightedRecords, weights: dict[str, int], comment: str) -> str:
        seen.append((comment, dict(weights)))
        return original(self, weights, comment)

    monkeypatch.setattr(WeightedRecords, "change", spy)
    return seen


def _audit(env: Env) -> list[dict]:
    return [json.loads(line) for line in (env.state_dir / "audit.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("steps", ["25,100", "0,100"])
def test_a_finished_shift_refuses_to_run_again(env: Env, cli_clock: FakeClock, changes: list, steps: str) -> None:
    env.traffic_every(30)
    assert env.runbook(yes=True, ttl_wait=False).shift([50, 100], 30).phase == SHIFTED
    changes.clear()
    code, out, err = invoke(env, "shift", "main", "--account", "prod", "--steps", steps, "--bake", "0", "--yes")
    assert code == 1 and "already shifted" in err and "cluster-upgrade rollback main --account prod" in err
    assert changes == [] and env.weights() == {"blue": 0, "green": 100}
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert json.loads(out)["phase"] == SHIFTED


def _rollback_by_bob(env: Env) -> None:
    runbook = env.runbook(yes=True)  # another operator's process: its own runbook, display and token
    runbook.display = RecordingDisplay()
    assert runbook.rollback("bob: p99 on /photos").phase == ROLLED_BACK


@pytest.mark.parametrize("during_step", [2, 3])  # a middle bake, the last bake
def test_a_rollback_takes_the_run_over(env: Env, cli_clock: FakeClock, changes: list, during_step: int) -> None:
    env.traffic_every(30)
    done: list[datetime] = []

    def rollback_elsewhere(moment: datetime) -> None:
        if len(env.display.steps) == during_step and env.display.countdowns and not done:
            done.append(moment)
            _rollback_by_bob(env)

    env.clock.hooks.append(rollback_elsewhere)
    with pytest.raises(FleetformError, match="took the run over|taken over"):
        env.runbook(yes=True, ttl_wait=False).shift([25, 50, 100], 120)
    assert done and env.weights() == {"blue": 100, "green": 0}
    comment, weights = changes[-1]
    assert comment.startswith("fleetform rollback") and weights == {"blue": 100, "green": 0}
    status = env.runbook().status()
    assert status["phase"] == ROLLED_BACK and status["hand_changed"] is False
    assert status["history"][-1]["event"] == "rollback" and "bob" in status["reason"]
    actions = [a["action"] for a in _audit(env)]
    assert actions[-2:] == ["rollback-intent", "rollback"] and "shifted" not in actions  # nothing after it
    # the run is over: resume --force neither revives it nor jumps the weights
    code, _, err = invoke(env, "resume", "main", "--account", "prod", "--yes", "--force")
    assert code == 1 and "rolled-back: nothing to resume" in err
    assert env.weights() == {"blue": 100, "green": 0}


def test_a_rollback_between_the_last_check_and_the_change_is_set_again(env: Env, changes: list,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env.traffic_every(30)
    original = WeightedRecords.change

    def rollback_first(self: WeightedRecords, weights: dict[str, int], comment: str) -> str:
        if comment.endswith("step 2") and not any(c.startswith("fleetform rollback") for c, _ in changes):
            _rollback_by_bob(env)  # lands after the run's check, before its change
        return original(self, weights, comment)

    monkeypatch.setattr(WeightedRecords, "change", rollback_first)
    with pytest.raises(FleetformError, match="rollback landed while this step's change went out"):
        env.runbook(yes=True, ttl_wait=False).shift([25, 50, 100], 30)
    assert env.weights() == {"blue": 100, "green": 0} and env.runbook().status()["phase"] == ROLLED_BACK
    assert "shifted" not in [a["action"] for a in _audit(env)]


def test_a_hand_change_in_the_last_bake_is_not_shifted(env: Env, cli_clock: FakeClock, changes: list) -> None:
    env.traffic_every(30)
    edited: list[datetime] = []

    def hand_edit(moment: datetime) -> None:
        if len(env.display.steps) == 2 and env.display.countdowns and not edited:
            edited.append(moment)
            env.set_weights({"blue": 50, "green": 50})

    env.clock.hooks.append(hand_edit)
    state = env.runbook(yes=True, ttl_wait=False).shift([25, 100], 60)
    assert edited and state.phase == PAUSED
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    result = json.loads(out)
    assert result["phase"] == PAUSED
    assert "changed outside the runbook during the last bake" in result["reason"]
    assert result["actual_weights"] == {"blue": 50, "green": 50} and result["hand_changed"] is True
    assert "shifted" not in [a["action"] for a in _audit(env)]
    # without --force it stays; with it, the schedule goes on from the actual weights, through the gates
    with pytest.raises(FleetformError, match="changed outside the runbook"):
        env.runbook(yes=True, ttl_wait=False).resume()
    changes.clear()
    env.clock.hooks.remove(hand_edit)
    state = env.runbook(yes=True, ttl_wait=False, force=True).resume()
    assert state.phase == SHIFTED and [w for _, w in changes] == [{"blue": 0, "green": 100}]
    assert [e["step"] for e in state.history if e["event"] == "gates"][-2:] == [2, "final"]


def test_resume_force_after_a_hand_edit_never_skips_the_gates_or_moves_back(env: Env, changes: list) -> None:
    env.traffic_every(30)
    env.display.answers = [True, False]  # confirm step 1 (25), decline step 2: paused at 25
    assert env.runbook(ttl_wait=False).shift([25, 50, 75, 100], 10).phase == PAUSED
    env.set_weights({"blue": 40, "green": 60})  # by hand, between two steps of the schedule
    changes.clear()
    state = env.runbook(yes=True, ttl_wait=False, force=True).resume()
    assert state.phase == SHIFTED
    assert [w for _, w in changes] == [{"blue": 25, "green": 75}, {"blue": 0, "green": 100}]  # from 60: 75, 100


DAMAGE = {"not utf-8": b"\xff\xfe\x00{", "a list": b"[1, 2]", "empty object": b"{}", "null": b"null",
          "half a record": b'{"phase": "shifting", "step_index": 1}', "not JSON": b'{"account": '}


@pytest.mark.parametrize("content", DAMAGE.values(), ids=list(DAMAGE))
def test_a_damaged_record_is_a_clear_error_and_never_blocks_a_rollback(env: Env, cli_clock: FakeClock,
                                                                       content: bytes) -> None:
    path = env.state_dir / "prod-main.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    env.set_weights({"blue": 50, "green": 50})
    for command in (["status"], ["shift", "--steps", "50,100", "--yes"], ["resume", "--yes"]):
        code, out, err = invoke(env, *command[:1], "main", "--account", "prod", *command[1:])
        assert code == 1 and str(path) in err and "damaged upgrade state record" in err, (command, err)
        assert "cluster-upgrade rollback" in err and "Traceback" not in err
        code, out, _ = invoke(env, *command[:1], "main", "--account", "prod", *command[1:], "--output", "json")
        assert code == 1 and json.loads(out)["ok"] is False and str(path) in json.loads(out)["error"]
    assert env.weights() == {"blue": 50, "green": 50}
    code, out, err = invoke(env, "rollback", "main", "--account", "prod", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["phase"] == ROLLED_BACK and env.weights() == {"blue": 100, "green": 0}
    aside = [p for p in env.state_dir.iterdir() if p.name.startswith("prod-main.json.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content  # kept for whoever looks into it
    code, out, _ = invoke(env, "status", "main", "--account", "prod", "--output", "json")
    assert code == 0 and json.loads(out)["phase"] == ROLLED_BACK


def test_shift_without_yes_and_without_a_terminal_refuses_up_front(env: Env, cli_clock: FakeClock) -> None:
    result = CliRunner().invoke(upgrade_cli.cli, [
        "shift", "main", "--account", "prod", "--steps", "50,100", "--config", str(env.config_dir),
        "--state-dir", str(env.state_dir), "--endpoint-url", env.endpoint], input="")
    assert result.exit_code == 2 and "add --yes" in result.stderr
    assert not env.state_dir.exists() and env.weights() == {"blue": 100, "green": 0}


def test_pause_hints_name_the_account(env: Env) -> None:
    state = env.runbook(yes=True, ttl_wait=False).shift([20, 100], 10)  # no traffic data: pauses
    assert state.phase == PAUSED
    assert any("cluster-upgrade resume main --account prod" in note for note in env.display.notes)


def test_status_exits_1_when_route53_cannot_be_read(env: Env, cli_clock: FakeClock) -> None:
    from conftest import free_port

    for output in ("text", "json"):
        result = CliRunner().invoke(upgrade_cli.cli, [
            "status", "main", "--account", "prod", "--config", str(env.config_dir), "--state-dir",
            str(env.state_dir), "--endpoint-url", f"http://127.0.0.1:{free_port()}", "--output", output])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        if output == "json":
            assert "cannot reach AWS" in json.loads(result.stdout)["weights_error"]


def test_json_errors_are_objects_with_the_exit_status(env: Env, cli_clock: FakeClock) -> None:
    from fleetform.upgrade.state import Lock

    Lock(LocalStore(env.state_dir), "prod-main", "arn:aws:sts::123456789012:assumed-role/ops/alice on laptop pid 1",
         env.clock.now()).acquire()
    code, out, _ = invoke(env, "shift", "main", "--account", "prod", "--steps", "50,100", "--yes", "--output", "json")
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and document["problems"] == [] and "alice" in document["error"]
    code, out, _ = invoke(env, "shift", "main", "--account", "prod", "--steps", "50,25", "--yes", "--output", "json")
    assert code == 2 and "must increase" in json.loads(out)["error"]
    LocalStore(env.state_dir).delete_lock("prod-main")
    code, out, _ = invoke(env, "retire", "main", "--account", "prod", "--confirm", "x", "--output", "json")
    assert code == 1 and "completed shift" in json.loads(out)["error"]


def test_alarms_are_polled_every_alarm_poll_seconds_during_a_bake(env: Env) -> None:
    env.traffic_every(30)
    fired: list[datetime] = []

    def fire(moment: datetime) -> None:
        if len(env.display.steps) == 1 and env.display.countdowns and not fired:
            env.set_alarm("prod-main-5xx", "ALARM")
            fired.append(moment)

    env.clock.hooks.append(fire)
    state = env.runbook(yes=True, ttl_wait=False).shift([50, 100], 300)
    assert state.phase == ROLLED_BACK and "during bake 1/2" in state.reason
    rolled = next(e for e in state.history if e["event"] == "rollback")
    assert (datetime.fromisoformat(rolled["at"].replace("Z", "+00:00")) - fired[0]).total_seconds() <= 10
