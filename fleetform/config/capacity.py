"""Which node groups are EKS managed node groups and which are Karpenter NodePools (decision 0005).

With ``autoscaler: karpenter`` only the system group is a managed node group: it runs Karpenter itself,
CoreDNS and the add-ons; Karpenter never scales managed node groups, so every other group becomes a
NodePool (``fleetform gitops``). With ``autoscaler: cluster-autoscaler`` every group stays a managed node
group, which the Cluster Autoscaler scales.
"""

from __future__ import annotations

from collections.abc import Iterator

from fleetform.config.models import ClusterConfig, FleetConfig, NodeGroupConfig
from fleetform.errors import Problem

SYSTEM_GROUP = "system"
# EKS AMI type prefixes -> Karpenter's AMI alias family (the NVIDIA/ARM variant follows the instance type)
KARPENTER_AMI_FAMILIES = {"AL2023_": "al2023", "BOTTLEROCKET_": "bottlerocket", "AL2_": "al2"}


def system_group(cluster: ClusterConfig) -> str | None:
    """The group named ``system``; else the first on-demand, non-GPU group; else the first group."""
    groups = cluster.node_groups
    if SYSTEM_GROUP in groups:
        return SYSTEM_GROUP
    for name, group in groups.items():
        if group.capacity == "on-demand" and not group.gpu:
            return name
    return next(iter(groups), None)


def managed_node_groups(cluster: ClusterConfig) -> dict[str, NodeGroupConfig]:
    """The groups built as EKS managed node groups, in configuration order."""
    if cluster.autoscaler != "karpenter":
        return dict(cluster.node_groups)
    system = system_group(cluster)
    return {name: group for name, group in cluster.node_groups.items() if name == system}


def karpenter_node_groups(cluster: ClusterConfig) -> dict[str, NodeGroupConfig]:
    """The groups that become Karpenter NodePools (none without Karpenter)."""
    managed = managed_node_groups(cluster)
    return {name: group for name, group in cluster.node_groups.items() if name not in managed}


def karpenter_ami_family(ami_type: str) -> str | None:
    for prefix, family in KARPENTER_AMI_FAMILIES.items():
        if ami_type.startswith(prefix):
            return family
    return None


def capacity_problems(config: FleetConfig) -> Iterator[Problem]:
    """A Karpenter group whose ``ami_type`` Karpenter has no alias for (Windows, custom AMIs)."""
    for account in config.accounts:
        for name, cluster in account.spec.clusters.items():
            for group_name, group in karpenter_node_groups(cluster).items():
                if group.ami_type is not None and karpenter_ami_family(group.ami_type) is None:
                    yield Problem(account.file, f"clusters.{name}.node_groups.{group_name}.ami_type",
                                  f"{group.ami_type!r}: this group becomes a Karpenter NodePool (autoscaler: "
                                  f"karpenter; only {system_group(cluster)!r} stays a managed node group), and "
                                  f"Karpenter's EC2NodeClass takes AL2023, Bottlerocket or AL2 AMI types; use one "
                                  f"of those, or autoscaler: cluster-autoscaler")
