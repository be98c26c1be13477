"""``fleetform preflight``: read-only checks of every account before the first apply
(fleetform/preflight.py has the checks, docs/organization.md#first-apply the why)."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from fleetform.aws_session import session
from fleetform.config import load_config
from fleetform.preflight import ACTION, CHECKS, OK, UNKNOWN, Preflight, PreflightResult
from fleetform.scripts.common import aws_options, config_option, emit_json, handle_errors, output_option

STATUS_STYLE = {OK: "green", ACTION: "bold red", UNKNOWN: "yellow"}


@click.command("preflight")
@config_option
@aws_options
@output_option
@handle_errors
def preflight_command(config_dir: str, profile: str | None, region: str | None, endpoint_url: str | None,
                      output: str) -> None:
    """Check every account, read-only, for what would make the first apply fail.

    Reaches each account as the first apply does (the management account with your credentials,
    the others through OrganizationAccountAccessRole) and checks: the AWS Config service-linked
    role against organization.aws_config.existing_service_linked_role, configuration recorders
    other than 'default' in the allowed regions, and membership of the organization in
    organization.id. Prints the YAML to paste where the configuration is wrong.

    Exit status: 0 nothing needs action, 1 something does, 2 bad usage or configuration.
    A check that cannot be made (access denied) is 'unknown' and does not change the status.
    --region is where STS, IAM and Organizations are called (default: the home region).

    \b
    Example:
      fleetform preflight --profile mgmt-admin
      fleetform preflight --profile mgmt-admin --output json | jq '.fixes[].yaml' -r
    """
    config = load_config(config_dir)
    checker = Preflight(config, session(profile), region=region, endpoint_url=endpoint_url)
    if output == "json":
        result = checker.run()
        emit_json(result.as_dict())
    else:
        progress = Progress(TextColumn("  checking accounts"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
        with progress:
            task = progress.add_task("", total=len(config.accounts))
            result = checker.run(lambda account: progress.update(task, advance=1, description=account.name))
        show(result)
    sys.exit(1 if result.action_needed else 0)


def show(result: PreflightResult) -> None:
    console = Console()
    table = Table(title="preflight: what the first apply would run into")
    # names whole (they are what the details below refer to); ids may fold on a narrow terminal
    table.add_column("account", no_wrap=True, min_width=max((len(r.name) for r in result.accounts), default=7))
    table.add_column("id", overflow="fold")
    for check in CHECKS:
        table.add_column(check)
    for report in result.accounts:
        cells = []
        for check in CHECKS:
            finding = report.finding(check)
            state = finding.status if finding else "-"
            cells.append(f"[{STATUS_STYLE.get(state, '')}]{state}[/]")
        table.add_row(report.name, report.account_id, *cells)
    console.print(table)
    for report in result.accounts:
        for finding in report.findings:
            if finding.status != OK:
                console.print(f"[{STATUS_STYLE[finding.status]}]{finding.status}[/] {report.name} {finding.check}: "
                              f"{finding.detail}", highlight=False)
    for fix in result.fixes:
        console.print(f"\nin {fix.file}, set {fix.path}:", highlight=False)
        console.print(fix.yaml.rstrip(), markup=False, highlight=False)
    counts = result.counts
    summary = ", ".join(f"{counts[s]} {s}" for s in (ACTION, UNKNOWN) if counts[s]) or "all checks ok"
    console.print(f"\n{summary}", highlight=False)
    if counts[UNKNOWN]:
        console.print("unknown: preflight could not tell; check those by hand (docs/organization.md#first-apply)",
                      highlight=False)
