"""EKS clusters: a shared stack per cluster and a stack per cluster slot.

- ``<account>-<cluster>-shared`` (``naming.cluster_shared_stack``): what must outlive a slot:
  Loki's log bucket; for the ops cluster also the AMP workspace, the Argo CD role and the role
  every cluster's Prometheus assumes to write into the workspace.
- ``<account>-<cluster>-<slot>`` (``naming.slot_stack``, also the EKS cluster name): the cluster,
  its node groups, add-ons, access entries, workload identities and the slot's weighted record.
"""

from __future__ import annotations

from fleetform.config.models import Account, ClusterConfig, FleetConfig, SlotConfig
from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.dns import HostedZone, WeightedRecord, WeightedRecordProps
from fleetform.constructs.eks_cluster import (
    ADDONS_AFTER_NODES,
    ADDONS_BEFORE_NODES,
    CLUSTER_ADMIN,
    VIEW,
    AccessGrant,
    EksCluster,
    EksClusterProps,
    grant_key,
)
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.node_group import (
    DEFAULT_MAX_UNAVAILABLE_PERCENTAGE,
    NodeGroup,
    NodeGroupProps,
    NodeRole,
    NodeRoleProps,
    default_ami_type,
    release_parameter,
    volume_key_statements,
)
from fleetform.constructs.ops import ARGOCD_NAMESPACE, ARGOCD_SERVICE_ACCOUNTS, OpsCluster, OpsClusterProps
from fleetform.constructs.workload_identity import SERVICE_ACCOUNTS, WorkloadIdentities, WorkloadIdentityProps
from fleetform.engine import DataSource, Resource, output
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    AMP_WRITER_ROLE,
    ARGOCD_MANAGER_ROLE,
    ARGOCD_ROLE,
    BASTION_ROLE,
    NODE_GROUP_TAG,
    cluster_shared_stack,
    dns_stack,
    karpenter_node_role,
    network_stack,
    role_arn,
    slot_stack,
)
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp

OpsRef = tuple[Account, str, ClusterConfig]  # the ops cluster's account, name and configuration

LOKI_LOG_REASON = "Loki's chunks are read and written by one Pod Identity role; CloudTrail records the API calls"
PROD_OU_SEGMENTS = ("prod", "production")


def find_ops_cluster(config: FleetConfig) -> OpsRef | None:
    """The one ``role: ops`` cluster (the configuration checks allow at most one)."""
    for account in config.accounts:
        for name, cluster in account.spec.clusters.items():
            if cluster.role == "ops":
                return account, name, cluster
    return None


def is_production(account: Account) -> bool:
    """An account in an OU path with a ``Prod`` segment (``Workloads/Prod``; not ``NonProd``)."""
    ou = account.spec.account.ou or ""
    return any(part.lower() in PROD_OU_SEGMENTS for part in ou.split("/"))


def initial_weight(cluster: ClusterConfig, slot: str, settings: SlotConfig) -> int:
    """The slot's configured weight; else 100 for blue (or a cluster's only slot), 0 for green."""
    if settings.weight is not None:
        return settings.weight
    return 100 if slot == "blue" or len(cluster.slots) == 1 else 0


def build(fleet: FleetApp) -> None:
    config = fleet.config
    ops = find_ops_cluster(config)
    for account in config.accounts:
        for name, cluster in account.spec.clusters.items():
            shared = _shared_stack(fleet, account, name, cluster, ops)
            for slot, settings in cluster.slots.items():
                _slot_stack(fleet, account, name, cluster, slot, settings, shared, ops)


def _target(fleet: FleetApp, account: Account) -> StackTarget:
    return StackTarget(fleet.account_id(account), fleet.config.region_of(account))


