"""An EKS cluster with secure defaults: private API endpoint, secrets encrypted with a rotated KMS
key, all control-plane logs kept a year (KMS), API authentication with explicit access entries,
an OIDC provider for IRSA and managed add-ons in a fixed order around the node groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import Construct, DataSource, Dependable, Local, Resource, policy_json
from fleetform.naming import ADDONS_AFTER_NODES, ADDONS_BEFORE_NODES

__all__ = ["ADDONS_AFTER_NODES", "ADDONS_BEFORE_NODES", "AccessGrant", "EksCluster", "EksClusterProps", "grant_key"]

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_ADMIN = "AmazonEKSClusterAdminPolicy"
VIEW = "AmazonEKSViewPolicy"
AWS_MANAGED_POLICY = "arn:aws:iam::aws:policy/"
EKS_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/"
# the newest Kubernetes version checkov's CKV_AWS_339 knows; newer ones are checked by fleetform's
# configuration (a 1.NN version) and by the upgrade runbook against the EKS API
CHECKOV_NEWEST_VERSION = (1, 33)
NEWER_THAN_CHECKOV = ("checkov's list of supported EKS versions ends at 1.33; newer versions are validated by "
                      "cluster-upgrade against the EKS API (DescribeClusterVersions)")


@dataclass(frozen=True)
class AccessGrant:
    """An access entry: ``key`` is a stable id (address), ``policy`` an EKS access policy name."""

    key: str
    principal_arn: str
    policy: str
    namespaces: Sequence[str] = ()  # empty = whole cluster


@dataclass(frozen=True)
class EksClusterProps:
    name: str
    version: str
    account_id: str
    region: str
    subnet_ids: Sequence[str]  # control plane ENIs (intra subnets)
    public_access_cidrs: Sequence[str] = ()
    access: Sequence[AccessGrant] = ()
    deletion_protection: bool = False
    support_type: str = "STANDARD"
    log_retention_days: int = 365
    tags: dict[str, str] = field(default_factory=dict)


def grant_key(prefix: str, arn: str) -> str:
    """A stable construct id for an access entry from its principal ARN (``admin-platform-admin``)."""
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9-]', '-', arn.rsplit('/', 1)[-1]).lower()}"


def _newer_than_checkov(version: str) -> bool:
    return tuple(int(p) for p in version.split(".")) > CHECKOV_NEWEST_VERSION


class EksCluster(Construct):
    """Attributes: ``name``, ``arn``, ``endpoint``, ``security_group_id``, ``oidc_provider_arn``,
    ``oidc_issuer`` (host/path, no scheme), ``key_arn`` (secrets/EBS/logs key), ``cluster`` (resource).

    Call ``add_addons_before_nodes()`` then the node groups, then ``add_addons_after_nodes(groups)``.
    """

    def __init__(self, scope: Construct, id: str, props: EksClusterProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.name = props.name
        self.key = KmsKey(self, "key", KmsKeyProps(
            alias=f"eks/{props.name}", description=f"EKS {props.name}: secrets, control-plane logs",
            account_id=props.account_id, service_principals=[f"logs.{props.region}.amazonaws.com"],
            log_groups=[f"/aws/eks/{props.name}/cluster"]))
        self.key_arn = self.key.arn
        # EKS creates /aws/eks/<name>/cluster itself (unencrypted, never expiring) unless it exists first
        self.log_group = LogGroup(self, "logs", LogGroupProps(
            name=f"/aws/eks/{props.name}/cluster", kms_key_arn=self.key.arn,
            retention_days=props.log_retention_days))
        role = self._cluster_role(props)
        public = bool(props.public_access_cidrs)
        self.cluster = Resource(
            self, "cluster", "aws_eks_cluster",
            name=props.name,
            version=props.version,
            role_arn=role.arn,
            vpc_config=[{
                "subnet_ids": list(props.subnet_ids),
                "endpoint_private_access": True,
                "endpoint_public_access": public,
                "public_access_cidrs": list(props.public_access_cidrs) if public else None,
            }],
            access_config=[{"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False}],
            bootstrap_self_managed_addons=False,
            encryption_config=[{"provider": [{"key_arn": self.key.arn}], "resources": ["secrets"]}],
            enabled_cluster_log_types=list(LOG_TYPES),
            upgrade_policy=[{"support_type": props.support_type}],
            zonal_shift_config=[{"enabled": True}],
            deletion_protection=props.deletion_protection,
            tags=props.tags or None,
            depends_on=[self.log_group.group, *self._role_attachments],
            skip_checks={"CKV_AWS_339": NEWER_THAN_CHECKOV} if _newer_than_checkov(props.version) else None,
        )
        self.arn = self.cluster.arn
        self.endpoint = self.cluster.attr("endpoint")
        self.security_group_id = self.cluster.attr("vpc_config.0.cluster_security_group_id")
        issuer = self.cluster.attr("identity.0.oidc.0.issuer")
        self.oidc = Resource(self, "oidc", "aws_iam_openid_connect_provider", url=issuer,
                             client_id_list=["sts.amazonaws.com"], tags={"Name": f"{props.name}-irsa"})
        self.oidc_provider_arn = self.oidc.arn
        # a local keeps quoted literals out of the JSON policy text that refers to it
        host = f"${{replace({self.cluster.expr('identity.0.oidc.0.issuer')}, \"https://\", \"\")}}"
        self.oidc_issuer = Local(self, "oidc-issuer-host", host).ref
        self.access_entries: dict[str, Resource] = {}
        for grant in props.access:
            self.grant(grant)
        self.addons: dict[str, Resource] = {}

    def _cluster_role(self, props: EksClusterProps) -> Resource:
        role = Resource(self, "role", "aws_iam_role", name=f"{props.name}-cluster",
                        assume_role_policy=policy_json([{
                            "Effect": "Allow",
                            "Principal": {"Service": "eks.amazonaws.com"},
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                            "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
                        }]))
        self._role_attachments = [
            Resource(self, "role-cluster-policy", "aws_iam_role_policy_attachment", role=role.id_ref,
                     policy_arn=f"{AWS_MANAGED_POLICY}AmazonEKSClusterPolicy"),
            Resource(self, "role-secrets-key", "aws_iam_role_policy", role=role.id_ref, name="secrets-encryption",
                     policy=policy_json([{
                         "Sid": "EncryptSecrets",
                         "Effect": "Allow",
                         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                         "Resource": self.key.arn,
                     }])),
        ]
        return role

    def grant(self, grant: AccessGrant) -> Resource:
        """An access entry plus its policy association."""
        if grant.key in self.access_entries:
            raise ValueError(f"cluster {self.name}: access entry {grant.key!r} defined twice")
        entry = Resource(self, f"access-{grant.key}", "aws_eks_access_entry", cluster_name=self.cluster.attr("name"),
                         principal_arn=grant.principal_arn, type="STANDARD")
        scope = ({"type": "namespace", "namespaces": list(grant.namespaces)} if grant.namespaces
                 else {"type": "cluster"})
        Resource(self, f"access-{grant.key}-policy", "aws_eks_access_policy_association",
                 cluster_name=self.cluster.attr("name"), principal_arn=grant.principal_arn,
                 policy_arn=f"{EKS_ACCESS_POLICY}{grant.policy}", access_scope=[scope], depends_on=[entry])
        self.access_entries[grant.key] = entry
        return entry

    def node_access(self, key: str, role_arn: str) -> Resource:
        """An EC2_LINUX access entry: nodes with this instance role join as system:node:<name> (EKS sets the
        username and groups; such an entry takes no access policy). Only for roles that no managed node
        group uses: EKS creates the entry of a managed group's role itself, and a principal has one entry."""
        if key in self.access_entries:
            raise ValueError(f"cluster {self.name}: access entry {key!r} defined twice")
        entry = Resource(self, f"access-{key}", "aws_eks_access_entry", cluster_name=self.cluster.attr("name"),
                         principal_arn=role_arn, type="EC2_LINUX")
        self.access_entries[key] = entry
        return entry

    def addon(self, name: str, *, depends_on: Sequence[Dependable] = (),
              service_account_role_arn: str | None = None, version: str | None = None) -> Resource:
        """A managed add-on at ``version`` (a pin from the configuration), else at the newest version EKS
        publishes for the cluster's Kubernetes version: a newer one shows in the next plan as an update."""
        if version is None:
            newest = DataSource(self, f"addon-{name}-version", "aws_eks_addon_version", addon_name=name,
                                kubernetes_version=self.props.version, most_recent=True)
            version = newest.attr("version")
        addon = Resource(self, f"addon-{name}", "aws_eks_addon", cluster_name=self.cluster.attr("name"),
                         addon_name=name, addon_version=version, resolve_conflicts_on_create="OVERWRITE",
                         resolve_conflicts_on_update="OVERWRITE",
                         service_account_role_arn=service_account_role_arn,
                         depends_on=list(depends_on) or None)
        self.addons[name] = addon
        return addon

    def irsa_trust(self, namespace: str, service_account: str) -> str:
        """Trust policy for an IRSA role bound to one service account of this cluster."""
        return policy_json([{
            "Effect": "Allow",
            "Principal": {"Federated": self.oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{self.oidc_issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{self.oidc_issuer}:aud": "sts.amazonaws.com",
            }},
        }])
