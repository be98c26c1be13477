"""The configuration loader: the example loads; every kind of bad input gives exit 2 with file
and field named, all problems at once, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.config.network import subnet_plan
from fleetform.errors import ConfigurationError
from fleetform.scripts.main import cli


def problems_for(directory: Path) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_example_organization_loads(example_config):
    names = sorted(a.name for a in example_config.accounts)
    assert names == ["dev", "log-archive", "management", "prod", "stg"]
    prod = example_config.account("prod")
    assert set(prod.spec.clusters) == {"main", "ops"}
    assert prod.spec.clusters["ops"].role == "ops"
    assert prod.spec.clusters["main"].node_groups["app"].capacity == "spot"
    assert set(example_config.account("stg").spec.clusters) == {"main"}
    assert set(example_config.account("dev").spec.clusters) == {"main"}
    assert example_config.management.name == "management"
    assert "Workloads" in example_config.organization.ou_tree  # implied parent OU


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("prod.yaml", "nat: per-az", "nat: per-az\n  natt: 1", ["prod.yaml:", "network.natt: unknown key"]),
        ("prod.yaml", "  azs: [", "  azss: [", ["network.azss: unknown key; did you mean 'azs'?"]),
        ("prod.yaml", "cidr: 10.10.0.0/16", "cidr: 10.20.0.0/16", ["network.cidr", "overlaps 10.20.0.0/16"]),
        ("prod.yaml", "min: 2, max: 6", "min: 7, max: 6", ["clusters.main.node_groups.system.min",
                                                          "min (7) is greater than max (6)"]),
        ("prod.yaml", "[g6.xlarge, g5.xlarge]", "[m7i.xlarge]",
         ["clusters.main.node_groups.gpu.instance_types", "GPU group on non-GPU instance types m7i.xlarge"]),
        ("prod.yaml", "[m7i.xlarge, m6i.xlarge, m7a.xlarge, m6a.xlarge]", "[m7i.xlarge, m6i.xlarge]",
         ["clusters.main.node_groups.app.instance_types", "at least 3 instance types"]),
        ("prod.yaml", "[m7i.xlarge, m6i.xlarge, m7a.xlarge, m6a.xlarge]", "[m7i.xlarge, m7i.2xlarge, m7i.4xlarge]",
         ["clusters.main.node_groups.app.instance_types", "at least 2 families"]),
        ("prod.yaml", 'blue: {version: "1.34"}\n      green', 'blue: {version: "1.33"}\n      green',
         ["clusters.main.slots", "3 minor versions apart"]),
        ("prod.yaml", 'green: {version: "1.36"}', 'purple: {version: "1.36"}', ["clusters.main.slots",
                                                                             "blue or green"]),
        ("prod.yaml", 'green: {version: "1.36"}', 'green: {version: "1.3x"}', ["clusters.main.slots.green.version"]),
        ("prod.yaml", "ou: Workloads/Prod", "ou: Workloads/Production", ["account.ou", "unknown OU"]),
        ("stg.yaml", "aws+stg@", "aws+prod@", ["account.email", "already used"]),
        ("stg.yaml", '"444444444444"', '"4444"', ["account.id"]),
        ("stg.yaml", "aws+stg@familyalbum.example", "not-an-email", ["account.email", "not a valid email"]),
        ("dev.yaml", "name: dev", "name: prod", ["account.name", "already used"]),
        ("dev.yaml", "  azs: [", "  region: eu-west-1\n  azs: [", ["network.region: unknown key"]),
        ("dev.yaml", "ou: Workloads/NonProd", "ou: Workloads/NonProd\n  region: eu-west-1",
         ["account.region", "not in allowed_regions"]),
        ("dev.yaml", "cidr: 10.30.0.0/16", "cidr: 10.30.0.0/26", ["network.cidr"]),
        ("dev.yaml", "cidr: 10.30.0.0/16", "cidr: 10.30.0.1/16", ["network.cidr"]),
        ("dev.yaml", "nat: single", "nat: none", ["dev.yaml", "network.nat", "needs outbound HTTPS"]),
        ("dev.yaml", "  azs: [apne1-az1, apne1-az2]", "  azs: [apne1-az1]",
         ["dev.yaml", "network.azs", "at least 2 AZs"]),
        ("organization.yaml", "[ap-northeast-1, us-east-1]", "[ap-northeast-1]", ["prod.yaml", "dns", "us-east-1"]),
        ("dev.yaml", "  azs: [", "  flow_log_retention_days: 30\n  azs: [",
         ["network.flow_log_retention_days", "greater than or equal to 365"]),
        ("dev.yaml", "hostname: api.dev.familyalbum.example", "hostname: api.elsewhere.example",
         ["clusters.main.hostname", "not inside the zone"]),
    ],
)
def test_bad_configuration_names_file_and_field(accounts_copy, file, old, new, expected):
    edit(accounts_copy / file, old, new)
    problems = "\n".join(problems_for(accounts_copy))
    for fragment in expected:
        assert fragment in problems, problems


def test_all_zero_weights_rejected(accounts_copy):
    edit(accounts_copy / "prod.yaml", 'blue: {version: "1.34"}\n      green: {version: "1.36"}',
         'blue: {version: "1.34", weight: 0}\n      green: {version: "1.36", weight: 0}')
    assert any("clusters.main.slots: all slot weights are 0" in p for p in problems_for(accounts_copy))


def test_all_problems_reported_together(accounts_copy):
    edit(accounts_copy / "prod.yaml", "min: 2, max: 6", "min: 7, max: 6")
    edit(accounts_copy / "stg.yaml", "  azs: [", "  azss: [")
    edit(accounts_copy / "dev.yaml", "ou: Workloads/NonProd", "ou: Nowhere")
    problems = problems_for(accounts_copy)
    assert len(problems) >= 3
    assert any(p.startswith(str(accounts_copy / "prod.yaml")) for p in problems)
    assert any(p.startswith(str(accounts_copy / "stg.yaml")) for p in problems)
    assert any(p.startswith(str(accounts_copy / "dev.yaml")) for p in problems)


def test_yaml_syntax_error_has_line(accounts_copy):
    (accounts_copy / "stg.yaml").write_text("account:\n  name: stg\n  id: [unclosed\n")
    problems = problems_for(accounts_copy)
    assert any("stg.yaml:" in p and "YAML syntax error" in p for p in problems), problems


def test_duplicate_yaml_key_rejected(accounts_copy):
    edit(accounts_copy / "dev.yaml", "  azs: [", "  azs: 3\n  azs: [")
    assert any("dev.yaml" in p and "YAML" in p for p in problems_for(accounts_copy))


@pytest.mark.parametrize("content", ["", "# only a comment\n", "- a\n- list\n"])
def test_empty_or_non_mapping_file(accounts_copy, content):
    (accounts_copy / "dev.yaml").write_text(content)
    assert any("dev.yaml" in p for p in problems_for(accounts_copy))


def test_unreadable_file(accounts_copy):
    (accounts_copy / "dev.yaml").write_bytes(b"\xff\xfe\x00garbage")
    assert any("dev.yaml" in p for p in problems_for(accounts_copy))


def test_missing_and_empty_directories(tmp_path):
    assert "does not exist" in problems_for(tmp_path / "nope")[0]
    assert "no .yaml files" in problems_for(tmp_path)[0]


def test_missing_organization_file(accounts_copy):
    (accounts_copy / "organization.yaml").unlink()
    assert any("organization.yaml" in p and "missing" in p for p in problems_for(accounts_copy))


def test_line_numbers_point_at_the_field(accounts_copy):
    edit(accounts_copy / "prod.yaml", "  azs: [", "  azss: [")
    problem = next(p for p in problems_for(accounts_copy) if "azss" in p)
    line = int(problem.split(":")[1])
    assert (accounts_copy / "prod.yaml").read_text().splitlines()[line - 1].strip().startswith("azss")


def test_cli_validate_exit_codes(accounts_copy):
    runner = CliRunner()
    ok = runner.invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert ok.exit_code == 0, ok.output
    assert "OK (5 accounts" in ok.output
    edit(accounts_copy / "prod.yaml", "min: 2, max: 6", "min: 7, max: 6")
    bad = runner.invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert bad.exit_code == 2
    assert "clusters.main.node_groups.system.min" in bad.output
    assert "Traceback" not in bad.output
    as_json = runner.invoke(cli, ["validate", "--config", str(accounts_copy), "--output", "json"])
    assert as_json.exit_code == 2
    assert '"path": "clusters.main.node_groups.system.min"' in as_json.output


def test_subnet_plan_is_stable_when_azs_grow():
    two = {s.key: s.cidr for s in subnet_plan("10.30.0.0/16", 2)}
    three = {s.key: s.cidr for s in subnet_plan("10.30.0.0/16", 3)}
    four = {s.key: s.cidr for s in subnet_plan("10.30.0.0/16", 4)}
    one = {s.key: s.cidr for s in subnet_plan("10.30.0.0/16", 1)}
    assert all(two[k] == v for k, v in one.items())
    assert all(three[k] == v for k, v in two.items())  # adding an AZ keeps every existing subnet
    assert all(four[k] == v for k, v in three.items())
    with pytest.raises(ValueError, match="too small"):
        subnet_plan("10.30.0.0/27", 2)


# ---------------------------------------------------------------- network.interface_endpoints

DEV_ENDPOINTS = ("interface_endpoints: [ec2, ec2messages, ecr.api, ecr.dkr, eks, eks-auth, logs, sqs, ssm, "
                 "ssmmessages, sts]")
NODE_NEEDS = ["ec2", "ecr.api", "ecr.dkr", "sts", "logs", "eks-auth"]


def without_bastion(accounts: Path, file: str = "dev.yaml") -> None:
    edit(accounts / file, "bastion: {instance_type: t3.small}\n", "")


def test_interface_endpoints_default_to_the_full_set_and_dev_has_fewer(example_config):
    from fleetform.config.endpoints import INTERFACE_ENDPOINTS

    assert example_config.account("prod").spec.network.interface_endpoints == list(INTERFACE_ENDPOINTS)
    assert example_config.account("stg").spec.network.interface_endpoints == list(INTERFACE_ENDPOINTS)
    dev = example_config.account("dev").spec.network.interface_endpoints
    assert set(dev) < set(INTERFACE_ENDPOINTS)
    assert {"aps-workspaces", "autoscaling", "elasticloadbalancing", "kms"}.isdisjoint(dev)


def test_unknown_endpoint_service_names_file_path_and_did_you_mean(accounts_copy):
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, "interface_endpoints: [ec2, ecr-api, ssm-messages, elb]")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    dev = str(accounts_copy / "dev.yaml")
    assert (f"{dev}:15: network.interface_endpoints.1: unknown interface endpoint service 'ecr-api'; "
            "did you mean 'ecr.api'?") in result.output
    assert "network.interface_endpoints.2: unknown interface endpoint service 'ssm-messages'; did you mean " \
           "'ssmmessages'?" in result.output
    # nothing close: the known names instead
    assert "network.interface_endpoints.3: unknown interface endpoint service 'elb'; known services: " \
           "aps-workspaces, autoscaling" in result.output


@pytest.mark.parametrize(("value", "expected"), [
    ("[ec2, sts, ec2]", "network.interface_endpoints: listed more than once: ec2"),
    ("ec2", "network.interface_endpoints: Input should be a valid list"),
    ("[ec2, 443]", "network.interface_endpoints.1: Input should be a valid string"),
])
def test_malformed_endpoint_lists(accounts_copy, value, expected):
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, f"interface_endpoints: {value}")
    assert any(expected in p for p in problems_for(accounts_copy)), problems_for(accounts_copy)


def test_empty_endpoint_list_is_allowed_with_nat(accounts_copy):
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, "interface_endpoints: []")
    assert load_config(accounts_copy).account("dev").spec.network.interface_endpoints == []


def test_without_nat_a_cluster_needs_its_node_endpoints(accounts_copy):
    without_bastion(accounts_copy)
    edit(accounts_copy / "dev.yaml", "nat: single", "nat: none")
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, "interface_endpoints: [ec2, ecr.api, sts, ssmmessages]")
    [problem] = problems_for(accounts_copy)
    assert problem.startswith(f"{accounts_copy / 'dev.yaml'}: network.interface_endpoints: with nat: none "
                              "the nodes of cluster main reach AWS only through interface endpoints, and need "
                              "ec2, ecr.api, ecr.dkr, sts, logs, eks-auth, eks, sqs, ssm; missing: ecr.dkr (")
    missing = problem.split("missing: ", 1)[1]
    for service in ("ecr.dkr", "logs", "eks-auth", "eks", "sqs", "ssm"):
        assert f"{service} (" in missing  # each with why
    assert "ec2 (" not in missing and "sts (" not in missing
    assert "Pod Identity" in missing and "interruption queue" in missing
    assert problem.endswith("Add them, or use nat: single or per-az")


def test_without_nat_the_autoscaler_decides_the_rest(accounts_copy):
    """cluster-autoscaler needs autoscaling and eks, not Karpenter's sqs and ssm."""
    without_bastion(accounts_copy)
    edit(accounts_copy / "dev.yaml", "nat: single", "nat: none")
    edit(accounts_copy / "dev.yaml", "  main:\n", "  main:\n    autoscaler: cluster-autoscaler\n")
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, f"interface_endpoints: [{', '.join(NODE_NEEDS)}]")
    [problem] = problems_for(accounts_copy)
    assert "need ec2, ecr.api, ecr.dkr, sts, logs, eks-auth, autoscaling, eks; missing: autoscaling (" in problem
    assert "sqs" not in problem and "ssm" not in problem
    edit(accounts_copy / "dev.yaml", "eks-auth]", "eks-auth, autoscaling, eks]")
    assert load_config(accounts_copy).account("dev").spec.network.nat == "none"


