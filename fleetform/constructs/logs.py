"""A CloudWatch log group that is KMS-encrypted and kept at least a year."""

from __future__ import annotations

from dataclasses import dataclass

from fleetform.engine import Construct, Resource

MIN_RETENTION_DAYS = 365
# the values CloudWatch Logs accepts for retention_in_days from a year up
CLOUDWATCH_RETENTION_DAYS = (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


def cloudwatch_retention(days: int) -> int:
    """The smallest retention CloudWatch Logs accepts that keeps logs at least ``days`` (>= 1 year)."""
    wanted = max(days, MIN_RETENTION_DAYS)
    for allowed in CLOUDWATCH_RETENTION_DAYS:
        if allowed >= wanted:
            return allowed
    return CLOUDWATCH_RETENTION_DAYS[-1]


@dataclass(frozen=True)
class LogGroupProps:
    name: str
    kms_key_arn: str
    retention_days: int = MIN_RETENTION_DAYS


class LogGroup(Construct):
    """Attributes: ``arn``, ``name``. The retention is rounded up to a value CloudWatch accepts."""

    def __init__(self, scope: Construct, id: str, props: LogGroupProps) -> None:
        super().__init__(scope, id)
        if props.retention_days < MIN_RETENTION_DAYS:
            raise ValueError(f"log group {props.name}: retention {props.retention_days} < {MIN_RETENTION_DAYS} days")
        self.group = Resource(self, "group", "aws_cloudwatch_log_group", name=props.name,
                              retention_in_days=cloudwatch_retention(props.retention_days),
                              kms_key_id=props.kms_key_arn)
        self.arn = self.group.arn
        self.name = props.name
