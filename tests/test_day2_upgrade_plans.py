"""What the first plan after upgrading fleetform does to resources an older fleetform applied, planned by
the real hashicorp/aws 5.100.0 provider (the filesystem mirror these machines carry) against a state
that holds them as the older shape left them (``-refresh=false``: no AWS is reached).

The configuration is the synthesized resource with its references replaced by literals; the state is
what the provider stores for the older resource. Skipped where the mirror or terraform is absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

MIRROR = Path("/opt/tf-plugins")
PROVIDER = MIRROR / "registry.terraform.io/hashicorp/aws/5.100.0"
TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(
    TERRAFORM is None or not PROVIDER.is_dir(),
    reason="needs terraform on PATH and the hashicorp/aws 5.100.0 mirror in /opt/tf-plugins")
AWS = 'provider["registry.terraform.io/hashicorp/aws"]'
REFERENCE = re.compile(r"\$\{[^}]*\}")


def literal(value: Any, replacement: str) -> Any:
    """The synthesized value with every ${...} reference replaced by a literal (and no depends_on)."""
    if isinstance(value, str):
        return REFERENCE.sub(replacement, value)
    if isinstance(value, list):
        return [literal(v, replacement) for v in value]
    if isinstance(value, dict):
        return {k: literal(v, replacement) for k, v in value.items() if k not in ("//", "depends_on")}
    return value


@pytest.fixture(scope="module")
def plugin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One provider unpacked for the module's plans: init links it instead of copying 600 MB each time."""
    return tmp_path_factory.mktemp("plugin-cache")


