"""New accounts in the pipeline: the organization stack creates them, their stacks follow.

A new account (no id in its file) gets its id from the organization stack's state (an output
``account_id_<name>``, and the cross-stack outputs the core makes for the same value). Until the
organization stack has been applied, no stack that reads that id can be planned: the output does
not exist yet. So a pull request's plan shows the account being created and lists the stacks that
will follow; on merge, ``fleetform apply`` creates the account and ``fleetform apply-new-accounts``
waits until its role can be assumed, then plans and applies those stacks one by one, in
dependency order (docs/organization.md#adding-an-account).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetform.errors import FleetformError
from fleetform.manifest import StackInfo, dependents_closure
from fleetform.naming import ORGANIZATION_STACK

OUTPUT_PREFIX = "account_id_"  # naming.new_account_output
PENDING_FILE = "new-accounts.json"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class NewAccount:
    name: str  # the account's name (the output's suffix)
    output: str  # the organization stack's output with the account's id
    outputs: tuple[str, ...]  # every output of the organization stack that carries that id
    stacks: tuple[str, ...] = ()  # the stacks that read it, directly or through a stack that does


@dataclass
class Pending:
    """The stacks of a plan run that wait for accounts the organization stack has not created yet."""

    accounts: list[NewAccount] = field(default_factory=list)

    @property
    def stacks(self) -> list[str]:
        return [s for a in self.accounts for s in a.stacks]

    def as_dict(self) -> dict[str, Any]:
        return {"accounts": [{"account": a.name, "output": a.output, "stacks": list(a.stacks)} for a in self.accounts]}

    def markdown(self) -> str:
        if not self.accounts:
            return ""
        lines = ["", "### New accounts", ""]
        for account in self.accounts:
            stacks = ", ".join(f"`{s}`" for s in account.stacks) or "none"
            lines.append(f"- **{account.name}**: created by `{ORGANIZATION_STACK}` (above). Its id is not known "
                         f"before that, so {stacks} will be planned and applied after the account exists, in the "
                         "same apply build (`fleetform apply-new-accounts`: wait until its role can be assumed, "
                         "then plan and apply in dependency order).")
        return "\n".join(lines) + "\n"


def declared_new_accounts(organization: StackInfo) -> list[NewAccount]:
    """The new accounts of a synthesized organization stack: its ``account_id_<name>`` outputs, each with
    the other outputs (the core's cross-stack outputs) that carry the same value."""
    outputs = json.loads(organization.json_path.read_text()).get("output", {})
    found = []
    for name, body in sorted(outputs.items()):
        if not name.startswith(OUTPUT_PREFIX):
            continue
        same = tuple(sorted(n for n, b in outputs.items() if b.get("value") == body.get("value")))
        found.append(NewAccount(name.removeprefix(OUTPUT_PREFIX), name, same))
    return found


def readers(stacks: Sequence[StackInfo], account: NewAccount) -> tuple[str, ...]:
    """The stacks that read the account's id from the organization stack, and every stack that depends on
    one of them (its remote state will not exist either), in the given (dependency) order."""
    pattern = re.compile(r"\.outputs\.(" + "|".join(re.escape(o) for o in account.outputs) + r")\b")
    direct = {s.name for s in stacks if s.name != ORGANIZATION_STACK and pattern.search(s.json_path.read_text())}
    closure = dependents_closure({s.name: s.dependencies for s in stacks}, direct)
    return tuple(s.name for s in stacks if s.name in closure)


def state_outputs(tf: Any, organization: StackInfo, backend_config: Sequence[str] = ()) -> dict[str, Any]:
    """The outputs in the organization stack's state (none before its first apply)."""
    tf.init(organization.directory, backend_config)
    text = tf.run(["output", "-json", "-no-color"], organization.directory).stdout.strip()
    return json.loads(text) if text else {}


def pending(tf: Any, all_stacks: Sequence[StackInfo], chosen: Sequence[StackInfo],
            backend_config: Sequence[str] = ()) -> Pending:
    """The chosen stacks that wait for an account the organization stack's state does not have yet."""
    organization = next((s for s in all_stacks if s.name == ORGANIZATION_STACK), None)
    if organization is None:
        return Pending()
    declared = declared_new_accounts(organization)
    if not declared:
        return Pending()
    have = state_outputs(tf, organization, backend_config)
    names = {s.name for s in chosen}
    result = Pending()
    for account in declared:
        if account.output in have:
            continue
        waiting = tuple(s for s in readers(all_stacks, account) if s in names)
        result.accounts.append(NewAccount(account.name, account.output, account.outputs, waiting))
    return result


def write_pending(out_dir: Path, waiting: Pending) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PENDING_FILE).write_text(json.dumps(waiting.as_dict(), indent=2) + "\n")


def read_pending(out_dir: Path) -> Pending:
    path = out_dir / PENDING_FILE
    if not path.is_file():
        return Pending()
    data = json.loads(path.read_text())
    return Pending([NewAccount(a["account"], a["output"], (a["output"],), tuple(a["stacks"]))
                    for a in data.get("accounts", [])])


def account_ids(tf: Any, organization: StackInfo, waiting: Pending,
                backend_config: Sequence[str] = ()) -> dict[str, str]:
    """account -> id from the organization stack's state; an error if one is still missing."""
    outputs = state_outputs(tf, organization, backend_config)
    missing = [a.output for a in waiting.accounts if a.output not in outputs]
    if missing:
        raise FleetformError(f"the {ORGANIZATION_STACK} stack's state has no {', '.join(missing)} yet: apply "
                             f"{ORGANIZATION_STACK} first (fleetform apply), then run this again")
    return {a.name: str(outputs[a.output]["value"]) for a in waiting.accounts}


