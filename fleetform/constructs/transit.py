"""The private path from the Ops cluster's VPC to every service cluster's API endpoint (decision 0005).

- ``TransitHub`` (the ops account's network stack): the Transit Gateway, its RAM share with the
  accounts that attach to it, the ``hub`` and ``spokes`` route tables, the ops VPC's attachment and
  the ops VPC's routes to every spoke CIDR.
- ``TransitSpoke`` (a spoke account's network stack): the attachment in the intra subnets (where the
  control-plane ENIs are) and the intra route table's route back to the ops CIDR.
- ``SpokeRouting`` (the ``<ops>-transit`` stack, after every spoke): the owner associates each spoke
  attachment with ``spokes`` and propagates it into ``hub``; until then the attachment carries nothing.

Spokes reach only the ops VPC (``spokes`` has a single route), never each other. Every resource is
keyed by an account name or a CIDR, never by a list position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetform.engine import Construct, Resource

AUTO_ACCEPT_REASON = ("only the accounts named in the RAM share (organization members, no external principals) can "
                      "attach, and an attachment carries nothing until the ops account's <ops>-transit stack "
                      "associates it with a route table: that association is the approval. A pending attachment "
                      "would instead fail the spoke's own route to the Transit Gateway, and the spoke's network "
                      "stack comes before the acceptance")


@dataclass(frozen=True)
class TransitHubProps:
    name: str  # the ops account's name (prefix of names and tags)
    vpc_id: str
    cidr: str  # the ops VPC's CIDR
    attachment_subnet_ids: Sequence[str]  # one per AZ
    route_table_ids: Mapping[str, str]  # key -> id of each ops route table that needs spoke routes
    spoke_cidrs: Mapping[str, str]  # spoke account name -> its VPC CIDR
    spoke_account_ids: Mapping[str, str]  # spoke account name -> account id (RAM principals)


class TransitHub(Construct):
    """Attributes: ``transit_gateway_id``, ``hub_route_table_id``, ``spokes_route_table_id``,
    ``attachment`` (the ops VPC's)."""

    def __init__(self, scope: Construct, id: str, props: TransitHubProps) -> None:
        super().__init__(scope, id)
        tgw = Resource(self, "tgw", "aws_ec2_transit_gateway",
                       description=f"{props.name}: the ops cluster reaches service cluster API endpoints",
                       auto_accept_shared_attachments="enable",
                       default_route_table_association="disable",
                       default_route_table_propagation="disable",
                       dns_support="enable", vpn_ecmp_support="disable",
                       tags={"Name": f"{props.name}-ops-hub"},
                       skip_checks={"CKV_AWS_331": AUTO_ACCEPT_REASON})
        self.transit_gateway = tgw
        self.transit_gateway_id = tgw.id_ref
        share = Resource(self, "share", "aws_ram_resource_share", name=f"{props.name}-ops-hub",
                         allow_external_principals=False, tags={"Name": f"{props.name}-ops-hub"})
        Resource(self, "share-tgw", "aws_ram_resource_association", resource_arn=tgw.arn,
                 resource_share_arn=share.arn)
        self.principal_associations = {
            account: Resource(self, f"share-{account}", "aws_ram_principal_association",
                              principal=account_id, resource_share_arn=share.arn)
            for account, account_id in sorted(props.spoke_account_ids.items())}
        hub = Resource(self, "rt-hub", "aws_ec2_transit_gateway_route_table", transit_gateway_id=tgw.id_ref,
                       tags={"Name": f"{props.name}-ops-hub-hub"})
        spokes = Resource(self, "rt-spokes", "aws_ec2_transit_gateway_route_table", transit_gateway_id=tgw.id_ref,
                          tags={"Name": f"{props.name}-ops-hub-spokes"})
        self.hub_route_table_id = hub.id_ref
        self.spokes_route_table_id = spokes.id_ref
        self.attachment = Resource(
            self, "attachment", "aws_ec2_transit_gateway_vpc_attachment", transit_gateway_id=tgw.id_ref,
            vpc_id=props.vpc_id, subnet_ids=list(props.attachment_subnet_ids), dns_support="enable",
            transit_gateway_default_route_table_association=False,
            transit_gateway_default_route_table_propagation=False,
            tags={"Name": f"{props.name}-ops-hub"})
        Resource(self, "attachment-hub", "aws_ec2_transit_gateway_route_table_association",
                 transit_gateway_attachment_id=self.attachment.id_ref, transit_gateway_route_table_id=hub.id_ref)
        # the only destination a spoke can reach: the ops VPC
        Resource(self, "spokes-to-ops", "aws_ec2_transit_gateway_route", destination_cidr_block=props.cidr,
                 transit_gateway_attachment_id=self.attachment.id_ref, transit_gateway_route_table_id=spokes.id_ref)
        for account, cidr in sorted(props.spoke_cidrs.items()):
            for key, table_id in sorted(props.route_table_ids.items()):
                Resource(self, f"route-{key}-{account}", "aws_route", route_table_id=table_id,
                         destination_cidr_block=cidr, transit_gateway_id=tgw.id_ref, depends_on=[self.attachment])


@dataclass(frozen=True)
class TransitSpokeProps:
    name: str  # the spoke account's name
    transit_gateway_id: str
    vpc_id: str
    attachment_subnet_ids: Sequence[str]  # the intra subnets, one per AZ
    route_table_ids: Mapping[str, str]  # key -> id of the route tables of the control-plane subnets
    ops_cidr: str


class TransitSpoke(Construct):
    """Attributes: ``attachment``, ``attachment_id``."""

    def __init__(self, scope: Construct, id: str, props: TransitSpokeProps) -> None:
        super().__init__(scope, id)
        # transit_gateway_default_route_table_*: not settable on a shared Transit Gateway (the owner decides)
        self.attachment = Resource(
            self, "attachment", "aws_ec2_transit_gateway_vpc_attachment",
            transit_gateway_id=props.transit_gateway_id, vpc_id=props.vpc_id,
            subnet_ids=list(props.attachment_subnet_ids), dns_support="enable",
            tags={"Name": f"{props.name}-ops-hub"})
        self.attachment_id = self.attachment.id_ref
        for key, table_id in sorted(props.route_table_ids.items()):
            Resource(self, f"route-{key}-ops", "aws_route", route_table_id=table_id,
                     destination_cidr_block=props.ops_cidr, transit_gateway_id=props.transit_gateway_id,
                     depends_on=[self.attachment])


@dataclass(frozen=True)
class SpokeRoutingProps:
    hub_route_table_id: str
    spokes_route_table_id: str
    spoke_attachment_ids: Mapping[str, str]  # spoke account name -> attachment id


class SpokeRouting(Construct):
    """The owner's half of each spoke attachment: associate with ``spokes``, propagate into ``hub``."""

    def __init__(self, scope: Construct, id: str, props: SpokeRoutingProps) -> None:
        super().__init__(scope, id)
        for account, attachment_id in sorted(props.spoke_attachment_ids.items()):
            Resource(self, f"associate-{account}", "aws_ec2_transit_gateway_route_table_association",
                     transit_gateway_attachment_id=attachment_id,
                     transit_gateway_route_table_id=props.spokes_route_table_id)
            Resource(self, f"propagate-{account}", "aws_ec2_transit_gateway_route_table_propagation",
                     transit_gateway_attachment_id=attachment_id,
                     transit_gateway_route_table_id=props.hub_route_table_id)
