"""``fleetform apply-new-accounts``: after the organization stack created new accounts, apply their stacks."""

from __future__ import annotations

from pathlib import Path

import click

from fleetform.errors import FleetformError
from fleetform.naming import ACCOUNT_APPLY_ROLE, ORGANIZATION_ACCESS_ROLE, ORGANIZATION_STACK
from fleetform.scripts.common import aws_options, emit_json, handle_errors, output_option
from fleetform.scripts.pipeline import (
    DEFAULT_PLAN_DIR,
    _check_pairs,
    _client,
    _lock,
    _progress,
    _terraform,
    run_options,
)


@click.command("apply-new-accounts")
@run_options
@click.option("--out-dir", default=DEFAULT_PLAN_DIR, show_default=True, type=click.Path(file_okay=False),
              help="The plan directory of `fleetform plan` (its new-accounts.json lists the waiting stacks).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Terraform variable (repeatable).")
@click.option("--first-role", default=ORGANIZATION_ACCESS_ROLE, show_default=True,
              help="Role that CreateAccount made in the new account; the account's baseline is applied through it.")
@click.option("--role", default=ACCOUNT_APPLY_ROLE, show_default=True,
              help="Role the account's other stacks assume (made by its baseline).")
@click.option("--wait-timeout", default=900, show_default=True, type=click.IntRange(0),
              help="Seconds to wait for a role of the new account to become assumable.")
@click.option("--wait-interval", default=10, show_default=True, type=click.IntRange(1),
              help="Seconds between sts:AssumeRole attempts.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (the pipeline passes it).")
@click.option("--lock-bucket", default=None,
              help="S3 bucket for the pipeline lock (default: the stacks' state bucket).")
@click.option("--lock-ttl", default=7200, show_default=True, type=click.IntRange(60),
              help="Seconds before an abandoned lock may be taken over.")
@aws_options
@output_option
@handle_errors
def apply_new_accounts_command(synth_dir: str, backend_config: tuple[str, ...], terraform_bin: str | None,
                               parallelism: int, out_dir: str, variables: tuple[str, ...], first_role: str, role: str,
                               wait_timeout: int, wait_interval: int, yes: bool, lock_bucket: str | None,
                               lock_ttl: int, profile: str | None, region: str | None, endpoint_url: str | None,
                               output: str) -> None:
    """Apply the stacks of accounts that the organization stack has just created.

    `fleetform plan` leaves out the stacks that read a new account's id (it does not exist before
    the organization stack is applied) and lists them in OUT_DIR/new-accounts.json. After
    `fleetform apply` has applied the organization stack, this reads the new ids from its state,
    waits until the account's role can be assumed (sts:AssumeRole, retried up to --wait-timeout),
    then plans and applies each waiting stack in dependency order: the baseline through
    --first-role (it creates the fleetform roles), the others through --role. One stack at a
    time (--parallelism does not apply): each may need the role the previous one made.

    \b
    Examples (the apply build runs them in this order):
      fleetform plan --affected --base HEAD~1 --out-dir .fleetform/plan
      fleetform apply --yes --out-dir .fleetform/plan
      fleetform apply-new-accounts --yes --out-dir .fleetform/plan
    """
    from fleetform.manifest import read_manifest
    from fleetform.new_accounts import Settle, account_ids, apply_new_accounts, read_pending
    from fleetform.terraform.summary import DEFAULT_PROTECTED_TYPES
    from fleetform.terraform.workflow import PlanOptions

    _check_pairs("--backend-config", backend_config)
    _check_pairs("--var", variables)
    waiting = read_pending(Path(out_dir))
    if not waiting.stacks:
        _finish([], output, "no stack waits for a new account")
        return
    stacks = read_manifest(synth_dir)
    organization = next((s for s in stacks if s.name == ORGANIZATION_STACK), None)
    if organization is None:
        raise FleetformError(f"{synth_dir} has no {ORGANIZATION_STACK} stack")
    tf = _terraform(terraform_bin)
    ids = account_ids(tf, organization, waiting, backend_config)
    names = ", ".join(f"{a.name} ({ids[a.name]}): {', '.join(a.stacks)}" for a in waiting.accounts)
    if not yes:
        try:
            confirmed = click.confirm(f"Plan and apply the stacks of the new accounts {names}?", default=False,
                                      err=True)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise FleetformError("cancelled (pass --yes to apply without asking)")
    options = PlanOptions(out_dir=Path(out_dir) / "new-accounts", backend_config=backend_config,
                          variables=variables, protected_types=DEFAULT_PROTECTED_TYPES, title="fleetform new account")
    plans_dir = Path(out_dir)
    lock = _lock_for(stacks, waiting, lock_bucket, lock_ttl, plans_dir, profile, region, endpoint_url)
    sts = _client("sts", profile, region, endpoint_url)
    settle = Settle(first_role=first_role, role=role, wait_timeout=wait_timeout, wait_interval=wait_interval)
    results = apply_new_accounts(tf, Path(synth_dir), stacks, waiting, ids, sts, settle, options, lock, _progress)
    _finish(results, output, f"applied the stacks of the new accounts: {names}")


def _lock_for(stacks: list, waiting: object, bucket: str | None, ttl: int, out_dir: Path, profile: str | None,
              region: str | None, endpoint_url: str | None) -> object:
    from fleetform.terraform.workflow import SavedPlan

    held = set(waiting.stacks)  # type: ignore[attr-defined]
    chosen = [SavedPlan(s, {}, out_dir) for s in stacks if s.name in held]
    return _lock(chosen, bucket, ttl, out_dir, profile, region, endpoint_url)


def _finish(results: list[dict], output: str, message: str) -> None:
    if output == "json":
        emit_json({"ok": True, "applied": results})
    else:
        click.echo(message)
