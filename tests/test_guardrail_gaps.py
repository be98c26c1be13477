"""The guardrail gaps of the pipeline trust review (docs/pipeline.md, threat model), each evaluated with
tests/iam_eval.py against the SCPs the example organization synthesizes: a member account's own
administrator is denied, fleetform's apply role (and break glass) is not."""

from __future__ import annotations

import json

import pytest
from iam_eval import Request, denied_by, statement_applies

from fleetform.naming import ORGANIZATION_STACK

MEMBER = "222222222222"
ADMIN = f"arn:aws:iam::{MEMBER}:role/Admin"
APPLY = f"arn:aws:iam::{MEMBER}:role/fleetform-apply"
ORG_ACCESS = f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole"
REGION = {"aws:RequestedRegion": "ap-northeast-1"}
TRAIL_KEY = {"kms:ResourceAliases": ["alias/familyalbum-cloudtrail"]}
SESSION_KEY = {"kms:ResourceAliases": ["alias/fleetform-bastion-session"]}

GAPS = [
    # OrganizationAccountAccessRole: exempt from the guardrails, so nobody else may rewrite it
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole", {}),
    ("iam:AttachRolePolicy", f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole", {}),
    ("config:DisassociateResourceTypes", "*", {}),
    ("guardduty:CreateFilter", "*", {}),
    ("guardduty:CreateIPSet", "*", {}),
    ("guardduty:UpdateMemberDetectors", "*", {}),
    ("guardduty:UpdateOrganizationConfiguration", "*", {}),
    ("ssm:UpdateDocument", f"arn:aws:ssm:ap-northeast-1:{MEMBER}:document/fleetform-bastion-session", {}),
    ("s3:PutLifecycleConfiguration", "arn:aws:s3:::familyalbum-cloudtrail-555555555555", {}),
    ("s3:PutBucketPolicy", "arn:aws:s3:::familyalbum-config-555555555555", {}),
    ("s3:PutLifecycleConfiguration", f"arn:aws:s3:::familyalbum-{MEMBER}-bastion-sessions", {}),
    ("s3:DeleteBucketPolicy", f"arn:aws:s3:::familyalbum-{MEMBER}-bastion-sessions", {}),
    ("s3:PutBucketObjectLockConfiguration", "arn:aws:s3:::familyalbum-cloudtrail-555555555555", {}),
    ("s3:BypassGovernanceRetention", f"arn:aws:s3:::familyalbum-{MEMBER}-bastion-sessions/sessions/a.log", {}),
    ("logs:DeleteLogGroup", f"arn:aws:logs:ap-northeast-1:{MEMBER}:log-group:/fleetform/bastion/sessions", {}),
    ("kms:ScheduleKeyDeletion", f"arn:aws:kms:ap-northeast-1:{MEMBER}:key/1234", TRAIL_KEY),
    ("kms:ScheduleKeyDeletion", f"arn:aws:kms:ap-northeast-1:{MEMBER}:key/5678", SESSION_KEY),
]


@pytest.fixture(scope="module")
def scps(stack_json) -> list[dict]:
    org = stack_json(ORGANIZATION_STACK)
    return [json.loads(p["content"]) for p in org["resource"]["aws_organizations_policy"].values()
            if p["type"] == "SERVICE_CONTROL_POLICY"]


@pytest.mark.parametrize(("action", "resource", "context"), GAPS, ids=[f"{a} {r.rsplit(':', 1)[-1]}"
                                                                       for a, r, _ in GAPS])
def test_member_admin_is_denied(scps, action, resource, context):
    request = Request(action, ADMIN, resource, {**REGION, **context})
    assert denied_by(scps, request), f"{action} on {resource} is not denied"


@pytest.mark.parametrize(("action", "resource", "context"), GAPS, ids=[f"{a} {r.rsplit(':', 1)[-1]}"
                                                                       for a, r, _ in GAPS])
def test_fleetform_apply_is_not_denied(scps, action, resource, context):
    assert denied_by(scps, Request(action, APPLY, resource, {**REGION, **context})) == []


def test_what_stays_allowed_to_member_admins(scps):
    """The guardrails are narrow: other keys, buckets and documents stay the account's own."""
    other_key = {"kms:ResourceAliases": ["alias/app-data"]}
    assert denied_by(scps, Request("kms:ScheduleKeyDeletion", ADMIN, "*", {**REGION, **other_key})) == []
    assert denied_by(scps, Request("s3:PutLifecycleConfiguration", ADMIN, "arn:aws:s3:::photos-bucket", REGION)) == []
    assert denied_by(scps, Request("ssm:UpdateDocument", ADMIN,
                                   f"arn:aws:ssm:ap-northeast-1:{MEMBER}:document/app-runbook", REGION)) == []
    app_role = f"arn:aws:iam::{MEMBER}:role/app"
    assert denied_by(scps, Request("iam:UpdateAssumeRolePolicy", ADMIN, app_role, REGION)) == []
    # OrganizationAccountAccessRole itself is how the management account gets back in
    assert denied_by(scps, Request("iam:UpdateAssumeRolePolicy", ORG_ACCESS,
                                   f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole", REGION)) == []


@pytest.mark.parametrize(("stack", "bucket", "days"), [
    ("organization", "familyalbum-cloudtrail-", 365), ("organization", "familyalbum-config-", 365),
    ("prod-bastion", "-bastion-sessions", 365), ("bootstrap", "familyalbum-tfstate", 90)])
def test_audit_and_state_history_is_object_locked(stack_json, stack, bucket, days):
    """Governance mode: new versions stay for ``days`` unless s3:BypassGovernanceRetention, which the
    guardrail denies to member admins (the state bucket lives in the management account, where the
    bucket policy and the pipeline roles' own permissions decide). An existing bucket is not replaced."""
    body = stack_json(stack)
    buckets = {k: r for k, r in body["resource"]["aws_s3_bucket"].items() if bucket in r["bucket"]}
    (name, resource), = buckets.items()
    assert resource["object_lock_enabled"] is True
    assert "object_lock_enabled" in resource["lifecycle"]["ignore_changes"]
    assert resource["lifecycle"]["prevent_destroy"] is True
    (lock,) = [r for r in body["resource"]["aws_s3_bucket_object_lock_configuration"].values()
               if r["bucket"] == f"${{aws_s3_bucket.{name}.id}}"]
    assert lock["object_lock_enabled"] == "Enabled"
    assert lock["rule"] == [{"default_retention": [{"mode": "GOVERNANCE", "days": days}]}]
    assert lock["depends_on"] == [f"aws_s3_bucket_versioning.{name.removesuffix('_bucket')}_versioning"]


def _trust(doc: dict, name: str) -> dict:
    (role,) = [r for r in doc["resource"]["aws_iam_role"].values() if r["name"] == name]
    (statement,) = json.loads(role["assume_role_policy"])["Statement"]
    return statement


def test_amp_writer_trusts_each_accounts_own_prometheus_roles_only(stack_json, example_config):
    writer = _trust(stack_json("prod-ops-shared"), "fleetform-amp-remote-write")
    ids = {a.name: a.id for a in example_config.accounts}

    def may(account: str, role: str) -> bool:
        return statement_applies(writer, Request("sts:AssumeRole", f"arn:aws:iam::{ids[account]}:role/{role}"))

    assert may("prod", "prod-main-blue-prometheus") and may("prod", "prod-main-green-prometheus")
    assert may("dev", "dev-main-blue-prometheus")
    # dev's administrator names a role after a prod slot, or any other *-prometheus: not trusted
    assert not may("dev", "prod-main-blue-prometheus")
    assert not may("dev", "anything-prometheus")
    assert not may("prod", "stg-main-blue-prometheus")


def test_pod_identity_roles_trust_only_their_own_cluster(stack_json):
    blue = stack_json("prod-main-blue")
    trust = _trust(blue, "prod-main-blue-karpenter")
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}

    def from_cluster(name: str, account: str = "333333333333") -> bool:
        arn = f"arn:aws:eks:ap-northeast-1:{account}:cluster/{name}"
        context = {"aws:SourceAccount": account, "aws:SourceArn": arn}
        return statement_applies(trust, Request("sts:AssumeRole", "pods.eks.amazonaws.com", "*", context))

    assert from_cluster("prod-main-blue")
    assert not from_cluster("prod-main-green")  # the other slot of the same cluster
    assert not from_cluster("prod-ops-blue")  # the ops cluster in the same account
    assert not from_cluster("prod-main-blue", "555555555555")
    argocd = _trust(stack_json("prod-ops-shared"), "fleetform-argocd")
    ops = {"aws:SourceAccount": "333333333333"}
    for slot, trusted in (("prod-ops-blue", True), ("prod-ops-green", True), ("prod-main-blue", False)):
        context = {**ops, "aws:SourceArn": f"arn:aws:eks:ap-northeast-1:333333333333:cluster/{slot}"}
        assert statement_applies(argocd, Request("sts:AssumeRole", "pods.eks.amazonaws.com", "*", context)) is trusted


# ---------------------------------------------------------------- checkov skip reasons are true


def test_buckets_whose_skip_says_cloudtrail_records_them_are_data_event_sources(synth_out):
    """A CKV_AWS_18 skip that says CloudTrail records the bucket's access must be backed by the trail's
    data-event selector; the others must not claim it."""
    from fleetform.manifest import read_manifest

    claimed, recorded = set(), set()
    for stack in read_manifest(synth_out):
        body = json.loads(stack.json_path.read_text())
        for bucket in body.get("resource", {}).get("aws_s3_bucket", {}).values():
            skips = bucket.get("//", {}).get("checkov_skip", [])
            reasons = [s for s in skips if s.startswith("checkov:skip=CKV_AWS_18:")]
            if reasons and "CloudTrail" in reasons[0]:
                claimed.add(bucket["bucket"])
        for trail in body.get("resource", {}).get("aws_cloudtrail", {}).values():
            recorded |= {v.removeprefix("arn:aws:s3:::").removesuffix("/") for selector in trail["event_selector"]
                         for resource in selector["data_resource"] for v in resource["values"]}
    assert claimed and claimed <= recorded, sorted(claimed - recorded)
    assert any(b.endswith("-bastion-sessions") for b in claimed)


def test_eks_version_skip_matches_the_pinned_checkov():
    from checkov.terraform.checks.resource.aws.EKSPlatformVersion import check

    from fleetform.constructs.eks_cluster import CHECKOV_NEWEST_VERSION, NEWER_THAN_CHECKOV

    newest = max(tuple(int(p) for p in v.split(".")) for v in check.get_expected_values())
    assert newest == CHECKOV_NEWEST_VERSION
    assert f"up to {newest[0]}.{newest[1]} only" in NEWER_THAN_CHECKOV


# ---------------------------------------------------------------- break glass works


def test_break_glass_can_recover_a_broken_pipeline(accounts_copy, tmp_path):
    """With organization.break_glass_principal set, that role can do what the pipeline's apply does:
    assume fleetform-apply (and fleetform-plan) in every account, pass the guardrails, and keep the
    state history (the bucket policy); nothing else outside the pipeline can."""
    from fleetform.config import load_config
    from fleetform.manifest import read_manifest
    from fleetform.stacks.app import synth

    glass = "arn:aws:iam::111111111111:role/fleetform-break-glass"
    org = accounts_copy / "organization.yaml"
    org.write_text(org.read_text().replace('  management_account_id: "111111111111"\n',
                                           f'  management_account_id: "111111111111"\n'
                                           f'  break_glass_principal: {glass}\n', 1))
    config = load_config(accounts_copy)
    synth(config, tmp_path / "out")
    stacks = {s.name: json.loads(s.json_path.read_text()) for s in read_manifest(tmp_path / "out")}
    stranger = "arn:aws:iam::111111111111:role/Admin"
    for account in config.accounts:
        roles = stacks[f"{account.name}-baseline"]["resource"]["aws_iam_role"]
        for role in ("fleetform-apply", "fleetform-plan"):
            (trust,) = [json.loads(r["assume_role_policy"])["Statement"][0] for r in roles.values()
                        if r["name"] == role]
            assert trust["Principal"]["AWS"] == sorted({"arn:aws:iam::111111111111:root"})
            assert statement_applies(trust, Request("sts:AssumeRole", glass)), (account.name, role)
            assert not statement_applies(trust, Request("sts:AssumeRole", stranger)), (account.name, role)
    scps = [json.loads(p["content"]) for p in stacks["organization"]["resource"]["aws_organizations_policy"].values()
            if p["type"] == "SERVICE_CONTROL_POLICY"]
    for action, resource, context in GAPS:
        assert denied_by(scps, Request(action, glass, resource, {**REGION, **context})) == [], action
    assert denied_by(scps, Request("s3:PutObject", glass, "arn:aws:s3:::familyalbum-tfstate/x/terraform.tfstate",
                                   REGION)) == []
    (policy,) = stacks["bootstrap"]["resource"]["aws_s3_bucket_policy"].values()
    state_policy = json.loads(policy["policy"])
    version = "arn:aws:s3:::familyalbum-tfstate/prod-network/terraform.tfstate"
    assert denied_by([state_policy], Request("s3:DeleteObjectVersion", glass, version)) == []
    assert denied_by([state_policy], Request("s3:DeleteObjectVersion", stranger, version)) != []


def test_pipeline_projects_cannot_be_started_with_another_buildspec_or_changed(scps):
    """Evaluated as if the pipeline account were a member account (SCPs bind there; the example's pipeline
    is in the management account, where only IAM decides: docs/pipeline.md)."""
    apply = "arn:aws:codebuild:ap-northeast-1:111111111111:project/familyalbum-apply"
    pipeline_admin = "arn:aws:iam::111111111111:role/Admin"
    override = {**REGION, "codebuild:source.buildspec": "version: 0.2"}
    for principal in (pipeline_admin, "arn:aws:iam::111111111111:role/fleetform-pipeline-apply"):
        assert denied_by(scps, Request("codebuild:StartBuild", principal, apply, override))
    assert denied_by(scps, Request("codebuild:StartBuild", pipeline_admin, apply, REGION)) == []
    assert denied_by(scps, Request("codebuild:UpdateProject", pipeline_admin, apply, REGION))
    assert denied_by(scps, Request("codebuild:UpdateProject", "arn:aws:iam::111111111111:role/fleetform-pipeline-apply",
                                   apply, REGION)) == []  # the apply of the pipeline stack
    other = "arn:aws:codebuild:ap-northeast-1:111111111111:project/image-builds"
    assert denied_by(scps, Request("codebuild:StartBuild", pipeline_admin, other, override)) == []