def _shared_stack(fleet: FleetApp, account: Account, name: str, cluster: ClusterConfig,
                  ops: OpsRef | None) -> FleetStack:
    config = fleet.config
    region = config.region_of(account)
    stack = FleetStack(fleet.app, cluster_shared_stack(account.name, name), config, _target(fleet, account),
                       description=f"what outlives the slots of cluster {account.name}/{name}")
    prefix = f"{account.name}-{name}"
    loki_key = KmsKey(stack, "loki-key", KmsKeyProps(alias=f"{prefix}-loki", description=f"Loki logs of {prefix}",
                                                     account_id=stack.account_id))
    loki = SecureBucket(stack, "loki", BucketProps(
        name=f"{config.organization.name}-{stack.account_id}-{name}-loki", kms_key_arn=loki_key.arn,
        transition_days=30, expiration_days=400, access_log_reason=LOKI_LOG_REASON))
    stack.loki_bucket = loki  # type: ignore[attr-defined]
    stack.loki_key = loki_key  # type: ignore[attr-defined]
    stack.ops = None  # type: ignore[attr-defined]
    if cluster.role == "ops":
        service_accounts = sorted({fleet.account_id(a) for a in config.accounts
                                   if any(c.role == "service" for c in a.spec.clusters.values())})
        cluster_accounts = sorted({fleet.account_id(a) for a in config.accounts if a.spec.clusters})
        stack.ops = OpsCluster(stack, "ops", OpsClusterProps(  # type: ignore[attr-defined]
            name=prefix, account_id=stack.account_id, region=region, managed_account_ids=service_accounts,
            metrics_account_ids=cluster_accounts))
        output(stack, "amp_remote_write_url", stack.ops.remote_write_url,  # type: ignore[attr-defined]
                        description="Prometheus remote_write URL (sigv4, through the AMP writer role)")
        output(stack, "amp_writer_role_arn", stack.ops.amp_writer_role_arn)  # type: ignore[attr-defined]
    output(stack, "loki_bucket", loki.name)
    return fleet.add(stack, depends_on=[network_stack(account.name)])


def _access(account: Account, account_id: str, cluster: ClusterConfig, ops: OpsRef | None) -> list[AccessGrant]:
    """Who may use the cluster, first grant per principal wins (EKS allows one entry per principal)."""
    grants = [AccessGrant("pipeline", role_arn(account_id, ACCOUNT_APPLY_ROLE), CLUSTER_ADMIN)]
    if cluster.role == "service" and ops is not None:
        grants.append(AccessGrant("argocd", role_arn(account_id, ARGOCD_MANAGER_ROLE), CLUSTER_ADMIN))
    bastion = account.spec.bastion
    if bastion is not None:
        grants.append(AccessGrant("bastion", role_arn(account_id, BASTION_ROLE), bastion.access_policy))
    grants += [AccessGrant(grant_key("admin", arn), arn, CLUSTER_ADMIN) for arn in cluster.admins]
    if bastion is not None:
        # view, not edit: AmazonEKSEditPolicy includes pods/exec, which developers must not have
        grants += [AccessGrant(grant_key("developer", arn), arn, VIEW) for arn in bastion.developer_roles]
    seen: set[str] = set()
    unique = []
    for grant in grants:
        if grant.principal_arn not in seen:
            seen.add(grant.principal_arn)
            unique.append(grant)
    return unique


