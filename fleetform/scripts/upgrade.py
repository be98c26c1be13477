"""``cluster-upgrade`` (also ``fleetform upgrade``): the blue/green EKS upgrade runbook.

See docs/upgrade.md for a walk-through against the sandbox.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from fleetform import __version__
from fleetform.config import load_config
from fleetform.errors import UsageError
from fleetform.sandbox.server import runs_dir
from fleetform.scripts.common import ContractGroup, aws_options, config_option, emit_json, handle_errors, output_option
from fleetform.upgrade import checks as checks_mod
from fleetform.upgrade.argocd import argocd_preview
from fleetform.upgrade.aws import connect, is_sandbox_endpoint
from fleetform.upgrade.gates import GateResult, workspace_arn
from fleetform.upgrade.permissions import PolicyScope, policy
from fleetform.upgrade.runbook import Clock, Options, Runbook
from fleetform.upgrade.state import (
    DEFAULT_STATE_DIR,
    ROLLED_BACK,
    SHIFTED,
    LocalStore,
    RunState,
    S3Store,
    audit_trail,
)
from fleetform.upgrade.target import resolve, version_tuple
from fleetform.upgrade.weights import parse_schedule
from fleetform.upgrade.yamledit import add_slot

F = TypeVar("F", bound=Callable[..., Any])

# tests replace this to bake in no time
CLOCK_FACTORY: Callable[[], Clock] = Clock


def interactive() -> bool:
    """Can the operator answer a question? (tests replace this)"""
    return sys.stdin.isatty()

STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "unknown": "magenta", "skipped": "dim",
                "inconclusive": "yellow"}


def upgrade_options(func: F) -> F:
    """--account, --state-dir, --config, --profile/--region/--endpoint-url, --output."""
    func = output_option(func)
    func = aws_options(func)
    func = config_option(func)
    func = click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True, envvar="FLEETFORM_STATE_DIR",
                        type=click.Path(file_okay=False),
                        help="Local state records, locks and audit log (in S3 when upgrade.state_bucket is set). "
                        "Against the sandbox (a loopback --endpoint-url) the default is the sandbox's own: "
                        "<its --state-dir>/upgrades.")(func)
    func = click.option("--account", default=None,
                        help="Account (by name) that has CLUSTER; needed when several have one of that name.")(func)
    return func


class TextDisplay:
    """Progress for people: step, weights, countdown, gate results (rich, on stderr)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None
        self._label: str | None = None

    def _end_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress, self._label = None, None

    def note(self, text: str) -> None:
        self._end_progress()
        self.console.print(text)

    def step(self, number: int, total: int, percent: int, before: dict[str, int], after: dict[str, int]) -> None:
        self._end_progress()
        self.console.print(f"[bold]step {number}/{total}[/bold]: {percent}% -> weights {_weights(before)}  =>  "
                           f"[bold]{_weights(after)}[/bold]")

    def gates(self, results: list[GateResult]) -> None:
        self._end_progress()
        for r in results:
            self.console.print(f"  gate {r.name:<12} [{STATUS_STYLE.get(r.status, '')}]{r.status:<12}[/] {r.detail}")

    def countdown(self, label: str, remaining: float, total: float) -> None:
        if self._label != label:
            self._end_progress()
            self._progress = Progress(TextColumn("  {task.description}"), BarColumn(),
                                      TextColumn("{task.fields[left]}s left"), console=self.console, transient=False)
            self._task = self._progress.add_task(label, total=max(total, 0.001), left=int(total))
            self._progress.start()
            self._label = label
        assert self._progress is not None
        self._progress.update(self._task, completed=total - remaining, left=int(round(remaining)))
        if remaining <= 0:
            self._end_progress()

    def confirm(self, question: str) -> bool:
        self._end_progress()
        try:
            return click.confirm(question, default=False, err=True)
        except click.Abort:  # end of input or Ctrl-C at the question: a "no", so the run pauses with a reason
            return False

    def typed_confirm(self, expected: str) -> str:
        return click.prompt(f"type {expected} to confirm", err=True, default="", show_default=False)


