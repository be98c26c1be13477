"""``fleetform synth``, ``validate`` and ``stacks``: the configuration and what it turns into."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fleetform.config import load_config
from fleetform.config.lifecycle import account_actions
from fleetform.errors import UsageError
from fleetform.manifest import prune_stale_stacks, read_manifest
from fleetform.scripts.common import config_option, emit_json, handle_errors, output_option, synth_dir_option


def synthesize(config_dir: str, out_dir: str | Path) -> list:
    return _synthesize(config_dir, out_dir)[0]


def _synthesize(config_dir: str, out_dir: str | Path) -> tuple[list, list]:
    """(stacks, account actions) of a synth."""
    # imported here so `validate` and `--help` stay fast (no node process)
    from fleetform.stacks.app import synth

    check_out_dir(out_dir)
    config = load_config(config_dir)
    synth(config, out_dir)
    removed, kept = prune_stale_stacks(out_dir)
    if removed:
        click.echo(f"removed stacks no longer in the configuration from {out_dir}: {', '.join(removed)}", err=True)
    if kept:
        click.echo(f"warning: {out_dir} holds stacks no longer in the configuration, kept because they hold a "
                   f"local Terraform state: {', '.join(kept)}", err=True)
    return read_manifest(out_dir), account_actions(config)


def _echo_actions(actions: list) -> None:
    for action in actions:
        click.echo(f"{action.file}: account {action.account}: {action.detail}")


def check_out_dir(out_dir: str | Path) -> None:
    """--synth-dir must be (or become) a directory: not a file, nor anything below one."""
    path = Path(out_dir)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise UsageError(f"--synth-dir {out_dir}: {part} is a file, not a directory")


@click.command("synth")
@config_option
@synth_dir_option(out_alias=True, help="Where the Terraform JSON goes (cdktf.out layout), which plan, apply and drift "
                  "read with the same option.")
@output_option
@handle_errors
def synth_command(config_dir: str, synth_dir: str, output: str) -> None:
    """Synthesize every stack into Terraform JSON (the main job).

    \b
    Example:
      fleetform synth                       # accounts/ -> cdktf.out/
      fleetform synth --config accounts --synth-dir build/cdktf.out --output json
      fleetform plan --synth-dir build/cdktf.out
    """
    started = time.perf_counter()
    stacks, actions = _synthesize(config_dir, synth_dir)
    elapsed = time.perf_counter() - started
    if output == "json":
        # "out": the key before --synth-dir, kept for scripts that read it
        emit_json({"synth_dir": str(synth_dir), "out": str(synth_dir), "seconds": round(elapsed, 2),
                   "stacks": [s.as_dict() for s in stacks], "accounts": [a.as_dict() for a in actions]})
        return
    table = Table(title=f"{len(stacks)} stacks synthesized into {synth_dir}/ in {elapsed:.1f}s")
    table.add_column("stack")
    table.add_column("resources", justify="right")
    table.add_column("depends on")
    for stack in stacks:
        table.add_row(stack.name, str(stack.resource_count), ", ".join(stack.dependencies))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(s.resource_count for s in stacks)}[/bold]", "")
    Console().print(table)
    _echo_actions(actions)


@click.command("validate")
@config_option
@output_option
@handle_errors
def validate_command(config_dir: str, output: str) -> None:
    """Check the configuration only (fast; nothing is synthesized).

    Every problem is reported at once with its file, line and field; exit status 2 if any.

    \b
    Example:
      fleetform validate --config accounts
    """
    config = load_config(config_dir)
    actions = account_actions(config)
    summary = {
        "ok": True,
        "accounts": [a.name for a in config.accounts],
        "clusters": sorted(f"{a.name}/{c}" for a in config.accounts for c in a.spec.clusters),
        "account_actions": [a.as_dict() for a in actions],
    }
    if output == "json":
        emit_json(summary)
    else:
        click.echo(f"{config_dir}: OK ({len(summary['accounts'])} accounts, "
                   f"{len(summary['clusters'])} clusters)")
        _echo_actions(actions)


@click.command("stacks")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Same as --output json (for the pipeline).")
@output_option
@handle_errors
def stacks_command(config_dir: str, as_json: bool, output: str) -> None:
    """List the stacks in dependency order, with what each depends on.

    Builds the stacks without synthesizing them (nothing is written; a little faster than a synth).

    \b
    Example:
      fleetform stacks
      fleetform stacks --json | jq -r '.[].name'
    """
    from fleetform.stacks.app import describe

    stacks = describe(load_config(config_dir))
    if as_json or output == "json":
        emit_json([{"name": s.name, "dependencies": list(s.dependencies), "resources": s.resource_count}
                   for s in stacks])
        return
    table = Table()
    table.add_column("stack")
    table.add_column("resources", justify="right")
    table.add_column("depends on")
    for stack in stacks:
        table.add_row(stack.name, str(stack.resource_count), ", ".join(stack.dependencies))
    Console().print(table)
