"""One bastion stack per account that has a ``bastion`` section: ``<account>-bastion``.

The instance sits in the account's private subnets (cross-stack reference to the network
stack) with a kubeconfig entry for every cluster slot of the account. The EKS access entry
that lets ``naming.BASTION_ROLE`` into each cluster belongs to the slot stacks.
"""

from __future__ import annotations

from fleetform.config.models import Account, FleetConfig
from fleetform.constructs.bastion import Bastion, BastionProps
from fleetform.constructs.session_logging import SessionLogging, SessionLoggingProps
from fleetform.engine import Resource, output
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    BASTION_NAME_TAG,
    BASTION_OPERATOR_POLICY,
    BASTION_ROLE,
    BOOTSTRAP_STACK,
    SESSION_DOCUMENT,
    baseline_stack,
    bastion_stack,
    network_stack,
    role_arn,
    slot_stack,
)
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp

SESSION_LOG_GROUP = "/fleetform/bastion/sessions"


def account_clusters(account: Account) -> dict[str, str]:
    """EKS cluster name (= slot stack name) -> Kubernetes version, for every slot of the account."""
    return {
        slot_stack(account.name, cluster_name, slot_name): slot.version
        for cluster_name, cluster in account.spec.clusters.items()
        for slot_name, slot in cluster.slots.items()
    }


def session_bucket_name(config: FleetConfig, account_id: str) -> str:
    """Globally unique and at most 63 characters (organization name <= 32)."""
    return f"{config.organization.name}-{account_id}-bastion-sessions"


def build(fleet: FleetApp) -> None:
    config = fleet.config
    for account in config.accounts:
        settings = account.spec.bastion
        if settings is None:
            continue
        region = config.region_of(account)
        name = bastion_stack(account.name)
        stack = FleetStack(fleet.app, name, config, StackTarget(fleet.account_id(account), region),
                           description=f"Session Manager bastion of {account.name}")
        network = fleet.stacks[network_stack(account.name)]
        vpc = network.vpc  # type: ignore[attr-defined]
        keepers = [role_arn(stack.account_id, ACCOUNT_APPLY_ROLE)]
        if config.organization.break_glass_principal:
            keepers.append(config.organization.break_glass_principal)
        session = SessionLogging(stack, "sessions", SessionLoggingProps(
            document_name=SESSION_DOCUMENT,
            bucket_name=session_bucket_name(config, stack.account_id),
            log_group_name=SESSION_LOG_GROUP,
            account_id=stack.account_id,
            region=region,
            retention_days=settings.session_log_retention_days,
            idle_timeout_minutes=settings.idle_timeout_minutes,
            max_session_minutes=settings.max_session_minutes,
            run_as_user=settings.run_as_user,
            delete_principals=tuple(keepers),
        ))
        clusters = account_clusters(account)
        stack.bastion = Bastion(stack, "bastion", BastionProps(  # type: ignore[attr-defined]
            account_id=stack.account_id,
            region=region,
            vpc_id=vpc.vpc_id,
            subnet_ids=vpc.subnet_ids["private"],
            role_name=BASTION_ROLE,
            name_tag=BASTION_NAME_TAG,
            operator_policy_name=BASTION_OPERATOR_POLICY,
            clusters=clusters,
            instance_type=settings.instance_type,
            run_as_user=settings.run_as_user,
            root_volume_gb=settings.root_volume_gb,
            max_instance_lifetime_days=settings.max_instance_lifetime_days,
            tags={"fleetform:account": account.name},
        ), session)
        stack.sessions = session  # type: ignore[attr-defined]
        _outputs(stack, stack.bastion, session)  # type: ignore[attr-defined]
        fleet.add(stack, depends_on=[BOOTSTRAP_STACK, baseline_stack(account.name), network_stack(account.name)])
        # EKS resolves an access entry's principal when it is created, so the slot stacks (which
        # grant the bastion role) come after this one; the bastion's kubeconfig timer picks up
        # clusters that appear later.
        for cluster in clusters:
            if cluster in fleet.stacks:
                _reach_cluster(fleet.stacks[cluster], stack)


def _reach_cluster(slot: FleetStack, stack: FleetStack) -> None:
    """Order the slot stack after the bastion and open its private API endpoint to the bastion.

    The cluster security group admits only its own members; the rule lives in the slot stack
    (which already follows this one), so no stack refers back to a later one.
    """
    slot.add_dependency(stack)
    eks = getattr(slot, "eks", None)
    if eks is None:
        return
    Resource(slot, "bastion-api-access", "aws_vpc_security_group_ingress_rule",
             security_group_id=eks.security_group_id,
             referenced_security_group_id=stack.bastion.security_group_id,  # type: ignore[attr-defined]
             ip_protocol="tcp", from_port=443, to_port=443,
             description="kubectl from the fleetform bastion (Session Manager) to the private API endpoint")


def _outputs(stack: FleetStack, bastion: Bastion, session: SessionLogging) -> None:
    """What people look up after an apply: which policy to attach, where recordings go."""
    output(stack, "operator_policy_arn", bastion.operator_policy_arn,
                    description="attach to the roles (or permission sets) that may start bastion sessions")
    output(stack, "bastion_role_arn", bastion.role_arn,
                    description="principal of the EKS access entries in the slot stacks")
    output(stack, "session_bucket", session.bucket_name, description="session recordings (S3)")
    output(stack, "session_log_group", session.log_group_name,
                    description="session recordings (CloudWatch Logs)")
