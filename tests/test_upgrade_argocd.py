"""The runbook and Argo CD: ``verify``'s argocd-synced check against Argo CD's ``argocd_app_info`` in
the ops AMP workspace (a SigV4-checking Prometheus API server on 127.0.0.1, tests/test_promql.py; EKS
and AMP through botocore's Stubber on real clients), ``prepare``'s announcement, the way into the ops
account, and the refusal to run the traffic runbook on the ops cluster (decision 0005)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from fleetform.naming import ARGOCD_STATUS_ROLE, role_arn
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade.argocd import _ops_session, app_query, argocd_synced, query_client
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.checks import FAIL, PASS, WARN, CheckContext, run_checks
from fleetform.upgrade.target import resolve
from tests.test_promql import KEY, REGION, SECRET, WORKSPACE, Handler, server  # noqa: F401 - the fixture

GREEN = "https://ABCDEF0123456789.gr7.ap-northeast-1.eks.amazonaws.com"
BLUE = "https://0123456789ABCDEF.gr7.ap-northeast-1.eks.amazonaws.com"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def vector(*series: dict[str, str], value: str = "1") -> tuple[int, dict]:
    return 200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "argocd_app_info", **labels}, "value": [NOW.timestamp(), value]} for labels in series]}}


def app(name: str, sync: str = "Synced", health: str = "Healthy", server_url: str = GREEN) -> dict[str, str]:
    return {"name": name, "namespace": "argocd", "project": "default", "dest_server": server_url,
            "dest_namespace": name, "sync_status": sync, "health_status": health}


def _cluster(name: str, endpoint: str) -> dict:
    return {"name": name, "arn": f"arn:aws:eks:{REGION}:333333333333:cluster/{name}", "version": "1.36",
            "endpoint": endpoint, "status": "ACTIVE"}


@pytest.fixture
def context(server, example_config):  # noqa: F811 - pytest fixture
    """A verify context for prod/main (green) against the local workspace server; EKS and AMP stubbed."""
    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=REGION)
    aws = Aws(session, REGION, endpoint_url=server)  # loopback: the sandbox path (no role to assume)
    eks, amp = Stubber(aws.client("eks")), Stubber(aws.client("amp"))
    eks.add_response("describe_cluster", {"cluster": _cluster("prod-main-green", GREEN)},
                     {"name": "prod-main-green"})
    amp.add_response("list_workspaces", {"workspaces": [
        {"workspaceId": WORKSPACE, "alias": "prod-ops-metrics", "arn": f"arn:aws:aps:{REGION}:333333333333:"
         f"workspace/{WORKSPACE}", "status": {"statusCode": "ACTIVE"}, "createdAt": NOW}]},
        {"alias": "prod-ops-metrics"})
    eks.activate()
    amp.activate()
    target = resolve(example_config, "main", "prod")
    assert target.new_slot == "green"
    yield CheckContext(aws, target, "1.36", now=NOW)
    eks.assert_no_pending_responses()
    amp.assert_no_pending_responses()


def test_fails_until_an_application_targets_green(context):
    status, detail = argocd_synced.run(context)
    assert status == FAIL and "no Argo CD application targets prod-main-green" in detail
    # the query named green's endpoint, signed for the workspace
    assert Handler.seen[-1]["path"] == f"/workspaces/{WORKSPACE}/api/v1/query"
    assert Handler.seen[-1]["form"]["query"] == f'argocd_app_info{{dest_server="{GREEN}"}}'
    assert Handler.seen[-1]["form"]["time"] == f"{NOW.timestamp():.3f}"


def test_fails_while_any_application_is_out_of_sync_or_unhealthy(context):
    Handler.answers[app_query(GREEN)] = vector(app("web"), app("sidekiq", "OutOfSync", "Healthy"),
                                               app("cron", "Synced", "Progressing"))
    status, detail = argocd_synced.run(context)
    assert status == FAIL
    assert detail == "2 of 3 not Synced/Healthy: argocd/cron Synced/Progressing, argocd/sidekiq OutOfSync/Healthy"


def test_passes_when_every_application_on_green_is_synced_and_healthy(context):
    Handler.answers[app_query(GREEN)] = vector(app("web"), app("sidekiq"), app("cron"))
    # blue's applications are a different query: they never make green pass
    Handler.answers[app_query(BLUE)] = vector(app("web", "OutOfSync", "Degraded", BLUE))
    assert argocd_synced.run(context) == (PASS, "3 application(s) Synced and Healthy")


def test_a_workspace_error_is_unknown_never_pass(context):
    Handler.answers[app_query(GREEN)] = (403, {"message": "User is not authorized to perform aps:QueryMetrics"})
    [result] = run_checks([argocd_synced], context)
    assert result.status == "unknown" and "AccessDenied" in result.detail


def test_no_ops_cluster_or_the_ops_cluster_itself_is_a_warning(accounts_copy):
    from fleetform.config import load_config

    path = accounts_copy / "prod.yaml"
    path.write_text(path.read_text().replace("    role: ops\n", ""))
    config = load_config(accounts_copy)
    aws = Aws(boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=REGION), REGION,
              endpoint_url="http://127.0.0.1:9")
    ctx = CheckContext(aws, resolve(config, "main", "prod"), "1.36", now=NOW)
    status, detail = argocd_synced.run(ctx)
    assert status == WARN and "no ops cluster" in detail


def test_from_another_account_the_check_assumes_the_status_role_in_the_ops_account(example_config):
    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=REGION)
    aws = Aws(session, REGION)  # a real AWS endpoint (never called: stubbed)
    sts = Stubber(aws.client("sts"))
    sts.add_response("get_caller_identity", {"Account": "444444444444", "UserId": "AROA:me",
                                             "Arn": "arn:aws:sts::444444444444:assumed-role/"
                                                    "fleetform-upgrade-operator/me"})
    sts.add_response("assume_role", {
        "Credentials": {"AccessKeyId": "ASIAOPSEXAMPLE0001", "SecretAccessKey": "secret",
                        "SessionToken": "session-token-of-the-ops-role", "Expiration": NOW},
        "AssumedRoleUser": {"AssumedRoleId": "AROA:fleetform", "Arn": "arn:aws:sts::333333333333:assumed-role/x/y"}},
        {"RoleArn": role_arn("333333333333", ARGOCD_STATUS_ROLE),
         "RoleSessionName": "fleetform-cluster-upgrade-verify"})
    sts.activate()
    ctx = CheckContext(aws, resolve(example_config, "main", "stg"), "1.36", now=NOW)
    ops_session, credentials = _ops_session(ctx, "333333333333")
    assert credentials.access_key == "ASIAOPSEXAMPLE0001" and ops_session is not session
    sts.assert_no_pending_responses()


def test_query_client_finds_the_workspace_by_alias(context):
    client = query_client(context)
    assert client.url == f"{context.aws.endpoint_url}/workspaces/{WORKSPACE}"
    context.aws.client("eks").describe_cluster(name="prod-main-green")  # the fixture's pending response


def test_the_ops_status_role_trusts_operators_and_only_queries(stack_json, example_config):
    shared = stack_json("prod-ops-shared")
    roles = {r["name"]: r for r in shared["resource"]["aws_iam_role"].values()}
    trust = json.loads(roles[ARGOCD_STATUS_ROLE]["assume_role_policy"])["Statement"][0]
    accounts = sorted(a.id for a in example_config.accounts if a.spec.clusters)
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{a}:role/fleetform-upgrade-operator" for a in accounts]
    [policy] = [p for p in shared["resource"]["aws_iam_role_policy"].values() if p["name"] == "query-argocd-metrics"]
    actions = sorted(s["Action"] for s in json.loads(policy["policy"])["Statement"])
    assert actions == ["aps:ListWorkspaces", "aps:QueryMetrics"]
    [workspace] = shared["resource"]["aws_prometheus_workspace"].values()
    assert workspace["alias"] == "prod-ops-metrics"


def test_prepare_says_what_appears_in_argocd(accounts_copy):
    result = CliRunner().invoke(upgrade_cli.cli, ["prepare", "main", "--account", "stg", "--to", "1.36",
                                                  "--config", str(accounts_copy), "--output", "json"])
    assert result.exit_code == 0, result.output
    argocd = json.loads(result.output)["argocd"]
    assert argocd["cluster_secret"] == "stg-main-green"
    assert argocd["registration"].startswith("fleetform/argocd/clusters/stg-main-green ")
    assert argocd["labels"]["fleetform.io/slot"] == "green"
    assert argocd["labels"]["fleetform.io/version"] == "1.36"
    text = CliRunner().invoke(upgrade_cli.cli, ["prepare", "main", "--account", "stg", "--to", "1.36",
                                                "--config", str(accounts_copy)])
    assert "Argo CD (prod/ops): once applied, cluster stg-main-green appears" in text.output


@pytest.mark.parametrize("command", [["plan", "ops", "--to", "1.36"], ["verify", "ops"], ["shift", "ops", "--yes"],
                                     ["prepare", "ops", "--to", "1.36"]])
def test_the_ops_cluster_is_refused_with_the_manual_handover(command):
    result = CliRunner().invoke(upgrade_cli.cli, [*command, "--account", "prod"])
    assert result.exit_code == 2
    assert "clusters.ops is the ops cluster" in result.output
    assert "docs/upgrade.md#the-ops-cluster" in result.output
    assert "never both at once" in result.output
    assert "Traceback" not in result.output
