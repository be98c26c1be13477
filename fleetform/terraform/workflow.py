"""Plan stacks into saved plan files with a report, and apply saved plans safely.

Layout of a plan directory (``--out-dir``)::

    <out>/report.json            every stack's summary, the exit status, the headline
    <out>/summary.md             the Markdown summary (what the pull request comment shows)
    <out>/<stack>/tfplan         terraform's saved plan
    <out>/<stack>/plan.json      ``terraform show -json tfplan``
    <out>/<stack>/meta.json      the sha256 of the stack's cdk.tf.json when planned, status, ...
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetform.errors import FleetformError, UsageError
from fleetform.manifest import StackInfo, read_manifest
from fleetform.terraform.lock import StackLock, holding
from fleetform.terraform.parallel import Event, run_along_graph
from fleetform.terraform.removed import protection_problems, removed_stacks
from fleetform.terraform.runner import Terraform, TerraformError
from fleetform.terraform.summary import (
    DEFAULT_PROTECTED_TYPES,
    StackPlan,
    failed_plan,
    headline,
    render_markdown,
    summarize_plan,
)

PLAN_FILE = "tfplan"
Progress = Callable[[str], None]


@dataclass
class PlanOptions:
    out_dir: Path
    backend_config: Sequence[str] = ()
    variables: Sequence[str] = ()
    protected_types: Sequence[str] = DEFAULT_PROTECTED_TYPES
    allow_destroy: bool = False
    title: str = "fleetform plan"
    lock: bool = True  # False: terraform plan -lock=false (read-only roles: pull request plans, drift)
    parallelism: int = 1  # stacks planned at once, along the dependency graph


@dataclass
class PlanRun:
    plans: list[StackPlan]
    exit_code: int  # 0 no changes, 2 changes, 1 error or a protected destroy not allowed
    markdown: str
    report: dict[str, Any] = field(default_factory=dict)

    def write(self, out: Path) -> None:
        """``report.json`` and ``summary.md`` (rewritten whenever the run's verdict grows)."""
        (out / "report.json").write_text(json.dumps(self.report, indent=2) + "\n")
        (out / "summary.md").write_text(self.markdown)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def select_stacks(stacks: Sequence[StackInfo], names: Iterable[str]) -> list[StackInfo]:
    """The named stacks (shell patterns allowed: ``'prod-*'``) in dependency order; none = all."""
    wanted = list(names)
    if not wanted:
        return list(stacks)
    known = [s.name for s in stacks]
    unknown = [n for n in wanted if not fnmatch.filter(known, n)]
    if unknown:
        raise UsageError(f"unknown stack(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [s for s in stacks if any(fnmatch.fnmatchcase(s.name, n) for n in wanted)]


def declared_variables(stack: StackInfo) -> set[str]:
    return set(json.loads(stack.json_path.read_text()).get("variable", {}))


def backend_type(stack: StackInfo) -> str:
    backend = json.loads(stack.json_path.read_text()).get("terraform", {}).get("backend", {})
    return next(iter(backend), "local")


def remote_state_only(stacks: Sequence[StackInfo]) -> tuple[list[StackInfo], list[str]]:
    """Stacks whose state a build machine can read, and the names of those with local state
    (bootstrap: its state lives on the operator's machine, so a build would plan it from scratch)."""
    kept = [s for s in stacks if backend_type(s) != "local"]
    return kept, [s.name for s in stacks if backend_type(s) == "local"]


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; anything else is a usage error."""
    try:
        index, total = (int(part) for part in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard {spec!r}: expected INDEX/TOTAL such as 1/4") from None
    if not 1 <= index <= total:
        raise UsageError(f"--shard {spec!r}: INDEX must be between 1 and TOTAL")
    return index, total


def shard(stacks: Sequence[StackInfo], spec: str | None) -> list[StackInfo]:
    """``--shard 2/4``: every fourth stack starting at the second (CodeBuild batch builds)."""
    if not spec:
        return list(stacks)
    index, total = parse_shard(spec)
    return [s for i, s in enumerate(stacks) if i % total == index - 1]


def exit_code(plans: Sequence[StackPlan], allow_destroy: bool) -> int:
    if any(p.status == "error" for p in plans):
        return 1
    if not allow_destroy and any(p.protected_destroys for p in plans):
        return 1
    return 2 if any(p.has_changes for p in plans) else 0


def run_graph(stacks: Sequence[StackInfo]) -> dict[str, tuple[str, ...]]:
    """What each stack waits for: its dependencies; the destroy of a removed stack waits for every
    other stack of the run (and does not run when one of them failed)."""
    kept = tuple(s.name for s in stacks if not s.destroy)
    return {s.name: kept if s.destroy else s.dependencies for s in stacks}


def plan_stacks(tf: Terraform, stacks: Sequence[StackInfo], options: PlanOptions,
                progress: Progress | None = None) -> PlanRun:
    """init, ``plan -out``, ``show -json`` for each stack in order; write the report and summary."""
    out = options.out_dir
    declared = {s.name: declared_variables(s) for s in stacks}
    unknown = [v for v in options.variables if stacks and not any(v.split("=", 1)[0] in d for d in declared.values())]
    if unknown:
        raise UsageError(f"--var {', '.join(unknown)}: no stack declares this variable")
    out.mkdir(parents=True, exist_ok=True)
    by_name = {s.name: s for s in stacks}

    report_event = _reporter(progress, "planning", "not planned", _status_line)

    outcomes = run_along_graph(run_graph(stacks),
                               lambda name: _plan_one(tf, by_name[name], options),
                               parallelism=options.parallelism, failed=lambda plan: plan.status == "error",
                               on_event=report_event)
    unexpected = next((o.error for o in outcomes.values() if o.error is not None), None)
    if unexpected is not None:
        raise unexpected
    plans = [outcomes[s.name].result or failed_plan(s.name, f"not planned: the plan of "
                                                            f"{outcomes[s.name].skipped_because} failed")
             for s in stacks]
    code = exit_code(plans, options.allow_destroy)
    markdown = render_markdown(plans, options.title, options.allow_destroy)
    report = {
        "exit_code": code,
        "headline": headline(plans),
        "allow_destroy": options.allow_destroy,
        "stacks": [p.as_dict() for p in plans],
    }
    run = PlanRun(plans, code, markdown, report)
    run.write(out)
    return run


def _reporter(progress: Progress | None, doing: str, not_done: str,
              finished: Callable[[Any], str]) -> Callable[[Event], None] | None:
    """One progress line per stack when it starts, finishes (``finished(result)``) or is skipped."""
    if progress is None:
        return None

    def report(event: Event) -> None:
        outcome = event.outcome
        if event.kind == "started":
            progress(f"{_counter(event)} {event.name}: {doing}{_also_running(event)}")
        elif event.kind == "skipped" and outcome is not None:
            progress(f"{_counter(event)} {event.name}: {not_done}, {outcome.skipped_because} failed")
        elif outcome is not None and outcome.error is None:
            progress(f"{_counter(event)} {event.name}: {finished(outcome.result)}")

    return report


def _counter(event: Event) -> str:
    return f"[{event.done}/{event.total}]"


def _also_running(event: Event) -> str:
    others = [n for n in event.running if n != event.name]
    return f" (also running: {', '.join(others)}; {event.waiting} waiting)" if others else ""


def _status_line(plan: StackPlan) -> str:
    if plan.status == "error":
        return "ERROR"
    if plan.status == "no-changes":
        return "no changes"
    text = f"{plan.adds} to add, {plan.updates} to change, {plan.destroys} to destroy"
    return text + (f", {len(plan.protected_destroys)} PROTECTED destroyed" if plan.protected_destroys else "")


def _plan_one(tf: Terraform, stack: StackInfo, options: PlanOptions) -> StackPlan:
    directory = options.out_dir / stack.name
    directory.mkdir(parents=True, exist_ok=True)
    plan_file = (directory / PLAN_FILE).resolve()
    for stale in (plan_file, directory / "plan.json"):
        stale.unlink(missing_ok=True)
    digest = file_hash(stack.json_path)
    try:
        if stack.destroy and (problems := protection_problems(stack)):
            raise TerraformError(f"{stack.name} (removed from the configuration) cannot be destroyed yet: "
                                 + "; ".join(problems))
        tf.init(stack.directory, options.backend_config)
        names = declared_variables(stack)  # a variable is passed to the stacks that declare it
        tf.plan(stack.directory, plan_file, [v for v in options.variables if v.split("=", 1)[0] in names],
                lock=options.lock, destroy=stack.destroy)
        shown = tf.show_json(stack.directory, plan_file)
        (directory / "plan.json").write_text(json.dumps(shown))
        plan = summarize_plan(stack.name, shown, options.protected_types)
    except TerraformError as exc:
        plan = failed_plan(stack.name, str(exc))
    meta = {
        "stack": stack.name,
        "stack_json_sha256": digest,
        "stack_json": str(stack.json_path.resolve()),
        "working_directory": str(stack.directory.resolve()),
        "destroy": stack.destroy,
        "plan_file": str(plan_file) if plan.status != "error" else None,
        "status": plan.status,
        "protected_destroys": [c.address for c in plan.protected_destroys],
        "allow_destroy": options.allow_destroy,
        "planned_at": time.time(),
        "applied_at": None,
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return plan


# ---------------------------------------------------------------------------- apply


@dataclass
class SavedPlan:
    stack: StackInfo
    meta: dict[str, Any]
    meta_path: Path


def saved_plans(synth_dir: Path, out_dir: Path, names: Sequence[str]) -> list[SavedPlan]:
    """The saved plans to apply, in dependency order; refuses stale, failed or missing plans."""
    stacks = read_manifest(synth_dir) + removed_stacks(synth_dir)  # destroys of removed stacks come last
    by_name = {s.name: s for s in stacks}
    metas: dict[str, tuple[dict[str, Any], Path]] = {}
    for meta_path in sorted(out_dir.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        metas[meta["stack"]] = (meta, meta_path)
    if not metas:
        if not names and _planned_nothing(out_dir):
            return []  # the plan had no stack to plan (a merge that changes no stack): nothing to apply
        raise UsageError(f"no saved plans in {out_dir}: run `fleetform plan --out-dir {out_dir}` first")
    for name in names:
        if not fnmatch.filter(list(metas), name):
            raise UsageError(f"no saved plan for {name} in {out_dir} (planned: {', '.join(sorted(metas))})")
    chosen = [n for n in metas if not names or any(fnmatch.fnmatchcase(n, p) for p in names)]
    problems = []
    result = []
    for name in chosen:
        meta, meta_path = metas[name]
        stack = by_name.get(name)
        if stack is None:
            problems.append(f"{name}: planned, but no longer in {synth_dir}/manifest.json")
            continue
        if meta["status"] == "error":
            problems.append(f"{name}: its plan failed; fix it and plan again")
            continue
        if meta["status"] == "not-reviewed":
            problems.append(f"{name}: its plan differs from the plan reviewed on the pull request")
            continue
        if file_hash(stack.json_path) != meta["stack_json_sha256"]:
            problems.append(f"{name}: {stack.json_path} changed since it was planned; plan again")
            continue
        if meta["status"] == "changes":
            result.append(SavedPlan(stack, meta, meta_path))
    if problems:
        raise FleetformError("refusing to apply:\n  " + "\n  ".join(problems))
    order = {s.name: i for i, s in enumerate(stacks)}
    return sorted(result, key=lambda p: order[p.stack.name])


def _planned_nothing(out_dir: Path) -> bool:
    report = out_dir / "report.json"
    try:
        return report.is_file() and json.loads(report.read_text()).get("stacks") == []
    except ValueError:
        return False


def apply_plans(tf: Terraform, plans: Sequence[SavedPlan], lock: StackLock, allow_destroy: bool = False,
                backend_config: Sequence[str] = (), progress: Progress | None = None,
                parallelism: int = 1) -> list[dict[str, Any]]:
    """Apply each saved plan along the dependency graph (``parallelism`` at a time) while holding every
    stack's pipeline lock. A failed apply stops the stacks that depend on it; the others go on, and
    the failure is raised once every stack that could run has run.

    A plan that destroys protected resources is applied only if it was planned with
    --allow-destroy (the pull request's label) or ``allow_destroy`` is given here.
    """
    blocked = [f"{p.stack.name}: {', '.join(p.meta['protected_destroys'])}" for p in plans
               if p.meta["protected_destroys"] and not (allow_destroy or p.meta.get("allow_destroy"))]
    if blocked:
        raise FleetformError("refusing to apply plans that destroy protected resources (pass --allow-destroy):\n  "
                             + "\n  ".join(blocked))
    applied = [p.stack.name for p in plans if p.meta.get("applied_at")]
    if applied:
        raise FleetformError(f"{', '.join(applied)}: this plan was already applied; plan again")
    by_name = {p.stack.name: p for p in plans}

    def apply_one(name: str) -> dict[str, Any]:
        plan = by_name[name]
        if not (plan.stack.directory / ".terraform").exists():
            tf.init(plan.stack.directory, backend_config)
        started = time.time()
        try:
            tf.apply(plan.stack.directory, plan.meta["plan_file"])
        except TerraformError as exc:
            return {"stack": name, "status": "error", "error": str(exc)}
        plan.meta["applied_at"] = time.time()
        plan.meta_path.write_text(json.dumps(plan.meta, indent=2) + "\n")
        return {"stack": name, "status": "applied", "seconds": round(time.time() - started, 2)}

    report_event = _reporter(progress, "applying", "not applied", lambda result: result["status"])

    with holding(lock, [p.stack.name for p in plans]):
        outcomes = run_along_graph(run_graph([p.stack for p in plans]), apply_one,
                                   parallelism=parallelism, failed=lambda r: r["status"] == "error",
                                   on_event=report_event)
    unexpected = next((o.error for o in outcomes.values() if o.error is not None), None)
    if unexpected is not None:
        raise unexpected
    results = [outcomes[p.stack.name].result or {"stack": p.stack.name, "status": "not-applied",
                                                 "because": f"{outcomes[p.stack.name].skipped_because} failed"}
               for p in plans]
    failed = [r for r in results if r["status"] == "error"]
    if failed:
        skipped = [r["stack"] for r in results if r["status"] == "not-applied"]
        raise FleetformError("apply of " + ", ".join(r["stack"] for r in failed) + " failed; "
                             + (f"the stacks that depend on it were not applied ({', '.join(skipped)})"
                                if skipped else "no other stack depends on it")
                             + ":\n" + "\n".join(r["error"] for r in failed))
    return results
