"""fleetform's service control policies as plain documents (no Terraform here, so validation can use it).

Each guardrail is a function of the organization's settings that returns a readable policy
document with a ``Sid`` per statement. The built-in guardrails are always attached; the ones
in ``LIBRARY`` are added by name through ``organization.scps`` in organization.yaml.

Exemptions use ``aws:PrincipalArn`` and name fleetform's own roles only: the pipeline roles,
``fleetform-apply`` (what the pipeline acts through in each account), OrganizationAccountAccessRole
(the first apply, and the way back in from the management account) and the optional break-glass
principal. SCPs never restrict the management account itself (an AWS rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ORGANIZATION_ACCESS_ROLE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_PLAN_ROLE,
    role_arn,
)

MAX_SCP_CHARS = 5120  # AWS quota on an SCP document, white space included
MAX_SCPS_PER_TARGET = 5  # AWS quota on SCPs attached directly to a root, OU or account
FULL_AWS_ACCESS = "FullAWSAccess"  # attached by AWS to every target once SCPs are enabled

Document = dict[str, Any]


@dataclass(frozen=True)
class GuardrailContext:
    """What the guardrails need to know about the organization."""

    allowed_regions: tuple[str, ...]
    state_bucket: str
    pipeline_account_id: str
    break_glass_principal: str | None = None

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
    def pipeline(self) -> list[str]:
        """The pipeline's CodeBuild roles (plan and apply) and the break-glass principal."""
        arns = [role_arn(self.pipeline_account_id, PIPELINE_PLAN_ROLE),
                role_arn(self.pipeline_account_id, PIPELINE_APPLY_ROLE)]
        return arns + ([self.break_glass_principal] if self.break_glass_principal else [])


@dataclass(frozen=True)
class Guardrail:
    name: str
    description: str
    document: Callable[[GuardrailContext], Document]
    # where a built-in guardrail is attached: the organization root or every top-level OU
    attach: Literal["root", "top-level-ous"] = "root"


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
        {"Sid": "ProtectGuardDuty", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["guardduty:DeleteDetector", "guardduty:DeleteMembers",
                    "guardduty:DisassociateFromAdministratorAccount", "guardduty:DisassociateFromMasterAccount",
                    "guardduty:DisassociateMembers", "guardduty:StopMonitoringMembers", "guardduty:UpdateDetector"]},
        {"Sid": "ProtectConfig", "Effect": "Deny", "Resource": "*", "Condition": _unless(ctx.administrators),
         "Action": ["config:DeleteConfigurationRecorder", "config:DeleteDeliveryChannel",
                    "config:DeleteRetentionConfiguration", "config:PutConfigurationRecorder",
                    "config:PutDeliveryChannel", "config:StopConfigurationRecorder"]},
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
        {"Sid": "ProtectFleetformRoles", "Effect": "Deny", "Action": list(ROLE_CHANGES),
         "Resource": [role_arn("*", "fleetform-*")], "Condition": _unless(ctx.administrators)},
    )


BUILTIN: dict[str, Guardrail] = {g.name: g for g in (
    Guardrail("fleetform-deny-leave-organization", "Member accounts cannot leave the organization",
              deny_leave_organization),
    Guardrail("fleetform-deny-root-user", "The root user of member accounts can do nothing", deny_root_user),
    Guardrail("fleetform-region-allow-list", "Only the allowed regions (global services exempt)",
              region_allow_list),
    Guardrail("fleetform-protect-security-services", "CloudTrail, GuardDuty and Config cannot be stopped",
              protect_security_services, attach="top-level-ous"),
    Guardrail("fleetform-protect-fleetform", "State bucket and fleetform roles: pipeline only",
              protect_fleetform, attach="top-level-ous"),
)}

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
