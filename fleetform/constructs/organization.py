"""The AWS Organization: all features, trusted services, the OU tree and the member accounts.

OUs and accounts are keyed by path and name, so removing one never renames another; accounts
are protected (``prevent_destroy``, no close on deletion). With ``adopt``, ``import`` blocks adopt
the existing organization and accounts by id (an account in accounts/ exists: its id is in the file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetform.constructs.scp import target_key
from fleetform.engine import Construct, Resource
from fleetform.naming import ORGANIZATION_ACCESS_ROLE

# trusted access (AWS service access) that the organization stack turns on
SERVICE_ACCESS_PRINCIPALS = (
    "access-analyzer.amazonaws.com",  # organization-wide IAM Access Analyzer
    "account.amazonaws.com",  # account management (alternate contacts, regions)
    "cloudtrail.amazonaws.com",  # the organization trail
    "config-multiaccountsetup.amazonaws.com",  # organization Config rules and conformance packs
    "config.amazonaws.com",
    "guardduty.amazonaws.com",
    "ipam.amazonaws.com",
    "malware-protection.guardduty.amazonaws.com",
    "sso.amazonaws.com",  # IAM Identity Center
)


@dataclass(frozen=True)
class MemberAccount:
    name: str
    id: str | None  # None: a new account, created here
    email: str
    ou: str
    adopt: bool = False  # import the existing account ``id`` (an import block) instead of assuming it is in state
    closed: bool = False  # leaving: closed when its resource is destroyed (no prevent_destroy)


@dataclass(frozen=True)
class OrganizationProps:
    ou_paths: Sequence[str]  # parents before children (OrganizationConfig.ou_tree)
    accounts: Sequence[MemberAccount] = ()
    organization_id: str | None = None  # the existing organization's id (o-...), for adopt
    adopt: bool = False  # first apply: import blocks for the organization (if its id is known) and every account
    service_access_principals: Sequence[str] = field(default_factory=lambda: SERVICE_ACCESS_PRINCIPALS)


class Organization(Construct):
    """Attributes: ``root_id``, ``organization_id``, ``ou_ids`` (path -> id), ``accounts`` (name -> resource)."""

    def __init__(self, scope: Construct, id: str, props: OrganizationProps) -> None:
        super().__init__(scope, id)
        self.organization = Resource(
            self, "organization", "aws_organizations_organization",
            feature_set="ALL",
            aws_service_access_principals=sorted(props.service_access_principals),
            enabled_policy_types=["SERVICE_CONTROL_POLICY"],
            lifecycle={"prevent_destroy": True},
        )
        if props.adopt and props.organization_id:
            self.organization.import_from(props.organization_id)
        self.organization_id = self.organization.id_ref
        self.root_id = self.organization.attr("roots[0].id")
        self.ou_ids: dict[str, str] = {}
        self.ous: dict[str, Resource] = {}
        seen: dict[str, str] = {}
        for path in props.ou_paths:
            key = target_key(path)
            if key in seen:
                raise ValueError(f"OU paths {seen[key]!r} and {path!r} map to the same resource name")
            seen[key] = path
            parent, _, name = path.rpartition("/")
            ou = Resource(self, f"ou-{key}", "aws_organizations_organizational_unit", name=name,
                          parent_id=self.ou_ids[parent] if parent else self.root_id,
                          lifecycle={"prevent_destroy": True})
            self.ous[path] = ou
            self.ou_ids[path] = ou.id_ref
        self.accounts: dict[str, Resource] = {}
        for account in props.accounts:
            resource = Resource(
                self, f"account-{account.name}", "aws_organizations_account",
                name=account.name,
                email=account.email,
                parent_id=self.ou_ids[account.ou],
                # CreateAccount makes this role (trusting the management account): a new account's baseline
                # is first applied through it, before the fleetform roles exist
                role_name=ORGANIZATION_ACCESS_ROLE,
                close_on_deletion=account.closed,
                iam_user_access_to_billing="ALLOW",
                # role_name and billing access are only used when AWS creates an account; an adopted
                # account reports neither, and changing them would replace the account
                lifecycle={"prevent_destroy": not account.closed,
                           "ignore_changes": ["role_name", "iam_user_access_to_billing"]},
                depends_on=[self.organization],
            )
            if account.id is not None and (props.adopt or account.adopt):
                resource.import_from(account.id)
            self.accounts[account.name] = resource
