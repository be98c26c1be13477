"""The Ops cluster's reach (Transit Gateway, routes, security group rules) and the Argo CD registration
secrets of every service slot, on the synthesized example organization (decision 0005)."""

from __future__ import annotations

import json
import re
from ipaddress import ip_network

import pytest

from fleetform.config.hub import hub_plan
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    ARGOCD_MANAGER_ROLE,
    ARGOCD_ROLE,
    EXTERNAL_SECRETS_ROLE,
    network_stack,
    role_arn,
    transit_stack,
)
from tests.iam_eval import Request, denied_by


def bodies(document: dict, rtype: str) -> dict[str, dict]:
    return {name: {k: v for k, v in body.items() if k != "//"}
            for name, body in document.get("resource", {}).get(rtype, {}).items()}


@pytest.fixture(scope="module")
def plan(example_config):
    found = hub_plan(example_config)
    assert found is not None
    return found


def test_the_example_has_a_hub_with_two_spokes(plan):
    assert plan.ops_account.name == "prod"
    assert [s.name for s in plan.spokes] == ["dev", "stg"]
    assert {r.stack for r in plan.registrations} == {"prod-main-blue", "prod-main-green", "stg-main-blue",
                                                     "dev-main-blue"}


def test_transit_gateway_is_segmented_and_shared_only_with_spokes(plan, stack_json):
    ops = stack_json(network_stack("prod"))
    [tgw] = bodies(ops, "aws_ec2_transit_gateway").values()
    assert tgw["default_route_table_association"] == "disable"
    assert tgw["default_route_table_propagation"] == "disable"
    # the association in <ops>-transit is the approval (a pending attachment would fail the spoke's route)
    assert tgw["auto_accept_shared_attachments"] == "enable"
    [share] = bodies(ops, "aws_ram_resource_share").values()
    assert share["allow_external_principals"] is False
    principals = {b["principal"] for b in bodies(ops, "aws_ram_principal_association").values()}
    assert principals == {s.account_id for s in plan.spokes}
    assert set(bodies(ops, "aws_ram_principal_association")) == {f"ops-hub_share-{s.name}" for s in plan.spokes}


def _tgw_routes(document: dict) -> dict[str, list[str]]:
    """route table key -> destinations routed to a Transit Gateway, in one VPC's network stack."""
    out: dict[str, list[str]] = {}
    for body in bodies(document, "aws_route").values():
        if "transit_gateway_id" in body:
            # a table of the same stack (aws_route_table.vpc_rt-x.id) or of the network stack (..._vpc_rt-x_id)
            table = re.search(r"vpc_rt-([a-z0-9-]+?)[._]id\}$", body["route_table_id"]).group(1)
            out.setdefault(table, []).append(body["destination_cidr_block"])
    return {k: sorted(v) for k, v in out.items()}


def test_ops_vpc_routes_to_every_spoke_and_spokes_route_only_back_to_ops(plan, stack_json, example_config):
    ops = stack_json(network_stack("prod"))
    spoke_cidrs = sorted(s.cidr for s in plan.spokes)
    ops_routes = _tgw_routes(ops)
    azs = example_config.account("prod").spec.network.azs
    # Argo CD's pods are in the private subnets: each private table routes every spoke, nothing else does
    zones = [n for n, zone in enumerate(azs, 1) if zone] if isinstance(azs, list) else range(1, azs + 1)
    assert ops_routes == {f"private-{n}": spoke_cidrs for n in zones}
    for spoke in plan.spokes:
        # the spoke's network stack itself holds nothing of the hub: a change of the ops network re-plans
        # only the spoke's small transit stack
        assert not _tgw_routes(stack_json(network_stack(spoke.name)))
        document = stack_json(transit_stack(spoke.name))
        # only the control-plane subnets (intra) answer the ops VPC; nodes and pods have no path there
        assert _tgw_routes(document) == {"intra": [plan.ops_cidr]}
        assert f"cross-stack-reference-input-{spoke.name}-network" in \
            bodies(document, "aws_route")["ops-hub_route-intra-ops"]["route_table_id"]
        [attachment] = bodies(document, "aws_ec2_transit_gateway_vpc_attachment").values()
        assert "cross-stack-reference-input-prod-network" in attachment["transit_gateway_id"]
        assert all("vpc_subnet-intra-" in s for s in attachment["subnet_ids"])


