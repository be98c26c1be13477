"""A customer-managed KMS key with an explicit key policy and an alias; symmetric keys rotate yearly.

Asymmetric keys (``key_spec``, e.g. ECC_NIST_P256 with ``key_usage`` SIGN_VERIFY for DNSSEC) cannot
rotate automatically: KMS refuses ``enable_key_rotation`` for them, so it is left out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetform.engine import Construct, Resource, policy_json


@dataclass(frozen=True)
class KmsKeyProps:
    alias: str  # without the "alias/" prefix
    description: str
    account_id: str
    service_principals: Sequence[str] = ()  # e.g. "logs.ap-northeast-1.amazonaws.com"
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
        if props.service_principals:
            statements.append(
                {
                    "Sid": "ServicesUseKey",
                    "Effect": "Allow",
                    "Principal": {"Service": sorted(props.service_principals)},
                    "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                               "kms:Describe*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
                }
            )
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
