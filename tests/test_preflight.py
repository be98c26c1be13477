"""``fleetform preflight`` against a real moto server: an organization made there, the example
accounts/ rewritten to its account and organization ids, each member reached through
OrganizationAccountAccessRole (moto's STS switches account by the role ARN, as AWS does).

moto grants everything, so "access denied" comes from botocore's Stubber on a real client for
one account (the answer AWS gives an operator whose role lacks the permission).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

import fleetform.preflight as preflight
from fleetform.naming import ORGANIZATION_ACCESS_ROLE, role_arn
from fleetform.scripts.main import cli

REGION = "ap-northeast-1"
MANAGEMENT = "123456789012"  # moto's account for the test credentials
EXAMPLE_IDS = {"log-archive": "222222222222", "prod": "333333333333", "stg": "444444444444", "dev": "555555555555"}
CONFIG_ROLE_PATH = "/aws-service-role/config.amazonaws.com/"
CONTROL_TOWER_RECORDER = "aws-controltower-BaselineConfigRecorder"


@pytest.fixture
def org(moto_endpoint: str, accounts_copy: Path) -> dict:
    """An organization in moto with the example's four member accounts; accounts/ rewritten to match."""
    client = boto3.client("organizations", region_name=REGION, endpoint_url=moto_endpoint)
    org_id = client.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    ids = {}
    for name in EXAMPLE_IDS:
        status = client.create_account(AccountName=name, Email=f"aws+{name}@familyalbum.example")
        ids[name] = status["CreateAccountStatus"]["AccountId"]
    for path in accounts_copy.glob("*.yaml"):
        text = path.read_text().replace("111111111111", MANAGEMENT).replace("o-fam1lyalbum0", org_id)
        for name, example_id in EXAMPLE_IDS.items():
            text = text.replace(example_id, ids[name])
        path.write_text(text)
    return {"id": org_id, "ids": {"management": MANAGEMENT, **ids}, "config": accounts_copy,
            "endpoint": moto_endpoint}


