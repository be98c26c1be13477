"""Which node groups are EKS managed node groups and which are Karpenter NodePools (decision 0005).

With ``autoscaler: karpenter`` only the system group is a managed node group: it runs Karpenter itself,
CoreDNS and the add-ons; Karpenter never scales managed node groups, so every other group becomes a
NodePool (``fleetform gitops``). With ``autoscaler: cluster-autoscaler`` every group stays a managed node
group, which the Cluster Autoscaler scales.
"""

from __future__ import annotations

from fleetform.config.models import ClusterConfig, NodeGroupConfig

SYSTEM_GROUP = "system"


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