class QuietDisplay(TextDisplay):
    """--output json: nothing but the final document on stdout; no prompts (needs --yes)."""

    def __init__(self) -> None:
        super().__init__(Console(stderr=True, quiet=True))

    def confirm(self, question: str) -> bool:
        raise UsageError("--output json cannot ask for confirmation: add --yes")

    def typed_confirm(self, expected: str) -> str:
        raise UsageError(f"--output json cannot ask for confirmation: add --confirm {expected}")


def _weights(weights: dict[str, int] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((weights or {}).items())) or "-"


def build(cluster: str, account: str | None, config_dir: str, profile: str | None, region: str | None,
          endpoint_url: str | None, state_dir: str, output: str, options: Options | None = None) -> Runbook:
    config = load_config(config_dir)
    target = resolve(config, cluster, account)
    if state_dir == DEFAULT_STATE_DIR and is_sandbox_endpoint(endpoint_url):
        state_dir = runs_dir(endpoint_url)  # the sandbox's runs live and die with the sandbox (in its --state-dir)
    aws = connect(profile, region or target.region, endpoint_url)
    bucket = target.cluster.upgrade.state_bucket
    store = S3Store(aws, bucket) if bucket else LocalStore(state_dir)
    display = QuietDisplay() if output == "json" else TextDisplay(Console(stderr=True))
    return Runbook(target, aws, store, audit_trail(store, f"{state_dir}/audit.jsonl"), display, CLOCK_FACTORY(),
                   options or Options())


