"""The network stack: subnets per AZ and tier keyed by stable names, NAT, routes, endpoints, flow
logs, locked default security group, subnet tags, and the account's Argo CD manager role; removing
an AZ removes only that AZ's resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from iam_eval import Request, statement_applies

from fleetform.config import load_config
from fleetform.config.network import subnet_plan
from fleetform.constructs.vpc import INTERFACE_ENDPOINTS
from fleetform.scripts.main import cli
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


ZONES = {"prod": ["apne1-az1", "apne1-az2", "apne1-az4"], "stg": ["apne1-az1", "apne1-az2", "apne1-az4"],
         "dev": ["apne1-az1", "apne1-az2"]}


@pytest.mark.parametrize("account", ["prod", "stg", "dev"])
def test_subnets_per_az_and_tier_with_stable_keys(stack_json, account: str) -> None:
    doc = stack_json(f"{account}-network")
    subnets = resources(doc, "aws_subnet")
    azs = len(ZONES[account])
    expected = {f"vpc_subnet-{tier}-{n}" for tier in ("private", "public", "intra") for n in range(1, azs + 1)}
    assert set(subnets) == expected
    # pinned by AZ ID, the n-th configured zone for AZ n: no position in the region's zone list
    assert "aws_availability_zones" not in doc.get("data", {})
    for name, body in subnets.items():
        assert body["map_public_ip_on_launch"] is False
        assert body["availability_zone_id"] == ZONES[account][int(name.rsplit("-", 1)[1]) - 1]
        assert "availability_zone" not in body
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
    # the subnets on the endpoint itself: no per-subnet association resource (about a minute each)
    assert resources(doc, "aws_vpc_endpoint_subnet_association") == {}
    for service in REQUIRED_ENDPOINTS:
        body = services[service]
        assert body["vpc_endpoint_type"] == "Interface" and body["private_dns_enabled"] is True
        assert body["security_group_ids"] == ["${aws_security_group.vpc_endpoint-sg.id}"]
        assert body["subnet_ids"] == [f"${{aws_subnet.vpc_subnet-private-{n}.id}}" for n in (1, 2, 3)]


def test_the_old_per_subnet_associations_leave_the_state_without_being_destroyed(stack_json, example_config) -> None:
    """Estates applied with association resources: destroying them would take the subnets off the endpoints
    (whose subnet_ids already lists them, so the endpoint shows no change); removed blocks with
    destroy = false make Terraform forget them instead (a no-op where they never existed)."""
    for account in ("prod", "dev"):
        doc = stack_json(f"{account}-network")
        services = example_config.account(account).spec.network.interface_endpoints
        azs = example_config.account(account).spec.network.az_count
        assert doc["removed"] == [
            {"from": f"aws_vpc_endpoint_subnet_association.vpc_endpoint-{s.replace('.', '-')}-private-{n}",
             "lifecycle": {"destroy": False}}
            for s in sorted(services) for n in range(1, azs + 1)]
    assert "removed" not in stack_json("prod-main-blue")


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
    """prod without its third zone: exactly the third AZ's resources go; every other address and attribute
    of the network stack stays; slot stacks keep every address (only their subnet lists shrink)."""
    edit(accounts_copy / "prod.yaml", "  azs: [apne1-az1, apne1-az2, apne1-az4]", "  azs: [apne1-az1, apne1-az2]")
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
    }
    # each interface endpoint drops the third private subnet from its subnet_ids (an in-place update)
    changed = {a for a in after_net if before_net[a] != after_net[a]}
    assert changed == {f"aws_vpc_endpoint.vpc_endpoint-{s.replace('.', '-')}" for s in INTERFACE_ENDPOINTS}
    for address in changed:
        assert after_net[address]["subnet_ids"] == before_net[address]["subnet_ids"][:2]
        assert {k: v for k, v in after_net[address].items() if k != "subnet_ids"} == {
            k: v for k, v in before_net[address].items() if k != "subnet_ids"}
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
    for service in dev_list:
        assert resources(dev, "aws_vpc_endpoint")[f"vpc_endpoint-{service.replace('.', '-')}"]["subnet_ids"] == [
            f"${{aws_subnet.vpc_subnet-private-{n}.id}}" for n in (1, 2)]
    assert {"vpc_endpoint-s3", "vpc_endpoint-dynamodb"} <= set(resources(dev, "aws_vpc_endpoint"))


def test_removing_an_endpoint_changes_no_other_resource(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    """prod without kms (and its list in another order): exactly the kms endpoint goes; every other
    address and attribute of every stack stays."""
    kept = [s for s in reversed(INTERFACE_ENDPOINTS) if s != "kms"]
    edit(accounts_copy / "prod.yaml", "  nat: per-az", f"  nat: per-az\n  interface_endpoints: [{', '.join(kept)}]")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    before_net, after_net = flat(stack_json("prod-network")), flat(after["prod-network"])
    assert not set(after_net) - set(before_net)
    assert set(before_net) - set(after_net) == {"aws_vpc_endpoint.vpc_endpoint-kms"}
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


def az_resources(n: int) -> set[str]:
    """The addresses of AZ n in prod's network stack (nat: per-az)."""
    return {f"aws_subnet.vpc_subnet-{tier}-{n}" for tier in ("private", "public", "intra")} | {
        f"aws_route_table_association.vpc_rta-{tier}-{n}" for tier in ("private", "public", "intra")} | {
        f"aws_nat_gateway.vpc_nat-{n}", f"aws_eip.vpc_nat-eip-{n}", f"aws_route_table.vpc_rt-private-{n}",
        f"aws_route.vpc_route-private-{n}-nat", f"aws_vpc_endpoint_route_table_association.vpc_endpoint-s3-private-{n}",
        f"aws_vpc_endpoint_route_table_association.vpc_endpoint-dynamodb-private-{n}"}


