"""The baseline every account gets: fleetform's own roles, encryption and public-access defaults,
a strict password policy, AWS Config recorders (unless the organization opted out) and a monthly
budget.

``fleetform-plan`` (read-only) and ``fleetform-apply`` (administrator) trust only the pipeline's
CodeBuild roles in the pipeline account, plan to plan and apply to apply, plus the optional
break-glass principal. The trust names the account as principal and the exact role ARNs in an
``aws:PrincipalArn`` condition: a role ARN as principal would make IAM refuse the policy while
the pipeline roles do not exist yet, and would silently stop matching if a pipeline role were
ever re-created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.constructs.aws_config import ConfigRecorderProps, ConfigRecorders
from fleetform.engine import Construct, Resource, policy_json
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    AUTOSCALING_SERVICE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_PLAN_ROLE,
    role_arn,
)

READ_ONLY_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
# ReadOnlyAccess also reads data; a plan needs configuration, never the users' photos or messages
DATA_READS = (
    "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "kinesis:GetRecords",
    "s3:GetObject", "s3:GetObjectVersion", "secretsmanager:GetSecretValue", "sqs:ReceiveMessage",
)
IMDS_HOP_LIMIT = 2  # containers on EKS nodes are one hop further than the instance


@dataclass(frozen=True)
class BudgetProps:
    monthly_usd: int
    alert_email: str
    threshold_percent: int = 80


@dataclass(frozen=True)
class BaselineProps:
    account_name: str
    account_id: str
    regions: Sequence[str]  # regional defaults (EBS encryption, IMDSv2, snapshot sharing) are set in each
    pipeline_account_id: str
    break_glass_principal: str | None = None
    budget: BudgetProps | None = None
    max_session_seconds: int = 3600
    config: ConfigRecorderProps | None = None  # AWS Config recorders; None: the organization opted out
    # create AWSServiceRoleForAutoScaling: the account has clusters (their volume keys name the role) and
    # the role is not there yet; KMS refuses a key policy that names a role that does not exist
    autoscaling_service_linked_role: bool = False


def trust_policy(pipeline_role_arn: str, break_glass_principal: str | None) -> str:
    """Who may assume a fleetform role: exactly these principal ARNs."""
    principals = [pipeline_role_arn] + ([break_glass_principal] if break_glass_principal else [])
    accounts = sorted({arn.split(":")[4] for arn in principals})
    return policy_json([{
        "Sid": "PipelineOnly",
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
        "Action": "sts:AssumeRole",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": principals}},
    }])


TRUST_SKIP = {"CKV_AWS_61": "the account is the principal so IAM accepts the policy before the pipeline roles "
                            "exist; aws:PrincipalArn restricts it to the named pipeline role (+ break glass)"}


class AccountBaseline(Construct):
    """Attributes: ``plan_role``, ``apply_role``, ``config`` (ConfigRecorders or None), ``budget`` (or None),
    ``autoscaling_service_linked_role`` (or None)."""

    def __init__(self, scope: Construct, id: str, props: BaselineProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self._roles(props)
        self._account_defaults(props)
        self.config = ConfigRecorders(self, "config", props.config) if props.config else None
        self.budget = self._budget(props) if props.budget else None
        self.autoscaling_service_linked_role = Resource(
            self, "autoscaling-service-linked-role", "aws_iam_service_linked_role",
            aws_service_name=AUTOSCALING_SERVICE,
            description="EC2 Auto Scaling: launches the EKS managed node groups' instances (fleetform baseline)",
        ) if props.autoscaling_service_linked_role else None

    def _roles(self, props: BaselineProps) -> None:
        pipeline = props.pipeline_account_id
        self.plan_role = Resource(
            self, "plan-role", "aws_iam_role", name=ACCOUNT_PLAN_ROLE,
            description="fleetform: terraform plan (read-only); assumed by the pipeline's plan role",
            max_session_duration=props.max_session_seconds,
            assume_role_policy=trust_policy(role_arn(pipeline, PIPELINE_PLAN_ROLE), props.break_glass_principal),
            skip_checks=TRUST_SKIP)
        Resource(self, "plan-read-only", "aws_iam_role_policy_attachment", role=self.plan_role.id_ref,
                 policy_arn=READ_ONLY_POLICY)
        Resource(self, "plan-no-data", "aws_iam_role_policy", name="deny-data-reads", role=self.plan_role.id_ref,
                 policy=policy_json([{"Sid": "DenyDataReads", "Effect": "Deny", "Action": list(DATA_READS),
                                      "Resource": "*"}]))
        self.apply_role = Resource(
            self, "apply-role", "aws_iam_role", name=ACCOUNT_APPLY_ROLE,
            description="fleetform: terraform apply; assumed by the pipeline's apply role",
            max_session_duration=props.max_session_seconds,
            assume_role_policy=trust_policy(role_arn(pipeline, PIPELINE_APPLY_ROLE), props.break_glass_principal),
            skip_checks=TRUST_SKIP)
        Resource(self, "apply-admin", "aws_iam_role_policy_attachment", role=self.apply_role.id_ref,
                 policy_arn=ADMIN_POLICY,
                 skip_checks={"CKV_AWS_274": "terraform apply creates whatever the stacks define; only the "
                                             "pipeline's apply role (and break glass) can assume this role"})

    def _account_defaults(self, props: BaselineProps) -> None:
        Resource(self, "s3-public-access-block", "aws_s3_account_public_access_block", account_id=props.account_id,
                 block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
                 restrict_public_buckets=True)
        Resource(self, "password-policy", "aws_iam_account_password_policy",
                 minimum_password_length=14, require_lowercase_characters=True, require_uppercase_characters=True,
                 require_numbers=True, require_symbols=True, allow_users_to_change_password=True,
                 max_password_age=90, password_reuse_prevention=24, hard_expiry=False)
        for region in props.regions:
            Resource(self, f"ebs-encryption-{region}", "aws_ebs_encryption_by_default", region=region, enabled=True)
            Resource(self, f"ebs-snapshot-sharing-{region}", "aws_ebs_snapshot_block_public_access", region=region,
                     state="block-all-sharing")
            Resource(self, f"imds-defaults-{region}", "aws_ec2_instance_metadata_defaults", region=region,
                     http_tokens="required", http_put_response_hop_limit=IMDS_HOP_LIMIT,
                     http_endpoint="enabled", instance_metadata_tags="disabled")

    def _budget(self, props: BaselineProps) -> Resource:
        budget = props.budget
        assert budget is not None
        alerts = [("ACTUAL", budget.threshold_percent), ("FORECASTED", 100)]
        return Resource(
            self, "budget", "aws_budgets_budget", name=f"{props.account_name}-monthly", budget_type="COST",
            limit_amount=str(budget.monthly_usd), limit_unit="USD", time_unit="MONTHLY",
            notification=[{"comparison_operator": "GREATER_THAN", "notification_type": kind, "threshold": percent,
                           "threshold_type": "PERCENTAGE", "subscriber_email_addresses": [budget.alert_email]}
                          for kind, percent in alerts])
