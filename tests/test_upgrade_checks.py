"""Every check of `plan` and `verify`, pass and fail: against moto where it implements the API,
with botocore's Stubber on a real client where it does not (and "unknown" there, never "pass")."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from test_upgrade_support import Env, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade import checks as c
from fleetform.upgrade.checks import CheckContext, run_checks
from fleetform.upgrade.state import LocalStore, Lock
from fleetform.upgrade.target import resolve


def run(env: Env, check: c.Check, to: str = "1.36", stubs: dict | None = None, **ctx_args) -> c.CheckResult:
    """Run one check; ``stubs``: {service: [(operation, response), ...]} answered by a Stubber."""
    target = resolve(env.config, "main", "prod")
    aws = env.aws()
    ctx = CheckContext(aws, target, to, LocalStore(env.state_dir), env.clock.now(), **ctx_args)
    stubbers = []
    for service, answers in (stubs or {}).items():
        stubber = Stubber(aws.client(service))
        for operation, response in answers:
            if isinstance(response, Exception):
                stubber.add_client_error(operation, service_error_code=response.args[0], http_status_code=400)
            else:
                stubber.add_response(operation, response)
        stubber.activate()
        stubbers.append(stubber)
    try:
        [result] = run_checks([check], ctx)
    finally:
        for stubber in stubbers:
            stubber.assert_no_pending_responses()
            stubber.deactivate()
    return result


def cluster(status="ACTIVE", version="1.34", issues=()):
    return {"cluster": {"name": "prod-main-blue", "status": status, "version": version,
                        "health": {"issues": [{"code": "Ec2SubnetNotFound", "message": m} for m in issues]}}}


def test_blue_active(env: Env) -> None:
    assert run(env, c.blue_active).status == "pass"
    updating = run(env, c.blue_active, stubs={"eks": [("describe_cluster", cluster("UPDATING"))]})
    assert updating.status == "fail" and "UPDATING" in updating.detail and updating.remediation
    sick = run(env, c.blue_active, stubs={"eks": [("describe_cluster", cluster(issues=["subnet gone"]))]})
    assert sick.status == "fail" and "subnet gone" in sick.detail


def versions(status: str | None, version: str = "1.36"):
    if status is None:
        return {"clusterVersions": []}
    return {"clusterVersions": [{"clusterVersion": version, "versionStatus": status,
                                 "endOfStandardSupportDate": datetime(2027, 12, 1, tzinfo=UTC)}]}


def test_target_version_from_the_eks_api(env: Env) -> None:
    assert run(env, c.target_version).status == "unknown"  # moto lacks DescribeClusterVersions
    ok = run(env, c.target_version, stubs={"eks": [("describe_cluster_versions", versions("STANDARD_SUPPORT"))]})
    assert ok.status == "pass" and "2027-12-01" in ok.detail
    extended = run(env, c.target_version, stubs={"eks": [("describe_cluster_versions", versions("EXTENDED_SUPPORT"))]})
    assert extended.status == "warn"
    gone = run(env, c.target_version, stubs={"eks": [("describe_cluster_versions", versions("UNSUPPORTED"))]})
    assert gone.status == "fail"
    missing = run(env, c.target_version, to="1.40", stubs={"eks": [("describe_cluster_versions", versions(None))]})
    assert missing.status == "fail" and "does not offer" in missing.detail


@pytest.mark.parametrize("to, status", [("1.35", "pass"), ("1.36", "pass"), ("1.37", "fail"), ("1.34", "fail"),
                                        ("1.33", "fail")])
def test_version_jump(env: Env, to: str, status: str) -> None:
    prod = env.config_dir / "prod.yaml"
    prod.write_text(prod.read_text().replace('      green: {version: "1.36"}             # present only during '
                                             'an upgrade\n', ""))
    env.config = load_config(env.config_dir)
    assert run(env, c.version_jump, to=to).status == status


def test_version_jump_fails_against_a_configured_green_of_another_version(env: Env) -> None:
    result = run(env, c.version_jump, to="1.35")
    assert result.status == "fail" and "already has green at 1.36" in result.detail


def addons(*names):
    return {"addons": list(names)}


def addon_versions(version: str | None):
    info = {"addonName": "vpc-cni", "addonVersions": []}
    if version:
        info["addonVersions"] = [{"addonVersion": version, "compatibilities": [{"clusterVersion": "1.36"}]}]
    return {"addons": [info]}


def test_addon_versions(env: Env) -> None:
    assert run(env, c.addon_versions).status == "unknown"
    ok = run(env, c.addon_versions, stubs={"eks": [("list_addons", addons("vpc-cni", "coredns")),
                                                    ("describe_addon_versions", addon_versions("v1.20.0")),
                                                    ("describe_addon_versions", addon_versions("v1.12.0"))]})
    assert ok.status == "pass" and "2 add-on" in ok.detail
    bad = run(env, c.addon_versions, stubs={"eks": [("list_addons", addons("vpc-cni", "coredns")),
                                                     ("describe_addon_versions", addon_versions("v1.20.0")),
                                                     ("describe_addon_versions", addon_versions(None))]})
    assert bad.status == "fail" and "coredns" in bad.detail


def insights(*statuses):
    return {"insights": [{"id": f"i{n}", "name": f"insight {n}", "category": "UPGRADE_READINESS",
                          "insightStatus": {"status": s, "reason": "r"}} for n, s in enumerate(statuses)]}


def test_upgrade_insights(env: Env) -> None:
    assert run(env, c.upgrade_insights).status == "unknown"
    assert run(env, c.upgrade_insights, stubs={"eks": [("list_insights", insights("PASSING"))]}).status == "pass"
    assert run(env, c.upgrade_insights, stubs={"eks": [("list_insights", insights("WARNING"))]}).status == "warn"
    bad = run(env, c.upgrade_insights, stubs={"eks": [("list_insights", insights("PASSING", "ERROR"))]})
    assert bad.status == "fail" and "insight 1" in bad.detail


def test_node_groups(env: Env) -> None:
    ok = run(env, c.node_groups)
    assert ok.status == "pass" and "3 node group" in ok.detail
    eks = env.aws().client("eks")
    subnets = eks.describe_cluster(name="prod-main-blue")["cluster"]["resourcesVpcConfig"]["subnetIds"]
    eks.create_nodegroup(clusterName="prod-main-blue", nodegroupName="legacy",
                         nodeRole="arn:aws:iam::123456789012:role/x", subnets=subnets,
                         amiType="AL2_x86_64", instanceTypes=["m5.large"],
                         scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1})
    try:
        bad = run(env, c.node_groups)
        assert bad.status == "fail" and "legacy uses AL2_x86_64" in bad.detail
        assert run(env, c.node_groups, to="1.32").status == "pass"
    finally:
        eks.delete_nodegroup(clusterName="prod-main-blue", nodegroupName="legacy")


def test_free_ips(env: Env) -> None:
    ok = run(env, c.free_ips)
    assert ok.status == "pass" and "free in 6 subnet" in ok.detail
    eks = env.aws().client("eks")
    eks.update_nodegroup_config(clusterName="prod-main-blue", nodegroupName="app",
                                scalingConfig={"minSize": 3, "maxSize": 3000, "desiredSize": 2000})
    try:
        bad = run(env, c.free_ips)
        assert bad.status == "fail" and "needs about 60" in bad.detail
    finally:
        eks.update_nodegroup_config(clusterName="prod-main-blue", nodegroupName="app",
                                    scalingConfig={"minSize": 3, "maxSize": 100, "desiredSize": 3})


def quota(value: float, code: str):
    return {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "Value": value}}


def test_ec2_quota(env: Env) -> None:
    assert run(env, c.ec2_quota).status == "unknown"  # moto: no EC2 quotas in this region
    # blue: system 2 x m7i.large (on-demand, 2 vCPU), app 3 x m7i.xlarge (spot, 4 vCPU), gpu 0 nodes
    ok = run(env, c.ec2_quota, stubs={"service-quotas": [("get_service_quota", quota(64, "L-1216C47A")),
                                                          ("get_service_quota", quota(64, "L-34B43A08"))]})
    assert ok.status == "pass", ok.detail
    bad = run(env, c.ec2_quota, stubs={"service-quotas": [("get_service_quota", quota(64, "L-1216C47A")),
                                                           ("get_service_quota", quota(16, "L-34B43A08"))]})
    assert bad.status == "fail" and "L-34B43A08 is 16 vCPU, double capacity needs 24" in bad.detail


def test_weighted_records(env: Env) -> None:
    ok = run(env, c.weighted_records)
    assert ok.status == "pass" and "blue=100, green=0" in ok.detail
    records = env.records()
    route53 = env.aws().client("route53")
    green = {"Name": "api.familyalbum.example.", "Type": "CNAME", "SetIdentifier": "green", "Weight": 0,
             "TTL": 60, "ResourceRecords": [{"Value": "green.api.familyalbum.example"}]}
    route53.change_resource_record_sets(HostedZoneId=records.zone_id(), ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {**green, "TTL": 3600}}]})
    slow = run(env, c.weighted_records)
    assert slow.status == "warn" and "green TTL 3600" in slow.detail
    route53.change_resource_record_sets(HostedZoneId=records.zone_id(), ChangeBatch={"Changes": [
        {"Action": "DELETE", "ResourceRecordSet": {**green, "TTL": 3600}}]})
    try:
        missing = run(env, c.weighted_records)
        assert missing.status == "fail" and "no weighted record for green" in missing.detail
    finally:
        route53.change_resource_record_sets(HostedZoneId=records.zone_id(), ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": green}]})


def test_guard_alarms(env: Env) -> None:
    assert run(env, c.guard_alarms).status == "pass"
    env.set_alarm("prod-main-5xx", "INSUFFICIENT_DATA")
    assert run(env, c.guard_alarms).status == "warn"
    env.set_alarm("prod-main-5xx", "ALARM")
    firing = run(env, c.guard_alarms)
    assert firing.status == "fail" and "prod-main-5xx ALARM" in firing.detail
    prod = env.config_dir / "prod.yaml"
    prod.write_text(prod.read_text().replace("alarms: [prod-main-5xx, prod-main-latency-p99]",
                                             "alarms: [prod-main-latency-p99, prod-main-errors]"))
    env.config = load_config(env.config_dir)
    missing = run(env, c.guard_alarms)
    assert missing.status == "fail" and "missing: prod-main-errors" in missing.detail


def test_lock(env: Env) -> None:
    assert run(env, c.lock_free).status == "pass"
    Lock(LocalStore(env.state_dir), "prod-main", "carol", env.clock.now()).acquire()
    held = run(env, c.lock_free)
    assert held.status == "fail" and "carol" in held.detail
    env.clock.advance(hours=1)
    assert run(env, c.lock_free).status == "pass"


def test_caller_account(env: Env) -> None:
    assert env.runbook().plan("1.36")[0].status == "pass"
    runbook = env.runbook()
    with Stubber(runbook.aws.client("sts")) as stub:
        stub.add_response("get_caller_identity", {"Account": "444444444444", "UserId": "AIDA",
                                                  "Arn": "arn:aws:iam::444444444444:user/stg-admin"})
        result = runbook.plan("1.36")[0]
    assert result.id == "caller-account" and result.status == "fail" and "444444444444" in result.detail


# --------------------------------------------------------------------------- verify


def test_green_active(env: Env) -> None:
    assert run(env, c.green_active).status == "pass"
    wrong = run(env, c.green_active, to="1.35")
    assert wrong.status == "fail" and "runs 1.36, expected 1.35" in wrong.detail
    creating = run(env, c.green_active, stubs={"eks": [("describe_cluster", cluster("CREATING", "1.36"))]})
    assert creating.status == "fail" and "CREATING" in creating.detail


def nodegroup(name: str, status: str = "ACTIVE", desired: int = 2):
    return {"nodegroup": {"nodegroupName": name, "status": status,
                          "scalingConfig": {"minSize": 0, "maxSize": 10, "desiredSize": desired}}}


def test_green_node_groups(env: Env) -> None:
    assert run(env, c.green_node_groups).status == "pass"
    groups = {"nodegroups": ["system", "app", "gpu"]}
    small = run(env, c.green_node_groups, stubs={"eks": [
        ("list_nodegroups", groups), ("describe_nodegroup", nodegroup("system")),
        ("describe_nodegroup", nodegroup("app", desired=1)), ("describe_nodegroup", nodegroup("gpu", desired=0))]})
    assert small.status == "fail" and "app desired 1 < 3" in small.detail
    degraded = run(env, c.green_node_groups, stubs={"eks": [
        ("list_nodegroups", {"nodegroups": ["system"]}), ("describe_nodegroup", nodegroup("system", "DEGRADED"))]})
    assert degraded.status == "fail" and "system is DEGRADED" in degraded.detail and "app missing" in degraded.detail


def test_green_node_groups_found_by_label_under_their_prefixed_eks_names(env: Env) -> None:
    """node_group_name_prefix names a group "<key>-<suffix>"; the check matches it by its
    fleetform.io/node-group label, so a prefixed group is neither missing nor unknown."""
    suffix = "20261205211849123400000001"
    labelled = [nodegroup(f"{key}-{suffix}", desired=desired) for key, desired in
                (("system", 2), ("app", 1), ("gpu", 0))]
    for answer, key in zip(labelled, ("system", "app", "gpu"), strict=True):
        answer["nodegroup"]["labels"] = {"fleetform.io/node-group": key}
    result = run(env, c.green_node_groups, stubs={"eks": [
        ("list_nodegroups", {"nodegroups": [g["nodegroup"]["nodegroupName"] for g in labelled]}),
        *(("describe_nodegroup", g) for g in labelled)]})
    assert result.status == "fail" and result.detail == "app desired 1 < 3"


def test_green_addons(env: Env) -> None:
    assert run(env, c.green_addons).status == "unknown"
    ok = run(env, c.green_addons, stubs={"eks": [
        ("list_addons", addons("vpc-cni")),
        ("describe_addon", {"addon": {"addonName": "vpc-cni", "status": "ACTIVE"}})]})
    assert ok.status == "pass"
    bad = run(env, c.green_addons, stubs={"eks": [
        ("list_addons", addons("vpc-cni")),
        ("describe_addon", {"addon": {"addonName": "vpc-cni", "status": "DEGRADED"}})]})
    assert bad.status == "fail" and "vpc-cni DEGRADED" in bad.detail


@pytest.fixture
def web():
    """A local HTTP server: /healthz answers 200, anything else 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_smoke(env: Env, web: str) -> None:
    assert run(env, c.smoke).status == "warn"  # no smoke paths configured
    prod = env.config_dir / "prod.yaml"
    text = prod.read_text().replace("alarms: [prod-main-5xx, prod-main-latency-p99]",
                                    "alarms: [prod-main-5xx, prod-main-latency-p99]\n      smoke_paths: [/healthz]")
    prod.write_text(text)
    env.config = load_config(env.config_dir)
    assert run(env, c.smoke, smoke_base_url=web).status == "pass"
    prod.write_text(text.replace("smoke_paths: [/healthz]", "smoke_paths: [/healthz, /photos]"))
    env.config = load_config(env.config_dir)
    bad = run(env, c.smoke, smoke_base_url=web)
    assert bad.status == "fail" and "/photos -> 503" in bad.detail