def member(org: dict, name: str, service: str, region: str = REGION):
    """A client in a member account, reached as preflight reaches it."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=org["endpoint"])
    creds = sts.assume_role(RoleArn=role_arn(org["ids"][name], ORGANIZATION_ACCESS_ROLE),
                            RoleSessionName="test")["Credentials"]
    return boto3.client(service, region_name=region, endpoint_url=org["endpoint"],
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def add_config_role(org: dict, name: str) -> None:
    # AWSServiceRoleForConfig as IAM has it; moto's create_service_linked_role names it
    # "AWSServiceRoleForconfig" (lower case), so the role is made with AWS's name and path
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    member(org, name, "iam").create_role(RoleName=preflight.CONFIG_ROLE_NAME, Path=CONFIG_ROLE_PATH,
                                         AssumeRolePolicyDocument=trust)


def set_listed(org: dict, names: list[str]) -> None:
    path = org["config"] / "organization.yaml"
    text = re.sub(r"existing_service_linked_role: \[[^\]]*\]", f"existing_service_linked_role: [{', '.join(names)}]",
                  path.read_text())
    path.write_text(text)


def run(org: dict, *extra: str):
    return CliRunner().invoke(cli, ["preflight", "--config", str(org["config"]), "--endpoint-url", org["endpoint"],
                                    *extra])


def findings(document: dict) -> dict[tuple[str, str], dict]:
    return {(a["account"], c["check"]): c for a in document["accounts"] for c in a["checks"]}


def test_a_ready_organization_passes(org):
    result = run(org, "--output", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["ok"] is True and document["fixes"] == []
    assert [a["account"] for a in document["accounts"]] == ["dev", "log-archive", "management", "prod", "stg"]
    assert {c["status"] for a in document["accounts"] for c in a["checks"]} == {"ok"}
    by_check = findings(document)
    assert by_check[("management", "access")]["detail"] == "the caller's credentials (management account)"
    assert by_check[("prod", "access")]["detail"].startswith(ORGANIZATION_ACCESS_ROLE)
    assert by_check[("prod", "organization")]["detail"] == f"member of {org['id']}"


def test_mismatch_in_both_directions_gives_the_yaml_to_paste(org):
    add_config_role(org, "prod")  # has the role, not listed: "has been taken"
    add_config_role(org, "stg")  # has it and is listed: fine
    set_listed(org, ["log-archive", "stg"])  # log-archive is listed without the role
    result = run(org, "--output", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    by_check = findings(document)
    assert by_check[("prod", "service-linked role")]["status"] == "action needed"
    assert "has been taken" in by_check[("prod", "service-linked role")]["detail"]
    assert by_check[("log-archive", "service-linked role")]["status"] == "action needed"
    assert "does not exist" in by_check[("log-archive", "service-linked role")]["detail"]
    assert by_check[("stg", "service-linked role")]["status"] == "ok"
    assert by_check[("dev", "service-linked role")]["status"] == "ok"
    assert document["fixes"] == [{
        "file": f"{org['config']}/organization.yaml", "path": "organization.aws_config.existing_service_linked_role",
        "yaml": "organization:\n  aws_config:\n    existing_service_linked_role: [prod, stg]\n"}]

    # pasting the fix makes it pass
    set_listed(org, ["prod", "stg"])
    assert run(org, "--output", "json").exit_code == 0


def test_human_output_has_the_table_details_and_fix(org):
    add_config_role(org, "dev")
    result = run(org)
    assert result.exit_code == 1, result.output
    assert "service-linked role" in result.output and "management" in result.output
    assert "action needed dev service-linked role: AWSServiceRoleForConfig exists" in result.output
    assert "existing_service_linked_role: [dev]" in result.output
    assert "1 action needed" in result.output


def test_a_recorder_not_named_default_needs_action(org):
    member(org, "stg", "config", "us-east-1").put_configuration_recorder(ConfigurationRecorder={
        "name": CONTROL_TOWER_RECORDER, "roleARN": f"arn:aws:iam::{org['ids']['stg']}:role/x"})
    member(org, "prod", "config").put_configuration_recorder(ConfigurationRecorder={
        "name": "default", "roleARN": f"arn:aws:iam::{org['ids']['prod']}:role/x"})  # taken over in place: fine
    result = run(org, "--output", "json")
    assert result.exit_code == 1, result.output
    by_check = findings(json.loads(result.output))
    stg = by_check[("stg", "config recorders")]
    assert stg["status"] == "action needed"
    assert f"{CONTROL_TOWER_RECORDER} in us-east-1" in stg["detail"]
    assert by_check[("prod", "config recorders")]["status"] == "ok"


def stub_for(monkeypatch, account_id: str, service: str, operation: str, code: str) -> list[Stubber]:
    """Every ``service`` client for ``account_id`` answers ``operation`` with ``code`` (a real client
    whose requests the Stubber checks against the service model)."""
    real = preflight.default_client
    stubs: list[Stubber] = []

    def client(target, session, name, region, endpoint_url=None):
        made = real(target, session, name, region, endpoint_url)
        if target == account_id and name == service:
            stub = Stubber(made)
            stub.add_client_error(operation, service_error_code=code, service_message="User: arn:aws:sts::x "
                                  f"is not authorized to perform: {service}:{operation}", http_status_code=403)
            stub.activate()
            stubs.append(stub)
        return made

    monkeypatch.setattr(preflight, "default_client", client)
    return stubs


def test_access_denied_in_one_account_is_unknown_with_the_reason(org, monkeypatch):
    stubs = stub_for(monkeypatch, org["ids"]["dev"], "iam", "get_role", "AccessDenied")
    result = run(org, "--output", "json")
    assert result.exit_code == 0, result.output  # unknown is not "action needed"
    document = json.loads(result.output)
    dev = findings(document)[("dev", "service-linked role")]
    assert dev["status"] == "unknown"
    assert "AccessDenied" in dev["detail"] and "iam:get_role" in dev["detail"]
    assert findings(document)[("dev", "config recorders")]["status"] == "ok"  # the other checks still ran
    assert findings(document)[("dev", "autoscaling role")]["status"] == "unknown"  # iam:GetRole denied too
    assert document["counts"] == {"ok": 23, "unknown": 2, "action needed": 0}
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_a_listed_account_that_cannot_be_checked_stays_in_the_fix(org, monkeypatch):
    add_config_role(org, "prod")
    set_listed(org, ["dev"])
    stub_for(monkeypatch, org["ids"]["dev"], "iam", "get_role", "AccessDenied")
    document = json.loads(run(org, "--output", "json").output)
    assert document["fixes"][0]["yaml"].endswith("existing_service_linked_role: [dev, prod]\n")


def test_role_that_cannot_be_assumed_leaves_the_account_unknown(org, monkeypatch):
    stub_for(monkeypatch, org["ids"]["stg"], "sts", "assume_role", "AccessDenied")
    result = run(org)
    assert result.exit_code == 0, result.output
    assert "unknown stg access: cannot assume" in result.output
    assert "unknown stg service-linked role: not checked: access is unknown" in result.output
    assert "5 unknown" in result.output  # access and the four checks it stops


def test_missing_organization_id_gives_it(org):
    path = org["config"] / "organization.yaml"
    path.write_text(re.sub(r"\n  id: o-\S+", "", path.read_text()))
    result = run(org, "--output", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert findings(document)[("prod", "organization")]["status"] == "action needed"
    assert {"file": f"{org['config']}/organization.yaml", "path": "organization.id",
            "yaml": f"organization:\n  id: {org['id']}\n"} in document["fixes"]


def test_an_account_outside_the_organization_needs_action(org, monkeypatch):
    path = org["config"] / "stg.yaml"
    outsider = "999999999999"  # moto knows no organization for it
    path.write_text(path.read_text().replace(org["ids"]["stg"], outsider))
    document = json.loads(run(org, "--output", "json").output)
    stg = findings(document)[("stg", "organization")]
    assert stg["status"] == "action needed" and "not a member of any organization" in stg["detail"]


def test_credentials_of_another_account_need_action(org):
    for path in org["config"].glob("*.yaml"):
        path.write_text(path.read_text().replace(MANAGEMENT, "000000000001"))
    result = run(org, "--output", "json")
    assert result.exit_code == 1
    access = findings(json.loads(result.output))[("management", "access")]
    assert access["status"] == "action needed" and f"account {MANAGEMENT}" in access["detail"]


def test_bad_configuration_exits_2(org):
    set_listed(org, ["nosuchaccount"])
    result = run(org)
    assert result.exit_code == 2
    assert "organization.yaml" in result.output and "existing_service_linked_role" in result.output
    assert "Traceback" not in result.output


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["preflight", "--help"])
    assert result.exit_code == 0 and "fleetform preflight --profile" in result.output


def test_config_checks_make_no_call_when_aws_config_is_off(org):
    add_config_role(org, "prod")  # would need action if Config were on
    path = org["config"] / "organization.yaml"
    path.write_text(path.read_text().replace("    enabled: true", "    enabled: false"))
    result = run(org, "--output", "json")
    assert result.exit_code == 0, result.output
    prod = findings(json.loads(result.output))[("prod", "service-linked role")]
    assert prod == {"check": "service-linked role", "status": "ok",
                    "detail": "AWS Config is off (organization.aws_config.enabled: false)"}


NEW_ACCOUNT = "account:\n  name: analytics\n  email: {email}\n  ou: Workloads/NonProd\n"


def test_a_new_account_is_not_reached_and_its_email_is_free(org):
    (org["config"] / "analytics.yaml").write_text(NEW_ACCOUNT.format(email="aws+analytics@familyalbum.example"))
    result = run(org, "--output", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    (analytics,) = [a for a in document["accounts"] if a["account"] == "analytics"]
    assert analytics["id"] == "(new)" and analytics["status"] == "ok"
    assert findings(document)[("analytics", "organization")]["detail"] == \
        "email aws+analytics@familyalbum.example is free in the organization (5 accounts)"


def test_a_new_account_with_an_email_the_organization_already_has_needs_action(org):
    # prod's address in moto's organization, under another name in accounts/: CreateAccount would refuse it
    (org["config"] / "analytics.yaml").write_text(NEW_ACCOUNT.format(email="AWS+prod@familyalbum.example"))
    prod = org["config"] / "prod.yaml"
    prod.write_text(prod.read_text().replace("aws+prod@familyalbum.example", "aws+production@familyalbum.example"))
    result = run(org, "--output", "json")
    assert result.exit_code == 1, result.output
    finding = findings(json.loads(result.output))[("analytics", "organization")]
    assert finding["status"] == "action needed"
    assert finding["detail"] == (
        f"{org['config']}/analytics.yaml: account.email aws+prod@familyalbum.example is already used by account "
        f"{org['ids']['prod']} (prod) of the organization: CreateAccount would fail. Adopt that account "
        f"(account.id: \"{org['ids']['prod']}\" and adopt: true) or choose another email")


AUTOSCALING_ROLE_PATH = "/aws-service-role/autoscaling.amazonaws.com/"


def test_the_autoscaling_role_is_checked_where_clusters_are(org):
    """prod (clusters) has AWSServiceRoleForAutoScaling but is not listed: its baseline would fail to create
    it; log-archive (no clusters) is not asked; the fix is the list to paste, which then passes."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    member(org, "prod", "iam").create_role(RoleName=preflight.AUTOSCALING_ROLE_NAME, Path=AUTOSCALING_ROLE_PATH,
                                           AssumeRolePolicyDocument=trust)
    result = run(org, "--output", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    by_check = findings(document)
    assert by_check[("prod", "autoscaling role")]["status"] == "action needed"
    assert "has been taken" in by_check[("prod", "autoscaling role")]["detail"]
    assert by_check[("stg", "autoscaling role")]["detail"] == "absent, not listed (the baseline creates it)"
    assert by_check[("log-archive", "autoscaling role")]["detail"].startswith("no clusters")
    assert document["fixes"] == [{
        "file": f"{org['config']}/organization.yaml", "path": "organization.existing_autoscaling_service_linked_role",
        "yaml": "organization:\n  existing_autoscaling_service_linked_role: [prod]\n"}]
    path = org["config"] / "organization.yaml"
    path.write_text(path.read_text().replace("existing_autoscaling_service_linked_role: []",
                                             "existing_autoscaling_service_linked_role: [prod]"))
    assert run(org, "--output", "json").exit_code == 0
