"""What Argo CD does with the new slot: ``prepare`` says what will appear, ``verify`` waits for it.

``verify``'s ``argocd-synced`` check reads Argo CD's own metric ``argocd_app_info`` (labels ``name``,
``namespace``, ``dest_server``, ``sync_status``, ``health_status``; exported by the application
controller, remote-written by the ops cluster's Prometheus) from the ops cluster's Amazon Managed
Service for Prometheus workspace: no Kubernetes access from the operator's machine. It fails until
at least one Application targets the new slot's API endpoint and every one of them is ``Synced``
and ``Healthy``.

The workspace is found by its alias (``naming.amp_workspace_alias``) in the ops account; from another
account the check first assumes ``naming.ARGOCD_STATUS_ROLE`` there (the ops shared stack's role that
trusts every cluster account's ``naming.UPGRADE_OPERATOR_ROLE``).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.credentials import Credentials

from fleetform.aws_session import call
from fleetform.config.hub import Registration, hub_plan
from fleetform.errors import FleetformError
from fleetform.naming import ARGOCD_STATUS_ROLE, amp_workspace_alias, role_arn
from fleetform.upgrade import promql
from fleetform.upgrade.checks import FAIL, PASS, WARN, CheckContext, Outcome, _check
from fleetform.upgrade.target import Target

METRIC = "argocd_app_info"
SYNCED, HEALTHY = "Synced", "Healthy"
SESSION_NAME = "fleetform-cluster-upgrade-verify"


def app_query(server: str) -> str:
    """Argo CD's applications whose destination is ``server`` (one series per application)."""
    return f'{METRIC}{{dest_server="{server}"}}'


def argocd_preview(target: Target, version: str) -> dict[str, Any] | None:
    """What ``prepare`` announces: the registration the new slot's stack writes and how Argo CD sees it."""
    plan = hub_plan(target.config)
    if plan is None or target.cluster.role != "service":
        return None
    slot = target.new_slot
    registration = Registration(stack=target.eks_name(slot), account=target.account.name,
                                account_id=target.account.id, region=target.region, cluster=target.cluster_key,
                                slot=slot, version=version)
    name = registration.cluster_name
    return {
        "cluster_secret": name,
        "registration": f"{registration.secret_name} (Secrets Manager, account {plan.ops_account.name})",
        "ops_cluster": f"{plan.ops_account.name}/{plan.ops_cluster}",
        "labels": registration.labels,
        "selector": f"fleetform.io/cluster={target.cluster_key},fleetform.io/slot={slot}",
        "metric": f'{METRIC}{{dest_server="<{name} endpoint>"}}',
    }


def _ops_session(ctx: CheckContext, ops_account_id: str | None) -> tuple[Any, Credentials]:
    """A session that may query the ops workspace: the caller's own in the ops account (and in the
    sandbox, where every account is moto's one), else ARGOCD_STATUS_ROLE assumed in the ops account."""
    aws = ctx.aws
    if not ops_account_id:
        raise FleetformError("the ops account has no id in its file yet: write it (docs/organization.md)")
    if aws.sandbox or aws.caller()["account"] == ops_account_id:
        credentials = aws.session.get_credentials()
        if credentials is None:
            raise FleetformError("no AWS credentials to query the ops metrics workspace")
        return aws.session, credentials
    assumed = call(aws.client("sts").assume_role, RoleArn=role_arn(ops_account_id, ARGOCD_STATUS_ROLE),
                   RoleSessionName=SESSION_NAME)["Credentials"]
    session = boto3.Session(aws_access_key_id=assumed["AccessKeyId"], aws_secret_access_key=assumed["SecretAccessKey"],
                            aws_session_token=assumed["SessionToken"], region_name=aws.region)
    credentials = session.get_credentials()
    assert credentials is not None  # given explicitly above
    return session, credentials


def _workspace_id(ctx: CheckContext, session: Any, alias: str) -> str:
    aws = ctx.aws
    amp = aws.client("amp") if session is aws.session else session.client(
        "amp", region_name=aws.region, endpoint_url=aws.endpoint_url)
    found = call(amp.list_workspaces, alias=alias)["workspaces"]
    active = [w for w in found if w.get("alias") == alias and w.get("status", {}).get("statusCode") == "ACTIVE"]
    if not active:
        raise FleetformError(f"no ACTIVE AMP workspace with alias {alias!r} in the ops account")
    return active[0]["workspaceId"]


def query_client(ctx: CheckContext) -> promql.PromQLClient:
    plan = hub_plan(ctx.target.config)
    assert plan is not None
    session, credentials = _ops_session(ctx, plan.ops_account.id)
    workspace = _workspace_id(ctx, session, amp_workspace_alias(plan.ops_account.name, plan.ops_cluster))
    url = promql.workspace_url(workspace, ctx.aws.region, ctx.aws.endpoint_url)
    return promql.PromQLClient(url, ctx.aws.region, credentials)


@_check("argocd-synced", "Argo CD applications on the new slot Synced and Healthy",
        "see the applications in Argo CD (ops cluster): a missing one means the slot's registration has not "
        "reached Argo CD yet (External Secrets) or no ApplicationSet selects its labels; fix OutOfSync or "
        "Degraded ones before moving traffic",
        "eks:DescribeCluster", "aps:ListWorkspaces", "aps:QueryMetrics", "sts:AssumeRole")
def argocd_synced(ctx: CheckContext) -> Outcome:
    if ctx.target.cluster.role != "service":
        return WARN, "not a service cluster: Argo CD deploys nothing to it"
    if hub_plan(ctx.target.config) is None:
        return WARN, "no ops cluster in the configuration: workloads on the new slot are not checked"
    server = ctx.cluster(ctx.target.new_slot)["endpoint"]
    samples = query_client(ctx).query(app_query(server), ctx.now)
    apps: dict[str, tuple[str, str]] = {}
    for sample in samples:
        if sample.is_nan:
            continue
        key = f"{sample.labels.get('namespace', '')}/{sample.labels.get('name', '?')}".lstrip("/")
        apps[key] = (sample.labels.get("sync_status", "Unknown"), sample.labels.get("health_status", "Unknown"))
    if not apps:
        return FAIL, (f"no Argo CD application targets {ctx.target.eks_name(ctx.target.new_slot)} ({server}) yet")
    behind = sorted(f"{name} {sync}/{health}" for name, (sync, health) in apps.items()
                    if (sync, health) != (SYNCED, HEALTHY))
    if behind:
        return FAIL, f"{len(behind)} of {len(apps)} not Synced/Healthy: {', '.join(behind)}"
    return PASS, f"{len(apps)} application(s) Synced and Healthy"


ARGOCD_CHECKS = [argocd_synced]
