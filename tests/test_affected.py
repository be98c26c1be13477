"""fleetform affected on a real git repository: a one-line change lists one account's stacks,
not the organization; cdktn metadata is ignored; a code change is seen through the base's code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.tfstacks import stack_body, terraform_data, write_synth

import fleetform.affected as affected_module
from fleetform.affected import CACHE_DIR, affected_stacks, compare, plan_base, strip_metadata
from fleetform.manifest import read_manifest
from fleetform.naming import BUILDSPEC_DIR_ENV, FIRST_APPLY_ENV
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


# ------------------------------------------------------------------ the base synth: skipped, cached, where it runs


def cache_entries(repo: Path) -> list[Path]:
    directory = repo / CACHE_DIR
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".")) if directory.is_dir() else []


def tamper(entry: Path, stack: str) -> None:
    """Make the cached base synth of ``stack`` differ from what a synth of the base gives."""
    path = entry / "stacks" / stack / "cdk.tf.json"
    body = json.loads(path.read_text())
    body.setdefault("locals", {})["tampered"] = "yes"
    path.write_text(json.dumps(body))


def test_cached_base_synth_is_reused_for_the_same_base_and_code(repo):
    first = affected(repo, "HEAD~1")
    [entry] = cache_entries(repo)
    tamper(entry, "dev-network")  # only a run that reads the cache sees this
    second = affected(repo, "HEAD~1")
    assert second["changed"] == sorted(["dev-network", *first["changed"]])
    uncached = CliRunner().invoke(cli, ["affected", "--base", "HEAD~1", "--config", str(repo / "accounts"),
                                        "--json", "--no-cache"])
    assert uncached.exit_code == 0, uncached.output
    assert json.loads(uncached.stdout) == first


def test_a_changed_base_commit_does_not_reuse_a_stale_synth(repo):
    affected(repo, "HEAD~1")
    [stale] = cache_entries(repo)
    tamper(stale, "dev-network")
    edit(repo / "accounts" / "dev.yaml", "10.30.0.0/16", "10.31.0.0/16")  # the working tree moves on ...
    commit_all(repo, "dev: another CIDR")
    edit(repo / "accounts" / "prod.yaml", "nat: single", "nat: per-az")  # ... and is compared with the new commit
    report = affected(repo, "HEAD")
    assert report["changed"] == ["prod-network"]  # not dev-network: the tampered entry is another commit's
    assert len(cache_entries(repo)) == 2


def test_changed_code_does_not_reuse_a_stale_synth(repo, tmp_path, monkeypatch):
    """The key covers the code that synthesizes the base: here the running package (this repository holds
    configuration only), edited in a copy."""
    affected(repo, "HEAD~1")
    [stale] = cache_entries(repo)
    tamper(stale, "dev-network")
    code = tmp_path / "code" / "fleetform"
    shutil.copytree(ROOT / "fleetform", code, ignore=shutil.ignore_patterns("__pycache__"))
    edit(code / "constructs" / "logs.py", "retention_in_days=", "retention_in_days =")
    monkeypatch.setattr(affected_module, "PACKAGE_DIR", code)
    report = affected(repo, "HEAD~1")
    assert "dev-network" not in report["changed"]
    assert len(cache_entries(repo)) == 2


def test_the_key_covers_the_engine_versions_and_the_first_apply_switch(repo, monkeypatch):
    root, config = repo, repo / "accounts"
    commit = git(repo, "rev-parse", "HEAD~1")
    key = plan_base(root, config, "accounts", commit).base_key
    assert plan_base(root, config, "accounts", commit).base_key == key  # deterministic
    monkeypatch.setenv(FIRST_APPLY_ENV, "1")
    assert plan_base(root, config, "accounts", commit).base_key != key
    monkeypatch.delenv(FIRST_APPLY_ENV)
    real = affected_module._versions
    monkeypatch.setattr(affected_module, "_versions", lambda: {**real(), "cdktn": "0.0.1"})
    assert plan_base(root, config, "accounts", commit).base_key != key


def test_unchanged_working_tree_skips_the_base_synth(repo):
    report = affected(repo, "HEAD")
    assert report["stacks"] == [] and report["changed"] == [] and report["removed"] == []
    assert cache_entries(repo) == []  # nothing was synthesized to store
    (repo / "accounts" / "notes.txt").write_text("an untracked file: the inputs differ, the base is synthesized")
    assert affected(repo, "HEAD")["stacks"] == []
    assert len(cache_entries(repo)) == 1


def test_base_synth_in_this_process_and_in_a_child_agree(repo, monkeypatch):
    monkeypatch.delenv(BUILDSPEC_DIR_ENV, raising=False)
    in_process = affected_stacks(repo / "accounts", "HEAD~1", cache=False, in_process=True)
    assert BUILDSPEC_DIR_ENV not in os.environ  # the base's buildspec directory was for its synth only
    child = affected_stacks(repo / "accounts", "HEAD~1", cache=False, in_process=False)
    assert in_process.as_dict() == child.as_dict()
    assert in_process.changed == ["prod-network"]


def test_a_cache_that_cannot_be_written_is_no_cache(repo):
    blocked = repo / CACHE_DIR
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    assert affected(repo, "HEAD~1")["changed"] == ["prod-network"]
    assert blocked.read_text() == "not a directory"
