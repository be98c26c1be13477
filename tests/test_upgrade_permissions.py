"""`cluster-upgrade permissions`: the declared IAM actions cover every AWS call the runbook makes.

Calls are recorded through botocore's event hooks on the runbook's own clients (every upgrade
test adds to the record); this module also runs every phase itself so that it holds alone.
"""

from __future__ import annotations

import json

from botocore.stub import Stubber
from click.testing import CliRunner
from parliament import analyze_policy_string
from test_upgrade_state import BUCKET
from test_upgrade_support import CALLS, Env, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.config import load_config
from fleetform.scripts import upgrade as upgrade_cli
from fleetform.upgrade.permissions import all_actions, iam_action, policy
from fleetform.upgrade.runbook import Options, Runbook
from fleetform.upgrade.state import S3AuditLog, S3Store
from fleetform.upgrade.target import resolve


def _every_phase(env: Env) -> None:
    env.traffic_every(30)
    runbook = env.runbook(yes=True, ttl_wait=True)
    runbook.plan("1.36")
    runbook.verify()
    eks = runbook.aws.client("eks")
    with Stubber(eks) as stub:  # the EKS APIs moto lacks, answered by the Stubber
        stub.add_response("describe_cluster_versions", {"clusterVersions": [
            {"clusterVersion": "1.36", "versionStatus": "STANDARD_SUPPORT"}]})
        stub.add_response("list_addons", {"addons": ["vpc-cni"]})
        stub.add_response("describe_addon_versions", {"addons": [{"addonName": "vpc-cni",
                                                                  "addonVersions": [{"addonVersion": "v1"}]}]})
        stub.add_response("list_insights", {"insights": []})
        stub.add_response("list_addons", {"addons": ["vpc-cni"]})
        stub.add_response("describe_addon", {"addon": {"addonName": "vpc-cni", "status": "ACTIVE"}})
        from fleetform.upgrade import checks as c
        from fleetform.upgrade.checks import CheckContext, run_checks

        ctx = CheckContext(runbook.aws, runbook.target, "1.36")
        run_checks([c.target_version, c.addon_versions, c.upgrade_insights, c.green_addons], ctx)
    with Stubber(runbook.aws.client("service-quotas")) as stub:
        stub.add_response("get_service_quota", {"Quota": {"Value": 1000.0}})
        stub.add_response("get_service_quota", {"Quota": {"Value": 1000.0}})
        run_checks([c.ec2_quota], CheckContext(runbook.aws, runbook.target, "1.36"))
    # the S3 state store
    s3 = env.aws().client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    target = resolve(load_config(env.config_dir), "main", "prod")
    aws = env.aws()
    store = S3Store(aws, BUCKET)
    in_s3 = Runbook(target, aws, store, S3AuditLog(store), env.display, env.clock,
                    Options(yes=True, ttl_wait=False, insync_interval=1))
    in_s3.status()
    in_s3.shift([100], 10)
    in_s3.rollback("test")
    in_s3.audit_entries()

    runbook.shift([50, 100], 30)
    runbook.status()
    env.clock.advance(minutes=1441)
    runbook.retire("prod-main-blue")
    env.runbook().rollback("test")


def test_every_call_the_runbook_makes_is_a_declared_action(env: Env) -> None:
    _every_phase(env)
    called = {iam_action(service, operation) for service, operation in CALLS}
    assert {"route53:ChangeResourceRecordSets", "eks:DescribeClusterVersions", "cloudwatch:GetMetricData",
            "s3:PutObject", "s3:ListBucket", "s3:GetEncryptionConfiguration", "servicequotas:GetServiceQuota",
            "sts:GetCallerIdentity"} <= called
    missing = sorted(called - set(all_actions()))
    assert missing == [], f"called but not declared (add them to the step's declare()): {missing}"


