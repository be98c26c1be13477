"""``fleetform bastion connect|list`` against a real moto server on 127.0.0.1: lookup by tag,
clear errors for none/several/stopped/wrong account, the missing-plugin message, and the
session command really executed (a fake ``aws`` on PATH records its argv)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from fleetform.naming import BASTION_NAME_TAG, SESSION_DOCUMENT
from fleetform.scripts.main import cli

MOTO_ACCOUNT = "123456789012"  # moto's default account for any test credentials
REGION = "ap-northeast-1"


@pytest.fixture
def config_dir(accounts_copy: Path) -> Path:
    """The example organization with dev's id set to moto's account (stg keeps its own)."""
    dev = accounts_copy / "dev.yaml"
    dev.write_text(dev.read_text().replace('id: "555555555555"', f'id: "{MOTO_ACCOUNT}"'))
    return accounts_copy


@pytest.fixture
def ec2(moto_endpoint: str):
    return boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint)


_IMAGES: list[str] = []  # moto's bundled AMIs survive a reset; listing them takes seconds


def launch(ec2, name: str | None = BASTION_NAME_TAG, state: str = "running") -> str:
    if not _IMAGES:
        _IMAGES.append(ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])
    image = _IMAGES[0]
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}] if name else []
    instance = ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1,
                                 TagSpecifications=tags)["Instances"][0]["InstanceId"]
    if state == "stopped":
        ec2.stop_instances(InstanceIds=[instance])
    elif state == "terminated":
        ec2.terminate_instances(InstanceIds=[instance])
    return instance


def run(config_dir: Path, endpoint: str, *args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, [*args, "--config", str(config_dir), "--endpoint-url", endpoint], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def expected_command(instance: str, endpoint: str) -> list[str]:
    return ["aws", "ssm", "start-session", "--target", instance, "--document-name", SESSION_DOCUMENT,
            "--region", REGION, "--endpoint-url", endpoint]


def fake_tools(directory: Path, *, plugin: bool = True, exit_code: int = 0) -> Path:
    """A PATH directory with an ``aws`` that records its argv (one per line) and, optionally, the plugin."""
    directory.mkdir()
    log = directory / "aws-argv.txt"
    scripts = {"aws": f'#!/bin/sh\nprintf \'%s\\n\' "$@" > {shlex.quote(str(log))}\nexit {exit_code}\n'}
    if plugin:
        scripts["session-manager-plugin"] = "#!/bin/sh\nexit 0\n"
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return log


# ------------------------------------------------------------------ finding the bastion


def test_dry_run_finds_the_running_bastion_by_tag(config_dir, moto_endpoint, ec2):
    launch(ec2, name=None)
    launch(ec2, name="something-else")
    launch(ec2, state="stopped")  # stopped bastions are ignored
    launch(ec2, state="terminated")
    bastion = launch(ec2)
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == shlex.join(expected_command(bastion, moto_endpoint))


def test_dry_run_json_names_instance_account_and_command(config_dir, moto_endpoint, ec2):
    bastion = launch(ec2)
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run", "--output", "json",
                 "--region", REGION)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["account"] == "dev" and data["account_id"] == MOTO_ACCOUNT and data["region"] == REGION
    assert data["instance"]["instance_id"] == bastion and data["instance"]["state"] == "running"
    assert data["command"] == expected_command(bastion, moto_endpoint)
    assert data["document"] == SESSION_DOCUMENT and data["dry_run"] is True


def test_no_bastion_is_a_clear_error(config_dir, moto_endpoint, ec2):
    launch(ec2, name="web")
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run")
    assert result.exit_code == 1
    assert f"no running bastion (tag Name={BASTION_NAME_TAG}) in account dev ({MOTO_ACCOUNT}, {REGION})" in \
        result.stderr
    assert "Traceback" not in result.output


def test_only_stopped_bastions_are_named_in_the_error(config_dir, moto_endpoint, ec2):
    stopped = launch(ec2, state="stopped")
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run")
    assert result.exit_code == 1
    assert f"not running: {stopped} (stopped)" in result.stderr


def test_several_running_bastions_are_a_clear_error(config_dir, moto_endpoint, ec2):
    first, second = launch(ec2), launch(ec2)
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run")
    assert result.exit_code == 1
    assert f"2 running instances are tagged Name={BASTION_NAME_TAG}" in result.stderr
    assert first in result.stderr and second in result.stderr


def test_credentials_of_another_account_are_refused(config_dir, moto_endpoint, ec2):
    launch(ec2)  # moto's account has a bastion, but stg is 444444444444
    result = run(config_dir, moto_endpoint, "bastion", "connect", "stg", "--dry-run")
    assert result.exit_code == 1
    assert f"the credentials are for account {MOTO_ACCOUNT}" in result.stderr
    assert "stg is 444444444444" in result.stderr


@pytest.mark.parametrize(("env", "message"), [
    ("qa", "no account named 'qa'"),
    ("management", "account 'management' has no bastion"),
])
def test_unknown_account_or_account_without_bastion_is_bad_usage(config_dir, moto_endpoint, env, message):
    result = run(config_dir, moto_endpoint, "bastion", "connect", env)
    assert result.exit_code == 2
    assert message in result.stderr and "accounts with a bastion: dev, prod, stg" in result.stderr


def test_unknown_profile_is_bad_usage(config_dir, moto_endpoint):
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--profile", "nope", "--dry-run")
    assert result.exit_code == 2
    assert "--profile" in result.stderr and "nope" in result.stderr


def test_unreachable_endpoint_is_an_error_not_a_traceback(config_dir):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = run(config_dir, f"http://127.0.0.1:{closed}", "bastion", "connect", "dev", "--dry-run",
                 env={"AWS_MAX_ATTEMPTS": "1"})
    assert result.exit_code == 1
    assert "checking the credentials in account dev" in result.stderr
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ starting the session


def test_missing_plugin_prints_how_to_install_and_the_exact_command(config_dir, moto_endpoint, ec2, tmp_path,
                                                                     monkeypatch):
    bastion = launch(ec2)
    fake_tools(tmp_path / "bin", plugin=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev")
    assert result.exit_code == 1
    assert "session-manager-plugin not found on PATH" in result.stderr
    assert "brew install --cask session-manager-plugin" in result.stderr
    assert shlex.join(expected_command(bastion, moto_endpoint)) in result.stderr


def test_missing_aws_cli_and_plugin_are_both_named(config_dir, moto_endpoint, ec2, tmp_path, monkeypatch):
    bastion = launch(ec2)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--output", "json")
    assert result.exit_code == 1
    assert "aws and session-manager-plugin not found" in result.stderr
    assert "getting-started-install" in result.stderr
    assert json.loads(result.stdout)["missing_tools"] == ["aws", "session-manager-plugin"]
    assert shlex.join(expected_command(bastion, moto_endpoint)) in result.stderr


@pytest.mark.parametrize("exit_code", [0, 3])
def test_session_command_is_executed_and_its_status_returned(config_dir, moto_endpoint, ec2, tmp_path, monkeypatch,
                                                             exit_code):
    bastion = launch(ec2)
    log = fake_tools(tmp_path / "bin", exit_code=exit_code)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ.get("PATH", ""))
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev")
    assert result.exit_code == exit_code, result.output
    assert log.read_text().splitlines() == expected_command(bastion, moto_endpoint)[1:]
    assert f"connecting to {bastion} in dev" in result.stderr


def test_dry_run_starts_nothing(config_dir, moto_endpoint, ec2, tmp_path, monkeypatch):
    launch(ec2)
    log = fake_tools(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ.get("PATH", ""))
    result = run(config_dir, moto_endpoint, "bastion", "connect", "dev", "--dry-run")
    assert result.exit_code == 0
    assert not log.exists()


# ------------------------------------------------------------------ list


def test_list_shows_running_and_stopped_bastions(config_dir, moto_endpoint, ec2):
    running, stopped = launch(ec2), launch(ec2, state="stopped")
    launch(ec2, name="web")
    result = run(config_dir, moto_endpoint, "bastion", "list", "dev", "--output", "json")
    assert result.exit_code == 0, result.output
    states = {i["instance_id"]: i["state"] for i in json.loads(result.stdout)["instances"]}
    assert states == {running: "running", stopped: "stopped"}
    text = run(config_dir, moto_endpoint, "bastion", "list", "dev")
    assert text.exit_code == 0 and running in text.stdout and "stopped" in text.stdout


def test_help_has_examples():
    for args in (["bastion", "--help"], ["bastion", "connect", "--help"], ["bastion", "list", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Example:" in result.output
