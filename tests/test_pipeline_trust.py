"""The pipeline's trust model at run time (docs/pipeline.md, threat model): the comment build accepts a
shard's summary only from a plan build of that pull request's head commit (CodeBuild's BatchGetBuilds,
through botocore's Stubber on a real client), records the reviewed plan, and the merge applies that
plan or refuses; a merge that changes no stack succeeds doing nothing; --profile reaches Terraform.

Real Terraform on provider-free stacks, a moto S3 on 127.0.0.1, the local fake GitHub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from fixtures.fake_github import REPO, TOKEN, FakeGitHub, serving
from fixtures.tfstacks import local_backend, stack_body, terraform_data, write_synth

from fleetform.naming import REVIEWED_PLAN_PREFIX
from fleetform.plan_summaries import summary_key
from fleetform.reviewed_plan import Reviewed, check, differences, fingerprint, record
from fleetform.scripts import plan_comment as plan_comment_module
from fleetform.scripts.main import cli
from fleetform.terraform.summary import Change, StackPlan

BUCKET = "familyalbum-pipeline-artifacts-111111111111"
PROJECT = "familyalbum-plan"
HEAD = "c0ffee1"


@pytest.fixture
def github(monkeypatch) -> Iterator[tuple[FakeGitHub, str]]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    for name in ("CODEBUILD_WEBHOOK_TRIGGER", "CODEBUILD_SOURCE_VERSION", "CODEBUILD_RESOLVED_SOURCE_VERSION",
                 "CODEBUILD_BUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeGitHub()
    with serving(fake) as url:
        yield fake, url


@pytest.fixture
def s3(moto_endpoint):
    client = boto3.session.Session(region_name="ap-northeast-1").client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    return client


def two_stacks(out: Path, state: Path) -> Path:
    state.mkdir(exist_ok=True)
    return write_synth(out, {
        "base": stack_body(terraform_data(seed="v1"), local_backend(state, "base")),
        "app": stack_body(terraform_data(web="hello"), local_backend(state, "app")),
    }, {"app": ["base"]})


def run(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def publish_shard(monkeypatch, synth: Path, out: Path, url: str, endpoint: str, shard: str, build_id: str,
                  pull_request: int = 7, commit: str = HEAD) -> None:
    """A plan shard as CodeBuild runs it: no GitHub token (the untrusted build has none), its build id."""
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("CODEBUILD_BUILD_ID", build_id)
    result = run("plan", "--synth-dir", synth, "--out-dir", out, "--shard", shard, "--publish-bucket", BUCKET,
                 "--head-commit", commit, "--pull-request", pull_request, "--no-lock", "--endpoint-url", endpoint)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.delenv("CODEBUILD_BUILD_ID")
    assert result.exit_code == 2, result.stderr


def ours(fake: FakeGitHub, key: str) -> str:
    (body,) = [c["body"] for c in fake.comments[7] if f"<!-- fleetform:{key} -->" in c["body"]]
    return body


def build(build_id: str, pull_request: int, commit: str, project: str = PROJECT) -> dict[str, Any]:
    """A build as BatchGetBuilds describes it (only the fields the service model needs and fleetform reads)."""
    return {"id": build_id, "arn": f"arn:aws:codebuild:ap-northeast-1:111111111111:build/{build_id}",
            "projectName": project, "sourceVersion": f"pr/{pull_request}", "resolvedSourceVersion": commit,
            "buildStatus": "SUCCEEDED"}


@pytest.fixture
def codebuild(monkeypatch, moto_endpoint) -> Iterator[Stubber]:
    """A real CodeBuild client with botocore's Stubber (moto has no CodeBuild builds): the requests and
    responses are checked against the service model. plan-comment gets it; S3 stays moto."""
    client = boto3.session.Session(region_name="ap-northeast-1").client("codebuild")
    real_client = plan_comment_module._client

    def client_for(service: str, profile: Any, region: Any, endpoint_url: Any) -> Any:
        return client if service == "codebuild" else real_client(service, profile, region, endpoint_url)

    monkeypatch.setattr(plan_comment_module, "_client", client_for)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def comment(url: str, endpoint: str, *extra: Any) -> Any:
    return run("plan-comment", "--bucket", BUCKET, "--shards", 2, "--from-build", f"{PROJECT}:b1",
               "--plan-project", PROJECT, "--record-reviewed", "--repository", REPO, "--api-url", url,
               "--endpoint-url", endpoint, "--output", "json", *extra)


def test_comment_build_accepts_only_summaries_of_this_pull_requests_head_builds(
        github, s3, codebuild, moto_endpoint, monkeypatch, tmp_path):
    fake, url = github
    fake.heads[7] = HEAD
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    publish_shard(monkeypatch, synth, tmp_path / "p1", url, moto_endpoint, "1/2", f"{PROJECT}:b1")
    publish_shard(monkeypatch, synth, tmp_path / "p2", url, moto_endpoint, "2/2", f"{PROJECT}:b2")
    # another pull request's build (its code is untrusted too) overwrites shard 2's summary, claiming a
    # build of its own: it hides the change to `app`
    forged = json.loads(s3.get_object(Bucket=BUCKET, Key=summary_key(7, HEAD, 2, 2))["Body"].read())
    forged.update(build_id=f"{PROJECT}:evil", exit_code=0, stacks=[])
    s3.put_object(Bucket=BUCKET, Key=summary_key(7, HEAD, 2, 2), Body=json.dumps(forged).encode())

    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, HEAD)]},
                           {"ids": [f"{PROJECT}:b1"]})
    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, HEAD),
                                                           build(f"{PROJECT}:evil", 8, "bad0bad")]},
                           {"ids": [f"{PROJECT}:b1", f"{PROJECT}:evil"]})
    result = comment(url, moto_endpoint)
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["pull_request"], report["commit"]) == (7, HEAD)  # from the build that triggered it
    assert [s["state"] for s in report["shards"]] == ["changes", "stopped"]
    assert "its build familyalbum-plan:evil planned another pull request" in report["shards"][1]["error"]
    body = ours(fake, "plan")
    assert "INCOMPLETE" in body and "| `app`" not in body
    reviewed = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{REVIEWED_PLAN_PREFIX}pr-7.json")["Body"].read())
    assert reviewed["complete"] is False and reviewed["commit"] == HEAD

    # the shard's real build writes its summary again: everything is accepted and the record is complete
    publish_shard(monkeypatch, synth, tmp_path / "p2", url, moto_endpoint, "2/2", f"{PROJECT}:b2")
    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, HEAD)]},
                           {"ids": [f"{PROJECT}:b1"]})
    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, HEAD),
                                                           build(f"{PROJECT}:b2", 7, HEAD)]},
                           {"ids": [f"{PROJECT}:b1", f"{PROJECT}:b2"]})
    result = comment(url, moto_endpoint)
    assert result.exit_code == 2, result.stderr
    reviewed = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{REVIEWED_PLAN_PREFIX}pr-7.json")["Body"].read())
    assert reviewed["complete"] is True
    assert reviewed["stacks"] == {"base": [["terraform_data.seed", "create", ""]],
                                  "app": [["terraform_data.web", "create", ""]]}


def test_a_summary_of_another_commit_or_project_is_refused(github, s3, codebuild, moto_endpoint, monkeypatch,
                                                           tmp_path):
    fake, url = github
    fake.heads[7] = HEAD
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    publish_shard(monkeypatch, synth, tmp_path / "p1", url, moto_endpoint, "1/2", f"{PROJECT}:b1")
    publish_shard(monkeypatch, synth, tmp_path / "p2", url, moto_endpoint, "2/2", "familyalbum-drift:d1")
    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, "0ld0ld0")]},
                           {"ids": [f"{PROJECT}:b1"]})
    drift = build("familyalbum-drift:d1", 7, HEAD, "familyalbum-drift")
    codebuild.add_response("batch_get_builds", {"builds": [build(f"{PROJECT}:b1", 7, "0ld0ld0"), drift]},
                           {"ids": ["familyalbum-drift:d1", f"{PROJECT}:b1"]})
    result = comment(url, moto_endpoint, "--head-commit", HEAD)
    assert result.exit_code == 1
    errors = [s["error"] for s in json.loads(result.stdout)["shards"]]
    assert "planned another commit (0ld0ld0)" in errors[0]
    assert "is not a build of familyalbum-plan" in errors[1]

    # a build id CodeBuild does not know, and a trigger that is not a pull request build: a usage error, no
    # traceback; exit 1, as plan-comment's 2 means "changes" (README, Exit statuses)
    codebuild.add_response("batch_get_builds", {"builds": []}, {"ids": [f"{PROJECT}:b1"]})
    result = comment(url, moto_endpoint)
    assert result.exit_code == 1 and "knows no pull request build" in result.stderr


# ---------------------------------------------------------------- merge applies the reviewed plan


def merge_plan(synth: Path, out: Path, url: str, endpoint: str, commit: str = "merge01") -> Any:
    return run("plan", "--synth-dir", synth, "--out-dir", out, "--comment", "--commit", commit, "--repository", REPO,
               "--api-url", url, "--reviewed-bucket", BUCKET, "--endpoint-url", endpoint, "--output", "json")


def apply(synth: Path, out: Path) -> Any:
    return run("apply", "--synth-dir", synth, "--out-dir", out, "--yes")


def test_merge_applies_the_reviewed_plan_or_refuses(github, s3, moto_endpoint, tmp_path):
    fake, url = github
    fake.merged["merge01"] = 7
    fake.heads[7] = HEAD
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    planned = {"base": [["terraform_data.seed", "create", ""]], "app": [["terraform_data.web", "create", ""]]}

    # nothing was reviewed: refused, and the saved plans cannot be applied by hand either
    result = merge_plan(synth, tmp_path / "m0", url, moto_endpoint)
    assert result.exit_code == 1, result.stderr
    assert "has no reviewed plan" in result.stderr
    assert "differs from the plan reviewed" in ours(fake, "apply")
    refused = apply(synth, tmp_path / "m0")
    assert refused.exit_code == 1 and "differs from the plan reviewed on the pull request" in refused.stderr

    # the review showed only `base` (a falsified summary): the merge's plan also changes `app`
    record(s3, BUCKET, Reviewed(7, HEAD, True, {"base": planned["base"]}))
    result = merge_plan(synth, tmp_path / "m1", url, moto_endpoint)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reviewed"]["differences"] == [
        "app: create terraform_data.web was not in the reviewed plan"]

    # reviewed at an older commit of the pull request: refused
    record(s3, BUCKET, Reviewed(7, "0ld0ld0", True, planned))
    assert "was never planned and reviewed" in merge_plan(synth, tmp_path / "m2", url, moto_endpoint).stderr

    # the reviewed plan: applied
    record(s3, BUCKET, Reviewed(7, HEAD, True, planned))
    result = merge_plan(synth, tmp_path / "m3", url, moto_endpoint)
    assert result.exit_code == 2, result.stderr
    assert json.loads(result.stdout)["reviewed"] == {"matches": True, "pull_request": 7}
    applied = apply(synth, tmp_path / "m3")
    assert applied.exit_code == 0, applied.stderr

    # planned again after the apply: no changes, so no review is needed and nothing is applied
    result = merge_plan(synth, tmp_path / "m4", url, moto_endpoint, commit="merge02")
    assert result.exit_code == 0, result.stderr
    assert apply(synth, tmp_path / "m4").exit_code == 0


def test_a_merge_that_changes_no_stack_succeeds_doing_nothing(tmp_path):
    """The apply buildspec's two steps when the merge changes no stack (docs-only): plan 0, apply 0."""
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    result = run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plan", "--skip-local-state")
    assert result.exit_code == 0 and "No stacks to plan" in result.stdout
    result = run("apply", "--synth-dir", synth, "--out-dir", tmp_path / "plan", "--yes", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "applied": []}
    # but an empty directory is still a usage error: nothing was planned there
    assert run("apply", "--synth-dir", synth, "--out-dir", tmp_path / "never", "--yes").exit_code == 2


