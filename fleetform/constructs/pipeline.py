"""The CodeBuild pipeline: plan on pull request, apply on merge, scheduled drift detection.

Three projects share one GitHub source, one KMS key, one artifacts bucket and one log group:

- plan: webhook on PULL_REQUEST_CREATED/UPDATED/REOPENED against the main branch; a batch build
  whose build-graph (buildspec/plan.yml) plans shards of the affected stacks in parallel, each
  writing its summary under ``plan-summaries/`` of the artifacts bucket, and a last build combines
  them into one pull request comment; role ``fleetform-pipeline-plan`` may only assume the
  accounts' ``fleetform-plan`` roles, read state, write Terraform's lock files, and write the
  artifacts bucket only under its builds' prefixes (``plan/``, ``drift/``, ``plan-summaries/``).
- apply: webhook on PUSH to ``refs/heads/<branch>``; one build at a time; role
  ``fleetform-pipeline-apply`` assumes the accounts' ``fleetform-apply`` roles, reads and writes
  state and the pipeline locks.
- drift: started by an EventBridge schedule; plans everything with the plan role and publishes
  drift to an SNS topic (KMS) that mails ``notification_email``; failed apply and drift builds
  are published there too.

The GitHub token lives in Secrets Manager (created by hand, never in Terraform state): the
source credential and the builds' ``GITHUB_TOKEN`` read it from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import Construct, DataSource, Resource, policy_json
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    ORGANIZATION_ACCESS_ROLE,
    PIPELINE_APPLY_ROLE,
    PIPELINE_PLAN_ROLE,
    PLAN_SUMMARY_PREFIX,
    role_arn,
)

PR_EVENTS = "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED, PULL_REQUEST_REOPENED"
BUILD_IMAGE = "aws/codebuild/standard:7.0"
COMPUTE_TYPE = "BUILD_GENERAL1_MEDIUM"
LOCK_PREFIX = "fleetform-locks/"
ARTIFACT_DAYS = 90


@dataclass(frozen=True)
class PipelineProps:
    name: str  # prefix of every resource name (the organization's name)
    account_id: str  # the pipeline account
    region: str
    repository: str  # owner/name on GitHub
    branch: str
    drift_schedule: str
    notification_email: str | None
    github_token_secret: str  # Secrets Manager secret name
    account_ids: Sequence[str]  # every account whose fleetform roles the pipeline assumes
    state_bucket: str
    state_account_id: str
    state_region: str
    plan_shards: int = 4
    build_timeout_minutes: int = 60
    # accounts the organization stack creates (ids from its state): the apply build's first baseline apply
    # there goes through the role CreateAccount made (docs/organization.md#adding-an-account)
    new_account_ids: Sequence[str] = ()


def codebuild_trust(account_id: str) -> str:
    return policy_json([{
        "Effect": "Allow",
        "Principal": {"Service": "codebuild.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    }])


class Pipeline(Construct):
    """Attributes: ``plan_project``, ``apply_project``, ``drift_project``, ``topic``, ``roles``."""

    def __init__(self, scope: Construct, id: str, props: PipelineProps) -> None:
        super().__init__(scope, id)
        self.props = props
        region = props.region
        self.key = KmsKey(self, "key", KmsKeyProps(
            alias=f"{props.name}-pipeline", description="fleetform pipeline: artifacts, logs, notifications",
            account_id=props.account_id,
            service_principals=(f"logs.{region}.amazonaws.com", "sns.amazonaws.com", "events.amazonaws.com",
                                "codebuild.amazonaws.com"),
        ))
        self.artifacts = SecureBucket(self, "artifacts", BucketProps(
            name=f"{props.name}-pipeline-artifacts-{props.account_id}",
            kms_key_arn=self.key.arn,
            expiration_days=ARTIFACT_DAYS,
            noncurrent_days=30,
            force_destroy=True,
            access_log_reason="build artifacts only (plans and reports); reads are recorded by CloudTrail",
        ))
        self.logs = LogGroup(self, "logs", LogGroupProps(name=f"/fleetform/{props.name}/pipeline",
                                                         kms_key_arn=self.key.arn))
        self.secret = DataSource(self, "github-token", "aws_secretsmanager_secret", name=props.github_token_secret)
        self.topic = Resource(self, "topic", "aws_sns_topic", name=f"{props.name}-pipeline",
                              kms_master_key_id=self.key.arn)
        if props.notification_email:
            Resource(self, "topic-email", "aws_sns_topic_subscription", topic_arn=self.topic.arn,
                     protocol="email", endpoint=props.notification_email)
        Resource(self, "source-credential", "aws_codebuild_source_credential", auth_type="SECRETS_MANAGER",
                 server_type="GITHUB", token=self.secret.attr("arn"))

        # each role writes the artifacts bucket only under its projects' paths (and the plan shards' summaries)
        plan_role = self._role("plan-role", PIPELINE_PLAN_ROLE, "terraform plan on pull requests and drift",
                               self._plan_statements(), ("plan/", "drift/", PLAN_SUMMARY_PREFIX))
        apply_role = self._role("apply-role", PIPELINE_APPLY_ROLE, "terraform apply on merge",
                                self._apply_statements(), ("apply/",))
        self.roles = {"plan": plan_role, "apply": apply_role}
        self.plan_project = self._project("plan", plan_role, "buildspec/plan.yml", batch=True,
                                          description="fleetform plan of the affected stacks, on pull requests")
        self.apply_project = self._project("apply", apply_role, "buildspec/apply.yml", concurrent=1,
                                           description="fleetform apply of the merged change, on push to "
                                                       f"{props.branch}")
        self.drift_project = self._project("drift", plan_role, "buildspec/drift.yml", concurrent=1,
                                           description="fleetform drift: plans every stack on a schedule")
        self._allow_builds(plan_role, "plan", PIPELINE_PLAN_ROLE, batch=self.plan_project)
        self._allow_builds(apply_role, "apply", PIPELINE_APPLY_ROLE)
        self.plan_webhook = Resource(self, "plan-webhook", "aws_codebuild_webhook",
                                     project_name=self.plan_project.attr("name"), build_type="BUILD_BATCH",
                                     filter_group=[{"filter": [
                                         {"type": "EVENT", "pattern": PR_EVENTS},
                                         {"type": "BASE_REF", "pattern": f"^refs/heads/{props.branch}$"},
                                     ]}])
        self.apply_webhook = Resource(self, "apply-webhook", "aws_codebuild_webhook",
                                      project_name=self.apply_project.attr("name"), build_type="BUILD",
                                      filter_group=[{"filter": [
                                          {"type": "EVENT", "pattern": "PUSH"},
                                          {"type": "HEAD_REF", "pattern": f"^refs/heads/{props.branch}$"},
                                      ]}])
        self._schedule()
        self._failure_notifications()

    # ------------------------------------------------------------------ IAM

    def _role(self, id: str, name: str, purpose: str, statements: list[Mapping[str, Any]],
              artifact_prefixes: Sequence[str]) -> Resource:
        role = Resource(self, id, "aws_iam_role", name=name, description=f"fleetform pipeline: {purpose}",
                        assume_role_policy=codebuild_trust(self.props.account_id), max_session_duration=3600)
        Resource(self, f"{id}-policy", "aws_iam_role_policy", name=name, role=role.attr("name"),
                 policy=policy_json([*statements, *self._build_statements(artifact_prefixes)]))
        return role

    def _state_arn(self, path: str = "") -> str:
        return f"arn:aws:s3:::{self.props.state_bucket}{path}"

    def _state_key_statement(self, actions: list[str]) -> dict[str, Any]:
        p = self.props
        return {
            "Sid": "StateKey", "Effect": "Allow", "Action": actions,
            "Resource": f"arn:aws:kms:{p.state_region}:{p.state_account_id}:key/*",
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{p.state_region}.amazonaws.com"}},
        }

    def _plan_statements(self) -> list[Mapping[str, Any]]:
        return [
            {"Sid": "AssumePlanRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": sorted(role_arn(a, ACCOUNT_PLAN_ROLE) for a in set(self.props.account_ids))},
            {"Sid": "ReadState", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
             "Resource": self._state_arn("/*")},
            {"Sid": "ListState", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": self._state_arn()},
            {"Sid": "TerraformLockFiles", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"],
             "Resource": self._state_arn("/*.tflock")},
            self._state_key_statement(["kms:Decrypt", "kms:GenerateDataKey"]),
            {"Sid": "NotifyDrift", "Effect": "Allow", "Action": "sns:Publish", "Resource": self.topic.arn},
            # the comment build lists which shards wrote a summary (writes: the Artifacts statement)
            {"Sid": "ListPlanSummaries", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": self.artifacts.arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{PLAN_SUMMARY_PREFIX}*"]}}},
        ]

    def _apply_statements(self) -> list[Mapping[str, Any]]:
        new = sorted(role_arn(a, ORGANIZATION_ACCESS_ROLE) for a in set(self.props.new_account_ids))
        first_apply = [{"Sid": "FirstApplyOfNewAccounts", "Effect": "Allow", "Action": "sts:AssumeRole",
                        "Resource": new}] if new else []
        return [
            *first_apply,
            {"Sid": "AssumeApplyRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": sorted(role_arn(a, ACCOUNT_APPLY_ROLE) for a in set(self.props.account_ids))},
            {"Sid": "ReadWriteState", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"],
             "Resource": [self._state_arn("/*/terraform.tfstate"), self._state_arn("/*.tflock"),
                          self._state_arn(f"/{LOCK_PREFIX}*")]},
            {"Sid": "ListState", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": self._state_arn()},
            self._state_key_statement(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]),
        ]

    def _build_statements(self, artifact_prefixes: Sequence[str]) -> list[Mapping[str, Any]]:
        """What every build needs: its logs, its artifacts (only under its prefixes), the key, the GitHub token."""
        return [
            {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [self.logs.arn, f"{self.logs.arn}:*"]},
            {"Sid": "ArtifactsBucket", "Effect": "Allow", "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"],
             "Resource": self.artifacts.arn},
            {"Sid": "Artifacts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": [f"{self.artifacts.arn}/{prefix}*" for prefix in artifact_prefixes]},
            {"Sid": "PipelineKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
             "Resource": self.key.arn},
            {"Sid": "GitHubToken", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": self.secret.attr("arn")},
        ]

    def _allow_builds(self, role: Resource, id: str, name: str, batch: Resource | None = None) -> None:
        """Batch builds start their child builds with the project's role; reports go to CodeBuild."""
        statements: list[Mapping[str, Any]] = [
            {"Sid": "Reports", "Effect": "Allow",
             "Action": ["codebuild:CreateReportGroup", "codebuild:CreateReport", "codebuild:UpdateReport",
                        "codebuild:BatchPutTestCases"],
             "Resource": f"arn:aws:codebuild:{self.props.region}:{self.props.account_id}:report-group/"
                         f"{self.props.name}-*"},
        ]
        if batch is not None:
            statements.append({"Sid": "BatchBuilds", "Effect": "Allow",
                               "Action": ["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:RetryBuild"],
                               "Resource": batch.arn})
        Resource(self, f"{id}-builds-policy", "aws_iam_role_policy", name=f"{name}-builds",
                 role=role.attr("name"), policy=policy_json(statements))

    # ------------------------------------------------------------------ CodeBuild

    def _project(self, kind: str, role: Resource, buildspec: str, description: str, batch: bool = False,
                 concurrent: int | None = None) -> Resource:
        p = self.props
        variables = [
            {"name": "FLEETFORM_BRANCH", "value": p.branch, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_REPOSITORY", "value": p.repository, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_TOPIC_ARN", "value": self.topic.arn, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_ARTIFACTS_BUCKET", "value": self.artifacts.name, "type": "PLAINTEXT"},
            {"name": "GITHUB_TOKEN", "value": p.github_token_secret, "type": "SECRETS_MANAGER"},
        ]
        return Resource(
            self, f"{kind}-project", "aws_codebuild_project",
            name=f"{p.name}-{kind}",
            description=description,
            service_role=role.arn,
            build_timeout=p.build_timeout_minutes,
            queued_timeout=480,
            concurrent_build_limit=concurrent,
            encryption_key=self.key.arn,
            source=[{"type": "GITHUB", "location": f"https://github.com/{p.repository}.git",
                     "buildspec": buildspec, "git_clone_depth": 0, "report_build_status": True}],
            artifacts=[{"type": "S3", "location": self.artifacts.name, "path": kind, "packaging": "ZIP",
                        "namespace_type": "BUILD_ID", "encryption_disabled": False}],
            environment=[{"compute_type": COMPUTE_TYPE, "image": BUILD_IMAGE, "type": "LINUX_CONTAINER",
                          "image_pull_credentials_type": "CODEBUILD", "privileged_mode": False,
                          "environment_variable": variables}],
            logs_config=[{"cloudwatch_logs": [{"status": "ENABLED", "group_name": self.logs.name,
                                               "stream_name": kind}],
                          "s3_logs": [{"status": "DISABLED", "encryption_disabled": False}]}],
            build_batch_config=[{
                "service_role": role.arn, "combine_artifacts": True, "timeout_in_mins": p.build_timeout_minutes,
                "restrictions": [{"maximum_builds_allowed": p.plan_shards + 1,
                                  "compute_types_allowed": [COMPUTE_TYPE]}],
            }] if batch else None,
        )

    # ------------------------------------------------------------------ schedule and notifications

    def _schedule(self) -> None:
        p = self.props
        events_role = Resource(self, "schedule-role", "aws_iam_role", name=f"{p.name}-pipeline-drift-schedule",
                               description="EventBridge starts the fleetform drift build",
                               assume_role_policy=policy_json([{
                                   "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                   "Action": "sts:AssumeRole",
                                   "Condition": {"StringEquals": {"aws:SourceAccount": p.account_id}}}]))
        Resource(self, "schedule-role-policy", "aws_iam_role_policy", name="start-drift-build",
                 role=events_role.attr("name"),
                 policy=policy_json([{"Effect": "Allow", "Action": "codebuild:StartBuild",
                                      "Resource": self.drift_project.arn}]))
        self.schedule = Resource(self, "drift-schedule", "aws_cloudwatch_event_rule", name=f"{p.name}-drift",
                                 description="fleetform drift detection", schedule_expression=p.drift_schedule)
        Resource(self, "drift-schedule-target", "aws_cloudwatch_event_target", rule=self.schedule.attr("name"),
                 target_id="drift-build", arn=self.drift_project.arn, role_arn=events_role.arn)

    def _failure_notifications(self) -> None:
        p = self.props
        rule = Resource(self, "failed-builds", "aws_cloudwatch_event_rule", name=f"{p.name}-pipeline-failed",
                        description="failed fleetform apply and drift builds",
                        event_pattern=policy_json({
                            "source": ["aws.codebuild"],
                            "detail-type": ["CodeBuild Build State Change"],
                            "detail": {"build-status": ["FAILED", "TIMED_OUT"],
                                       "project-name": [f"{p.name}-apply", f"{p.name}-drift"]},
                        }))
        Resource(self, "failed-builds-target", "aws_cloudwatch_event_target", rule=rule.attr("name"),
                 target_id="notify", arn=self.topic.arn)
        Resource(self, "topic-policy", "aws_sns_topic_policy", arn=self.topic.arn, policy=policy_json([
            {"Sid": "OwnerManages", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{p.account_id}:root"},
             "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes"],
             "Resource": self.topic.arn},
            {"Sid": "EventBridgePublishes", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
             "Action": "sns:Publish", "Resource": self.topic.arn,
             "Condition": {"ArnEquals": {"aws:SourceArn": rule.arn}}},
        ]))

