"""fleetform's service control policies as plain documents (no Terraform here, so validation can use it).

Each guardrail is a function of the organization's settings that returns a readable policy
document with a ``Sid`` per statement. The built-in guardrails are always attached (where:
``builtin_targets``); the ones in ``LIBRARY`` are added by name through ``organization.scps``
in organization.yaml.

Exemptions use ``aws:PrincipalArn`` and name fleetform's own roles only: the pipeline roles,
``fleetform-apply`` (what the pipeline acts through in each account), OrganizationAccountAccessRole
(the first apply, and the way back in from the management account) and the optional break-glass
principal. SCPs never restrict the management account itself (an AWS rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    BASTION_NAME_TAG,
    ORGANIZATION_ACCESS_ROLE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_DRIFT_ROLE,
    PIPELINE_PLAN_ROLE,
    SESSION_DOCUMENT,
    config_key_alias,
    role_arn,
)

MAX_SCP_CHARS = 5120  # AWS quota on an SCP document, white space included
MAX_SCPS_PER_TARGET = 5  # AWS quota on SCPs attached directly to a root, OU or account
FULL_AWS_ACCESS = "FullAWSAccess"  # attached by AWS to every target once SCPs are enabled
ROOT_TARGET = "Root"  # the organization root, as a target name next to OU paths

Document = dict[str, Any]


@dataclass(frozen=True)
class GuardrailContext:
    """What the guardrails need to know about the organization."""

    allowed_regions: tuple[str, ...]
    state_bucket: str
    pipeline_account_id: str
    break_glass_principal: str | None = None
    organization_name: str | None = None  # names the trail and Config buckets and keys; None: any
    aws_config: bool = True  # organization.aws_config.enabled: the Config bucket and key exist

    @property
    def audit_buckets(self) -> list[str]:
        """The trail, Config and bastion session buckets (constructs/audit.py, aws_config.py, stacks/bastion.py)."""
        org = self.organization_name or "*"
        config = [f"{org}-config-*"] if self.aws_config else []
        return [f"{org}-cloudtrail-*", *config, f"{org}-*-bastion-sessions"]

    @property
    def audit_key_aliases(self) -> list[str]:
        org = self.organization_name or "*"
        config = [f"alias/{config_key_alias(org)}"] if self.aws_config else []
        return [f"alias/{org}-cloudtrail", *config, f"alias/{SESSION_DOCUMENT}"]

    @property
    def administrators(self) -> list[str]:
        """Principals that may change what the guardrails protect (fleetform itself)."""
        arns = [
            role_arn("*", ACCOUNT_APPLY_ROLE),
            role_arn("*", ORGANIZATION_ACCESS_ROLE),
            role_arn(self.pipeline_account_id, PIPELINE_APPLY_ROLE),
        ]
        return arns + ([self.break_glass_principal] if self.break_glass_principal else [])

    @property
    def pipeline_projects(self) -> str:
        return f"arn:aws:codebuild:*:{self.pipeline_account_id}:project/{self.organization_name or '*'}-*"

    @property
    def pipeline(self) -> list[str]:
        """The pipeline's CodeBuild roles (plan and apply) and the break-glass principal."""
        arns = [role_arn(self.pipeline_account_id, PIPELINE_PLAN_ROLE),
                role_arn(self.pipeline_account_id, PIPELINE_DRIFT_ROLE),
                role_arn(self.pipeline_account_id, PIPELINE_APPLY_ROLE)]
        return arns + ([self.break_glass_principal] if self.break_glass_principal else [])


@dataclass(frozen=True)
class Guardrail:
    name: str
    description: str
    document: Callable[[GuardrailContext], Document]
    # where a built-in guardrail is attached: the organization root, every top-level OU, or the OUs
    # of the accounts that have a bastion (see builtin_targets)
    attach: Literal["root", "top-level-ous", "bastion-ous"] = "root"


def _doc(*statements: Mapping[str, Any]) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _unless(principals: list[str]) -> dict[str, Any]:
    return {"ArnNotLike": {"aws:PrincipalArn": principals}}


# ----------------------------------------------------------------------- built-in guardrails


def deny_leave_organization(_: GuardrailContext) -> Document:
    return _doc({"Sid": "DenyLeaveOrganization", "Effect": "Deny", "Action": "organizations:LeaveOrganization",
                 "Resource": "*"})


