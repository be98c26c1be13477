"""The per-account baseline stacks: fleetform roles trusted only by the pipeline (+ break glass),
account defaults, budgets; how the first apply reaches the accounts."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest
from botocore.validate import validate_parameters
from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.config.models import CONFIG_RESOURCE_TYPE, CONTINUOUS_ONLY_TYPES, DAILY_RECORDING_DEFAULT
from fleetform.constructs.aws_config import recording_mode
from fleetform.manifest import read_manifest
from fleetform.naming import FIRST_APPLY_ENV
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth

PIPELINE = "111111111111"  # organization.pipeline.account: management
REGIONS = {"ap-northeast-1", "us-east-1"}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def resources(body: dict, tf_type: str) -> dict[str, dict]:
    return body["resource"].get(tf_type, {})


def trust(body: dict, role: str) -> dict:
    return json.loads(resources(body, "aws_iam_role")[f"baseline_{role}-role"]["assume_role_policy"])


def test_every_account_has_a_baseline_after_the_organization(synth_out, example_config):
    stacks = {s.name: s for s in read_manifest(synth_out)}
    for account in example_config.accounts:
        stack = stacks[f"{account.name}-baseline"]
        assert set(stack.dependencies) == {"bootstrap", "organization"}
    assert "prod-baseline" in stacks["prod-network"].dependencies


def test_baseline_assumes_fleetform_apply_in_its_account(stack_json, example_config):
    for account in example_config.accounts:
        body = stack_json(f"{account.name}-baseline")
        (provider,) = body["provider"]["aws"]
        assert provider["allowed_account_ids"] == [account.id]
        assert provider["assume_role"][0]["role_arn"] == f"arn:aws:iam::{account.id}:role/${{var.fleetform_role}}"
        assert body["variable"]["fleetform_role"]["default"] == "fleetform-apply"


@pytest.mark.parametrize(("role", "pipeline_role"), [("plan", "fleetform-pipeline-plan"),
                                                     ("apply", "fleetform-pipeline-apply")])
def test_role_trust_names_only_the_pipeline_role(stack_json, example_config, role, pipeline_role):
    for account in example_config.accounts:
        body = stack_json(f"{account.name}-baseline")
        assert resources(body, "aws_iam_role")[f"baseline_{role}-role"]["name"] == f"fleetform-{role}"
        (statement,) = trust(body, role)["Statement"]
        assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
        assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{PIPELINE}:root"]}
        assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": [
            f"arn:aws:iam::{PIPELINE}:role/{pipeline_role}"]}}


def test_role_permissions(stack_json):
    body = stack_json("prod-baseline")
    attachments = {a["role"]: a["policy_arn"] for a in resources(body, "aws_iam_role_policy_attachment").values()}
    assert attachments == {"${aws_iam_role.baseline_plan-role.id}": "arn:aws:iam::aws:policy/ReadOnlyAccess",
                           "${aws_iam_role.baseline_apply-role.id}": "arn:aws:iam::aws:policy/AdministratorAccess"}
    (inline,) = resources(body, "aws_iam_role_policy").values()
    assert inline["role"] == "${aws_iam_role.baseline_plan-role.id}"
    (deny,) = json.loads(inline["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and "s3:GetObject" in deny["Action"] and "secretsmanager:GetSecretValue" in \
        deny["Action"]


def test_account_defaults(stack_json):
    body = stack_json("stg-baseline")
    (block,) = resources(body, "aws_s3_account_public_access_block").values()
    assert block["account_id"] == "444444444444"
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                          "restrict_public_buckets"))
    (password,) = resources(body, "aws_iam_account_password_policy").values()
    assert password["minimum_password_length"] >= 14 and password["password_reuse_prevention"] == 24
    assert all(password[k] for k in ("require_lowercase_characters", "require_uppercase_characters",
                                     "require_numbers", "require_symbols"))
    ebs = resources(body, "aws_ebs_encryption_by_default").values()
    assert {e["region"] for e in ebs} == REGIONS and all(e["enabled"] is True for e in ebs)
    imds = resources(body, "aws_ec2_instance_metadata_defaults").values()
    assert {i["region"] for i in imds} == REGIONS and all(i["http_tokens"] == "required" for i in imds)
    snapshots = resources(body, "aws_ebs_snapshot_block_public_access").values()
    assert {s["state"] for s in snapshots} == {"block-all-sharing"}


def test_budget_alerts_the_configured_address(stack_json):
    (budget,) = resources(stack_json("prod-baseline"), "aws_budgets_budget").values()
    assert budget["limit_amount"] == "150000" and budget["limit_unit"] == "USD" and budget["time_unit"] == "MONTHLY"
    alerts = {(n["notification_type"], n["threshold"]) for n in budget["notification"]}
    assert alerts == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["subscriber_email_addresses"] == ["sre@familyalbum.example"] for n in budget["notification"])


def test_break_glass_and_pipeline_account_and_no_budget(accounts_copy, tmp_path):
    org = accounts_copy / "organization.yaml"
    break_glass = "arn:aws:iam::999999999999:role/BreakGlass"
    org.write_text(org.read_text().replace("  log_archive_account:", f"  break_glass_principal: {break_glass}\n"
                                           "  log_archive_account:").replace("account: management", "account: dev"))
    dev = accounts_copy / "dev.yaml"
    dev.write_text(dev.read_text().replace("budget: {monthly_usd: 10000, alert_email: sre@familyalbum.example}\n", ""))
    synth(load_config(accounts_copy), tmp_path / "out")
    body = json.loads((tmp_path / "out/stacks/dev-baseline/cdk.tf.json").read_text())
    (statement,) = trust(body, "apply")["Statement"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::555555555555:root", "arn:aws:iam::999999999999:root"]}
    assert statement["Condition"]["ArnEquals"]["aws:PrincipalArn"] == [
        "arn:aws:iam::555555555555:role/fleetform-pipeline-apply", break_glass]
    assert resources(body, "aws_budgets_budget") == {}


def test_first_apply_goes_through_organization_access_role(example_config, tmp_path, monkeypatch):
    monkeypatch.setenv(FIRST_APPLY_ENV, "1")
    synth(example_config, tmp_path / "out")
    stacks = tmp_path / "out/stacks"
    prod = json.loads((stacks / "prod-baseline/cdk.tf.json").read_text())
    assert prod["variable"]["fleetform_role"]["default"] == "OrganizationAccountAccessRole"
    management = json.loads((stacks / "management-baseline/cdk.tf.json").read_text())
    assert "assume_role" not in management["provider"]["aws"][0]  # no such role in the management account
    assert "variable" not in management


# ------------------------------------------------------------------ AWS Config recorders

HOME = "ap-northeast-1"
CONFIG_BUCKET = "familyalbum-config-222222222222"  # naming.config_bucket: log-archive, made by the organization stack
CONFIG_KEY = "arn:aws:kms:ap-northeast-1:222222222222:alias/familyalbum-config"


# accounts/organization.yaml: organization.aws_config.daily_recording (the default, spelled out)
EXAMPLE_DAILY = ["AWS::EC2::Instance", "AWS::EC2::NetworkInterface", "AWS::EC2::Volume"]


def config_role(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"


def by_region(body: dict, tf_type: str) -> dict[str, dict]:
    instances = resources(body, tf_type).values()
    regions = [i["region"] for i in instances]
    assert len(regions) == len(set(regions)), f"more than one {tf_type} in a region: {regions}"
    return {i["region"]: i for i in instances}


def config_service_linked_roles(body: dict) -> list[dict]:
    return [r for r in resources(body, "aws_iam_service_linked_role").values()
            if r["aws_service_name"] == "config.amazonaws.com"]


def test_config_recorder_in_every_allowed_region_of_every_account(stack_json, example_config):
    for account in example_config.accounts:
        body = stack_json(f"{account.name}-baseline")
        recorders = by_region(body, "aws_config_configuration_recorder")
        assert set(recorders) == REGIONS, account.name
        for recorder in recorders.values():
            assert recorder["name"] == "default"  # an adopted console-made recorder is taken over in place
            assert recorder["role_arn"] == config_role(account.id)
            assert recorder["recording_group"][0]["all_supported"] is True
            assert recorder["recording_mode"] == [{"recording_frequency": "CONTINUOUS", "recording_mode_override": [
                {"description": "fleetform: organization.aws_config.daily_recording", "recording_frequency": "DAILY",
                 "resource_types": EXAMPLE_DAILY}]}]
        channels = by_region(body, "aws_config_delivery_channel")
        assert set(channels) == REGIONS
        for region, channel in channels.items():
            assert channel["s3_bucket_name"] == CONFIG_BUCKET
            assert channel["s3_kms_key_arn"] == CONFIG_KEY
            assert channel["snapshot_delivery_properties"] == [{"delivery_frequency": "TwentyFour_Hours"}]
            # PutDeliveryChannel needs the region's recorder
            assert channel["depends_on"] == [f"aws_config_configuration_recorder.baseline_config_recorder-{region}"]
        statuses = by_region(body, "aws_config_configuration_recorder_status")
        assert set(statuses) == REGIONS
        for region, status in statuses.items():
            assert status["is_enabled"] is True
            assert status["name"] == f"${{aws_config_configuration_recorder.baseline_config_recorder-{region}.name}}"
            assert status["depends_on"] == [f"aws_config_delivery_channel.baseline_config_delivery-channel-{region}"]


def test_global_resource_types_recorded_only_in_the_home_region(stack_json, example_config):
    for account in example_config.accounts:
        recorders = by_region(stack_json(f"{account.name}-baseline"), "aws_config_configuration_recorder")
        recording_global = {region for region, r in recorders.items()
                            if r["recording_group"][0]["include_global_resource_types"]}
        assert recording_global == {HOME}, account.name
        # the other regions say why checkov's "record global types" check does not apply to them
        for region in REGIONS - {HOME}:
            assert any(s.startswith("checkov:skip=CKV2_AWS_48:") for s in recorders[region]["//"]["checkov_skip"])


def test_config_service_linked_role_is_created_before_the_recorders(stack_json):
    body = stack_json("dev-baseline")
    (role,) = config_service_linked_roles(body)
    assert "custom_suffix" not in role  # Config does not take one: the role is AWSServiceRoleForConfig
    for recorder in resources(body, "aws_config_configuration_recorder").values():
        assert recorder["depends_on"] == ["aws_iam_service_linked_role.baseline_config_service-linked-role"]


def test_existing_service_linked_role_is_used_not_created(accounts_copy, tmp_path):
    org = accounts_copy / "organization.yaml"
    text = org.read_text()
    assert "existing_service_linked_role: []" in text and "snapshot_frequency: TwentyFour_Hours" in text
    org.write_text(text.replace("existing_service_linked_role: []", "existing_service_linked_role: [stg]")
                   .replace("snapshot_frequency: TwentyFour_Hours", "snapshot_frequency: Six_Hours"))
    synth(load_config(accounts_copy), tmp_path / "out")
    stg = json.loads((tmp_path / "out/stacks/stg-baseline/cdk.tf.json").read_text())
    assert config_service_linked_roles(stg) == []  # never created, so never deleted by fleetform either
    for recorder in resources(stg, "aws_config_configuration_recorder").values():
        assert recorder["role_arn"] == config_role("444444444444")
        assert "depends_on" not in recorder
    assert {c["snapshot_delivery_properties"][0]["delivery_frequency"]
            for c in resources(stg, "aws_config_delivery_channel").values()} == {"Six_Hours"}
    prod = json.loads((tmp_path / "out/stacks/prod-baseline/cdk.tf.json").read_text())
    assert len(config_service_linked_roles(prod)) == 1


def config_resource_types() -> list[str]:
    """The ResourceType enum of the AWS Config API model that botocore ships (test-only reference)."""
    model = botocore.loaders.Loader().load_service_model("config", "service-2")
    return model["shapes"]["ResourceType"]["enum"]


def test_daily_recording_default_is_the_example_and_names_real_types(example_config, accounts_copy):
    assert example_config.organization.aws_config.daily_recording == EXAMPLE_DAILY
    edit(accounts_copy / "organization.yaml", "    daily_recording: [AWS::EC2::Instance, AWS::EC2::NetworkInterface, "
         "AWS::EC2::Volume]\n", "")
    assert load_config(accounts_copy).organization.aws_config.daily_recording == list(DAILY_RECORDING_DEFAULT)
    assert sorted(DAILY_RECORDING_DEFAULT) == EXAMPLE_DAILY
    known = set(config_resource_types())
    assert set(DAILY_RECORDING_DEFAULT) <= known
    # the names AWS documents as continuous-only are spelled right; AWS::Config::ConfigurationRecorder is
    # newer than this enum, which is why fleetform checks the shape of a name and keeps no catalogue
    assert CONTINUOUS_ONLY_TYPES - known <= {"AWS::Config::ConfigurationRecorder"}


def test_every_config_resource_type_passes_the_name_check():
    # the shape check must never refuse a real type, e.g. AWS::WAFv2::WebACL or AWS::ApiGatewayV2::Api
    types = config_resource_types()
    assert len(types) > 400
    assert [t for t in types if not CONFIG_RESOURCE_TYPE.match(t)] == []


def test_recording_mode_matches_the_config_api_model():
    # the Terraform provider sends recording_mode as PutConfigurationRecorder's recordingMode
    mode = recording_mode([*EXAMPLE_DAILY, "AWS::IAM::Role"], global_types=True)
    (override,) = mode["recording_mode_override"]
    request = {"ConfigurationRecorder": {"name": "default", "recordingMode": {
        "recordingFrequency": mode["recording_frequency"],
        "recordingModeOverrides": [{"description": override["description"],
                                    "recordingFrequency": override["recording_frequency"],
                                    "resourceTypes": override["resource_types"]}]}}}
    model = botocore.session.get_session().get_service_model("config")
    validate_parameters(request, model.operation_model("PutConfigurationRecorder").input_shape)  # names, required
    # what botocore's validator leaves to the service: enums and maximums
    assert {mode["recording_frequency"], override["recording_frequency"]} <= set(
        model.shape_for("RecordingFrequency").enum)
    assert len(mode["recording_mode_override"]) <= model.shape_for("RecordingModeOverrides").metadata["max"]
    assert len(override["description"]) <= model.shape_for("Description").metadata["max"]
    assert set(override["resource_types"]) <= set(config_resource_types())


def synth_baseline(accounts: Path, out: Path, daily: str) -> dict:
    edit(accounts / "organization.yaml",
         "daily_recording: [AWS::EC2::Instance, AWS::EC2::NetworkInterface, AWS::EC2::Volume]",
         f"daily_recording: {daily}")
    synth(load_config(accounts), out)
    return by_region(json.loads((out / "stacks/prod-baseline/cdk.tf.json").read_text()),
                     "aws_config_configuration_recorder")


def test_empty_daily_recording_records_everything_continuously(accounts_copy, tmp_path):
    recorders = synth_baseline(accounts_copy, tmp_path / "out", "[]")
    assert set(recorders) == REGIONS
    for recorder in recorders.values():
        assert recorder["recording_mode"] == [{"recording_frequency": "CONTINUOUS"}]


def test_global_types_are_recorded_daily_only_where_they_are_recorded(accounts_copy, tmp_path):
    recorders = synth_baseline(accounts_copy, tmp_path / "out",
                               "[AWS::IAM::Role, AWS::EC2::Volume, AWS::Lambda::Function]")

    def daily(region: str) -> list[str]:
        return recorders[region]["recording_mode"][0]["recording_mode_override"][0]["resource_types"]
    # sorted: reordering the YAML list changes nothing in the plan
    assert daily(HOME) == ["AWS::EC2::Volume", "AWS::IAM::Role", "AWS::Lambda::Function"]
    (other,) = REGIONS - {HOME}
    assert daily(other) == ["AWS::EC2::Volume", "AWS::Lambda::Function"]  # IAM is recorded in the home region only
    # only global types in the list: the other regions have nothing to override
    assert "recording_mode_override" not in recording_mode(["AWS::IAM::User"], global_types=False)


def autoscaling_roles(body: dict) -> list[dict]:
    return [r for r in resources(body, "aws_iam_service_linked_role").values()
            if r["aws_service_name"] == "autoscaling.amazonaws.com"]


def test_accounts_with_clusters_create_the_autoscaling_role_their_volume_keys_name(stack_json, example_config,
                                                                                  synth_out):
    """A clean account has no AWSServiceRoleForAutoScaling and KMS refuses a key policy naming a missing
    role: the baseline creates it, and every slot stack (whose volume key names it) comes after."""
    stacks = {s.name: s for s in read_manifest(synth_out)}
    for account in example_config.accounts:
        roles = autoscaling_roles(stack_json(f"{account.name}-baseline"))
        assert len(roles) == (1 if account.spec.clusters else 0), account.name
        for cluster, settings in account.spec.clusters.items():
            for slot in settings.slots:
                name = f"{account.name}-{cluster}-{slot}"
                key = resources(stack_json(name), "aws_kms_key")["volume-key_key"]
                principals = {json.dumps(s["Principal"]) for s in json.loads(key["policy"])["Statement"]}
                assert json.dumps({"AWS": f"arn:aws:iam::{account.id}:role/aws-service-role/autoscaling.amazonaws.com/"
                                          "AWSServiceRoleForAutoScaling"}) in principals
                # slot -> network -> baseline: the role exists before the key
                assert f"{account.name}-network" in stacks[name].dependencies
                assert f"{account.name}-baseline" in stacks[f"{account.name}-network"].dependencies


def test_existing_autoscaling_role_is_used_not_created(accounts_copy, tmp_path):
    edit(accounts_copy / "organization.yaml", "existing_autoscaling_service_linked_role: []",
         "existing_autoscaling_service_linked_role: [prod]")
    synth(load_config(accounts_copy), tmp_path / "out")
    prod = json.loads((tmp_path / "out/stacks/prod-baseline/cdk.tf.json").read_text())
    stg = json.loads((tmp_path / "out/stacks/stg-baseline/cdk.tf.json").read_text())
    assert autoscaling_roles(prod) == [] and len(autoscaling_roles(stg)) == 1


def test_unknown_account_in_existing_autoscaling_role_is_an_error(accounts_copy):
    edit(accounts_copy / "organization.yaml", "existing_autoscaling_service_linked_role: []",
         "existing_autoscaling_service_linked_role: [prd]")
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("organization.existing_autoscaling_service_linked_role.0: no account named 'prd'"
            in " ".join(result.output.split()))
