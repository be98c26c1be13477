"""DNS: the hosted zone and certificates per account, the weighted record per slot whose weight
Terraform sets once, and the certificate validation expressions run through real Terraform."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetform.config import load_config
from fleetform.naming import WEIGHTED_RECORD_TTL
from fleetform.stacks.app import synth

ZONES = {"prod": "familyalbum.example", "stg": "stg.familyalbum.example", "dev": "dev.familyalbum.example"}
TERRAFORM = shutil.which("terraform")


def resources(document: dict, rtype: str) -> dict:
    return document["resource"].get(rtype, {})


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def records(document: dict) -> dict:
    return resources(document, "aws_route53_record")


@pytest.mark.parametrize("account", sorted(ZONES))
def test_zone_with_query_logging_in_us_east_1(stack_json, account: str) -> None:
    doc = stack_json(f"{account}-dns")
    [zone] = resources(doc, "aws_route53_zone").values()
    assert zone["name"] == ZONES[account]
    providers = {p.get("alias"): p for p in doc["provider"]["aws"]}
    assert providers["us_east_1"]["region"] == "us-east-1"
    assert providers["us_east_1"]["assume_role"] == providers[None]["assume_role"]
    group = resources(doc, "aws_cloudwatch_log_group")["zone_query-logs_group"]
    assert group["provider"] == "aws.us_east_1" and group["name"] == f"/aws/route53/{ZONES[account]}"
    assert group["retention_in_days"] >= 365 and group["kms_key_id"].startswith("${aws_kms_key.")
    assert resources(doc, "aws_kms_key")["zone_query-log-key_key"]["provider"] == "aws.us_east_1"
    log_policy = resources(doc, "aws_cloudwatch_log_resource_policy")["zone_query-log-policy"]
    assert json.loads(log_policy["policy_document"])["Statement"][0]["Principal"] == {
        "Service": "route53.amazonaws.com"}
    query_log = resources(doc, "aws_route53_query_log")["zone_query-log"]
    assert query_log["depends_on"] == ["aws_cloudwatch_log_resource_policy.zone_query-log-policy"]
    assert {"zone_id", "name_servers"} <= set(doc["output"])


def test_certificate_per_cluster_hostname_covers_the_slot_names(stack_json) -> None:
    doc = stack_json("prod-dns")
    certificates = resources(doc, "aws_acm_certificate")
    assert list(certificates) == ["certificate-main_certificate"]  # the ops cluster has no hostname
    certificate = certificates["certificate-main_certificate"]
    assert certificate["domain_name"] == "api.familyalbum.example"
    assert certificate["subject_alternative_names"] == ["blue.api.familyalbum.example",
                                                        "green.api.familyalbum.example"]
    assert certificate["validation_method"] == "DNS"
    assert certificate["lifecycle"] == {"create_before_destroy": True}
    validation = records(doc)["certificate-main_validation"]
    assert "o.domain_name =>" in validation["for_each"]  # keys known at plan time
    assert validation["zone_id"] == "${aws_route53_zone.zone_zone.zone_id}"
    assert resources(doc, "aws_acm_certificate_validation")["certificate-main_validated"]["certificate_arn"] == (
        "${aws_acm_certificate.certificate-main_certificate.arn}")


@pytest.mark.parametrize(("slot", "weight"), [("prod-main-blue", 100), ("prod-main-green", 0),
                                              ("stg-main-blue", 100), ("dev-main-blue", 100)])
def test_weighted_record_per_slot(stack_json, slot: str, weight: int) -> None:
    account, cluster, color = slot.split("-")
    hostname = {"prod": "api.familyalbum.example", "stg": "api.stg.familyalbum.example",
                "dev": "api.dev.familyalbum.example"}[account]
    record = records(stack_json(slot))["dns_record"]
    assert record["name"] == hostname and record["type"] == "CNAME"
    assert record["set_identifier"] == color
    assert record["records"] == [f"{color}.{hostname}"]
    assert record["ttl"] == WEIGHTED_RECORD_TTL
    assert record["weighted_routing_policy"] == [{"weight": weight}]
    assert record["lifecycle"] == {"ignore_changes": ["weighted_routing_policy"]}  # the runbook owns weights
    assert record["zone_id"].startswith(f"${{data.terraform_remote_state.cross-stack-reference-input-{account}-dns.")


def test_no_record_for_a_cluster_without_hostname(stack_json) -> None:
    assert "aws_route53_record" not in stack_json("prod-ops-blue")["resource"]


def test_configured_weight_and_a_lone_green_slot(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", 'green: {version: "1.36"}', 'green: {version: "1.36", weight: 10}')
    edit(accounts_copy / "stg.yaml", 'blue: {version: "1.34"}', 'green: {version: "1.34"}')
    synth(load_config(accounts_copy), tmp_path / "out")

    def record(stack: str) -> dict:
        return records(json.loads((tmp_path / "out" / "stacks" / stack / "cdk.tf.json").read_text()))["dns_record"]

    assert record("prod-main-green")["weighted_routing_policy"] == [{"weight": 10}]
    assert record("stg-main-green")["weighted_routing_policy"] == [{"weight": 100}]  # the only slot serves


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
def test_validation_expressions_evaluate_in_terraform(stack_json, tmp_path: Path) -> None:
    """The synthesized for_each and fqdn expressions, with the certificate and records replaced by
    provider-free stand-ins, planned and applied by real Terraform."""
    doc = stack_json("prod-dns")
    record = records(doc)["certificate-main_validation"]
    validation = resources(doc, "aws_acm_certificate_validation")["certificate-main_validated"]
    options = "aws_acm_certificate.certificate-main_certificate.domain_validation_options"
    assert options in record["for_each"]
    domains = ["api.familyalbum.example", "blue.api.familyalbum.example", "green.api.familyalbum.example"]
    fixture = {
        "locals": {"dvo": [{"domain_name": d, "resource_record_name": f"_x.{d}.", "resource_record_type": "CNAME",
                            "resource_record_value": f"_y.{d}.acm-validations.aws."} for d in domains]},
        "resource": {"terraform_data": {"validation": {
            "for_each": record["for_each"].replace(options, "local.dvo"),
            "input": {"name": record["name"], "type": record["type"], "record": record["records"][0]},
        }}},
        "output": {"fqdns": {"value": validation["validation_record_fqdns"].replace(
            "aws_route53_record.certificate-main_validation", "terraform_data.validation").replace(
            "r.fqdn", "r.output.name")}},
    }
    (tmp_path / "main.tf.json").write_text(json.dumps(fixture))
    env = {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "PATH": "/usr/bin:/bin:/usr/local/bin",
           "HOME": str(tmp_path)}

    def run(*args: str) -> str:
        proc = subprocess.run([TERRAFORM, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("init", "-input=false", "-backend=false")
    run("apply", "-input=false", "-auto-approve")
    fqdns = json.loads(run("output", "-json", "fqdns"))
    assert sorted(fqdns) == sorted(f"_x.{d}." for d in domains)