def deny_root_user(_: GuardrailContext) -> Document:
    return _doc({"Sid": "DenyRootUser", "Effect": "Deny", "Action": "*", "Resource": "*",
                 "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}})


# Services that are global or answer from us-east-1 whatever the caller's region; an allow-list of
# regions must not block them (AWS's own example SCP, trimmed to services that still exist).
GLOBAL_ACTIONS = (
    "account:*", "acm:*", "aws-marketplace:*", "aws-portal:*", "budgets:*", "ce:*", "cloudfront:*",
    "cur:*", "directconnect:*", "ec2:DescribeRegions", "ec2:DescribeTransitGateways", "ec2:DescribeVpnGateways",
    "fms:*", "globalaccelerator:*", "health:*", "iam:*", "kms:*", "networkmanager:*", "organizations:*",
    "pricing:*", "route53:*", "route53domains:*", "s3:GetAccountPublicAccessBlock", "s3:ListAllMyBuckets",
    "s3:PutAccountPublicAccessBlock", "shield:*", "sso:*", "sts:*", "support:*", "tag:*", "trustedadvisor:*",
    "waf:*", "wafv2:*",
)


def region_allow_list(ctx: GuardrailContext) -> Document:
    return _doc({
        "Sid": "DenyOutsideAllowedRegions",
        "Effect": "Deny",
        "NotAction": list(GLOBAL_ACTIONS),
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": sorted(ctx.allowed_regions)}},
    })


def protect_security_services(ctx: GuardrailContext) -> Document:
    return _doc(
        {"Sid": "ProtectCloudTrail", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["cloudtrail:DeleteTrail", "cloudtrail:PutEventSelectors", "cloudtrail:StopLogging",
                    "cloudtrail:UpdateTrail"]},
        # filters can auto-archive findings and trusted IP sets silence them: as good as stopping GuardDuty
        {"Sid": "ProtectGuardDuty", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["guardduty:CreateFilter", "guardduty:CreateIPSet", "guardduty:DeleteDetector",
                    "guardduty:DeleteMembers", "guardduty:DisassociateFromAdministratorAccount",
                    "guardduty:DisassociateFromMasterAccount", "guardduty:DisassociateMembers",
                    "guardduty:StopMonitoringMembers", "guardduty:UpdateDetector", "guardduty:UpdateFilter",
                    "guardduty:UpdateIPSet", "guardduty:UpdateMemberDetectors",
                    "guardduty:UpdateOrganizationConfiguration"]},
        {"Sid": "ProtectConfig", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["config:DeleteConfigurationRecorder", "config:DeleteDeliveryChannel",
                    "config:DeleteRetentionConfiguration", "config:DisassociateResourceTypes",
                    "config:PutConfigurationRecorder", "config:PutDeliveryChannel",
                    "config:StopConfigurationRecorder"]},
        # where the records are kept: the buckets' lifecycle, policy, versioning and Object Lock, the
        # locked history, the keys that decrypt them, the log groups and the session document
        {"Sid": "ProtectAuditBuckets", "Effect": "Deny", "Condition": _unless(ctx.administrators),
         "Resource": [f"arn:aws:s3:::{b}{suffix}" for b in ctx.audit_buckets for suffix in ("", "/*")],
         "Action": ["s3:BypassGovernanceRetention", "s3:DeleteBucket", "s3:DeleteBucketPolicy",
                    "s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy", "s3:PutBucketVersioning",
                    "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration"]},
        {"Sid": "ProtectAuditKeys", "Effect": "Deny", "Resource": "*",
         "Action": ["kms:DisableKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"],
         "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": ctx.audit_key_aliases},
                       **_unless(ctx.administrators)}},
        {"Sid": "ProtectLogGroups", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["logs:DeleteLogGroup"]},
        {"Sid": "ProtectSessionDocument", "Effect": "Deny", "Condition": _unless(ctx.administrators),
         "Resource": f"arn:aws:ssm:*:*:document/{SESSION_DOCUMENT}",
         "Action": ["ssm:DeleteDocument", "ssm:ModifyDocumentPermission", "ssm:UpdateDocument",
                    "ssm:UpdateDocumentDefaultVersion"]},
    )


ROLE_CHANGES = (
    "iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRole", "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy",
    "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole", "iam:UpdateRoleDescription",
)