def _slot_stack(fleet: FleetApp, account: Account, name: str, cluster: ClusterConfig, slot: str,
                settings: SlotConfig, shared: FleetStack, ops: OpsRef | None) -> None:
    config = fleet.config
    region = config.region_of(account)
    cluster_name = slot_stack(account.name, name, slot)
    stack = FleetStack(fleet.app, cluster_name, config, _target(fleet, account),
                       description=f"EKS cluster {cluster_name} ({cluster.role}, Kubernetes {settings.version})")
    vpc = fleet.stacks[network_stack(account.name)].vpc  # type: ignore[attr-defined]
    tags = {"fleetform:cluster": f"{account.name}-{name}", "fleetform:slot": slot}
    eks = EksCluster(stack, "eks", EksClusterProps(
        name=cluster_name, version=settings.version, account_id=stack.account_id, region=region,
        subnet_ids=vpc.subnet_ids["intra"], public_access_cidrs=tuple(cluster.public_access_cidrs),
        access=tuple(_access(account, stack.account_id, cluster, ops)),
        deletion_protection=(cluster.deletion_protection if cluster.deletion_protection is not None
                             else is_production(account)),
        support_type=cluster.support_type, tags=tags))
    cluster_ref = eks.cluster.attr("name")
    Resource(stack, "karpenter-discovery-sg-tag", "aws_ec2_tag", resource_id=eks.security_group_id,
             key="karpenter.sh/discovery", value=cluster_name)
    volume_key = KmsKey(stack, "volume-key", KmsKeyProps(
        alias=f"eks/{cluster_name}/volumes", description=f"EKS {cluster_name}: node and persistent volumes",
        account_id=stack.account_id, extra_statements=tuple(volume_key_statements(stack.account_id))))
    node_role = NodeRole(stack, "node-role", NodeRoleProps(cluster_name=cluster_name, account_id=stack.account_id))
    # Karpenter's nodes get a role of their own with an explicit EC2_LINUX entry: sharing the managed groups'
    # role joined them only through the entry EKS makes for those groups (gone with the last group)
    launched_role = node_role
    if cluster.autoscaler == "karpenter":
        launched_role = NodeRole(stack, "karpenter-node-role", NodeRoleProps(
            cluster_name=cluster_name, account_id=stack.account_id, name=karpenter_node_role(cluster_name)))
        eks.node_access("karpenter-nodes", launched_role.arn)

    shared_loki = shared.loki_bucket  # type: ignore[attr-defined]
    zone = _zone(fleet, account)
    identities = WorkloadIdentities(stack, "identity", WorkloadIdentityProps(
        cluster_name=cluster_name, cluster_name_ref=cluster_ref, cluster_arn=eks.arn, account_id=stack.account_id,
        region=region, vpc_id=vpc.vpc_id, node_role_arn=launched_role.arn, node_role_name=launched_role.name,
        volume_kms_key_arn=volume_key.arn, autoscaler=cluster.autoscaler,
        hosted_zone_arn=zone.arn if zone is not None else None,
        amp_writer_role_arn=role_arn(fleet.account_id(ops[0]), AMP_WRITER_ROLE) if ops is not None else None,
        loki_bucket_arn=shared_loki.arn, loki_kms_key_arn=shared.loki_key.arn))  # type: ignore[attr-defined]
    cni_role = identities.irsa("vpc-cni", eks.irsa_trust(*SERVICE_ACCOUNTS["vpc-cni"]), ["AmazonEKS_CNI_Policy"])
    ebs_role = identities.irsa("ebs-csi", eks.irsa_trust(*SERVICE_ACCOUNTS["ebs-csi"]),
                               ["service-role/AmazonEBSCSIDriverPolicy"],
                               [{"Sid": "EncryptedVolumes", "Effect": "Allow", "Resource": volume_key.arn,
                                 "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", "kms:Encrypt",
                                            "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                            "kms:DescribeKey"],
                                 "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{region}.amazonaws.com"}}}])
    before = [eks.addon(addon, service_account_role_arn=cni_role.arn if addon == "vpc-cni" else None,
                        version=settings.addon_versions.get(addon))
              for addon in ADDONS_BEFORE_NODES]
    groups = []
    releases = AmiReleases(stack, settings)
    for group_name, group in cluster.node_groups.items():
        ami_type = group.ami_type or default_ami_type(group.instance_types, group.gpu)
        groups.append(NodeGroup(stack, f"nodes-{group_name}", NodeGroupProps(
            cluster_name=cluster_ref, name=group_name, node_role_arn=node_role.arn,
            subnet_ids=vpc.subnet_ids["private"], instance_types=tuple(group.instance_types),
            min_size=group.min, max_size=group.max, desired_size=group.desired, volume_kms_key_arn=volume_key.arn,
            capacity=group.capacity, gpu=group.gpu, ami_type=ami_type, release_version=releases.of(ami_type),
            disk_size_gb=group.disk_size_gb,
            max_unavailable=group.max_unavailable,
            max_unavailable_percentage=group.max_unavailable_percentage or DEFAULT_MAX_UNAVAILABLE_PERCENTAGE,
            labels=dict(group.labels),
            taints=tuple((t.key, t.value, t.effect) for t in group.taints),
            tags={**tags, NODE_GROUP_TAG: group_name}, template_name=f"{cluster_name}-{group_name}",
        ), depends_on=[*before, *node_role.attachments]))
    for addon in ADDONS_AFTER_NODES:
        eks.addon(addon, depends_on=[g.node_group for g in groups], version=settings.addon_versions.get(addon),
                  service_account_role_arn=ebs_role.arn if addon == "aws-ebs-csi-driver" else None)
    if cluster.role == "ops":
        for service_account in ARGOCD_SERVICE_ACCOUNTS:
            Resource(stack, f"argocd-{service_account}", "aws_eks_pod_identity_association",
                     cluster_name=cluster_ref, namespace=ARGOCD_NAMESPACE, service_account=service_account,
                     role_arn=role_arn(stack.account_id, ARGOCD_ROLE))
    depends = [network_stack(account.name), shared.stack_name]
    if cluster.hostname is not None and zone is not None:
        WeightedRecord(stack, "dns", WeightedRecordProps(
            zone_id=zone.zone_id, hostname=cluster.hostname, slot=slot,
            weight=initial_weight(cluster, slot, settings), wait_for_target=len(cluster.slots) == 1))
        depends.append(dns_stack(account.name))
    stack.eks = eks  # type: ignore[attr-defined]
    stack.node_groups = groups  # type: ignore[attr-defined]
    stack.identities = identities  # type: ignore[attr-defined]
    _outputs(stack, eks, node_role, launched_role, identities)
    fleet.add(stack, depends_on=depends)