def test_without_nat_the_dev_list_is_enough_for_its_cluster(accounts_copy):
    without_bastion(accounts_copy)
    edit(accounts_copy / "dev.yaml", "nat: single", "nat: none")
    assert load_config(accounts_copy).account("dev").spec.network.nat == "none"


def test_without_nat_and_without_clusters_any_list_goes(accounts_copy):
    edit(accounts_copy / "log-archive.yaml", "budget:",
         "network: {cidr: 10.40.0.0/16, azs: 2, nat: none, interface_endpoints: []}\nbudget:")
    assert load_config(accounts_copy).account("log-archive").spec.network.interface_endpoints == []


def test_with_nat_no_endpoint_is_required(accounts_copy):
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, "interface_endpoints: []")
    edit(accounts_copy / "prod.yaml", "  nat: per-az", "  nat: per-az\n  interface_endpoints: [sts]")
    config = load_config(accounts_copy)
    assert config.account("prod").spec.network.interface_endpoints == ["sts"]


def test_bastion_without_nat_is_one_rule(accounts_copy):
    """The bastion needs NAT for kubectl whatever endpoints exist: one problem at network.nat, which
    names the Session Manager endpoints it would lack without NAT, and never suggests that adding
    them is enough."""
    edit(accounts_copy / "dev.yaml", "nat: single", "nat: none")
    edit(accounts_copy / "dev.yaml", DEV_ENDPOINTS, DEV_ENDPOINTS.replace("ssmmessages, ", ""))
    [problem] = problems_for(accounts_copy)
    assert problem == (
        f"{accounts_copy / 'dev.yaml'}: network.nat: the bastion needs outbound HTTPS through NAT: it downloads "
        "kubectl from dl.k8s.io at boot, which no VPC endpoint serves; use nat: single or per-az (without NAT, "
        "Session Manager would also need the interface endpoints ssm, ssmmessages, ec2messages; missing: "
        "ssmmessages)")
    edit(accounts_copy / "dev.yaml", "[ec2, ec2messages,", "[ec2, ec2messages, ssmmessages,")
    [problem] = problems_for(accounts_copy)
    assert problem.endswith("network.nat: the bastion needs outbound HTTPS through NAT: it downloads kubectl "
                            "from dl.k8s.io at boot, which no VPC endpoint serves; use nat: single or per-az")


