"""The bastion stacks of the example organization: placement, no ingress, IMDSv2, encrypted
volume, user data, recorded sessions (S3 + CloudWatch, KMS), the operator policy; checkov."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetform.config import load_config
from fleetform.constructs import bastion as construct
from fleetform.constructs.bastion import KUBECTL_FUNCTIONS, instance_architecture, kubectl_versions
from fleetform.constructs.logs import cloudwatch_retention
from fleetform.errors import ConfigurationError
from fleetform.manifest import read_manifest
from fleetform.naming import (
    BASTION_NAME_TAG,
    BASTION_OPERATOR_POLICY,
    BASTION_ROLE,
    SESSION_DOCUMENT,
    bastion_stack,
    network_stack,
)
from fleetform.stacks.app import synth
from fleetform.stacks.bastion import account_clusters

BASTION_ACCOUNTS = ("dev", "prod", "stg")
REMOTE = re.compile(r"^\$\{data\.terraform_remote_state\.cross-stack-reference-input-(?P<stack>[\w-]+)\.outputs\."
                    r"cross-stack-output-(?P<output>[\w-]+)\}$")


def resources(stack_json, account: str, rtype: str) -> dict:
    return stack_json(bastion_stack(account))["resource"].get(rtype, {})


def only(stack_json, account: str, rtype: str) -> dict:
    found = resources(stack_json, account, rtype)
    assert len(found) == 1, f"{bastion_stack(account)}: expected one {rtype}, found {sorted(found)}"
    return next(iter(found.values()))


def ref(rtype: str, body_name: str | None = None) -> re.Pattern[str]:
    name = re.escape(body_name) if body_name else r"[\w-]+"
    return re.compile(rf"\$\{{{re.escape(rtype)}\.{name}\.(arn|id|key_id|name)\}}")


def user_data(stack_json, account: str) -> str:
    return base64.b64decode(only(stack_json, account, "aws_launch_template")["user_data"]).decode()


def operator_policy(stack_json, account: str) -> dict:
    policy = only(stack_json, account, "aws_iam_policy")
    assert policy["name"] == BASTION_OPERATOR_POLICY
    return json.loads(policy["policy"])


def effect_of(policy: dict, action: str, resource: str) -> str:
    """Deny beats Allow; no matching statement = implicit deny. Conditions are not evaluated."""
    result = "ImplicitDeny"
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and \
                any(fnmatch.fnmatchcase(resource, r) for r in targets):
            if statement["Effect"] == "Deny":
                return "Deny"
            result = "Allow"
    return result


# ------------------------------------------------------------------ which accounts, where


def test_every_account_with_a_bastion_section_gets_a_bastion_stack(example_config, synth_out):
    stacks = {s.name: s for s in read_manifest(synth_out)}
    with_bastion = sorted(a.name for a in example_config.accounts if a.spec.bastion is not None)
    assert with_bastion == list(BASTION_ACCOUNTS)
    for account in example_config.accounts:
        if account.spec.bastion is None:
            assert bastion_stack(account.name) not in stacks
            continue
        stack = stacks[bastion_stack(account.name)]
        assert network_stack(account.name) in stack.dependencies
        # the slot stacks grant the bastion role an EKS access entry, so they come after it
        for slot in account_clusters(account):
            if slot in stacks:
                assert bastion_stack(account.name) in stacks[slot].dependencies


def test_each_cluster_slot_admits_the_bastion_on_443(example_config, synth_out, stack_json):
    stacks = {s.name for s in read_manifest(synth_out)}
    slots = [slot for name in BASTION_ACCOUNTS for slot in account_clusters(example_config.account(name))]
    present = [slot for slot in slots if slot in stacks]
    if not present:
        pytest.skip("no cluster slot stacks in this build")
    for slot in present:
        rule = stack_json(slot)["resource"]["aws_vpc_security_group_ingress_rule"]["bastion-api-access"]
        assert (rule["ip_protocol"], rule["from_port"], rule["to_port"]) == ("tcp", 443, 443)
        source = REMOTE.match(rule["referenced_security_group_id"])
        assert source["stack"] == bastion_stack(slot.split("-")[0])
        assert source["output"].endswith("bastion_security-group_id")
        assert "cluster_security_group_id" in rule["security_group_id"]


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_autoscaling_group_of_one_in_the_private_subnets(account, stack_json, example_config):
    asg = only(stack_json, account, "aws_autoscaling_group")
    assert (asg["min_size"], asg["max_size"], asg["desired_capacity"]) == (1, 1, 1)
    subnets = [REMOTE.match(s) for s in asg["vpc_zone_identifier"]]
    assert all(subnets), asg["vpc_zone_identifier"]
    assert {m["stack"] for m in subnets} == {network_stack(account)}
    assert all("subnet-private-" in m["output"] for m in subnets)
    assert len(subnets) == example_config.account(account).spec.network.az_count
    assert {"key": "Name", "value": BASTION_NAME_TAG, "propagate_at_launch": True} in asg["tag"]
    assert asg["launch_template"][0]["version"].endswith(".latest_version}")
    assert asg["instance_refresh"][0]["strategy"] == "Rolling"


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_launch_template_is_hardened(account, stack_json):
    template = only(stack_json, account, "aws_launch_template")
    assert template["image_id"] == \
        "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert "key_name" not in template
    metadata = template["metadata_options"][0]
    assert metadata["http_tokens"] == "required" and metadata["http_put_response_hop_limit"] == 1
    ebs = template["block_device_mappings"][0]["ebs"][0]
    assert ebs["encrypted"] == "true"
    assert ref("aws_kms_key", "bastion_volume-key_key").fullmatch(ebs["kms_key_id"])
    assert "network_interfaces" not in template  # so no public IP can be asked for
    assert template["vpc_security_group_ids"] == ["${aws_security_group.bastion_security-group.id}"]
    assert ref("aws_iam_instance_profile").fullmatch(template["iam_instance_profile"][0]["arn"])
    instance_tags = next(t for t in template["tag_specifications"] if t["resource_type"] == "instance")["tags"]
    assert instance_tags["Name"] == BASTION_NAME_TAG


def test_autoscaling_can_use_the_volume_key(stack_json):
    slr = only(stack_json, "prod", "aws_iam_service_linked_role")
    assert slr["aws_service_name"] == "autoscaling.amazonaws.com" and slr["custom_suffix"] == BASTION_NAME_TAG
    asg = only(stack_json, "prod", "aws_autoscaling_group")
    slr_arn = "${aws_iam_service_linked_role.bastion_autoscaling-role.arn}"
    assert asg["service_linked_role_arn"] == slr_arn
    key = resources(stack_json, "prod", "aws_kms_key")["bastion_volume-key_key"]
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    assert statements["AutoScalingUsesKeyForVolumes"]["Principal"] == {"AWS": slr_arn}
    grant = statements["AutoScalingAttachesVolumes"]
    assert grant["Action"] == "kms:CreateGrant"
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_security_group_has_no_ingress_and_only_https_egress(account, stack_json):
    group = only(stack_json, account, "aws_security_group")
    assert group["ingress"] == []  # managed as empty: hand-made ingress is removed on apply
    assert "egress" not in group
    assert REMOTE.match(group["vpc_id"])["stack"] == network_stack(account)
    body = stack_json(bastion_stack(account))["resource"]
    assert "aws_vpc_security_group_ingress_rule" not in body
    assert all(r.get("type") != "ingress" for r in body.get("aws_security_group_rule", {}).values())
    egress = only(stack_json, account, "aws_vpc_security_group_egress_rule")
    assert (egress["ip_protocol"], egress["from_port"], egress["to_port"]) == ("tcp", 443, 443)
    assert egress["security_group_id"] == "${aws_security_group.bastion_security-group.id}"


# ------------------------------------------------------------------ what runs on it


def test_user_data_installs_kubectl_per_version_and_a_kubeconfig_per_slot(stack_json, example_config):
    script = user_data(stack_json, "prod")
    assert script.startswith("#!/bin/bash\n")
    assert "KUBECTL_VERSIONS='1.34 1.36'" in script and "NEWEST_KUBECTL=1.36" in script
    assert "KUBECTL_BASE_URL=https://dl.k8s.io/release\n" in script and KUBECTL_FUNCTIONS in script
    assert "dnf install -y --setopt=install_weak_deps=False awscli-2" in script
    assert "for cluster in prod-main-blue prod-main-green prod-ops-blue; do" in script
    assert 'aws eks update-kubeconfig --region ap-northeast-1 --name "$cluster"' in script
    assert "RUN_AS_USER=bastion" in script and "useradd" in script
    dev = user_data(stack_json, "dev")
    assert "KUBECTL_VERSIONS=1.34" in dev and "for cluster in dev-main-blue; do" in dev
    assert set(account_clusters(example_config.account("prod"))) == {"prod-main-blue", "prod-main-green",
                                                                      "prod-ops-blue"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_user_data_is_valid_bash(account, stack_json, tmp_path: Path):
    path = tmp_path / "user-data.sh"
    path.write_text(user_data(stack_json, account))
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_instance_role_is_named_for_the_access_entries_and_reads_only_its_clusters(stack_json):
    role = only(stack_json, "prod", "aws_iam_role")
    assert role["name"] == BASTION_ROLE
    trust = json.loads(role["assume_role_policy"])["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert only(stack_json, "prod", "aws_iam_instance_profile")["name"] == BASTION_ROLE
    attached = only(stack_json, "prod", "aws_iam_role_policy_attachment")
    assert attached["policy_arn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    policy = json.loads(only(stack_json, "prod", "aws_iam_role_policy")["policy"])
    eks = next(s for s in policy["Statement"] if s["Action"] == "eks:DescribeCluster")
    assert eks["Resource"] == [f"arn:aws:eks:ap-northeast-1:333333333333:cluster/prod-{c}"
                               for c in ("main-blue", "main-green", "ops-blue")]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert not any(a.endswith("*") for s in policy["Statement"]
                   for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))


# ------------------------------------------------------------------ recorded sessions


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_session_document_records_to_s3_and_cloudwatch_with_kms(account, stack_json):
    document = only(stack_json, account, "aws_ssm_document")
    assert document["name"] == SESSION_DOCUMENT
    assert (document["document_type"], document["document_format"]) == ("Session", "JSON")
    content = json.loads(document["content"])
    assert content["sessionType"] == "Standard_Stream"
    inputs = content["inputs"]
    assert inputs["s3BucketName"] == "${aws_s3_bucket.sessions_bucket_bucket.id}"
    assert inputs["s3EncryptionEnabled"] is True
    assert inputs["cloudWatchLogGroupName"] == "${aws_cloudwatch_log_group.sessions_log-group_group.name}"
    assert inputs["cloudWatchEncryptionEnabled"] is True and inputs["cloudWatchStreamingEnabled"] is True
    assert inputs["kmsKeyId"] == "${aws_kms_key.sessions_key_key.key_id}"
    assert inputs["idleSessionTimeout"] == "20"
    assert inputs["runAsEnabled"] is True and inputs["runAsDefaultUser"] == "bastion"


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_recordings_are_encrypted_kept_and_tls_only(account, stack_json):
    key_arn = "${aws_kms_key.sessions_key_key.arn}"
    bucket = only(stack_json, account, "aws_s3_bucket")
    assert bucket["lifecycle"]["prevent_destroy"] is True
    sse = only(stack_json, account, "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"][0] == {"sse_algorithm": "aws:kms",
                                                                 "kms_master_key_id": key_arn}
    assert only(stack_json, account, "aws_s3_bucket_versioning")["versioning_configuration"][0]["status"] == \
        "Enabled"
    block = only(stack_json, account, "aws_s3_bucket_public_access_block")
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                          "restrict_public_buckets"))
    rules = only(stack_json, account, "aws_s3_bucket_lifecycle_configuration")["rule"]
    assert {"days": 365} in next(r for r in rules if "expiration" in r)["expiration"]
    policy = {s["Sid"]: s for s in json.loads(only(stack_json, account, "aws_s3_bucket_policy")["policy"])
              ["Statement"]}
    assert policy["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert policy["RecordingsAreKept"]["Effect"] == "Deny"
    group = only(stack_json, account, "aws_cloudwatch_log_group")
    assert group["kms_key_id"] == key_arn and group["retention_in_days"] >= 365


# ------------------------------------------------------------------ who may start sessions


@pytest.mark.parametrize("account", BASTION_ACCOUNTS)
def test_operator_policy_allows_only_the_tagged_bastion_with_our_document(account, stack_json, example_config):
    account_id = example_config.account(account).id
    policy = operator_policy(stack_json, account)
    starts = [s for s in policy["Statement"] if s["Action"] == "ssm:StartSession" and s["Effect"] == "Allow"]
    assert len(starts) == 2
    on_instances = next(s for s in starts if ":instance/" in s["Resource"])
    assert on_instances["Resource"] == f"arn:aws:ec2:ap-northeast-1:{account_id}:instance/*"
    assert on_instances["Condition"]["StringEquals"] == {"ssm:resourceTag/Name": BASTION_NAME_TAG}
    with_document = next(s for s in starts if ":document/" in s["Resource"])
    assert with_document["Resource"] == f"arn:aws:ssm:ap-northeast-1:{account_id}:document/{SESSION_DOCUMENT}"
    for statement in starts:
        assert statement["Condition"]["BoolIfExists"] == {"ssm:SessionDocumentAccessCheck": "true"}
    own = next(s for s in policy["Statement"] if "ssm:TerminateSession" in s["Action"])
    assert set(own["Action"]) == {"ssm:TerminateSession", "ssm:ResumeSession"}
    # "$${" is Terraform's escape: AWS receives the policy variable ${aws:userid}
    assert own["Condition"] == {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": ["$${aws:userid}"]}}
    assert not any(s["Resource"] == "*" and s["Effect"] == "Allow" and "ssm:StartSession" in s["Action"]
                   for s in policy["Statement"])


@pytest.mark.parametrize("document", ["AWS-StartSSHSession", "AWS-StartPortForwardingSession",
                                      "AWS-StartPortForwardingSessionToRemoteHost", "AWS-StartInteractiveCommand",
                                      "SSM-SessionManagerRunShell"])
def test_operator_policy_denies_unrecorded_session_documents(document, stack_json):
    policy = operator_policy(stack_json, "prod")
    for arn in (f"arn:aws:ssm:ap-northeast-1::document/{document}",  # AWS-owned documents have no account
                f"arn:aws:ssm:us-east-1:333333333333:document/{document}"):
        assert effect_of(policy, "ssm:StartSession", arn) == "Deny"
    ours = f"arn:aws:ssm:ap-northeast-1:333333333333:document/{SESSION_DOCUMENT}"
    assert effect_of(policy, "ssm:StartSession", ours) == "Allow"
    assert effect_of(policy, "ssm:StartSession", "arn:aws:ssm:ap-northeast-1:333333333333:document/other") == \
        "ImplicitDeny"


def test_operators_can_encrypt_sessions_with_the_session_key(stack_json):
    policy = operator_policy(stack_json, "prod")
    kms = next(s for s in policy["Statement"] if s["Action"] == "kms:GenerateDataKey")
    assert kms["Resource"] == "${aws_kms_key.sessions_key_key.arn}"


def test_bastion_stacks_pass_checkov(checkov_scan):
    result = checkov_scan.only(bastion_stack(a) for a in BASTION_ACCOUNTS)
    assert result.parsing_errors == []
    assert result.failed == [], "\n".join(str(f) for f in result.failed)
    assert result.passed > 50


# ------------------------------------------------------------------ configuration


def test_graviton_instance_type_gets_the_arm64_ami_and_kubectl(accounts_copy: Path, tmp_path: Path):
    dev = accounts_copy / "dev.yaml"
    dev.write_text(dev.read_text().replace("bastion: {instance_type: t3.small}",
                                           "bastion: {instance_type: t4g.small, run_as_user: sre}"))
    out = tmp_path / "out"
    synth(load_config(accounts_copy), out)
    body = json.loads((out / "stacks" / "dev-bastion" / "cdk.tf.json").read_text())
    template = body["resource"]["aws_launch_template"]["bastion_launch-template"]
    assert template["image_id"].endswith("al2023-ami-kernel-default-arm64")
    script = base64.b64decode(template["user_data"]).decode()
    assert "ARCH=arm64" in script and "RUN_AS_USER=sre" in script
    document = json.loads(body["resource"]["aws_ssm_document"]["sessions_document"]["content"])
    assert document["inputs"]["runAsDefaultUser"] == "sre"


@pytest.mark.parametrize(("old", "new", "field"), [
    ("bastion: {instance_type: t3.small}", "bastion: {session_log_retention_days: 30}",
     "bastion.session_log_retention_days"),
    ("bastion: {instance_type: t3.small}", "bastion: {instance_type: small}", "bastion.instance_type"),
    ("bastion: {instance_type: t3.small}", "bastion: {run_as_user: Root User}", "bastion.run_as_user"),
    ("bastion: {instance_type: t3.small}", "bastion: {idle_timeout: 5}", "bastion.idle_timeout"),
])
def test_bad_bastion_settings_name_file_and_field(accounts_copy: Path, old: str, new: str, field: str):
    path = accounts_copy / "stg.yaml"
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ConfigurationError) as info:
        load_config(accounts_copy)
    messages = [str(p) for p in info.value.problems]
    assert any("stg.yaml" in m and f": {field}" in m for m in messages), messages


@pytest.mark.parametrize(("instance_type", "arch"), [
    ("t3.small", "x86_64"), ("t4g.small", "arm64"), ("m7gd.large", "arm64"), ("c7gn.large", "arm64"),
    ("g5g.xlarge", "arm64"), ("g4dn.xlarge", "x86_64"), ("g5.xlarge", "x86_64"), ("m7i.large", "x86_64"),
])
def test_instance_architecture(instance_type: str, arch: str):
    assert instance_architecture(instance_type) == arch


def test_cloudwatch_retention_and_kubectl_versions():
    assert [cloudwatch_retention(d) for d in (1, 365, 366, 731, 3000, 9999)] == [365, 365, 400, 731, 3288, 3653]
    assert kubectl_versions({"a": "1.36", "b": "1.34", "c": "1.9", "d": "1.34"}) == ["1.9", "1.34", "1.36"]


# ------------------------------------------------------------------ the boot scripts, run for real

FAKE_CURL = r'''#!{python}
"""curl -fsSL ... [-o FILE] URL, served from the directory in FAKE_DL (exit 22 like curl -f on a 404)."""
import os, sys
args = sys.argv[1:]
url = args[-1]
path = os.path.join(os.environ["FAKE_DL"], url.removeprefix("https://dl.k8s.io/release/"))
if not os.path.isfile(path):
    sys.stderr.write(f"curl: (22) 404 {{url}}\n"); sys.exit(22)
data = open(path, "rb").read()
if "-o" in args:
    open(args[args.index("-o") + 1], "wb").write(data)
else:
    sys.stdout.buffer.write(data)
'''

FAKE_AWS = r'''#!{python}
"""aws eks update-kubeconfig --name N --kubeconfig F: appends N to F, fails for names in FAKE_AWS_FAIL."""
import os, sys
args = sys.argv[1:]
name, config = args[args.index("--name") + 1], args[args.index("--kubeconfig") + 1]
if name in os.environ.get("FAKE_AWS_FAIL", "").split():
    sys.stderr.write(f"An error occurred (ResourceNotFoundException): No cluster found for name: {{name}}.\n")
    sys.exit(254)
with open(config, "a") as handle:
    handle.write(f"- context: {{name}}\n")
'''


def _tool(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)


def _serve(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None, reason="needs bash, coreutils")
@pytest.mark.parametrize(("case", "stable", "published", "installed"), [
    ("good", b"v1.34.2\n", "match", True),
    ("tampered", b"v1.34.2\n", "other", False),
    ("no checksum", b"v1.34.2\n", None, False),
    ("wrong release", b"v1.35.0\n", "match", False),
])
def test_kubectl_installer_installs_only_a_verified_binary(case, stable, published, installed, tmp_path: Path):
    assert KUBECTL_FUNCTIONS in construct.user_data("ap-northeast-1", "t3.small", {"x-main-blue": "1.34"}, "bastion")
    binary = b"\x7fELF fake kubectl"
    files = {"stable-1.34.txt": stable, "v1.34.2/bin/linux/amd64/kubectl": binary,
             "v1.35.0/bin/linux/amd64/kubectl": binary}
    if published is not None:
        digest = hashlib.sha256(binary if published == "match" else b"something else").hexdigest()
        files["v1.34.2/bin/linux/amd64/kubectl.sha256"] = digest.encode()
        files["v1.35.0/bin/linux/amd64/kubectl.sha256"] = digest.encode()
    served = _serve(tmp_path / "dl", files)
    _tool(tmp_path / "bin", "curl", FAKE_CURL)
    target = tmp_path / "usr-local-bin"
    target.mkdir()
    script = ("set -u\nKUBECTL_BASE_URL=https://dl.k8s.io/release\nARCH=amd64\nBIN_DIR=\"$1\"\n"
              f"{KUBECTL_FUNCTIONS}\ninstall_kubectl 1.34\n")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_DL": str(served)}
    result = subprocess.run(["bash", "-c", script, "bash", str(target)], capture_output=True, text=True, env=env,
                            check=False)
    installed_path = target / "kubectl-1.34"
    assert (result.returncode == 0) is installed, (case, result.stderr)
    assert installed_path.exists() is installed, case
    if installed:
        assert installed_path.read_bytes() == binary and os.access(installed_path, os.X_OK)
    elif case == "tampered":
        assert "checksum mismatch, not installed" in result.stderr
    elif case == "wrong release":
        assert "unexpected kubectl release 'v1.35.0' for 1.34" in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_kubeconfig_refresh_keeps_reachable_clusters_and_reports_the_rest(tmp_path: Path):
    clusters = {"prod-main-blue": "1.34", "prod-main-green": "1.36", "prod-ops-blue": "1.34"}
    text = construct.kubeconfig_script("ap-northeast-1", clusters)
    assert text in construct.user_data("ap-northeast-1", "t3.small", clusters, "bastion")
    script = tmp_path / "fleetform-kubeconfig"
    script.write_text(text)
    _tool(tmp_path / "bin", "aws", FAKE_AWS)
    target = tmp_path / "kubeconfig"

    def refresh(failing: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "FLEETFORM_KUBECONFIG": str(target), "FAKE_AWS_FAIL": failing}
        return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False)

    result = refresh("prod-main-green")  # the green slot is not built yet
    assert result.returncode == 1
    assert "cluster prod-main-green: not reachable yet, skipped" in result.stderr
    assert target.read_text().splitlines() == ["- context: prod-main-blue", "- context: prod-ops-blue"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert refresh("").returncode == 0
    assert len(target.read_text().splitlines()) == 3  # rebuilt from scratch, not appended to
    assert refresh("prod-main-blue prod-main-green prod-ops-blue").returncode == 1
    assert len(target.read_text().splitlines()) == 3  # nothing reachable: the last good file stays
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kubeconfig")] == []
