"""``fleetform bastion connect|list``: reach an account's bastion through Session Manager."""

from __future__ import annotations

import shlex

import click
from rich.console import Console
from rich.table import Table

from fleetform.bastion_connect import (
    Target,
    aws_session,
    check_account,
    list_bastions,
    missing_tools,
    missing_tools_message,
    pick_running,
    resolve_target,
    run_session,
    sandbox_session_gap,
    session_command,
)
from fleetform.config import load_config
from fleetform.errors import FleetformError
from fleetform.naming import SESSION_DOCUMENT
from fleetform.scripts.common import aws_options, config_option, emit_json, handle_errors, output_option


@click.group("bastion")
def bastion_group() -> None:
    """Work on the clusters from an account's bastion (recorded Session Manager sessions).

    \b
    Example:
      fleetform bastion connect prod --profile prod-sre
      fleetform bastion list stg --output json
    """


def _target(config_dir: str, env: str, profile: str | None, region: str | None,
            endpoint_url: str | None) -> Target:
    return resolve_target(load_config(config_dir), env, profile, region, endpoint_url)


@bastion_group.command("connect")
@click.argument("env")
@config_option
@aws_options
@click.option("--dry-run", is_flag=True, help="Find the bastion and print the session command; start nothing.")
@output_option
@click.pass_context
@handle_errors
def connect_command(ctx: click.Context, env: str, config_dir: str, profile: str | None, region: str | None,
                    endpoint_url: str | None, dry_run: bool, output: str) -> None:
    """Start a recorded shell session on the bastion of account ENV.

    Finds the one running instance tagged as the bastion (after checking that the credentials
    belong to ENV's account) and runs `aws ssm start-session` with the fleetform session
    document, which records the session to S3 and CloudWatch Logs. Needs the AWS CLI v2 and
    the session-manager-plugin; without them it prints how to install them and the exact
    command, and exits 1. Against the sandbox it finds the bastion, then says that moto has
    no Session Manager and prints the command, exit 1 (--dry-run: exit 0). With --output json
    the target and command are printed as JSON first (alone with --dry-run). The exit status
    is the session's.

    \b
    Example:
      fleetform bastion connect prod --profile prod-sre
      fleetform bastion connect stg --dry-run --output json
      fleetform bastion connect prod --profile sandbox-prod --endpoint-url http://127.0.0.1:5055 --dry-run
    """
    target = _target(config_dir, env, profile, region, endpoint_url)
    session = aws_session(target)
    check_account(session, target)
    instance = pick_running(list_bastions(session, target), target)
    command = session_command(instance.instance_id, target)
    missing = missing_tools()
    gap = None if dry_run else sandbox_session_gap(target)
    error = (f"{gap}:\n  {shlex.join(command)}" if gap
             else missing_tools_message(missing, command) if missing and not dry_run else None)
    if output == "json":  # one document on stdout: the target, and the error when the session cannot start
        emit_json({"account": target.account, "account_id": target.account_id, "region": target.region,
                   "instance": instance.as_dict(), "document": SESSION_DOCUMENT, "command": command,
                   "dry_run": dry_run, "missing_tools": missing, **({"error": error} if error else {})})
    elif dry_run:
        click.echo(shlex.join(command))
    if dry_run:
        return
    if error:
        click.secho(f"error: {error}", fg="red", err=True)
        ctx.exit(FleetformError.exit_code)
    click.secho(f"connecting to {instance.instance_id} in {target.account} ({target.region}); "
                "this session is recorded", fg="cyan", err=True)
    ctx.exit(run_session(command))


@bastion_group.command("list")
@click.argument("env")
@config_option
@aws_options
@output_option
@handle_errors
def list_command(env: str, config_dir: str, profile: str | None, region: str | None, endpoint_url: str | None,
                 output: str) -> None:
    """List the instances tagged as the bastion in account ENV (running or not).

    \b
    Example:
      fleetform bastion list prod --profile prod-sre
    """
    target = _target(config_dir, env, profile, region, endpoint_url)
    session = aws_session(target)
    check_account(session, target)
    instances = list_bastions(session, target)
    if output == "json":
        emit_json({"account": target.account, "region": target.region,
                   "instances": [i.as_dict() for i in instances]})
        return
    if not instances:
        click.echo(f"no bastion instance in {target.account} ({target.region})")
        return
    table = Table(title=f"bastion instances in {target.account} ({target.region})")
    for column in ("instance", "state", "zone", "private IP", "launched (UTC)"):
        table.add_column(column, no_wrap=True)
    for i in instances:
        launched = (i.launch_time or "")[:16].replace("T", " ")
        table.add_row(i.instance_id, i.state, i.availability_zone or "", i.private_ip or "", launched)
    console = Console()
    console.width = max(console.width, 100)  # ids and zones stay whole when piped
    console.print(table)
