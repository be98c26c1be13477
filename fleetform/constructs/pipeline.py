"""The CodeBuild pipeline: plan on pull request, apply on merge, scheduled drift detection.

Four projects share one KMS key, one artifacts bucket and one log group; each has a role of its own,
trusted by CodeBuild only for that project (``aws:SourceArn``), and runs a buildspec that is inline
in the project (read from ``buildspec/`` of the checkout that synthesizes this stack, the default
branch in the pipeline), never one from a pull request's tree. docs/pipeline.md has the threat model.

- plan (UNTRUSTED: runs the pull request's code): webhook on PULL_REQUEST_CREATED/UPDATED/REOPENED
  against the main branch, every pull request needing a maintainer's approval comment unless a
  maintainer opened it; a batch of shards that plan the affected stacks with role
  ``fleetform-pipeline-plan``: assume the accounts' read-only ``fleetform-plan``, read state objects,
  write its summary under ``plan-summaries/``. No GitHub token, no SNS, no lock or state writes.
- plan-comment (trusted: default branch): started by EventBridge when a plan build ends; verifies
  with ``codebuild:BatchGetBuilds`` that each summary came from a plan build of that pull request's
  head commit, posts the one comment with a token that can only comment, and records the reviewed
  plan under ``reviewed/`` for the apply build.
- apply: webhook on PUSH to ``refs/heads/<branch>``; one build at a time; role
  ``fleetform-pipeline-apply`` assumes the accounts' ``fleetform-apply`` roles, reads and writes
  state and the pipeline locks, and refuses a plan that differs from the reviewed one.
- drift: started by an EventBridge schedule; plans everything with ``fleetform-pipeline-drift``
  (the read-only account roles) and publishes drift to an SNS topic (KMS) that mails
  ``notification_email``; failed apply and drift builds are published there too.

The GitHub tokens live in Secrets Manager (created by hand, never in Terraform state): the source
credential and the apply build read ``github_token_secret``, the comment build
``github_comment_token_secret``.
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
    PIPELINE_COMMENT_ROLE,
    PIPELINE_DRIFT_ROLE,
    PIPELINE_PLAN_BATCH_ROLE,
    PIPELINE_PLAN_ROLE,
    PLAN_SUMMARY_PREFIX,
    REVIEWED_PLAN_PREFIX,
    buildspec_dir,
    role_arn,
)

PR_EVENTS = "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED, PULL_REQUEST_REOPENED"
BUILD_IMAGE = "aws/codebuild/standard:7.0"
COMPUTE_TYPE = "BUILD_GENERAL1_MEDIUM"
LOCK_PREFIX = "fleetform-locks/"
ARTIFACT_DAYS = 90
# Build caches (what the buildspecs' `cache:` paths keep: the Terraform binary and the provider plugins).
# Trusted projects keep theirs in the artifacts bucket under a prefix only their own role may write; the
# UNTRUSTED plan project only on the build host (LOCAL), never where a trusted build would read it.
CACHE_PREFIX = "cache/"
S3_CACHED = ("apply", "drift")
# who may approve (by commenting) a pull request build, and whose own pull requests build at once
PR_APPROVERS = ["GITHUB_MAINTAIN", "GITHUB_ADMIN"]
FINAL_BUILD_STATES = ["SUCCEEDED", "FAILED", "STOPPED", "TIMED_OUT", "FAULT"]
# present in a StartBuild request that overrides the project's buildspec (CodeBuild documents it for
# the Null operator only): with it, anyone who may start the apply build could run any code as its role
BUILDSPEC_OVERRIDE_KEY = "codebuild:source.buildspec"




def _cache(kind: str, artifacts_bucket: str) -> dict[str, Any]:
    if kind in S3_CACHED:
        return {"type": "S3", "location": f"{artifacts_bucket}/{CACHE_PREFIX}{kind}"}
    if kind == "plan":
        return {"type": "LOCAL", "modes": ["LOCAL_CUSTOM_CACHE"]}
    return {"type": "NO_CACHE"}


def buildspec_text(name: str) -> str:
    """The buildspec as the project's inline text: its shell's ``${VAR}`` escaped as ``$${VAR}`` (and ``%{`` as
    ``%%{``), which Terraform turns back into the literal text instead of reading them as its own
    interpolations (``${FLEETFORM_BRANCH}`` would be a reference to a resource type)."""
    return terraform_literal((buildspec_dir() / name).read_text())


def terraform_literal(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")


@dataclass(frozen=True)
class PipelineProps:
    name: str  # prefix of every resource name (the organization's name)
    account_id: str  # the pipeline account
    region: str
    repository: str  # owner/name on GitHub
    branch: str
    drift_schedule: str
    notification_email: str | None
    github_token_secret: str  # Secrets Manager secret name: source credential, apply build
    account_ids: Sequence[str]  # every account whose fleetform roles the pipeline assumes
    state_bucket: str
    state_account_id: str
    state_region: str
    plan_shards: int = 4
    build_timeout_minutes: int = 60
    # accounts the organization stack creates (ids from its state): the apply build's first baseline apply
    # there goes through the role CreateAccount made (docs/organization.md#adding-an-account)
    new_account_ids: Sequence[str] = ()
    github_comment_token_secret: str = "fleetform/github-comment-token"  # a token that can only comment
    trusted_actor_ids: Sequence[str] = ()  # GitHub account ids whose pull requests and pushes build

    def project_arn(self, kind: str) -> str:
        return f"arn:aws:codebuild:{self.region}:{self.account_id}:project/{self.name}-{kind}"

    def rule_arn(self, name: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account_id}:rule/{name}"


def service_trust(service: str, account_id: str, source_arns: Sequence[str]) -> str:
    """``service`` may assume the role only on behalf of these resources of ``account_id``."""
    return policy_json([{
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                      "ArnEquals": {"aws:SourceArn": list(source_arns)}},
    }])


class Pipeline(Construct):
    """Attributes: ``projects`` (by kind), ``plan_project``, ``apply_project``, ``drift_project``,
    ``comment_project``, ``topic``, ``roles`` (by kind), ``operator_policy``."""

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
            access_log_reason="build artifacts and plan summaries only, written and read by the pipeline's own "
                              "roles (each limited to its prefixes); object-level reads are not recorded",
        ))
        self.logs = LogGroup(self, "logs", LogGroupProps(name=f"/fleetform/{props.name}/pipeline",
                                                         kms_key_arn=self.key.arn))
        self.secret = DataSource(self, "github-token", "aws_secretsmanager_secret", name=props.github_token_secret)
        self.comment_secret = DataSource(self, "github-comment-token", "aws_secretsmanager_secret",
                                         name=props.github_comment_token_secret)
        self.topic = Resource(self, "topic", "aws_sns_topic", name=f"{props.name}-pipeline",
                              kms_master_key_id=self.key.arn)
        if props.notification_email:
            Resource(self, "topic-email", "aws_sns_topic_subscription", topic_arn=self.topic.arn,
                     protocol="email", endpoint=props.notification_email)
        Resource(self, "source-credential", "aws_codebuild_source_credential", auth_type="SECRETS_MANAGER",
                 server_type="GITHUB", token=self.secret.attr("arn"))

        plan_role = self._role("plan-role", PIPELINE_PLAN_ROLE, "UNTRUSTED terraform plan of pull requests",
                               ["plan"], self._plan_statements(), ("plan/",))
        batch_role = self._role("plan-batch-role", PIPELINE_PLAN_BATCH_ROLE, "starts the plan shards of a batch",
                                ["plan"], self._batch_statements(), ())
        comment_role = self._role("comment-role", PIPELINE_COMMENT_ROLE, "pull request plan comment",
                                  ["plan-comment"], self._comment_statements(), ("plan-comment/",),
                                  secret=self.comment_secret)
        apply_role = self._role("apply-role", PIPELINE_APPLY_ROLE, "terraform apply on merge",
                                ["apply"], [*self._apply_statements(), *self._cache_statements("apply")],
                                ("apply/",), secret=self.secret)
        drift_role = self._role("drift-role", PIPELINE_DRIFT_ROLE, "scheduled drift detection",
                                ["drift"], [*self._drift_statements(), *self._cache_statements("drift")],
                                ("drift/",))
        self.roles = {"plan": plan_role, "plan-batch": batch_role, "plan-comment": comment_role,
                      "apply": apply_role, "drift": drift_role}
        self.plan_project = self._project(
            "plan", plan_role, "plan.yml", batch_role=batch_role,
            description="UNTRUSTED: fleetform plan of the affected stacks of a pull request (no secrets)")
        self.comment_project = self._project(
            "plan-comment", comment_role, "plan-comment.yml", concurrent=1, source_version=props.branch,
            description=f"fleetform plan comment: code of {props.branch}, verifies and posts the plan shards' "
                        "summaries", secrets={"GITHUB_TOKEN": props.github_comment_token_secret})
        self.apply_project = self._project(
            "apply", apply_role, "apply.yml", concurrent=1,
            description=f"fleetform apply of the merged change, on push to {props.branch}",
            secrets={"GITHUB_TOKEN": props.github_token_secret})
        self.drift_project = self._project(
            "drift", drift_role, "drift.yml", concurrent=1, source_version=props.branch,
            description="fleetform drift: plans every stack on a schedule",
            extra={"FLEETFORM_TOPIC_ARN": self.topic.arn})
        self.projects = {"plan": self.plan_project, "plan-comment": self.comment_project,
                         "apply": self.apply_project, "drift": self.drift_project}
        self.plan_webhook = Resource(
            self, "plan-webhook", "aws_codebuild_webhook", project_name=self.plan_project.attr("name"),
            build_type="BUILD_BATCH",
            pull_request_build_policy=[{"requires_comment_approval": "ALL_PULL_REQUESTS",
                                        "approver_roles": PR_APPROVERS}],
            filter_group=[{"filter": [
                {"type": "EVENT", "pattern": PR_EVENTS},
                {"type": "BASE_REF", "pattern": f"^refs/heads/{props.branch}$"},
                *self._actor_filter(),
            ]}])
        self.apply_webhook = Resource(
            self, "apply-webhook", "aws_codebuild_webhook", project_name=self.apply_project.attr("name"),
            build_type="BUILD",
            filter_group=[{"filter": [
                {"type": "EVENT", "pattern": "PUSH"},
                {"type": "HEAD_REF", "pattern": f"^refs/heads/{props.branch}$"},
                *self._actor_filter(),
            ]}])
        self._events()
        self._failure_notifications()
        self.operator_policy = self._operator_policy()

    def _actor_filter(self) -> list[dict[str, str]]:
        ids = self.props.trusted_actor_ids
        return [{"type": "ACTOR_ACCOUNT_ID", "pattern": f"^({'|'.join(ids)})$"}] if ids else []

    # ------------------------------------------------------------------ IAM

    def _role(self, id: str, name: str, purpose: str, projects: Sequence[str],
              statements: list[Mapping[str, Any]], artifact_prefixes: Sequence[str],
              secret: DataSource | None = None) -> Resource:
        p = self.props
        role = Resource(self, id, "aws_iam_role", name=name, description=f"fleetform pipeline: {purpose}",
                        assume_role_policy=service_trust("codebuild.amazonaws.com", p.account_id,
                                                         [p.project_arn(k) for k in projects]),
                        max_session_duration=3600)
        Resource(self, f"{id}-policy", "aws_iam_role_policy", name=name, role=role.attr("name"),
                 policy=policy_json([*statements, *self._build_statements(artifact_prefixes, secret)]))
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

    def _read_state(self, account_role: str) -> list[Mapping[str, Any]]:
        """Assume ``account_role`` everywhere and read state, never write it nor a lock (plans run with
        -lock=false)."""
        return [
            {"Sid": "AssumeAccountRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": sorted(role_arn(a, account_role) for a in set(self.props.account_ids))},
            {"Sid": "ReadState", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": self._state_arn("/*/terraform.tfstate")},
            {"Sid": "ListState", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": self._state_arn()},
            self._state_key_statement(["kms:Decrypt"]),
        ]

    def _plan_statements(self) -> list[Mapping[str, Any]]:
        # write-only on the summaries: a pull request's build cannot read (nor learn the build ids in)
        # another pull request's summaries; the comment build checks who wrote each one
        return [*self._read_state(ACCOUNT_PLAN_ROLE),
                {"Sid": "WritePlanSummaries", "Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": f"{self.artifacts.arn}/{PLAN_SUMMARY_PREFIX}*"}]

    def _drift_statements(self) -> list[Mapping[str, Any]]:
        return [*self._read_state(ACCOUNT_PLAN_ROLE),
                {"Sid": "NotifyDrift", "Effect": "Allow", "Action": "sns:Publish", "Resource": self.topic.arn}]

    def _batch_statements(self) -> list[Mapping[str, Any]]:
        return [{"Sid": "BatchBuilds", "Effect": "Allow",
                 "Action": ["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:RetryBuild"],
                 "Resource": self.props.project_arn("plan")}]

    def _comment_statements(self) -> list[Mapping[str, Any]]:
        return [
            {"Sid": "VerifyPlanBuilds", "Effect": "Allow", "Action": "codebuild:BatchGetBuilds",
             "Resource": self.props.project_arn("plan")},
            {"Sid": "ReadPlanSummaries", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{self.artifacts.arn}/{PLAN_SUMMARY_PREFIX}*"},
            {"Sid": "ListPlanSummaries", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": self.artifacts.arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{PLAN_SUMMARY_PREFIX}*"]}}},
            {"Sid": "RecordReviewedPlans", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": f"{self.artifacts.arn}/{REVIEWED_PLAN_PREFIX}*"},
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
            {"Sid": "ReadReviewedPlans", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{self.artifacts.arn}/{REVIEWED_PLAN_PREFIX}*"},
        ]

    def _cache_statements(self, kind: str) -> list[Mapping[str, Any]]:
        """Read and write of the project's own S3 build cache (nothing another project's build wrote)."""
        return [{"Sid": "BuildCache", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                 "Resource": f"{self.artifacts.arn}/{CACHE_PREFIX}{kind}/*"}]

    def _build_statements(self, artifact_prefixes: Sequence[str], secret: DataSource | None) -> list[Mapping[str, Any]]:
        """What a build needs: its logs, its artifacts (only under its prefixes), the key, its token (if any)."""
        statements: list[Mapping[str, Any]] = [
            {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [self.logs.arn, f"{self.logs.arn}:*"]},
            {"Sid": "PipelineKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
             "Resource": self.key.arn},
        ]
        if artifact_prefixes:
            statements += [
                {"Sid": "ArtifactsBucket", "Effect": "Allow", "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"],
                 "Resource": self.artifacts.arn},
                {"Sid": "Artifacts", "Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": [f"{self.artifacts.arn}/{prefix}*" for prefix in artifact_prefixes]},
            ]
        if secret is not None:
            statements.append({"Sid": "GitHubToken", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                               "Resource": secret.attr("arn")})
        return statements

    def _operator_policy(self) -> Resource:
        """For the people who start builds by hand: StartBuild/RetryBuild as defined, never with a buildspec
        override (other code run with the project's role)."""
        p = self.props
        arns = [p.project_arn(kind) for kind in self.projects]
        return Resource(self, "operator-policy", "aws_iam_policy", name=f"{p.name}-pipeline-operator",
                        description="start and watch fleetform pipeline builds, without overrides",
                        policy=policy_json([
                            {"Sid": "StartBuilds", "Effect": "Allow", "Resource": arns,
                             "Action": ["codebuild:StartBuild", "codebuild:RetryBuild", "codebuild:StopBuild",
                                        "codebuild:BatchGetBuilds", "codebuild:ListBuildsForProject"]},
                            {"Sid": "DenyBuildspecOverride", "Effect": "Deny", "Resource": arns,
                             "Action": ["codebuild:StartBuild", "codebuild:StartBuildBatch"],
                             "Condition": {"Null": {BUILDSPEC_OVERRIDE_KEY: "false"}}},
                        ]))

    # ------------------------------------------------------------------ CodeBuild

    def _project(self, kind: str, role: Resource, buildspec: str, description: str,
                 batch_role: Resource | None = None, concurrent: int | None = None, source_version: str | None = None,
                 secrets: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> Resource:
        p = self.props
        variables = [
            {"name": "FLEETFORM_BRANCH", "value": p.branch, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_REPOSITORY", "value": p.repository, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_ARTIFACTS_BUCKET", "value": self.artifacts.name, "type": "PLAINTEXT"},
            {"name": "FLEETFORM_PLAN_PROJECT", "value": f"{p.name}-plan", "type": "PLAINTEXT"},
            *({"name": k, "value": v, "type": "PLAINTEXT"} for k, v in (extra or {}).items()),
            *({"name": k, "value": v, "type": "SECRETS_MANAGER"} for k, v in (secrets or {}).items()),
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
            source_version=source_version,
            source=[{"type": "GITHUB", "location": f"https://github.com/{p.repository}.git",
                     "buildspec": buildspec_text(buildspec), "git_clone_depth": 0, "report_build_status": True}],
            artifacts=[{"type": "S3", "location": self.artifacts.name, "path": kind, "packaging": "ZIP",
                        "namespace_type": "BUILD_ID", "encryption_disabled": False}],
            environment=[{"compute_type": COMPUTE_TYPE, "image": BUILD_IMAGE, "type": "LINUX_CONTAINER",
                          "image_pull_credentials_type": "CODEBUILD", "privileged_mode": False,
                          "environment_variable": variables}],
            cache=[_cache(kind, self.artifacts.name)],
            logs_config=[{"cloudwatch_logs": [{"status": "ENABLED", "group_name": self.logs.name,
                                               "stream_name": kind}],
                          "s3_logs": [{"status": "DISABLED", "encryption_disabled": False}]}],
            build_batch_config=[{
                "service_role": batch_role.arn, "combine_artifacts": True, "timeout_in_mins": p.build_timeout_minutes,
                "restrictions": [{"maximum_builds_allowed": p.plan_shards, "compute_types_allowed": [COMPUTE_TYPE]}],
            }] if batch_role is not None else None,
        )

    # ------------------------------------------------------------------ schedule, comment trigger, notifications

    def _events(self) -> None:
        p = self.props
        drift_rule, comment_rule = f"{p.name}-drift", f"{p.name}-plan-finished"
        events_role = Resource(self, "schedule-role", "aws_iam_role", name=f"{p.name}-pipeline-drift-schedule",
                               description="EventBridge starts the fleetform drift and plan comment builds",
                               assume_role_policy=service_trust("events.amazonaws.com", p.account_id,
                                                                [p.rule_arn(drift_rule), p.rule_arn(comment_rule)]))
        Resource(self, "schedule-role-policy", "aws_iam_role_policy", name="start-drift-build",
                 role=events_role.attr("name"),
                 policy=policy_json([{"Effect": "Allow", "Action": "codebuild:StartBuild",
                                      "Resource": [self.drift_project.arn, self.comment_project.arn]}]))
        self.schedule = Resource(self, "drift-schedule", "aws_cloudwatch_event_rule", name=drift_rule,
                                 description="fleetform drift detection", schedule_expression=p.drift_schedule)
        Resource(self, "drift-schedule-target", "aws_cloudwatch_event_target", rule=self.schedule.attr("name"),
                 target_id="drift-build", arn=self.drift_project.arn, role_arn=events_role.arn)
        # every plan build that ends starts one comment build (queued one at a time): the last one sees
        # every shard; EventBridge refuses aws.* events from anyone but the service, so a pull request's
        # code cannot start it
        self.comment_trigger = Resource(
            self, "plan-finished", "aws_cloudwatch_event_rule", name=comment_rule,
            description="a fleetform plan build ended: post its pull request's plan comment",
            event_pattern=policy_json({"source": ["aws.codebuild"], "detail-type": ["CodeBuild Build State Change"],
                                       "detail": {"build-status": FINAL_BUILD_STATES,
                                                  "project-name": [f"{p.name}-plan"]}}))
        Resource(self, "plan-finished-target", "aws_cloudwatch_event_target", rule=self.comment_trigger.attr("name"),
                 target_id="plan-comment-build", arn=self.comment_project.arn, role_arn=events_role.arn,
                 input_transformer=[{
                     "input_paths": {"build": "$.detail.build-id"},
                     "input_template": '{"environmentVariablesOverride": [{"name": "FLEETFORM_PLAN_BUILD", '
                                       '"value": <build>, "type": "PLAINTEXT"}]}'}])

    def _failure_notifications(self) -> None:
        p = self.props
        rule = Resource(self, "failed-builds", "aws_cloudwatch_event_rule", name=f"{p.name}-pipeline-failed",
                        description="failed fleetform apply, drift and comment builds",
                        event_pattern=policy_json({
                            "source": ["aws.codebuild"],
                            "detail-type": ["CodeBuild Build State Change"],
                            "detail": {"build-status": ["FAILED", "TIMED_OUT"],
                                       "project-name": [f"{p.name}-apply", f"{p.name}-drift",
                                                        f"{p.name}-plan-comment"]},
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