class AmiReleases:
    """The AMI release of each AMI type in a slot: the configuration's pin, else the newest release in AWS's
    public SSM parameter for the slot's Kubernetes version (one data source per AMI type; the plan shows
    a newer release as an in-place, rolling update of the node groups of that type)."""

    def __init__(self, stack: FleetStack, settings: SlotConfig) -> None:
        self.stack = stack
        self.settings = settings
        self.parameters: dict[str, DataSource] = {}

    def of(self, ami_type: str) -> str | None:
        if ami_type in self.settings.ami_releases:
            return self.settings.ami_releases[ami_type]
        name = release_parameter(ami_type, self.settings.version)
        if name is None:
            return None  # EKS takes the newest release at creation; nothing moves it later
        if ami_type not in self.parameters:
            # insecure_value: a String parameter, readable in the plan (value is marked sensitive)
            self.parameters[ami_type] = DataSource(self.stack, f"ami-release-{ami_type.lower()}",
                                                   "aws_ssm_parameter", name=name)
        return self.parameters[ami_type].attr("insecure_value")


def _zone(fleet: FleetApp, account: Account) -> HostedZone | None:
    """The account's hosted zone (its dns stack is built before the clusters), if it has one."""
    dns = fleet.stacks.get(dns_stack(account.name))
    return getattr(dns, "zone", None) if dns is not None else None


def _outputs(stack: FleetStack, eks: EksCluster, node_role: NodeRole, launched_role: NodeRole,
             identities: WorkloadIdentities) -> None:
    """What Helm values and the runbook look up after an apply."""
    output(stack, "cluster_name", eks.name)
    output(stack, "cluster_arn", eks.arn)
    output(stack, "cluster_endpoint", eks.endpoint)
    output(stack, "cluster_security_group_id", eks.security_group_id)
    output(stack, "oidc_provider_arn", eks.oidc_provider_arn)
    output(stack, "node_role_name", launched_role.name,
           description="Karpenter EC2NodeClass spec.role (its EC2_LINUX access entry is in this stack)")
    output(stack, "node_group_role_name", node_role.name, description="the managed node groups' instance role")
    if identities.interruption_queue is not None:
        output(stack, "karpenter_interruption_queue", identities.interruption_queue.attr("name"))
