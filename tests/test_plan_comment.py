"""One comment for a sharded plan: real `fleetform plan --shard I/N --publish-bucket` runs (real
Terraform on provider-free stacks) write their summaries to a moto S3 on 127.0.0.1, and
`fleetform plan-comment` combines them into one comment on the local fake GitHub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from fixtures.fake_github import REPO, TOKEN, FakeGitHub, serving
from fixtures.tfstacks import local_backend, stack_body, terraform_data, write_synth

from fleetform.github import marker
from fleetform.plan_summaries import ShardPublisher, ShardResult, dependency_order, render_combined, summary_key
from fleetform.scripts.main import cli
from fleetform.terraform.summary import StackPlan

BUCKET = "familyalbum-pipeline-artifacts-111111111111"


@pytest.fixture
def github(monkeypatch) -> Iterator[tuple[FakeGitHub, str]]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    for name in ("CODEBUILD_WEBHOOK_TRIGGER", "CODEBUILD_SOURCE_VERSION", "CODEBUILD_RESOLVED_SOURCE_VERSION"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeGitHub()
    with serving(fake) as url:
        yield fake, url


@pytest.fixture
def s3(moto_endpoint):
    client = boto3.session.Session(region_name="ap-northeast-1").client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    return client


def three_stacks(out: Path, state: Path) -> Path:
    """``base`` <- ``app`` <- ``edge``: shard 1/2 plans base and edge, shard 2/2 plans app."""
    state.mkdir(exist_ok=True)
    return write_synth(out, {
        "base": stack_body(terraform_data(seed="v1"), local_backend(state, "base")),
        "app": stack_body(terraform_data(web="hello", worker="sidekiq"), local_backend(state, "app")),
        "edge": stack_body(terraform_data(cdn="on"), local_backend(state, "edge")),
    }, {"app": ["base"], "edge": ["app"]})


def plan_shard(synth: Path, out: Path, url: str, endpoint: str, shard: str, commit: str, *extra: str):
    return CliRunner().invoke(cli, [
        "plan", "--synth-dir", str(synth), "--out-dir", str(out), "--shard", shard, "--publish-bucket", BUCKET,
        "--head-commit", commit, "--pull-request", "7", "--repository", REPO, "--api-url", url,
        "--endpoint-url", endpoint, *extra])


def plan_comment(url: str, endpoint: str, commit: str, shards: int = 2, *extra: str):
    return CliRunner().invoke(cli, [
        "plan-comment", "--bucket", BUCKET, "--shards", str(shards), "--pull-request", "7", "--head-commit", commit,
        "--repository", REPO, "--api-url", url, "--endpoint-url", endpoint, "--output", "json", *extra])


def ours(fake: FakeGitHub) -> list[dict]:
    return [c for c in fake.comments[7] if "<!-- fleetform:" in c["body"]]


def test_shards_publish_and_one_comment_shows_the_whole_plan(github, s3, moto_endpoint, tmp_path):
    fake, url = github
    synth = three_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    fake.comments[7].append({"id": 50, "body": f"{marker('plan-1-of-4')}\nold shard comment"})  # earlier version
    fake.heads[7] = "c0ffee1"
    for shard in ("1/2", "2/2"):
        result = plan_shard(synth, tmp_path / f"plan-{shard[0]}", url, moto_endpoint, shard, "c0ffee1")
        assert result.exit_code == 2, result.stderr
        assert f"s3://{BUCKET}/plan-summaries/pr-7/c0ffee1/shard-{shard[0]}-of-2.json" in result.stderr
    assert ours(fake) == [fake.comments[7][1]]  # the shards did not comment
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=summary_key(7, "c0ffee1", 1, 2))["Body"].read())
    assert (record["shard"], record["commit"], record["exit_code"]) == ("1/2", "c0ffee1", 2)
    assert [s["stack"] for s in record["stacks"]] == ["base", "edge"]

    result = plan_comment(url, moto_endpoint, "c0ffee1")
    assert result.exit_code == 2, result.stderr
    report = json.loads(result.stdout)
    assert [s["state"] for s in report["shards"]] == ["changes", "changes"]
    assert report["comment"]["action"] == "created" and report["comment"]["deleted_shard_comments"] == [50]
    [comment] = ours(fake)
    body = comment["body"]
    assert body.startswith(f"{marker('plan')}\n## fleetform plan: 3 stacks with changes")
    assert "Plan of commit `c0ffee1` in 2 shards, all reported." in body
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    assert rows == ["| `base` | 1 | 0 | 0 |  |", "| `app` | 2 | 0 | 0 |  |", "| `edge` | 1 | 0 | 0 |  |"]
    assert body.index("| `edge`") < body.index("<details><summary><code>base</code>: 1 to add")  # table first
    assert "- `+` create `terraform_data.worker`" in body and body.count("<details><summary><code>") == 3
    assert "| 1/2 | changes | 2 |" in body and "| 2/2 | changes | 1 |" in body  # the shards, collapsed
    assert "INCOMPLETE" not in body


def test_missing_or_failed_shard_and_newer_commit(github, s3, moto_endpoint, tmp_path):
    fake, url = github
    synth = three_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    fake.heads[7] = "aaaa111"
    for shard in ("1/2", "2/2"):
        assert plan_shard(synth, tmp_path / "plan", url, moto_endpoint, shard, "aaaa111").exit_code == 2
    assert plan_comment(url, moto_endpoint, "aaaa111").exit_code == 2
    [first] = ours(fake)

    # a newer commit: shard 2 never reports -> the SAME comment now describes bbbb222, flagged incomplete
    fake.heads[7] = "bbbb222"
    assert plan_shard(synth, tmp_path / "plan", url, moto_endpoint, "1/2", "bbbb222").exit_code == 2
    result = plan_comment(url, moto_endpoint, "bbbb222")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["comment"]["action"] == "updated"
    [comment] = ours(fake)
    assert comment["id"] == first["id"]
    assert "`bbbb222`" in comment["body"] and "aaaa111" not in comment["body"]
    assert "**This plan is INCOMPLETE**: 1 of 2 shard(s)" in comment["body"]
    assert "> - shard 2/2 did not report" in comment["body"]
    assert "| `app`" not in comment["body"] and "| `edge`" in comment["body"]

    # shard 2 fails before planning (bad --var): it reports its error instead of staying silent
    result = plan_shard(synth, tmp_path / "plan", url, moto_endpoint, "2/2", "bbbb222", "--var", "nope=1")
    assert result.exit_code == 1 and "no stack declares this variable" in result.stderr
    result = plan_comment(url, moto_endpoint, "bbbb222")
    assert result.exit_code == 1
    body = ours(fake)[0]["body"]
    assert "> - shard 2/2 failed before planning: --var nope=1: no stack declares this variable" in body

    # a retry of that shard is killed while planning: its "started" record replaces the older result
    ShardPublisher(s3, BUCKET, 7, "bbbb222", 2, 2).publish_started()
    assert plan_comment(url, moto_endpoint, "bbbb222").exit_code == 1
    body = ours(fake)[0]["body"]
    assert "> - shard 2/2 started planning but did not finish" in body and "--var nope=1" not in body

    # the late build of the older commit must not replace the newer commit's comment
    before = ours(fake)[0]["body"]
    result = plan_comment(url, moto_endpoint, "aaaa111")
    assert json.loads(result.stdout)["comment"]["action"] == "skipped"
    assert ours(fake) == [{**first, "body": before}]


def test_plan_comment_needs_a_pull_request_and_a_bucket(github, tmp_path):
    _, url = github
    result = CliRunner().invoke(cli, ["plan-comment", "--bucket", BUCKET, "--head-commit", "abc", "--api-url", url])
    assert result.exit_code == 1 and "needs --pull-request N" in result.stderr
    result = CliRunner().invoke(cli, ["plan-comment", "--head-commit", "abc", "--pull-request", "7"])
    assert result.exit_code == 1 and "--bucket" in result.stderr
    synth = three_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    result = CliRunner().invoke(cli, ["plan", "--synth-dir", str(synth), "--publish-bucket", BUCKET, "--comment",
                                      "--pull-request", "7"])
    assert result.exit_code == 1 and "choose one" in result.stderr


def test_dependency_order_and_size_limit():
    def plans(*names: str) -> list[StackPlan]:
        return [StackPlan(n, "no-changes") for n in names]

    shards = [ShardResult(1, 3, "no-changes", plans("a", "d", "g")), ShardResult(2, 3, "no-changes", plans("b", "e")),
              ShardResult(3, 3, "missing")]
    assert [p.stack for p in dependency_order(shards)] == ["a", "b", "d", "e", "g"]
    from fleetform.terraform.summary import Change

    big = [StackPlan(f"s{i}", "changes", [Change(f"terraform_data.r{j}", "terraform_data", "create")
                                          for j in range(300)]) for i in range(8)]
    text = render_combined([ShardResult(1, 1, "changes", big)], "abc")
    assert len(text) < 65536 and "more stack(s) not shown (comment size limit)" in text
    assert text.count("| `s") == 8  # every stack stays in the table

    protected = StackPlan("db", "changes", [Change("aws_db_instance.x", "aws_db_instance", "delete", True)])
    text = render_combined([ShardResult(1, 2, "failed", [protected]), ShardResult(2, 2, "no-changes")], "abc")
    assert "**This plan fails** (shard 1/2)" in text and "INCOMPLETE" not in text
    assert "this plan FAILS until the pull request carries the allow-destroy label" in text
    assert "<details open><summary><code>db</code>: 0 to add, 0 to change, 1 to destroy, 1 PROTECTED" in text


def test_a_shard_with_a_bad_configuration_reports_it(github, s3, moto_endpoint, tmp_path):
    fake, url = github
    fake.heads[7] = "cafe123"
    config = tmp_path / "accounts"
    config.mkdir()
    (config / "organization.yaml").write_text("organization:\n  name: familyalbum\n  colour: blue\n")
    synth = three_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    result = plan_shard(synth, tmp_path / "plan", url, moto_endpoint, "1/1", "cafe123", "--config", str(config),
                        "--affected", "--base", "HEAD")
    assert result.exit_code == 1 and "organization.yaml" in result.stderr  # the usual message, no traceback
    result = plan_comment(url, moto_endpoint, "cafe123", 1, "--config", str(config))  # the broken accounts/
    assert result.exit_code == 1, result.stderr
    [state] = [s["state"] for s in json.loads(result.stdout)["shards"]]
    body = ours(fake)[0]["body"]
    assert state == "stopped" and f"> - shard 1/1 failed before planning: {config}/organization.yaml:1: " in body
    assert f">   - {config}/organization.yaml:3: organization.colour: unknown key" in body  # every problem
    assert "No stacks reported." in body
