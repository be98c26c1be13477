"""Synth of the example organization: backends, providers, stack names, the CLI and cdktf.json app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fleetform.manifest import read_manifest
from fleetform.scripts.main import cli

ROOT = Path(__file__).resolve().parent.parent


def all_stacks(synth_out: Path) -> list[str]:
    return [s.name for s in read_manifest(synth_out)]


def test_expected_stacks_exist(synth_out):
    names = set(all_stacks(synth_out))
    assert {"bootstrap", "prod-network", "stg-network", "dev-network"} <= names
    # management and log-archive have no network section, so no network stack
    assert "management-network" not in names and "log-archive-network" not in names


def test_every_stack_but_bootstrap_uses_s3_backend_with_lockfile(synth_out, stack_json):
    for name in all_stacks(synth_out):
        backend = stack_json(name)["terraform"]["backend"]
        if name == "bootstrap":
            assert list(backend) == ["local"]
            # outside cdktf.out so a new synth never deletes the only copy of the state
            assert backend["local"]["path"].startswith("../../../.fleetform/")
            continue
        s3 = backend["s3"]
        assert s3["bucket"] == "familyalbum-tfstate"
        assert s3["key"] == f"{name}/terraform.tfstate"
        assert s3["use_lockfile"] is True and s3["encrypt"] is True
        assert "dynamodb_table" not in s3


def test_providers_pin_aws_and_assume_target_account_role(synth_out, stack_json, example_config):
    for name in all_stacks(synth_out):
        body = stack_json(name)
        assert body["terraform"]["required_providers"]["aws"] == {"source": "hashicorp/aws", "version": "~> 6.69"}
        for provider in body["provider"]["aws"]:
            assert len(provider["allowed_account_ids"]) == 1
            if name == "bootstrap":
                assert "assume_role" not in provider  # first apply runs with the operator's credentials
                continue
            account_id = provider["allowed_account_ids"][0]
            role_arn = provider["assume_role"][0]["role_arn"]
            assert role_arn.startswith(f"arn:aws:iam::{account_id}:role/")
            assert provider["default_tags"][0]["tags"]["ManagedBy"] == "fleetform"
    prod = stack_json("prod-network")["provider"]["aws"][0]
    assert prod["allowed_account_ids"] == [example_config.account("prod").id]
    assert prod["region"] == "ap-northeast-1"
    assert stack_json("prod-network")["variable"]["fleetform_role"]["default"] == "fleetform-apply"


def test_bootstrap_state_bucket_is_hardened(stack_json):
    body = stack_json("bootstrap")
    resources = body["resource"]
    bucket = resources["aws_s3_bucket"]["state_bucket"]
    assert bucket["bucket"] == "familyalbum-tfstate"
    assert bucket["lifecycle"]["prevent_destroy"] is True
    assert resources["aws_s3_bucket_versioning"]["state_versioning"]["versioning_configuration"][0]["status"] == \
        "Enabled"
    sse = resources["aws_s3_bucket_server_side_encryption_configuration"]["state_encryption"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    block = resources["aws_s3_bucket_public_access_block"]["state_public-access-block"]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                          "restrict_public_buckets"))
    rules = resources["aws_s3_bucket_lifecycle_configuration"]["state_lifecycle"]["rule"]
    assert any("noncurrent_version_expiration" in r for r in rules)
    policy = json.loads(resources["aws_s3_bucket_policy"]["state_policy"]["policy"])
    tls = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert resources["aws_kms_key"]["state-key_key"]["enable_key_rotation"] is True


def test_resource_addresses_are_readable_and_stable(stack_json):
    subnets = stack_json("prod-network")["resource"]["aws_subnet"]
    assert {"vpc_subnet-private-1", "vpc_subnet-public-3", "vpc_subnet-intra-2"} <= set(subnets)


def test_synth_command_prints_table_and_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "nested" / "out"  # parents are created
    result = runner.invoke(cli, ["synth", "--config", str(ROOT / "accounts"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "stacks synthesized" in result.output and "prod-network" in result.output
    assert (out / "manifest.json").exists()
    as_json = runner.invoke(cli, ["synth", "--config", str(ROOT / "accounts"), "--out", str(out), "--output", "json"])
    data = json.loads(as_json.output)
    assert {s["name"] for s in data["stacks"]} >= {"bootstrap", "prod-network"}
    assert all(s["resources"] > 0 for s in data["stacks"])


def test_synth_bad_config_exits_2_without_traceback(accounts_copy, tmp_path):
    (accounts_copy / "prod.yaml").write_text((accounts_copy / "prod.yaml").read_text().replace("  azs: [", "  azz: ["))
    result = CliRunner().invoke(cli, ["synth", "--config", str(accounts_copy), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "prod.yaml" in result.output and "network.azz" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # nothing synthesized from a bad configuration


def test_stacks_json_lists_dependencies_in_order():
    result = CliRunner().invoke(cli, ["stacks", "--config", str(ROOT / "accounts"), "--json"])
    assert result.exit_code == 0, result.output
    stacks = json.loads(result.output)
    position = {s["name"]: i for i, s in enumerate(stacks)}
    for stack in stacks:
        for dep in stack["dependencies"]:
            assert position[dep] < position[stack["name"]], (dep, stack["name"])
    assert "bootstrap" in next(s for s in stacks if s["name"] == "prod-network")["dependencies"]


def test_cdktf_json_app_synthesizes_the_same_stacks(tmp_path, synth_out):
    """`cdktn synth` runs the app from cdktf.json with CDKTF_OUTDIR set; run that app the same way."""
    app = json.loads((ROOT / "cdktf.json").read_text())["app"]
    assert app.endswith("-m fleetform.stacks")
    env = {**os.environ, "CDKTF_OUTDIR": str(tmp_path / "out"), "FLEETFORM_CONFIG": str(ROOT / "accounts")}
    subprocess.run([sys.executable, "-m", "fleetform.stacks"], cwd=ROOT, env=env, check=True, timeout=120)
    assert [s.name for s in read_manifest(tmp_path / "out")] == [s.name for s in read_manifest(synth_out)]
    for name in ("prod-network", "bootstrap"):
        ours = json.loads((tmp_path / "out" / "stacks" / name / "cdk.tf.json").read_text())
        theirs = json.loads((synth_out / "stacks" / name / "cdk.tf.json").read_text())
        assert ours == theirs


def test_run_time_never_imports_prebuilt_bindings(tmp_path):
    code = (
        "import sys\n"
        "from fleetform.config import load_config\n"
        "from fleetform.stacks.app import synth\n"
        f"synth(load_config({str(ROOT / 'accounts')!r}), {str(tmp_path / 'o')!r})\n"
        "bad = [m for m in sys.modules if m.startswith(('cdktn_provider_aws', 'cdktf_cdktf_provider_aws'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_log_retention_is_rounded_up_to_a_value_cloudwatch_accepts(accounts_copy, tmp_path):
    dev = accounts_copy / "dev.yaml"
    dev.write_text(dev.read_text().replace("  azs: [", "  flow_log_retention_days: 500\n  azs: ["))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["synth", "--config", str(accounts_copy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    groups = json.loads((out / "stacks" / "dev-network" / "cdk.tf.json").read_text())["resource"][
        "aws_cloudwatch_log_group"]
    flow_logs = next(g for g in groups.values() if g["name"].endswith("/flow-logs"))
    assert flow_logs["retention_in_days"] == 545  # 500 is not a CloudWatch value; never less than asked


def test_stacks_without_synth_match_the_manifest_of_a_synth(example_config, synth_out, tmp_path, monkeypatch):
    """`fleetform stacks` builds the stacks without synthesizing: the same names, order, dependencies and
    resource counts as the manifest and files a synth writes, and nothing written where it runs."""
    from fleetform.stacks.app import describe

    monkeypatch.chdir(tmp_path)
    described = [(s.name, s.dependencies, s.resource_count) for s in describe(example_config)]
    synthesized = [(s.name, s.dependencies, s.resource_count) for s in read_manifest(synth_out)]
    assert described == synthesized
    assert any(deps for _, deps, _ in described) and list(tmp_path.iterdir()) == []
