"""One DNS stack per account with a ``dns`` section: ``<account>-dns``.

The hosted zone (query logs in us-east-1, where Route 53 writes them; DNSSEC signing with
``dns.dnssec``, its key and alarms in us-east-1 too, and the DS record as an output) and one DNS-validated
certificate per cluster hostname (covering ``<slot>.<hostname>`` too). The weighted record of
each slot lives in the slot's stack, so adding or retiring a slot never touches this stack.
"""

from __future__ import annotations

from fleetform.config.models import SLOT_NAMES
from fleetform.constructs.dns import QUERY_LOG_REGION, Certificate, CertificateProps, HostedZone, HostedZoneProps
from fleetform.engine import AwsProvider, output
from fleetform.naming import BOOTSTRAP_STACK, baseline_stack, dns_stack
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp


def us_east_1_provider(stack: FleetStack) -> AwsProvider:
    """An aliased provider for us-east-1 that assumes the same role as the stack's own provider."""
    return stack.provider_for("aws-us-east-1", "us_east_1", region=QUERY_LOG_REGION)


def build(fleet: FleetApp) -> None:
    config = fleet.config
    for account in config.accounts:
        dns = account.spec.dns
        if dns is None:
            continue
        stack = FleetStack(fleet.app, dns_stack(account.name), config,
                           StackTarget(fleet.account_id(account), config.region_of(account)),
                           description=f"hosted zone {dns.zone} and cluster certificates of {account.name}")
        zone = HostedZone(stack, "zone", HostedZoneProps(zone=dns.zone, account_id=stack.account_id, dnssec=dns.dnssec),
                          query_log_provider=us_east_1_provider(stack))
        stack.zone = zone  # type: ignore[attr-defined]
        stack.certificates = {}  # type: ignore[attr-defined]
        for name, cluster in account.spec.clusters.items():
            if cluster.hostname is None:
                continue
            certificate = Certificate(stack, f"certificate-{name}",
                                      CertificateProps(hostname=cluster.hostname, zone_id=zone.zone_id,
                                                       slots=SLOT_NAMES))
            stack.certificates[name] = certificate  # type: ignore[attr-defined]
            output(stack, f"certificate_arn_{name.replace('-', '_')}", certificate.arn)
        output(stack, "zone_id", zone.zone_id)
        output(stack, "name_servers", zone.name_servers,
                        description="delegate the zone to these from its parent (or the registrar)")
        if zone.signing is not None:
            output(stack, "dnssec_ds_record", zone.signing.ds_record,
                   description="add this DS record at the parent zone (or the registrar) only once signing works: "
                               "docs/clusters.md#dnssec")
        fleet.add(stack, depends_on=[BOOTSTRAP_STACK, baseline_stack(account.name)])
