"""Model-based test of the runbook's guarantees (docs/upgrade.md, "What each command guarantees").

A hypothesis state machine drives the real `cluster-upgrade` commands against the real moto server
and interleaves, at random: shift, resume, rollback and retire by two operators; a kill (an exception
that nothing catches, like SIGKILL) right after any state write, with the lock the dead process leaves;
and, from inside a running command (at its k-th sleep of the fake clock): a rollback or a refused
shift by the other operator, a hand edit of the Route 53 weights, an alarm going off, a damaged state
file. After every action it checks the invariants:

* every change the runbook makes to Route 53 sets a step of its run's schedule (never less green
  than Route 53 held just before), or 100/0 for a rollback;
* a shift or resume exits 0 only if Route 53 holds green=100 at that moment; a rollback exits 0, and
  then Route 53 holds 100/0 (nothing blocks it: not the lock, an alarm or a damaged record);
* a rollback is never undone: no change of the rolled-back run follows it, Route 53 stays 100/0 until
  a hand edit or a new run, and the record keeps the rollback;
* `status --output json` matches Route 53, or says it differs; on a damaged record it exits 1 with a
  JSON error naming the file;
* no command ends in a traceback; exit statuses are 0 or 1 for valid command lines.

Bounded: ``MAX_EXAMPLES`` runs of at most ``STEPS`` actions each; bakes take no wall time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_upgrade_support import Env, RecordingDisplay, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.errors import FleetformError
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade import runbook as runbook_mod
from fleetform.upgrade.state import LocalStore, LockInfo, iso, utcnow
from fleetform.upgrade.weights import WeightedRecords, step_weights

RESUMABLE = ("shifting", "paused", "rolling-back")
RECORD_KEYS = {"phase", "run_id", "schedule", "weights", "from_slot", "to_slot", "step_index", "step_status"}
MAX_EXAMPLES = 12
STEPS = 20
KEY = "prod-main"
ROLLED_BACK_WEIGHTS = {"blue": 100, "green": 0}
ARN = "arn:aws:sts::123456789012:assumed-role/ops"

_dead = subprocess.Popen([sys.executable, "-c", "pass"])
_dead.wait()
DEAD_PID = _dead.pid  # a process that has ended: the pid a killed run leaves in its lock


class Killed(BaseException):
    """SIGKILL right after a state write: no handler runs, nothing else is written."""


@dataclass
class Interference:
    """Something that happens while a command runs, at the command's ``at``-th sleep."""

    kind: str  # rollback | shift | hand-edit | alarm | damage
    at: int
    weights: tuple[int, int] = (50, 50)


SCHEDULES = st.sampled_from([(50, 100), (25, 50, 100), (10, 100), (100,), (5, 25, 100)])
OPERATORS = st.sampled_from(["alice", "bob"])
HAND_WEIGHTS = st.sampled_from([(50, 50), (70, 30), (0, 100), (100, 0), (90, 10)])
DAMAGE = st.sampled_from([b"\xff\xfe\x00not utf-8", b"[1, 2, 3]", b"{}", b'{"phase": "shifting"}', b'{"account": ',
                          b'"shifted"', b"null"])
INTERFERENCE = st.one_of(
    st.none(),
    st.builds(Interference, st.sampled_from(["rollback", "shift", "alarm", "damage"]), st.integers(1, 12)),
    st.builds(Interference, st.just("hand-edit"), st.integers(1, 12), HAND_WEIGHTS))
KILL = st.one_of(st.none(), st.integers(1, 8))


class Violation(AssertionError):
    pass


