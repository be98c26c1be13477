"""DNS for clusters: the account's hosted zone (query logging, DNSSEC signing if asked for), a
DNS-validated certificate per cluster hostname, and the weighted record of each cluster slot.

Weights belong to the upgrade runbook (cluster-upgrade shift): Terraform sets a slot's initial
weight and then ignores changes to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.constructs.dnssec import ZoneSigning, ZoneSigningProps
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import AwsProvider, Construct, DataSource, Resource, policy_json
from fleetform.naming import ROUTE53_QUERY_LOG_REGION, WEIGHTED_RECORD_TTL, slot_hostname

# Route 53 writes query logs only to CloudWatch Logs in us-east-1
QUERY_LOG_REGION = ROUTE53_QUERY_LOG_REGION
NO_DNSSEC = ("DNSSEC is an explicit opt-in per account (dns: {dnssec: true}, docs/clusters.md#dnssec): it needs "
             "a DS record at the parent zone/registrar and an asymmetric KMS key in us-east-1 whose loss takes "
             "the zone offline for validating resolvers")


@dataclass(frozen=True)
class HostedZoneProps:
    zone: str
    account_id: str
    log_retention_days: int = 365
    dnssec: bool = False  # sign the zone (ZoneSigning); the parent needs the DS record afterwards


class HostedZone(Construct):
    """Public hosted zone with query logging and, with ``dnssec``, signing. ``query_log_provider`` is an
    AWS provider for us-east-1 (query logs and the DNSSEC key and alarms live there).

    Attributes: ``zone_id``, ``arn``, ``name_servers``, ``signing`` (ZoneSigning or None)."""

    def __init__(self, scope: Construct, id: str, props: HostedZoneProps, *,
                 query_log_provider: AwsProvider) -> None:
        super().__init__(scope, id)
        self.zone = Resource(self, "zone", "aws_route53_zone", name=props.zone,
                             comment=f"{props.zone}: managed by fleetform",
                             skip_checks=None if props.dnssec else {"CKV2_AWS_38": NO_DNSSEC})
        self.zone_id = self.zone.attr("zone_id")
        self.arn = self.zone.arn
        self.name_servers = self.zone.attr("name_servers")
        label = props.zone.replace(".", "-")
        key = KmsKey(self, "query-log-key", KmsKeyProps(
            alias=f"route53-query-logs-{label}", description=f"Route 53 query logs of {props.zone}",
            account_id=props.account_id, service_principals=[f"logs.{QUERY_LOG_REGION}.amazonaws.com"],
            log_groups=[f"/aws/route53/{props.zone}"]))
        for child in (key.key, key.alias):
            child.provider = query_log_provider
        group = LogGroup(self, "query-logs", LogGroupProps(
            name=f"/aws/route53/{props.zone}", kms_key_arn=key.arn, retention_days=props.log_retention_days))
        group.group.provider = query_log_provider
        policy = Resource(
            self, "query-log-policy", "aws_cloudwatch_log_resource_policy", provider=query_log_provider,
            policy_name=f"route53-query-logs-{label}",
            policy_document=policy_json([{
                "Sid": "Route53WritesQueryLogs",
                "Effect": "Allow",
                "Principal": {"Service": "route53.amazonaws.com"},
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{group.arn}:*",
                "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
            }]))
        Resource(self, "query-log", "aws_route53_query_log", zone_id=self.zone_id,
                 cloudwatch_log_group_arn=group.arn, depends_on=[policy])
        self.signing = ZoneSigning(self, "dnssec", ZoneSigningProps(
            zone=props.zone, zone_id=self.zone_id, zone_arn=self.arn, account_id=props.account_id),
            us_east_1=query_log_provider) if props.dnssec else None


@dataclass(frozen=True)
class CertificateProps:
    hostname: str  # the certificate covers it and the slot names below it (blue.<hostname>, ...)
    zone_id: str
    slots: Sequence[str] = ("blue", "green")


class Certificate(Construct):
    """An ACM certificate validated through DNS records in the zone. Attributes: ``arn``."""

    def __init__(self, scope: Construct, id: str, props: CertificateProps) -> None:
        super().__init__(scope, id)
        self.certificate = Resource(
            self, "certificate", "aws_acm_certificate", domain_name=props.hostname,
            subject_alternative_names=[slot_hostname(props.hostname, s) for s in props.slots],
            validation_method="DNS", key_algorithm="EC_prime256v1",
            lifecycle={"create_before_destroy": True})
        options = self.certificate.expr("domain_validation_options")
        record = Resource(self, "validation", "aws_route53_record", zone_id=props.zone_id,
                          name="${each.value.name}", type="${each.value.type}", records=["${each.value.record}"],
                          ttl=300, allow_overwrite=True)
        # one record per domain: the domain names are known at plan time, the record names are not
        # (allow_overwrite: the name may exist from an earlier certificate for the same domain)
        record.add_override("for_each", "${{for o in " + options + " : o.domain_name => "
                            "{name = o.resource_record_name, type = o.resource_record_type, "
                            "record = o.resource_record_value}}}")
        validation = Resource(self, "validated", "aws_acm_certificate_validation",
                              certificate_arn=self.certificate.arn,
                              validation_record_fqdns="${[for r in " + record.address + " : r.fqdn]}")
        self.arn = validation.attr("certificate_arn")


@dataclass(frozen=True)
class WeightedRecordProps:
    zone_id: str
    hostname: str
    slot: str
    weight: int
    # a cluster's only slot: no record until external-dns has made its target, or the hostname would
    # resolve to a name that does not exist (and resolvers cache that) until the first deploy is done
    wait_for_target: bool = False


class WeightedRecord(Construct):
    """``hostname`` CNAME to ``<slot>.<hostname>`` with set identifier = slot name. The weight is
    the initial one only: later changes belong to the upgrade runbook.

    The record has ``count``: 1, or, with ``wait_for_target``, 1 once the target exists in the zone
    (looked up at plan time), so the first plan after external-dns made it creates the record. The
    address is ``...record[0]`` either way (Terraform moves an earlier unindexed record there itself),
    so a second slot coming or going never moves the record of the first."""

    def __init__(self, scope: Construct, id: str, props: WeightedRecordProps) -> None:
        super().__init__(scope, id)
        target = slot_hostname(props.hostname, props.slot)
        self.record = Resource(
            self, "record", "aws_route53_record", zone_id=props.zone_id, name=props.hostname, type="CNAME",
            ttl=WEIGHTED_RECORD_TTL, set_identifier=props.slot, records=[target],
            weighted_routing_policy=[{"weight": props.weight}],
            lifecycle={"ignore_changes": ["weighted_routing_policy"]})
        count: int | str = 1
        if props.wait_for_target:
            pattern = "^" + re.escape(target).replace("\\-", "-") + "\\.?$"
            existing = DataSource(self, "target", "aws_route53_records", zone_id=props.zone_id, name_regex=pattern)
            # hashicorp/aws returns null, not [], when nothing matches name_regex (the first deploy)
            count = f"${{length(coalesce({existing.expr('resource_record_sets')}, [])) > 0 ? 1 : 0}}"
        self.record.add_override("count", count)
