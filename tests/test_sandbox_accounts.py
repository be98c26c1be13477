"""preflight and bastion in the sandbox: the organization with the ids accounts/ gives, keys per account,
the bastions as their stacks make them (fleetform.sandbox.accounts), against a real moto server; and the
commands against a real `fleetform sandbox up`, including what moto cannot do (Session Manager)."""

from __future__ import annotations

import configparser
import json
import stat
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ACCOUNTS, free_port

from fleetform.config import load_config
from fleetform.constructs.bastion import AMI_PARAMETER
from fleetform.naming import BASTION_NAME_TAG
from fleetform.sandbox.accounts import profile_name, seed_accounts
from fleetform.scripts.main import cli

REGION = "ap-northeast-1"


def use_credentials(monkeypatch: pytest.MonkeyPatch, path: Path | str) -> None:
    """Only the sandbox's credentials file: no keys in the environment (conftest sets fakes)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))


def client(profile: str, service: str, endpoint: str, credentials: Path):
    parser = configparser.ConfigParser()
    parser.read(credentials)
    keys = parser[profile]
    return boto3.Session(aws_access_key_id=keys["aws_access_key_id"],
                         aws_secret_access_key=keys["aws_secret_access_key"]).client(
        service, region_name=REGION, endpoint_url=endpoint)


@pytest.fixture(scope="module")
def seeded(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Seeded once for this module (about 5 s: moto builds EC2 for each account with a bastion); the tests
    only read, but the last, which adds a recorder in prod and a role in stg."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    return seed_accounts(moto_server, load_config(EXAMPLE_ACCOUNTS), tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
def moto_endpoint(moto_server: str, seeded: dict) -> str:
    """The module's seeded server (not emptied per test, unlike conftest's)."""
    return moto_server


def test_the_organization_and_accounts_have_the_configured_ids(seeded: dict, moto_endpoint: str) -> None:
    config = load_config(EXAMPLE_ACCOUNTS)
    credentials = Path(seeded["credentials"])
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert seeded["organization"] == config.organization.id
    assert seeded["profiles"] == {a.name: profile_name(a.name) for a in config.accounts if a.id}
    for account in config.accounts:
        identity = client(profile_name(account.name), "sts", moto_endpoint, credentials).get_caller_identity()
        assert identity["Account"] == account.id
    members = client("sandbox-management", "organizations", moto_endpoint, credentials).list_accounts()["Accounts"]
    assert {(m["Id"], m["Email"]) for m in members} >= {
        (a.id, a.spec.account.email) for a in config.accounts if a.id != config.organization.management_account_id}
    # a member sees the organization it belongs to, as preflight asks it
    org = client("sandbox-prod", "organizations", moto_endpoint, credentials).describe_organization()["Organization"]
    assert (org["Id"], org["MasterAccountId"]) == (config.organization.id, config.organization.management_account_id)


def test_bastions_are_seeded_as_their_stack_makes_them(seeded: dict, moto_endpoint: str) -> None:
    config = load_config(EXAMPLE_ACCOUNTS)
    with_bastion = sorted(a.name for a in config.accounts if a.spec.bastion is not None)
    assert sorted(seeded["bastions"]) == with_bastion and with_bastion
    credentials = Path(seeded["credentials"])
    ec2 = client("sandbox-prod", "ec2", moto_endpoint, credentials)
    found = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [BASTION_NAME_TAG]}])[
        "Reservations"] for i in r["Instances"]]
    assert [i["InstanceId"] for i in found] == [seeded["bastions"]["prod"]]
    instance = found[0]
    assert instance["State"]["Name"] == "running" and instance["InstanceType"] == "t3.small"
    assert {"Key": "fleetform:account", "Value": "prod"} in instance["Tags"]
    ssm = client("sandbox-prod", "ssm", moto_endpoint, credentials)
    assert instance["ImageId"] == ssm.get_parameter(Name=AMI_PARAMETER.format(arch="x86_64"))["Parameter"]["Value"]
    group = client("sandbox-prod", "autoscaling", moto_endpoint, credentials).describe_auto_scaling_groups(
        AutoScalingGroupNames=[BASTION_NAME_TAG])["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"]) == (1, 1)
    # the management account has no bastion section: nothing tagged there
    management = client("sandbox-management", "ec2", moto_endpoint, credentials)
    assert management.describe_instances(Filters=[{"Name": "tag:Name", "Values": [BASTION_NAME_TAG]}])[
        "Reservations"] == []


def test_preflight_against_the_seeded_accounts_finds_what_is_wrong(seeded: dict, moto_endpoint: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    use_credentials(monkeypatch, seeded["credentials"])
    args = ["preflight", "--config", str(EXAMPLE_ACCOUNTS), "--profile", "sandbox-management", "--endpoint-url",
            moto_endpoint, "--output", "json"]
    clean = CliRunner().invoke(cli, args)
    assert clean.exit_code == 0, clean.output
    report = json.loads(clean.stdout)
    assert report["ok"] is True and report["counts"]["unknown"] == 0 and report["counts"]["action needed"] == 0
    assert {a["account"]: a["via"] for a in report["accounts"]}["prod"] == "OrganizationAccountAccessRole"
    # what the first apply would run into, made in the sandbox's accounts with their own keys
    credentials = Path(seeded["credentials"])
    client("sandbox-prod", "config", moto_endpoint, credentials).put_configuration_recorder(ConfigurationRecorder={
        "name": "control-tower", "roleARN": "arn:aws:iam::333333333333:role/aws-controltower-ConfigRecorderRole"})
    # the role AWS Config made in stg before fleetform (moto's CreateServiceLinkedRole names it otherwise)
    client("sandbox-stg", "iam", moto_endpoint, credentials).create_role(
        RoleName="AWSServiceRoleForConfig", Path="/aws-service-role/config.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    found = CliRunner().invoke(cli, args)
    assert found.exit_code == 1, found.output
    report = json.loads(found.stdout)
    status = {(a["account"], c["check"]): c for a in report["accounts"] for c in a["checks"]}
    assert status[("prod", "config recorders")]["status"] == "action needed"
    assert "control-tower in ap-northeast-1" in status[("prod", "config recorders")]["detail"]
    assert status[("stg", "service-linked role")]["status"] == "action needed"
    assert {f["path"]: f["yaml"] for f in report["fixes"]}["organization.aws_config.existing_service_linked_role"] \
        .strip().endswith("existing_service_linked_role: [stg]")
    assert report["counts"]["action needed"] == 2


def test_preflight_and_bastion_in_a_running_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "sandbox"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    base = ["--config", str(EXAMPLE_ACCOUNTS), "--endpoint-url", endpoint]
    try:
        up = CliRunner().invoke(cli, ["sandbox", "up", "--port", str(port), "--state-dir", str(state), "--config",
                                      str(EXAMPLE_ACCOUNTS), "--output", "json"])
        assert up.exit_code == 0, up.output
        accounts = json.loads(up.stdout)["seeded"]["accounts"]
        credentials = accounts["credentials"]
        assert credentials == str((state / "credentials").resolve())

        # no credentials: exit 2, and where the sandbox's are
        use_credentials(monkeypatch, tmp_path / "none")
        bare = CliRunner().invoke(cli, ["preflight", *base])
        assert bare.exit_code == 2 and f"AWS_SHARED_CREDENTIALS_FILE={credentials}" in bare.stderr
        assert "--profile sandbox-management" in bare.stderr
        bare = CliRunner().invoke(cli, ["bastion", "list", "prod", *base])
        assert bare.exit_code == 2 and "--profile sandbox-prod" in bare.stderr, bare.output

        use_credentials(monkeypatch, credentials)
        listed = CliRunner().invoke(cli, ["bastion", "list", "prod", *base, "--profile", "sandbox-prod",
                                          "--output", "json"])
        assert listed.exit_code == 0, listed.output
        instances = json.loads(listed.stdout)["instances"]
        assert [(i["instance_id"], i["state"]) for i in instances] == [(accounts["bastions"]["prod"], "running")]

        other = CliRunner().invoke(cli, ["bastion", "list", "prod", *base, "--profile", "sandbox-stg"])
        assert other.exit_code == 1 and "but prod is 333333333333" in other.stderr
        assert "--profile sandbox-prod" in other.stderr

        dry = CliRunner().invoke(cli, ["bastion", "connect", "prod", *base, "--profile", "sandbox-prod", "--dry-run"])
        assert dry.exit_code == 0 and f"--target {accounts['bastions']['prod']}" in dry.stdout, dry.output

        # moto has no Session Manager: said, not faked; the JSON document carries the same error
        connect = CliRunner().invoke(cli, ["bastion", "connect", "prod", *base, "--profile", "sandbox-prod",
                                           "--output", "json"])
        assert connect.exit_code == 1, connect.output
        document = json.loads(connect.stdout)
        assert "ssm:StartSession" in document["error"] and accounts["bastions"]["prod"] in document["error"]
        assert document["instance"]["instance_id"] == accounts["bastions"]["prod"]
    finally:
        CliRunner().invoke(cli, ["sandbox", "down", "--state-dir", str(state)])
