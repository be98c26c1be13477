"""VPC: subnets per AZ and tier keyed by stable names, flow logs, locked default security group."""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import Fn
from constructs import Construct

from fleetform.config.network import PlannedSubnet, subnet_plan
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.logs import LogGroup, LogGroupProps
from fleetform.engine import DataSource, Resource, policy_json


@dataclass(frozen=True)
class VpcProps:
    name: str
    cidr: str
    azs: int
    account_id: str
    region: str
    flow_log_retention_days: int = 365


class Vpc(Construct):
    """Attributes: ``vpc_id``, ``subnet_ids`` (tier -> list of ids), ``subnets`` (key -> resource)."""

    def __init__(self, scope: Construct, id: str, props: VpcProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.plan: list[PlannedSubnet] = subnet_plan(props.cidr, props.azs)
        self.vpc = Resource(self, "vpc", "aws_vpc", cidr_block=props.cidr, enable_dns_support=True,
                            enable_dns_hostnames=True, tags={"Name": props.name})
        self.vpc_id = self.vpc.id_ref
        Resource(self, "default-sg", "aws_default_security_group", vpc_id=self.vpc_id,
                 tags={"Name": f"{props.name}-default-deny-all"})
        zones = DataSource(self, "azs", "aws_availability_zones", state="available",
                           filter=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}])
        self.subnets: dict[str, Resource] = {}
        self.subnet_ids: dict[str, list[str]] = {}
        for planned in self.plan:
            subnet = Resource(
                self, f"subnet-{planned.key}", "aws_subnet",
                vpc_id=self.vpc_id,
                cidr_block=planned.cidr,
                availability_zone=Fn.element(zones.get_list_attribute("names"), planned.az_index),
                map_public_ip_on_launch=False,
                tags={"Name": f"{props.name}-{planned.key}", "fleetform:tier": planned.tier},
            )
            self.subnets[planned.key] = subnet
            self.subnet_ids.setdefault(planned.tier, []).append(subnet.id_ref)
        self._flow_logs(props)

    def _flow_logs(self, props: VpcProps) -> None:
        key = KmsKey(self, "flow-log-key", KmsKeyProps(
            alias=f"{props.name}-flow-logs", description=f"{props.name} VPC flow logs",
            account_id=props.account_id, service_principals=[f"logs.{props.region}.amazonaws.com"]))
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
