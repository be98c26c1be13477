"""One network stack per account that has a ``network`` section: ``<account>-network``."""

from __future__ import annotations

from fleetform.constructs.vpc import Vpc, VpcProps
from fleetform.naming import BOOTSTRAP_STACK, baseline_stack, network_stack
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp


def build(fleet: FleetApp) -> None:
    config = fleet.config
    for account in config.accounts:
        network = account.spec.network
        if network is None:
            continue
        region = config.region_of(account)
        stack = FleetStack(fleet.app, network_stack(account.name), config, StackTarget(account.id, region),
                           description=f"VPC of {account.name}")
        stack.vpc = Vpc(stack, "vpc", VpcProps(  # type: ignore[attr-defined]
            name=account.name, cidr=network.cidr, azs=network.azs, account_id=account.id, region=region,
            flow_log_retention_days=network.flow_log_retention_days))
        fleet.add(stack, depends_on=[BOOTSTRAP_STACK, baseline_stack(account.name)])
