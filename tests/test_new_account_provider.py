"""The real hashicorp/aws provider configured from the organization stack's remote state, as a new
account's stacks are (assume_role.role_arn and allowed_account_ids from terraform_remote_state), against
a moto server on 127.0.0.1: it reaches the account, and writing the id in literally plans no change.

Skipped where the provider mirror (hashicorp/aws 5.100.0, DESIGN section 6) or terraform is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

MIRROR = Path(os.environ.get("FLEETFORM_PROVIDER_MIRROR", "/opt/tf-plugins"))
PROVIDER = MIRROR / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0"
pytestmark = pytest.mark.skipif(shutil.which("terraform") is None or not PROVIDER.is_dir(),
                                reason="needs terraform on PATH and the hashicorp/aws 5.100.0 mirror")

NEW_ID = "210987654321"
REF = "${data.terraform_remote_state.cross-stack-reference-input-organization.outputs.account_id_analytics}"
ROLE = "OrganizationAccountAccessRole"


def terraform(directory: Path, env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> int:
    proc = subprocess.run(["terraform", *args, "-no-color", "-input=false"], cwd=directory, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode in ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode


def write(directory: Path, document: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cdk.tf.json").write_text(json.dumps(document, indent=2))


def test_the_provider_reaches_the_new_account_through_remote_state_and_a_written_id_changes_nothing(
        moto_endpoint, tmp_path):
    rc = tmp_path / "terraform.rc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n'
                  '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
                  '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
           "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    # the organization stack's stand-in: its state has the id of the account it created
    organization = tmp_path / "organization"
    write(organization, {
        "terraform": {"backend": {"local": {"path": str(tmp_path / "organization.tfstate")}}},
        "resource": {"terraform_data": {"account": {"input": NEW_ID}}},
        "output": {"account_id_analytics": {"value": "${terraform_data.account.output}"}}})
    terraform(organization, env, "init")
    terraform(organization, env, "apply", "-auto-approve")

    # the new account's stack, shaped as fleetform synthesizes it (tests/test_new_accounts.py)
    baseline = tmp_path / "analytics-baseline"
    document = {
        "terraform": {"backend": {"local": {"path": str(tmp_path / "analytics-baseline.tfstate")}},
                      "required_providers": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}},
        "data": {"terraform_remote_state": {"cross-stack-reference-input-organization": {
            "backend": "local", "config": {"path": str(tmp_path / "organization.tfstate")}}}},
        "provider": {"aws": [{
            "region": "us-east-1", "s3_use_path_style": True,
            "allowed_account_ids": [REF],
            "assume_role": [{"role_arn": f"arn:aws:iam::{REF}:role/{ROLE}", "session_name": "fleetform-test"}]}]},
        "resource": {"aws_s3_bucket": {"sessions": {"bucket": f"familyalbum-{REF}-demo"}}},
    }
    write(baseline, document)
    terraform(baseline, env, "init")
    terraform(baseline, env, "apply", "-auto-approve")

    sts = boto3.client("sts", endpoint_url=moto_endpoint, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{NEW_ID}:role/{ROLE}", RoleSessionName="check")["Credentials"]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["SessionToken"])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [f"familyalbum-{NEW_ID}-demo"]

    # a later pull request writes the id into the account file: the stack holds it literally
    write(baseline, json.loads(json.dumps(document).replace(REF, NEW_ID)))
    assert terraform(baseline, env, "plan", "-detailed-exitcode", ok=(0, 2)) == 0