def test_transit_route_tables_let_spokes_reach_only_the_ops_vpc(plan, stack_json):
    ops = stack_json(network_stack("prod"))
    routes = bodies(ops, "aws_ec2_transit_gateway_route")
    # the spokes' table: one route, to the ops VPC through the ops attachment
    assert list(routes.values()) == [{
        "destination_cidr_block": plan.ops_cidr,
        "transit_gateway_attachment_id": "${aws_ec2_transit_gateway_vpc_attachment.ops-hub_attachment.id}",
        "transit_gateway_route_table_id": "${aws_ec2_transit_gateway_route_table.ops-hub_rt-spokes.id}"}]
    [hub_association] = bodies(ops, "aws_ec2_transit_gateway_route_table_association").values()
    assert hub_association["transit_gateway_route_table_id"].endswith("ops-hub_rt-hub.id}")
    assert not bodies(ops, "aws_ec2_transit_gateway_route_table_propagation")

    transit = stack_json(transit_stack("prod"))
    associated = bodies(transit, "aws_ec2_transit_gateway_route_table_association")
    propagated = bodies(transit, "aws_ec2_transit_gateway_route_table_propagation")
    assert set(associated) == {f"ops-hub_associate-{s.name}" for s in plan.spokes}
    for spoke in plan.spokes:
        source = f"cross-stack-reference-input-{spoke.name}-transit"
        for found in (associated[f"ops-hub_associate-{spoke.name}"], propagated[f"ops-hub_propagate-{spoke.name}"]):
            assert source in found["transit_gateway_attachment_id"]
        # spokes are associated with the spokes' table, propagated only into the hub's
        assert "ops-hub_rt-spokes" in associated[f"ops-hub_associate-{spoke.name}"]["transit_gateway_route_table_id"]
        assert "ops-hub_rt-hub" in propagated[f"ops-hub_propagate-{spoke.name}"]["transit_gateway_route_table_id"]
    assert len(propagated) == len(plan.spokes) == len(associated)


def test_every_service_cluster_admits_the_ops_vpc_on_443_and_nothing_else(plan, stack_json, example_config):
    spoke_or_ops = [ip_network(plan.ops_cidr), *(ip_network(s.cidr) for s in plan.spokes)]
    for registration in plan.registrations:
        rules = bodies(stack_json(registration.stack), "aws_vpc_security_group_ingress_rule")
        by_cidr = [r for r in rules.values() if "cidr_ipv4" in r]
        assert by_cidr == [{
            "cidr_ipv4": plan.ops_cidr, "ip_protocol": "tcp", "from_port": 443, "to_port": 443,
            "security_group_id": "${aws_eks_cluster.eks_cluster.vpc_config.0.cluster_security_group_id}",
            "description": "Argo CD in the ops cluster (Transit Gateway) to the private API endpoint"}]
    # the ops cluster itself and stacks without clusters get no such rule
    for slot in plan.ops_slots:
        rules = bodies(stack_json(slot), "aws_vpc_security_group_ingress_rule")
        assert not [r for r in rules.values() if "cidr_ipv4" in r]
    # no other network stack opens anything to the other VPCs' ranges
    for account in example_config.accounts:
        if account.spec.network is None:
            continue
        for sg in bodies(stack_json(network_stack(account.name)), "aws_security_group").values():
            for rule in sg.get("ingress", []):
                for cidr in rule.get("cidr_blocks", []):
                    assert ip_network(cidr) == ip_network(account.spec.network.cidr) or \
                        not any(ip_network(cidr).overlaps(n) for n in spoke_or_ops)


def _registration(stack_json, stack: str) -> tuple[dict, dict, dict]:
    document = stack_json(stack)
    [secret] = bodies(document, "aws_secretsmanager_secret").values()
    [version] = bodies(document, "aws_secretsmanager_secret_version").values()
    [policy] = bodies(document, "aws_secretsmanager_secret_policy").values()
    return secret, version, policy


