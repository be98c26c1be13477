"""The engine's contract (fleetform/engine, decision 0004): what a stack's document emits for
resources, data sources, providers, variables, locals and outputs, how references resolve in
their own stack and across stacks, and the mistakes it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdktn import App, TerraformStack

from fleetform.engine import (
    AwsProvider,
    Construct,
    CrossStackExpressionError,
    DataSource,
    Local,
    Resource,
    StackDocument,
    Variable,
    output,
)
from fleetform.stacks.app import APP_CONTEXT
from fleetform.stacks.base import FleetStack, StackTarget


def _stack(app: App, name: str, config) -> FleetStack:
    return FleetStack(app, name, config, StackTarget(account_id="111111111111", region="ap-northeast-1"))


def _synth(app: App, out: Path) -> tuple[dict[str, dict], dict]:
    app.synth()
    manifest = json.loads((out / "manifest.json").read_text())
    stacks = {name: json.loads((out / entry["synthesizedStackPath"]).read_text())
              for name, entry in manifest["stacks"].items()}
    return stacks, manifest


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(outdir=str(tmp_path), context=APP_CONTEXT)


def test_references_in_one_stack_are_terraform_addresses(app, tmp_path, example_config):
    stack = _stack(app, "net", example_config)
    vpc = Construct(stack, "vpc")
    zones = DataSource(vpc, "azs", "aws_availability_zones", state="available")
    main = Resource(vpc, "main", "aws_vpc", cidr_block="10.0.0.0/16")
    Resource(vpc, "subnet", "aws_subnet", vpc_id=main.id_ref, cidr_block="10.0.0.0/24",
             availability_zone=f"${{element({zones.expr('names')}, 0)}}",
             tags={"Name": f"{main.attr('id')}-a"})
    stacks, _ = _synth(app, tmp_path)

    subnet = stacks["net"]["resource"]["aws_subnet"]["vpc_subnet"]
    assert subnet["vpc_id"] == "${aws_vpc.vpc_main.id}"
    assert subnet["availability_zone"] == "${element(data.aws_availability_zones.vpc_azs.names, 0)}"
    assert subnet["tags"] == {"Name": "${aws_vpc.vpc_main.id}-a"}
    assert subnet["//"]["metadata"] == {"path": "net/vpc/subnet", "uniqueId": "vpc_subnet"}
    assert "terraform_remote_state" not in stacks["net"].get("data", {})


def test_a_reference_to_another_stack_travels_through_remote_state(app, tmp_path, example_config):
    network = _stack(app, "network", example_config)
    cluster = _stack(app, "cluster", example_config)
    vpc = Resource(network, "vpc", "aws_vpc", cidr_block="10.0.0.0/16")
    Resource(cluster, "sg", "aws_security_group", name="nodes", vpc_id=vpc.id_ref)
    Resource(cluster, "sg2", "aws_security_group", name="pods", vpc_id=vpc.id_ref)  # one output for both
    stacks, manifest = _synth(app, tmp_path)

    exported = stacks["network"]["output"]
    assert exported == {"cross-stack-output-aws_vpc_vpc_id": {"sensitive": True, "value": "${aws_vpc.vpc.id}"}}
    assert stacks["network"]["//"]["outputs"] == {
        "network": {"cross-stack-output-aws_vpc.vpc.id": "cross-stack-output-aws_vpc_vpc_id"}}
    remote = stacks["cluster"]["data"]["terraform_remote_state"]["cross-stack-reference-input-network"]
    assert remote == {"backend": "s3", "workspace": "${terraform.workspace}",
                      "config": {"bucket": example_config.organization.state.bucket,
                                 "key": "network/terraform.tfstate", "region": example_config.organization.state.region,
                                 "encrypt": True, "use_lockfile": True}}
    groups = stacks["cluster"]["resource"]["aws_security_group"]
    expected = ("${data.terraform_remote_state.cross-stack-reference-input-network.outputs."
                "cross-stack-output-aws_vpc_vpc_id}")
    assert groups["sg"]["vpc_id"] == groups["sg2"]["vpc_id"] == expected
    assert manifest["stacks"]["cluster"]["dependencies"] == ["network"]
    assert manifest["stacks"]["network"]["dependencies"] == []


def test_an_expression_across_stacks_is_refused_with_both_stacks_named(app, example_config):
    network = _stack(app, "network", example_config)
    cluster = _stack(app, "cluster", example_config)
    zones = DataSource(network, "azs", "aws_availability_zones")
    with pytest.raises(CrossStackExpressionError, match=r"data.aws_availability_zones.azs of stack 'network', "
                                                        r"used in stack 'cluster'"):
        Resource(cluster, "subnet", "aws_subnet", availability_zone=f"${{element({zones.expr('names')}, 0)}}")
    with pytest.raises(CrossStackExpressionError, match="cluster/sg: depends_on data.aws_availability_zones.azs "
                                                        "of stack 'network'"):
        Resource(cluster, "sg", "aws_security_group", depends_on=[zones])


def test_meta_arguments_providers_variables_locals_and_outputs(app, tmp_path, example_config):
    stack = _stack(app, "org", example_config)
    archive = stack.provider_for("aws-archive", alias="archive", account_id="222222222222")
    key = Resource(stack, "key", "aws_kms_key", enable_key_rotation=True, provider=archive,
                   lifecycle={"prevent_destroy": True, "ignore_changes": ["tags"]},
                   skip_checks={"CKV_AWS_7": "rotation is on; the check misreads the alias"})
    key.add_override("//.note", "kept by hand")
    org = Resource(stack, "organization", "aws_organizations_organization", feature_set="ALL", depends_on=[key])
    org.import_from("o-abc123")
    days = Variable(stack, "days", type="number", default=30)
    scope = Construct(stack, "logs")
    host = Local(scope, "host", f"${{replace({key.expr('arn')}, \"arn:\", \"\")}}")
    Resource(scope, "group", "aws_cloudwatch_log_group", name=host.ref, retention_in_days=days.ref)
    output(scope, "key_arn", key.arn, description="the key")
    stacks, _ = _synth(app, tmp_path)
    doc = stacks["org"]

    body = doc["resource"]["aws_kms_key"]["key"]
    assert body["provider"] == "aws.archive"
    assert body["lifecycle"] == {"prevent_destroy": True, "ignore_changes": ["tags"]}
    assert body["//"]["checkov_skip"] == ["checkov:skip=CKV_AWS_7:rotation is on; the check misreads the alias"]
    assert body["//"]["note"] == "kept by hand"
    assert body["//"]["metadata"]["path"] == "org/key"
    assert doc["resource"]["aws_organizations_organization"]["organization"]["depends_on"] == ["aws_kms_key.key"]
    assert doc["import"] == [{"id": "o-abc123", "to": "aws_organizations_organization.organization"}]
    assert [p.get("alias") for p in doc["provider"]["aws"]] == [None, "archive"]
    assert doc["provider"]["aws"][1]["allowed_account_ids"] == ["222222222222"]
    assert doc["terraform"]["required_providers"] == {"aws": {"source": "hashicorp/aws", "version": "~> 6.69"}}
    assert doc["variable"]["days"] == {"type": "number", "default": 30}
    assert doc["locals"] == {"logs_host": '${replace(aws_kms_key.key.arn, "arn:", "")}'}
    group = doc["resource"]["aws_cloudwatch_log_group"]["logs_group"]
    assert group == {**group, "name": "${local.logs_host}", "retention_in_days": "${var.days}"}
    assert doc["output"]["logs_key_arn"] == {"value": "${aws_kms_key.key.arn}", "description": "the key"}


def test_names_must_be_unique_in_their_scope(app, example_config):
    stack = TerraformStack(app, "s")
    vpc = Construct(stack, "vpc")
    Resource(vpc, "a", "aws_vpc", cidr_block="10.0.0.0/16")
    with pytest.raises(ValueError, match="already a construct named 'a' in 's/vpc'"):
        Resource(vpc, "a", "aws_subnet", cidr_block="10.0.0.0/24")
    with pytest.raises(ValueError, match="already a construct named 'vpc' in 's'"):
        Construct(stack, "vpc")
    # different paths that flatten to the same Terraform name are refused too
    Resource(stack, "vpc_b", "aws_vpc", cidr_block="10.1.0.0/16")
    with pytest.raises(ValueError, match="aws_vpc.vpc_b is defined twice in stack 's'"):
        Resource(vpc, "b", "aws_vpc", cidr_block="10.2.0.0/16")
    output(stack, "x", "1")
    with pytest.raises(ValueError, match="output 'x' is defined twice"):
        output(stack, "x", "2")
    AwsProvider(stack, "aws", region="ap-northeast-1")
    with pytest.raises(ValueError, match="provider aws is defined twice"):
        AwsProvider(stack, "aws-again", region="us-east-1")


def test_a_resource_where_a_reference_belongs_is_refused(app):
    stack = TerraformStack(app, "s")
    vpc = Resource(stack, "vpc", "aws_vpc", cidr_block="10.0.0.0/16")
    with pytest.raises(TypeError, match=r"aws_vpc.vpc: pass a reference \(.attr\(...\), .ref\), not the object"):
        Resource(stack, "subnet", "aws_subnet", vpc_id=vpc, cidr_block="10.0.0.0/24")


def test_depends_on_takes_resources_or_addresses_only(app):
    stack = TerraformStack(app, "s")
    with pytest.raises(TypeError, match="s/vpc: depends_on takes fleetform resources or addresses, not int"):
        Resource(stack, "vpc", "aws_vpc", cidr_block="10.0.0.0/16", depends_on=[42])  # type: ignore[list-item]


def test_a_stack_without_a_known_backend_cannot_be_referred_to(app):
    plain = TerraformStack(app, "plain")
    other = TerraformStack(app, "other")
    vpc = Resource(plain, "vpc", "aws_vpc", cidr_block="10.0.0.0/16")
    with pytest.raises(CrossStackExpressionError, match="stack 'plain' is referred to from another stack"):
        Resource(other, "sg", "aws_security_group", vpc_id=vpc.id_ref)


def test_a_reference_is_wired_when_it_is_made(app, example_config):
    """The owner's output exists as soon as the consumer refers to it, so it is written whichever
    stack the core synthesizes first."""
    network = _stack(app, "network", example_config)
    cluster = _stack(app, "cluster", example_config)
    vpc = Resource(network, "vpc", "aws_vpc", cidr_block="10.0.0.0/16")
    assert "output" not in StackDocument.of(network).to_terraform()
    Resource(cluster, "sg", "aws_security_group", vpc_id=vpc.id_ref)
    assert StackDocument.of(network).to_terraform()["output"] == {
        "cross-stack-output-aws_vpc_vpc_id": {"sensitive": True, "value": "${aws_vpc.vpc.id}"}}


def test_an_attribute_changed_after_the_fact_is_caught_before_it_is_written(app, tmp_path):
    stack = TerraformStack(app, "s")
    vpc = Resource(stack, "vpc", "aws_vpc", cidr_block="10.0.0.0/16")
    subnet = Resource(stack, "subnet", "aws_subnet", cidr_block="10.0.0.0/24")
    subnet.attributes["vpc_id"] = vpc.id_ref  # bypasses resolution
    with pytest.raises(Exception, match="stack 's' holds a reference that was never resolved"):
        app.synth()


def test_stack_files_are_written_as_the_core_writes_them():
    """The C encoder gives the bytes of ``json.dumps(indent=2, sort_keys=True, ensure_ascii=False)``,
    and what it cannot encode (integers beyond 64 bits) takes the standard library's path."""
    from fleetform.engine.synthesizer import dumps

    document = {"resource": {"aws_x": {"b": {"name": "日本 ü", "n": [1, 2.5, 1e26, -0.0, True, None], "e": {},
                                             "l": [], "nested": [{"z": 1, "a": "\u2028\t\"q\""}]}}},
                "a": 0.1, "Z": "upper sorts first"}
    assert dumps(document) == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    huge = {"max_size": 10**26}
    assert dumps(huge) == json.dumps(huge, indent=2, sort_keys=True, ensure_ascii=False)


