"""DNS: the hosted zone and certificates per account, the weighted record per slot whose weight
Terraform sets once, the certificate validation expressions run through real Terraform, and
DNSSEC signing as an opt-in (on in the example's prod, off elsewhere)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from iam_eval import Request, statement_applies

from fleetform.config import load_config
from fleetform.naming import WEIGHTED_RECORD_TTL
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth
from fleetform.terraform.summary import caution_lines, failed_plan, summarize_plan
from fleetform.terraform.workflow import exit_code

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


def test_a_clusters_only_slot_publishes_its_record_once_its_target_exists(stack_json) -> None:
    """dev/main has one slot: its record waits for blue.<hostname> (external-dns) in the zone; prod/main's
    slots (two) always have theirs. Every record is addressed [0], so a second slot moves nothing."""
    dev = stack_json("dev-main-blue")
    target = dev["data"]["aws_route53_records"]["dns_target"]
    assert target["name_regex"] == r"^blue\.api\.dev\.familyalbum\.example\.?$"
    assert target["zone_id"] == records(dev)["dns_record"]["zone_id"]
    assert records(dev)["dns_record"]["count"] == (
        "${length(coalesce(data.aws_route53_records.dns_target.resource_record_sets, [])) > 0 ? 1 : 0}")
    for slot in ("prod-main-blue", "prod-main-green"):
        assert records(stack_json(slot))["dns_record"]["count"] == 1
        assert "aws_route53_records" not in stack_json(slot).get("data", {})


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
@pytest.mark.parametrize(("sets", "instances"), [
    (None, 0),  # what hashicorp/aws 5.100 answers when no record matches (the real-provider lane saw it)
    ([], 0), ([{"name": "blue.api.dev.familyalbum.example."}], 1)])
def test_the_only_slots_record_count_evaluates_in_terraform(stack_json, tmp_path: Path, sets: list,
                                                             instances: int) -> None:
    """The synthesized count, with the record set lookup replaced by a local, applied by real Terraform."""
    record = records(stack_json("dev-main-blue"))["dns_record"]
    fixture = {"locals": {"sets": sets}, "resource": {"terraform_data": {"record": {
        "count": record["count"].replace("data.aws_route53_records.dns_target.resource_record_sets", "local.sets"),
        "input": record["records"][0]}}}}
    (tmp_path / "main.tf.json").write_text(json.dumps(fixture))
    env = {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "PATH": "/usr/bin:/bin:/usr/local/bin",
           "HOME": str(tmp_path)}
    for args in (["init", "-input=false", "-backend=false"], ["apply", "-input=false", "-auto-approve"]):
        proc = subprocess.run([TERRAFORM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    assert sum(len(r["instances"]) for r in state["resources"]) == instances


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


# ---------------------------------------------------------------- DNSSEC (dns.dnssec; prod has it on)

SIGNED = "prod"
UNSIGNED = ("stg", "dev")
DNSSEC_TYPES = ("aws_route53_key_signing_key", "aws_route53_hosted_zone_dnssec", "aws_cloudwatch_metric_alarm")


def dnssec_key(document: dict) -> dict:
    return resources(document, "aws_kms_key")["zone_dnssec_key_key"]


def test_example_signs_prod_only(example_config) -> None:
    assert {a.name: a.spec.dns.dnssec for a in example_config.accounts if a.spec.dns} == {
        "prod": True, "stg": False, "dev": False}


@pytest.mark.parametrize("account", UNSIGNED)
def test_unsigned_zone_keeps_the_skip_pointing_to_the_opt_in(stack_json, account: str) -> None:
    doc = stack_json(f"{account}-dns")
    for rtype in DNSSEC_TYPES:
        assert rtype not in doc["resource"], rtype
    assert list(resources(doc, "aws_kms_key")) == ["zone_query-log-key_key"]  # only the query-log key
    assert "dnssec_ds_record" not in doc["output"]
    [skip] = resources(doc, "aws_route53_zone")["zone_zone"]["//"]["checkov_skip"]
    assert skip.startswith("checkov:skip=CKV2_AWS_38:") and "dnssec: true" in skip and "docs/clusters.md#dnssec" in skip


def test_signed_zone_has_no_skip(stack_json) -> None:
    zone = resources(stack_json(f"{SIGNED}-dns"), "aws_route53_zone")["zone_zone"]
    assert "checkov_skip" not in zone.get("//", {})


def test_dnssec_key_is_asymmetric_in_us_east_1_and_protected(stack_json) -> None:
    doc = stack_json(f"{SIGNED}-dns")
    key = dnssec_key(doc)
    assert key["customer_master_key_spec"] == "ECC_NIST_P256" and key["key_usage"] == "SIGN_VERIFY"
    assert "enable_key_rotation" not in key  # KMS refuses automatic rotation of asymmetric keys
    assert key["provider"] == "aws.us_east_1"
    assert key["lifecycle"] == {"prevent_destroy": True}
    assert key["deletion_window_in_days"] == 30
    alias = resources(doc, "aws_kms_alias")["zone_dnssec_key_alias"]
    assert alias["provider"] == "aws.us_east_1" and alias["name"] == "alias/route53-dnssec-familyalbum-example"
    # the query-log key is unchanged: symmetric and rotated
    query_log_key = resources(doc, "aws_kms_key")["zone_query-log-key_key"]
    assert query_log_key["enable_key_rotation"] is True and "customer_master_key_spec" not in query_log_key


def test_dnssec_key_policy_lets_route53_of_this_account_and_zone_sign(stack_json, example_config) -> None:
    account_id = example_config.account(SIGNED).id
    statements = {s["Sid"]: s for s in json.loads(dnssec_key(stack_json(f"{SIGNED}-dns"))["policy"])["Statement"]}
    assert set(statements) == {"AccountAdministers", "Route53DnssecSigns", "Route53DnssecGrantsForItself"}
    assert statements["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws:iam::{account_id}:root"}
    signs = statements["Route53DnssecSigns"]
    assert signs["Principal"] == {"Service": "dnssec-route53.amazonaws.com"}
    assert sorted(signs["Action"]) == ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"]
    assert signs["Condition"] == {"StringEquals": {"aws:SourceAccount": account_id},
                                  "ArnLike": {"aws:SourceArn": "${aws_route53_zone.zone_zone.arn}"}}
    grants = statements["Route53DnssecGrantsForItself"]
    assert grants["Principal"] == {"Service": "dnssec-route53.amazonaws.com"}
    assert grants["Action"] == "kms:CreateGrant"
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert all(s["Effect"] == "Allow" for s in statements.values())


ZONE_ARN = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"


def route53_may(policy: dict, action: str, context: dict) -> bool:
    """Whether an Allow statement for the DNSSEC service principal grants the request (no statement denies)."""
    return any(s["Effect"] == "Allow" and s["Principal"] == {"Service": "dnssec-route53.amazonaws.com"}
               and statement_applies(s, Request(action, "dnssec-route53.amazonaws.com", "*", context))
               for s in policy["Statement"])


def test_dnssec_key_policy_evaluated(stack_json, example_config) -> None:
    account_id = example_config.account(SIGNED).id
    text = dnssec_key(stack_json(f"{SIGNED}-dns"))["policy"]
    policy = json.loads(text.replace("${aws_route53_zone.zone_zone.arn}", ZONE_ARN))
    ours = {"aws:SourceAccount": account_id, "aws:SourceArn": ZONE_ARN}
    for action in ("kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"):
        assert route53_may(policy, action, ours), action
    assert not route53_may(policy, "kms:Sign", {**ours, "aws:SourceAccount": "999999999999"})  # confused deputy
    assert not route53_may(policy, "kms:Sign", {**ours, "aws:SourceArn": ZONE_ARN[:-1] + "K"})  # another zone
    assert not route53_may(policy, "kms:Sign", {"aws:SourceAccount": account_id})  # no zone in the request
    for action in ("kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy", "kms:Decrypt"):
        assert not route53_may(policy, action, ours), action
    assert route53_may(policy, "kms:CreateGrant", {"kms:GrantIsForAWSResource": "true"})
    assert not route53_may(policy, "kms:CreateGrant", {"kms:GrantIsForAWSResource": "false"})


def test_active_ksk_then_signing(stack_json) -> None:
    doc = stack_json(f"{SIGNED}-dns")
    ksk = resources(doc, "aws_route53_key_signing_key")["zone_dnssec_ksk"]
    assert ksk["status"] == "ACTIVE"
    assert ksk["hosted_zone_id"] == "${aws_route53_zone.zone_zone.zone_id}"
    assert ksk["key_management_service_arn"] == "${aws_kms_key.zone_dnssec_key_key.arn}"
    assert ksk["lifecycle"] == {"prevent_destroy": True}
    assert "provider" not in ksk  # Route 53 is global: the stack's own provider
    signing = resources(doc, "aws_route53_hosted_zone_dnssec")["zone_dnssec_signing"]
    assert signing["signing_status"] == "SIGNING"
    assert signing["depends_on"] == ["aws_route53_key_signing_key.zone_dnssec_ksk"]
    assert signing["hosted_zone_id"] == "${aws_route53_key_signing_key.zone_dnssec_ksk.hosted_zone_id}"


def test_ds_record_output(stack_json) -> None:
    output = stack_json(f"{SIGNED}-dns")["output"]["dnssec_ds_record"]
    assert output["value"] == "${aws_route53_key_signing_key.zone_dnssec_ksk.ds_record}"
    assert "parent" in output["description"] and "docs/clusters.md#dnssec" in output["description"]


def test_dnssec_alarms_in_us_east_1(stack_json) -> None:
    alarms = resources(stack_json(f"{SIGNED}-dns"), "aws_cloudwatch_metric_alarm")
    assert {a["metric_name"] for a in alarms.values()} == {"DNSSECInternalFailure",
                                                           "DNSSECKeySigningKeysNeedingAction"}
    for alarm in alarms.values():
        assert alarm["namespace"] == "AWS/Route53" and alarm["provider"] == "aws.us_east_1"
        assert alarm["dimensions"] == {"HostedZoneId": "${aws_route53_zone.zone_zone.zone_id}"}
        assert alarm["comparison_operator"] == "GreaterThanThreshold" and alarm["threshold"] == 0
        assert alarm["alarm_name"].startswith("route53-dnssec-familyalbum-example-")
        assert "alarm_actions" not in alarm  # no per-account alarm topic exists (docs/clusters.md#dnssec)


def test_turning_dnssec_off_removes_it_and_restores_the_skip(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", "dnssec: true", "dnssec: false")
    synth(load_config(accounts_copy), tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "stacks" / "prod-dns" / "cdk.tf.json").read_text())
    for rtype in DNSSEC_TYPES:
        assert rtype not in doc["resource"], rtype
    assert "zone_dnssec_key_key" not in resources(doc, "aws_kms_key")
    assert resources(doc, "aws_route53_zone")["zone_zone"]["//"]["checkov_skip"][0].startswith(
        "checkov:skip=CKV2_AWS_38:")


@pytest.mark.parametrize("value", ['"yes"', "1", '"true"', "[true]", "null"])
def test_dnssec_must_be_a_boolean(accounts_copy: Path, value: str) -> None:
    edit(accounts_copy / "prod.yaml", "dnssec: true", f"dnssec: {value}")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2, result.output
    assert "prod.yaml:12: dns.dnssec: " in result.output and "write true or false" in result.output
    assert "Traceback" not in result.output


def test_dnssec_needs_a_zone(accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", "dns: {zone: familyalbum.example, dnssec: true}", "dns: {dnssec: true}")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy), "--output", "json"])
    assert result.exit_code == 2
    [problem] = [p for p in json.loads(result.output)["problems"] if p["path"].startswith("dns")]
    assert problem["file"].endswith("prod.yaml") and problem["path"] == "dns.zone"


@pytest.mark.parametrize("rtype", ["aws_route53_hosted_zone_dnssec", "aws_route53_key_signing_key"])
def test_disabling_dnssec_is_a_protected_destroy_with_a_warning(rtype: str) -> None:
    """What `fleetform plan` makes of `terraform show -json` when dnssec goes from true to false."""
    shown = {"resource_changes": [{"address": f"{rtype}.zone_dnssec_x", "mode": "managed", "type": rtype,
                                   "change": {"actions": ["delete"]},
                                   "action_reason": "delete_because_no_resource_config"}]}
    plan = summarize_plan("prod-dns", shown)
    [change] = plan.protected_destroys
    assert "DNSSEC SIGNING STOPS" in change.detail and "remove the DS record first" in change.detail
    caution = "\n".join(caution_lines([plan], allow_destroy=False))
    assert "FAILS until the pull request carries the allow-destroy label" in caution
    assert "DNSSEC SIGNING STOPS" in caution
    assert exit_code([plan], allow_destroy=False) == 1
    assert exit_code([plan], allow_destroy=True) == 2


def test_prevent_destroy_refusal_of_the_ksk_carries_the_warning() -> None:
    error = ("Error: Instance cannot be destroyed\n\nResource aws_route53_key_signing_key.zone_dnssec_ksk has "
             "lifecycle.prevent_destroy set, but the plan calls for this resource to be destroyed.")
    [change] = failed_plan("prod-dns", error).protected_destroys
    assert change.type == "aws_route53_key_signing_key"
    assert change.detail.startswith("lifecycle.prevent_destroy; DNSSEC SIGNING STOPS")
