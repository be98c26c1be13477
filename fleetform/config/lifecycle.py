"""What the organization stack does with each account file: create, adopt, close (or nothing new)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from fleetform.config.models import Account, FleetConfig
from fleetform.errors import Problem, UsageError
from fleetform.naming import (
    ORGANIZATION_STACK,
    baseline_stack,
    bastion_stack,
    cluster_shared_stack,
    dns_stack,
    network_stack,
    slot_stack,
)


@dataclass(frozen=True)
class AccountAction:
    account: str
    file: str
    action: str  # "create", "adopt" or "close"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"account": self.account, "file": self.file, "action": self.action, "detail": self.detail}


def account_stacks(account: Account) -> list[str]:
    """The stacks of the account itself, in the order the pipeline applies them."""
    spec = account.spec
    names = [baseline_stack(account.name)]
    if spec.network is not None:
        names.append(network_stack(account.name))
    if spec.dns is not None:
        names.append(dns_stack(account.name))
    for cluster, settings in spec.clusters.items():
        names.append(cluster_shared_stack(account.name, cluster))
        names += [slot_stack(account.name, cluster, slot) for slot in settings.slots]
    if spec.bastion is not None:
        names.append(bastion_stack(account.name))
    return names


def require_account_id(account: Account) -> str:
    """The id, for commands that reach the account at run time; a new account's is written once it exists."""
    if account.id is None:
        raise UsageError(f"{account.file}: account.id: account {account.name!r} is new (no id in its file); once "
                         f"the {ORGANIZATION_STACK} stack has created it, write its id there (`terraform output` of "
                         f"{ORGANIZATION_STACK}: account_id_{account.name}; writing it changes no resource)")
    return account.id


def account_actions(config: FleetConfig) -> list[AccountAction]:
    """The accounts whose organization-level life changes: new, adopted or closing ones."""
    actions = []
    for account in config.accounts:
        info = account.spec.account
        if info.id is None:
            stacks = ", ".join(account_stacks(account))
            actions.append(AccountAction(account.name, account.file, "create", (
                f"new: the {ORGANIZATION_STACK} stack creates it in OU {info.ou} ({info.email}); once it exists the "
                f"same pipeline run waits until it can be assumed and applies {stacks}; its id never needs "
                "to be written (writing it later changes nothing)")))
        elif info.adopt:
            actions.append(AccountAction(account.name, account.file, "adopt", (
                f"adopt: the {ORGANIZATION_STACK} stack imports the existing account {info.id} (no CreateAccount) "
                f"into OU {info.ou}; run `fleetform preflight` before merging")))
        elif info.closed:
            actions.append(AccountAction(account.name, account.file, "close", (
                f"closing: the {ORGANIZATION_STACK} stack sets close_on_deletion and drops prevent_destroy; removing "
                "the file in a later pull request (with the allow-destroy label) closes the account")))
    return actions


def account_files(directory: Path, skip: Collection[str] = (),
                  only: Collection[str] | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """account name -> (file, its ``account`` section) of the account files in ``directory``, read loosely
    (an older revision's files need not match today's models); without the file names in ``skip``, and
    only those in ``only`` when given."""
    from fleetform.config.loader import read_yaml_document

    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml")
                       and p.name not in skip and (only is None or p.name in only)):
        try:
            data = read_yaml_document(path)
        except (OSError, UnicodeDecodeError, YAMLError):
            continue
        account = data.get("account") if isinstance(data, dict) else None
        if isinstance(account, dict) and isinstance(account.get("name"), str):
            found[account["name"]] = (path.name, dict(account))
    return found


def removed_accounts(base_dir: Path, head_dir: Path, shown_dir: str,
                     unchanged: Collection[str] = ()) -> list[Problem]:
    """Account files of the base revision that the working tree no longer has. Closing an account is
    deliberate: refused unless the base already said ``closed: true`` (docs/organization.md).
    ``unchanged``: files identical in both (their accounts are in both): read only if an account of
    the other files is missing from the working tree's (``fleetform affected`` at 10x: 0.3 s less)."""
    base, head = account_files(base_dir, skip=unchanged), account_files(head_dir, skip=unchanged)
    if unchanged and set(base) - set(head):
        head.update(account_files(head_dir, only=unchanged))
    problems = []
    for name, (file, account) in base.items():
        if name in head or account.get("closed") is True:
            continue
        problems.append(Problem(f"{shown_dir}/{file}", "account", (
            f"the file of account {name!r} was removed; fleetform never closes an account by accident "
            "(an account is protected by prevent_destroy). To keep it, restore the file. To close it, set "
            "'closed: true' in the file and merge that first; then remove the file in a pull request with the "
            "allow-destroy label")))
    return problems
