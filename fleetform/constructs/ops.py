"""The Ops cluster's account-level pieces and the roles that let it manage every service cluster.

- ``ArgoCdManagerRole`` (in every account with service clusters): ``naming.ARGOCD_MANAGER_ROLE``,
  assumable only by the ops account's ``naming.ARGOCD_ROLE``; each service slot grants it an EKS
  access entry, so a new green slot is reachable from Argo CD the moment it exists.
- ``OpsCluster`` (the ops cluster's shared stack): the Argo CD role (EKS Pod Identity), the Amazon
  Managed Service for Prometheus workspace (KMS, logging) and the role every cluster's Prometheus
  assumes to remote-write into it.

Trust policies name other accounts' roles through ``aws:PrincipalArn`` conditions on the account
principal, not as principals: IAM refuses a principal that does not exist yet, and the roles on
either side are created by stacks that must not wait for each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import Construct, Resource, policy_json
from fleetform.naming import AMP_WRITER_ROLE, ARGOCD_MANAGER_ROLE, ARGOCD_ROLE, role_arn

ACCOUNT_PRINCIPAL_REASON = ("the account principal is narrowed by an aws:PrincipalArn condition to named roles; naming "
                            "a role as principal fails while it does not exist yet and would order stacks in a cycle")
AMP_WRITER_REASON = ("each account principal is narrowed by aws:PrincipalArn to the exact Prometheus role names of "
                     "that account's own cluster slots; naming a role as principal fails while it does not exist yet")
# Argo CD components that talk to remote clusters
ARGOCD_NAMESPACE = "argocd"
ARGOCD_SERVICE_ACCOUNTS = ("argocd-application-controller", "argocd-applicationset-controller", "argocd-server")


def pod_identity_trust(account_id: str, cluster_arns: Sequence[str] = ()) -> str:
    """Trust for EKS Pod Identity roles: the pods service, for these clusters (ARN patterns) of this
    account only; EKS sets aws:SourceArn to the cluster's ARN."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if cluster_arns:
        condition["ArnLike"] = {"aws:SourceArn": list(cluster_arns)}
    return policy_json([{
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": condition,
    }])


def cross_account_trust(principal_arns_by_account: dict[str, Sequence[str]]) -> str:
    """Trust named roles (ARN patterns allowed) of other accounts without naming them as principals."""
    accounts = sorted(principal_arns_by_account)
    patterns = sorted({arn for arns in principal_arns_by_account.values() for arn in arns})
    return policy_json([{
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"ArnLike": {"aws:PrincipalArn": patterns}},
    }])


@dataclass(frozen=True)
class ArgoCdManagerProps:
    account_id: str
    region: str
    ops_account_id: str


class ArgoCdManagerRole(Construct):
    """Attributes: ``arn``, ``name`` (the deterministic ``naming.ARGOCD_MANAGER_ROLE``)."""

    def __init__(self, scope: Construct, id: str, props: ArgoCdManagerProps) -> None:
        super().__init__(scope, id)
        self.name = ARGOCD_MANAGER_ROLE
        self.role = Resource(
            self, "role", "aws_iam_role", name=ARGOCD_MANAGER_ROLE,
            description="Argo CD in the ops cluster manages this account's EKS clusters (EKS access entries)",
            assume_role_policy=cross_account_trust({props.ops_account_id: [role_arn(props.ops_account_id,
                                                                                    ARGOCD_ROLE)]}),
            max_session_duration=3600,
            skip_checks={"CKV_AWS_61": ACCOUNT_PRINCIPAL_REASON},
        )
        self.arn = self.role.arn
        Resource(self, "describe-clusters", "aws_iam_role_policy", name="describe-clusters", role=self.role.id_ref,
                 policy=policy_json([{
                     "Sid": "FindClusterEndpoints",
                     "Effect": "Allow",
                     "Action": ["eks:DescribeCluster"],
                     "Resource": f"arn:aws:eks:{props.region}:{props.account_id}:cluster/*",
                 }]))


@dataclass(frozen=True)
class OpsClusterProps:
    name: str  # "<account>-<cluster>", prefix of the resources' names
    account_id: str
    region: str
    # accounts whose clusters Argo CD manages (ARGOCD_MANAGER_ROLE in each)
    managed_account_ids: Sequence[str]
    # account id -> the Prometheus role names of its cluster slots, which write to the workspace
    metrics_roles: Mapping[str, Sequence[str]]
    log_retention_days: int = 365


class OpsCluster(Construct):
    """Attributes: ``workspace_id``, ``workspace_arn``, ``remote_write_url``, ``argocd_role_arn``,
    ``amp_writer_role_arn``."""

    def __init__(self, scope: Construct, id: str, props: OpsClusterProps) -> None:
        super().__init__(scope, id)
        key = KmsKey(self, "key", KmsKeyProps(
            alias=f"{props.name}-observability", description=f"{props.name}: metrics workspace and its logs",
            account_id=props.account_id,
            service_principals=[f"logs.{props.region}.amazonaws.com", "aps.amazonaws.com"]))
        logs = LogGroup(self, "amp-logs", LogGroupProps(
            name=f"/aws/vendedlogs/prometheus/{props.name}", kms_key_arn=key.arn,
            retention_days=props.log_retention_days))
        self.workspace = Resource(self, "amp", "aws_prometheus_workspace", alias=f"{props.name}-metrics",
                                  kms_key_arn=key.arn,
                                  logging_configuration=[{"log_group_arn": f"{logs.arn}:*"}])
        self.workspace_id = self.workspace.id_ref
        self.workspace_arn = self.workspace.arn
        self.remote_write_url = f"{self.workspace.attr('prometheus_endpoint')}api/v1/remote_write"
        self._amp_writer(props)
        self._argocd(props)

    def _amp_writer(self, props: OpsClusterProps) -> None:
        # exact names in their own account: another account's admin cannot name a role after a
        # prod slot and write prod's series
        principals = {acct: [role_arn(acct, name) for name in names]
                      for acct, names in sorted(props.metrics_roles.items()) if names}
        role = Resource(self, "amp-writer", "aws_iam_role", name=AMP_WRITER_ROLE,
                        description="Prometheus in every cluster remote-writes to the ops metrics workspace",
                        assume_role_policy=cross_account_trust(principals),
                        skip_checks={"CKV_AWS_61": AMP_WRITER_REASON})
        Resource(self, "amp-writer-policy", "aws_iam_role_policy", name="remote-write", role=role.id_ref,
                 policy=policy_json([{"Sid": "RemoteWrite", "Effect": "Allow", "Action": ["aps:RemoteWrite"],
                                      "Resource": self.workspace_arn}]))
        self.amp_writer_role_arn = role.arn

    def _argocd(self, props: OpsClusterProps) -> None:
        role = Resource(self, "argocd", "aws_iam_role", name=ARGOCD_ROLE,
                        description="Argo CD in the ops cluster (EKS Pod Identity)",
                        assume_role_policy=pod_identity_trust(props.account_id, [  # the ops cluster's slots
                            f"arn:aws:eks:{props.region}:{props.account_id}:cluster/{props.name}-*"]))
        targets = sorted({role_arn(a, ARGOCD_MANAGER_ROLE) for a in props.managed_account_ids})
        if targets:
            Resource(self, "argocd-policy", "aws_iam_role_policy", name="assume-cluster-managers",
                     role=role.id_ref,
                     policy=policy_json([{"Sid": "ManageServiceClusters", "Effect": "Allow",
                                          "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": targets}]))
        self.argocd_role_arn = role.arn
