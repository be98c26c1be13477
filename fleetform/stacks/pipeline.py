"""The pipeline stack (``naming.PIPELINE_STACK``) in the account ``organization.pipeline.account``."""

from __future__ import annotations

from fleetform.constructs.pipeline import Pipeline, PipelineProps
from fleetform.naming import BOOTSTRAP_STACK, PIPELINE_STACK, baseline_stack
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp


def build(fleet: FleetApp) -> None:
    config = fleet.config
    org = config.organization
    settings = org.pipeline
    account = config.account(settings.account)
    region = config.region_of(account)
    stack = FleetStack(fleet.app, PIPELINE_STACK, config, StackTarget(account.id, region),
                       description="CodeBuild plan/apply/drift pipeline")
    stack.pipeline = Pipeline(stack, "pipeline", PipelineProps(  # type: ignore[attr-defined]
        name=org.name,
        account_id=account.id,
        region=region,
        repository=settings.repository,
        branch=settings.branch,
        drift_schedule=settings.drift_schedule,
        notification_email=settings.notification_email,
        github_token_secret=settings.github_token_secret,
        account_ids=sorted({fleet.account_id(a) for a in config.accounts}),
        state_bucket=org.state.bucket,
        state_account_id=org.management_account_id,
        state_region=org.state.region,
        plan_shards=settings.plan_shards,
        new_account_ids=sorted(fleet.account_id(a) for a in config.accounts if a.is_new),
    ))
    fleet.add(stack, depends_on=[BOOTSTRAP_STACK, baseline_stack(account.name)])
