"""``fleetform bootstrap``: the steps of the first apply and of later runs.

The bootstrap stack needs the AWS provider, which cannot be downloaded here, so the command is
run with a fake terraform script that records each call (and writes the local state on apply);
the state bucket check runs against the moto server. The migration itself -- the override file
plus ``terraform init -migrate-state -force-copy`` -- runs with the real Terraform core on a
provider-free stack against moto, so the part that moves the state is proven for real.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from fleetform.scripts.bootstrap import MIGRATED_SUFFIX, OVERRIDE_FILE, plan_steps, write_backend_override
from fleetform.scripts.main import cli

ROOT = Path(__file__).resolve().parent.parent
BUCKET, KEY, REGION = "familyalbum-tfstate", "bootstrap/terraform.tfstate", "ap-northeast-1"

FAKE_TERRAFORM = """#!{python}
import json, os, pathlib, sys
args = sys.argv[1:]
cwd = pathlib.Path.cwd()
override = (cwd / "{override}").exists()
with open(os.environ["FAKE_TF_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "override": override}}) + "\\n")
if args and args[0] == os.environ.get("FAKE_TF_FAIL"):
    print("Error: fake failure", file=sys.stderr)
    sys.exit(1)
if args[0] == "plan":
    print("Plan: 10 to add, 0 to change, 0 to destroy.")
if args[0] == "apply" and not override:
    body = json.loads((cwd / "cdk.tf.json").read_text())
    state = cwd / body["terraform"]["backend"]["local"]["path"]
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text('{{"version": 4}}')
"""


@pytest.fixture
def fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = tmp_path / "fake-terraform"
    script.write_text(FAKE_TERRAFORM.format(python=sys.executable, override=OVERRIDE_FILE))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "terraform-calls.jsonl"
    monkeypatch.setenv("FAKE_TF_LOG", str(log))

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return script, calls


def s3(endpoint: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def run_bootstrap(tmp_path: Path, endpoint: str, *extra: str, input: str | None = None):
    args = ["bootstrap", "--config", str(ROOT / "accounts"), "--out", str(tmp_path / "cdktf.out"),
            "--endpoint-url", endpoint, *extra]
    return CliRunner().invoke(cli, args, input=input)


def test_first_run_applies_with_local_state_then_migrates(tmp_path, moto_endpoint, fake_terraform):
    script, calls = fake_terraform
    result = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(script), "--yes",
                           "--backend-config", "extra.tfbackend", "--output", "json")
    assert result.exit_code == 0, result.output
    commands = [c["args"][:1] + [a for a in c["args"] if a.startswith("-migrate") or a.startswith("-backend")]
                for c in calls()]
    assert commands == [["init"], ["plan"], ["apply"],
                        ["init", "-migrate-state", "-backend-config=extra.tfbackend"]]
    assert [c["override"] for c in calls()] == [False, False, False, True]  # S3 backend only for the migration
    assert calls()[2]["args"][-1] == "bootstrap.tfplan"  # applies exactly the plan that was shown
    assert "-force-copy" in calls()[3]["args"]
    stack_dir = tmp_path / "cdktf.out/stacks/bootstrap"
    backend = json.loads((stack_dir / OVERRIDE_FILE).read_text())["terraform"]["backend"]["s3"]
    assert backend == {"bucket": BUCKET, "key": KEY, "region": REGION, "encrypt": True, "use_lockfile": True}
    local = tmp_path / ".fleetform/bootstrap/terraform.tfstate"
    assert not local.exists() and local.with_name(local.name + MIGRATED_SUFFIX).exists()  # never migrated twice
    report = json.loads(result.stdout)
    assert report["mode"] == "first-run" and all(step["done"] for step in report["steps"])
    assert report["next"][0].startswith(f"(cd {tmp_path}/cdktf.out/stacks/organization")
    # the stacks for the first apply were synthesized alongside (organization adopts existing accounts)
    organization = json.loads((tmp_path / "cdktf.out/stacks/organization/cdk.tf.json").read_text())
    assert any(i["to"] == "aws_organizations_account.org_account-prod" for i in organization["import"])


def test_later_run_uses_the_state_in_the_bucket(tmp_path, moto_endpoint, fake_terraform):
    client = s3(moto_endpoint)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_object(Bucket=BUCKET, Key=KEY, Body=b'{"version": 4}')
    script, calls = fake_terraform
    result = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(script), "--yes")
    assert result.exit_code == 0, result.output
    assert [c["args"][0] for c in calls()] == ["init", "plan", "apply"]
    assert "-reconfigure" in calls()[0]["args"] and all(c["override"] for c in calls())
    assert "update (state already in the bucket)" in result.output
    assert not (tmp_path / ".fleetform").exists()  # no local state was written


def test_declining_applies_nothing(tmp_path, moto_endpoint, fake_terraform):
    script, calls = fake_terraform
    result = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(script), input="n\n")
    assert result.exit_code == 1
    assert "Plan: 10 to add" in result.output and "not applied" in result.output
    assert [c["args"][0] for c in calls()] == ["init", "plan"]
    assert "Traceback" not in result.output


def test_dry_run_prints_the_steps_and_runs_nothing(tmp_path, moto_endpoint, fake_terraform):
    script, calls = fake_terraform
    result = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(script), "--dry-run")
    assert result.exit_code == 0, result.output
    assert calls() == []
    assert "first run (local state, then migrate)" in result.output
    assert "terraform init -input=false -no-color -migrate-state -force-copy" in result.output
    assert "management-baseline" in result.output


def test_terraform_failure_is_reported_without_traceback(tmp_path, moto_endpoint, fake_terraform, monkeypatch):
    script, calls = fake_terraform
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    result = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(script), "--yes")
    assert result.exit_code == 1
    assert "terraform plan failed" in result.output and "fake failure" in result.output
    assert "Traceback" not in result.output
    assert [c["args"][0] for c in calls()] == ["init", "plan"]


def test_bad_usage_and_bad_configuration_exit_2(tmp_path, moto_endpoint, accounts_copy):
    missing = run_bootstrap(tmp_path, moto_endpoint, "--terraform", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "--terraform" in missing.output
    profile = run_bootstrap(tmp_path, moto_endpoint, "--profile", "no-such-profile", "--dry-run")
    assert profile.exit_code == 2 and "--profile" in profile.output
    (accounts_copy / "organization.yaml").write_text(
        (accounts_copy / "organization.yaml").read_text().replace("bucket: familyalbum-tfstate", "bucket: X"))
    bad = CliRunner().invoke(cli, ["bootstrap", "--config", str(accounts_copy), "--out", str(tmp_path / "o"),
                                   "--dry-run"])
    assert bad.exit_code == 2 and "organization.state.bucket" in bad.output
    assert "Traceback" not in bad.output


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["bootstrap", "--help"])
    assert result.exit_code == 0 and "fleetform bootstrap --dry-run" in result.output


@pytest.mark.skipif(shutil.which("terraform") is None, reason="needs terraform on PATH")
def test_migration_moves_local_state_into_the_bucket_for_real(tmp_path, moto_endpoint, example_config):
    """Real Terraform: a provider-free stack with local state, then the command's migration step."""
    from fleetform.terraform import Terraform, find_terraform

    stack_dir = tmp_path / "stacks/bootstrap"
    stack_dir.mkdir(parents=True)
    (stack_dir / "cdk.tf.json").write_text(json.dumps({
        "terraform": {"backend": {"local": {"path": "../../state/terraform.tfstate"}}},
        "resource": {"terraform_data": {"seed": {"input": "the state bucket"}}},
    }))
    terraform = Terraform(find_terraform("terraform"), env={"TF_PLUGIN_CACHE_DIR": ""})
    terraform.run(["init", "-input=false", "-no-color"], stack_dir)
    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve"], stack_dir)
    assert (tmp_path / "state/terraform.tfstate").exists()

    s3(moto_endpoint).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    moto_backend = tmp_path / "moto.tfbackend"
    moto_backend.write_text("\n".join([
        f'endpoints = {{ s3 = "{moto_endpoint}" }}', "use_path_style = true",
        "skip_credentials_validation = true", "skip_region_validation = true",
        "skip_requesting_account_id = true", "skip_metadata_api_check = true", "skip_s3_checksum = true",
        f'access_key = "{os.environ["AWS_ACCESS_KEY_ID"]}"', f'secret_key = "{os.environ["AWS_SECRET_ACCESS_KEY"]}"',
    ]) + "\n")
    write_backend_override(stack_dir, example_config)
    (migrate,) = [s for s in plan_steps(False, (str(moto_backend),)) if s.action == "migrate"]
    terraform.run(migrate.args, stack_dir)

    state = json.loads(s3(moto_endpoint).get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert [r["type"] + "." + r["name"] for r in state["resources"]] == ["terraform_data.seed"]
    listed = terraform.run(["state", "list", "-no-color"], stack_dir)  # now read from the bucket
    assert listed.stdout.split() == ["terraform_data.seed"]


def test_state_bucket_history_cannot_be_deleted(stack_json):
    """SCPs do not cover the management account, so the state bucket's own policy protects it."""
    policy = json.loads(stack_json("bootstrap")["resource"]["aws_s3_bucket_policy"]["state_policy"]["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["DenyBucketDeletion"]["Action"] == "s3:DeleteBucket"
    assert statements["DenyStateHistoryDeletion"]["Action"] == "s3:DeleteObjectVersion"
    assert statements["DenyStateHistoryDeletion"]["Resource"] == f"arn:aws:s3:::{BUCKET}/*"
    assert all(statements[sid]["Effect"] == "Deny" and statements[sid]["Principal"] == "*"
               and "Condition" not in statements[sid]  # no break glass configured in the example: nobody
               for sid in ("DenyBucketDeletion", "DenyStateHistoryDeletion"))
