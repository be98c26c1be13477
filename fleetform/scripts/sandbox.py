"""``fleetform sandbox up|down|status|alarm``: the offline AWS sandbox (a seeded moto server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from fleetform.aws_session import call
from fleetform.config import load_config
from fleetform.errors import FleetformError
from fleetform.sandbox import server
from fleetform.scripts.common import config_option, emit_json, handle_errors, output_option, renamed_option
from fleetform.upgrade.aws import SANDBOX_ACCOUNT_ID, connect

F = TypeVar("F", bound=Callable[..., Any])


def _dir_option(func: F) -> F:
    """--state-dir (as the runbook names its own); --dir, its former name, hidden until the next release."""
    func = renamed_option("--dir", "--state-dir", "directory", type=click.Path(file_okay=False))(func)
    return click.option("--state-dir", "directory", default=server.DEFAULT_DIR, show_default=True,
                        type=click.Path(file_okay=False),
                        help="The sandbox's state: its record (server.json), log, credentials, and upgrades/, "
                             "where cluster-upgrade records its runs against this sandbox (cleared by up).")(func)


@click.group("sandbox")
def sandbox_group() -> None:
    """An offline AWS on 127.0.0.1 (moto), seeded from accounts/ as if the pipeline had applied it.

    \b
    Example:
      fleetform sandbox up
      export AWS_ENDPOINT_URL=http://127.0.0.1:5055
      cluster-upgrade plan main --account prod --to 1.36
      export AWS_SHARED_CREDENTIALS_FILE=$PWD/.fleetform/sandbox/credentials
      fleetform preflight --profile sandbox-management
      fleetform bastion list prod --profile sandbox-prod
      fleetform sandbox down

    \b
    docs/sandbox.md: its state dir (shared with cluster-upgrade), its accounts, what moto lacks.
    """


@sandbox_group.command("up")
@click.option("--port", default=server.DEFAULT_PORT, show_default=True, type=click.IntRange(1024, 65535),
              help="Port on 127.0.0.1.")
@config_option
@_dir_option
@output_option
@handle_errors
def up_command(port: int, config_dir: str, directory: str, output: str) -> None:
    """Start the sandbox in the background (it outlives this command) and seed it.

    Seeds: a VPC per account, EKS clusters per slot with node groups, hosted zones with one
    weighted record per slot, the guard alarms in OK, and per-slot traffic metrics every second, all
    in moto's account 123456789012; and, under the ids of accounts/, the organization, keys per
    account (for preflight and bastion) and the bastions.

    \b
    Example:
      fleetform sandbox up --port 5055 --config accounts
    """
    config = load_config(config_dir)  # bad configuration: exit 2 here, not in the background process
    click.echo(f"starting the sandbox on port {port} and seeding it from {config_dir}/ (a few seconds)...", err=True)
    record = server.start(directory, port, config_dir)
    if output == "json":
        emit_json(record)
        return
    seeded = record.get("seeded", {})
    click.secho(f"sandbox running at {record['endpoint']} (pid {record['pid']}, log {directory}/server.log)",
                fg="green")
    click.echo(f"runs of cluster-upgrade against it are recorded in {record.get('runs', directory)}")
    click.echo(f"seeded: {len(seeded.get('clusters', []))} clusters ({', '.join(seeded.get('clusters', []))}), "
               f"{len(seeded.get('zones', []))} zones, {len(seeded.get('alarms', []))} alarms; "
               f"clusters, zones and alarms of every account in moto's {SANDBOX_ACCOUNT_ID}")
    accounts = seeded.get("accounts", {})
    if accounts.get("error"):
        click.secho(f"organization, account keys and bastions not seeded: {accounts['error']}", fg="yellow")
    elif accounts:
        click.echo(f"organization {accounts['organization']}: keys for {len(accounts['profiles'])} accounts in "
                   f"{accounts['credentials']}, bastions in {', '.join(accounts['bastions']) or 'none'}")
    click.echo("use it:")
    click.echo(f"  export AWS_ENDPOINT_URL={record['endpoint']}")
    click.echo("  cluster-upgrade plan main --account prod --to 1.36")
    if accounts.get("profiles"):
        bastion = next(iter(accounts.get("bastions") or {}), None)
        click.echo(f"  export AWS_SHARED_CREDENTIALS_FILE={accounts['credentials']}")
        management = config.management
        if management is not None and management.name in accounts["profiles"]:
            click.echo(f"  fleetform preflight --profile {accounts['profiles'][management.name]}")
        if bastion:
            click.echo(f"  fleetform bastion list {bastion} --profile {accounts['profiles'][bastion]}")
    click.echo("  fleetform sandbox down")



@sandbox_group.command("down")
@_dir_option
@output_option
@handle_errors
def down_command(directory: str, output: str) -> None:
    """Stop the sandbox (its state is gone: the next `up` seeds afresh).

    \b
    Example:
      fleetform sandbox down
    """
    record = server.stop(directory)
    if output == "json":
        emit_json({"stopped": bool(record), "pid": record["pid"] if record else None})
    elif record:
        click.echo(f"sandbox stopped (pid {record['pid']})")
    else:
        click.echo("no sandbox running")


@sandbox_group.command("status")
@_dir_option
@output_option
@handle_errors
def status_command(directory: str, output: str) -> None:
    """Is the sandbox running, and where.

    \b
    Example:
      fleetform sandbox status --output json
    """
    record = server.status(directory)
    if output == "json":
        emit_json(record or {"running": False})
    elif record and record["running"]:
        click.echo(f"running at {record['endpoint']} (pid {record['pid']}, since {record['started_at']})")
    else:
        click.echo("not running")
    if not record or not record["running"]:
        raise SystemExit(1)


@sandbox_group.command("alarm")
@click.argument("name")
@click.option("--state", type=click.Choice(["ALARM", "OK", "INSUFFICIENT_DATA"]), default="ALARM", show_default=True)
@_dir_option
@handle_errors
def alarm_command(name: str, state: str, directory: str) -> None:
    """Set a guard alarm's state in the sandbox, to watch a shift roll back.

    \b
    Example:
      fleetform sandbox alarm prod-main-5xx --state ALARM
    """
    record = server.status(directory)
    if not record or not record["running"]:
        raise FleetformError("no sandbox running: `fleetform sandbox up`")
    config = load_config(record["config"])
    regions = [config.region_of(a) for a in config.accounts
               for c in a.spec.clusters.values() if name in c.upgrade.alarms]
    aws = connect(None, regions[0] if regions else config.organization.home_region, record["endpoint"])
    call(aws.client("cloudwatch").set_alarm_state, AlarmName=name, StateValue=state,
         StateReason="set by fleetform sandbox alarm")
    click.echo(f"{name}: {state}")
