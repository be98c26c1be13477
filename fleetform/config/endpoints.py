"""Interface VPC endpoints: which services fleetform knows, the default set, and which of them a
VPC without NAT (``nat: none``) cannot do without. One table shared by the configuration model,
the safety checks and the VPC construct.

Each interface endpoint costs an hourly fee per AZ (ap-northeast-1: $0.014, us-east-1: $0.01,
so about $10 or $7.30 a month per endpoint and AZ) plus data processing; gateway endpoints (S3,
DynamoDB) are free and always present.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

# what nodes of a private cluster, Karpenter, KEDA, Prometheus remote write (AMP) and a Session
# Manager bastion call; the default for every network, and the services a configuration may name
INTERFACE_ENDPOINTS = (
    "aps-workspaces", "autoscaling", "ec2", "ec2messages", "ecr.api", "ecr.dkr", "eks", "eks-auth",
    "elasticloadbalancing", "kms", "logs", "sqs", "ssm", "ssmmessages", "sts",
)

# Without NAT, the only way from a private subnet to an AWS API is an interface endpoint (S3 has
# its gateway endpoint). What every cluster's nodes and the add-ons fleetform installs call:
NODE_ENDPOINTS: Mapping[str, str] = {
    "ec2": "the VPC CNI attaches network interfaces and assigns pod addresses, the EBS CSI driver "
           "attaches volumes",
    "ecr.api": "registry login and image manifests, the EKS add-on images included",
    "ecr.dkr": "image pulls; the layers come through the S3 gateway endpoint",
    "sts": "IRSA credentials of the vpc-cni and aws-ebs-csi-driver add-ons, AssumeRoleWithWebIdentity",
    "logs": "node and container log agents write to CloudWatch Logs",
    "eks-auth": "EKS Pod Identity credentials of every workload role: load balancer controller, KEDA, "
                "the autoscaler, Prometheus, Loki",
}
# ... and what the cluster's autoscaler (clusters.<name>.autoscaler) calls: without it no node is added
AUTOSCALER_ENDPOINTS: Mapping[str, Mapping[str, str]] = {
    "karpenter": {
        "eks": "Karpenter reads the cluster endpoint at start with eks:DescribeCluster",
        "sqs": "Karpenter reads its interruption queue: spot interruptions, rebalance and health events",
        "ssm": "Karpenter resolves node AMI ids from the public SSM parameters",
    },
    "cluster-autoscaler": {
        "autoscaling": "Cluster Autoscaler resizes the node groups' Auto Scaling groups",
        "eks": "Cluster Autoscaler reads node group settings with eks:DescribeNodegroup",
    },
}
# what the bastion's SSM agent calls to register and carry Session Manager sessions
BASTION_ENDPOINTS: Mapping[str, str] = {
    "ssm": "the SSM agent registers the instance",
    "ssmmessages": "Session Manager session channels",
    "ec2messages": "the SSM agent's command channel",
}


def unknown_service_message(service: str) -> str | None:
    """None for a known service, otherwise what to say, with a did-you-mean where close."""
    if service in INTERFACE_ENDPOINTS:
        return None
    hint = difflib.get_close_matches(service, INTERFACE_ENDPOINTS, n=1, cutoff=0.6)
    text = f"unknown interface endpoint service {service!r}"
    if hint:
        return f"{text}; did you mean {hint[0]!r}?"
    return f"{text}; known services: {', '.join(INTERFACE_ENDPOINTS)}"


def cluster_endpoints(autoscalers: Iterable[str]) -> dict[str, str]:
    """Service -> why, for the nodes of clusters with these autoscalers in a VPC without NAT."""
    needed = dict(NODE_ENDPOINTS)
    for autoscaler in sorted(set(autoscalers)):
        for service, why in AUTOSCALER_ENDPOINTS[autoscaler].items():
            needed[service] = f"{needed[service]}; {why}" if service in needed else why
    return needed


def missing_endpoints(needed: Mapping[str, str], present: Iterable[str]) -> dict[str, str]:
    have = set(present)
    return {service: why for service, why in needed.items() if service not in have}
