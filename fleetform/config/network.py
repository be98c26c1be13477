"""How a VPC CIDR is divided into subnets: one plan shared by validation and the VPC construct.

Half of the VPC goes to private subnets (nodes and pods need the addresses), a quarter to
public subnets (load balancers, NAT gateways) and a quarter to intra subnets (EKS control
plane ENIs, endpoints): per tier, one subnet per AZ. Subnets are keyed ``<tier>-<n>``
(``private-1``), where n is the AZ's number, so adding an AZ adds subnets and touches none.

``network.azs`` names the zones by AZ ID (``[apne1-az1, apne1-az2, apne1-az4]``): the n-th entry is
AZ n, pinned to that zone in every account (AZ names map to different zones per account, and a
position in the region's available-zone list moves when a zone is impaired or added). Removing a
zone other than the last leaves ``null`` in its place, so the zones after it keep their numbers,
their CIDRs and their resources. A count (``azs: 3``) is the older form: the first n zones of
the region by name, which is what fleetform did before zone IDs.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

TIERS = ("private", "public", "intra")
SMALLEST_SUBNET_PREFIX = 28  # AWS does not allow smaller subnets
MAX_AZS = 4  # the plan always reserves room for 4 AZs, so growing 2 -> 3 -> 4 moves no subnet
# apne1-az1, use1-az6, usw2-lax1-az1 (a Local Zone)
ZONE_ID = re.compile(r"^[a-z]{2,4}\d{1,2}-([a-z]{3}\d+-)?az\d{1,2}$")

AzSpec = int | Sequence[str | None]  # network.azs: a count, or zone IDs by AZ number (None: removed)


@dataclass(frozen=True)
class PlannedSubnet:
    key: str
    tier: str
    az_index: int  # 0-based: the AZ's number - 1
    cidr: str
    zone_id: str | None = None  # None: the region's (az_index+1)-th zone by name (azs given as a count)


def zones(azs: AzSpec) -> dict[int, str | None]:
    """AZ index (0-based) -> zone ID (None for a count), without the removed (null) entries."""
    if isinstance(azs, int):
        return dict.fromkeys(range(azs))
    return {index: zone for index, zone in enumerate(azs) if zone is not None}


def subnet_plan(cidr: str, azs: AzSpec) -> list[PlannedSubnet]:
    """Subnets for a VPC CIDR and its AZs; raises ValueError when they do not fit."""
    network = ipaddress.ip_network(cidr, strict=True)
    by_index = zones(azs)
    if isinstance(azs, int) and not 1 <= azs <= MAX_AZS:
        raise ValueError(f"azs must be between 1 and {MAX_AZS}")
    if not isinstance(azs, int):
        if not by_index:
            raise ValueError("azs lists no zone")
        if len(azs) > MAX_AZS:
            raise ValueError(f"at most {MAX_AZS} AZs (a null entry keeps a removed zone's number)")
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
        for index, subnet in enumerate(block.subnets(new_prefix=prefix)):
            if index in by_index:
                plan.append(PlannedSubnet(f"{tier}-{index + 1}", tier, index, str(subnet), by_index[index]))
    return plan
