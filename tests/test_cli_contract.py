"""The contract of every command under failure (issue 17): with ``--output json`` a JSON error object
``{"ok": false, "error": ..., "exit_code": ..., "problems": [...]}`` on stdout, the documented exit status (README
"Exit statuses"), and never a traceback. A new command or subcommand must be added here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fleetform.scripts.main import COMMANDS, cli

BAD_ENDPOINT = "127.0.0.1:5055"  # no scheme: botocore would raise a bare ValueError


def broken(accounts: Path) -> Path:
    path = accounts / "prod.yaml"
    path.write_text(path.read_text().replace("min: 2, max: 6", "min: 7, max: 6", 1))
    return accounts


def upgrade(sub: str, *extra: str) -> tuple[str, ...]:
    return ("upgrade", sub, "main", "--account", "prod", "--config", "{good}", "--state-dir", "{tmp}/state",
            "--endpoint-url", BAD_ENDPOINT, *extra)


# (command line, environment, exit status, what the error says); {bad}/{good}/{tmp} are filled in
CASES: dict[str, tuple[tuple[str, ...], dict[str, str], int, str]] = {
    "validate": (("validate", "--config", "{bad}"), {}, 2, "configuration has 1 problem"),
    "synth bad config": (("synth", "--config", "{bad}", "--synth-dir", "{tmp}/out"), {}, 2, "configuration has"),
    "synth --synth-dir below a file": (("synth", "--synth-dir", "{tmp}/file/x"), {}, 2, "--synth-dir "),
    "synth --out (former name) below a file": (("synth", "--out", "{tmp}/file/x"), {}, 2,
                                               "is a file, not a directory"),
    "stacks": (("stacks", "--config", "{bad}"), {}, 2, "configuration has"),
    "stacks --json": (("stacks", "--json", "--config", "{bad}"), {}, 2, "configuration has"),
    "gitops": (("gitops", "--config", "{bad}", "--out", "{tmp}/gitops"), {}, 2, "configuration has"),
    "affected": (("affected", "--base", "HEAD", "--config", "{good}"), {}, 2, "not a git repository"),
    "plan without a synth": (("plan", "--synth-dir", "{tmp}/none", "--config", "{good}"), {}, 1,
                             "run `fleetform synth` first"),
    "plan bad config (not 'changes')": (("plan", "--synth-dir", "{tmp}/none", "--config", "{bad}", "--affected",
                                         "--base", "HEAD"), {}, 1, "configuration has"),
    "plan bad --var (not 'changes')": (("plan", "--synth-dir", "{tmp}/none", "--var", "novalue"), {}, 1,
                                       "expected KEY=VALUE"),
    "plan bad option type (not 'changes')": (("plan", "--pull-request", "abc"), {}, 1, "not a valid integer"),
    "plan-comment": (("plan-comment", "--bucket", "b", "--head-commit", "abc", "--config", "{good}",
                      "--repository", "o/r", "--shards", "1"), {"CODEBUILD_WEBHOOK_TRIGGER": ""}, 1,
                     "needs --pull-request"),
    "apply": (("apply", "--synth-dir", "{tmp}/none", "--out-dir", "{tmp}/plan", "--yes"), {}, 1,
              "run `fleetform synth` first"),
    "apply-new-accounts": (("apply-new-accounts", "--synth-dir", "{tmp}/none", "--out-dir", "{tmp}/plan", "--yes",
                            "--endpoint-url", BAD_ENDPOINT), {}, 2, "write http://127.0.0.1:5055"),
    "drift": (("drift", "--synth-dir", "{tmp}/none", "--config", "{good}"), {}, 1, "run `fleetform synth` first"),
    "bastion connect": (("bastion", "connect", "prod", "--config", "{good}", "--endpoint-url", BAD_ENDPOINT), {}, 2,
                        "write http://127.0.0.1:5055"),
    "bastion list": (("bastion", "list", "prod", "--config", "{good}"), {"AWS_ENDPOINT_URL": "localhost:5055"}, 2,
                     "AWS_ENDPOINT_URL 'localhost:5055'"),
    "bootstrap": (("bootstrap", "--config", "{bad}", "--out", "{tmp}/out", "--dry-run"), {}, 2, "configuration has"),
    "preflight": (("preflight", "--config", "{good}"), {"AWS_ENDPOINT_URL": "localhost:5055"}, 2,
                  "write http://localhost:5055"),
    "sandbox up": (("sandbox", "up", "--config", "{bad}", "--state-dir", "{tmp}/sandbox"), {}, 2, "configuration has"),
    "sandbox status": (("sandbox", "status", "--state-dir", "{tmp}/file/x"), {}, 1, "Not a directory"),
    "sandbox down": (("sandbox", "down", "--state-dir", "{tmp}/file/x"), {}, 1, "Not a directory"),
    "sandbox alarm (no --output: parse error as JSON)": (("sandbox", "alarm", "x", "--state-dir", "{tmp}/sandbox"),
                                                         {}, 2, "No such option '--output'"),
    "upgrade plan": (upgrade("plan", "--to", "1.36"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade prepare": (upgrade("prepare", "--to", "1.36"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade verify": (upgrade("verify"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade shift": (upgrade("shift", "--yes"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade resume": (upgrade("resume", "--yes"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade rollback": (upgrade("rollback", "--reason", "test"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade status": (upgrade("status"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade retire": (upgrade("retire", "--confirm", "prod-main-blue"), {}, 2, "write http://127.0.0.1:5055"),
    "upgrade plan without credentials (one error, not a row per check)": (
        ("upgrade", "plan", "main", "--account", "prod", "--to", "1.36", "--config", "{good}", "--state-dir",
         "{tmp}/state"), {"NO_CREDENTIALS": "1"}, 2, "no AWS credentials"),
    "bastion list without credentials": (("bastion", "list", "prod", "--config", "{good}"), {"NO_CREDENTIALS": "1"},
                                         2, "Unable to locate credentials"),
    "preflight without credentials": (("preflight", "--config", "{good}"), {"NO_CREDENTIALS": "1"}, 2,
                                      "no AWS credentials"),
    "upgrade permissions (no --output: parse error as JSON)": (
        ("upgrade", "permissions", "--account", "nope", "--config", "{good}"), {}, 2, "No such option '--output'"),
}


def every_command() -> set[str]:
    names = set()
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        if isinstance(command, click.Group):
            names.update(f"{name} {sub}" for sub in command.commands)
        else:
            names.add(name)
    return names


def test_every_command_is_in_the_contract():
    covered = {" ".join(args[:2]) if args[0] in ("bastion", "sandbox", "upgrade") else args[0]
               for args, *_ in CASES.values()}
    assert every_command() - covered == set()


@pytest.mark.parametrize("case", list(CASES))
def test_failure_gives_a_json_error_object_and_the_documented_status(case, accounts_copy, tmp_path, monkeypatch):
    args, env, status, says = CASES[case]
    good = tmp_path / "good"
    shutil.copytree(accounts_copy, good)
    bad = broken(accounts_copy)
    (tmp_path / "file").write_text("a file, not a directory\n")
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        if key == "NO_CREDENTIALS":  # nothing botocore could find, and no instance metadata to ask
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                         "AWS_ENDPOINT_URL"):
                monkeypatch.delenv(name, raising=False)
            for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
                monkeypatch.setenv(name, str(tmp_path / "none"))
            monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        else:
            monkeypatch.setenv(key, value)
    line = [a.format(bad=bad, good=good, tmp=tmp_path) for a in args] + ["--output", "json"]
    result = CliRunner().invoke(cli, line)
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == status, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"ok", "error", "exit_code", "problems"}, document
    assert document["ok"] is False and document["exit_code"] == status
    assert says in document["error"] or any(says in p["message"] for p in document["problems"]), document
    if document["problems"]:
        assert all({"file", "line", "path", "message"} <= set(p) for p in document["problems"])


def test_cluster_upgrade_entry_point_answers_parse_errors_in_json():
    from fleetform.scripts.upgrade import cli as cluster_upgrade

    result = CliRunner().invoke(cluster_upgrade, ["status", "main", "--bogus", "--output", "json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False and "No such option '--bogus'" in document["error"]
    assert CliRunner().invoke(cluster_upgrade, ["status", "main", "--bogus"]).stdout == ""  # text: stderr only


def test_both_commands_say_their_version():
    from fleetform import __version__
    from fleetform.scripts.upgrade import cli as upgrade_cli

    for command, name in ((cli, "fleetform"), (upgrade_cli, "cluster-upgrade")):
        result = CliRunner().invoke(command, ["--version"])
        assert result.exit_code == 0 and result.output.strip() == f"{name}, version {__version__}"


@pytest.mark.parametrize("command", [("synth",), ("bootstrap",), ("plan",), ("apply",), ("drift",),
                                     ("apply-new-accounts",), ("affected",)])
def test_the_synthesized_directory_is_synth_dir_everywhere(command):
    """One name for the synthesized directory (docs/decisions/0007-option-names.md); synth and bootstrap
    also take their former --out, and say so."""
    help_text = CliRunner().invoke(cli, [*command, "--help"]).stdout
    assert "--synth-dir" in help_text, help_text
    if command[0] in ("synth", "bootstrap"):
        assert "--synth-dir, --out" in help_text and "former name" in help_text
    else:
        assert "--out " not in help_text and "--out," not in help_text  # --out-dir is the plans' directory


def test_synth_writes_the_same_with_either_spelling(tmp_path):
    for option in ("--synth-dir", "--out"):
        result = CliRunner().invoke(cli, ["synth", option, str(tmp_path / option), "--output", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["synth_dir"] == str(tmp_path / option)
        assert (tmp_path / option / "manifest.json").is_file()
