"""DNSSEC signing of a public hosted zone (``dns: {dnssec: true}``; docs/clusters.md#dnssec).

An asymmetric KMS key in us-east-1 (where Route 53 requires it) that only Route 53's DNSSEC service
of this account, for this zone, may use; a key-signing key (KSK) on it; signing of the zone; and
CloudWatch alarms (us-east-1, where Route 53 publishes the metrics) on the two metrics AWS asks
every signing zone to watch. Losing the key, or its permissions, takes the zone offline for
validating resolvers once the parent holds the DS record: the key and the KSK carry
``prevent_destroy``, and destroying any of it is a protected destroy in ``fleetform plan``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.engine import AwsProvider, Construct, Resource

DNSSEC_SERVICE = "dnssec-route53.amazonaws.com"
# Route 53 accepts only this key spec for a KSK, used for signing
DNSSEC_KEY_SPEC = "ECC_NIST_P256"
DNSSEC_KEY_USAGE = "SIGN_VERIFY"
KSK_NAME = "fleetform_ksk_1"  # unique per zone; a KSK rollover adds a second one under another name
# the metrics AWS asks every DNSSEC-signing zone to alarm on (namespace AWS/Route53, us-east-1)
DNSSEC_METRICS = {
    "DNSSECInternalFailure": "Route 53 cannot sign the zone (an object is in INTERNAL_FAILURE)",
    "DNSSECKeySigningKeysNeedingAction": "a key-signing key needs action: its KMS key is disabled, "
                                         "scheduled for deletion or no longer usable by Route 53",
}
ALARM_PERIOD_SECONDS = 300


@dataclass(frozen=True)
class ZoneSigningProps:
    zone: str  # the zone's name, for names and descriptions
    zone_id: str  # reference to the hosted zone's id
    zone_arn: str  # reference to the hosted zone's ARN (arn:aws:route53:::hostedzone/<id>)
    account_id: str
    alarm_actions: tuple[str, ...] = ()  # SNS topic ARNs in us-east-1; none: the alarms only change state


class ZoneSigning(Construct):
    """KMS key, KSK and DNSSEC signing of one zone. ``us_east_1`` is an AWS provider for us-east-1.

    Attributes: ``key`` (KmsKey), ``ksk``, ``dnssec``, ``alarms`` (by metric), ``ds_record`` (the DS
    record for the parent zone or registrar)."""

    def __init__(self, scope: Construct, id: str, props: ZoneSigningProps, *, us_east_1: AwsProvider) -> None:
        super().__init__(scope, id)
        label = props.zone.replace(".", "-")
        self.key = KmsKey(self, "key", KmsKeyProps(
            alias=f"route53-dnssec-{label}", description=f"Route 53 DNSSEC key-signing key of {props.zone}",
            account_id=props.account_id, key_spec=DNSSEC_KEY_SPEC, key_usage=DNSSEC_KEY_USAGE,
            prevent_destroy=True, extra_statements=key_policy_statements(props.account_id, props.zone_arn)))
        for child in (self.key.key, self.key.alias):
            child.provider = us_east_1
        self.ksk = Resource(self, "ksk", "aws_route53_key_signing_key", hosted_zone_id=props.zone_id,
                            key_management_service_arn=self.key.arn, name=KSK_NAME, status="ACTIVE",
                            lifecycle={"prevent_destroy": True})
        # the KSK's hosted_zone_id and depends_on: signing starts only once the KSK is ACTIVE
        self.dnssec = Resource(self, "signing", "aws_route53_hosted_zone_dnssec",
                               hosted_zone_id=self.ksk.attr("hosted_zone_id"), signing_status="SIGNING",
                               depends_on=[self.ksk])
        self.ds_record = self.ksk.attr("ds_record")
        self.alarms = {
            metric: Resource(
                self, f"alarm-{metric}", "aws_cloudwatch_metric_alarm", provider=us_east_1,
                alarm_name=f"route53-dnssec-{label}-{metric}",
                alarm_description=f"{props.zone}: {meaning}. Validating resolvers fail the zone if it is not "
                                  "fixed: docs/clusters.md#dnssec",
                namespace="AWS/Route53", metric_name=metric, dimensions={"HostedZoneId": props.zone_id},
                statistic="Maximum", period=ALARM_PERIOD_SECONDS, evaluation_periods=1, threshold=0,
                comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
                alarm_actions=list(props.alarm_actions) or None, ok_actions=list(props.alarm_actions) or None)
            for metric, meaning in DNSSEC_METRICS.items()
        }


def key_policy_statements(account_id: str, zone_arn: str) -> list[dict]:
    """What Route 53 needs on the key (Route 53 developer guide, "customer managed key permissions
    required for DNSSEC signing"), for this account and this zone only; the account root's
    administration comes from KmsKey."""
    return [
        {
            "Sid": "Route53DnssecSigns",
            "Effect": "Allow",
            "Principal": {"Service": DNSSEC_SERVICE},
            "Action": ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                          "ArnLike": {"aws:SourceArn": zone_arn}},
        },
        {
            "Sid": "Route53DnssecGrantsForItself",
            "Effect": "Allow",
            "Principal": {"Service": DNSSEC_SERVICE},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]
