"""The pull-request comment: posted through the GitHub REST API to a local fake of it (http.server
on 127.0.0.1), updated in place on the next plan, token from GITHUB_TOKEN or Secrets Manager."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from fixtures.fake_github import REPO, TOKEN, FakeGitHub, serving
from fixtures.tfstacks import edit_stack, two_stacks

from fleetform.errors import FleetformError
from fleetform.github import GitHub, marker, pull_request_from_env, resolve_token
from fleetform.scripts.main import cli


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()
    with serving(fake) as url:
        yield fake, url


def test_comment_is_created_then_updated_in_place(github):
    fake, url = github
    client = GitHub(TOKEN, url)
    first = client.upsert_comment(REPO, 7, "## plan: 1 stack with changes")
    assert first["action"] == "created"
    second = client.upsert_comment(REPO, 7, "## plan: 0 stacks with changes")
    assert second == {"action": "updated", "id": first["id"], "url": f"https://github.test/c/{first['id']}"}
    bodies = [c["body"] for c in fake.comments[7]]
    assert bodies == ["LGTM", f"{marker('plan')}\n## plan: 0 stacks with changes"]  # others' comments untouched
    client.upsert_comment(REPO, 7, "shard 2", key="plan-2-of-4")
    assert len(fake.comments[7]) == 3


def test_comments_are_read_page_by_page(github):
    fake, url = github
    fake.comments[7] = [{"id": i, "body": f"c{i}"} for i in range(1, 151)]
    fake.comments[7][120]["body"] = f"{marker('plan')}\nold"
    assert GitHub(TOKEN, url).upsert_comment(REPO, 7, "new")["id"] == 121
    assert ("GET", f"/repos/{REPO}/issues/7/comments?per_page=100&page=2") in fake.requests


def test_api_errors_are_clear(github):
    fake, url = github
    with pytest.raises(FleetformError, match=r"GitHub API GET /repos/.*/labels.*: HTTP 401 .*Bad credentials"):
        GitHub("wrong", url).labels(REPO, 7)


def test_token_from_environment_or_secrets_manager(monkeypatch, moto_endpoint):
    monkeypatch.setenv("GITHUB_TOKEN", "from-env")
    assert resolve_token("fleetform/github-token") == "from-env"
    monkeypatch.delenv("GITHUB_TOKEN")
    session = boto3.session.Session(region_name="ap-northeast-1")

    class Endpoint:
        def client(self, service: str):
            return session.client(service, endpoint_url=moto_endpoint)

    sm = Endpoint().client("secretsmanager")
    sm.create_secret(Name="fleetform/github-token", SecretString=json.dumps({"token": "from-secret"}))
    assert resolve_token("fleetform/github-token", Endpoint()) == "from-secret"
    with pytest.raises(FleetformError, match="cannot read the GitHub token from secret nope"):
        resolve_token("nope", Endpoint())


def test_pull_request_number_from_codebuild(monkeypatch):
    monkeypatch.setenv("CODEBUILD_WEBHOOK_TRIGGER", "pr/42")
    assert pull_request_from_env() == 42
    monkeypatch.setenv("CODEBUILD_WEBHOOK_TRIGGER", "branch/main")
    monkeypatch.delenv("CODEBUILD_SOURCE_VERSION", raising=False)
    assert pull_request_from_env() is None


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")
def test_plan_posts_its_summary_and_honours_the_allow_destroy_label(github, tmp_path, monkeypatch):
    fake, url = github
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    (tmp_path / "state").mkdir()
    plans = tmp_path / "plans"
    args = ["plan", "--synth-dir", str(synth), "--out-dir", str(plans), "--comment", "--pull-request", "7",
            "--repository", REPO, "--api-url", url, "--protected-type", "terraform_data"]
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.stderr
    ours = [c for c in fake.comments[7] if marker("plan") in c["body"]]
    assert len(ours) == 1 and "`+` create `terraform_data.web`" in ours[0]["body"]
    assert runner.invoke(cli, ["apply", "--synth-dir", str(synth), "--out-dir", str(plans), "--yes"]).exit_code == 0

    edit_stack(synth, "app", lambda b: b["resource"]["terraform_data"].pop("worker"))
    result = runner.invoke(cli, args)
    assert result.exit_code == 1  # protected destroy, no label
    assert "this plan FAILS" in fake.comments[7][-1]["body"]
    fake.labels[7].append("allow-destroy")
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "protected destroys allowed" in result.stderr
    ours = [c for c in fake.comments[7] if marker("plan") in c["body"]]
    assert len(ours) == 1 and "allowed by the allow-destroy label" in ours[0]["body"]  # one comment, updated

    # the apply build finds the merged pull request from its commit and comments there
    fake.merged["abc123"] = 7
    result = runner.invoke(cli, ["plan", "--synth-dir", str(synth), "--out-dir", str(plans), "--comment",
                                 "--commit", "abc123", "--repository", REPO, "--api-url", url, "--output", "json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["comment"]["action"] == "created"
    assert any(marker("apply") in c["body"] for c in fake.comments[7])
    assert Path(plans / "summary.md").read_text() in fake.comments[7][-1]["body"]