def test_every_service_slot_publishes_its_argocd_registration(plan, stack_json):
    ops_id = plan.ops_account.id
    for registration in plan.registrations:
        document = stack_json(registration.stack)
        secret, version, _ = _registration(stack_json, registration.stack)
        assert secret["name"] == f"fleetform/argocd/clusters/{registration.stack}"
        assert secret["kms_key_id"] == f"arn:aws:kms:ap-northeast-1:{ops_id}:alias/fleetform-argocd-clusters"
        # written into the ops account through the aliased provider
        providers = {p.get("alias"): p for p in document["provider"]["aws"]}
        assert secret["provider"] == version["provider"] == "aws.ops"
        assert providers["ops"]["allowed_account_ids"] == [ops_id]
        value = json.loads(version["secret_string"])
        assert set(value) == {"name", "server", "config", "labels", "annotations"}
        assert value["name"] == registration.stack
        assert value["server"] == "${aws_eks_cluster.eks_cluster.endpoint}"
        config = json.loads(value["config"])
        assert config == {"awsAuthConfig": {"clusterName": registration.stack,
                                            "roleARN": role_arn(registration.account_id, ARGOCD_MANAGER_ROLE)},
                          "tlsClientConfig": {"caData": "${aws_eks_cluster.eks_cluster.certificate_authority.0.data}"}}
        assert value["labels"] == {
            "fleetform.io/account": registration.account, "fleetform.io/cluster": "main",
            "fleetform.io/slot": registration.slot, "fleetform.io/version": registration.version,
            "fleetform.io/environment": registration.account}
        assert set(value["annotations"]) == {"fleetform.io/vpc-id", "fleetform.io/region",
                                             "fleetform.io/amp-remote-write-url"}
        amp_url = value["annotations"]["fleetform.io/amp-remote-write-url"]
        assert "cross-stack-reference-input-prod-ops-shared" in amp_url
    green = next(r for r in plan.registrations if r.stack == "prod-main-green")
    assert green.labels["fleetform.io/slot"] == "green" and green.labels["fleetform.io/version"] == "1.36"


def test_the_ops_cluster_registers_no_secret_for_itself(plan, stack_json):
    for slot in plan.ops_slots:
        assert not bodies(stack_json(slot), "aws_secretsmanager_secret")
        [association] = [b for b in bodies(stack_json(slot), "aws_eks_pod_identity_association").values()
                         if b["namespace"] == "external-secrets"]
        assert association["role_arn"] == role_arn(plan.ops_account.id, EXTERNAL_SECRETS_ROLE)


@pytest.mark.parametrize("principal_role, action, allowed", [
    (ACCOUNT_APPLY_ROLE, "secretsmanager:PutSecretValue", True),
    (ACCOUNT_APPLY_ROLE, "secretsmanager:DeleteSecret", True),
    (ACCOUNT_PLAN_ROLE, "secretsmanager:GetSecretValue", True),
    (ACCOUNT_PLAN_ROLE, "secretsmanager:PutSecretValue", False),
    (EXTERNAL_SECRETS_ROLE, "secretsmanager:GetSecretValue", True),
    (EXTERNAL_SECRETS_ROLE, "secretsmanager:DescribeSecret", True),
    (EXTERNAL_SECRETS_ROLE, "secretsmanager:PutSecretValue", False),
    (EXTERNAL_SECRETS_ROLE, "secretsmanager:PutResourcePolicy", False),
    (ARGOCD_ROLE, "secretsmanager:GetSecretValue", False),
    ("OrganizationAccountAccessRole", "secretsmanager:GetSecretValue", False),
])
def test_only_the_pipeline_writes_and_only_external_secrets_reads(plan, stack_json, principal_role, action, allowed):
    for registration in plan.registrations:
        _, _, policy = _registration(stack_json, registration.stack)
        document = json.loads(policy["policy"])
        request = Request(action, role_arn(plan.ops_account.id, principal_role))
        assert (not denied_by([document], request)) is allowed, (registration.stack, principal_role, action)
    # a role of the same name in another account is no exception
    other = Request("secretsmanager:GetSecretValue", role_arn("444444444444", EXTERNAL_SECRETS_ROLE))
    assert denied_by([document], other)


def test_external_secrets_role_reads_only_registrations(plan, stack_json):
    shared = stack_json("prod-ops-shared")
    roles = bodies(shared, "aws_iam_role")
    [role] = [r for r in roles.values() if r["name"] == EXTERNAL_SECRETS_ROLE]
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    [policy] = [p for p in bodies(shared, "aws_iam_role_policy").values() if p["name"] == "read-registrations"]
    statements = json.loads(policy["policy"])["Statement"]
    assert statements[0]["Resource"].endswith(":secret:fleetform/argocd/clusters/*")
    assert sorted(statements[0]["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    assert statements[1]["Action"] == "kms:Decrypt"
    aliases = [a["name"] for a in bodies(shared, "aws_kms_alias").values()]
    assert "alias/fleetform-argocd-clusters" in aliases


def test_a_service_cluster_in_another_region_is_refused(accounts_copy):
    from fleetform.config import load_config
    from fleetform.errors import ConfigurationError

    path = accounts_copy / "stg.yaml"
    text = path.read_text().replace("  ou: Workloads/NonProd\n", "  ou: Workloads/NonProd\n  region: us-east-1\n")
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_config(accounts_copy)
    messages = [str(p) for p in raised.value.problems]
    assert any("stg.yaml" in m and "clusters.main" in m and "Transit Gateway" in m for m in messages), messages
