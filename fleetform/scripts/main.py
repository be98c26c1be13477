"""The ``fleetform`` command."""

from __future__ import annotations

import click

from fleetform import __version__
from fleetform.scripts.bastion import bastion_group
from fleetform.scripts.bootstrap import bootstrap_command
from fleetform.scripts.pipeline import affected_command, apply_command, drift_command, plan_command
from fleetform.scripts.sandbox import sandbox_group
from fleetform.scripts.synth import stacks_command, synth_command, validate_command
from fleetform.scripts.upgrade import cli as upgrade_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fleetform")
def cli() -> None:
    """Define and run an AWS Organizations + EKS estate from the YAML in accounts/.

    \b
    Typical use:
      fleetform validate                 # check accounts/ (fast)
      fleetform synth                    # write Terraform JSON to cdktf.out/
      fleetform stacks --json            # stacks in dependency order
    """


for command in (synth_command, validate_command, stacks_command):
    cli.add_command(command)
for command in (affected_command, plan_command, apply_command, drift_command):
    cli.add_command(command)
cli.add_command(bastion_group)
cli.add_command(bootstrap_command)
cli.add_command(sandbox_group)
cli.add_command(upgrade_group, "upgrade")


if __name__ == "__main__":
    cli()
