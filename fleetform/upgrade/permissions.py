"""Every check and step declares the IAM actions it calls; the union is the operator's policy.

``declare(name, *actions)`` registers a step; ``iam_action(service, operation)`` maps a boto3
call to the IAM action that authorizes it (a test records every call the suite makes and checks
each is declared). ``policy(...)`` prints the least-privilege document, scoped to an account's
clusters, hostnames, alarms and state bucket when given.
"""

from __future__ import annotations

from typing import Any

from fleetform.naming import ARGOCD_STATUS_ROLE

REGISTRY: dict[str, tuple[str, ...]] = {}

# boto3 service name -> IAM prefix, where they differ
_PREFIX = {"service-quotas": "servicequotas", "elbv2": "elasticloadbalancing", "amp": "aps"}
# operations whose IAM action has another name
_S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "HeadBucket": "ListBucket",
               "GetBucketEncryption": "GetEncryptionConfiguration"}


def declare(name: str, *actions: str) -> tuple[str, ...]:
    """Register the IAM actions that the step or check ``name`` calls; returns them."""
    REGISTRY[name] = tuple(sorted(set(REGISTRY.get(name, ())) | set(actions)))
    return REGISTRY[name]


def iam_action(service: str, operation: str) -> str:
    prefix = _PREFIX.get(service, service)
    if prefix == "s3":
        operation = _S3_ACTIONS.get(operation, operation)
    return f"{prefix}:{operation}"


def all_actions() -> list[str]:
    return sorted({a for actions in REGISTRY.values() for a in actions})


def policy(scope: PolicyScope | None = None) -> dict[str, Any]:
    """The least-privilege IAM policy for an operator of the runbook."""
    _load_all()
    actions = all_actions()
    scope = scope or PolicyScope()
    statements: list[dict[str, Any]] = []
    claimed: set[str] = set()

    def add(sid: str, wanted: list[str], resources: list[str], condition: dict | None = None) -> None:
        mine = [a for a in wanted if a in actions and a not in claimed]
        if not mine:
            return
        claimed.update(mine)
        statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": mine, "Resource": resources}
        if condition:
            statement["Condition"] = condition
        statements.append(statement)

    eks = [a for a in actions if a.startswith("eks:")]
    if scope.cluster_prefixes:
        add("EksClustersOfTheUpgrade", [a for a in eks if a not in _EKS_UNSCOPED],
            [arn for p in scope.cluster_prefixes for arn in (
                f"arn:aws:eks:{scope.region}:{scope.account_id}:cluster/{p}-*",
                f"arn:aws:eks:{scope.region}:{scope.account_id}:nodegroup/{p}-*/*/*",
                f"arn:aws:eks:{scope.region}:{scope.account_id}:addon/{p}-*/*/*")])
    if scope.hostnames:
        add("WeightedRecordsOfTheUpgrade", ["route53:ChangeResourceRecordSets"], ["arn:aws:route53:::hostedzone/*"],
            {"ForAllValues:StringEquals": {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": sorted(scope.hostnames),
                "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
                "route53:ChangeResourceRecordSetsActions": ["UPSERT"]}})
    if scope.hostnames or scope.cluster_prefixes:
        add("ReadRecordsAndChanges", ["route53:ListResourceRecordSets"], ["arn:aws:route53:::hostedzone/*"])
        add("FollowChanges", ["route53:GetChange"], ["arn:aws:route53:::change/*"])
    if scope.alarms:
        add("GuardAlarms", ["cloudwatch:DescribeAlarms"],
            [f"arn:aws:cloudwatch:{scope.region}:{scope.account_id}:alarm:{a}" for a in sorted(scope.alarms)])
    if scope.workspaces:
        add("PromQLGates", ["aps:QueryMetrics"], sorted(set(scope.workspaces)))
    if scope.query_roles:
        add("PromQLGatesWorkspaceRole", ["sts:AssumeRole"], sorted(scope.query_roles))
    if scope.scoped:
        # no PromQL gates configured (or not through a role): grant neither
        claimed.update(a for a in actions if a in ("aps:QueryMetrics", "sts:AssumeRole"))
    if scope.scoped and not scope.state_bucket:
        # local state records and audit log: no S3, no KMS needed
        claimed.update(a for a in actions if a.startswith(("s3:", "kms:")))
    if scope.state_bucket:
        objects = f"arn:aws:s3:::{scope.state_bucket}/fleetform/upgrades"
        add("StateRecordsAndAuditEntries", ["s3:GetObject", "s3:PutObject"], [f"{objects}/*"])
        # only locks are ever deleted: audit entries (fleetform/upgrades/audit/.../*.json) cannot be
        add("ReleaseLocks", ["s3:DeleteObject"], [f"{objects}/*.lock"])
        add("StateRecordBucket", ["s3:ListBucket", "s3:GetEncryptionConfiguration"],
            [f"arn:aws:s3:::{scope.state_bucket}"])
        # SSE-KMS objects: the bucket's key, through S3 only, for this bucket's objects only
        add("StateBucketKeyThroughS3", ["kms:Decrypt", "kms:GenerateDataKey"],
            ["arn:aws:kms:*:*:key/*"],
            {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com",
                            "kms:EncryptionContext:aws:s3:arn": [f"arn:aws:s3:::{scope.state_bucket}",
                                                                 f"{objects}/*"]}})
    # verify's argocd-synced check: Argo CD's metrics in the ops account's workspace (fleetform.upgrade.argocd)
    add("ArgoCdStatusInTheOpsAccount", ["sts:AssumeRole"], [f"arn:aws:iam::*:role/{ARGOCD_STATUS_ROLE}"])
    add("QueryMetricsWorkspaces", ["aps:QueryMetrics"], [f"arn:aws:aps:{scope.region}:*:workspace/*"])
    # the rest: read-only APIs that take no resource ARN (or none known before the call)
    add("ReadOnlyWithoutResourceScope", [a for a in actions if a not in claimed], ["*"])
    return {"Version": "2012-10-17", "Statement": statements}


# EKS actions that IAM authorizes only on "*"
_EKS_UNSCOPED = {"eks:DescribeClusterVersions", "eks:DescribeAddonVersions", "eks:ListClusters"}


class PolicyScope:
    """What to scope the policy to (everything optional: unscoped means Resource "*")."""

    def __init__(self, account_id: str = "*", region: str = "*", cluster_prefixes: list[str] | None = None,
                 hostnames: list[str] | None = None, alarms: list[str] | None = None,
                 state_bucket: str | None = None, workspaces: list[str] | None = None,
                 query_roles: list[str] | None = None) -> None:
        self.account_id = account_id
        self.region = region
        self.cluster_prefixes = cluster_prefixes or []
        self.hostnames = hostnames or []
        self.alarms = alarms or []
        self.state_bucket = state_bucket
        self.workspaces = workspaces or []  # ARNs of the AMP workspaces that PromQL gates query
        self.query_roles = query_roles or []

    @property
    def scoped(self) -> bool:
        return self.account_id != "*"


def _load_all() -> None:
    """Import every module that declares actions (declarations run at import)."""
    from fleetform.upgrade import argocd, checks, gates, runbook, state, weights  # noqa: F401
