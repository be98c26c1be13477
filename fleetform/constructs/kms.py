"""A customer-managed KMS key with an explicit key policy and an alias; symmetric keys rotate yearly.

Asymmetric keys (``key_spec``, e.g. ECC_NIST_P256 with ``key_usage`` SIGN_VERIFY for DNSSEC) cannot
rotate automatically: KMS refuses ``enable_key_rotation`` for them, so it is left out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetform.engine import Construct, Resource, policy_json

LOGS_PRINCIPAL = re.compile(r"^logs\.([a-z0-9-]+)\.amazonaws\.com$")
SERVICE_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")


def logs_statement(principals: Sequence[str], account_id: str, log_groups: Sequence[str]) -> dict[str, Any]:
    """CloudWatch Logs uses the key for these log groups only: the condition AWS documents for log
    group encryption (the log group's ARN in the encryption context), in each principal's region."""
    groups = list(log_groups) or ["*"]
    arns = [f"arn:aws:logs:{LOGS_PRINCIPAL.match(p).group(1)}:{account_id}:log-group:{g}"  # type: ignore[union-attr]
            for p in principals for g in groups]
    return {
        "Sid": "CloudWatchLogsUsesKey",
        "Effect": "Allow",
        "Principal": {"Service": list(principals)},
        "Action": list(SERVICE_ACTIONS),
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": arns[0] if len(arns) == 1 else arns}},
    }


@dataclass(frozen=True)
class KmsKeyProps:
    alias: str  # without the "alias/" prefix
    description: str
    account_id: str
    service_principals: Sequence[str] = ()  # e.g. "logs.ap-northeast-1.amazonaws.com"
    # CloudWatch Logs may use the key only for these log groups (names; none: any group of the account in
    # the principal's region), by the encryption context it sends (kms:EncryptionContext:aws:logs:arn)
    log_groups: Sequence[str] = ()
    extra_statements: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    deletion_window_days: int = 30
    key_spec: str | None = None  # None: SYMMETRIC_DEFAULT (encryption, rotated)
    key_usage: str | None = None  # None: ENCRYPT_DECRYPT
    prevent_destroy: bool = False  # lifecycle.prevent_destroy on the key


class KmsKey(Construct):
    """Attributes: ``arn``, ``key_id``, ``alias_name``."""

    def __init__(self, scope: Construct, id: str, props: KmsKeyProps) -> None:
        super().__init__(scope, id)
        statements: list[Mapping[str, Any]] = [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{props.account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
        logs = sorted(p for p in props.service_principals if LOGS_PRINCIPAL.match(p))
        others = sorted(p for p in props.service_principals if p not in logs)
        if others:
            statements.append(
                {
                    "Sid": "ServicesUseKey",
                    "Effect": "Allow",
                    "Principal": {"Service": others},
                    "Action": list(SERVICE_ACTIONS),
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
                }
            )
        if logs:
            statements.append(logs_statement(logs, props.account_id, props.log_groups))
        statements.extend(props.extra_statements)
        self.key = Resource(
            self, "key", "aws_kms_key",
            description=props.description,
            customer_master_key_spec=props.key_spec,
            key_usage=props.key_usage,
            enable_key_rotation=None if props.key_spec else True,
            deletion_window_in_days=props.deletion_window_days,
            policy=policy_json(statements),
            lifecycle={"prevent_destroy": True} if props.prevent_destroy else None,
        )
        self.alias = Resource(self, "alias", "aws_kms_alias", name=f"alias/{props.alias}",
                              target_key_id=self.key.attr("key_id"))
        self.arn = self.key.arn
        self.key_id = self.key.attr("key_id")
        self.alias_name = f"alias/{props.alias}"
