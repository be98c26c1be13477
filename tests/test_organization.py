"""The organization stack: OUs, accounts, SCPs and their attachments, the audit trail, GuardDuty,
Access Analyzer; the first-apply variant; and the organization-level validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdktn import App, TerraformStack
from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.constructs.scp import ScpProps, ServiceControlPolicy
from fleetform.constructs.scp_library import BUILTIN, LIBRARY, MAX_SCP_CHARS, GuardrailContext
from fleetform.naming import FIRST_APPLY_ENV
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth

MANAGEMENT, LOG_ARCHIVE = "111111111111", "222222222222"
OU = "${aws_organizations_organizational_unit.org_ou-%s.id}"
ROOT = "${aws_organizations_organization.org_organization.roots[0].id}"


@pytest.fixture(scope="module")
def org(stack_json) -> dict:
    return stack_json("organization")


def resources(body: dict, tf_type: str) -> dict[str, dict]:
    return body["resource"].get(tf_type, {})


def policy(body: dict, name: str) -> dict:
    return json.loads(resources(body, "aws_organizations_policy")[f"scp-{name}_policy"]["content"])


def attached_targets(body: dict, name: str) -> set[str]:
    return {a["target_id"] for key, a in resources(body, "aws_organizations_policy_attachment").items()
            if key.startswith(f"scp-{name}_attach-")}


def test_organization_has_all_features_and_trusted_services(org):
    (organization,) = resources(org, "aws_organizations_organization").values()
    assert organization["feature_set"] == "ALL"
    assert organization["enabled_policy_types"] == ["SERVICE_CONTROL_POLICY"]
    assert organization["lifecycle"]["prevent_destroy"] is True
    assert {"cloudtrail.amazonaws.com", "guardduty.amazonaws.com", "config.amazonaws.com", "sso.amazonaws.com",
            "account.amazonaws.com", "ipam.amazonaws.com", "access-analyzer.amazonaws.com"} <= \
        set(organization["aws_service_access_principals"])
    assert "import" not in org  # adoption happens on the first apply only (checkov cannot parse import blocks)


def test_ou_tree_with_nested_paths_keyed_by_path(org):
    ous = resources(org, "aws_organizations_organizational_unit")
    assert set(ous) == {f"org_ou-{k}" for k in ("Security", "Infrastructure", "Workloads", "Workloads--Prod",
                                                 "Workloads--NonProd", "Sandbox")}
    assert ous["org_ou-Workloads--Prod"]["name"] == "Prod"
    assert ous["org_ou-Workloads--Prod"]["parent_id"] == OU % "Workloads"
    assert ous["org_ou-Workloads"]["parent_id"] == ROOT
    assert all(ou["lifecycle"]["prevent_destroy"] for ou in ous.values())


def test_every_account_in_its_ou_and_protected(org, example_config):
    accounts = resources(org, "aws_organizations_account")
    members = [a for a in example_config.accounts if a.id != MANAGEMENT]
    assert set(accounts) == {f"org_account-{a.name}" for a in members}  # the management account is the org
    for account in members:
        body = accounts[f"org_account-{account.name}"]
        assert body["parent_id"] == OU % account.spec.account.ou.replace("/", "--")
        assert body["email"] == account.spec.account.email
        assert body["close_on_deletion"] is False
        assert body["lifecycle"]["prevent_destroy"] is True
        assert set(body["lifecycle"]["ignore_changes"]) == {"role_name", "iam_user_access_to_billing"}


def test_removing_an_ou_renames_nothing(accounts_copy, tmp_path, org):
    text = (accounts_copy / "organization.yaml").read_text()
    (accounts_copy / "organization.yaml").write_text(
        text.replace("Workloads/NonProd, Sandbox]", "Workloads/NonProd]").replace(
            "    - {name: deny-large-instances, file: scps/deny-large-instances.json, targets: [Sandbox]}\n", ""))
    synth(load_config(accounts_copy), tmp_path / "out")
    after = json.loads((tmp_path / "out/stacks/organization/cdk.tf.json").read_text())
    before_ous = resources(org, "aws_organizations_organizational_unit")
    after_ous = resources(after, "aws_organizations_organizational_unit")
    assert set(before_ous) - set(after_ous) == {"org_ou-Sandbox"}
    assert all(after_ous[k] == before_ous[k] for k in after_ous)
    assert resources(after, "aws_organizations_account") == resources(org, "aws_organizations_account")


def test_builtin_scps_attached_where_they_belong(org):
    top_level = {OU % name for name in ("Security", "Infrastructure", "Workloads", "Sandbox")}
    for name in ("fleetform-deny-leave-organization", "fleetform-deny-root-user", "fleetform-region-allow-list"):
        assert attached_targets(org, name) == {ROOT}, name
    for name in ("fleetform-protect-security-services", "fleetform-protect-fleetform"):
        assert attached_targets(org, name) == top_level, name
    assert attached_targets(org, "require-imdsv2") == {OU % "Workloads"}
    assert attached_targets(org, "deny-large-instances") == {OU % "Sandbox"}
    assert policy(org, "deny-large-instances") == json.loads(
        (Path(__file__).parent.parent / "accounts/scps/deny-large-instances.json").read_text())
    for body in resources(org, "aws_organizations_policy").values():
        assert body["type"] == "SERVICE_CONTROL_POLICY" and len(body["content"]) <= MAX_SCP_CHARS


def test_scp_documents_say_what_they_protect(org):
    leave = policy(org, "fleetform-deny-leave-organization")["Statement"]
    assert leave == [{"Sid": "DenyLeaveOrganization", "Effect": "Deny", "Action": "organizations:LeaveOrganization",
                      "Resource": "*"}]
    (regions,) = policy(org, "fleetform-region-allow-list")["Statement"]
    assert regions["Condition"] == {"StringNotEquals": {"aws:RequestedRegion": ["ap-northeast-1", "us-east-1"]}}
    assert {"iam:*", "sts:*", "organizations:*", "route53:*", "cloudfront:*", "support:*"} <= set(regions["NotAction"])
    (root,) = policy(org, "fleetform-deny-root-user")["Statement"]
    assert root["Action"] == "*" and root["Condition"] == {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}
    services = {s["Sid"]: s for s in policy(org, "fleetform-protect-security-services")["Statement"]}
    assert "cloudtrail:StopLogging" in services["ProtectCloudTrail"]["Action"]
    assert "guardduty:DeleteDetector" in services["ProtectGuardDuty"]["Action"]
    assert "config:StopConfigurationRecorder" in services["ProtectConfig"]["Action"]
    protect = {s["Sid"]: s for s in policy(org, "fleetform-protect-fleetform")["Statement"]}
    state = protect["ProtectStateBucket"]
    assert state["Resource"] == ["arn:aws:s3:::familyalbum-tfstate", "arn:aws:s3:::familyalbum-tfstate/*"]
    assert state["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [
        f"arn:aws:iam::{MANAGEMENT}:role/fleetform-pipeline-plan",
        f"arn:aws:iam::{MANAGEMENT}:role/fleetform-pipeline-apply"]}}
    roles = protect["ProtectFleetformRoles"]
    assert roles["Resource"] == ["arn:aws:iam::*:role/fleetform-*"]
    assert "iam:UpdateAssumeRolePolicy" in roles["Action"] and "iam:DeleteRole" in roles["Action"]
    assert set(roles["Condition"]["ArnNotLike"]["aws:PrincipalArn"]) == {
        "arn:aws:iam::*:role/fleetform-apply", "arn:aws:iam::*:role/OrganizationAccountAccessRole",
        f"arn:aws:iam::{MANAGEMENT}:role/fleetform-pipeline-apply"}


def test_break_glass_is_exempted_by_guardrails():
    context = GuardrailContext(("ap-northeast-1",), "bucket", "999999999999", "arn:aws:iam::888888888888:role/bg")
    for guardrail in [*BUILTIN.values(), *LIBRARY.values()]:
        text = json.dumps(guardrail.document(context))
        if "ArnNotLike" in text:
            assert "arn:aws:iam::888888888888:role/bg" in text, guardrail.name


def test_oversized_scp_is_refused():
    stack = TerraformStack(App(), "s")
    big = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": [f"ec2:Action{i:04d}" for i in range(400)], "Resource": "*"}]}
    with pytest.raises(ValueError, match="AWS allows 5120"):
        ServiceControlPolicy(stack, "big", ScpProps(name="big", description="too big", document=big))


def test_organization_trail(org):
    (trail,) = resources(org, "aws_cloudtrail").values()
    assert trail["is_organization_trail"] is True
    assert trail["is_multi_region_trail"] is True
    assert trail["enable_log_file_validation"] is True
    assert trail["include_global_service_events"] is True
    assert trail["kms_key_id"] == "${aws_kms_key.audit_log-archive_trail-key_key.arn}"
    assert trail["s3_bucket_name"] == f"familyalbum-cloudtrail-{LOG_ARCHIVE}"
    assert "provider" not in trail  # the management account creates organization trails
    assert trail["event_selector"][0]["data_resource"][0]["values"] == ["arn:aws:s3:::familyalbum-tfstate/"]
    assert "aws_s3_bucket_policy.audit_log-archive_trail-bucket_policy" in trail["depends_on"]


def test_trail_bucket_in_log_archive_for_the_trail_only(org):
    providers = {p.get("alias"): p for p in org["provider"]["aws"]}
    assert providers["log_archive"]["allowed_account_ids"] == [LOG_ARCHIVE]
    assert providers["log_archive"]["assume_role"][0]["role_arn"] == \
        f"arn:aws:iam::{LOG_ARCHIVE}:role/${{var.fleetform_role}}"
    prefix = "audit_log-archive_"
    for tf_type, instances in org["resource"].items():
        for name, body in instances.items():
            if name.startswith(prefix):
                assert body.get("provider") == "aws.log_archive", (tf_type, name)
    bucket_policy = json.loads(resources(org, "aws_s3_bucket_policy")[f"{prefix}trail-bucket_policy"]["policy"])
    statements = {s["Sid"]: s for s in bucket_policy["Statement"]}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    trail_arn = f"arn:aws:cloudtrail:ap-northeast-1:{MANAGEMENT}:trail/familyalbum-organization"
    for sid in ("CloudTrailChecksAcl", "CloudTrailWritesLogs"):
        assert statements[sid]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert statements[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    allows = [s for s in bucket_policy["Statement"] if s["Effect"] == "Allow"]
    assert {s["Sid"] for s in allows} == {"CloudTrailChecksAcl", "CloudTrailWritesLogs"}
    assert resources(org, "aws_s3_bucket_versioning")[f"{prefix}trail-bucket_versioning"][
        "versioning_configuration"] == [{"status": "Enabled"}]
    block = resources(org, "aws_s3_bucket_public_access_block")[f"{prefix}trail-bucket_public-access-block"]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                          "restrict_public_buckets"))
    rules = resources(org, "aws_s3_bucket_lifecycle_configuration")[f"{prefix}trail-bucket_lifecycle"]["rule"]
    assert any(r.get("transition", [{}])[0].get("storage_class") == "STANDARD_IA" for r in rules)
    logging = resources(org, "aws_s3_bucket_logging")[f"{prefix}trail-bucket_logging"]
    assert logging["target_bucket"] == f"${{aws_s3_bucket.{prefix}access-logs.id}}"
    key = json.loads(resources(org, "aws_kms_key")[f"{prefix}trail-key_key"]["policy"])
    encrypt = next(s for s in key["Statement"] if s["Sid"] == "CloudTrailEncryptsLogs")
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceArn": trail_arn}


def test_guardduty_delegated_to_log_archive_with_auto_enable(org):
    for region in ("ap-northeast-1", "us-east-1"):
        admin = resources(org, "aws_guardduty_organization_admin_account")[f"audit_guardduty-admin-{region}"]
        assert admin["admin_account_id"] == LOG_ARCHIVE and admin["region"] == region
        config = resources(org, "aws_guardduty_organization_configuration")[f"audit_guardduty-organization-{region}"]
        assert config["auto_enable_organization_members"] == "ALL"
        assert config["provider"] == "aws.log_archive"
        assert config["detector_id"] == f"${{aws_guardduty_detector.audit_log-archive_guardduty-{region}.id}}"
        features = {f["name"] for f in resources(org, "aws_guardduty_organization_configuration_feature").values()
                    if f["region"] == region and f["auto_enable"] == "ALL"}
        assert {"S3_DATA_EVENTS", "EKS_AUDIT_LOGS", "RUNTIME_MONITORING"} <= features


def test_access_analyzer_at_organization_level(org):
    analyzers = resources(org, "aws_accessanalyzer_analyzer")
    assert {a["region"] for a in analyzers.values()} == {"ap-northeast-1", "us-east-1"}
    assert all(a["type"] == "ORGANIZATION" for a in analyzers.values())


def test_first_apply_adopts_and_uses_operator_credentials(example_config, tmp_path, monkeypatch):
    monkeypatch.setenv(FIRST_APPLY_ENV, "1")
    synth(example_config, tmp_path / "out")
    body = json.loads((tmp_path / "out/stacks/organization/cdk.tf.json").read_text())
    imports = {i["to"]: i["id"] for i in body["import"]}
    assert imports["aws_organizations_organization.org_organization"] == "o-fam1lyalbum0"
    assert imports["aws_organizations_account.org_account-prod"] == "333333333333"
    providers = {p.get("alias"): p for p in body["provider"]["aws"]}
    assert "assume_role" not in providers[None]  # the management account: the operator's own credentials
    assert providers["log_archive"]["assume_role"][0]["role_arn"] == \
        f"arn:aws:iam::{LOG_ARCHIVE}:role/OrganizationAccountAccessRole"


def test_organization_and_baseline_stacks_pass_checkov(synth_out, checkov_scan):
    names = ["organization"] + [p.name for p in (synth_out / "stacks").iterdir() if p.name.endswith("-baseline")]
    result = checkov_scan.only(names)
    assert result.parsing_errors == []
    assert result.passed > 50
    assert result.failed == [], "\n".join(map(str, result.failed))


# ------------------------------------------------------------------ validation: exit 2, file and field


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


SCPS = "    - {name: require-imdsv2, library: require-imdsv2, targets: [Workloads]}\n"


@pytest.mark.parametrize(("file", "old", "new", "path", "message"), [
    ("organization.yaml", "library: require-imdsv2", "library: require-imdsv3", "organization.scps.0.library",
     "unknown SCP 'require-imdsv3'; the library has: deny-iam-users, protect-account-baseline, require-imdsv2"),
    ("organization.yaml", "targets: [Workloads]", "targets: [Workload]", "organization.scps.0.targets.0",
     "unknown OU 'Workload'"),
    ("organization.yaml", "name: require-imdsv2,", "name: fleetform-deny-root-user,", "organization.scps.0.name",
     "already exists (built in)"),
    ("organization.yaml", "name: require-imdsv2,", "name: deny-large-instances,", "organization.scps.1.name",
     "already exists"),
    ("organization.yaml", "library: require-imdsv2,", "library: require-imdsv2, file: x.json,",
     "organization.scps.0", "exactly one of 'library' or 'file'"),
    ("organization.yaml", "log_archive_account: log-archive", "log_archive_account: management",
     "organization.log_archive_account", "must be a member account"),
    ("organization.yaml", "log_archive_account: log-archive", "log_archive_account: archive",
     "organization.log_archive_account", "no account named 'archive'"),
    ("organization.yaml", "id: o-fam1lyalbum0", "id: org-1", "organization.id", "does not match the expected form"),
    ("organization.yaml", "  log_archive_account", "  break_glass_principal: arn:aws:iam::1:role/x\n"
     "  log_archive_account", "organization.break_glass_principal", "is not an IAM role"),
    ("organization.yaml", "allowed_regions: [ap-northeast-1, us-east-1]", "allowed_regions: [us-east-1]",
     "organization.home_region", "'ap-northeast-1' is not in allowed_regions"),
    ("stg.yaml", '"444444444444"', '"333333333333"', "account.id", "'333333333333' is already used by"),
    ("stg.yaml", "aws+stg@familyalbum.example", "AWS+prod@familyalbum.example", "account.email", "already used"),
    ("stg.yaml", "ou: Workloads/NonProd", "ou: Staging", "account.ou", "unknown OU 'Staging'"),
    ("log-archive.yaml", "  ou: Security\n", "", "account.ou", "required for every account but the management"),
    ("organization.yaml", "existing_service_linked_role: []", "existing_service_linked_role: [prod, qa]",
     "organization.aws_config.existing_service_linked_role.1", "no account named 'qa'"),
    ("organization.yaml", "    enabled: true", "    enable: true", "organization.aws_config.enable",
     "did you mean 'enabled'"),
    ("organization.yaml", "snapshot_frequency: TwentyFour_Hours", "snapshot_frequency: Daily",
     "organization.aws_config.snapshot_frequency", "'TwentyFour_Hours'"),
])
def test_organization_validation_errors_exit_2(accounts_copy, file, old, new, path, message):
    edit(accounts_copy / file, old, new)
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if f": {path}: " in line]
    assert lines, result.output
    assert any(str(accounts_copy / file) in line and message in line for line in lines), result.output


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"Statement": []}', 'needs "Version": "2012-10-17"'),
    ('{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*"}]}', 'needs "Effect"'),
    ('{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Resource": "*"}]}', 'needs "Action"'),
    (json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": [f"ec2:Action{i:04d}" for i in range(400)], "Resource": "*"}]}),
     "AWS allows 5120 per SCP"),
])
def test_scp_file_that_is_not_a_policy_exits_2(accounts_copy, content, message):
    (accounts_copy / "scps" / "deny-large-instances.json").write_text(content)
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy), "--output", "json"])
    assert result.exit_code == 2, result.output
    problems = json.loads(result.output)["problems"]
    assert any(p["path"] == "organization.scps.1.file" and p["file"].endswith("organization.yaml")
               and message in p["message"] for p in problems), problems


def test_missing_scp_file_exits_2(accounts_copy):
    (accounts_copy / "scps" / "deny-large-instances.json").unlink()
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2 and "organization.scps.1.file" in result.output and "does not exist" in result.output


def test_too_many_scps_on_one_target_exits_2(accounts_copy):
    edit(accounts_copy / "organization.yaml", SCPS, SCPS + "".join(
        f"    - {{name: extra-{i}, library: deny-iam-users, targets: [Workloads/Prod, Workloads]}}\n"
        for i in range(2)))
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2, result.output
    assert "organization.scps.2.targets.1: Workloads would have 6 SCPs attached, AWS allows 5" in result.output
    # FullAWSAccess, fleetform-protect-bastion-tag (prod has a bastion) and the two: within the quota
    assert "Workloads/Prod would have" not in result.output


# ------------------------------------------------------------------ AWS Config: bucket, key, aggregator

CONFIG = "audit_log-archive_config_"
ALL_ACCOUNTS = ["111111111111", "222222222222", "333333333333", "444444444444", "555555555555"]


def test_config_bucket_in_log_archive_for_the_organization_only(org):
    bucket = resources(org, "aws_s3_bucket")[f"{CONFIG}bucket_bucket"]
    assert bucket["bucket"] == f"familyalbum-config-{LOG_ARCHIVE}"  # fleetform.naming.config_bucket
    assert bucket["provider"] == "aws.log_archive"
    assert bucket["lifecycle"]["prevent_destroy"] is True
    bucket_policy = json.loads(resources(org, "aws_s3_bucket_policy")[f"{CONFIG}bucket_policy"]["policy"])
    statements = {s["Sid"]: s for s in bucket_policy["Statement"]}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allows = [s for s in bucket_policy["Statement"] if s["Effect"] == "Allow"]
    assert {s["Sid"] for s in allows} == {"ConfigChecksBucketAcl", "ConfigChecksBucketExists", "ConfigDelivers"}
    for statement in allows:  # Config's service principal, and only on behalf of the organization's accounts
        assert statement["Principal"] == {"Service": "config.amazonaws.com"}
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ALL_ACCOUNTS
    arn = f"arn:aws:s3:::familyalbum-config-{LOG_ARCHIVE}"
    deliver = statements["ConfigDelivers"]
    assert deliver["Action"] == "s3:PutObject"
    assert deliver["Resource"] == [f"{arn}/AWSLogs/{a}/Config/*" for a in ALL_ACCOUNTS]
    assert deliver["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    assert statements["ConfigChecksBucketAcl"]["Resource"] == arn
    encryption = resources(org, "aws_s3_bucket_server_side_encryption_configuration")[f"{CONFIG}bucket_encryption"]
    default = encryption["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": f"${{aws_kms_key.{CONFIG}key_key.arn}}"}
    assert resources(org, "aws_s3_bucket_versioning")[f"{CONFIG}bucket_versioning"][
        "versioning_configuration"] == [{"status": "Enabled"}]
    rules = resources(org, "aws_s3_bucket_lifecycle_configuration")[f"{CONFIG}bucket_lifecycle"]["rule"]
    assert any(r.get("transition", [{}])[0].get("storage_class") == "STANDARD_IA" for r in rules)
    assert not any("expiration" in r for r in rules)  # current versions are kept, as the trail's
    logging = resources(org, "aws_s3_bucket_logging")[f"{CONFIG}bucket_logging"]
    assert logging["target_bucket"] == "${aws_s3_bucket.audit_log-archive_access-logs.id}"
    key = resources(org, "aws_kms_key")[f"{CONFIG}key_key"]
    assert key["enable_key_rotation"] is True and key["provider"] == "aws.log_archive"
    encrypt = next(s for s in json.loads(key["policy"])["Statement"] if s["Sid"] == "ConfigEncryptsDeliveries")
    assert encrypt["Principal"] == {"Service": "config.amazonaws.com"}
    assert encrypt["Condition"] == {"StringEquals": {"aws:SourceAccount": ALL_ACCOUNTS}}


def test_baselines_deliver_to_the_bucket_and_key_this_stack_makes(org, stack_json, example_config):
    """The baselines name the bucket and key without a cross-stack reference: both sides must agree."""
    bucket = resources(org, "aws_s3_bucket")[f"{CONFIG}bucket_bucket"]["bucket"]
    alias = resources(org, "aws_kms_alias")[f"{CONFIG}key_alias"]["name"]
    key_arn = f"arn:aws:kms:ap-northeast-1:{LOG_ARCHIVE}:{alias}"  # the log-archive provider's region
    assert next(p for p in org["provider"]["aws"] if p.get("alias") == "log_archive")["region"] == "ap-northeast-1"
    for account in example_config.accounts:
        baseline = stack_json(f"{account.name}-baseline")
        for channel in resources(baseline, "aws_config_delivery_channel").values():
            assert (channel["s3_bucket_name"], channel["s3_kms_key_arn"]) == (bucket, key_arn)
        assert "data" not in baseline or "terraform_remote_state" not in baseline["data"]


def test_config_aggregator_in_log_archive_as_delegated_administrator(org):
    (organization,) = resources(org, "aws_organizations_organization").values()
    assert {"config.amazonaws.com", "config-multiaccountsetup.amazonaws.com"} <= \
        set(organization["aws_service_access_principals"])
    admins = resources(org, "aws_organizations_delegated_administrator")
    config_admins = {a["service_principal"]: (key, a) for key, a in admins.items() if key.startswith("audit_config")}
    assert set(config_admins) == {"config.amazonaws.com", "config-multiaccountsetup.amazonaws.com"}
    for _, admin in config_admins.values():
        assert admin["account_id"] == LOG_ARCHIVE
        assert "provider" not in admin  # the management account delegates
        assert admin["depends_on"] == ["aws_organizations_organization.org_organization"]
    (aggregator,) = resources(org, "aws_config_configuration_aggregator").values()
    assert aggregator["provider"] == "aws.log_archive" and aggregator["region"] == "ap-northeast-1"
    (source,) = aggregator["organization_aggregation_source"]
    assert source == {"regions": ["ap-northeast-1", "us-east-1"],
                      "role_arn": f"${{aws_iam_role.{CONFIG}aggregator-role.arn}}"}
    assert {f"aws_organizations_delegated_administrator.{key}" for key, _ in config_admins.values()} <= \
        set(aggregator["depends_on"])
    role = resources(org, "aws_iam_role")[f"{CONFIG}aggregator-role"]
    assert role["name"] == "fleetform-config-aggregator"  # fleetform-*: the protect-fleetform SCP covers it
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "config.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": LOG_ARCHIVE}}
    attachment = resources(org, "aws_iam_role_policy_attachment")[f"{CONFIG}aggregator-policy"]
    assert attachment["policy_arn"] == "arn:aws:iam::aws:policy/service-role/AWSConfigRoleForOrganizations"


def test_a_new_account_may_deliver_to_the_config_bucket(accounts_copy, tmp_path):
    (accounts_copy / "qa.yaml").write_text(
        'account: {name: qa, id: "666666666666", email: aws+qa@familyalbum.example, ou: Workloads/NonProd}\n')
    synth(load_config(accounts_copy), tmp_path / "out")
    body = json.loads((tmp_path / "out/stacks/organization/cdk.tf.json").read_text())
    bucket_policy = json.loads(resources(body, "aws_s3_bucket_policy")[f"{CONFIG}bucket_policy"]["policy"])
    deliver = next(s for s in bucket_policy["Statement"] if s.get("Sid") == "ConfigDelivers")
    assert "666666666666" in deliver["Condition"]["StringEquals"]["aws:SourceAccount"]
    assert f"arn:aws:s3:::familyalbum-config-{LOG_ARCHIVE}/AWSLogs/666666666666/Config/*" in deliver["Resource"]
    qa = json.loads((tmp_path / "out/stacks/qa-baseline/cdk.tf.json").read_text())
    assert {r["region"] for r in resources(qa, "aws_config_configuration_recorder").values()} == \
        {"ap-northeast-1", "us-east-1"}


def test_opt_out_removes_all_of_aws_config(accounts_copy, tmp_path):
    edit(accounts_copy / "organization.yaml", "    enabled: true ", "    enabled: false ")
    synth(load_config(accounts_copy), tmp_path / "out")
    leftovers = []
    for path in sorted((tmp_path / "out/stacks").glob("*/cdk.tf.json")):
        body = json.loads(path.read_text())
        for tf_type, instances in body.get("resource", {}).items():
            for name, resource in instances.items():
                if tf_type.startswith("aws_config_") or "config" in name.split("_") or \
                        resource.get("aws_service_name") == "config.amazonaws.com" or \
                        resource.get("service_principal", "").startswith("config"):
                    leftovers.append(f"{path.parent.name}: {tf_type}.{name}")
        leftovers += [f"{path.parent.name}: {json.dumps(resource)[:80]}"
                      for instances in body.get("resource", {}).values()
                      for resource in instances.values() if "familyalbum-config" in json.dumps(resource)]
    assert leftovers == []
    # the trail, GuardDuty and the trusted access stay
    body = json.loads((tmp_path / "out/stacks/organization/cdk.tf.json").read_text())
    assert resources(body, "aws_cloudtrail") and resources(body, "aws_guardduty_detector")


def test_access_logging_is_switched_on_after_the_access_log_bucket_policy(stack_json):
    """S3 checks at PutBucketLogging that the logging service may write to the target bucket: both
    buckets' logging waits for the access-log bucket's policy (a real apply created them first)."""
    org = stack_json("organization")
    loggings = resources(org, "aws_s3_bucket_logging")
    assert set(loggings) == {"audit_log-archive_trail-bucket_logging", f"{CONFIG}bucket_logging"}
    for logging in loggings.values():
        assert logging["depends_on"] == ["aws_s3_bucket_policy.audit_log-archive_access-logs-policy"]
