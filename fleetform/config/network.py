"""How a VPC CIDR is divided into subnets: one plan shared by validation and the VPC construct.

Half of the VPC goes to private subnets (nodes and pods need the addresses), a quarter to
public subnets (load balancers, NAT gateways) and a quarter to intra subnets (EKS control
plane ENIs, endpoints): per tier, one subnet per AZ. Subnets are keyed ``<tier>-<n>``
(``private-1``), never by list position, so adding an AZ adds subnets and touches none.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

TIERS = ("private", "public", "intra")
SMALLEST_SUBNET_PREFIX = 28  # AWS does not allow smaller subnets
MAX_AZS = 4  # the plan always reserves room for 4 AZs, so growing 2 -> 3 -> 4 moves no subnet


@dataclass(frozen=True)
class PlannedSubnet:
    key: str
    tier: str
    az_index: int  # 0-based index into the region's available AZs
    cidr: str


def subnet_plan(cidr: str, azs: int) -> list[PlannedSubnet]:
    """Subnets for a VPC CIDR and AZ count; raises ValueError when they do not fit."""
    network = ipaddress.ip_network(cidr, strict=True)
    if not 1 <= azs <= MAX_AZS:
        raise ValueError(f"azs must be between 1 and {MAX_AZS}")
    bits = math.ceil(math.log2(MAX_AZS))
    private_prefix = network.prefixlen + 1 + bits
    edge_prefix = network.prefixlen + 2 + bits
    if edge_prefix > SMALLEST_SUBNET_PREFIX:
        raise ValueError(
            f"{cidr} is too small for {MAX_AZS} AZs x 3 tiers: public and intra subnets would be "
            f"/{edge_prefix}; AWS allows at most /{SMALLEST_SUBNET_PREFIX} (use a larger CIDR or fewer AZs)"
        )
    private_half, other_half = network.subnets(prefixlen_diff=1)
    public_quarter, intra_quarter = other_half.subnets(prefixlen_diff=1)
    plan: list[PlannedSubnet] = []
    for tier, block, prefix in (
        ("private", private_half, private_prefix),
        ("public", public_quarter, edge_prefix),
        ("intra", intra_quarter, edge_prefix),
    ):
        for index, subnet in zip(range(azs), block.subnets(new_prefix=prefix), strict=False):
            plan.append(PlannedSubnet(f"{tier}-{index + 1}", tier, index, str(subnet)))
    return plan