DAILY = "daily_recording: [AWS::EC2::Instance, AWS::EC2::NetworkInterface, AWS::EC2::Volume]"


@pytest.mark.parametrize(("value", "path", "message"), [
    ("[AWS::EC2::Instance, EC2::NetworkInterface]", "organization.aws_config.daily_recording.1",
     "'EC2::NetworkInterface' is not an AWS Config resource type of the form AWS::Service::Type"),
    ("[aws::ec2::instance]", "organization.aws_config.daily_recording.0", "case-sensitive"),
    ("[AWS::EC2::Instance, 'AWS::EC2::Volume ']", "organization.aws_config.daily_recording.1",
     "'AWS::EC2::Volume ' is not an AWS Config resource type"),
    ("[AWS::EC2::Instance, AWS::Config::ResourceCompliance]", "organization.aws_config.daily_recording.1",
     "AWS Config records AWS::Config::ResourceCompliance only continuously; remove it from the list"),
    ("[AWS::EC2::Volume, AWS::EC2::Instance, AWS::EC2::Volume]", "organization.aws_config.daily_recording.2",
     "AWS::EC2::Volume is already listed (item 0)"),
    ("AWS::EC2::Instance", "organization.aws_config.daily_recording", "valid list"),
    ("", "organization.aws_config.daily_recording", "valid list"),
])
def test_bad_daily_recording_names_file_and_field_exit_2(accounts_copy, value, path, message):
    edit(accounts_copy / "organization.yaml", DAILY, f"daily_recording: {value}")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy), "--output", "json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    problems = json.loads(result.output)["problems"]
    assert [p["path"] for p in problems] == [path], problems
    (problem,) = problems
    assert problem["file"] == str(accounts_copy / "organization.yaml")
    assert message in problem["message"], problem


def test_bad_daily_recording_points_at_its_line(accounts_copy):
    edit(accounts_copy / "organization.yaml", DAILY,
         "daily_recording:\n      - AWS::EC2::Instance\n      - EC2::Volume")
    (problem,) = problems_for(accounts_copy)
    line = int(problem.split(":")[1])
    assert (accounts_copy / "organization.yaml").read_text().splitlines()[line - 1].strip() == "- EC2::Volume"


def test_any_well_formed_type_may_be_recorded_daily(accounts_copy):
    # no catalogue: a type newer than fleetform (or botocore) is accepted; AWS itself refuses unknown names
    edit(accounts_copy / "organization.yaml", DAILY, "daily_recording: [AWS::EC2::SecurityGroup, AWS::Foo2::BarBaz]")
    assert load_config(accounts_copy).organization.aws_config.daily_recording == [
        "AWS::EC2::SecurityGroup", "AWS::Foo2::BarBaz"]
