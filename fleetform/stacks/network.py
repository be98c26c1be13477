"""One network stack per account that has a ``network`` section: ``<account>-network``.

Besides the VPC it holds the account-level role that the Ops cluster's Argo CD assumes
(``naming.ARGOCD_MANAGER_ROLE``): one per account, outliving every cluster slot, so each new slot
only adds an access entry for it.
"""

from __future__ import annotations

from fleetform.constructs.ops import ArgoCdManagerProps, ArgoCdManagerRole
from fleetform.constructs.vpc import Vpc, VpcProps
from fleetform.engine import output
from fleetform.naming import BOOTSTRAP_STACK, baseline_stack, network_stack
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.clusters import find_ops_cluster
from fleetform.stacks.context import FleetApp


def build(fleet: FleetApp) -> None:
    config = fleet.config
    ops = find_ops_cluster(config)
    for account in config.accounts:
        network = account.spec.network
        if network is None:
            continue
        region = config.region_of(account)
        stack = FleetStack(fleet.app, network_stack(account.name), config,
                           StackTarget(fleet.account_id(account), region),
                           description=f"VPC of {account.name}")
        stack.vpc = Vpc(stack, "vpc", VpcProps(  # type: ignore[attr-defined]
            name=account.name, cidr=network.cidr, azs=network.azs, account_id=stack.account_id, region=region,
            flow_log_retention_days=network.flow_log_retention_days, nat=network.nat,
            interface_endpoints=tuple(network.interface_endpoints), discovery_tag=account.name))
        _outputs(stack, stack.vpc)  # type: ignore[attr-defined]
        if ops is not None and any(c.role == "service" for c in account.spec.clusters.values()):
            stack.argocd_manager = ArgoCdManagerRole(  # type: ignore[attr-defined]
                stack, "argocd-manager", ArgoCdManagerProps(stack.account_id, region, fleet.account_id(ops[0])))
        fleet.add(stack, depends_on=[BOOTSTRAP_STACK, baseline_stack(account.name)])


def _outputs(stack: FleetStack, vpc: Vpc) -> None:
    output(stack, "vpc_id", vpc.vpc_id)
    for tier, ids in sorted(vpc.subnet_ids.items()):
        output(stack, f"{tier}_subnet_ids", ids)
    output(stack, "endpoint_security_group_id", vpc.endpoint_security_group_id)