def test_reviewed_plan_comparison():
    plan = StackPlan("net", "changes", [Change("aws_vpc.main", "aws_vpc", "update", detail="tags"),
                                        Change("aws_subnet.a", "aws_subnet", "replace", detail="cidr_block")])
    prints = fingerprint([plan, StackPlan("idle", "no-changes")])
    assert prints == {"net": [["aws_subnet.a", "replace", "cidr_block"], ["aws_vpc.main", "update", "tags"]]}
    assert check(Reviewed(1, "h", True, prints), 1, "h", [plan]) == []
    assert check(None, None, None, [StackPlan("idle", "no-changes")]) == []  # no changes: no review needed
    assert check(None, None, None, [plan]) == ["no merged pull request brought this commit, so no plan was reviewed"]
    assert "incomplete" in check(Reviewed(1, "h", False, prints), 1, "h", [plan])[0]
    assert differences({"net": [["aws_vpc.main", "update", "tags"]]}, {"net": [["aws_vpc.main", "delete", ""]]}) == [
        "net: delete aws_vpc.main was not in the reviewed plan",
        "net: update aws_vpc.main (tags) was reviewed but is no longer planned"]
    # the same action on other attributes is another plan
    assert differences(prints, {"net": [["aws_subnet.a", "replace", "cidr_block"], ["aws_vpc.main", "update",
                                                                                    "cidr_block"]]}) != []