# --------------------------------------------------------------------------- the command


def plan_cli(env: Env, *extra: str):
    return CliRunner().invoke(upgrade_cli.cli, [
        "plan", "main", "--account", "prod", "--config", str(env.config_dir), "--state-dir", str(env.state_dir),
        "--endpoint-url", env.endpoint, *extra])


def test_plan_exit_codes_and_stable_json(env: Env) -> None:
    clean = plan_cli(env, "--to", "1.36", "--output", "json")
    assert clean.exit_code == 0, clean.output
    data = json.loads(clean.stdout)
    assert list(data) == ["command", "account", "cluster", "from_slot", "to_slot", "to_version", "ok", "blocking",
                          "checks"]
    assert [ch["id"] for ch in data["checks"]] == [
        "caller-account", "blue-active", "target-version", "version-jump", "addon-versions", "upgrade-insights",
        "node-groups", "free-ips", "ec2-quota", "weighted-records", "guard-alarms", "lock"]
    assert all(list(ch) == ["id", "title", "status", "detail", "remediation"] for ch in data["checks"])
    unknown = {ch["id"] for ch in data["checks"] if ch["status"] == "unknown"}
    assert unknown == {"target-version", "addon-versions", "upgrade-insights", "ec2-quota"}
    assert plan_cli(env, "--to", "1.36", "--strict").exit_code == 1  # unknown is not a pass
    env.set_alarm("prod-main-latency-p99", "ALARM")
    blocked = plan_cli(env, "--to", "1.36", "--output", "json")
    assert blocked.exit_code == 1 and json.loads(blocked.stdout)["blocking"] == ["guard-alarms"]
    text = plan_cli(env, "--to", "1.36")
    assert text.exit_code == 1 and "guard-alarms" in text.stdout and "1 blocking" in text.stdout
    for bad in (["--to", "one.thirty"], ["--to", "1.36", "--account", "nope"]):
        usage = plan_cli(env, *bad)
        assert usage.exit_code == 2 and "Traceback" not in usage.output
