"""An S3 bucket with fleetform's defaults: KMS, versioning, TLS only, no public access,
lifecycle, optional access logging."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetform.engine import Construct, Dependable, Resource, policy_json

NO_REPLICATION = "single-region by design; versioning and KMS protect the data, replication is opt-in"
NO_EVENTS = "no consumer needs object events from this bucket"


@dataclass(frozen=True)
class BucketProps:
    name: str
    kms_key_arn: str
    policy_statements: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    noncurrent_days: int = 90
    transition_days: int | None = None  # to STANDARD_IA; None = stay in STANDARD
    expiration_days: int | None = None
    access_log_bucket: str | None = None  # bucket name; None only for a log bucket itself
    access_log_reason: str | None = None  # why a bucket has no access logging (required then)
    # what must exist before logging to access_log_bucket is switched on: its bucket policy (S3 checks
    # at PutBucketLogging that the logging service may write there)
    access_log_ready: Sequence[Dependable] = ()
    force_destroy: bool = False
    prevent_destroy: bool = False
    object_ownership: str = "BucketOwnerEnforced"


class SecureBucket(Construct):
    """Attributes: ``arn``, ``name``, ``bucket`` (the aws_s3_bucket resource), ``policy`` (its bucket policy)."""

    def __init__(self, scope: Construct, id: str, props: BucketProps) -> None:
        super().__init__(scope, id)
        skips = {"CKV_AWS_144": NO_REPLICATION, "CKV2_AWS_62": NO_EVENTS}
        if props.access_log_bucket is None:
            if not props.access_log_reason:
                raise ValueError(f"bucket {props.name}: give access_log_bucket or access_log_reason")
            skips["CKV_AWS_18"] = props.access_log_reason
        self.bucket = Resource(
            self, "bucket", "aws_s3_bucket",
            bucket=props.name,
            force_destroy=props.force_destroy,
            lifecycle={"prevent_destroy": True} if props.prevent_destroy else None,
            skip_checks=skips,
        )
        bucket_id = self.bucket.id_ref
        self.arn = self.bucket.arn
        self.name = props.name
        Resource(self, "versioning", "aws_s3_bucket_versioning", bucket=bucket_id,
                 versioning_configuration=[{"status": "Enabled"}])
        Resource(self, "encryption", "aws_s3_bucket_server_side_encryption_configuration", bucket=bucket_id,
                 rule=[{"apply_server_side_encryption_by_default": [
                     {"sse_algorithm": "aws:kms", "kms_master_key_id": props.kms_key_arn}],
                     "bucket_key_enabled": True}])
        self.public_access_block = Resource(
            self, "public-access-block", "aws_s3_bucket_public_access_block", bucket=bucket_id,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
            restrict_public_buckets=True)
        Resource(self, "ownership", "aws_s3_bucket_ownership_controls", bucket=bucket_id,
                 rule=[{"object_ownership": props.object_ownership}])
        rules: list[dict[str, Any]] = [{
            "id": "noncurrent-and-incomplete",
            "status": "Enabled",
            "filter": [{}],
            "noncurrent_version_expiration": [{"noncurrent_days": props.noncurrent_days}],
            "abort_incomplete_multipart_upload": [{"days_after_initiation": 7}],
        }]
        if props.transition_days is not None or props.expiration_days is not None:
            rule: dict[str, Any] = {"id": "current-versions", "status": "Enabled", "filter": [{}]}
            if props.transition_days is not None:
                rule["transition"] = [{"days": props.transition_days, "storage_class": "STANDARD_IA"}]
            if props.expiration_days is not None:
                rule["expiration"] = [{"days": props.expiration_days}]
            rules.append(rule)
        Resource(self, "lifecycle", "aws_s3_bucket_lifecycle_configuration", bucket=bucket_id, rule=rules)
        if props.access_log_bucket is not None:
            Resource(self, "logging", "aws_s3_bucket_logging", bucket=bucket_id,
                     target_bucket=props.access_log_bucket, target_prefix=f"s3/{props.name}/",
                     depends_on=list(props.access_log_ready) or None)
        statements = [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [self.arn, f"{self.arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            *props.policy_statements,
        ]
        self.policy = Resource(self, "policy", "aws_s3_bucket_policy", bucket=bucket_id, policy=policy_json(statements),
                 depends_on=[self.public_access_block])
