"""Seed a moto server as if the pipeline had applied accounts/: VPCs and subnets, EKS clusters
per slot with node groups, hosted zones with one weighted record per slot, guard alarms in OK,
and per-slot traffic metrics (``emit_traffic``, which the sandbox repeats every second).

moto serves one fake account (``SANDBOX_ACCOUNT_ID``): every configured account is seeded into
it; names (``prod-main-blue``, zones, alarms) keep them apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleetform import naming
from fleetform.config.models import Account, ClusterConfig, FleetConfig
from fleetform.config.network import subnet_plan
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.state import utcnow
from fleetform.upgrade.target import Target, live_and_new
from fleetform.upgrade.weights import WeightedRecords

SANDBOX_ROLE = "arn:aws:iam::123456789012:role/fleetform-sandbox"
HEALTHY = {"requests": 1200.0, "error_rate": 0.001, "latency_ms": 120.0}


def seed(aws_for: Any, config: FleetConfig, only: set[str] | None = None) -> dict[str, Any]:
    """``aws_for(region) -> Aws``; ``only``: account names (default all). Returns what was created."""
    summary: dict[str, Any] = {"clusters": [], "zones": [], "alarms": [], "records": []}
    for account in config.accounts:
        if only is not None and account.name not in only:
            continue
        spec = account.spec
        aws = aws_for(config.region_of(account))
        subnets = _network(aws, account) if spec.network else []
        for key, cluster in spec.clusters.items():
            for slot, slot_cfg in cluster.slots.items():
                name = naming.cluster_name(account.name, key, slot)
                _cluster(aws, name, slot_cfg.version, cluster, subnets)
                summary["clusters"].append(name)
            for alarm in cluster.upgrade.alarms:
                _alarm(aws, alarm, naming.cluster_name(account.name, key, live_and_new(cluster)[0]))
                summary["alarms"].append(alarm)
        if spec.dns:
            zone_id = _zone(aws, spec.dns.zone)
            summary["zones"].append(spec.dns.zone)
            for key, cluster in spec.clusters.items():
                if cluster.hostname:
                    _records(aws, config, account, key, cluster, zone_id)
                    summary["records"].append(cluster.hostname)
    emit_traffic(aws_for, config, utcnow(), only=only)
    return summary


def _network(aws: Aws, account: Account) -> list[str]:
    ec2 = aws.client("ec2")
    network = account.spec.network
    assert network is not None
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    vpc = ec2.create_vpc(CidrBlock=network.cidr, TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": account.name}]}])["Vpc"]["VpcId"]
    ids = []
    for planned in subnet_plan(network.cidr, network.azs):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=planned.cidr,
                                   AvailabilityZone=zones[planned.az_index % len(zones)],
                                   TagSpecifications=[{"ResourceType": "subnet", "Tags": [
                                       {"Key": "Name", "Value": f"{account.name}-{planned.key}"},
                                       {"Key": "fleetform:tier", "Value": planned.tier}]}])["Subnet"]
        if planned.tier in ("private", "intra"):
            ids.append(subnet["SubnetId"])
    return ids


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


def _alarm(aws: Aws, name: str, cluster_name: str) -> None:
    cloudwatch = aws.client("cloudwatch")
    metric = "LatencyP99" if "latency" in name else "5xxCount"
    cloudwatch.put_metric_alarm(AlarmName=name, Namespace=naming.TRAFFIC_METRICS_NAMESPACE, MetricName=metric,
                                Dimensions=[{"Name": "Cluster", "Value": cluster_name}], Statistic="Maximum",
                                Period=60, EvaluationPeriods=3, Threshold=1000 if metric == "LatencyP99" else 50,
                                ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
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


def emit_traffic(aws_for: Any, config: FleetConfig, moment: datetime, only: set[str] | None = None) -> None:
    """Per-slot metrics in proportion to the current weights (a slot at weight 0 gets no requests)."""
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
                put_traffic(aws, naming.cluster_name(account.name, key, slot), moment, requests,
                            requests * HEALTHY["error_rate"], HEALTHY["latency_ms"])


def put_traffic(aws: Aws, cluster_name: str, moment: datetime, requests: float, errors: float,
                latency_ms: float) -> None:
    dims = [{"Name": "Cluster", "Value": cluster_name}]
    aws.client("cloudwatch").put_metric_data(Namespace=naming.TRAFFIC_METRICS_NAMESPACE, MetricData=[
        {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": moment, "Value": requests, "Unit": "Count"},
        {"MetricName": "5xxCount", "Dimensions": dims, "Timestamp": moment, "Value": errors, "Unit": "Count"},
        {"MetricName": "LatencyP99", "Dimensions": dims, "Timestamp": moment, "Value": latency_ms,
         "Unit": "Milliseconds"},
    ])
