"""The pull-request comment: posted through the GitHub REST API to a local fake of it (http.server
on 127.0.0.1), updated in place on the next plan, token from GITHUB_TOKEN or Secrets Manager."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from fixtures.tfstacks import edit_stack, two_stacks

from fleetform.errors import FleetformError
from fleetform.github import GitHub, marker, pull_request_from_env, resolve_token
from fleetform.scripts.main import cli

REPO = "familyalbum/infrastructure"
TOKEN = "ghp_test_token"


class FakeGitHub:
    """Issue comments, labels and commit->pulls of one repository, as api.github.com serves them."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict]] = {7: [{"id": 1, "body": "LGTM", "user": {"login": "alice"}}]}
        self.labels: dict[int, list[str]] = {7: ["infra"]}
        self.merged: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.next_id = 100

    def handle(self, method: str, path: str, auth: str, body: dict | None) -> tuple[int, object]:
        self.requests.append((method, path))
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        route = path.split("?")[0]
        if m := re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments", route):
            number = int(m.group(1))
            if method == "GET":
                page = int(m2.group(1)) if (m2 := re.search(r"[?&]page=(\d+)", path)) else 1
                return 200, self.comments.get(number, [])[(page - 1) * 100:page * 100]
            comment = {"id": self.next_id, "body": body["body"], "html_url": f"https://github.test/c/{self.next_id}"}
            self.next_id += 1
            self.comments.setdefault(number, []).append(comment)
            return 201, comment
        if (m := re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", route)) and method == "PATCH":
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(1)):
                        comment["body"] = body["body"]
                        return 200, {**comment, "html_url": f"https://github.test/c/{comment['id']}"}
            return 404, {"message": "Not Found"}
        if m := re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/labels", route):
            return 200, [{"name": n} for n in self.labels.get(int(m.group(1)), [])]
        if m := re.fullmatch(rf"/repos/{REPO}/commits/(\w+)/pulls", route):
            number = self.merged.get(m.group(1))
            return 200, ([{"number": number, "merged_at": "2026-01-01T00:00:00Z"}] if number else [])
        return 404, {"message": "Not Found"}


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            assert self.headers["Accept"] == "application/vnd.github+json"
            status, payload = fake.handle(self.command, self.path, self.headers.get("Authorization", ""), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
