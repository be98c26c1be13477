"""Seed a moto server as if the pipeline had applied accounts/: VPCs and subnets, EKS clusters
per slot with node groups, hosted zones with one weighted record per slot, per slot of a cluster
with a hostname the ALB that the AWS Load Balancer Controller would create (its tags as the
controller sets them), guard alarms on those ALBs' metrics in OK, and the ALBs' ``AWS/ApplicationELB``
metrics (``emit_traffic``, which the sandbox repeats every second), and the ops cluster's Amazon
Managed Prometheus workspace (by its alias), which the proxy answers Argo CD's ``argocd_app_info`` from.

moto serves one fake account (``SANDBOX_ACCOUNT_ID``): every configured account is seeded into
it; names (``prod-main-blue``, zones, alarms) keep them apart.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from fleetform import naming
from fleetform.config.hub import hub_plan
from fleetform.config.models import Account, ClusterConfig, FleetConfig
from fleetform.config.network import subnet_plan
from fleetform.upgrade import gates
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.state import utcnow
from fleetform.upgrade.target import Target, live_and_new
from fleetform.upgrade.weights import WeightedRecords

SANDBOX_ROLE = "arn:aws:iam::123456789012:role/fleetform-sandbox"
HEALTHY = {"requests": 1200.0, "error_rate": 0.001, "latency_ms": 120.0}
# the ingress of the example's web app (an IngressGroup, as the controller tags its ALB)
INGRESS_GROUP = "web"


def seed(aws_for: Any, config: FleetConfig, only: set[str] | None = None) -> dict[str, Any]:
    """``aws_for(region) -> Aws``; ``only``: account names (default all). Returns what was created."""
    summary: dict[str, Any] = {"clusters": [], "zones": [], "alarms": [], "records": [], "load_balancers": []}
    for account in config.accounts:
        if only is not None and account.name not in only:
            continue
        spec = account.spec
        aws = aws_for(config.region_of(account))
        subnets, public = _network(aws, account) if spec.network else ([], [])
        for key, cluster in spec.clusters.items():
            dimensions = {}
            for slot, slot_cfg in cluster.slots.items():
                name = naming.cluster_name(account.name, key, slot)
                _cluster(aws, name, slot_cfg.version, cluster, subnets)
                summary["clusters"].append(name)
                if cluster.hostname and public:
                    arn = _load_balancer(aws, name, cluster.upgrade.ingress_group or INGRESS_GROUP, public)
                    dimensions[slot] = gates.load_balancer_dimension(arn)
                    summary["load_balancers"].append(arn)
            live = live_and_new(cluster)[0]
            for alarm in cluster.upgrade.alarms:
                if live in dimensions:
                    _alarm(aws, alarm, dimensions[live])
                    summary["alarms"].append(alarm)
        if spec.dns:
            zone_id = _zone(aws, spec.dns.zone)
            summary["zones"].append(spec.dns.zone)
            for key, cluster in spec.clusters.items():
                if cluster.hostname:
                    _records(aws, config, account, key, cluster, zone_id)
                    summary["records"].append(cluster.hostname)
    plan = hub_plan(config)
    if plan is not None and (only is None or plan.ops_account.name in only):
        alias = naming.amp_workspace_alias(plan.ops_account.name, plan.ops_cluster)
        aws_for(config.region_of(plan.ops_account)).client("amp").create_workspace(alias=alias)
        summary["workspaces"] = [alias]
    emit_traffic(aws_for, config, utcnow(), only=only)
    return summary


def _network(aws: Aws, account: Account) -> tuple[list[str], list[str]]:
    """(private and intra subnet ids, public subnet ids)"""
    ec2 = aws.client("ec2")
    network = account.spec.network
    assert network is not None
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    vpc = ec2.create_vpc(CidrBlock=network.cidr, TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": account.name}]}])["Vpc"]["VpcId"]
    ids, public = [], []
    for planned in subnet_plan(network.cidr, network.azs):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=planned.cidr,
                                   AvailabilityZone=zones[planned.az_index % len(zones)],
                                   TagSpecifications=[{"ResourceType": "subnet", "Tags": [
                                       {"Key": "Name", "Value": f"{account.name}-{planned.key}"},
                                       {"Key": "fleetform:tier", "Value": planned.tier}]}])["Subnet"]
        if planned.tier in ("private", "intra"):
            ids.append(subnet["SubnetId"])
        elif planned.tier == "public":
            public.append(subnet["SubnetId"])
    return ids, public


def _cluster(aws: Aws, name: str, version: str, cluster: ClusterConfig, subnets: list[str]) -> None:
    eks = aws.client("eks")
    eks.create_cluster(name=name, version=version, roleArn=SANDBOX_ROLE,
                       resourcesVpcConfig={"subnetIds": subnets, "endpointPrivateAccess": True,
                                           "endpointPublicAccess": False})
    for group_name, group in cluster.node_groups.items():
        desired = group.desired if group.desired is not None else group.min
        ami = group.ami_type or ("AL2023_x86_64_NVIDIA" if group.gpu else "AL2023_x86_64_STANDARD")
        eks.create_nodegroup(clusterName=name, nodegroupName=group_name, nodeRole=SANDBOX_ROLE, subnets=subnets,
                             scalingConfig={"minSize": group.min, "maxSize": group.max, "desiredSize": desired},
                             instanceTypes=list(group.instance_types), amiType=ami,
                             capacityType="SPOT" if group.capacity == "spot" else "ON_DEMAND")


def _load_balancer(aws: Aws, cluster_name: str, group: str, subnets: list[str]) -> str:
    """The ALB the AWS Load Balancer Controller creates for an IngressGroup: its name
    ``k8s-<group>-<hash>`` and its tags (elbv2.k8s.aws/cluster, ingress.k8s.aws/stack, .../resource)."""
    digest = hashlib.sha256(cluster_name.encode()).hexdigest()[:10]
    answer = aws.client("elbv2").create_load_balancer(
        Name=f"k8s-{group}-{digest}"[:32], Subnets=subnets, Scheme="internet-facing", Type="application",
        Tags=[{"Key": gates.CLUSTER_TAG, "Value": cluster_name}, {"Key": gates.STACK_TAG, "Value": group},
              {"Key": "ingress.k8s.aws/resource", "Value": "LoadBalancer"}])
    return answer["LoadBalancers"][0]["LoadBalancerArn"]


def _alarm(aws: Aws, name: str, dimension: str) -> None:
    """A guard alarm as docs/upgrade.md recommends: on the live slot's ALB, target 5xx or p99 latency."""
    cloudwatch = aws.client("cloudwatch")
    common: dict[str, Any] = {"AlarmName": name, "Namespace": gates.ALB_NAMESPACE, "Period": 60,
                              "Dimensions": [{"Name": "LoadBalancer", "Value": dimension}], "EvaluationPeriods": 3,
                              "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    if "latency" in name:
        cloudwatch.put_metric_alarm(MetricName="TargetResponseTime", ExtendedStatistic="p99", Threshold=1.0,
                                    **common)
    else:
        cloudwatch.put_metric_alarm(MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Threshold=50,
                                    **common)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: seeded healthy")


def _zone(aws: Aws, zone: str) -> str:
    route53 = aws.client("route53")
    answer = route53.create_hosted_zone(Name=zone, CallerReference=f"fleetform-sandbox-{zone}")
    return answer["HostedZone"]["Id"].split("/")[-1]


def _records(aws: Aws, config: FleetConfig, account: Account, key: str, cluster: ClusterConfig,
             zone_id: str) -> None:
    live, _ = live_and_new(cluster)
    weights = {slot: (cfg.weight if cfg.weight is not None else (100 if slot == live else 0))
               for slot, cfg in cluster.slots.items()}
    target = Target(config, account, key, cluster, *live_and_new(cluster))
    records = WeightedRecords(aws, target)
    records._zone_id = zone_id
    records.change(weights, "fleetform sandbox seed")


def emit_traffic(aws_for: Any, config: FleetConfig, moment: datetime, only: set[str] | None = None,
                 cache: dict[str, str] | None = None) -> dict[str, float]:
    """Per-slot ALB metrics in proportion to the current weights (a slot at weight 0 gets no requests).
    ``cache``: cluster name -> ALB dimension, kept by a caller that emits again and again.
    Returns the error ratio of each slot that served requests (the sandbox's PromQL answers)."""
    served: dict[str, float] = {}
    for account in config.accounts:
        if only is not None and account.name not in only:
            continue
        aws = aws_for(config.region_of(account))
        for key, cluster in account.spec.clusters.items():
            if not cluster.hostname or account.spec.dns is None:
                continue
            target = Target(config, account, key, cluster, *live_and_new(cluster))
            weights = WeightedRecords(aws, target).weights()
            total = sum(weights.values()) or 1
            for slot, weight in weights.items():
                if weight == 0:
                    continue
                requests = HEALTHY["requests"] * weight / total
                name = naming.cluster_name(account.name, key, slot)
                put_traffic(aws, name, moment, requests, requests * HEALTHY["error_rate"], HEALTHY["latency_ms"],
                            cache)
                served[name] = HEALTHY["error_rate"]
    return served


def put_traffic(aws: Aws, cluster_name: str, moment: datetime, requests: float, errors: float,
                latency_ms: float, cache: dict[str, str] | None = None) -> None:
    """What CloudWatch records for the slot's ALB in a minute: requests, target 5xx, and response
    times (seconds) whose p99 is ``latency_ms``."""
    cache = {} if cache is None else cache
    if cluster_name not in cache:
        arns = gates.load_balancers(aws, cluster_name)
        if not arns:
            return  # a slot without an ingress serves nothing
        cache[cluster_name] = gates.load_balancer_dimension(arns[0])
    dims = [{"Name": "LoadBalancer", "Value": cache[cluster_name]}]
    seconds = latency_ms / 1000
    aws.client("cloudwatch").put_metric_data(Namespace=gates.ALB_NAMESPACE, MetricData=[
        {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": moment, "Value": requests, "Unit": "Count"},
        {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Timestamp": moment, "Value": errors,
         "Unit": "Count"},
        {"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": moment,
         "Values": [seconds * 0.4, seconds * 0.7, seconds], "Counts": [6, 3, 1], "Unit": "Seconds"},
    ])
