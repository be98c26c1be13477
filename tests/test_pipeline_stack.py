"""The synthesized pipeline stack: webhooks, roles, schedule, encryption, buildspecs; checkov."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_PLAN_ROLE,
    PIPELINE_STACK,
    PLAN_SUMMARY_PREFIX,
)

ROOT = Path(__file__).resolve().parent.parent
BUILDSPECS = ROOT / "buildspec"


def resources(doc: dict, kind: str) -> dict[str, dict]:
    return doc["resource"].get(kind, {})


def one(doc: dict, kind: str, **where: object) -> dict:
    found = [r for r in resources(doc, kind).values() if all(r.get(k) == v for k, v in where.items())]
    assert len(found) == 1, f"{kind} {where}: {len(found)} found"
    return found[0]


def statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def pipeline(stack_json) -> dict:
    return stack_json(PIPELINE_STACK)


def test_pipeline_stack_lives_in_the_pipeline_account(pipeline, example_config, synth_out):
    account = example_config.account(example_config.organization.pipeline.account)
    assert pipeline["provider"]["aws"][0]["allowed_account_ids"] == [account.id]
    manifest = json.loads((synth_out / "manifest.json").read_text())
    assert set(manifest["stacks"][PIPELINE_STACK]["dependencies"]) >= {"bootstrap", f"{account.name}-baseline"}


def test_webhooks_plan_pull_requests_and_apply_pushes_to_main(pipeline):
    plan_hook = one(pipeline, "aws_codebuild_webhook", build_type="BUILD_BATCH")
    assert plan_hook["project_name"] == "${aws_codebuild_project.pipeline_plan-project.name}"
    filters = {f["type"]: f["pattern"] for f in plan_hook["filter_group"][0]["filter"]}
    assert filters == {"EVENT": "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED, PULL_REQUEST_REOPENED",
                       "BASE_REF": "^refs/heads/main$"}
    apply_hook = one(pipeline, "aws_codebuild_webhook", build_type="BUILD")
    assert apply_hook["project_name"] == "${aws_codebuild_project.pipeline_apply-project.name}"
    assert {f["type"]: f["pattern"] for f in apply_hook["filter_group"][0]["filter"]} == {
        "EVENT": "PUSH", "HEAD_REF": "^refs/heads/main$"}


def _role_policies(doc: dict, role_name: str) -> list[dict]:
    role_id = next(k for k, r in resources(doc, "aws_iam_role").items() if r["name"] == role_name)
    return [s for p in resources(doc, "aws_iam_role_policy").values()
            if p["role"] == f"${{aws_iam_role.{role_id}.name}}" for s in statements(p["policy"])]


def test_plan_role_only_assumes_plan_roles_and_reads_state(pipeline, example_config):
    ids = sorted(a.id for a in example_config.accounts)
    plan = _role_policies(pipeline, PIPELINE_PLAN_ROLE)
    assumes = [s for s in plan if "sts:AssumeRole" in as_list(s["Action"])]
    assert len(assumes) == 1 and assumes[0]["Resource"] == [f"arn:aws:iam::{i}:role/{ACCOUNT_PLAN_ROLE}" for i in ids]
    writes = [s for s in plan if any(a.startswith("s3:") and a.endswith(("PutObject", "DeleteObject"))
                                     for a in as_list(s["Action"]))]
    state_writes = [r for s in writes for r in as_list(s["Resource"]) if "familyalbum-tfstate" in r]
    assert state_writes == ["arn:aws:s3:::familyalbum-tfstate/*.tflock"]  # lock files only, never state
    assert not [s for s in plan if s["Resource"] == "*" or "iam:" in json.dumps(s["Action"])]
    # the artifacts bucket: only its builds' artifact paths and the plan shards' summaries, never apply/
    artifacts = "${aws_s3_bucket.pipeline_artifacts_bucket.arn}"
    artifact_writes = sorted(r for s in writes for r in as_list(s["Resource"]) if r.startswith(artifacts))
    assert artifact_writes == [f"{artifacts}/{p}*" for p in ("drift/", "plan-summaries/", "plan/")]
    lists = [s for s in plan if s.get("Sid") == "ListPlanSummaries"]
    assert lists == [{"Sid": "ListPlanSummaries", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": artifacts,
                      "Condition": {"StringLike": {"s3:prefix": [f"{PLAN_SUMMARY_PREFIX}*"]}}}]
    role = one(pipeline, "aws_iam_role", name=PIPELINE_PLAN_ROLE)
    assert statements(role["assume_role_policy"])[0]["Principal"] == {"Service": "codebuild.amazonaws.com"}


def test_apply_role_assumes_apply_roles_and_writes_state(pipeline, example_config):
    ids = sorted(a.id for a in example_config.accounts)
    apply = _role_policies(pipeline, PIPELINE_APPLY_ROLE)
    assumes = [s for s in apply if "sts:AssumeRole" in as_list(s["Action"])]
    assert assumes[0]["Resource"] == [f"arn:aws:iam::{i}:role/{ACCOUNT_APPLY_ROLE}" for i in ids]
    state = next(s for s in apply if s.get("Sid") == "ReadWriteState")
    assert "s3:PutObject" in state["Action"]
    artifacts = next(s for s in apply if s.get("Sid") == "Artifacts")
    assert artifacts["Resource"] == ["${aws_s3_bucket.pipeline_artifacts_bucket.arn}/apply/*"]
    assert "arn:aws:s3:::familyalbum-tfstate/fleetform-locks/*" in state["Resource"]  # the pipeline lock


def test_projects_encrypted_logged_and_batched(pipeline):
    projects = {p["name"]: p for p in resources(pipeline, "aws_codebuild_project").values()}
    assert set(projects) == {"familyalbum-plan", "familyalbum-apply", "familyalbum-drift"}
    for name, project in projects.items():
        assert project["encryption_key"].startswith("${aws_kms_key.")
        assert project["environment"][0]["privileged_mode"] is False
        assert project["logs_config"][0]["cloudwatch_logs"][0]["status"] == "ENABLED"
        assert (ROOT / project["source"][0]["buildspec"]).is_file(), name
        variables = {v["name"]: v for v in project["environment"][0]["environment_variable"]}
        assert variables["GITHUB_TOKEN"] == {"name": "GITHUB_TOKEN", "value": "fleetform/github-token",
                                             "type": "SECRETS_MANAGER"}
        assert variables["FLEETFORM_ARTIFACTS_BUCKET"]["value"] == "familyalbum-pipeline-artifacts-111111111111"
    assert projects["familyalbum-plan"]["build_batch_config"][0]["restrictions"][0]["maximum_builds_allowed"] == 5
    assert projects["familyalbum-apply"]["concurrent_build_limit"] == 1
    assert projects["familyalbum-plan"]["service_role"] == "${aws_iam_role.pipeline_plan-role.arn}"
    assert projects["familyalbum-drift"]["service_role"] == "${aws_iam_role.pipeline_plan-role.arn}"
    group = one(pipeline, "aws_cloudwatch_log_group", name="/fleetform/familyalbum/pipeline")
    assert group["retention_in_days"] >= 365 and group["kms_key_id"].startswith("${aws_kms_key.")
    credential = one(pipeline, "aws_codebuild_source_credential", auth_type="SECRETS_MANAGER")
    assert credential["token"] == "${data.aws_secretsmanager_secret.pipeline_github-token.arn}"


def test_drift_schedule_and_notifications(pipeline, example_config):
    settings = example_config.organization.pipeline
    rule = one(pipeline, "aws_cloudwatch_event_rule", name="familyalbum-drift")
    assert rule["schedule_expression"] == settings.drift_schedule
    target = next(t for t in resources(pipeline, "aws_cloudwatch_event_target").values()
                  if t["target_id"] == "drift-build")
    assert target["arn"] == "${aws_codebuild_project.pipeline_drift-project.arn}"
    topic = one(pipeline, "aws_sns_topic", name="familyalbum-pipeline")
    assert topic["kms_master_key_id"].startswith("${aws_kms_key.")
    email = one(pipeline, "aws_sns_topic_subscription", protocol="email")
    assert email["endpoint"] == settings.notification_email


def test_buildspecs_only_call_fleetform_and_pin_versions(example_config):
    yaml = YAML(typ="safe")
    for name in ("plan.yml", "plan-comment.yml", "apply.yml", "drift.yml"):
        spec = yaml.load((BUILDSPECS / name).read_text())
        phases = spec["phases"]
        for phase in ("pre_build", "build"):
            for command in phases.get(phase, {}).get("commands", []):
                assert command.startswith("fleetform "), f"{name}: {command}"
        installs = phases["install"]["commands"]
        pip = [c for c in installs if "pip install" in c]
        assert pip and all('==' in c for c in pip), name
        runtimes = {"python": "3.11"} if name == "plan-comment.yml" else {"python": "3.11", "nodejs": "20"}
        assert phases["install"]["runtime-versions"] == runtimes


def test_plan_build_graph_shards_then_one_comment_build(example_config, pipeline):
    """plan_shards shard builds (failures ignored, so the comment build still runs and reports them),
    then one build that depends on every shard and combines their summaries into one comment."""
    yaml = YAML(typ="safe")
    spec = yaml.load((BUILDSPECS / "plan.yml").read_text())
    *shards, comment = spec["batch"]["build-graph"]
    total = example_config.organization.pipeline.plan_shards
    assert [g["env"]["variables"]["FLEETFORM_SHARD"] for g in shards] == [f"{i}/{total}" for i in range(1, total + 1)]
    assert all(g["ignore-failure"] is True and "depend-on" not in g for g in shards)
    assert comment["depend-on"] == [g["identifier"] for g in shards]
    assert comment["env"]["variables"]["FLEETFORM_SHARDS"] == str(total)
    assert not comment.get("ignore-failure")  # a failed or missing shard fails the batch through this build
    assert (ROOT / comment["buildspec"]).is_file()
    plan_commands = " ".join(spec["phases"]["build"]["commands"])
    assert "--publish-bucket" in plan_commands and "--comment" not in plan_commands  # shards never comment
    comment_commands = yaml.load((ROOT / comment["buildspec"]).read_text())["phases"]["build"]["commands"]
    assert [c.split()[:2] for c in comment_commands] == [["fleetform", "plan-comment"]]
    project = one(pipeline, "aws_codebuild_project", name="familyalbum-plan")
    assert project["build_batch_config"][0]["restrictions"][0]["maximum_builds_allowed"] == len(shards) + 1


def test_pipeline_follows_the_configuration(accounts_copy, tmp_path):
    from fleetform.config import load_config
    from fleetform.stacks.app import synth

    org = accounts_copy / "organization.yaml"
    org.write_text(org.read_text().replace("    branch: main\n", "    branch: release\n"
                                           "    drift_schedule: rate(6 hours)\n"))
    synth(load_config(accounts_copy), tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "stacks" / PIPELINE_STACK / "cdk.tf.json").read_text())
    assert one(doc, "aws_cloudwatch_event_rule", name="familyalbum-drift")["schedule_expression"] == "rate(6 hours)"
    hook = one(doc, "aws_codebuild_webhook", build_type="BUILD")
    assert {"type": "HEAD_REF", "pattern": "^refs/heads/release$"} in hook["filter_group"][0]["filter"]


def test_checkov_passes_on_the_pipeline_stack(checkov_scan):
    result = checkov_scan.only([PIPELINE_STACK])
    assert result.parsing_errors == []
    assert result.failed == [], "\n".join(map(str, result.failed))
    assert result.passed > 50