def protect_fleetform(ctx: GuardrailContext) -> Document:
    bucket = f"arn:aws:s3:::{ctx.state_bucket}"
    return _doc(
        {"Sid": "ProtectStateBucket", "Effect": "Deny", "Action": "s3:*", "Resource": [bucket, f"{bucket}/*"],
         "Condition": _unless(ctx.pipeline)},
        # OrganizationAccountAccessRole is exempt from the guardrails, so nobody else may change it (make it
        # trust themselves, then act through it)
        {"Sid": "ProtectFleetformRoles", "Effect": "Deny", "Action": list(ROLE_CHANGES),
         "Resource": [role_arn("*", "fleetform-*"), role_arn("*", ORGANIZATION_ACCESS_ROLE)],
         "Condition": _unless(ctx.administrators)},
        # the pipeline's projects run as administrators of every account: nobody starts one with another
        # buildspec, and only fleetform changes them (binds where the pipeline account is a member account;
        # SCPs never restrict the management account)
        {"Sid": "DenyPipelineBuildspecOverrides", "Effect": "Deny", "Resource": ctx.pipeline_projects,
         "Action": ["codebuild:StartBuild", "codebuild:StartBuildBatch"],
         "Condition": {"Null": {"codebuild:source.buildspec": "false"},
                       **(_unless([ctx.break_glass_principal]) if ctx.break_glass_principal else {})}},
        {"Sid": "ProtectPipelineProjects", "Effect": "Deny", "Resource": ctx.pipeline_projects,
         "Action": ["codebuild:CreateWebhook", "codebuild:DeleteProject", "codebuild:DeleteWebhook",
                    "codebuild:PutResourcePolicy", "codebuild:UpdateProject", "codebuild:UpdateWebhook"],
         "Condition": _unless(ctx.administrators)},
    )


# Session Manager access to the bastion is granted by the tag Name=fleetform-bastion (the operator
# policy, constructs/bastion.py), so only fleetform may put that tag on anything, take it off or
# change what the tagged launch template and Auto Scaling group launch.
#
# Why the bastion itself still works: fleetform-apply (exempt) creates the tagged launch template,
# security group and Auto Scaling group; the instances are then launched, tagged and replaced by
# Auto Scaling through its service-linked role (AWSServiceRoleForAutoScaling_fleetform-bastion),
# and SCPs never apply to service-linked roles (AWS Organizations documents that SCPs do not
# affect them, so that services can act for the organization).
# That exemption is also why a deny on launches alone is not enough: whoever could create or update
# an Auto Scaling group with the tag (group tags propagated at launch, or a launch template that
# tags instances) would have the service launch an impostor for them. Those requests are checked
# with the caller's identity, where the SCP applies: the group's tags as aws:RequestTag on
# autoscaling:CreateAutoScalingGroup / CreateOrUpdateTags, and a launch template's instance tags as
# aws:RequestTag on the ec2:RunInstances authorization that Auto Scaling makes for the caller when a
# group is created or updated with a template. A template's contents cannot be checked when it is
# created (IAM has no condition key for a template's data), so the guard sits where they are used:
# RunInstances, CreateFleet, and ec2:CreateTags, which EC2 also authorizes for every tag applied at
# creation (with ec2:CreateAction).

_NAME_TAG_KEY = "Name"


def protect_bastion_tag(ctx: GuardrailContext) -> Document:
    unless = _unless(ctx.administrators)
    tagged = {"StringEquals": {f"aws:ResourceTag/{_NAME_TAG_KEY}": BASTION_NAME_TAG}}
    return _doc(
        # new tags: tagging anything, launching or creating something with the tag
        {"Sid": "DenyBastionNameTagOnRequests", "Effect": "Deny", "Resource": "*",
         "Action": ["ec2:CreateTags", "ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate",
                    "autoscaling:CreateAutoScalingGroup", "autoscaling:CreateOrUpdateTags"],
         "Condition": {"StringEquals": {f"aws:RequestTag/{_NAME_TAG_KEY}": BASTION_NAME_TAG}, **unless}},
        # changing or removing the Name tag of what carries it (instance, volume, interface, template)
        {"Sid": "DenyChangingBastionNameTag", "Effect": "Deny", "Resource": "*",
         "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
         "Condition": {**tagged, "ForAnyValue:StringEquals": {"aws:TagKeys": [_NAME_TAG_KEY]}, **unless}},
        # DeleteTags without tag keys removes every tag
        {"Sid": "DenyRemovingAllBastionTags", "Effect": "Deny", "Resource": "*", "Action": "ec2:DeleteTags",
         "Condition": {**tagged, "Null": {"aws:TagKeys": "true"}, **unless}},
        # what the bastion group launches: its launch template and the group itself
        {"Sid": "ProtectBastionLaunchTemplate", "Effect": "Deny", "Resource": "*",
         "Action": ["ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplate", "ec2:DeleteLaunchTemplateVersions",
                    "ec2:ModifyLaunchTemplate"],
         "Condition": {**tagged, **unless}},
        {"Sid": "ProtectBastionGroup", "Effect": "Deny", "Resource": "*",
         "Action": ["autoscaling:AttachInstances", "autoscaling:CreateOrUpdateTags",
                    "autoscaling:DeleteAutoScalingGroup", "autoscaling:DeleteTags",
                    "autoscaling:UpdateAutoScalingGroup"],
         "Condition": {**tagged, **unless}},
    )


