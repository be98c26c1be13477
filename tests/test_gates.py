"""The gates' signals: the slot's ALBs found by the Load Balancer Controller's tags (moto's elbv2),
their AWS/ApplicationELB metrics (moto's CloudWatch, percentiles as the sandbox adds them), paging
of DescribeLoadBalancers / DescribeTags (Stubber: moto does not page), and the PromQL gates against
the sandbox's query endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.stub import Stubber
from conftest import free_port
from test_upgrade_support import PROMQL_RATES, Env, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.sandbox.seed import put_traffic
from fleetform.upgrade import gates
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.target import resolve

ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/k8s-web-0123456789/50dc6c495c0c9188"


def test_the_dimension_is_the_arns_tail_as_aws_documents() -> None:
    assert gates.load_balancer_dimension(ARN) == "app/k8s-web-0123456789/50dc6c495c0c9188"


def subnets(aws: Aws) -> list[str]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    return [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
            for i, z in enumerate(zones)]


def alb(aws: Aws, name: str, tags: dict[str, str], subnet_ids: list[str], kind: str = "application") -> str:
    answer = aws.client("elbv2").create_load_balancer(Name=name, Subnets=subnet_ids, Type=kind,
                                                      Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return answer["LoadBalancers"][0]["LoadBalancerArn"]


def test_the_slots_albs_are_found_by_the_controllers_tags(env: Env) -> None:
    aws = env.aws()
    ids = subnets(aws)
    seeded = gates.load_balancers(aws, "prod-main-green")  # the sandbox seeded one per slot
    extra = alb(aws, "k8s-internal-green", {gates.CLUSTER_TAG: "prod-main-green", gates.STACK_TAG: "internal"}, ids)
    alb(aws, "k8s-other-cluster", {gates.CLUSTER_TAG: "stg-main-blue", gates.STACK_TAG: "web"}, ids)
    alb(aws, "hand-made", {"team": "web"}, ids)
    alb(aws, "k8s-nlb-green", {gates.CLUSTER_TAG: "prod-main-green"}, ids, kind="network")  # not an ALB
    assert len(seeded) == 1
    assert gates.load_balancers(aws, "prod-main-green") == sorted(seeded + [extra])
    assert gates.load_balancers(aws, "prod-main-green", "internal") == [extra]
    assert gates.load_balancers(aws, "prod-main-green", "web") == seeded
    assert gates.load_balancers(aws, "prod-main-nothing") == []


def test_paging_through_many_load_balancers(env: Env) -> None:
    aws = env.aws()
    client = aws.client("elbv2")
    arns = [ARN.replace("50dc6c495c0c9188", f"{i:016x}") for i in range(25)]
    stubber = Stubber(client)
    stubber.add_response("describe_load_balancers", {"LoadBalancers": [
        {"LoadBalancerArn": a, "Type": "application"} for a in arns[:15]], "NextMarker": "page-2"}, {})
    stubber.add_response("describe_load_balancers", {"LoadBalancers": [
        {"LoadBalancerArn": a, "Type": "application"} for a in arns[15:]]}, {"Marker": "page-2"})
    stubber.add_response("describe_tags", {"TagDescriptions": [
        {"ResourceArn": a, "Tags": [{"Key": gates.CLUSTER_TAG, "Value": "stg-main-blue"}]} for a in arns[:20]]},
        {"ResourceArns": arns[:20]})
    stubber.add_response("describe_tags", {"TagDescriptions": [
        {"ResourceArn": a, "Tags": [{"Key": gates.CLUSTER_TAG, "Value": "prod-main-green"}]} for a in arns[20:]]},
        {"ResourceArns": arns[20:]})
    with stubber:
        assert gates.load_balancers(aws, "prod-main-green") == sorted(arns[20:])
        stubber.assert_no_pending_responses()


def test_measure_sums_requests_and_errors_and_takes_the_p99(env: Env) -> None:
    aws = env.aws()
    target = resolve(env.config, "main", "prod")
    now = env.clock.now()
    for minute in range(3):
        put_traffic(aws, "prod-main-green", now - timedelta(minutes=minute), 1000, 20, 250.0)
    traffic, why = gates.measure(aws, target, "green", now)
    assert why == "" and traffic is not None
    assert (traffic.requests, traffic.errors, traffic.error_rate) == (3000, 60, 0.02)
    assert traffic.latency_p99_ms == pytest.approx(250.0)  # the p99 of the response times, in ms
    old, why = gates.measure(aws, target, "green", now + timedelta(minutes=30))
    assert old is None and "no data for prod-main-green: no requests at its ALB in the last 5 min" == why


def test_a_slot_without_an_alb_has_no_data(env: Env) -> None:
    prod = env.config_dir / "prod.yaml"
    prod.write_text(prod.read_text().replace("alarms: [prod-main-5xx, prod-main-latency-p99]",
                                             "alarms: [prod-main-5xx, prod-main-latency-p99]\n"
                                             "      ingress_group: payments"))
    target = resolve(load_config(env.config_dir), "main", "prod")
    traffic, why = gates.measure(env.aws(), target, "green", env.clock.now())
    assert traffic is None and why == ("no data for prod-main-green: no ALB of IngressGroup payments tagged "
                                       "elbv2.k8s.aws/cluster=prod-main-green")


def results(env: Env, weights: dict[str, int], baseline: gates.Traffic | None = None):
    target = resolve(env.config, "main", "prod")
    return gates.promql_gates(env.aws(), target, weights, env.clock.now(), baseline)


def test_promql_gates_compare_green_with_blue(env: Env) -> None:
    [skipped], _ = results(env, {"blue": 100, "green": 0})
    assert skipped.status == gates.SKIPPED
    PROMQL_RATES.update({"prod-main-blue": 0.001, "prod-main-green": 0.002})
    [ok], blue = results(env, {"blue": 50, "green": 50})
    assert ok.name == "promql:error-ratio" and ok.status == gates.PASS and blue == {"error-ratio": 0.001}
    PROMQL_RATES["prod-main-green"] = 0.05
    [bad], _ = results(env, {"blue": 50, "green": 50})
    assert bad.status == gates.FAIL and "green 0.05 vs blue 0.001" in bad.detail
    del PROMQL_RATES["prod-main-blue"]
    [unknown], _ = results(env, {"blue": 0, "green": 100})
    assert unknown.status == gates.INCONCLUSIVE and "blue: the query gave 0 values" in unknown.detail
    PROMQL_RATES["prod-main-green"] = 0.001
    [kept], _ = results(env, {"blue": 0, "green": 100}, gates.Traffic(100, 0, 100.0, {"error-ratio": 0.001}))
    assert kept.status == gates.PASS and "baseline recorded" in kept.detail


def test_an_unreachable_workspace_is_inconclusive_never_a_pass(env: Env) -> None:
    aws = Aws(env.aws().session, "ap-northeast-1", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    target = resolve(env.config, "main", "prod")
    [result], _ = gates.promql_gates(aws, target, {"blue": 50, "green": 50}, env.clock.now())
    assert result.status == gates.INCONCLUSIVE and "cannot reach the Prometheus workspace" in result.detail


def test_run_gates_keeps_blues_promql_values_in_the_baseline(env: Env) -> None:
    env.set_weights({"blue": 50, "green": 50})
    env.traffic(env.clock.now())
    target = resolve(env.config, "main", "prod")
    found, live = gates.run_gates(env.aws(), target, {"blue": 50, "green": 50}, env.clock.now())
    assert gates.verdict(found) == gates.PASS, found
    assert live is not None and live.promql == {"error-ratio": 0.001} and live.requests == 500


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('cluster="$cluster"', 'job="rails"',
     "clusters.main.upgrade.prometheus.gates.error-ratio.query: the query must select the slot with "
     "$cluster"),
    ("workspace: ws-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "workspace: my-workspace",
     "clusters.main.upgrade.prometheus.workspace"),
    ("          error-ratio:", "          Error_Ratio:", "clusters.main.upgrade.prometheus.gates: gate "
                                                         "names are lowercase"),
    ("            margin: 0.01", "            margin: -1", "clusters.main.upgrade.prometheus.gates.error-ratio.margin"),
    ("        workspace:", "        workspaces:", "clusters.main.upgrade.prometheus.workspaces: unknown key"),
    ('blue: {version: "1.34"}\n      green: {version: "1.36"}',
     'blue: {version: "1.34", retiring: true}\n      green: {version: "1.36", retiring: true}',
     "clusters.main.slots: every slot is retiring"),
])
def test_gate_and_retire_configuration_errors_name_file_and_field(accounts_copy, old, new, expected) -> None:
    from fleetform.errors import ConfigurationError as Error

    prod = accounts_copy / "prod.yaml"
    text = prod.read_text()
    assert old in text
    prod.write_text(text.replace(old, new))
    with pytest.raises(Error) as info:
        load_config(accounts_copy)
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith(str(prod)) and expected in p for p in problems), problems
