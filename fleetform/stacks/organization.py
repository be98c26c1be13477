"""The organization stack (management account): the organization, OUs, accounts, SCPs and audit.

The log-archive account's part of the audit (trail bucket, key, GuardDuty administrator, the AWS
Config bucket, key and aggregator) is in
this stack too, through a second, aliased provider: one Terraform graph orders the bucket policy
before the trail and the GuardDuty delegation before the organization-wide GuardDuty settings,
which separate stacks could only do with a cycle or a third stack (docs/organization.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from fleetform.config.models import FleetConfig, ScpConfig
from fleetform.constructs.audit import AuditProps, OrganizationAudit
from fleetform.constructs.aws_config import ConfigArchiveProps
from fleetform.constructs.organization import MemberAccount, Organization, OrganizationProps
from fleetform.constructs.scp import ScpProps, ServiceControlPolicy
from fleetform.constructs.scp_library import BUILTIN, LIBRARY, ROOT_TARGET, GuardrailContext, builtin_targets
from fleetform.engine import AwsProvider, output
from fleetform.naming import BOOTSTRAP_STACK, ORGANIZATION_ACCESS_ROLE, ORGANIZATION_STACK, new_account_output
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.baseline import access_role, first_apply
from fleetform.stacks.context import FleetApp

ROOT = ROOT_TARGET
LOG_ARCHIVE_ALIAS = "log_archive"


def build(fleet: FleetApp) -> None:
    config = fleet.config
    org = config.organization
    management = org.management_account_id
    stack = FleetStack(fleet.app, ORGANIZATION_STACK, config,
                       StackTarget(management, org.home_region, assume_role=access_role(config, management)),
                       description="AWS Organization, OUs, accounts, SCPs and organization-wide audit")
    log_archive_id = config.account(org.log_archive_account).id
    log_archive = _log_archive_provider(stack, log_archive_id)
    organization = Organization(stack, "org", OrganizationProps(
        ou_paths=org.ou_tree,
        accounts=[MemberAccount(a.name, a.id, a.spec.account.email, a.spec.account.ou or "",
                                adopt=a.spec.account.adopt, closed=a.spec.account.closed)
                  for a in config.accounts if a.id != management],
        # adopt the existing organization and accounts on the first apply only: checkov cannot parse
        # import blocks, and once adopted they are in the state (docs/organization.md: adding an account)
        adopt=first_apply(),
        organization_id=org.id,
    ))
    for account in config.accounts:
        if account.is_new:
            created = organization.accounts[account.name].id_ref
            fleet.created_account_ids[account.name] = created
            output(stack, new_account_output(account.name), created,
                   description=f"id of the account {account.name} that this stack created ({account.file})")
    targets = {ROOT: organization.root_id, **organization.ou_ids}
    context = guardrail_context(config)
    for guardrail in BUILTIN.values():
        ServiceControlPolicy(stack, f"scp-{guardrail.name}", ScpProps(
            name=guardrail.name, description=guardrail.description, document=guardrail.document(context),
            targets={t: targets[t] for t in builtin_targets(guardrail, org.ou_tree, config.bastion_ous)}))
    for scp in org.scps:
        description, document = custom_scp(config, scp, context)
        ServiceControlPolicy(stack, f"scp-{scp.name}", ScpProps(
            name=scp.name, description=description, document=document,
            targets={t: targets[t] for t in (scp.targets or [ROOT])}))
    stack.organization = organization  # type: ignore[attr-defined]
    stack.audit = OrganizationAudit(stack, "audit", AuditProps(  # type: ignore[attr-defined]
        organization_name=org.name,
        management_account_id=management,
        log_archive_account_id=log_archive_id,
        home_region=org.home_region,
        regions=org.allowed_regions,
        organization_id=organization.organization_id,
        data_event_buckets=[org.state.bucket],
        config=ConfigArchiveProps(
            organization_name=org.name,
            log_archive_account_id=log_archive_id,
            home_region=org.home_region,
            regions=org.allowed_regions,
            account_ids=[fleet.account_id(a) for a in config.accounts],
        ) if org.aws_config.enabled else None,
    ), log_archive=log_archive, organization=organization.organization)
    fleet.add(stack, depends_on=[BOOTSTRAP_STACK])


def guardrail_context(config: FleetConfig) -> GuardrailContext:
    org = config.organization
    return GuardrailContext(allowed_regions=tuple(org.allowed_regions), state_bucket=org.state.bucket,
                            pipeline_account_id=config.account(org.pipeline.account).id,
                            break_glass_principal=org.break_glass_principal)


def custom_scp(config: FleetConfig, scp: ScpConfig, context: GuardrailContext) -> tuple[str, dict]:
    """(description, document) of an ``organization.scps`` entry (validated by config checks)."""
    if scp.library is not None:
        guardrail = LIBRARY[scp.library]
        return guardrail.description, guardrail.document(context)
    path = Path(config.directory) / str(scp.file)
    return f"fleetform: {scp.file}", json.loads(path.read_text(encoding="utf-8"))


def _log_archive_provider(stack: FleetStack, account_id: str) -> AwsProvider:
    """The same provider settings as the stack's, for the log-archive account."""
    return stack.provider_for("aws-log-archive", LOG_ARCHIVE_ALIAS, account_id=account_id,
                              role_without_variable=ORGANIZATION_ACCESS_ROLE)