def wait_until_assumable(sts: Any, role_arn: str, *, timeout: float = 900.0, interval: float = 10.0,
                         progress: Progress | None = None, clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> float:
    """Call sts:AssumeRole on ``role_arn`` until it works (a new account's role takes minutes to become
    assumable); the seconds waited, or a FleetformError after ``timeout`` seconds with the last reason."""
    from fleetform.aws_session import AwsError, call

    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            call(sts.assume_role, RoleArn=role_arn, RoleSessionName="fleetform-new-account-check", DurationSeconds=900)
            waited = clock() - started
            if progress:
                progress(f"{role_arn}: assumable after {waited:.0f} s ({attempt} attempt(s))")
            return waited
        except AwsError as exc:
            reason = exc.reason
        waited = clock() - started
        if waited + interval > timeout:
            raise FleetformError(f"{role_arn} could not be assumed within {timeout:.0f} s ({attempt} attempts); "
                                 f"last reason: {reason}. The account's stacks were not applied: run "
                                 "`fleetform apply-new-accounts` again once it can be assumed")
        if progress:
            progress(f"{role_arn}: not assumable yet ({reason}); retrying, {waited:.0f}/{timeout:.0f} s")
        sleep(interval)


def hold_back(tf: Any, all_stacks: Sequence[StackInfo], chosen: Sequence[StackInfo],
              backend_config: Sequence[str] = (), progress: Progress | None = None) -> tuple[list[StackInfo], Pending]:
    """The chosen stacks that can be planned now, and those that wait for a new account."""
    waiting = pending(tf, all_stacks, chosen, backend_config)
    held = set(waiting.stacks)
    if held and progress:
        for account in waiting.accounts:
            progress(f"new account {account.name}: {', '.join(account.stacks) or 'no stack'} will be planned "
                     f"and applied after {ORGANIZATION_STACK} has created it")
    return [s for s in chosen if s.name not in held], waiting


def record(run: Any, waiting: Pending, out_dir: Path) -> None:
    """Add the waiting stacks to a plan run's report and summary (and the files plan_stacks wrote)."""
    write_pending(out_dir, waiting)
    if not waiting.accounts:
        return
    run.report["new_accounts"] = waiting.as_dict()["accounts"]
    run.markdown = run.markdown.rstrip("\n") + "\n" + waiting.markdown()
    run.write(out_dir)


@dataclass(frozen=True)
class Settle:
    """How ``apply-new-accounts`` reaches a new account."""

    first_role: str  # the role CreateAccount made (role_name), used until the baseline made the fleetform roles
    role: str  # the role the account's other stacks assume (the fleetform_role variable)
    wait_timeout: float = 900.0
    wait_interval: float = 10.0


def apply_new_accounts(tf: Any, synth_dir: Path, stacks: Sequence[StackInfo], waiting: Pending,
                       ids: dict[str, str], sts: Any, settle: Settle, plan_options: Any, lock: Any,
                       progress: Progress | None = None) -> list[dict[str, Any]]:
    """For each new account: wait until its role can be assumed, then plan and apply each waiting stack, one
    at a time in dependency order (the baseline through ``first_role``, since it creates the fleetform roles
    the later stacks assume). Stops at the first failure; a second run continues (applied stacks plan no
    changes)."""
    from dataclasses import replace

    from fleetform.naming import baseline_stack, role_arn
    from fleetform.terraform.workflow import apply_plans, plan_stacks, saved_plans

    by_name = {s.name: s for s in stacks}
    order = [s.name for s in stacks]
    results: list[dict[str, Any]] = []
    for account in waiting.accounts:
        own = f"{account.name}-"
        # other accounts' stacks first (the pipeline stack lets the apply build into the new account), then the
        # account's own stacks: nothing of another account depends on them
        for name in sorted(account.stacks, key=lambda n: (n.startswith(own), order.index(n))):
            stack = by_name[name]
            variables = list(plan_options.variables)
            if name.startswith(own):  # the account's own stack: its provider assumes a role in the new account
                role = settle.first_role if name == baseline_stack(account.name) else settle.role
                wait_until_assumable(sts, role_arn(ids[account.name], role), timeout=settle.wait_timeout,
                                     interval=settle.wait_interval, progress=progress)
                variables = [v for v in variables if not v.startswith("fleetform_role=")]
                if "fleetform_role" in json.loads(stack.json_path.read_text()).get("variable", {}):
                    variables.append(f"fleetform_role={role}")
            options = replace(plan_options, out_dir=plan_options.out_dir / account.name, variables=variables)
            run = plan_stacks(tf, [stack], options, progress)
            plan = run.plans[0]
            if plan.status == "error":
                raise FleetformError(f"plan of {name} failed; later stacks of {account.name} were not applied:\n"
                                     f"{plan.error}")
            plans = saved_plans(synth_dir, options.out_dir, [name])
            applied = apply_plans(tf, plans, lock, plan_options.allow_destroy, plan_options.backend_config, progress)
            results.extend({**r, "account": account.name} for r in applied)
            if not applied:
                results.append({"stack": name, "status": "no-changes", "account": account.name})
    return results
