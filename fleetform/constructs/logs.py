"""A CloudWatch log group that is KMS-encrypted and kept at least a year."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from fleetform.engine import Resource

MIN_RETENTION_DAYS = 365


@dataclass(frozen=True)
class LogGroupProps:
    name: str
    kms_key_arn: str
    retention_days: int = MIN_RETENTION_DAYS


class LogGroup(Construct):
    """Attributes: ``arn``, ``name``."""

    def __init__(self, scope: Construct, id: str, props: LogGroupProps) -> None:
        super().__init__(scope, id)
        if props.retention_days < MIN_RETENTION_DAYS:
            raise ValueError(f"log group {props.name}: retention {props.retention_days} < {MIN_RETENTION_DAYS} days")
        self.group = Resource(self, "group", "aws_cloudwatch_log_group", name=props.name,
                              retention_in_days=props.retention_days, kms_key_id=props.kms_key_arn)
        self.arn = self.group.arn
        self.name = props.name
