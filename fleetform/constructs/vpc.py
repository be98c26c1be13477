"""VPC: subnets per AZ and tier keyed by stable names, NAT, routes, endpoints, flow logs and a
locked default security group.

Every per-AZ resource (subnet, NAT gateway, its EIP, the private route table, each association)
is keyed by ``<tier>-<n>`` or ``<n>``, never by list position, and lists of subnets or route tables
are never attributes of a shared resource, so adding or removing an AZ adds or removes only that AZ's
resources. One exception: an interface endpoint lists its private subnets in ``subnet_ids`` (an
in-place update of the endpoint when an AZ comes or goes; per-subnet association resources cost about
a minute each to apply). Gateway endpoints keep one route table association each. Interface
endpoints are keyed by service name (``endpoint-ecr-api``), so removing one from
``interface_endpoints`` removes only that endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.config.endpoints import INTERFACE_ENDPOINTS
from fleetform.config.network import AzSpec, PlannedSubnet, subnet_plan
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import Construct, DataSource, Resource, policy_json, readable_logical_id

GATEWAY_ENDPOINTS = ("s3", "dynamodb")
ELB_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"
DISCOVERY_TAG = "karpenter.sh/discovery"


@dataclass(frozen=True)
class VpcProps:
    name: str
    cidr: str
    azs: AzSpec  # zone IDs by AZ number (None: removed), or a count (the region's first zones by name)
    account_id: str
    region: str
    flow_log_retention_days: int = 365
    nat: str = "per-az"  # "per-az", "single" or "none"
    # services with an interface endpoint (each keyed by its name: removing one touches no other)
    interface_endpoints: Sequence[str] = INTERFACE_ENDPOINTS
    # value of the karpenter.sh/discovery tag on private subnets (Karpenter's subnetSelectorTerms)
    discovery_tag: str | None = None


class Vpc(Construct):
    """Attributes: ``vpc_id``, ``subnet_ids`` (tier -> list of ids), ``subnets`` (key -> resource),
    ``route_tables`` (key -> resource), ``endpoint_security_group_id``, ``discovery_tag``."""

    def __init__(self, scope: Construct, id: str, props: VpcProps) -> None:
        super().__init__(scope, id)
        if props.nat not in ("per-az", "single", "none"):
            raise ValueError(f"nat must be per-az, single or none, not {props.nat!r}")
        self.props = props
        self.discovery_tag = props.discovery_tag or props.name
        self.plan: list[PlannedSubnet] = subnet_plan(props.cidr, props.azs)
        self.vpc = Resource(self, "vpc", "aws_vpc", cidr_block=props.cidr, enable_dns_support=True,
                            enable_dns_hostnames=True, tags={"Name": props.name})
        self.vpc_id = self.vpc.id_ref
        Resource(self, "default-sg", "aws_default_security_group", vpc_id=self.vpc_id,
                 tags={"Name": f"{props.name}-default-deny-all"})
        names: DataSource | None = None
        if any(p.zone_id is None for p in self.plan):
            # the older count form: positions in the region's zone names (shift when a zone is impaired or added)
            names = DataSource(self, "azs", "aws_availability_zones", state="available",
                               filter=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}])
        self.subnets: dict[str, Resource] = {}
        self.subnet_ids: dict[str, list[str]] = {}
        for planned in self.plan:
            zone = ({"availability_zone_id": planned.zone_id} if planned.zone_id is not None else
                    {"availability_zone": f"${{element({names.expr('names')}, {planned.az_index})}}"})
            subnet = Resource(
                self, f"subnet-{planned.key}", "aws_subnet",
                vpc_id=self.vpc_id,
                cidr_block=planned.cidr,
                **zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{props.name}-{planned.key}", "fleetform:tier": planned.tier,
                      **self._subnet_tags(planned.tier)},
            )
            self.subnets[planned.key] = subnet
            self.subnet_ids.setdefault(planned.tier, []).append(subnet.id_ref)
        self.route_tables: dict[str, Resource] = {}
        self._routing(props)
        self._endpoints(props)
        self._flow_logs(props)

    def _subnet_tags(self, tier: str) -> dict[str, str]:
        if tier == "public":
            return {ELB_TAG: "1"}
        if tier == "private":
            return {INTERNAL_ELB_TAG: "1", DISCOVERY_TAG: self.discovery_tag}
        return {}

    def _az_indexes(self) -> list[int]:
        return sorted({p.az_index for p in self.plan})

    def _routing(self, props: VpcProps) -> None:
        """Public: one table to the internet gateway. Private: one table per AZ (to that AZ's NAT,
        or the single NAT), so switching per-az <-> single only changes routes. Intra: no route out."""
        igw = Resource(self, "igw", "aws_internet_gateway", vpc_id=self.vpc_id, tags={"Name": props.name})
        public = self._route_table("public", props)
        Resource(self, "route-public-internet", "aws_route", route_table_id=public.id_ref,
                 destination_cidr_block="0.0.0.0/0", gateway_id=igw.id_ref)
        self._route_table("intra", props)
        nats: dict[int, Resource] = {}
        indexes = self._az_indexes()
        nat_azs = {"per-az": indexes, "single": indexes[:1], "none": []}[props.nat]
        for index in nat_azs:
            n = index + 1
            eip = Resource(self, f"nat-eip-{n}", "aws_eip", domain="vpc", tags={"Name": f"{props.name}-nat-{n}"},
                           depends_on=[igw])
            nats[index] = Resource(self, f"nat-{n}", "aws_nat_gateway", allocation_id=eip.attr("allocation_id"),
                                   subnet_id=self.subnets[f"public-{n}"].id_ref,
                                   tags={"Name": f"{props.name}-nat-{n}"}, depends_on=[igw])
        for index in self._az_indexes():
            n = index + 1
            table = self._route_table(f"private-{n}", props)
            nat = nats.get(index) or nats.get(indexes[0])
            if nat is not None:
                Resource(self, f"route-private-{n}-nat", "aws_route", route_table_id=table.id_ref,
                         destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id_ref)
        for planned in self.plan:
            table_key = f"private-{planned.az_index + 1}" if planned.tier == "private" else planned.tier
            Resource(self, f"rta-{planned.key}", "aws_route_table_association",
                     subnet_id=self.subnets[planned.key].id_ref, route_table_id=self.route_tables[table_key].id_ref)

    def _route_table(self, key: str, props: VpcProps) -> Resource:
        table = Resource(self, f"rt-{key}", "aws_route_table", vpc_id=self.vpc_id,
                         tags={"Name": f"{props.name}-{key}"})
        self.route_tables[key] = table
        return table

    def _endpoints(self, props: VpcProps) -> None:
        """Gateway endpoints on every route table; interface endpoints in the private subnets,
        reachable on 443 from the VPC only."""
        for service in GATEWAY_ENDPOINTS:
            endpoint = Resource(self, f"endpoint-{service}", "aws_vpc_endpoint", vpc_id=self.vpc_id,
                                service_name=f"com.amazonaws.{props.region}.{service}",
                                vpc_endpoint_type="Gateway", tags={"Name": f"{props.name}-{service}"})
            for key, table in self.route_tables.items():
                Resource(self, f"endpoint-{service}-{key}", "aws_vpc_endpoint_route_table_association",
                         vpc_endpoint_id=endpoint.id_ref, route_table_id=table.id_ref)
        self.endpoint_security_group = Resource(
            self, "endpoint-sg", "aws_security_group",
            name=f"{props.name}-vpc-endpoints", vpc_id=self.vpc_id,
            description=f"Interface endpoints of {props.name}: HTTPS from inside the VPC only",
            ingress=[{
                "description": "HTTPS from the VPC", "protocol": "tcp", "from_port": 443, "to_port": 443,
                "cidr_blocks": [props.cidr], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                "security_groups": [], "self": False,
            }],
            egress=[],
            tags={"Name": f"{props.name}-vpc-endpoints"},
        )
        self.endpoint_security_group_id = self.endpoint_security_group.id_ref
        self.interface_endpoints: dict[str, Resource] = {}
        private = [p for p in self.plan if p.tier == "private"]
        for service in sorted(set(props.interface_endpoints)):
            key = service.replace(".", "-")
            # subnet_ids on the endpoint: one ModifyVpcEndpoint per change, where one association resource
            # per subnet waited about a minute each in the provider, serialized per endpoint
            self.interface_endpoints[service] = Resource(
                self, f"endpoint-{key}", "aws_vpc_endpoint", vpc_id=self.vpc_id,
                service_name=f"com.amazonaws.{props.region}.{service}",
                vpc_endpoint_type="Interface", private_dns_enabled=True,
                subnet_ids=[self.subnets[p.key].id_ref for p in private],
                security_group_ids=[self.endpoint_security_group_id],
                tags={"Name": f"{props.name}-{service}"})
            for planned in private:
                # fleetform before 2026-12 kept one association resource per subnet: the endpoint's
                # subnet_ids already holds them, destroying them would take the subnets off the endpoint
                self.document.forget("aws_vpc_endpoint_subnet_association."
                                     + readable_logical_id(self, f"endpoint-{key}-{planned.key}"))

    def _flow_logs(self, props: VpcProps) -> None:
        key = KmsKey(self, "flow-log-key", KmsKeyProps(
            alias=f"{props.name}-flow-logs", description=f"{props.name} VPC flow logs",
            account_id=props.account_id, service_principals=[f"logs.{props.region}.amazonaws.com"],
            log_groups=[f"/fleetform/vpc/{props.name}/flow-logs"]))
        group = LogGroup(self, "flow-log-group", LogGroupProps(
            name=f"/fleetform/vpc/{props.name}/flow-logs", kms_key_arn=key.arn,
            retention_days=props.flow_log_retention_days))
        role = Resource(self, "flow-log-role", "aws_iam_role", name=f"{props.name}-vpc-flow-logs",
                        assume_role_policy=policy_json([{
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}},
                        }]))
        Resource(self, "flow-log-policy", "aws_iam_role_policy", name="write-flow-logs", role=role.id_ref,
                 policy=policy_json([{
                     "Effect": "Allow",
                     "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                     "Resource": [group.arn, f"{group.arn}:*"],
                 }]))
        Resource(self, "flow-log", "aws_flow_log", vpc_id=self.vpc_id, traffic_type="ALL",
                 log_destination_type="cloud-watch-logs", log_destination=group.arn, iam_role_arn=role.arn,
                 max_aggregation_interval=60)
