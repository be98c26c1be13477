"""Managed node groups: a launch template each (IMDSv2 only, hop limit 1, encrypted gp3 root volume
with KMS, no SSH key), on-demand, spot and NVIDIA GPU groups, node repair, and a desired size that
belongs to the autoscaler after creation unless configuration fixes it.

A change that EKS cannot make in place (instance types, capacity type, AMI type, subnets, node role)
replaces the group; the group is named by a prefix (``system-`` + a timestamp EKS-side) and created
before the old one is destroyed, so the replacement's nodes are Ready before the old ones drain
(terraform-aws-eks does the same). Kubernetes finds a group by its ``fleetform.io/node-group`` label,
AWS tooling by its ``fleetform:node-group`` tag; never by the EKS name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetform.config.checks import ARM_FAMILY
from fleetform.engine import Construct, Dependable, Resource, policy_json
from fleetform.naming import NODE_GROUP_LABEL, autoscaling_service_linked_role_arn

AWS_MANAGED_POLICY = "arn:aws:iam::aws:policy/"
# no AmazonSSMManagedInstanceCore: shell access goes through the recorded bastion, not onto nodes
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_LABEL = "nvidia.com/gpu.present"
CAPACITY_LABEL = "fleetform.io/capacity"
EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
DESIRED_SIZE = "scaling_config[0].desired_size"
# the provider appends a 26-character unique suffix to node_group_name_prefix; EKS allows 63 characters
NAME_PREFIX_MAX = 63 - 26
# a rolling update (new launch template version, AMI release, Kubernetes version) replaces this share of
# the nodes at a time: one node at a time makes a 100-node group take hours
DEFAULT_MAX_UNAVAILABLE_PERCENTAGE = 33


def is_arm(instance_type: str) -> bool:
    return bool(ARM_FAMILY.match(instance_type.split(".", 1)[0]))


AL2023_FLAVOURS = {"STANDARD": "standard", "NVIDIA": "nvidia", "NEURON": "neuron"}


def release_parameter(ami_type: str, kubernetes_version: str) -> str | None:
    """The public SSM parameter that holds the newest EKS optimized AMI release of ``ami_type`` for a
    Kubernetes version (the format ``release_version`` takes), or None for an AMI type without one."""
    parts = ami_type.split("_")
    if parts[0] == "AL2023" and len(parts) == 4 and parts[3] in AL2023_FLAVOURS:
        arch = "x86_64" if parts[1:3] == ["x86", "64"] else "arm64"
        return (f"/aws/service/eks/optimized-ami/{kubernetes_version}/amazon-linux-2023/{arch}/"
                f"{AL2023_FLAVOURS[parts[3]]}/recommended/release_version")
    if parts[0] == "BOTTLEROCKET" and parts[1] in ("x86", "ARM") and parts[3:] in ([], ["NVIDIA"]):
        arch = "x86_64" if parts[1] == "x86" else "arm64"
        variant = f"aws-k8s-{kubernetes_version}" + ("-nvidia" if parts[-1] == "NVIDIA" else "")
        return f"/aws/service/bottlerocket/{variant}/{arch}/latest/image_version"
    return None


def default_ami_type(instance_types: Sequence[str], gpu: bool) -> str:
    arm = any(is_arm(t) for t in instance_types)
    if gpu:
        return "AL2023_ARM_64_NVIDIA" if arm else "AL2023_x86_64_NVIDIA"
    return "AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD"


@dataclass(frozen=True)
class NodeRoleProps:
    cluster_name: str
    account_id: str
    name: str | None = None  # default "<cluster>-node"


class NodeRole(Construct):
    """A nodes' instance role: ``<cluster>-node`` for every managed node group of a cluster (EKS creates
    its EC2_LINUX access entry with the first group), ``naming.karpenter_node_role`` for Karpenter's
    nodes (whose access entry fleetform creates: nothing else would).

    No CNI policy here: vpc-cni gets its own IRSA role. Attributes: ``arn``, ``name``."""

    def __init__(self, scope: Construct, id: str, props: NodeRoleProps) -> None:
        super().__init__(scope, id)
        self.name = props.name or f"{props.cluster_name}-node"
        self.role = Resource(self, "role", "aws_iam_role", name=self.name,
                             assume_role_policy=policy_json([{
                                 "Effect": "Allow",
                                 "Principal": {"Service": "ec2.amazonaws.com"},
                                 "Action": "sts:AssumeRole",
                                 "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
                             }]))
        self.arn = self.role.arn
        self.attachments = [
            Resource(self, f"policy-{policy}", "aws_iam_role_policy_attachment", role=self.role.id_ref,
                     policy_arn=f"{AWS_MANAGED_POLICY}{policy}")
            for policy in NODE_POLICIES
        ]


@dataclass(frozen=True)
class NodeGroupProps:
    cluster_name: str  # a reference to the cluster's name (orders the group after the cluster)
    name: str  # the group's key in the configuration; the EKS name is "<name>-<unique suffix>"
    node_role_arn: str
    subnet_ids: Sequence[str]
    instance_types: Sequence[str]
    min_size: int
    max_size: int
    volume_kms_key_arn: str
    desired_size: int | None = None  # None: min at creation, then the autoscaler's
    capacity: str = "on-demand"  # or "spot"
    gpu: bool = False
    ami_type: str | None = None
    disk_size_gb: int = 50
    max_unavailable: int | None = None  # nodes at a time; None: max_unavailable_percentage
    max_unavailable_percentage: int = DEFAULT_MAX_UNAVAILABLE_PERCENTAGE
    release_version: str | None = None  # EKS optimized AMI release; None: the newest at creation
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[tuple[str, str | None, str]] = ()  # (key, value, effect as in Kubernetes)
    tags: Mapping[str, str] = field(default_factory=dict)
    template_name: str | None = None  # default "<cluster>-<group>" needs a plain string cluster name


class NodeGroup(Construct):
    """Attributes: ``node_group`` and ``launch_template`` (resources), ``ami_type``, ``labels``, ``taints``."""

    def __init__(self, scope: Construct, id: str, props: NodeGroupProps, *,
                 depends_on: Sequence[Dependable] = ()) -> None:
        super().__init__(scope, id)
        if props.capacity not in ("on-demand", "spot"):
            raise ValueError(f"node group {props.name}: capacity must be on-demand or spot")
        if len(props.name) + 1 > NAME_PREFIX_MAX:
            raise ValueError(f"node group {props.name}: name longer than {NAME_PREFIX_MAX - 1} characters")
        self.ami_type = props.ami_type or default_ami_type(props.instance_types, props.gpu)
        bottlerocket = self.ami_type.startswith("BOTTLEROCKET")
        tags = {"Name": props.template_name or props.name, **props.tags}
        self.launch_template = Resource(
            self, "template", "aws_launch_template",
            name=props.template_name,
            description=f"node group {props.name}: IMDSv2 only, encrypted gp3, no SSH key",
            update_default_version=True,
            metadata_options=[{"http_endpoint": "enabled", "http_tokens": "required",
                               "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"}],
            block_device_mappings=[{
                # Bottlerocket keeps containers on its data volume; AL2023 on the root volume
                "device_name": "/dev/xvdb" if bottlerocket else "/dev/xvda",
                "ebs": [{"volume_size": props.disk_size_gb, "volume_type": "gp3", "encrypted": "true",
                         "kms_key_id": props.volume_kms_key_arn, "delete_on_termination": "true"}],
            }],
            monitoring=[{"enabled": True}],
            tag_specifications=[{"resource_type": kind, "tags": tags}
                                for kind in ("instance", "volume", "network-interface")],
            tags=dict(props.tags) or None,
        )
        labels = {NODE_GROUP_LABEL: props.name, CAPACITY_LABEL: props.capacity}
        taints = list(props.taints)
        if props.gpu:
            labels[GPU_LABEL] = "true"
            if not any(key == GPU_TAINT_KEY for key, _, _ in taints):
                taints.insert(0, (GPU_TAINT_KEY, "true", "NoSchedule"))
        labels.update(props.labels)
        self.labels = labels
        self.taints = taints
        desired = props.desired_size if props.desired_size is not None else props.min_size
        self.node_group = Resource(
            self, "group", "aws_eks_node_group",
            cluster_name=props.cluster_name,
            node_group_name_prefix=f"{props.name}-",
            node_role_arn=props.node_role_arn,
            subnet_ids=list(props.subnet_ids),
            ami_type=self.ami_type,
            capacity_type="SPOT" if props.capacity == "spot" else "ON_DEMAND",
            instance_types=list(props.instance_types),
            scaling_config=[{"min_size": props.min_size, "max_size": props.max_size, "desired_size": desired}],
            release_version=props.release_version,
            update_config=[{"max_unavailable": props.max_unavailable} if props.max_unavailable is not None
                           else {"max_unavailable_percentage": props.max_unavailable_percentage}],
            node_repair_config=[{"enabled": True}],
            launch_template=[{"id": self.launch_template.id_ref,
                              "version": self.launch_template.attr("latest_version")}],
            labels=labels,
            taint=[{"key": key, "value": value, "effect": EFFECTS[effect]} for key, value, effect in taints] or None,
            tags=dict(props.tags) or None,
            depends_on=list(depends_on) or None,
            lifecycle=lifecycle(props.desired_size is None),
        )


def lifecycle(autoscaled: bool) -> dict[str, object]:
    """Replacements create the new group first; an autoscaled group's desired size is not reset."""
    rules: dict[str, object] = {"create_before_destroy": True}
    if autoscaled:
        rules["ignore_changes"] = [DESIRED_SIZE]
    return rules


def volume_key_statements(account_id: str) -> list[dict[str, object]]:
    """Key policy statements that let EC2 Auto Scaling (managed node groups) launch instances with
    volumes encrypted by a customer-managed key. KMS refuses a policy that names a role that does not
    exist: the account's baseline stack (applied before any slot) creates the service-linked role,
    unless ``organization.existing_autoscaling_service_linked_role`` says the account has it."""
    slr = autoscaling_service_linked_role_arn(account_id)
    return [
        {"Sid": "AutoScalingUsesKey", "Effect": "Allow", "Principal": {"AWS": slr},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
         "Resource": "*"},
        {"Sid": "AutoScalingGrantsToEc2", "Effect": "Allow", "Principal": {"AWS": slr},
         "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ]