def test_jsii_kernel_runs_without_the_launcher_and_writes_the_same(synth_out, tmp_path):
    """The kernel is started directly (decision 0006): one node process, not jsii's launcher plus its
    child; with the launcher (FLEETFORM_JSII_LAUNCHER=1) the same configuration gives the same files."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = ("import os, subprocess, sys\n"
              "from fleetform.config import load_config\n"
              "from fleetform.stacks.app import synth\n"
              "synth(load_config(sys.argv[1]), sys.argv[2])\n"
              "print(subprocess.run(['ps', '-o', 'args=', '--ppid', str(os.getpid())], capture_output=True,"
              " text=True).stdout)\n")
    children = {}
    for way, extra in (("direct", {}), ("launcher", {"FLEETFORM_JSII_LAUNCHER": "1"})):
        run = subprocess.run([sys.executable, "-c", script, str(root / "accounts"), str(tmp_path / way)],
                             env={**os.environ, **extra}, capture_output=True, text=True, timeout=180, check=True)
        children[way] = [line for line in run.stdout.splitlines() if "node" in line]
    assert len(children["direct"]) == 1 and "program.js" in children["direct"][0]
    assert any("jsii-runtime.js" in line for line in children["launcher"])
    for stack in sorted((synth_out / "stacks").iterdir()):
        expected = (stack / "cdk.tf.json").read_bytes()
        for way in ("direct", "launcher"):
            assert (tmp_path / way / "stacks" / stack.name / "cdk.tf.json").read_bytes() == expected, (way, stack)


def test_every_stack_requires_the_terraform_that_use_lockfile_needs(synth_out: Path) -> None:
    """use_lockfile (S3 native locking) came with Terraform 1.10: every stack says so in its terraform
    block, beside what the core writes there (backend, required providers)."""
    stacks = sorted((synth_out / "stacks").iterdir())
    assert len(stacks) > 20
    for stack in stacks:
        terraform = json.loads((stack / "cdk.tf.json").read_text())["terraform"]
        assert terraform["required_version"] == ">= 1.10", stack.name
        assert "aws" in terraform["required_providers"] and "backend" in terraform, stack.name
