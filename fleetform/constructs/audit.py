"""Organization-wide audit: the organization CloudTrail into the log-archive account, GuardDuty for
every account with log-archive as delegated administrator, IAM Access Analyzer, and the log-archive
side of AWS Config (its bucket, key and organization aggregator; ``constructs.aws_config``).

Resources live in two accounts: the trail, the GuardDuty and Config delegations and the analyzers
in the management account (the scope's default provider), the trail bucket, its key, the
access-log bucket, the GuardDuty administrator's detector and the AWS Config bucket, key and
aggregator in the log-archive account (``log_archive``, an aliased provider of the same stack).
One stack keeps the order right in one apply: the bucket policy before the trail, the delegations
before the organization-wide GuardDuty settings and the Config aggregator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.constructs.aws_config import ConfigArchive, ConfigArchiveProps, config_delegations
from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.engine import AwsProvider, Construct, Dependable, Resource, StackDocument, policy_json

TRAIL_LOG_TRANSITION_DAYS = 90  # then STANDARD_IA: CloudTrail logs are rarely read after a quarter
ACCESS_LOG_EXPIRATION_DAYS = 730
GUARDDUTY_FEATURES = ("S3_DATA_EVENTS", "EKS_AUDIT_LOGS", "EBS_MALWARE_PROTECTION", "RUNTIME_MONITORING")
RUNTIME_ADDONS = ("EKS_ADDON_MANAGEMENT",)


@dataclass(frozen=True)
class AuditProps:
    organization_name: str
    management_account_id: str
    log_archive_account_id: str
    home_region: str
    regions: Sequence[str]  # GuardDuty and Access Analyzer run in each
    organization_id: str  # reference to the organization's id (the trail writes under AWSLogs/<org id>/)
    data_event_buckets: Sequence[str] = ()  # S3 buckets whose object access the trail records (the state)
    config: ConfigArchiveProps | None = None  # AWS Config's bucket and aggregator; None: no AWS Config

    @property
    def trail_name(self) -> str:
        return f"{self.organization_name}-organization"

    @property
    def trail_arn(self) -> str:
        return f"arn:aws:cloudtrail:{self.home_region}:{self.management_account_id}:trail/{self.trail_name}"

    @property
    def trail_bucket(self) -> str:
        return f"{self.organization_name}-cloudtrail-{self.log_archive_account_id}"

    @property
    def access_log_bucket(self) -> str:
        return f"{self.organization_name}-s3-access-logs-{self.log_archive_account_id}"


class OrganizationAudit(Construct):
    """Attributes: ``trail``, ``trail_bucket``, ``trail_key``, ``access_logs``, ``detectors`` (region -> resource
    in log-archive), ``analyzers`` (region -> resource), ``config`` (a ConfigArchive, or None)."""

    def __init__(self, scope: Construct, id: str, props: AuditProps, *, log_archive: AwsProvider,
                 organization: Dependable) -> None:
        super().__init__(scope, id)
        archive = Construct(self, "log-archive")  # everything below uses the log-archive provider
        self.access_logs, self.access_logs_policy = _access_log_bucket(archive, props)
        self.trail_key = KmsKey(archive, "trail-key", KmsKeyProps(
            alias=f"{props.organization_name}-cloudtrail", description="organization CloudTrail log files",
            account_id=props.log_archive_account_id, extra_statements=_trail_key_statements(props)))
        self.trail_bucket = SecureBucket(archive, "trail-bucket", BucketProps(
            name=props.trail_bucket,
            kms_key_arn=self.trail_key.arn,
            policy_statements=_trail_bucket_statements(props),
            noncurrent_days=365,
            transition_days=TRAIL_LOG_TRANSITION_DAYS,
            access_log_bucket=self.access_logs.id_ref,  # a reference: the access-log bucket comes first
            access_log_ready=[self.access_logs_policy],
            prevent_destroy=True,
        ))
        self.config: ConfigArchive | None = None
        if props.config is not None:
            delegations = config_delegations(self, props.log_archive_account_id, organization)  # management
            self.config = ConfigArchive(archive, "config", props.config, access_log_bucket=self.access_logs.id_ref,
                                        access_log_ready=[self.access_logs_policy], delegations=delegations)
        self.detectors: dict[str, Resource] = {}
        for region in props.regions:
            self.detectors[region] = Resource(archive, f"guardduty-{region}", "aws_guardduty_detector",
                                              region=region, enable=True,
                                              finding_publishing_frequency="FIFTEEN_MINUTES")
        use_provider(archive, log_archive)

        bucket_policy = self.trail_bucket.policy
        self.trail = Resource(
            self, "trail", "aws_cloudtrail",
            name=props.trail_name,
            s3_bucket_name=props.trail_bucket,
            kms_key_id=self.trail_key.arn,
            is_organization_trail=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            event_selector=[{
                "read_write_type": "All",
                "include_management_events": True,
                "data_resource": [{"type": "AWS::S3::Object",
                                   "values": [f"arn:aws:s3:::{b}/" for b in props.data_event_buckets]}],
            }] if props.data_event_buckets else None,
            depends_on=[organization, bucket_policy],  # type: ignore[list-item]
            lifecycle={"prevent_destroy": True},
            skip_checks={
                "CKV_AWS_252": "no consumer of per-log-file notifications; GuardDuty analyses the events",
                "CKV2_AWS_10": "the organization trail is kept in the log-archive account's S3 bucket; "
                               "a CloudWatch Logs copy in the management account is opt-in",
            },
        )
        self._guardduty(props, organization, log_archive)
        self.analyzers = {
            region: Resource(self, f"access-analyzer-{region}", "aws_accessanalyzer_analyzer", region=region,
                             analyzer_name=f"{props.organization_name}-organization", type="ORGANIZATION",
                             depends_on=[organization])
            for region in props.regions
        }

    def _guardduty(self, props: AuditProps, organization: Dependable,
                   log_archive: AwsProvider) -> None:
        for region in props.regions:
            detector = self.detectors[region]
            Resource(self, f"guardduty-management-{region}", "aws_guardduty_detector", region=region, enable=True,
                     finding_publishing_frequency="FIFTEEN_MINUTES",
                     skip_checks={"CKV2_AWS_3": "the management account is a member; the organization "
                                                "configuration belongs to the delegated administrator "
                                                "(log-archive), configured in this stack"})
            admin = Resource(self, f"guardduty-admin-{region}", "aws_guardduty_organization_admin_account",
                             region=region, admin_account_id=props.log_archive_account_id,
                             depends_on=[organization, detector])
            org_config = Resource(
                self, f"guardduty-organization-{region}", "aws_guardduty_organization_configuration",
                region=region, detector_id=detector.id_ref, auto_enable_organization_members="ALL",
                depends_on=[admin], provider=log_archive)
            for feature in GUARDDUTY_FEATURES:
                extra = [{"name": a, "auto_enable": "ALL"} for a in RUNTIME_ADDONS] \
                    if feature == "RUNTIME_MONITORING" else None
                Resource(self, f"guardduty-{feature.lower()}-{region}",
                         "aws_guardduty_organization_configuration_feature",
                         region=region, detector_id=detector.id_ref, name=feature, auto_enable="ALL",
                         additional_configuration=extra, depends_on=[org_config], provider=log_archive)


def use_provider(scope: Construct, provider: AwsProvider) -> None:
    """Put every resource and data source below ``scope`` on ``provider`` (e.g. another account's)."""
    for block in StackDocument.of(scope).under(scope):
        block.provider = provider


def _trail_key_statements(props: AuditProps) -> list[dict]:
    trail_context = f"arn:aws:cloudtrail:*:{props.management_account_id}:trail/*"
    return [
        {"Sid": "CloudTrailEncryptsLogs", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "kms:GenerateDataKey*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceArn": props.trail_arn},
                       "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": trail_context}}},
        {"Sid": "CloudTrailDescribesKey", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "kms:DescribeKey", "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceArn": props.trail_arn}}},
    ]