# ---------------------------------------------------------------- --profile reaches Terraform


def test_profile_and_region_reach_terraform(moto_endpoint, monkeypatch, tmp_path):
    """The S3 backend has neither credentials nor a region of its own: only the operator's --profile and
    --region can give them (Terraform reads AWS_PROFILE / AWS_REGION, never fleetform's options)."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    s3.create_bucket(Bucket="profile-tfstate", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    config = tmp_path / "aws-config"
    config.write_text("[profile ops]\noutput = json\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    backend = {"s3": {"bucket": "profile-tfstate", "key": "net/terraform.tfstate", "use_lockfile": True}}
    synth = write_synth(tmp_path / "cdktf.out", {"net": stack_body(terraform_data(vpc="10.0.0.0/16"), backend)})
    settings = [f'endpoints={{s3="{moto_endpoint}"}}', "use_path_style=true", "skip_credentials_validation=true",
                "skip_requesting_account_id=true", "skip_metadata_api_check=true", "skip_region_validation=true"]
    backend_args = [arg for item in settings for arg in ("--backend-config", item)]

    def plan(*options: str) -> Any:
        return run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plan", *options, *backend_args)

    assert plan("--region", "ap-northeast-1").exit_code == 1  # no credentials
    assert plan("--profile", "ops").exit_code == 1  # no region
    both = plan("--profile", "ops", "--region", "ap-northeast-1")
    assert both.exit_code == 2, both.stderr
    # and apply (the pipeline lock and Terraform both use them)
    applied = run("apply", "--synth-dir", synth, "--out-dir", tmp_path / "plan", "--yes", "--profile", "ops",
                  "--region", "ap-northeast-1", "--endpoint-url", moto_endpoint, *backend_args)
    assert applied.exit_code == 0, applied.stderr
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="profile-tfstate")["Contents"]] == ["net/terraform.tfstate"]


def test_endpoint_url_reaches_terraform(moto_endpoint, monkeypatch, tmp_path):
    """--endpoint-url is where fleetform's own calls go (the lock, the reviewed plan): Terraform's backend must
    go there too (AWS_ENDPOINT_URL), or one command would read one endpoint and write another."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    s3.create_bucket(Bucket="endpoint-tfstate", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    backend = {"s3": {"bucket": "endpoint-tfstate", "key": "net/terraform.tfstate", "use_lockfile": True}}
    synth = write_synth(tmp_path / "cdktf.out", {"net": stack_body(terraform_data(vpc="10.0.0.0/16"), backend)})
    settings = ["use_path_style=true", "skip_credentials_validation=true", "skip_requesting_account_id=true",
                "skip_metadata_api_check=true", "skip_region_validation=true", "max_retries=1"]
    backend_args = [arg for item in settings for arg in ("--backend-config", item)]
    planned = run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plan", "--region", "ap-northeast-1",
                  "--endpoint-url", moto_endpoint, *backend_args)
    assert planned.exit_code == 2, planned.stderr  # changes: the backend read its (empty) state from moto
