"""The network stack: subnets per AZ and tier keyed by stable names, NAT, routes, endpoints, flow
logs, locked default security group, subnet tags, and the account's Argo CD manager role; removing
an AZ removes only that AZ's resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetform.config import load_config
from fleetform.constructs.vpc import INTERFACE_ENDPOINTS
from fleetform.stacks.app import synth

REQUIRED_ENDPOINTS = {"ec2", "ecr.api", "ecr.dkr", "sts", "logs", "ssm", "ssmmessages", "ec2messages", "eks",
                      "eks-auth", "elasticloadbalancing", "autoscaling", "sqs"}


def resources(document: dict, rtype: str) -> dict:
    return document["resource"].get(rtype, {})


def flat(document: dict) -> dict[str, dict]:
    """Terraform address -> body (without the construct metadata comment)."""
    out = {}
    for rtype, items in document.get("resource", {}).items():
        for name, body in items.items():
            out[f"{rtype}.{name}"] = {k: v for k, v in body.items() if k != "//"}
    return out


def synth_stacks(accounts: Path, out: Path) -> dict[str, dict]:
    synth(load_config(accounts), out)
    return {p.name: json.loads((p / "cdk.tf.json").read_text()) for p in (out / "stacks").iterdir()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("account", "azs"), [("prod", 3), ("stg", 3), ("dev", 2)])
def test_subnets_per_az_and_tier_with_stable_keys(stack_json, account: str, azs: int) -> None:
    subnets = resources(stack_json(f"{account}-network"), "aws_subnet")
    expected = {f"vpc_subnet-{tier}-{n}" for tier in ("private", "public", "intra") for n in range(1, azs + 1)}
    assert set(subnets) == expected
    for name, body in subnets.items():
        assert body["map_public_ip_on_launch"] is False
        tier = name.split("-")[1]
        assert body["tags"]["fleetform:tier"] == tier
        if tier == "public":
            assert body["tags"]["kubernetes.io/role/elb"] == "1"
        if tier == "private":
            assert body["tags"]["kubernetes.io/role/internal-elb"] == "1"
            assert body["tags"]["karpenter.sh/discovery"] == account
        if tier == "intra":
            assert not any(k.startswith(("kubernetes.io", "karpenter")) for k in body["tags"])


def test_nat_per_az_routes_each_private_table_to_its_own_az(stack_json) -> None:
    doc = stack_json("prod-network")
    assert set(resources(doc, "aws_nat_gateway")) == {"vpc_nat-1", "vpc_nat-2", "vpc_nat-3"}
    for n in (1, 2, 3):
        nat = resources(doc, "aws_nat_gateway")[f"vpc_nat-{n}"]
        assert nat["subnet_id"] == f"${{aws_subnet.vpc_subnet-public-{n}.id}}"
        assert nat["allocation_id"] == f"${{aws_eip.vpc_nat-eip-{n}.allocation_id}}"
        route = resources(doc, "aws_route")[f"vpc_route-private-{n}-nat"]
        assert route == {**route, "destination_cidr_block": "0.0.0.0/0",
                         "nat_gateway_id": f"${{aws_nat_gateway.vpc_nat-{n}.id}}",
                         "route_table_id": f"${{aws_route_table.vpc_rt-private-{n}.id}}"}


def test_single_nat_serves_every_private_table(stack_json) -> None:
    doc = stack_json("stg-network")
    assert set(resources(doc, "aws_nat_gateway")) == {"vpc_nat-1"}
    routes = resources(doc, "aws_route")
    for n in (1, 2, 3):
        assert routes[f"vpc_route-private-{n}-nat"]["nat_gateway_id"] == "${aws_nat_gateway.vpc_nat-1.id}"


def test_internet_only_from_public_tables_and_intra_has_no_route_out(stack_json) -> None:
    doc = stack_json("prod-network")
    routes = resources(doc, "aws_route")
    gateway_routes = {k: v for k, v in routes.items() if "gateway_id" in v}
    assert list(gateway_routes) == ["vpc_route-public-internet"]
    assert gateway_routes["vpc_route-public-internet"]["route_table_id"] == "${aws_route_table.vpc_rt-public.id}"
    assert not any("rt-intra" in r["route_table_id"] for r in routes.values())
    associations = resources(doc, "aws_route_table_association")
    assert associations["vpc_rta-intra-2"]["route_table_id"] == "${aws_route_table.vpc_rt-intra.id}"
    assert associations["vpc_rta-private-2"]["route_table_id"] == "${aws_route_table.vpc_rt-private-2.id}"
    assert associations["vpc_rta-public-3"]["route_table_id"] == "${aws_route_table.vpc_rt-public.id}"


def test_gateway_and_interface_endpoints(stack_json) -> None:
    doc = stack_json("prod-network")
    endpoints = resources(doc, "aws_vpc_endpoint")
    services = {e["service_name"].removeprefix("com.amazonaws.ap-northeast-1."): e for e in endpoints.values()}
    assert REQUIRED_ENDPOINTS <= set(services) and set(INTERFACE_ENDPOINTS) <= set(services)
    assert services["s3"]["vpc_endpoint_type"] == "Gateway"
    assert services["dynamodb"]["vpc_endpoint_type"] == "Gateway"
    tables = set(resources(doc, "aws_route_table"))
    for service in ("s3", "dynamodb"):
        associated = {a["route_table_id"] for a in resources(doc, "aws_vpc_endpoint_route_table_association").values()
                      if a["vpc_endpoint_id"] == f"${{aws_vpc_endpoint.vpc_endpoint-{service}.id}}"}
        assert associated == {f"${{aws_route_table.{t}.id}}" for t in tables}
    subnet_associations = resources(doc, "aws_vpc_endpoint_subnet_association")
    for service in REQUIRED_ENDPOINTS:
        body = services[service]
        assert body["vpc_endpoint_type"] == "Interface" and body["private_dns_enabled"] is True
        assert body["security_group_ids"] == ["${aws_security_group.vpc_endpoint-sg.id}"]
        key = service.replace(".", "-")
        assert {f"vpc_endpoint-{key}-private-{n}" for n in (1, 2, 3)} <= set(subnet_associations)


def test_endpoint_security_group_allows_https_from_the_vpc_only(stack_json) -> None:
    sg = resources(stack_json("prod-network"), "aws_security_group")["vpc_endpoint-sg"]
    assert [(r["protocol"], r["from_port"], r["to_port"], r["cidr_blocks"]) for r in sg["ingress"]] == [
        ("tcp", 443, 443, ["10.10.0.0/16"])]
    assert sg["egress"] == []


def test_default_security_group_locked_and_flow_logs_kept_a_year(stack_json) -> None:
    doc = stack_json("prod-network")
    default_sg = resources(doc, "aws_default_security_group")["vpc_default-sg"]
    assert "ingress" not in default_sg and "egress" not in default_sg
    flow = resources(doc, "aws_flow_log")["vpc_flow-log"]
    assert flow["traffic_type"] == "ALL"
    group = resources(doc, "aws_cloudwatch_log_group")["vpc_flow-log-group_group"]
    assert group["retention_in_days"] >= 365 and group["kms_key_id"].startswith("${aws_kms_key.")


def test_network_outputs_for_other_stacks_and_people(stack_json) -> None:
    outputs = stack_json("dev-network")["output"]
    assert {"vpc_id", "private_subnet_ids", "public_subnet_ids", "intra_subnet_ids",
            "endpoint_security_group_id"} <= set(outputs)
    assert len(outputs["private_subnet_ids"]["value"]) == 2


@pytest.mark.parametrize("account", ["prod", "stg", "dev"])
def test_argocd_manager_role_trusts_only_the_ops_argocd_role(stack_json, account: str) -> None:
    role = resources(stack_json(f"{account}-network"), "aws_iam_role")["argocd-manager_role"]
    assert role["name"] == "fleetform-argocd-manager"
    trust = json.loads(role["assume_role_policy"])
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::333333333333:root"]}
    assert statement["Condition"] == {"ArnLike": {"aws:PrincipalArn": [
        "arn:aws:iam::333333333333:role/fleetform-argocd"]}}


def test_removing_an_az_changes_no_other_resource(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    """prod azs 3 -> 2: exactly the third AZ's resources go; every other address and attribute of the
    network stack stays; slot stacks keep every address (only their subnet lists shrink)."""
    edit(accounts_copy / "prod.yaml", "  azs: 3", "  azs: 2")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    before_net, after_net = flat(stack_json("prod-network")), flat(after["prod-network"])
    removed = set(before_net) - set(after_net)
    assert not set(after_net) - set(before_net)
    assert removed == {
        "aws_subnet.vpc_subnet-private-3", "aws_subnet.vpc_subnet-public-3", "aws_subnet.vpc_subnet-intra-3",
        "aws_route_table_association.vpc_rta-private-3", "aws_route_table_association.vpc_rta-public-3",
        "aws_route_table_association.vpc_rta-intra-3", "aws_nat_gateway.vpc_nat-3", "aws_eip.vpc_nat-eip-3",
        "aws_route_table.vpc_rt-private-3", "aws_route.vpc_route-private-3-nat",
        "aws_vpc_endpoint_route_table_association.vpc_endpoint-s3-private-3",
        "aws_vpc_endpoint_route_table_association.vpc_endpoint-dynamodb-private-3",
        *{f"aws_vpc_endpoint_subnet_association.vpc_endpoint-{s.replace('.', '-')}-private-3"
          for s in INTERFACE_ENDPOINTS},
        # the ops hub's routes to the spokes from that AZ's private route table (decision 0005)
        "aws_route.ops-hub_route-private-3-stg", "aws_route.ops-hub_route-private-3-dev",
    }
    changed = [a for a in after_net if before_net[a] != after_net[a]]
    # the Transit Gateway attachment has one subnet per AZ in one resource: it loses the third in place
    attachment = "aws_ec2_transit_gateway_vpc_attachment.ops-hub_attachment"
    assert changed == [attachment]
    assert before_net[attachment]["subnet_ids"][:2] == after_net[attachment]["subnet_ids"]
    assert {k: v for k, v in before_net[attachment].items() if k != "subnet_ids"} == {
        k: v for k, v in after_net[attachment].items() if k != "subnet_ids"}
    for slot in ("prod-main-blue", "prod-main-green", "prod-ops-blue"):
        assert set(flat(stack_json(slot))) == set(flat(after[slot])), slot


def interface_services(document: dict) -> set[str]:
    return {e["service_name"].removeprefix("com.amazonaws.ap-northeast-1.")
            for e in resources(document, "aws_vpc_endpoint").values() if e["vpc_endpoint_type"] == "Interface"}


def test_interface_endpoints_follow_the_configuration(stack_json, example_config) -> None:
    """prod and stg keep the full default set; dev has exactly its list, each in both private subnets."""
    assert interface_services(stack_json("prod-network")) == set(INTERFACE_ENDPOINTS)
    assert interface_services(stack_json("stg-network")) == set(INTERFACE_ENDPOINTS)
    dev_list = example_config.account("dev").spec.network.interface_endpoints
    dev = stack_json("dev-network")
    assert interface_services(dev) == set(dev_list) and len(dev_list) < len(INTERFACE_ENDPOINTS)
    assert set(resources(dev, "aws_vpc_endpoint_subnet_association")) == {
        f"vpc_endpoint-{s.replace('.', '-')}-private-{n}" for s in dev_list for n in (1, 2)}
    assert {"vpc_endpoint-s3", "vpc_endpoint-dynamodb"} <= set(resources(dev, "aws_vpc_endpoint"))


def test_removing_an_endpoint_changes_no_other_resource(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    """prod without kms (and its list in another order): exactly the kms endpoint and its three
    subnet associations go; every other address and attribute of every stack stays."""
    kept = [s for s in reversed(INTERFACE_ENDPOINTS) if s != "kms"]
    edit(accounts_copy / "prod.yaml", "  nat: per-az", f"  nat: per-az\n  interface_endpoints: [{', '.join(kept)}]")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    before_net, after_net = flat(stack_json("prod-network")), flat(after["prod-network"])
    assert not set(after_net) - set(before_net)
    assert set(before_net) - set(after_net) == {
        "aws_vpc_endpoint.vpc_endpoint-kms",
        *{f"aws_vpc_endpoint_subnet_association.vpc_endpoint-kms-private-{n}" for n in (1, 2, 3)}}
    assert [a for a in after_net if before_net[a] != after_net[a]] == []
    for name, document in after.items():
        if name != "prod-network":
            assert stack_json(name) == document, name


def test_no_interface_endpoints(tmp_path: Path, accounts_copy: Path) -> None:
    """[]: no interface endpoint and no association; gateway endpoints, the endpoint security group
    and its output stay (other stacks may read it)."""
    edit(accounts_copy / "stg.yaml", "  nat: single", "  nat: single\n  interface_endpoints: []")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["stg-network"]
    assert interface_services(doc) == set()
    assert resources(doc, "aws_vpc_endpoint_subnet_association") == {}
    assert set(resources(doc, "aws_vpc_endpoint")) == {"vpc_endpoint-s3", "vpc_endpoint-dynamodb"}
    assert "vpc_endpoint-sg" in resources(doc, "aws_security_group")
    assert "endpoint_security_group_id" in doc["output"]