class RunbookModel(RuleBasedStateMachine):
    env: Env  # set by the test before the machine is built

    def __init__(self) -> None:
        super().__init__()
        self.env = type(self).env
        self.env.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(tempfile.mkdtemp(prefix="model-state-", dir=self.env.state_dir))
        self.yaml_before = (self.env.config_dir / "prod.yaml").read_text()
        self.operator = "alice"
        self.schedules: dict[str, list[int]] = {}  # run id -> schedule, from every record written
        self.rolled_back_runs: set[str] = set()
        self.after_rollback = False  # a rollback went out and nothing but a new run or a hand may move weights
        self.violations: list[str] = []
        self.sleeps = 0
        self.interference: Interference | None = None
        self.kill_after: int | None = None
        self.saves = 0
        self.in_hook = False
        self.log: list[str] = []

    # ------------------------------------------------------------------ plumbing
    def cli(self, *args: str, operator: str) -> tuple[int | None, dict[str, Any] | None, str]:
        """Run one command as ``operator``; (exit status or None if killed, JSON stdout, stderr)."""
        self.operator = operator
        try:
            result = CliRunner().invoke(upgrade_cli.cli, [
                *args, "--account", "prod", "--config", str(self.env.config_dir), "--state-dir",
                str(self.state_dir), "--endpoint-url", self.env.endpoint, "--output", "json"])
        except Killed:
            self.log.append(f"{' '.join(args[:1])} by {operator}: killed")
            self._leave_lock(operator)
            return None, None, ""
        finally:
            self.interference, self.kill_after = None, None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback

            raise Violation(f"{args[0]}: traceback: {''.join(traceback.format_exception(result.exception))}")
        assert "Traceback" not in result.stderr, result.stderr
        assert result.exit_code in (0, 1), (args, result.exit_code, result.stderr)
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise Violation(f"{args[0]} --output json: no JSON on stdout: {result.stdout!r} {result.stderr}") from None
        outcome = document.get("phase") or document.get("error", "")
        self.log.append(f"{args[0]} by {operator}: {result.exit_code} {outcome} {document.get('reason') or ''}"[:300])
        return result.exit_code, document, result.stderr

    def _leave_lock(self, operator: str) -> None:
        now = self.env.clock.now()
        LocalStore(self.state_dir).create_lock(KEY, LockInfo(f"{ARN}/{operator} on model pid {DEAD_PID}", iso(now),
                                                             iso(now + timedelta(minutes=30))), replace=True)

    def owner(self, arn: str) -> str:
        return f"{ARN}/{self.operator} on model pid 1"

    def weights(self) -> dict[str, int]:
        return self.env.weights()

    def record(self) -> tuple[dict[str, Any] | None, str | None]:
        """The record as the state file holds it, or why it is not one (the test's own reading)."""
        path = self.state_dir / f"{KEY}.json"
        if not path.exists():
            return None, None
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, str(exc)
        if not isinstance(data, dict) or not RECORD_KEYS <= set(data):
            return None, f"not a run: {data!r:.60}"
        return data, None

    def other(self, operator: str) -> str:
        return "bob" if operator == "alice" else "alice"

    # ------------------------------------------------------------------ spies (installed by the test)
    def on_save(self, data: dict[str, Any]) -> None:
        run_id = data.get("run_id")
        if isinstance(run_id, str) and run_id not in self.schedules:
            self.schedules[run_id] = list(data["schedule"])
            if data.get("phase") == "shifting":  # a new run starts: it may move weights again
                self.after_rollback = False
        if self.in_hook:
            return
        self.saves += 1
        if self.kill_after is not None and self.saves >= self.kill_after:
            self.kill_after = None
            raise Killed()

    def on_change(self, records: WeightedRecords, weights: dict[str, int], comment: str) -> None:
        before = records.weights()
        if comment == "by hand":
            self.after_rollback = False
            return
        if comment.startswith("fleetform rollback"):
            if weights != ROLLED_BACK_WEIGHTS:
                self.violations.append(f"rollback set {weights}")
            self.rolled_back_runs.add(comment.split()[-1])
            self.after_rollback = True
            return
        match = re.fullmatch(r"fleetform upgrade (\w+) step (\d+)", comment)
        if not match:
            self.violations.append(f"unknown change {comment!r} to {weights}")
            return
        run_id, number = match.group(1), int(match.group(2))
        if run_id in self.rolled_back_runs:
            self.violations.append(f"run {run_id} was rolled back, and then changed the weights to {weights}")
        schedule = self.schedules.get(run_id)
        if schedule is None or weights != step_weights("blue", "green", schedule[number - 1]):
            self.violations.append(f"step {number} of {run_id} set {weights}, not its schedule {schedule}")
        if weights["green"] <= before.get("green", 0):
            self.violations.append(f"step {number} of {run_id} moved green back or nowhere: {before} -> {weights}")
        if self.after_rollback:
            self.violations.append(f"a change {weights} by {run_id} undid a rollback")

    def on_sleep(self, _moment: Any) -> None:
        self.sleeps += 1
        event, self.interference = self.interference, None
        if event is None:
            return
        if self.sleeps < event.at:
            self.interference = event
            return
        self.log.append(f"  during it: {event}")
        other = self.other(self.operator)
        if event.kind == "alarm":
            self.env.set_alarm("prod-main-5xx", "ALARM")
        elif event.kind == "hand-edit":
            self.env.set_weights({"blue": event.weights[0], "green": event.weights[1]})
        elif event.kind == "damage":
            (self.state_dir / f"{KEY}.json").write_bytes(b"\xff\xfe\x00not utf-8")
        else:
            me = self.operator
            self.operator, self.in_hook = other, True
            try:
                runbook = upgrade_cli.build("main", "prod", str(self.env.config_dir), None, None, self.env.endpoint,
                                            str(self.state_dir), "json", runbook_mod.Options(yes=True, ttl_wait=False))
                runbook.display = RecordingDisplay()
                if event.kind == "rollback":
                    runbook.rollback(f"{other} during a run")
                    if self.weights() != ROLLED_BACK_WEIGHTS:
                        self.violations.append("a rollback from inside a run did not leave 100/0")
                else:
                    before = self.weights()
                    try:
                        runbook.shift([50, 100], 0)
                        self.violations.append("a second shift ran while another run held the lock")
                    except FleetformError:
                        pass
                    if self.weights() != before:
                        self.violations.append("a refused second shift changed the weights")
            finally:
                self.operator, self.in_hook = me, False

    # ------------------------------------------------------------------ rules
    @initialize()
    def start(self) -> None:
        self.env.set_weights({"blue": 100, "green": 0})
        self.after_rollback = False
        for alarm in ("prod-main-5xx", "prod-main-latency-p99"):
            self.env.set_alarm(alarm, "OK")

    @precondition(lambda self: (self.record()[0] or {}).get("phase") not in RESUMABLE)  # (refused: resume's turn)
    @rule(operator=OPERATORS, schedule=SCHEDULES, bake=st.sampled_from([15, 40, 0]), force=st.booleans(),
          interference=INTERFERENCE, kill=KILL)
    def shift(self, operator: str, schedule: tuple[int, ...], bake: int, force: bool,
              interference: Interference | None, kill: int | None) -> None:
        before_record, _ = self.record()
        before = self.weights()
        self.env.traffic(self.env.clock.now())  # what CloudWatch saw of the weights up to now
        self.interference, self.kill_after, self.saves = interference, kill, 0
        code, document, err = self.cli("shift", "main", "--steps", ",".join(map(str, schedule)), "--bake", str(bake),
                                       "--yes", *(["--force"] if force else []), operator=operator)
        if code == 0:
            self._exited_shifted("shift")
        if before_record is not None and before_record["phase"] == "shifted":  # once only: rollback is the way back
            if self.weights() != before:
                raise Violation(f"a second shift after a finished one moved {before} -> {self.weights()}")
            assert code == 1 and ("already shifted" in err or "upgrade lock" in err), (code, err)

    @precondition(lambda self: self.record()[1] is not None or (self.record()[0] or {}).get("phase") in RESUMABLE)
    @rule(operator=OPERATORS, force=st.booleans(), interference=INTERFERENCE, kill=KILL)
    def resume(self, operator: str, force: bool, interference: Interference | None, kill: int | None) -> None:
        self.env.traffic(self.env.clock.now())
        self.interference, self.kill_after, self.saves = interference, kill, 0
        code, _, _ = self.cli("resume", "main", "--yes", *(["--force"] if force else []), operator=operator)
        if code == 0:
            self._exited_shifted("resume")

    @precondition(lambda self: (self.record()[0] or {}).get("phase") != "rolled-back"
                  or self.weights() != ROLLED_BACK_WEIGHTS)  # (else nothing to roll back)
    @rule(operator=OPERATORS, kill=KILL)
    def rollback(self, operator: str, kill: int | None) -> None:
        self.kill_after, self.saves = kill, 0
        code, document, err = self.cli("rollback", "main", "--reason", "model", operator=operator)
        if code is None:
            return
        # never blocked: not by the lock, an alarm or a damaged record; the audit trail is local and writable
        assert code == 0, err
        assert self.weights() == ROLLED_BACK_WEIGHTS
        assert document and document["phase"] == "rolled-back" and document["actual_weights"] == ROLLED_BACK_WEIGHTS

    @precondition(lambda self: (self.record()[0] or {}).get("phase") == "shifted")
    @rule(operator=OPERATORS)
    def retire(self, operator: str) -> None:
        before = self.weights()
        code, _, err = self.cli("retire", "main", "--confirm", "prod-main-blue", operator=operator)
        assert code == 1, err  # never after a soak of a day: bakes here take minutes of fake time
        assert self.weights() == before and (self.env.config_dir / "prod.yaml").read_text() == self.yaml_before

    @rule(kind=st.sampled_from(["hand-edit", "alarm", "alarm-ok", "damage", "time"]), weights=HAND_WEIGHTS,
          content=DAMAGE, minutes=st.sampled_from([1, 10, 31]))
    def outside(self, kind: str, weights: tuple[int, int], content: bytes, minutes: int) -> None:
        """Something outside the runbook: a hand edit in Route 53, an alarm, a damaged record, time."""
        self.log.append(f"{kind} {weights if kind == 'hand-edit' else content if kind == 'damage' else ''}")
        if kind == "hand-edit":
            self.env.set_weights({"blue": weights[0], "green": weights[1]})
        elif kind in ("alarm", "alarm-ok"):
            self.env.set_alarm("prod-main-5xx", "ALARM" if kind == "alarm" else "OK")
        elif kind == "damage":
            (self.state_dir / f"{KEY}.json").write_bytes(content)
        else:
            self.env.clock.advance(minutes=minutes)

    def _exited_shifted(self, command: str) -> None:
        actual = self.weights()
        if actual != {"blue": 0, "green": 100}:
            raise Violation(f"{command} exited 0 while Route 53 holds {actual}")

    # ------------------------------------------------------------------ invariants
    @invariant()
    def no_violation(self) -> None:
        if self.violations:
            raise Violation("; ".join(self.violations) + "\n" + "\n".join(self.log))

    @invariant()
    def a_rollback_holds(self) -> None:
        if not self.after_rollback:
            return
        actual = self.weights()
        if actual != ROLLED_BACK_WEIGHTS:
            raise Violation(f"after a rollback Route 53 holds {actual}\n" + "\n".join(self.log))
        state, _ = self.record()  # (a record the model damaged since is not the runbook's doing)
        # rolling-back: a later rollback killed after its first write (resume or rollback finishes it)
        if state is not None and state["phase"] not in ("rolled-back", "rolling-back"):
            raise Violation(f"the record lost the rollback: {state['phase']} of run {state['run_id']}\n"
                            + "\n".join(self.log))

    @invariant()
    def status_matches_route53(self) -> None:
        state, damage = self.record()
        code, document, err = self.cli("status", "main", operator=self.operator)
        assert document is not None
        if damage is not None:
            assert code == 1 and str(self.state_dir / f"{KEY}.json") in document["error"], (code, document)
            return
        actual = self.weights()
        assert code == 0, err
        assert document["actual_weights"] == actual, (document, actual)
        recorded = document["recorded_weights"]
        assert document["hand_changed"] == (recorded is not None and recorded != actual), document
        if document["phase"] == "shifted":
            assert recorded == {"blue": 0, "green": 100}, document