def test_removing_a_middle_zone_keeps_the_others_in_place(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    """null in place of apne1-az2: AZ 2's resources go, AZ 3 keeps its number, zone, CIDRs and NAT
    (a position in a list would have moved apne1-az4's subnets into AZ 2's CIDRs: replacements)."""
    edit(accounts_copy / "prod.yaml", "  azs: [apne1-az1, apne1-az2, apne1-az4]", "  azs: [apne1-az1, null, apne1-az4]")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    before_net, after_net = flat(stack_json("prod-network")), flat(after["prod-network"])
    assert set(before_net) - set(after_net) == az_resources(2)
    assert not set(after_net) - set(before_net)
    changed = {a for a in after_net if before_net[a] != after_net[a]}
    assert changed == {f"aws_vpc_endpoint.vpc_endpoint-{s.replace('.', '-')}" for s in INTERFACE_ENDPOINTS}
    for address in changed:
        assert after_net[address]["subnet_ids"] == [
            "${aws_subnet.vpc_subnet-private-1.id}", "${aws_subnet.vpc_subnet-private-3.id}"]


def test_adding_a_zone_adds_only_its_resources(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    edit(accounts_copy / "prod.yaml", "  azs: [apne1-az1, apne1-az2, apne1-az4]",
         "  azs: [apne1-az1, apne1-az2, apne1-az4, apne1-az3]")
    after = flat(synth_stacks(accounts_copy, tmp_path / "out")["prod-network"])
    before = flat(stack_json("prod-network"))
    assert set(after) - set(before) == az_resources(4)
    assert not set(before) - set(after)
    assert after["aws_subnet.vpc_subnet-private-4"]["availability_zone_id"] == "apne1-az3"
    assert all(after[a] == before[a] for a in before if not a.startswith("aws_vpc_endpoint."))


def test_single_nat_sits_in_the_first_remaining_zone(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "stg.yaml", "  azs: [apne1-az1, apne1-az2, apne1-az4]", "  azs: [null, apne1-az2, apne1-az4]")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["stg-network"]
    (nat,) = resources(doc, "aws_nat_gateway").values()
    assert nat["subnet_id"] == "${aws_subnet.vpc_subnet-public-2.id}"
    routes = {k: r["nat_gateway_id"] for k, r in resources(doc, "aws_route").items() if "nat_gateway_id" in r}
    assert routes == {f"vpc_route-private-{n}-nat": "${aws_nat_gateway.vpc_nat-2.id}" for n in (2, 3)}


def test_a_count_still_places_subnets_by_zone_name_position(tmp_path: Path, accounts_copy: Path) -> None:
    """The older form (azs: 2): the region's first zones by name, as before zone IDs; same addresses."""
    edit(accounts_copy / "dev.yaml", "  azs: [apne1-az1, apne1-az2]", "  azs: 2")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["dev-network"]
    subnet = resources(doc, "aws_subnet")["vpc_subnet-private-2"]
    assert subnet["availability_zone"] == "${element(data.aws_availability_zones.vpc_azs.names, 1)}"
    assert "availability_zone_id" not in subnet


@pytest.mark.parametrize(("azs", "expected"), [
    ("[apne1-az1, apne1-az1]", "listed more than once: apne1-az1"),
    ("[ap-northeast-1a, apne1-az2]", "'ap-northeast-1a' is not an AZ ID like 'apne1-az1'"),
    ("[apne1-az1, apne1-az2, null]", "drop trailing nulls"),
    ("[apne1-az1, apne1-az2, apne1-az4, use1-az1, use1-az2]", "at most 4 AZs"),
])
def test_bad_zone_lists_are_reported(accounts_copy: Path, azs: str, expected: str) -> None:
    edit(accounts_copy / "prod.yaml", "  azs: [apne1-az1, apne1-az2, apne1-az4]", f"  azs: {azs}")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "prod.yaml" in result.output and "network.azs" in result.output
    assert expected in " ".join(result.output.split()), result.output


def test_subnet_plan_keeps_each_zones_cidrs_whatever_happens_to_the_others() -> None:
    full = {s.key: (s.cidr, s.zone_id) for s in subnet_plan("10.10.0.0/16", ["apne1-az1", "apne1-az2", "apne1-az4"])}
    holed = {s.key: (s.cidr, s.zone_id) for s in subnet_plan("10.10.0.0/16", ["apne1-az1", None, "apne1-az4"])}
    grown = {s.key: (s.cidr, s.zone_id) for s in subnet_plan("10.10.0.0/16",
                                                             ["apne1-az1", "apne1-az2", "apne1-az4", "apne1-az3"])}
    counted = {s.key: s.cidr for s in subnet_plan("10.10.0.0/16", 3)}
    assert holed == {k: v for k, v in full.items() if not k.endswith("-2")}
    assert {k: grown[k] for k in full} == full and grown["private-4"][1] == "apne1-az3"
    assert {k: v[0] for k, v in full.items()} == counted  # the count form had the same CIDRs


def logs_statements(policy: dict) -> list[dict]:
    return [s for s in policy["Statement"]
            if any(str(p).startswith("logs.") for p in _as_list(s.get("Principal", {}).get("Service", [])))]


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def test_cloudwatch_logs_may_use_a_key_only_for_its_log_groups(synth_out: Path, stack_json) -> None:
    """Every key policy that lets CloudWatch Logs in binds it with kms:EncryptionContext:aws:logs:arn (the
    condition AWS documents for log group encryption), in every stack; the flow-log key only for the
    flow-log group: another group of the same account is refused."""
    seen = 0
    for stack in sorted(p.name for p in (synth_out / "stacks").iterdir()):
        for name, key in resources(stack_json(stack), "aws_kms_key").items():
            for statement in logs_statements(json.loads(key["policy"])):
                seen += 1
                operators = statement["Condition"]
                assert any("kms:EncryptionContext:aws:logs:arn" in operators.get(op, {})
                           for op in ("ArnLike", "ArnEquals")), (stack, name, operators)
                assert "aws:SourceAccount" not in json.dumps(statement), (stack, name)
    assert seen >= 10
    policy = json.loads(resources(stack_json("prod-network"), "aws_kms_key")["vpc_flow-log-key_key"]["policy"])
    (statement,) = logs_statements(policy)
    group = "arn:aws:logs:ap-northeast-1:333333333333:log-group:/fleetform/vpc/prod/flow-logs"

    def allowed(context_arn: str) -> bool:
        return statement_applies(statement, Request("kms:GenerateDataKey", "logs.ap-northeast-1.amazonaws.com",
                                                    context={"kms:EncryptionContext:aws:logs:arn": context_arn}))
    assert allowed(group)
    assert not allowed("arn:aws:logs:ap-northeast-1:333333333333:log-group:/aws/lambda/anything")
    assert not allowed(group.replace("333333333333", "999999999999"))