BUILTIN: dict[str, Guardrail] = {g.name: g for g in (
    Guardrail("fleetform-deny-leave-organization", "Member accounts cannot leave the organization",
              deny_leave_organization),
    Guardrail("fleetform-deny-root-user", "The root user of member accounts can do nothing", deny_root_user),
    Guardrail("fleetform-region-allow-list", "Only the allowed regions (global services exempt)",
              region_allow_list),
    Guardrail("fleetform-protect-security-services", "CloudTrail, GuardDuty and Config cannot be stopped, nor "
                                                     "their records, keys, log groups or the session document "
                                                     "changed",
              protect_security_services, attach="top-level-ous"),
    Guardrail("fleetform-protect-fleetform", "State bucket and fleetform roles: pipeline only",
              protect_fleetform, attach="top-level-ous"),
    Guardrail("fleetform-protect-bastion-tag", "Only fleetform tags anything Name=fleetform-bastion or changes "
                                               "the bastion's launch template and group",
              protect_bastion_tag, attach="bastion-ous"),
)}


def builtin_targets(guardrail: Guardrail, ou_paths: Sequence[str], bastion_ous: Collection[str]) -> list[str]:
    """Where a built-in guardrail is attached: ``[ROOT_TARGET]`` or OU paths out of ``ou_paths``.

    ``bastion_ous``: the OU of every account with a bastion (an account's own OU, so the SCP
    reaches it whatever else sits higher in the tree).
    """
    if guardrail.attach == "root":
        return [ROOT_TARGET]
    if guardrail.attach == "top-level-ous":
        return [path for path in ou_paths if "/" not in path]
    return [path for path in ou_paths if path in bastion_ous]


# ----------------------------------------------------------------------- library (opt-in by name)


def deny_iam_users(ctx: GuardrailContext) -> Document:
    return _doc({"Sid": "DenyLongLivedCredentials", "Effect": "Deny", "Resource": "*",
                 "Action": ["iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:CreateUser"],
                 "Condition": _unless(ctx.administrators)})


def require_imdsv2(_: GuardrailContext) -> Document:
    return _doc(
        {"Sid": "RequireImdsV2", "Effect": "Deny", "Action": "ec2:RunInstances",
         "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}}},
        {"Sid": "DenyImdsV1Downgrade", "Effect": "Deny", "Action": "ec2:ModifyInstanceMetadataOptions",
         "Resource": "*", "Condition": {"StringNotEquals": {"ec2:Attribute/HttpTokens": "required"}}},
    )


def protect_account_baseline(ctx: GuardrailContext) -> Document:
    return _doc({"Sid": "ProtectAccountBaseline", "Effect": "Deny", "Resource": "*",
                 "Action": ["ec2:DisableEbsEncryptionByDefault", "ec2:DisableSnapshotBlockPublicAccess",
                            "s3:PutAccountPublicAccessBlock", "iam:DeleteAccountPasswordPolicy",
                            "iam:UpdateAccountPasswordPolicy"],
                 "Condition": _unless(ctx.administrators)})


LIBRARY: dict[str, Guardrail] = {g.name: g for g in (
    Guardrail("deny-iam-users", "No IAM users or access keys (people use SSO, machines use roles)",
              deny_iam_users),
    Guardrail("require-imdsv2", "EC2 instances must require IMDSv2", require_imdsv2),
    Guardrail("protect-account-baseline", "EBS encryption, S3 public access block and password policy "
                                          "stay as the baseline set them", protect_account_baseline),
)}


def document_text(document: Mapping[str, Any]) -> str:
    """The compact JSON that is sent to AWS (and counted against MAX_SCP_CHARS)."""
    return json.dumps(document, separators=(",", ":"))