def test_runbook_invariants_under_random_interleavings(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    machines: list[RunbookModel] = []
    original_save = LocalStore.save
    original_change = WeightedRecords.change

    def save(store: LocalStore, key: str, data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        token = original_save(store, key, data, *args, **kwargs)
        machines[-1].on_save(data)
        return token

    def change(records: WeightedRecords, weights: dict[str, int], comment: str) -> str:
        machines[-1].on_change(records, weights, comment)
        return original_change(records, weights, comment)

    monkeypatch.setattr(LocalStore, "save", save)
    monkeypatch.setattr(WeightedRecords, "change", change)
    monkeypatch.setattr(runbook_mod, "owner_id", lambda arn: machines[-1].owner(arn))
    monkeypatch.setattr(upgrade_cli, "CLOCK_FACTORY", lambda: env.clock)
    # the real loader and clients, made once: each command would otherwise spend a second on them
    config = load_config(env.config_dir)
    monkeypatch.setattr(upgrade_cli, "load_config", lambda directory: config)
    monkeypatch.setattr(upgrade_cli, "connect", lambda profile, region, endpoint: env.aws(region))
    env.clock.moment = utcnow() - timedelta(days=400)  # each run 2 days later: no two share a gate window
    env.traffic_every(30)
    env.clock.hooks.append(lambda moment: machines[-1].on_sleep(moment))

    class Model(RunbookModel):
        def __init__(self) -> None:
            type(self).env = env
            machines.append(self)
            env.clock.advance(days=2)  # metrics of one run are not in another's gate window
            super().__init__()

    run_state_machine_as_test(Model, settings=settings(
        max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
    assert len(machines) >= MAX_EXAMPLES
