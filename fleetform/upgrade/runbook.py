"""The phases of the blue/green runbook: plan, verify, shift, rollback, status, retire, resume.

``Runbook`` holds what a phase needs (target, AWS, store, audit trail, clock, display). The
clock (``now``/``sleep``) is injectable so tests bake in no time. Every change of weights is
preceded by a state write of the intent and followed by one of the outcome, so a killed run
resumes without repeating or skipping a change. A shift step's intent is also written to the
audit trail before its change: if that write fails, the step stops with nothing changed. A
rollback is never blocked by the audit trail: it notes the failure, finishes, then reports it.

Fencing: every write of a shift is conditional on the record being the one this run last wrote,
and before each Route 53 change the run checks that record and its lock again. A rollback writes
unconditionally, so a shift it took over stops at its next check without writing anything (no
stale record over the rollback, no audit entry, no change). Route 53 is read again before every
verdict: a run counts as shifted only if Route 53 holds the last step's weights at that moment.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from fleetform.aws_session import AwsError, call
from fleetform.errors import FleetformError, UsageError
from fleetform.upgrade import gates as gates_mod
from fleetform.upgrade.argocd import ARGOCD_CHECKS
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.checks import PLAN_CHECKS, VERIFY_CHECKS, CheckContext, CheckResult, blocking, run_checks
from fleetform.upgrade.gates import GateResult, Traffic
from fleetform.upgrade.permissions import declare
from fleetform.upgrade.state import (
    ABORTED,
    ANY,
    APPLIED,
    APPLYING,
    PAUSED,
    PENDING,
    RETIRED,
    ROLLED_BACK,
    ROLLING_BACK,
    SHIFTED,
    SHIFTING,
    SYNCED,
    AuditFailed,
    AuditTrail,
    DamagedRecord,
    Lock,
    RunState,
    StaleRecord,
    Store,
    Token,
    iso,
    owner_id,
    parse_iso,
    stale_message,
    utcnow,
)
from fleetform.upgrade.target import Target, check_caller
from fleetform.upgrade.weights import WeightedRecords, step_weights
from fleetform.upgrade.yamledit import mark_retiring, remove_slot

SHIFT_ACTIONS = declare("step:shift", "route53:ChangeResourceRecordSets", "route53:GetChange",
                        "route53:ListResourceRecordSets", "route53:ListHostedZonesByName",
                        "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData", "sts:GetCallerIdentity")
ROLLBACK_ACTIONS = declare("step:rollback", "route53:ChangeResourceRecordSets", "route53:GetChange",
                           "route53:ListResourceRecordSets", "route53:ListHostedZonesByName", "sts:GetCallerIdentity")
RETIRE_ACTIONS = declare("step:retire", "cloudwatch:GetMetricData", "route53:ListResourceRecordSets",
                         "route53:ListHostedZonesByName", "sts:GetCallerIdentity")
LOCK_REFRESH_SECONDS = 60


class Clock:
    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Display(Protocol):
    def note(self, text: str) -> None: ...

    def step(self, number: int, total: int, percent: int, before: dict[str, int], after: dict[str, int]) -> None: ...

    def gates(self, results: list[GateResult]) -> None: ...

    def countdown(self, label: str, remaining: float, total: float) -> None: ...

    def confirm(self, question: str) -> bool: ...

    def typed_confirm(self, expected: str) -> str: ...


class HandChanged(FleetformError):
    pass


class AlreadyShifted(FleetformError):
    pass


@dataclass
class Options:
    yes: bool = False
    force: bool = False
    ttl_wait: bool = True
    insync_interval: float = 5.0
    smoke_base_url: str | None = None
    strict: bool = False


@dataclass
class Runbook:
    target: Target
    aws: Aws
    store: Store
    audit: AuditTrail
    display: Display
    clock: Clock = field(default_factory=Clock)
    options: Options = field(default_factory=Options)
    _caller: dict[str, str] | None = None
    _records: WeightedRecords | None = None
    _token: Token = None  # the record as this runbook last read or wrote it (the fencing token)

    # ------------------------------------------------------------------ helpers
    @property
    def caller(self) -> dict[str, str]:
        if self._caller is None:
            self._caller = check_caller(self.target, self.aws)
        return self._caller

    @property
    def records(self) -> WeightedRecords:
        if self._records is None:
            self._records = WeightedRecords(self.aws, self.target)
        return self._records

    def load(self) -> RunState | None:
        """The run's record (DamagedRecord if it is not one); remembers its token for the next save."""
        data, self._token = self.store.read(self.target.key)
        return None if data is None else RunState.from_dict(data, self.store.record_where(self.target.key))

    def save(self, state: RunState, takeover: bool = False) -> None:
        """Write the record if it is still the one this runbook last saw (StaleRecord otherwise);
        ``takeover`` (a rollback) writes whatever is there."""
        state.updated_at = iso(self.clock.now())
        state.revision += 1
        self._token = self.store.save(self.target.key, state.to_dict(), expect=ANY if takeover else self._token)

    def _fence(self, lock: Lock) -> None:
        """Stop, writing nothing, if this run lost its lock or its record changed (taken over)."""
        lock.refresh(self.clock.now())
        self._fence_record()

    def _crossed_a_rollback(self) -> None:
        """A rollback that landed between this run's last check and its change was overwritten by the
        change (Route 53 has no conditional UPSERT): set the rollback's weights again, then stop."""
        try:
            data, token = self.store.read(self.target.key)
        except DamagedRecord:
            return  # the next check stops this run
        if token == self._token:
            return
        if isinstance(data, dict) and data.get("phase") in (ROLLING_BACK, ROLLED_BACK):
            weights = step_weights(str(data.get("from_slot")), str(data.get("to_slot")), 0)
            self.records.change(weights, f"fleetform rollback {data.get('run_id')}")
            raise StaleRecord(f"a rollback landed while this step's change went out; its weights {_fmt(weights)} "
                              "are set again. This run stops: see `cluster-upgrade status`")
        self._fence_record()

    def _fence_record(self) -> None:
        try:
            _, token = self.store.read(self.target.key)
        except DamagedRecord as exc:
            raise StaleRecord(f"{exc}; this run stops without changing anything") from None
        if token != self._token:
            raise StaleRecord(stale_message(self.store.record_where(self.target.key)))

    def lock(self, force: bool = False) -> Lock:
        return Lock(self.store, self.target.key, owner_id(self.caller["arn"]), self.clock.now(), force=force)

    def _audit(self, action: str, state: RunState | None, **details: Any) -> None:
        self.audit.record(self.clock.now(), self.caller, action, account=self.target.account.name,
                          cluster=self.target.cluster_key, run_id=state.run_id if state else None, **details)

    def command(self, verb: str) -> str:
        """The command line that acts on this run, for hints: ``cluster-upgrade resume main --account prod``."""
        return f"cluster-upgrade {verb} {self.target.cluster_key} --account {self.target.account.name}"

    def _slots_from(self, state: RunState) -> Target:
        return self.target.with_slots(state.from_slot, state.to_slot)

    def new_version(self) -> str:
        version = self.target.version_of(self.target.new_slot)
        if version is None:
            raise UsageError(f"{self.target.account.file}: clusters.{self.target.cluster_key} has no "
                             f"{self.target.new_slot} slot yet: run `cluster-upgrade prepare` and let the pipeline "
                             "apply it")
        return version

    # ------------------------------------------------------------------ read-only phases
    def plan(self, to_version: str) -> list[CheckResult]:
        ctx = CheckContext(self.aws, self.target, to_version, self.store, self.clock.now())
        caller = _caller_check(self)
        return [caller, *run_checks(PLAN_CHECKS, ctx)]

    def verify(self) -> list[CheckResult]:
        ctx = CheckContext(self.aws, self.target, self.new_version(), self.store, self.clock.now(),
                           smoke_base_url=self.options.smoke_base_url)
        return [_caller_check(self), *run_checks([*VERIFY_CHECKS, *ARGOCD_CHECKS], ctx)]

    def status(self) -> dict[str, Any]:
        state = self.load()
        target = self._slots_from(state) if state else self.target
        actual: dict[str, int] | None
        try:
            actual = self.records.weights()
            error = None
        except FleetformError as exc:
            actual, error = None, str(exc)
        recorded = state.weights if state else None
        lock = self.store.read_lock(self.target.key)
        return {
            "account": self.target.account.name,
            "cluster": self.target.cluster_key,
            "phase": state.phase if state else "not-started",
            "from_slot": target.live_slot,
            "to_slot": target.new_slot,
            "target_version": state.target_version if state else self.target.version_of(target.new_slot),
            "schedule": state.schedule if state else None,
            "step": state.current_step if state else None,
            "step_index": state.step_index if state else None,
            "step_status": state.step_status if state else None,
            "recorded_weights": recorded,
            "actual_weights": actual,
            "weights_error": error,
            "hand_changed": bool(recorded and actual is not None and _differs(recorded, actual)),
            "lock": lock.__dict__ if lock else None,
            "state_store": self.store.where,
            "reason": state.reason if state else None,
            "history": state.history if state else [],
        }

    def audit_entries(self) -> list[dict[str, Any]]:
        """This cluster's audit trail, every operator's entries in time order."""
        return self.audit.entries(self.target.account.name, self.target.cluster_key)

    # ------------------------------------------------------------------ shift / resume
    def shift(self, schedule: list[int], bake_seconds: int) -> RunState:
        self.caller  # noqa: B018 - the account guard runs before anything changes
        with self.lock() as lock:
            existing = self.load()
            if existing and existing.phase in (SHIFTING, PAUSED, ROLLING_BACK):
                raise FleetformError(f"a run of {self.target.key} is {existing.phase} at step "
                                     f"{min(existing.step_index + 1, len(existing.schedule))}/"
                                     f"{len(existing.schedule)}: use `{self.command('resume')}` (or `rollback`)")
            if existing and existing.phase == SHIFTED:
                raise AlreadyShifted(f"{self.target.key} is already shifted ({existing.to_slot} has held 100% since "
                                     f"{existing.completed_at or existing.updated_at}); `{self.command('rollback')}` "
                                     "is the way back, `retire` the way on")
            version = self.new_version()
            self._require_verified()
            actual = self.records.weights()
            missing = [s for s in (self.target.live_slot, self.target.new_slot) if s not in actual]
            if missing:
                raise FleetformError(f"no weighted record for {', '.join(missing)} at {self.target.hostname}: the "
                                     "pipeline creates one per slot; apply it first (see `cluster-upgrade plan`)")
            expected = existing.weights if existing else step_weights(self.target.live_slot, self.target.new_slot, 0)
            forced = _differs(expected, actual)
            if forced:
                self._hand_changed(existing, expected, actual)
            now = self.clock.now()
            state = RunState(account=self.target.account.name, cluster=self.target.cluster_key,
                             from_slot=self.target.live_slot, to_slot=self.target.new_slot, target_version=version,
                             schedule=schedule, bake_seconds=bake_seconds,
                             weights={s: actual.get(s, 0) for s in (self.target.live_slot, self.target.new_slot)},
                             run_id=uuid.uuid4().hex[:12], started_at=iso(now),
                             history=existing.history if existing else [])
            if forced:
                _position(state)
                state.event(now, "force-accept-weights", weights=state.weights, expected=expected)
            state.event(now, "start", schedule=schedule, bake_seconds=bake_seconds, caller=self.caller["arn"])
            # audited before it is recorded: a run the trail cannot hold does not start
            self._audit("start", state, before=state.weights, reason=f"shift {schedule} bake {bake_seconds}s")
            self.save(state)
            return self._run(state, lock)

    def resume(self) -> RunState:
        self.caller  # noqa: B018
        with self.lock() as lock:
            state = self.load()
            if state is None:
                raise FleetformError(f"no run of {self.target.key} to resume (state: {self.store.where})")
            if state.phase not in (SHIFTING, PAUSED, ROLLING_BACK):
                raise FleetformError(f"the run of {self.target.key} is {state.phase}: nothing to resume")
            self.target = self._slots_from(state)
            self._records = None
            if state.phase == ROLLING_BACK:  # never leave a rollback half done
                return self._rollback(state, state.reason or "finishing an interrupted rollback")
            state.phase = SHIFTING
            state.reason = None
            state.event(self.clock.now(), "resume", step=min(state.step_index + 1, len(state.schedule)),
                        step_status=state.step_status)
            self.save(state)
            self._audit("resume", state, before=state.weights)
            return self._run(state, lock)

    def _require_verified(self) -> None:
        results = run_checks(VERIFY_CHECKS[:2], CheckContext(self.aws, self.target, self.new_version()))
        failed = blocking(results) + [r for r in results if r.status == "unknown"]
        if failed:
            raise FleetformError("the new slot is not ready: " + "; ".join(f"{r.id}: {r.detail}" for r in failed)
                                 + " (run `cluster-upgrade verify`)")

    def _hand_changed(self, state: RunState | None, expected: dict[str, int], actual: dict[str, int]) -> None:
        if not self.options.force:
            raise HandChanged(f"weights of {self.target.hostname} were changed outside the runbook: recorded "
                              f"{_fmt(expected)}, actual {_fmt(actual)}; check with the team, then pass --force "
                              "to accept the actual weights")
        self.display.note(f"--force: accepting actual weights {_fmt(actual)} (recorded {_fmt(expected)})")
        self._audit("force-accept-weights", state, before=expected, after=actual, reason="--force")
        if state:
            state.weights = {s: actual.get(s, 0) for s in state.weights}
            _position(state)
            state.event(self.clock.now(), "force-accept-weights", weights=state.weights,
                        step=state.step_index + 1, step_status=state.step_status)

    def _run(self, state: RunState, lock: Lock) -> RunState:
        # the old slot's traffic when last measured: the comparison once its weight (and data) is gone
        baseline = Traffic(**state.baseline) if state.baseline else None
        total = len(state.schedule)
        while state.step_index < total:
            percent = state.schedule[state.step_index]
            after = step_weights(state.from_slot, state.to_slot, percent)
            number = state.step_index + 1
            lock.refresh(self.clock.now())
            if state.step_status != APPLYING:  # (APPLYING: the change may have gone out before a kill)
                actual = self.records.weights()
                if _differs(state.weights, actual):
                    self._hand_changed(state, state.weights, actual)  # refused unless --force
                    continue  # from the step it chose, through that step's gates
            if state.step_status == PENDING:
                results, baseline = gates_mod.run_gates(self.aws, self._slots_from(state), state.weights,
                                                        self.clock.now(), baseline)
                state.baseline = asdict(baseline) if baseline else state.baseline
                self.display.gates(results)
                verdict = gates_mod.verdict(results)
                state.event(self.clock.now(), "gates", step=number, verdict=verdict,
                            results=[r.as_dict() for r in results])
                if verdict == gates_mod.FAIL:
                    reason = f"gate failed before step {number}: " + _failed(results)
                    if state.weights.get(state.to_slot, 0) == 0:
                        return self._abort(state, reason)
                    return self._rollback(state, reason)
                if verdict == gates_mod.INCONCLUSIVE:
                    return self._pause(state, f"inconclusive gate before step {number}: " + _failed(results))
                self.display.step(number, total, percent, state.weights, after)
                if not self.options.yes and not self.display.confirm(
                        f"step {number}/{total}: set {_fmt(after)}?"):
                    return self._pause(state, f"operator declined step {number}")
                self._fence(lock)
                # no unaudited traffic shift: if this entry cannot be written, the step stops here
                self._audit("shift-step-intent", state, before=state.weights, after=after,
                            reason=f"step {number}/{total}")
                state.pending_weights = after
                state.step_status = APPLYING
                self.save(state)
            if state.step_status == APPLYING:
                self._fence(lock)
                actual = self.records.weights()
                if not _differs(after, actual):
                    state.change_id = None  # applied before the process stopped; its change id was not recorded
                elif _differs(state.weights, actual):
                    self._hand_changed(state, state.weights, actual)  # refused unless --force
                    continue  # never straight to this step's weights: back through the gates
                else:
                    state.change_id = self.records.change(after, f"fleetform upgrade {state.run_id} step {number}")
                    self._crossed_a_rollback()
                before = state.weights
                state.weights, state.pending_weights = after, None
                state.step_status = APPLIED
                state.event(self.clock.now(), "weights", step=number, before=before, after=after,
                            change_id=state.change_id)
                self.save(state)
                try:
                    self._audit("shift-step", state, before=before, after=after,
                                change_ids=[state.change_id] if state.change_id else [],
                                reason=f"step {number}/{total}")
                except AuditFailed as exc:
                    raise AuditFailed(f"{exc}. The weights did change to {_fmt(after)} (change "
                                      f"{state.change_id or 'unknown'}); the trail holds the step's intent. Fix "
                                      f"the access, then `{self.command('resume')}`") from exc
            if state.step_status == APPLIED:
                if state.change_id:
                    self.records.wait_insync(state.change_id, self.clock.sleep, self.clock.now,
                                             interval=self.options.insync_interval)
                if self.options.ttl_wait:
                    if self._wait(state, lock, "TTL", self.records.ttl()) is not None:
                        return state
                state.step_status = SYNCED
                self.save(state)
            if state.step_status == SYNCED:
                if self._wait(state, lock, f"bake {number}/{total}", state.bake_seconds) is not None:
                    return state
                state.event(self.clock.now(), "baked", step=number)
                state.step_index += 1
                state.step_status = PENDING
                state.change_id = None
                self.save(state)
        # the last bake is judged too before the run counts as done
        results, _ = gates_mod.run_gates(self.aws, self._slots_from(state), state.weights, self.clock.now(), baseline)
        self.display.gates(results)
        verdict = gates_mod.verdict(results)
        state.event(self.clock.now(), "gates", step="final", verdict=verdict, results=[r.as_dict() for r in results])
        if verdict == gates_mod.FAIL:
            return self._rollback(state, "gate failed after the last step: " + _failed(results))
        if verdict == gates_mod.INCONCLUSIVE:
            state.step_index = total - 1
            state.step_status = SYNCED
            return self._pause(state, "inconclusive gate after the last step: " + _failed(results))
        # the verdict stands only on what Route 53 holds now (a hand change during the last bake)
        actual = self.records.weights()
        if _differs(state.weights, actual):
            state.step_index = total - 1
            state.step_status = SYNCED
            return self._pause(state, f"weights changed outside the runbook during the last bake: recorded "
                                      f"{_fmt(state.weights)}, actual {_fmt(actual)}; check with the team, then "
                                      "`resume --force` takes the schedule on from the actual weights, or "
                                      "`rollback`")
        state.phase = SHIFTED
        state.completed_at = iso(self.clock.now())
        state.event(self.clock.now(), "shifted", weights=state.weights)
        self.save(state)
        self._audit("shifted", state, after=state.weights, reason="all steps passed")
        return state

    def _wait(self, state: RunState, lock: Lock, label: str, seconds: float) -> RunState | None:
        """Count down; poll the guard alarms; an alarm rolls back at once. Returns the state if it did."""
        end = self.clock.now() + timedelta(seconds=seconds)
        last_poll = last_refresh = self.clock.now()
        while (remaining := (end - self.clock.now()).total_seconds()) > 0:
            self.display.countdown(label, remaining, seconds)
            self.clock.sleep(min(1.0, remaining))
            now = self.clock.now()
            if (now - last_refresh).total_seconds() >= LOCK_REFRESH_SECONDS:
                lock.refresh(now)
                last_refresh = now
            if (now - last_poll).total_seconds() >= self.target.cluster.upgrade.alarm_poll_seconds:
                last_poll = now
                gate = gates_mod.alarm_gate(self.aws, self.target)
                if gate.status == gates_mod.FAIL:
                    self.display.gates([gate])
                    return self._rollback(state, f"during {label}: {gate.detail}")
        self.display.countdown(label, 0, seconds)
        return None

    def _abort(self, state: RunState, reason: str) -> RunState:
        return self._stop(state, ABORTED, "aborted", "abort", reason, f"aborted before any traffic moved: {reason}")

    def _pause(self, state: RunState, reason: str) -> RunState:
        return self._stop(state, PAUSED, "paused", "pause", reason,
                          f"paused: {reason}\nwhen ready: {self.command('resume')}")

    def _stop(self, state: RunState, phase: str, event: str, action: str, reason: str, note: str) -> RunState:
        """End this run without moving weights: record, save, audit, tell the operator."""
        state.phase, state.reason = phase, reason
        state.event(self.clock.now(), event, reason=reason)
        self.save(state)
        self._audit(action, state, before=state.weights, after=state.weights, reason=reason)
        self.display.note(note)
        return state

    # ------------------------------------------------------------------ rollback
    def rollback(self, reason: str) -> RunState | dict[str, Any]:
        """Weights back to the previous live slot at once; no gate can block it. Takes over the lock
        (a shift still running elsewhere stops at its next lock refresh)."""
        self.caller  # noqa: B018
        lock = self.lock(force=True)
        held = self.store.read_lock(self.target.key)
        if held and held.owner != lock.owner and not held.expired(self.clock.now()):
            self.display.note(f"taking over the lock from {held.owner}")
        with lock:
            try:
                state = self.load()
            except DamagedRecord as exc:  # a rollback needs only the configuration and Route 53
                aside = self.store.set_aside(self.target.key, "damaged-" + self.clock.now().strftime("%Y%m%dT%H%M%SZ"))
                self.display.note(f"{exc}\nrolling back from the configuration and Route 53 all the same; the "
                                  f"damaged record is kept as {aside}")
                state = None
            if state is None or state.phase == RETIRED:
                now = self.clock.now()
                state = RunState(account=self.target.account.name, cluster=self.target.cluster_key,
                                 from_slot=self.target.live_slot, to_slot=self.target.new_slot,
                                 target_version=self.target.version_of(self.target.new_slot), schedule=[100],
                                 bake_seconds=0, weights=self.records.weights(), run_id=uuid.uuid4().hex[:12],
                                 started_at=iso(now), history=state.history if state else [])
            self.target = self._slots_from(state)
            self._records = None
            return self._rollback(state, reason, takeover=True)

    def _rollback(self, state: RunState, reason: str, takeover: bool = False) -> RunState:
        """Weights to 100/0 in one change. From inside a run (a gate, an alarm) its first write is fenced
        like every other: a run that was taken over stops there instead."""
        if not takeover:
            self._fence_record()
        before = self.records.weights()
        after = step_weights(state.from_slot, state.to_slot, 0)
        self.display.note(f"rolling back: {reason}")
        failed = self._audit_unblocking("rollback-intent", state, before=before, after=after, reason=reason)
        state.pending_weights, state.phase, state.reason = after, ROLLING_BACK, reason
        self.save(state, takeover=True)
        change_id = self.records.change(after, f"fleetform rollback {state.run_id}")
        state.weights, state.pending_weights = after, None
        state.phase, state.reason, state.change_id = ROLLED_BACK, reason, change_id
        state.step_status = PENDING
        state.event(self.clock.now(), "rollback", before=before, after=after, change_id=change_id, reason=reason)
        self.save(state, takeover=True)
        failed += self._audit_unblocking("rollback", state, before=before, after=after, change_ids=[change_id],
                                         reason=reason)
        if failed:
            self.save(state, takeover=True)  # the audit-failed events
        self.records.wait_insync(change_id, self.clock.sleep, self.clock.now, interval=self.options.insync_interval)
        self.display.note(f"rolled back: {_fmt(after)} (change {change_id})")
        if failed:
            raise AuditFailed(f"rolled back to {_fmt(after)} (change {change_id}), but the audit trail is missing "
                              f"it: {'; '.join(failed)}. The state record's history has the rollback")
        return state

    def _audit_unblocking(self, action: str, state: RunState, **details: Any) -> list[str]:
        """Audit a rollback: a failure is noted (display, state history) and returned, never raised."""
        try:
            self._audit(action, state, **details)
        except AuditFailed as exc:
            self.display.note(f"{exc}: rolling back all the same (nothing blocks a rollback)")
            state.event(self.clock.now(), "audit-failed", action=action, error=str(exc))
            return [str(exc)]
        return []

    # ------------------------------------------------------------------ retire
    def retire(self, confirmation: str | None) -> dict[str, Any]:
        """Two pull requests, so that nothing is destroyed while deletion protection is on:
        1. the old slot is marked ``retiring: true`` (the pipeline turns its deletion protection off);
        2. once that is applied, the slot is removed (the pipeline destroys its stack, behind the
           allow-destroy label). Both need the soak, no weight and no traffic on the old slot."""
        self.caller  # noqa: B018
        with self.lock():
            state = self.load()
            if state is None or state.phase != SHIFTED:
                phase = state.phase if state else "not-started"
                raise FleetformError(f"retire needs a completed shift (phase is {phase}): the new slot must hold "
                                     "100% first")
            target = self._slots_from(state)
            soak = timedelta(minutes=self.target.cluster.upgrade.soak_minutes)
            since = parse_iso(state.completed_at or state.updated_at or state.started_at)
            now = self.clock.now()
            if now - since < soak:
                raise FleetformError(f"{state.to_slot} has held 100% since {iso(since)}; the soak period "
                                     f"(upgrade.soak_minutes={soak.total_seconds() / 60:.0f}) ends "
                                     f"{iso(since + soak)}")
            actual = self.records.weights()
            if actual.get(state.from_slot, 0) != 0 or actual.get(state.to_slot, 0) == 0:
                raise FleetformError(f"{state.from_slot} still has traffic weight: actual {_fmt(actual)}; retire "
                                     f"only when {state.to_slot} has it all")
            old = gates_mod.traffic(self.aws, target, state.from_slot, now)
            limit = self.target.cluster.upgrade.retire_max_requests
            if old is not None and old.requests > limit:
                raise FleetformError(f"{target.eks_name(state.from_slot)} still served {old.requests:.0f} requests "
                                     f"in the last {self.target.cluster.upgrade.metrics_window_minutes} min "
                                     f"(limit {limit}); wait for clients with cached DNS to move")
            expected = target.eks_name(state.from_slot)
            slot_cfg = self.target.cluster.slots.get(state.from_slot)
            marked = slot_cfg is not None and slot_cfg.retiring
            if marked:
                self._protection_off(expected)
            typed = confirmation if confirmation is not None else self.display.typed_confirm(expected)
            if typed != expected:
                raise UsageError(f"confirmation {typed!r} does not match {expected!r}; nothing changed")
            result = {"retired": state.from_slot, "cluster": expected, "file": self.target.account.file}
            if not marked:
                diff = mark_retiring(self.target.file, self.target.cluster_key, state.from_slot)
                state.event(now, "retiring", slot=state.from_slot)
                self.save(state)
                self._audit("retire-mark", state, before=actual, after=actual,
                            reason=f"mark slot {state.from_slot} retiring (deletion protection off)")
                return {**result, "step": "mark", "diff": diff}
            diff = remove_slot(self.target.file, self.target.cluster_key, state.from_slot)
            state.phase = RETIRED
            state.event(now, "retired", slot=state.from_slot)
            self.save(state)
            self._audit("retire", state, before=actual, after=actual, reason=f"remove slot {state.from_slot}")
            return {**result, "step": "remove", "diff": diff}

    def _protection_off(self, cluster_name: str) -> None:
        """Refuse to remove the slot while EKS still reports deletion protection on (the pipeline has not
        applied the ``retiring`` change yet). A cluster already gone, or an endpoint that does not report
        the setting (moto), does not stop it: the pipeline's destroy plan checks the stack itself."""
        try:
            cluster = call(self.aws.client("eks").describe_cluster, name=cluster_name)["cluster"]
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return
            raise
        if cluster.get("deletionProtection"):
            raise FleetformError(f"{cluster_name} still has deletion protection on: merge the pull request that "
                                 "marks its slot retiring and let the pipeline apply it, then retire again")


