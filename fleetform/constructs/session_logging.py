"""Session Manager recording: a Session document that streams every session to S3 and
CloudWatch Logs, both KMS-encrypted, with the session data itself encrypted by a KMS key.

A session started with this document (``aws ssm start-session --document-name ...``) is
recorded in full; the bastion's operator policy allows no other document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import Construct, Resource

S3_KEY_PREFIX = "sessions"


@dataclass(frozen=True)
class SessionLoggingProps:
    document_name: str
    bucket_name: str
    log_group_name: str
    account_id: str
    region: str
    retention_days: int = 365
    idle_timeout_minutes: int = 20
    max_session_minutes: int = 480
    run_as_user: str = "bastion"
    # principals (ARN patterns) that may still delete recordings, e.g. the Terraform apply role
    delete_principals: tuple[str, ...] = ()


class SessionLogging(Construct):
    """Attributes: ``document``, ``document_name``, ``document_arn``, ``key_arn``, ``bucket_arn``,
    ``bucket_name``, ``log_group_arn``, ``log_group_name``; ``writer_statements()`` is what the
    instance role needs to write recordings."""

    def __init__(self, scope: Construct, id: str, props: SessionLoggingProps) -> None:
        super().__init__(scope, id)
        self.props = props
        log_group_arn = f"arn:aws:logs:{props.region}:{props.account_id}:log-group:{props.log_group_name}"
        self.key = KmsKey(self, "key", KmsKeyProps(
            alias=props.document_name,
            description=f"Session Manager sessions and recordings ({props.document_name})",
            account_id=props.account_id,
            extra_statements=[{
                "Sid": "CloudWatchLogsEncryptsSessionLogs",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{props.region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn}},
            }],
        ))
        self.key_arn = self.key.arn
        self.bucket = SecureBucket(self, "bucket", BucketProps(
            name=props.bucket_name,
            kms_key_arn=self.key.arn,
            expiration_days=props.retention_days,
            # an overwritten recording stays as long as the original would have
            noncurrent_days=props.retention_days,
            prevent_destroy=True,
            object_lock_days=props.retention_days,  # governance mode: recordings outlive whoever was recorded
            access_log_reason="writes come only from the bastion role; every object read and write is recorded "
                              "by the organization CloudTrail (S3 data events on this bucket)",
            policy_statements=self._bucket_statements(props),
        ))
        self.bucket_arn = self.bucket.arn
        self.bucket_name = props.bucket_name
        self.log_group = LogGroup(self, "log-group", LogGroupProps(
            name=props.log_group_name, kms_key_arn=self.key.arn,
            retention_days=props.retention_days))
        self.log_group_arn = self.log_group.arn
        self.log_group_name = props.log_group_name
        self.document = Resource(
            self, "document", "aws_ssm_document",
            name=props.document_name,
            document_type="Session",
            document_format="JSON",
            content=json.dumps(self.document_content(), indent=2),
        )
        self.document_name = props.document_name
        self.document_arn = f"arn:aws:ssm:{props.region}:{props.account_id}:document/{props.document_name}"

    def _bucket_statements(self, props: SessionLoggingProps) -> list[Mapping[str, Any]]:
        bucket_arn = f"arn:aws:s3:::{props.bucket_name}"
        statements: list[Mapping[str, Any]] = [{
            "Sid": "DenyUnencryptedUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        }]
        if props.delete_principals:
            statements.append({
                "Sid": "RecordingsAreKept",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                "Resource": f"{bucket_arn}/*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": sorted(props.delete_principals)}},
            })
        return statements

    def document_content(self) -> dict[str, Any]:
        """The Session document (schema 1.0, Standard_Stream)."""
        props = self.props
        return {
            "schemaVersion": "1.0",
            "description": "fleetform bastion session: recorded to S3 and CloudWatch Logs, KMS-encrypted",
            "sessionType": "Standard_Stream",
            "inputs": {
                "s3BucketName": self.bucket.bucket.id_ref,
                "s3KeyPrefix": S3_KEY_PREFIX,
                "s3EncryptionEnabled": True,
                "cloudWatchLogGroupName": self.log_group.group.attr("name"),
                "cloudWatchEncryptionEnabled": True,
                "cloudWatchStreamingEnabled": True,
                "kmsKeyId": self.key.key_id,
                "runAsEnabled": True,
                "runAsDefaultUser": props.run_as_user,
                "idleSessionTimeout": str(props.idle_timeout_minutes),
                "maxSessionDuration": str(props.max_session_minutes),
                "shellProfile": {"linux": "cd ~ && exec bash -l", "windows": ""},
            },
        }

    def writer_statements(self) -> list[Mapping[str, Any]]:
        """IAM statements the instance role needs: stream to CloudWatch, upload to S3, use the key."""
        return [
            {
                "Sid": "StreamSessionLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [self.log_group_arn, f"{self.log_group_arn}:*"],
            },
            {
                # the agent checks the destination before streaming; this action has no resource scope
                "Sid": "FindSessionLogGroup",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            },
            {
                "Sid": "UploadSessionRecordings",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{self.bucket_arn}/{S3_KEY_PREFIX}/*",
            },
            {
                "Sid": "CheckRecordingBucketEncryption",
                "Effect": "Allow",
                "Action": "s3:GetEncryptionConfiguration",
                "Resource": self.bucket_arn,
            },
            {
                "Sid": "SessionKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": self.key_arn,
            },
        ]
