"""The sandbox proxy: what moto lacks, answered in AWS's shapes (checked against botocore's service
models, strictly: no key the model lacks, every type and enum right), and everything else forwarded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import EXAMPLE_ACCOUNTS, free_port
from model_shapes import answered_by, strict

from fleetform.aws_session import AwsError, call
from fleetform.config import load_config
from fleetform.sandbox.catalogue import Catalogue
from fleetform.sandbox.proxy import Proxy
from fleetform.upgrade import promql
from fleetform.upgrade.aws import Aws, connect

RATES: dict[str, float] = {}


@pytest.fixture(scope="module")
def proxy(moto_server: str) -> Iterator[str]:
    catalogue = Catalogue.from_config(load_config(EXAMPLE_ACCOUNTS), datetime(2026, 12, 5, tzinfo=UTC))
    server = Proxy(free_port(), moto_server, catalogue, lambda: dict(RATES)).start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def aws(proxy: str, moto_endpoint: str) -> Aws:
    return connect(None, "ap-northeast-1", proxy)


def answered(aws: Aws, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
    return answered_by(aws.client(service), operation, **kwargs)


def test_eks_answers_in_the_models_shapes(aws: Aws) -> None:
    versions = answered(aws, "eks", "describe_cluster_versions", clusterVersions=["1.36"], includeAll=True)
    [info] = versions["clusterVersions"]
    assert info["clusterVersion"] == "1.36" and info["versionStatus"] == "STANDARD_SUPPORT"
    assert info["endOfStandardSupportDate"] > datetime(2026, 12, 5, tzinfo=UTC)
    every = answered(aws, "eks", "describe_cluster_versions", includeAll=True)["clusterVersions"]
    assert {v["versionStatus"] for v in every} == {"STANDARD_SUPPORT", "EXTENDED_SUPPORT", "UNSUPPORTED"}
    addons = answered(aws, "eks", "list_addons", clusterName="prod-main-blue")["addons"]
    assert addons == sorted(["vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver"])
    addon = answered(aws, "eks", "describe_addon", clusterName="prod-main-green", addonName="coredns")["addon"]
    assert addon["status"] == "ACTIVE" and addon["addonArn"].startswith("arn:aws:eks:ap-northeast-1:")
    supported = answered(aws, "eks", "describe_addon_versions", addonName="vpc-cni", kubernetesVersion="1.36")
    assert supported["addons"][0]["addonVersions"][0]["compatibilities"][0]["clusterVersion"] == "1.36"
    assert answered(aws, "eks", "describe_addon_versions", addonName="vpc-cni",
                    kubernetesVersion="1.99")["addons"][0]["addonVersions"] == []


def test_one_insight_blocks_the_single_slot_clusters_and_describe_insight_says_why(aws: Aws) -> None:
    clear = answered(aws, "eks", "list_insights", clusterName="prod-main-blue",
                     filter={"categories": ["UPGRADE_READINESS"]})["insights"]
    assert {i["insightStatus"]["status"] for i in clear} == {"PASSING"}
    blocked = answered(aws, "eks", "list_insights", clusterName="stg-main-blue",
                       filter={"categories": ["UPGRADE_READINESS"], "statuses": ["ERROR"]})["insights"]
    assert [i["name"] for i in blocked] == ["Amazon EKS add-on version compatibility"]
    insight = answered(aws, "eks", "describe_insight", clusterName="stg-main-blue", id=blocked[0]["id"])["insight"]
    assert insight["categorySpecificSummary"]["addonCompatibilityDetails"][0]["name"] == "vpc-cni"
    with pytest.raises(AwsError, match="ResourceNotFoundException"):
        call(aws.client("eks").list_insights, clusterName="no-such-cluster")


def test_service_quotas_for_ec2_and_moto_for_the_rest(aws: Aws) -> None:
    quota = answered(aws, "service-quotas", "get_service_quota", ServiceCode="ec2", QuotaCode="L-1216C47A")["Quota"]
    assert quota["QuotaName"].startswith("Running On-Demand Standard") and quota["Value"] > 0
    listed = answered(aws, "service-quotas", "list_service_quotas", ServiceCode="ec2")["Quotas"]
    assert {q["QuotaCode"] for q in listed} >= {"L-1216C47A", "L-34B43A08", "L-DB2E81BA", "L-3819A6DF"}
    with pytest.raises(AwsError, match="NoSuchResourceException"):
        call(aws.client("service-quotas").get_service_quota, ServiceCode="ec2", QuotaCode="L-00000000")
    vpc = call(aws.client("service-quotas").get_service_quota, ServiceCode="vpc", QuotaCode="L-F678F1CE")
    assert vpc["Quota"]["QuotaCode"] == "L-F678F1CE"  # moto's own VPC defaults, through the proxy


def test_everything_else_reaches_moto(aws: Aws) -> None:
    assert aws.caller()["account"] == "123456789012"
    ec2 = aws.client("ec2")
    vpc = call(ec2.create_vpc, CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    assert [v["VpcId"] for v in call(ec2.describe_vpcs, VpcIds=[vpc])["Vpcs"]] == [vpc]
    s3 = aws.client("s3")
    call(s3.create_bucket, Bucket="proxied", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    call(s3.put_object, Bucket="proxied", Key="k", Body=b"x" * 100_000)
    assert call(s3.get_object, Bucket="proxied", Key="k")["Body"].read() == b"x" * 100_000


def test_prometheus_endpoint_answers_per_slot_through_sigv4(aws: Aws, proxy: str) -> None:
    RATES.clear()
    RATES.update({"prod-main-blue": 0.002})
    client = promql.client_for(aws.session, "ap-northeast-1", "ws-0123", proxy)
    expr = 'sum(rate(x{cluster="prod-main-blue",code=~"5.."}[5m])) / sum(rate(x{cluster="prod-main-blue"}[5m]))'
    [sample] = client.query(expr)
    assert sample.labels == {"cluster": "prod-main-blue"} and sample.value == 0.002
    assert client.query('sum(x{cluster="prod-main-green"})') == []  # serves nothing: no series
    with pytest.raises(promql.PromQLError, match="bad_data"):
        client.query("")


def test_the_strict_check_catches_what_a_lenient_parser_drops() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("eks").operation_model("ListInsights").output_shape
    good = {"insights": [{"id": "i", "insightStatus": {"status": "ERROR"}, "lastRefreshTime": 1.5}]}
    assert strict(good, model) == []
    assert strict({"insights": [{"id": "i", "severity": "high"}]}, model) == [".insights[0].severity: not in the model"]
    assert strict({"insights": [{"insightStatus": {"status": "BROKEN"}}]}, model)[0].endswith("not in "
                                                                                              "['PASSING', 'WARNING', "
                                                                                              "'ERROR', 'UNKNOWN']")


def test_a_chunked_request_reaches_moto_whole(aws: Aws, proxy: str) -> None:
    import http.client
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    call(aws.client("s3").create_bucket, Bucket="chunks",
         CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    url = f"{proxy}/chunks/k"
    request = AWSRequest(method="PUT", url=url, data=b"", headers={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(aws.session.get_credentials(), "s3", "ap-northeast-1").add_auth(request)
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    connection.putrequest("PUT", parsed.path)
    for key, value in request.headers.items():
        connection.putheader(key, value)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for piece in (b"hello ", b"chunked ", b"world"):
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    connection.send(b"0\r\n\r\n")
    assert connection.getresponse().status == 200
    connection.close()
    assert call(aws.client("s3").get_object, Bucket="chunks", Key="k")["Body"].read() == b"hello chunked world"


def test_argocd_app_info_and_the_workspace_api_for_verify(aws: Aws, proxy: str) -> None:
    """verify's argocd-synced path in the sandbox: the workspace is found by its alias (moto, through the
    proxy) and argocd_app_info for the new slot's server comes back with Argo CD's labels."""
    from fleetform.upgrade.argocd import HEALTHY, SYNCED, app_query

    amp = aws.client("amp")
    created = call(amp.create_workspace, alias="prod-ops-metrics")["workspaceId"]
    listed = call(amp.list_workspaces, alias="prod-ops-metrics")["workspaces"]
    assert [w["workspaceId"] for w in listed] == [created]
    client = promql.client_for(aws.session, "ap-northeast-1", created, proxy)
    server = "https://ABC123.gr7.ap-northeast-1.eks.amazonaws.com"
    samples = client.query(app_query(server))
    assert {s.labels["name"] for s in samples} == {"web", "sidekiq", "keda"}
    assert all(s.labels["dest_server"] == server and (s.labels["sync_status"], s.labels["health_status"])
               == (SYNCED, HEALTHY) for s in samples)