def plan(tmp_path: Path, resources: dict, state: list[dict], extra: dict | None = None, *,
         cache: Path | None = None) -> dict:
    cli = tmp_path / "cli.tfrc"
    cli.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n'
                   '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n')
    config = {"terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}},
              "provider": {"aws": [{"region": "ap-northeast-1", "access_key": "test", "secret_key": "test",
                                    "skip_credentials_validation": True, "skip_requesting_account_id": True,
                                    "skip_metadata_api_check": True}]},
              "resource": resources, **(extra or {})}
    (tmp_path / "main.tf.json").write_text(json.dumps(config))
    (tmp_path / "terraform.tfstate").write_text(json.dumps({
        "version": 4, "terraform_version": "1.11.4", "serial": 1, "lineage": "fleetform-day2-upgrade", "outputs": {},
        "resources": [{"mode": "managed", "provider": AWS, **r} for r in state]}))
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(cli), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
           "HOME": str(tmp_path), **({"TF_PLUGIN_CACHE_DIR": str(cache)} if cache else {})}
    for args in (["init", "-input=false", "-backend=false"], ["plan", "-refresh=false", "-input=false", "-out=plan"]):
        proc = subprocess.run([TERRAFORM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr
    shown = subprocess.run([TERRAFORM, "show", "-json", "plan"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    return {c["address"]: c for c in json.loads(shown.stdout).get("resource_changes", [])}


def test_a_fixed_name_node_group_is_replaced_once_new_group_first(stack_json, tmp_path: Path, plugin_cache) -> None:
    group = literal(resources_of(stack_json("dev-main-blue"), "aws_eks_node_group")["nodes-system_group"],
                    "x")
    group.update(cluster_name="dev-main-blue", node_role_arn="arn:aws:iam::555555555555:role/dev-main-blue-node",
                 subnet_ids=["subnet-1", "subnet-2"], launch_template=None, release_version="1.34.1-20261101")
    group = {k: v for k, v in group.items() if v is not None}
    old = {"id": "dev-main-blue:system", "cluster_name": "dev-main-blue", "node_group_name": "system",
           "node_group_name_prefix": "", "node_role_arn": group["node_role_arn"],
           "subnet_ids": ["subnet-1", "subnet-2"], "ami_type": group["ami_type"],
           "capacity_type": group["capacity_type"], "instance_types": group["instance_types"],
           "labels": group["labels"], "scaling_config": group["scaling_config"], "release_version": "1.34.1-20261101",
           "update_config": [{"max_unavailable": 1, "max_unavailable_percentage": 0}], "tags": group["tags"],
           "tags_all": group["tags"], "version": "1.34", "status": "ACTIVE"}
    changes = plan(tmp_path, {"aws_eks_node_group": {"g": group}},
                   [{"type": "aws_eks_node_group", "name": "g",
                     "instances": [{"schema_version": 0, "attributes": old}]}], cache=plugin_cache)
    change = changes["aws_eks_node_group.g"]["change"]
    assert change["actions"] == ["create", "delete"]  # create before destroy
    assert changes["aws_eks_node_group.g"]["action_reason"] == "replace_because_cannot_update"
    assert ["node_group_name_prefix"] in change["replace_paths"]


def test_old_endpoint_subnet_associations_are_forgotten_not_destroyed(stack_json, tmp_path: Path,
                                                                       plugin_cache) -> None:
    doc = stack_json("dev-network")
    endpoint = literal(resources_of(doc, "aws_vpc_endpoint")["vpc_endpoint-ec2"], "x")
    endpoint.update(vpc_id="vpc-1", subnet_ids=["subnet-1", "subnet-2"], security_group_ids=["sg-1"])
    removed = [r for r in doc["removed"] if "vpc_endpoint-ec2-" in r["from"]]
    assert len(removed) == 2
    # every attribute the provider stores for an interface endpoint (computed ones too: a null one plans
    # as an update)
    old_endpoint = {
        "id": "vpce-1", "arn": "arn:aws:ec2:ap-northeast-1:555555555555:vpc-endpoint/vpce-1", "vpc_id": "vpc-1",
        "service_name": endpoint["service_name"], "vpc_endpoint_type": "Interface", "private_dns_enabled": True,
        "subnet_ids": ["subnet-1", "subnet-2"], "security_group_ids": ["sg-1"], "tags": endpoint["tags"],
        "tags_all": endpoint["tags"], "auto_accept": None, "cidr_blocks": [], "dns_entry": [],
        "dns_options": [{"dns_record_ip_type": "ipv4", "private_dns_only_for_inbound_resolver_endpoint": False}],
        "ip_address_type": "ipv4", "network_interface_ids": ["eni-1", "eni-2"], "owner_id": "555555555555",
        "policy": "{}", "prefix_list_id": None, "requester_managed": False, "route_table_ids": [], "state": "available",
        "subnet_configuration": [{"ipv4": "10.30.0.5", "ipv6": "", "subnet_id": "subnet-1"},
                                 {"ipv4": "10.30.64.5", "ipv6": "", "subnet_id": "subnet-2"}],
        "timeouts": None, "resource_configuration_arn": "", "service_network_arn": "",
        "service_region": "ap-northeast-1"}
    associations = [{"type": "aws_vpc_endpoint_subnet_association", "name": r["from"].split(".", 1)[1],
                     "instances": [{"schema_version": 0, "attributes": {
                         "id": f"a-vpce-1{n}", "vpc_endpoint_id": "vpce-1", "subnet_id": f"subnet-{n}"}}]}
                    for n, r in enumerate(removed, start=1)]
    changes = plan(tmp_path, {"aws_vpc_endpoint": {"vpc_endpoint-ec2": endpoint}},
                   [{"type": "aws_vpc_endpoint", "name": "vpc_endpoint-ec2",
                     "instances": [{"schema_version": 0, "attributes": old_endpoint}]}, *associations],
                   {"removed": removed}, cache=plugin_cache)
    change = changes["aws_vpc_endpoint.vpc_endpoint-ec2"]["change"]
    assert change["actions"] == ["no-op"]
    for entry in removed:
        assert changes[entry["from"]]["change"]["actions"] == ["forget"]


@pytest.mark.parametrize(("zone_id", "actions"), [("apne1-az1", ["no-op"]), ("apne1-az4", ["delete", "create"])])
def test_a_count_placed_subnet_keeps_its_place_when_its_zone_id_is_listed(stack_json, tmp_path: Path, zone_id: str,
                                                                          actions: list[str], plugin_cache) -> None:
    """dev's private-1 is pinned to apne1-az1: a subnet the count form put in a zone named ap-northeast-1a is
    untouched when that name is apne1-az1 in the account, replaced when it is another zone."""
    subnet = literal(resources_of(stack_json("dev-network"), "aws_subnet")["vpc_subnet-private-1"], "x")
    subnet.update(vpc_id="vpc-1")
    assert subnet["availability_zone_id"] == "apne1-az1" and "availability_zone" not in subnet
    old = {"id": "subnet-1", "vpc_id": "vpc-1", "cidr_block": subnet["cidr_block"],
           "availability_zone": "ap-northeast-1a", "availability_zone_id": zone_id, "map_public_ip_on_launch": False,
           "tags": subnet["tags"],
           "tags_all": subnet["tags"], "private_dns_hostname_type_on_launch": "ip-name"}
    changes = plan(tmp_path, {"aws_subnet": {"s": subnet}},
                   [{"type": "aws_subnet", "name": "s", "instances": [{"schema_version": 1, "attributes": old}]}],
                   cache=plugin_cache)
    assert changes["aws_subnet.s"]["change"]["actions"] == actions


def resources_of(document: dict, rtype: str) -> dict:
    return document["resource"].get(rtype, {})