@click.group(cls=ContractGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cluster-upgrade")
def cli() -> None:
    """Blue/green EKS upgrades as a guarded runbook.

    \b
    Phases, in order:
      plan CLUSTER --to 1.36      read-only preflight (exit 0 clean, 1 blocking, 2 usage)
      prepare CLUSTER --to 1.36   add the green slot to the account YAML (then: pull request)
      verify CLUSTER              green ACTIVE at the target, node groups and add-ons ready
      shift CLUSTER --steps 5,25,50,100 --bake 300
      rollback CLUSTER            all traffic back to the previous slot, at once
      status CLUSTER [--audit]    phase, weights, history; --audit: who moved what, when
      retire CLUSTER              after the soak: remove the old slot from the YAML
      resume CLUSTER              continue an interrupted shift
      permissions                 the least-privilege IAM policy for operators
    \b
    Try it offline:  fleetform sandbox up && export AWS_ENDPOINT_URL=http://127.0.0.1:5055
    """


def _check_table(title: str, results: list[checks_mod.CheckResult]) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("check", "status", "detail", "remediation"):
        table.add_column(column, overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(r.id, f"[{style}]{r.status}[/]", r.detail, r.remediation if r.status != "pass" else "")
    return table


def _check_report(rb: Runbook, kind: str, to: str, results: list[checks_mod.CheckResult], output: str,
                  strict: bool) -> int:
    failing = [r.id for r in results if r.status == "fail" or (strict and r.status == "unknown")]
    if output == "json":
        emit_json({"command": kind, "account": rb.target.account.name, "cluster": rb.target.cluster_key,
                   "from_slot": rb.target.live_slot, "to_slot": rb.target.new_slot, "to_version": to,
                   "ok": not failing, "blocking": failing, "checks": [r.as_dict() for r in results]})
    else:
        console = Console()
        console.print(_check_table(f"{kind} {rb.target.key}: {rb.target.live_slot} -> {rb.target.new_slot} "
                                   f"at {to}", results))
        unknown = [r.id for r in results if r.status == "unknown"]
        if failing:
            console.print(f"[red]{len(failing)} blocking: {', '.join(failing)}[/red]")
        else:
            console.print("[green]no blocking findings[/green]")
        if unknown and not strict:
            console.print(f"[magenta]unknown (not verified, check by hand): {', '.join(unknown)}[/magenta]")
    return 1 if failing else 0


def _slot_note(rb: Runbook) -> None:
    if rb.aws.sandbox and not isinstance(rb.display, QuietDisplay):
        rb.display.note(f"[dim]sandbox {rb.aws.endpoint_url}: account {rb.target.account.name} is moto's "
                        "123456789012[/dim]")


@cli.command("plan")
@click.argument("cluster")
@click.option("--to", "to_version", required=True, help="Target Kubernetes version, e.g. 1.36.")
@click.option("--strict", is_flag=True, help="Treat unknown checks as blocking.")
@upgrade_options
@handle_errors
def plan_command(cluster: str, to_version: str, strict: bool, output: str, **kw: Any) -> None:
    """Read-only preflight: can CLUSTER move to a green cluster at VERSION?

    Checks (pass / warn / fail / unknown, each with a remediation): caller account, live cluster
    ACTIVE, target version in standard support (EKS API), jump <= 2 minor, add-on versions, upgrade
    insights, node groups and AMI types, free IPs, EC2 quota, weighted records, guard alarms, lock.
    Exit 0 clean, 1 blocking findings, 2 bad usage. An API the endpoint lacks makes a check unknown.

    \b
    Example:
      cluster-upgrade plan main --account prod --to 1.36 --profile prod-operator
      cluster-upgrade plan main --account prod --to 1.36 --endpoint-url http://127.0.0.1:5055 --output json
    """
    _version(to_version)
    rb = build(cluster, output=output, **kw)
    sys.exit(_check_report(rb, "plan", to_version, rb.plan(to_version), output, strict))


@cli.command("prepare")
@click.argument("cluster")
@click.option("--to", "to_version", required=True, help="Target Kubernetes version for the new slot.")
@upgrade_options
@handle_errors
def prepare_command(cluster: str, to_version: str, output: str, config_dir: str, account: str | None,
                    **_: Any) -> None:
    """Add the new slot at VERSION to the account's YAML (comments and layout kept); print the diff.

    Nothing in AWS changes: the pull request's plan shows the new cluster and the merge applies it.

    \b
    Example:
      cluster-upgrade prepare main --account stg --to 1.36
    """
    _version(to_version)
    config = load_config(config_dir)
    target = resolve(config, cluster, account)
    live_version = target.version_of(target.live_slot) or ""
    jump = version_tuple(to_version)[1] - version_tuple(live_version)[1]
    if version_tuple(to_version)[0] != version_tuple(live_version)[0] or not 1 <= jump <= 2:
        raise UsageError(f"--to {to_version}: from {target.live_slot} at {live_version} a blue/green jump moves "
                         "1 or 2 minor versions forwards")
    existing = target.version_of(target.new_slot)
    if existing is not None and existing != to_version:
        raise UsageError(f"{target.account.file}: clusters.{cluster}.slots.{target.new_slot} is already at "
                         f"{existing}; finish or retire that upgrade first")
    diff = "" if existing else add_slot(target.file, cluster, target.new_slot, to_version, target.live_slot)
    next_step = (f"commit {target.account.file} in a pull request; the pipeline plans and, on merge, applies "
                 f"{target.eks_name(target.new_slot)}; then: cluster-upgrade verify {cluster} "
                 f"--account {target.account.name}")
    argocd = argocd_preview(target, to_version)
    if output == "json":
        emit_json({"file": target.account.file, "slot": target.new_slot, "version": to_version,
                   "changed": bool(diff), "diff": diff, "next": next_step, "argocd": argocd})
        return
    if diff:
        click.echo(diff, nl=False)
    else:
        click.echo(f"{target.account.file}: {target.new_slot} is already at {to_version} (nothing to change)")
    if argocd is not None:
        click.echo(f"Argo CD ({argocd['ops_cluster']}): once applied, cluster {argocd['cluster_secret']} appears, "
                   f"from {argocd['registration']}; ApplicationSets selecting {argocd['selector']} deploy to it; "
                   f"verify waits for their {argocd['metric']} to be Synced and Healthy")
    click.secho(f"next: {next_step}", fg="cyan")


@cli.command("verify")
@click.argument("cluster")
@click.option("--smoke-base-url", default=None,
              help="Base URL for the smoke paths (default https://<new slot>.<hostname>).")
@click.option("--strict", is_flag=True, help="Treat unknown checks as failures.")
@upgrade_options
@handle_errors
def verify_command(cluster: str, smoke_base_url: str | None, strict: bool, output: str, **kw: Any) -> None:
    """Is the new slot ready for traffic? ACTIVE at the target version, node groups ACTIVE at their
    desired size, add-ons ACTIVE, HTTP smoke paths (upgrade.smoke_paths) answer on its own hostname.

    \b
    Example:
      cluster-upgrade verify main --account prod
    """
    rb = build(cluster, output=output, options=Options(smoke_base_url=smoke_base_url), **kw)
    sys.exit(_check_report(rb, "verify", rb.new_version(), rb.verify(), output, strict))


def _shift_options(func: F) -> F:
    func = click.option("--yes", "-y", is_flag=True, help="Do not ask before each step.")(func)
    func = click.option("--force", is_flag=True,
                        help="Accept weights that were changed outside the runbook.")(func)
    func = click.option("--ttl-wait/--no-ttl-wait", default=None,
                        help="Wait the record TTL after INSYNC (default: on; off in the sandbox).")(func)
    return func


def _options(yes: bool, force: bool, ttl_wait: bool | None, endpoint_url: str | None, output: str) -> Options:
    if not yes:
        if output == "json":
            raise UsageError("--output json cannot ask for confirmation: add --yes")
        if not interactive():
            raise UsageError("no terminal to ask before each step: add --yes (after reading `cluster-upgrade plan`)")
    if ttl_wait is None:
        ttl_wait = not is_sandbox_endpoint(endpoint_url)
    return Options(yes=yes, force=force, ttl_wait=ttl_wait)


def _run_report(rb: Runbook, state: RunState, output: str, done: str = SHIFTED) -> None:
    """The outcome, read back: the record and Route 53 as they are now, in the shape of `status`. Exit 0 only
    when the record says ``done`` and Route 53 holds the recorded weights at this moment."""
    data = rb.status()
    ok = data["phase"] == done and data["actual_weights"] == data["recorded_weights"]
    if output == "json":
        emit_json({"ok": ok, **data})
    else:
        style = "green" if ok else "red"
        actual = _weights(data["actual_weights"]) if data["actual_weights"] is not None else data["weights_error"]
        Console().print(f"[{style}]{rb.target.key}: {data['phase']}[/]  weights {actual}"
                        + (f"  ({data['reason']})" if data["reason"] else "")
                        + ("" if data["hand_changed"] is False else "  [red](differs from the record)[/red]"))
    sys.exit(0 if ok else 1)


@cli.command("shift")
@click.argument("cluster")
@click.option("--steps", default="5,25,50,100", show_default=True,
              help="Percentages of traffic for the new slot, increasing, ending at 100.")
@click.option("--bake", default=300, show_default=True, type=click.IntRange(min=0),
              help="Seconds to watch each step before the next.")
@_shift_options
@upgrade_options
@handle_errors
def shift_command(cluster: str, steps: str, bake: int, yes: bool, force: bool, ttl_wait: bool | None, output: str,
                  **kw: Any) -> None:
    """Move traffic to the new slot in weighted steps with health gates.

    Before each step: guard alarms OK and the new slot's 5xx rate and p99 latency not worse than
    the old one's by the configured margin (no data pauses the run; it never passes). Then both
    weights in one Route 53 change, wait for INSYNC and the TTL, bake. A failed gate, or an alarm
    during a bake, rolls back automatically. Exit 0 when the new slot holds 100%, 1 otherwise.

    \b
    Example:
      cluster-upgrade shift main --account prod --steps 5,25,50,100 --bake 300
      cluster-upgrade shift main --account prod --steps 50,100 --bake 2 --yes --endpoint-url http://127.0.0.1:5055
    """
    schedule = parse_schedule(steps)
    rb = build(cluster, output=output, options=_options(yes, force, ttl_wait, kw.get("endpoint_url"), output), **kw)
    _slot_note(rb)
    _run_report(rb, rb.shift(schedule, bake), output)


@cli.command("resume")
@click.argument("cluster")
@_shift_options
@upgrade_options
@handle_errors
def resume_command(cluster: str, yes: bool, force: bool, ttl_wait: bool | None, output: str, **kw: Any) -> None:
    """Continue an interrupted or paused shift from its recorded step (no change is repeated or skipped).

    \b
    Example:
      cluster-upgrade resume main --account prod
    """
    rb = build(cluster, output=output, options=_options(yes, force, ttl_wait, kw.get("endpoint_url"), output), **kw)
    _slot_note(rb)
    _run_report(rb, rb.resume(), output)


@cli.command("rollback")
@click.argument("cluster")
@click.option("--reason", default="operator rollback", show_default=True, help="Recorded in the audit log.")
@upgrade_options
@handle_errors
def rollback_command(cluster: str, reason: str, output: str, **kw: Any) -> None:
    """All traffic back to the previous live slot in one change, at once; no gate can block it.

    Takes over the lock: a shift still running elsewhere stops at its next step.

    \b
    Example:
      cluster-upgrade rollback main --account prod --reason "p99 regression on /photos"
    """
    rb = build(cluster, output=output, **kw)
    _run_report(rb, rb.rollback(reason), output, done=ROLLED_BACK)


@cli.command("status")
@click.argument("cluster")
@click.option("--audit", "show_audit", is_flag=True,
              help="Also show the audit trail: every operator's entries, merged in time order.")
@upgrade_options
@handle_errors
def status_command(cluster: str, show_audit: bool, output: str, **kw: Any) -> None:
    """Phase, recorded and actual weights, lock holder and history of CLUSTER's upgrade.

    With --audit, also the audit trail (who moved which weights when, with change ids) from where
    the state is kept: S3 when upgrade.state_bucket is set (entries of every operator), else the
    local audit.jsonl.

    \b
    Example:
      cluster-upgrade status main --account prod --output json | jq .actual_weights
      cluster-upgrade status main --account prod --audit
      cluster-upgrade status main --account prod --audit --output json | jq '.audit[] | {at, action, after}'
    """
    rb = build(cluster, output=output, **kw)
    data = rb.status()
    if show_audit:
        data["audit"] = rb.audit_entries()
    if output == "json":
        emit_json(data)
        sys.exit(1 if data["weights_error"] else 0)
    console = Console()
    console.print(f"[bold]{rb.target.key}[/bold]: {data['phase']}  ({data['from_slot']} -> {data['to_slot']} "
                  f"at {data['target_version']})")
    if data["schedule"]:
        total = len(data["schedule"])
        if data["step_index"] >= total:  # every step done; step_status is reset for a next step
            progress = f"all {total} steps done"
        else:
            progress = f"step {data['step_index'] + 1}/{total} ({data['step_status']})"
        console.print(f"  schedule {data['schedule']}, {progress}")
    actual = _weights(data["actual_weights"]) if data["actual_weights"] is not None else data["weights_error"]
    console.print(f"  recorded weights {_weights(data['recorded_weights'])}; actual {actual}")
    if data["hand_changed"]:
        console.print("  [red]actual weights differ from the record: changed outside the runbook[/red]")
    if data["lock"]:
        console.print(f"  lock: {data['lock']['owner']} until {data['lock']['expires_at']}")
    if data["reason"]:
        console.print(f"  reason: {data['reason']}")
    for event in data["history"][-15:]:
        extra = "  ".join(f"{k}={_weights(v) if isinstance(v, dict) else v}" for k, v in event.items()
                          if k not in ("at", "event", "results"))
        console.print(f"  {event['at']}  {event['event']:<10} {extra}", highlight=False)
    if show_audit:
        _print_audit(console, rb, data["audit"])
    sys.exit(1 if data["weights_error"] else 0)  # Route 53 unreadable: the weights are unknown


def _print_audit(console: Console, rb: Runbook, entries: list[dict[str, Any]]) -> None:
    """One line per entry (not wrapped, so that grep finds it): when, action, weights, change ids, who, why."""
    console.print(f"  audit trail ({rb.audit.where}): {len(entries)} entries", highlight=False, soft_wrap=True)
    for e in entries:
        weights = _weights(e.get("before"))
        if e.get("after") is not None and e.get("after") != e.get("before"):
            weights += f" -> {_weights(e['after'])}"
        parts = [e.get("at", "?"), f"{e.get('action', '?'):<18}", weights]
        if e.get("change_ids"):
            parts.append("change " + ", ".join(e["change_ids"]))
        parts.append(f"by {(e.get('caller') or {}).get('arn', '?')}")
        if e.get("reason"):
            parts.append(f"({e['reason']})")
        console.print("  " + "  ".join(parts), highlight=False, soft_wrap=True)


@cli.command("retire")
@click.argument("cluster")
@click.option("--confirm", "confirmation", default=None,
              help="The old slot's cluster name, typed (for scripts); asked for otherwise.")
@upgrade_options
@handle_errors
def retire_command(cluster: str, confirmation: str | None, output: str, **kw: Any) -> None:
    """Retire the old slot in two pull requests, once the new slot has held 100% for
    upgrade.soak_minutes and the old one serves no more than upgrade.retire_max_requests:
    the first run marks it `retiring: true` (the pipeline turns its EKS deletion protection off);
    after that is applied, the second run removes it (the pipeline destroys its stack, behind the
    allow-destroy label). Typed confirmation each time.

    \b
    Example:
      cluster-upgrade retire main --account prod            # asks you to type prod-main-blue
      cluster-upgrade retire main --account prod --confirm prod-main-blue --output json
    """
    rb = build(cluster, output=output, **kw)
    result = rb.retire(confirmation)
    if result["step"] == "mark":
        next_step = (f"commit {result['file']} in a pull request; once the pipeline has applied it (deletion "
                     f"protection of {result['cluster']} off), run `cluster-upgrade retire {cluster}` again")
    else:
        next_step = (f"commit {result['file']} in a pull request with the allow-destroy label; on merge the "
                     f"pipeline destroys {result['cluster']}")
    if output == "json":
        emit_json({**result, "next": next_step})
        return
    click.echo(result["diff"], nl=False)
    click.secho(f"next: {next_step}", fg="cyan")


@cli.command("permissions")
@click.option("--account", default=None, help="Scope the policy to this account's clusters, records and alarms.")
@config_option
@handle_errors
def permissions_command(account: str | None, config_dir: str) -> None:
    """Print the least-privilege IAM policy an operator role needs for every phase (JSON).

    Every check and step declares the actions it calls; a test keeps this complete.

    \b
    Example:
      cluster-upgrade permissions --account prod > operator-policy.json
    """
    scope = None
    if account is not None:
        config = load_config(config_dir)
        try:
            acct = config.account(account)
        except KeyError:
            raise UsageError(f"--account: no account named {account!r}") from None
        clusters = acct.spec.clusters
        scope = PolicyScope(
            account_id=acct.id, region=config.region_of(acct),
            cluster_prefixes=[f"{acct.name}-{c}" for c in clusters],
            hostnames=[c.hostname for c in clusters.values() if c.hostname],
            alarms=[a for c in clusters.values() for a in c.upgrade.alarms],
            state_bucket=next((c.upgrade.state_bucket for c in clusters.values() if c.upgrade.state_bucket), None),
            workspaces=[workspace_arn(p, config.region_of(acct), acct.id) for c in clusters.values()
                        if (p := c.upgrade.prometheus)],
            query_roles=[p.role_arn for c in clusters.values() if (p := c.upgrade.prometheus) and p.role_arn])
    emit_json(policy(scope))


def _version(text: str) -> None:
    try:
        version_tuple(text)
    except ValueError:
        raise UsageError(f"--to {text!r}: a Kubernetes version like 1.36") from None
    if not text.count(".") == 1:
        raise UsageError(f"--to {text!r}: a Kubernetes minor version like 1.36")


if __name__ == "__main__":
    cli()
