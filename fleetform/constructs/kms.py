"""A customer-managed KMS key with rotation, an explicit key policy and an alias."""

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
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=policy_json(statements),
        )
        self.alias = Resource(self, "alias", "aws_kms_alias", name=f"alias/{props.alias}",
                              target_key_id=self.key.attr("key_id"))
        self.arn = self.key.arn
        self.key_id = self.key.attr("key_id")
        self.alias_name = f"alias/{props.alias}"
