"""The ``fleetform`` command."""

from __future__ import annotations

import importlib

import click

from fleetform import __version__

# command name -> "module:attribute". Each is imported only when it runs (or for --help), so
# `fleetform validate` does not pay for boto3, the runbook or the Terraform runner at start-up.
COMMANDS = {
    "validate": "fleetform.scripts.synth:validate_command",
    "synth": "fleetform.scripts.synth:synth_command",
    "stacks": "fleetform.scripts.synth:stacks_command",
    "affected": "fleetform.scripts.pipeline:affected_command",
    "plan": "fleetform.scripts.pipeline:plan_command",
    "plan-comment": "fleetform.scripts.plan_comment:plan_comment_command",
    "apply": "fleetform.scripts.pipeline:apply_command",
    "apply-new-accounts": "fleetform.scripts.new_accounts:apply_new_accounts_command",
    "drift": "fleetform.scripts.pipeline:drift_command",
    "bastion": "fleetform.scripts.bastion:bastion_group",
    "bootstrap": "fleetform.scripts.bootstrap:bootstrap_command",
    "preflight": "fleetform.scripts.preflight:preflight_command",
    "sandbox": "fleetform.scripts.sandbox:sandbox_group",
    "upgrade": "fleetform.scripts.upgrade:cli",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fleetform")
def cli() -> None:
    """Define and run an AWS Organizations + EKS estate from the YAML in accounts/.

    \b
    Typical use:
      fleetform validate                 # check accounts/ (fast)
      fleetform synth                    # write Terraform JSON to cdktf.out/
      fleetform stacks --json            # stacks in dependency order
    """


if __name__ == "__main__":
    cli()
