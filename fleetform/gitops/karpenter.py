"""Karpenter v1 NodePools and EC2NodeClasses from the YAML's node groups (decision 0005).

One NodePool and one EC2NodeClass per group that is not a managed node group
(``fleetform.config.capacity``), both named like the group:

- requirements: capacity type; spot groups by instance family and size (Karpenter may pick any of
  the families' listed sizes, the diversity spot needs), other groups by exact instance type; the
  architecture from the types (Graviton: arm64); Linux.
- labels and taints as the managed node group would have them (``fleetform.io/node-group``,
  ``fleetform.io/capacity``, GPU: ``nvidia.com/gpu.present`` and the ``nvidia.com/gpu=true:NoSchedule`` taint).
- ``limits.cpu``: ``max`` nodes of the group's largest type (Karpenter limits resources, not nodes).
- EC2NodeClass: the AMI alias of the group's family (AL2023 or Bottlerocket; Karpenter picks the NVIDIA
  or ARM variant of the family from the instance type), the node role, subnets and security groups by
  their ``karpenter.sh/discovery`` tags, IMDSv2 with hop limit 1, an encrypted gp3 volume with the slot's
  volume key, and the slot's tags.
"""

from __future__ import annotations

import re
from typing import Any

from fleetform.config.capacity import karpenter_ami_family, karpenter_node_groups
from fleetform.config.checks import instance_family
from fleetform.config.models import ClusterConfig, NodeGroupConfig
from fleetform.constructs.node_group import (
    CAPACITY_LABEL,
    GPU_LABEL,
    GPU_TAINT_KEY,
    NODE_GROUP_LABEL,
    default_ami_type,
    is_arm,
)
from fleetform.constructs.vpc import DISCOVERY_TAG
from fleetform.naming import karpenter_node_role

NODEPOOL_API = "karpenter.sh/v1"
NODECLASS_API = "karpenter.k8s.aws/v1"
NODECLASS_GROUP = "karpenter.k8s.aws"
# nodes are replaced at least this often (the slot's AMI updates arrive through this drift)
EXPIRE_AFTER = "720h"
# vCPUs of the usual sizes; Nxlarge is 4N
_SIZE_VCPUS = {"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4, "metal": 192}


def vcpus(instance_type: str) -> int:
    """vCPUs of an instance type from its size (a planning figure for limits: metal counts 192)."""
    size = instance_type.split(".", 1)[1]
    match = re.fullmatch(r"(\d+)xlarge", size)
    if match:
        return 4 * int(match.group(1))
    if size.startswith("metal"):
        return _SIZE_VCPUS["metal"]
    return _SIZE_VCPUS.get(size, 4)


def ami_alias(group: NodeGroupConfig) -> str:
    ami_type = group.ami_type or default_ami_type(group.instance_types, group.gpu)
    family = karpenter_ami_family(ami_type)
    if family is None:  # the configuration check refuses it first (capacity_problems)
        raise ValueError(f"ami_type {ami_type!r} has no Karpenter AMI alias")
    return f"{family}@latest"


def _requirements(group: NodeGroupConfig) -> list[dict[str, Any]]:
    capacity = "spot" if group.capacity == "spot" else "on-demand"
    arch = "arm64" if any(is_arm(t) for t in group.instance_types) else "amd64"
    requirements: list[dict[str, Any]] = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": [arch]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    if group.capacity == "spot":
        families = sorted({instance_family(t) for t in group.instance_types})
        sizes = sorted({t.split(".", 1)[1] for t in group.instance_types})
        requirements += [
            {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families},
            {"key": "karpenter.k8s.aws/instance-size", "operator": "In", "values": sizes},
        ]
    else:
        requirements.append({"key": "node.kubernetes.io/instance-type", "operator": "In",
                             "values": list(group.instance_types)})
    return requirements


def _labels_and_taints(name: str, group: NodeGroupConfig) -> tuple[dict[str, str], list[dict[str, str]]]:
    labels = {NODE_GROUP_LABEL: name, CAPACITY_LABEL: group.capacity}
    taints = [{"key": t.key, **({"value": t.value} if t.value is not None else {}), "effect": t.effect}
              for t in group.taints]
    if group.gpu:
        labels[GPU_LABEL] = "true"
        if not any(t["key"] == GPU_TAINT_KEY for t in taints):
            taints.insert(0, {"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"})
    labels.update(group.labels)
    return labels, taints


def node_pool(name: str, group: NodeGroupConfig) -> dict[str, Any]:
    labels, taints = _labels_and_taints(name, group)
    spec: dict[str, Any] = {
        "nodeClassRef": {"group": NODECLASS_GROUP, "kind": "EC2NodeClass", "name": name},
        "requirements": _requirements(group),
        "expireAfter": EXPIRE_AFTER,
    }
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": NODEPOOL_API,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"labels": labels}, "spec": spec},
            "limits": {"cpu": str(group.max * max(vcpus(t) for t in group.instance_types))},
            # GPU nodes are expensive to start and stop for a few pods: only empty ones go
            "disruption": {"consolidationPolicy": "WhenEmpty" if group.gpu else "WhenEmptyOrUnderutilized",
                           "consolidateAfter": "5m" if group.gpu else "1m"},
        },
    }


def node_class(name: str, group: NodeGroupConfig, *, cluster_name: str, account: str, region: str,
               account_id: str, tags: dict[str, str]) -> dict[str, Any]:
    alias = ami_alias(group)
    volume_key = f"arn:aws:kms:{region}:{account_id}:alias/eks/{cluster_name}/volumes"
    return {
        "apiVersion": NODECLASS_API,
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {
            "role": karpenter_node_role(cluster_name),  # its EC2_LINUX access entry is the slot stack's
            "amiSelectorTerms": [{"alias": alias}],
            "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: account}}],
            "securityGroupSelectorTerms": [{"tags": {DISCOVERY_TAG: cluster_name}}],
            "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                "httpPutResponseHopLimit": 1, "httpTokens": "required"},
            "blockDeviceMappings": [{
                # Bottlerocket keeps containers on its data volume; AL2023 on the root volume
                "deviceName": "/dev/xvdb" if alias.startswith("bottlerocket") else "/dev/xvda",
                "ebs": {"volumeSize": f"{group.disk_size_gb}Gi", "volumeType": "gp3", "encrypted": True,
                        "kmsKeyID": volume_key, "deleteOnTermination": True},
            }],
            "tags": {**tags, "fleetform:node-group": name},
        },
    }


def karpenter_manifests(cluster: ClusterConfig, *, cluster_name: str, account: str, region: str,
                        account_id: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    """EC2NodeClass and NodePool of every Karpenter group, in configuration order."""
    manifests: list[dict[str, Any]] = []
    for name, group in karpenter_node_groups(cluster).items():
        manifests.append(node_class(name, group, cluster_name=cluster_name, account=account, region=region,
                                    account_id=account_id, tags=tags))
        manifests.append(node_pool(name, group))
    return manifests
