"""The stack every fleetform stack is: S3 state with native locking and an AWS provider that
assumes a role in the target account (DESIGN section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktn import LocalBackend, S3Backend, TerraformStack
from constructs import Construct

from fleetform.config.models import FleetConfig
from fleetform.engine import AwsProvider, Variable
from fleetform.naming import ACCOUNT_APPLY_ROLE as APPLY_ROLE
from fleetform.naming import ACCOUNT_PLAN_ROLE as PLAN_ROLE

ROLE_VARIABLE = "fleetform_role"


@dataclass(frozen=True)
class StackTarget:
    """Where a stack's resources go."""

    account_id: str  # the id, or a reference to it (a new account's, from the organization stack)
    region: str
    # role assumed in the target account; None = the caller's own credentials (first apply)
    assume_role: str | None = APPLY_ROLE


class FleetStack(TerraformStack):
    """A stack with fleetform's backend and provider. ``name`` is stable: it keys the state."""

    def __init__(self, scope: Construct, name: str, config: FleetConfig, target: StackTarget,
                 *, local_state_path: str | None = None, description: str = "") -> None:
        super().__init__(scope, name)
        self.stack_name = name
        self.config = config
        self.target = target
        self.description = description
        self.dependency_names: set[str] = set()  # what the manifest will list, known without a synth
        org = config.organization
        if local_state_path is not None:
            self.backend: tuple[str, dict[str, Any]] = ("local", {"path": local_state_path})
            LocalBackend(self, **self.backend[1])
        else:
            self.backend = ("s3", {"bucket": org.state.bucket, "key": f"{name}/terraform.tfstate",
                                   "region": org.state.region, "encrypt": True, "use_lockfile": True})
            S3Backend(self, **self.backend[1])
        self.role_variable: Variable | None = None
        if target.assume_role is not None:
            self.role_variable = Variable(
                self, ROLE_VARIABLE, type="string", default=target.assume_role,
                description=f"role Terraform assumes in account {_described(target.account_id)} "
                            f"({PLAN_ROLE} for plans, {APPLY_ROLE} for applies)",
            )
        self.provider = self.provider_for("aws")

    @property
    def account_id(self) -> str:
        """The target account's id for resources: the id in the account file or, for a new account, a
        reference to the organization stack's account resource (remote state here). Both are known
        when this stack is planned, so writing a new account's id into its file later changes no
        resource in the plan (tests/test_new_accounts.py)."""
        return self.target.account_id

    def add_dependency(self, dependency: TerraformStack) -> None:
        self.dependency_names.add(dependency.stack_name if isinstance(dependency, FleetStack)
                                  else dependency.node.id)
        super().add_dependency(dependency)

    def provider_for(self, id: str, alias: str | None = None, *, account_id: str | None = None,
                     region: str | None = None, role_without_variable: str | None = None) -> AwsProvider:
        """An AWS provider with this stack's settings (role variable, tags, account guard), for the
        stack's own account and region unless told otherwise; ``alias`` makes it an extra provider.

        ``role_without_variable``: the role to assume in ``account_id`` when this stack runs on the
        caller's own credentials (no role variable), e.g. OrganizationAccountAccessRole.
        """
        account_id = account_id or self.target.account_id
        role = self.role_variable.ref if self.role_variable is not None else role_without_variable
        assume = None
        if role is not None:
            assume = [{"role_arn": f"arn:aws:iam::{account_id}:role/{role}",
                       "session_name": f"fleetform-{self.stack_name}"[:64]}]
        return AwsProvider(
            self, id,
            alias=alias,
            region=region or self.target.region,
            allowed_account_ids=[account_id],
            assume_role=assume,
            default_tags=[{"tags": {
                "ManagedBy": "fleetform",
                "fleetform:organization": self.config.organization.name,
                "fleetform:stack": self.stack_name,
            }}],
        )

    def remote_state(self) -> dict[str, Any]:
        """Where other stacks read this stack's outputs (``terraform_remote_state`` arguments)."""
        kind, config = self.backend
        return {"backend": kind, "config": dict(config)}


def _described(account_id: str) -> str:
    """The id for a description: a new account's is known only once the organization stack made it."""
    return account_id if account_id.isdigit() else "(created by the organization stack)"
