"""One baseline stack per account, ``<account>-baseline``: fleetform's roles and the account defaults.

The first apply (``FLEETFORM_FIRST_APPLY=1``, set by ``fleetform bootstrap``) cannot assume the
fleetform roles, since these stacks create them: member accounts are then reached through
OrganizationAccountAccessRole and the management account with the operator's own credentials.
See docs/organization.md for the whole first-apply order.
"""

from __future__ import annotations

import os

from fleetform.config.models import Account, FleetConfig
from fleetform.constructs.aws_config import ConfigRecorderProps
from fleetform.constructs.baseline import AccountBaseline, BaselineProps, BudgetProps
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    BOOTSTRAP_STACK,
    FIRST_APPLY_ENV,
    ORGANIZATION_ACCESS_ROLE,
    ORGANIZATION_STACK,
    baseline_stack,
    config_bucket,
    config_key_alias_arn,
)
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp


def first_apply() -> bool:
    return os.environ.get(FIRST_APPLY_ENV, "").strip().lower() not in ("", "0", "false", "no")


def access_role(config: FleetConfig, account_id: str) -> str | None:
    """The role Terraform assumes in ``account_id`` for the organization and baseline stacks."""
    if not first_apply():
        return ACCOUNT_APPLY_ROLE
    return None if account_id == config.organization.management_account_id else ORGANIZATION_ACCESS_ROLE


def build(fleet: FleetApp) -> None:
    config = fleet.config
    org = config.organization
    pipeline_account = config.account(org.pipeline.account).id
    for account in config.accounts:
        region = config.region_of(account)
        stack = FleetStack(fleet.app, baseline_stack(account.name), config,
                           StackTarget(fleet.account_id(account), region,
                                       assume_role=access_role(config, account.id)),
                           description=f"fleetform roles and account defaults of {account.name}")
        budget = account.spec.budget
        stack.baseline = AccountBaseline(stack, "baseline", BaselineProps(  # type: ignore[attr-defined]
            account_name=account.name,
            account_id=stack.account_id,
            regions=org.allowed_regions,
            pipeline_account_id=pipeline_account,
            break_glass_principal=org.break_glass_principal,
            budget=BudgetProps(budget.monthly_usd, budget.alert_email, budget.threshold_percent) if budget else None,
            config=config_recorder_props(config, account, stack.account_id),
            autoscaling_service_linked_role=(bool(account.spec.clusters)
                                             and account.name not in org.existing_autoscaling_service_linked_role),
        ))
        fleet.add(stack, depends_on=[BOOTSTRAP_STACK, ORGANIZATION_STACK])


def config_recorder_props(config: FleetConfig, account: Account, account_id: str) -> ConfigRecorderProps | None:
    """AWS Config for ``account`` (organization.aws_config), delivering to the log-archive bucket."""
    org = config.organization
    if not org.aws_config.enabled:
        return None
    log_archive = config.account(org.log_archive_account).id
    return ConfigRecorderProps(
        account_id=account_id,
        regions=org.allowed_regions,
        home_region=org.home_region,
        bucket=config_bucket(org.name, log_archive),
        kms_key_arn=config_key_alias_arn(org.name, org.home_region, log_archive),
        snapshot_frequency=org.aws_config.snapshot_frequency,
        create_service_linked_role=account.name not in org.aws_config.existing_service_linked_role,
        daily_recording=org.aws_config.daily_recording,
    )