RETIRE_CLUSTER_ACTIONS = declare("step:retire", "eks:DescribeCluster")


def _caller_check(runbook: Runbook) -> CheckResult:
    title = "caller is in the configured account"
    try:
        caller = runbook.caller
    except FleetformError as exc:
        return CheckResult("caller-account", title, "fail", str(exc), "use --profile for the account's role")
    return CheckResult("caller-account", title, "pass", f"{caller['arn']}")


def _position(state: RunState) -> None:
    """After accepting weights set by hand: go on from the first step above them, through its gates (never
    backwards, never past a step); none above: the last step's bake and gates decide."""
    green = state.weights.get(state.to_slot, 0)
    above = [i for i, percent in enumerate(state.schedule) if percent > green]
    if above:
        state.step_index, state.step_status = above[0], PENDING
    else:
        state.step_index, state.step_status = len(state.schedule) - 1, SYNCED
    state.pending_weights, state.change_id = None, None


def _differs(expected: dict[str, int], actual: dict[str, int]) -> bool:
    return any(actual.get(slot, 0) != weight for slot, weight in expected.items())


def _fmt(weights: dict[str, int]) -> str:
    return ", ".join(f"{slot}={weight}" for slot, weight in sorted(weights.items()))


def _failed(results: list[GateResult]) -> str:
    return "; ".join(f"{r.name}: {r.detail}" for r in results if r.status in (gates_mod.FAIL, gates_mod.INCONCLUSIVE))