def test_the_policy_is_least_privilege_and_lint_clean() -> None:
    result = CliRunner().invoke(upgrade_cli.cli, ["permissions", "--account", "prod"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["Version"] == "2012-10-17"
    actions = sorted(a for s in document["Statement"] for a in s["Action"])
    # every declared action exactly once; S3 and KMS only when upgrade.state_bucket is set (prod keeps state locally),
    # the PromQL gates' only when upgrade.prometheus is
    assert actions == sorted(a for a in all_actions() if not a.startswith(("s3:", "kms:")) and a != "sts:AssumeRole")
    assert not [a for a in actions if a.endswith("*") or ":Delete" in a and not a.startswith("s3:")]
    writes = [s for s in document["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    assert writes[0]["Condition"]["ForAllValues:StringEquals"][
        "route53:ChangeResourceRecordSetsNormalizedRecordNames"] == ["api.familyalbum.example"]
    eks = next(s for s in document["Statement"] if "eks:DescribeCluster" in s["Action"])
    assert "arn:aws:eks:ap-northeast-1:333333333333:cluster/prod-main-*" in eks["Resource"]
    findings = [(f.issue, f.detail) for f in analyze_policy_string(json.dumps(document)).findings]
    assert findings == []
    unscoped = policy()
    assert unscoped["Statement"][-1]["Resource"] == ["*"]
    assert sorted(a for s in unscoped["Statement"] for a in s["Action"]) == sorted(all_actions())


PROMQL = ("aps:QueryMetrics", "sts:AssumeRole")


def test_promql_gates_may_query_their_workspace_through_their_role_only(accounts_copy) -> None:
    prod = accounts_copy / "prod.yaml"
    role = "arn:aws:iam::444444444444:role/fleetform-upgrade-query"
    prod.write_text(prod.read_text().replace("workspace: ws-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
                                             f"workspace: ws-0123abcd\n        role_arn: {role}"))
    result = CliRunner().invoke(upgrade_cli.cli, ["permissions", "--account", "prod", "--config", str(accounts_copy)])
    assert result.exit_code == 0, result.output
    statements = {s["Sid"]: s for s in json.loads(result.stdout)["Statement"]}
    assert statements["PromQLGates"]["Action"] == ["aps:QueryMetrics"]
    assert statements["PromQLGates"]["Resource"] == ["arn:aws:aps:ap-northeast-1:444444444444:workspace/ws-0123abcd"]
    assert statements["PromQLGatesWorkspaceRole"] == {"Sid": "PromQLGatesWorkspaceRole", "Effect": "Allow",
                                                      "Action": ["sts:AssumeRole"], "Resource": [role]}
    assert not [s for s in statements.values() if s["Resource"] == ["*"] and set(PROMQL) & set(s["Action"])]


def test_with_a_state_bucket_audit_entries_can_be_written_but_never_deleted(accounts_copy) -> None:
    prod = accounts_copy / "prod.yaml"
    prod.write_text(prod.read_text().replace("alarms: [prod-main-5xx, prod-main-latency-p99]",
                                             f"alarms: [prod-main-5xx, prod-main-latency-p99]\n"
                                             f"      state_bucket: {BUCKET}"))
    result = CliRunner().invoke(upgrade_cli.cli, ["permissions", "--account", "prod", "--config", str(accounts_copy)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert sorted(a for s in document["Statement"] for a in s["Action"]) == sorted(
        a for a in all_actions() if a != "sts:AssumeRole")  # the example's PromQL gates need no role
    objects = f"arn:aws:s3:::{BUCKET}/fleetform/upgrades"
    assert statements["StateRecordsAndAuditEntries"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statements["StateRecordsAndAuditEntries"]["Resource"] == [f"{objects}/*"]  # audit/<account>/... too
    deletes = [s for s in document["Statement"] if "s3:DeleteObject" in s["Action"]]
    assert deletes == [statements["ReleaseLocks"]] and deletes[0]["Resource"] == [f"{objects}/*.lock"]
    assert sorted(statements["StateRecordBucket"]["Action"]) == ["s3:GetEncryptionConfiguration", "s3:ListBucket"]
    kms = statements["StateBucketKeyThroughS3"]
    assert kms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["Condition"]["StringLike"]["kms:ViaService"] == "s3.*.amazonaws.com"
    findings = [(f.issue, f.detail) for f in analyze_policy_string(json.dumps(document)).findings]
    assert findings == []
