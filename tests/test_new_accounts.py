"""Accounts as code: a new account (no id), writing its id later, adoption, closing, and the errors.

Synth assertions on the example organization plus one account file; the pipeline side is in
tests/test_new_accounts_pipeline.py (real Terraform on stand-in stacks).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.errors import ConfigurationError
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth

ROOT = Path(__file__).resolve().parent.parent
NEW = """account:
  name: analytics
  email: aws+analytics@familyalbum.example
  ou: Workloads/NonProd
network: {cidr: 10.50.0.0/16, azs: 2, nat: single}
"""
CREATED_ID = "210987654321"  # the id AWS gave the account, written into the file afterwards
KNOWN_IDS = {"111111111111", "222222222222", "333333333333", "444444444444", "555555555555"}
ACCOUNT_REF = "${data.terraform_remote_state.cross-stack-reference-input-organization.outputs." \
              "cross-stack-output-aws_organizations_account_org_account-analytics_id}"
ANALYTICS_STACKS = ("analytics-baseline", "analytics-network")


def synth_with(config_dir: Path, out: Path, analytics: str) -> Path:
    (config_dir / "analytics.yaml").write_text(analytics)
    synth(load_config(str(config_dir)), out)
    return out


def body(out: Path, stack: str) -> dict:
    return json.loads((out / "stacks" / stack / "cdk.tf.json").read_text())


@pytest.fixture(scope="module")
def new_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("new-account")
    shutil.copytree(ROOT / "accounts", tmp / "accounts")
    return synth_with(tmp / "accounts", tmp / "out", NEW)


@pytest.fixture(scope="module")
def written_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("id-written")
    shutil.copytree(ROOT / "accounts", tmp / "accounts")
    return synth_with(tmp / "accounts", tmp / "out", NEW.replace("  name: analytics\n",
                                                                  f'  name: analytics\n  id: "{CREATED_ID}"\n'))


def test_the_organization_stack_creates_the_new_account_and_outputs_its_id(new_out):
    organization = body(new_out, "organization")
    account = organization["resource"]["aws_organizations_account"]["org_account-analytics"]
    assert account["name"] == "analytics" and account["email"] == "aws+analytics@familyalbum.example"
    assert account["parent_id"] == "${aws_organizations_organizational_unit.org_ou-Workloads--NonProd.id}"
    assert account["role_name"] == "OrganizationAccountAccessRole"  # the baseline's first apply goes through it
    assert account["close_on_deletion"] is False and account["lifecycle"]["prevent_destroy"] is True
    assert "import" not in organization  # created, not adopted
    assert organization["output"]["account_id_analytics"]["value"] == \
        "${aws_organizations_account.org_account-analytics.id}"


def test_the_new_accounts_stacks_take_the_id_from_the_organization_stack(new_out):
    manifest = json.loads((new_out / "manifest.json").read_text())["stacks"]
    for stack in ANALYTICS_STACKS:
        document = body(new_out, stack)
        (provider,) = document["provider"]["aws"]
        assert provider["allowed_account_ids"] == [ACCOUNT_REF]
        assert provider["assume_role"][0]["role_arn"] == f"arn:aws:iam::{ACCOUNT_REF}:role/${{var.fleetform_role}}"
        remote = document["data"]["terraform_remote_state"]["cross-stack-reference-input-organization"]
        assert remote["config"]["key"] == "organization/terraform.tfstate"
        assert "organization" in manifest[stack]["dependencies"]
        # no typed id: the only account ids are those of the accounts that existed before (pipeline, log archive)
        assert set(re.findall(r"(?<!\d)\d{12}(?!\d)", json.dumps(document))) <= KNOWN_IDS
    baseline = json.dumps(body(new_out, "analytics-baseline"))
    assert f"arn:aws:iam::{ACCOUNT_REF}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig" \
        in baseline.replace('\\"', '"')


def test_other_stacks_that_name_the_new_account_read_it_too(new_out):
    # the AWS Config bucket lets the account deliver (same stack: a plain reference), the pipeline may assume into it
    config_policy = json.dumps(body(new_out, "organization")["resource"]["aws_s3_bucket_policy"])
    assert "aws_organizations_account.org_account-analytics.id" in config_policy
    assert ACCOUNT_REF.replace("${", "").replace("}", "") in json.dumps(body(new_out, "pipeline"))


def normalized(document: dict) -> dict:
    """The stack's resources with the new account's id expression (remote state) put as the id it resolves to."""
    text = json.dumps(document["resource"], sort_keys=True)
    return json.loads(text.replace(ACCOUNT_REF, CREATED_ID))


@pytest.mark.parametrize("stack", ANALYTICS_STACKS)
def test_writing_the_id_later_changes_no_resource(new_out, written_out, stack):
    before, after = body(new_out, stack), body(written_out, stack)
    assert set(before["resource"]) == set(after["resource"])
    for kind in before["resource"]:
        assert set(before["resource"][kind]) == set(after["resource"][kind]), kind
    # every resource is the same but for the id's spelling: remote state (read at plan time, so known
    # when the plan is made) before, the literal after; tests/test_new_accounts_pipeline.py shows
    # Terraform plans no change for that
    assert normalized(before) == normalized(after)
    assert ACCOUNT_REF not in json.dumps(after)
    assert after["provider"]["aws"][0]["allowed_account_ids"] == [CREATED_ID]


def test_writing_the_id_later_keeps_the_organization_stacks_account_as_it_is(new_out, written_out):
    before = body(new_out, "organization")["resource"]["aws_organizations_account"]
    after = body(written_out, "organization")["resource"]["aws_organizations_account"]
    assert before == after  # same attributes, and still created here: no import block appears
    assert "import" not in body(written_out, "organization")


def test_adopt_imports_the_existing_account_without_creating_one(tmp_path):
    shutil.copytree(ROOT / "accounts", tmp_path / "accounts")
    adopted = NEW.replace("  name: analytics\n", f'  name: analytics\n  id: "{CREATED_ID}"\n  adopt: true\n')
    out = synth_with(tmp_path / "accounts", tmp_path / "out", adopted)
    organization = body(out, "organization")
    assert organization["import"] == [{"id": CREATED_ID, "to": "aws_organizations_account.org_account-analytics"}]
    assert "account_id_analytics" not in organization.get("output", {})
    provider = body(out, "analytics-baseline")["provider"]["aws"][0]
    assert provider["allowed_account_ids"] == [CREATED_ID]
    assert "terraform_remote_state" not in json.dumps(body(out, "analytics-network"))
    from fleetform.checks.checkov_scan import scan_stacks

    scan = scan_stacks(out, ["organization"])  # checkov's parser fails on import blocks: the scan leaves them out
    assert scan.failed == [] and scan.parsing_errors == [] and scan.passed > 50


def test_closed_drops_prevent_destroy_and_sets_close_on_deletion(tmp_path):
    shutil.copytree(ROOT / "accounts", tmp_path / "accounts")
    stg = tmp_path / "accounts" / "stg.yaml"
    stg.write_text(stg.read_text().replace("  ou: Workloads/NonProd\n", "  ou: Workloads/NonProd\n  closed: true\n"))
    synth(load_config(str(tmp_path / "accounts")), tmp_path / "out")
    account = body(tmp_path / "out", "organization")["resource"]["aws_organizations_account"]["org_account-stg"]
    assert account["close_on_deletion"] is True and account["lifecycle"]["prevent_destroy"] is False


def problems(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_config(str(config_dir))
    return [str(p) for p in caught.value.problems]


def test_errors_name_the_file_and_the_field(accounts_copy):
    new = accounts_copy / "analytics.yaml"
    new.write_text(NEW.replace("aws+analytics@", "aws+prod@").replace("Workloads/NonProd", "Workloads/Research"))
    (accounts_copy / "analytics2.yaml").write_text(NEW.replace("aws+analytics@", "aws+other@"))
    log_archive = accounts_copy / "log-archive.yaml"
    log_archive.write_text(log_archive.read_text().replace('  id: "222222222222"\n', ""))
    found = problems(accounts_copy)
    assert f"{accounts_copy}/analytics.yaml: account.email: 'aws+prod@familyalbum.example' is already used by " \
           f"{accounts_copy}/prod.yaml; a new account (no id) needs an email address that no other account of the " \
           "organization uses (AWS refuses CreateAccount otherwise)" in found
    assert any(p.startswith(f"{accounts_copy}/analytics.yaml") and "account.ou: unknown OU 'Workloads/Research'"
               in p for p in found)
    assert any(p.startswith(f"{accounts_copy}/analytics2.yaml") and "account.name: 'analytics' is already used by"
               in p for p in found)
    assert any(p.startswith(f"{accounts_copy}/log-archive.yaml: account.id: required: the log-archive account")
               for p in found)


def test_adopt_without_an_id_is_an_error(accounts_copy):
    (accounts_copy / "adopted.yaml").write_text(NEW.replace("analytics", "adopted").replace(
        "  ou: Workloads/NonProd\n", "  ou: Workloads/NonProd\n  adopt: true\n"))
    (found,) = problems(accounts_copy)
    assert found.startswith(f"{accounts_copy}/adopted.yaml:1: account: adopt: true needs the existing account's id "
                            "(account.id); without an id the organization stack creates a new account")


def test_validate_and_synth_say_what_happens_to_a_new_account(accounts_copy, tmp_path):
    (accounts_copy / "analytics.yaml").write_text(NEW)
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 0, result.output
    assert f"{accounts_copy}/analytics.yaml: account analytics: new: the organization stack creates it in OU " \
           "Workloads/NonProd (aws+analytics@familyalbum.example); once it exists the same pipeline run waits " \
           "until it can be assumed and applies analytics-baseline, analytics-network" in result.output
    result = CliRunner().invoke(cli, ["synth", "--config", str(accounts_copy), "--out", str(tmp_path / "out"),
                                      "--output", "json"])
    assert result.exit_code == 0, result.output
    (action,) = json.loads(result.output)["accounts"]
    assert action["account"] == "analytics" and action["action"] == "create"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"})


def test_removing_an_account_file_is_refused_unless_it_was_closed(tmp_path):
    repo = tmp_path / "infra"
    shutil.copytree(ROOT / "accounts", repo / "accounts")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "organization")
    (repo / "accounts" / "stg.yaml").unlink()
    result = CliRunner().invoke(cli, ["affected", "--base", "HEAD", "--config", str(repo / "accounts")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "accounts/stg.yaml: account: the file of account 'stg' was removed" in result.stderr
    assert "set 'closed: true' in the file and merge that first" in result.stderr
    # closed first, merged; then removing the file is the deliberate second step
    git(repo, "checkout", "-q", "--", "accounts/stg.yaml")
    stg = repo / "accounts" / "stg.yaml"
    stg.write_text(stg.read_text().replace("  ou: Workloads/NonProd\n", "  ou: Workloads/NonProd\n  closed: true\n"))
    git(repo, "commit", "-q", "-am", "stg: closing")
    stg.unlink()
    result = CliRunner().invoke(cli, ["affected", "--base", "HEAD", "--config", str(repo / "accounts"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "organization" in report["changed"] and "stg-baseline" in report["removed"]


def test_the_apply_build_may_enter_only_new_accounts_through_the_role_create_account_made(new_out):
    policies = body(new_out, "pipeline")["resource"]["aws_iam_role_policy"]
    statements = {s.get("Sid"): s for p in policies.values() for s in json.loads(p["policy"])["Statement"]}
    assert statements["FirstApplyOfNewAccounts"]["Resource"] == [
        f"arn:aws:iam::{ACCOUNT_REF}:role/OrganizationAccountAccessRole"]
    assert f"arn:aws:iam::{ACCOUNT_REF}:role/fleetform-apply" in statements["AssumeApplyRoles"]["Resource"]


def test_the_new_accounts_stacks_pass_checkov(new_out):
    from fleetform.checks.checkov_scan import scan_stacks

    result = scan_stacks(new_out, ["organization", "pipeline", *ANALYTICS_STACKS])
    assert result.parsing_errors == []
    assert result.failed == [], "\n".join(map(str, result.failed))
    assert result.passed > 50
