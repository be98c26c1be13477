"""fleetform affected on a real git repository: a one-line change lists one account's stacks,
not the organization; cdktn metadata is ignored; a code change is seen through the base's code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.tfstacks import stack_body, terraform_data, write_synth

from fleetform.affected import compare, strip_metadata
from fleetform.manifest import read_manifest
from fleetform.scripts.main import cli

ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"})
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: the example organization, then prod's NAT changed from per-az to single."""
    root = tmp_path / "infra"
    shutil.copytree(ROOT / "accounts", root / "accounts")
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "organization")
    edit(root / "accounts" / "prod.yaml", "nat: per-az", "nat: single")
    commit_all(root, "prod: one NAT gateway")
    return root


def affected(repo: Path, base: str) -> dict:
    result = CliRunner().invoke(cli, ["affected", "--base", base, "--config", str(repo / "accounts"), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_one_line_change_lists_only_that_stack_and_its_dependents(repo):
    report = affected(repo, "HEAD~1")
    assert report["changed"] == ["prod-network"]
    assert report["added"] == [] and report["removed"] == []
    assert report["stacks"][0] == "prod-network"
    assert set(report["stacks"]) == {"prod-network", *report["dependents"]}
    assert not [s for s in report["stacks"] if s.startswith(("bootstrap", "organization"))]
    # of the other accounts only their Transit Gateway attachments and their service slots (which write
    # their Argo CD registrations into the ops account, after its shared stack) follow the ops network
    assert {s for s in report["stacks"] if s.startswith(("dev-", "stg-"))} == {
        "dev-transit", "stg-transit", "dev-main-blue", "stg-main-blue"}
    assert report["base_code"] == "current"  # this repository holds configuration only


def test_new_account_in_the_working_tree_is_added(repo):
    qa = (repo / "accounts" / "dev.yaml").read_text()
    qa = qa.replace("name: dev", "name: qa").replace('"555555555555"', '"777777777777"') \
           .replace("aws+dev@", "aws+qa@").replace("10.30.0.0/16", "10.70.0.0/16").replace("dev.familyalbum", "qa.fa")
    (repo / "accounts" / "qa.yaml").write_text(qa)
    result = CliRunner().invoke(cli, ["affected", "--base", "HEAD", "--config", str(repo / "accounts")])
    assert result.exit_code == 0, result.output
    labels = dict(line.split("\t") for line in result.stdout.splitlines())
    assert labels["qa-network"] == "added"
    # the new account changes the organization stack; what depends on it is listed, not "changed"
    assert labels["organization"] == "changed"
    # a new spoke of the ops hub: the ops network shares the Transit Gateway with it and routes to it
    assert labels["prod-network"] == "changed" and labels["qa-transit"] == "added"
    assert "changed" not in {v for k, v in labels.items() if k.startswith(("dev-", "stg-"))}


def test_code_change_is_seen_through_the_base_revisions_code(repo):
    """The base commit carries its own fleetform package; it is what synthesizes the base."""
    shutil.copytree(ROOT / "fleetform", repo / "fleetform", ignore=shutil.ignore_patterns("__pycache__"))
    logs = repo / "fleetform" / "constructs" / "logs.py"
    edit(logs, "retention_in_days=cloudwatch_retention(props.retention_days),",
         "retention_in_days=cloudwatch_retention(props.retention_days) + 1,")
    commit_all(repo, "older construct code")
    shutil.copy2(ROOT / "fleetform" / "constructs" / "logs.py", logs)  # the working tree: today's code
    report = affected(repo, "HEAD")
    assert report["base_code"] == "base"
    assert {"prod-network", "dev-network", "stg-network"} <= set(report["changed"])


def test_unknown_base_is_a_usage_error(repo):
    result = CliRunner().invoke(cli, ["affected", "--base", "no-such-ref", "--config", str(repo / "accounts")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--base 'no-such-ref': no such commit, branch or tag" in result.stderr


def test_metadata_only_differences_are_ignored(tmp_path):
    body = stack_body(terraform_data(a="1"))
    moved = json.loads(json.dumps(body))
    moved["//"] = {"metadata": {"version": "9.9.9", "stackName": "other"}}
    moved["resource"]["terraform_data"]["a"]["//"] = {"metadata": {"path": "x/y", "uniqueId": "y"}}
    assert strip_metadata(moved) == strip_metadata(body)
    base = read_manifest(write_synth(tmp_path / "base", {"a": body, "b": body, "old": body}, {"b": ["a"]}))
    changed = json.loads(json.dumps(body))
    changed["resource"]["terraform_data"]["a"]["input"] = "2"
    head = read_manifest(write_synth(tmp_path / "head", {"a": changed, "b": moved, "c": body, "d": moved},
                                     {"b": ["a"], "d": ["c"]}))
    result = compare(base, head, "HEAD~1")
    assert (result.changed, result.added, result.removed, result.dependents) == (["a"], ["c", "d"], ["old"], ["b"])
    assert result.stacks == ["a", "c", "b", "d"]