def _trail_bucket_statements(props: AuditProps) -> list[dict]:
    bucket = f"arn:aws:s3:::{props.trail_bucket}"
    return [
        {"Sid": "CloudTrailChecksAcl", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": bucket,
         "Condition": {"StringEquals": {"aws:SourceArn": props.trail_arn}}},
        {"Sid": "CloudTrailWritesLogs", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject",
         "Resource": [f"{bucket}/AWSLogs/{props.management_account_id}/*",
                      f"{bucket}/AWSLogs/{props.organization_id}/*"],
         "Condition": {"StringEquals": {"aws:SourceArn": props.trail_arn,
                                        "s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]


def _access_log_bucket(scope: Construct, props: AuditProps) -> tuple[Resource, Resource]:
    """The S3 server access log bucket and its policy. It cannot use SSE-KMS: S3 delivers access logs
    only to buckets encrypted with S3-managed keys (SSE-S3)."""
    name = props.access_log_bucket
    arn = f"arn:aws:s3:::{name}"
    bucket = Resource(scope, "access-logs", "aws_s3_bucket", bucket=name, lifecycle={"prevent_destroy": True},
                      skip_checks={
                          "CKV_AWS_145": "S3 server access logs can only be delivered to SSE-S3 buckets",
                          "CKV_AWS_144": "single-region by design; versioning protects the logs",
                          "CKV2_AWS_62": "no consumer needs object events from the access-log bucket",
                      })
    bucket_id = bucket.id_ref
    Resource(scope, "access-logs-versioning", "aws_s3_bucket_versioning", bucket=bucket_id,
             versioning_configuration=[{"status": "Enabled"}])
    Resource(scope, "access-logs-encryption", "aws_s3_bucket_server_side_encryption_configuration", bucket=bucket_id,
             rule=[{"apply_server_side_encryption_by_default": [{"sse_algorithm": "AES256"}]}])
    block = Resource(scope, "access-logs-public-access-block", "aws_s3_bucket_public_access_block", bucket=bucket_id,
                     block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
                     restrict_public_buckets=True)
    Resource(scope, "access-logs-ownership", "aws_s3_bucket_ownership_controls", bucket=bucket_id,
             rule=[{"object_ownership": "BucketOwnerEnforced"}])
    Resource(scope, "access-logs-lifecycle", "aws_s3_bucket_lifecycle_configuration", bucket=bucket_id, rule=[{
        "id": "expire", "status": "Enabled", "filter": [{}],
        "transition": [{"days": TRAIL_LOG_TRANSITION_DAYS, "storage_class": "STANDARD_IA"}],
        "expiration": [{"days": ACCESS_LOG_EXPIRATION_DAYS}],
        "noncurrent_version_expiration": [{"noncurrent_days": 30}],
        "abort_incomplete_multipart_upload": [{"days_after_initiation": 7}],
    }])
    policy = Resource(
        scope, "access-logs-policy", "aws_s3_bucket_policy", bucket=bucket_id, depends_on=[block],
        policy=policy_json([
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"{arn}/s3/*",
             "Condition": {"StringEquals": {"aws:SourceAccount": props.log_archive_account_id},
                           "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{props.organization_name}-*"}}},
        ]))
    return bucket, policy
