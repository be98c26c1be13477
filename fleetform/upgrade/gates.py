"""Health gates before each traffic step: guard alarms OK, green not worse than blue.

Signals (docs/upgrade.md "Gate signals"): the Application Load Balancers that the AWS Load
Balancer Controller creates for a slot, found by their ``elbv2.k8s.aws/cluster`` tag (= the
slot's EKS cluster name; ``upgrade.ingress_group`` narrows to one ``ingress.k8s.aws/stack``),
and their CloudWatch metrics in ``AWS/ApplicationELB`` with the ``LoadBalancer`` dimension:
``RequestCount`` and ``HTTPCode_Target_5XX_Count`` (Sum per minute), ``TargetResponseTime``
(p99 per minute, seconds). Optionally, PromQL gates against an AMP workspace
(``upgrade.prometheus``). No data is inconclusive: the run pauses, it never passes on silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.credentials import Credentials

from fleetform.aws_session import call
from fleetform.config.models import PrometheusGatesConfig
from fleetform.errors import FleetformError
from fleetform.upgrade import promql
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.permissions import declare
from fleetform.upgrade.target import Target

ALARM_ACTIONS = declare("gate-alarms", "cloudwatch:DescribeAlarms")
METRIC_ACTIONS = declare("gate-metrics", "cloudwatch:GetMetricData")
LB_ACTIONS = declare("gate-load-balancers", "elasticloadbalancing:DescribeLoadBalancers",
                     "elasticloadbalancing:DescribeTags")
PROMQL_ROLE_ACTIONS = declare("gate-promql", "sts:AssumeRole")

# tags that the AWS Load Balancer Controller puts on every load balancer it creates
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
STACK_TAG = "ingress.k8s.aws/stack"
ALB_NAMESPACE = "AWS/ApplicationELB"

PASS, FAIL, INCONCLUSIVE, SKIPPED = "pass", "fail", "inconclusive", "skipped"


@dataclass(frozen=True)
class GateResult:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Traffic:
    requests: float
    errors: float
    latency_p99_ms: float | None
    promql: dict[str, float] = field(default_factory=dict)  # PromQL gate name -> the slot's value

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def verdict(results: list[GateResult]) -> str:
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return FAIL
    if INCONCLUSIVE in statuses:
        return INCONCLUSIVE
    return PASS


def alarm_states(aws: Aws, names: list[str]) -> dict[str, str]:
    """Alarm name -> state (OK, ALARM, INSUFFICIENT_DATA); missing alarms are absent."""
    found: dict[str, str] = {}
    if not names:
        return found
    answer = call(aws.client("cloudwatch").describe_alarms, AlarmNames=names, AlarmTypes=["MetricAlarm",
                                                                                         "CompositeAlarm"])
    for alarm in answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", []):
        found[alarm["AlarmName"]] = alarm["StateValue"]
    return found


def alarm_gate(aws: Aws, target: Target) -> GateResult:
    names = target.alarms
    if not names:
        return GateResult("alarms", FAIL, f"no guard alarms: set clusters.{target.cluster_key}.upgrade.alarms")
    states = alarm_states(aws, names)
    missing = [n for n in names if n not in states]
    firing = [n for n in names if states.get(n) == "ALARM"]
    unknown = [n for n in names if states.get(n) == "INSUFFICIENT_DATA"]
    if missing:
        return GateResult("alarms", FAIL, f"alarm(s) not found: {', '.join(missing)}")
    if firing:
        return GateResult("alarms", FAIL, f"in ALARM: {', '.join(firing)}")
    if unknown:
        return GateResult("alarms", INCONCLUSIVE, f"INSUFFICIENT_DATA: {', '.join(unknown)}")
    return GateResult("alarms", PASS, f"{len(names)} alarm(s) OK")


def load_balancer_dimension(arn: str) -> str:
    """``app/<name>/<id>``: the ``LoadBalancer`` dimension of an ALB's CloudWatch metrics (its ARN's tail)."""
    return arn.split(":loadbalancer/", 1)[1]


def load_balancers(aws: Aws, cluster_name: str, ingress_group: str | None = None) -> list[str]:
    """ARNs of the ALBs that the Load Balancer Controller of ``cluster_name`` created."""
    return load_balancers_of(aws, (cluster_name,), ingress_group)[cluster_name]


def load_balancers_of(aws: Aws, cluster_names: Sequence[str], ingress_group: str | None = None,
                      ) -> dict[str, list[str]]:
    """``{cluster: ALB ARNs}`` for several clusters from one listing of the region's load balancers."""
    elbv2 = aws.client("elbv2")
    arns: list[str] = []
    marker: str | None = None
    while True:
        page = call(elbv2.describe_load_balancers, **({"Marker": marker} if marker else {}))
        arns += [lb["LoadBalancerArn"] for lb in page.get("LoadBalancers", []) if lb.get("Type") == "application"]
        marker = page.get("NextMarker")
        if not marker:
            break
    found: dict[str, list[str]] = {name: [] for name in cluster_names}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for described in call(elbv2.describe_tags, ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            tags = {t["Key"]: t.get("Value", "") for t in described.get("Tags", [])}
            in_group = ingress_group is None or tags.get(STACK_TAG) == ingress_group
            if tags.get(CLUSTER_TAG) in found and in_group:
                found[tags[CLUSTER_TAG]].append(described["ResourceArn"])
    return {name: sorted(found_arns) for name, found_arns in found.items()}


def measure(aws: Aws, target: Target, slot: str, now: datetime,
            arns: Sequence[str] | None = None) -> tuple[Traffic | None, str]:
    """The slot's requests, target 5xx and p99 latency over the window, summed over its ALBs (``arns``,
    or found by their tag); (None, why) when there is no ALB or no request."""
    cfg = target.cluster.upgrade
    name = target.eks_name(slot)
    if arns is None:
        arns = load_balancers(aws, name, cfg.ingress_group)
    if not arns:
        group = f" of IngressGroup {cfg.ingress_group}" if cfg.ingress_group else ""
        return None, f"no data for {name}: no ALB{group} tagged {CLUSTER_TAG}={name}"
    queries: list[dict[str, Any]] = []
    for index, arn in enumerate(arns):
        dims = [{"Name": "LoadBalancer", "Value": load_balancer_dimension(arn)}]
        for kind, metric, stat in (("requests", "RequestCount", "Sum"), ("errors", "HTTPCode_Target_5XX_Count", "Sum"),
                                   ("latency", "TargetResponseTime", "p99")):
            queries.append({"Id": f"{kind}{index}", "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": ALB_NAMESPACE, "MetricName": metric, "Dimensions": dims},
                "Period": 60, "Stat": stat}})
    window = timedelta(minutes=cfg.metrics_window_minutes)
    answer = call(aws.client("cloudwatch").get_metric_data, StartTime=now - window,
                  EndTime=now + timedelta(minutes=1), ScanBy="TimestampDescending", MetricDataQueries=queries)
    values: dict[str, list[float]] = {"requests": [], "errors": [], "latency": []}
    for result in answer["MetricDataResults"]:
        kind = result["Id"].rstrip("0123456789")
        values[kind] += [float(v) for v in result.get("Values", []) if v is not None]
    if sum(values["requests"]) <= 0:
        return None, f"no data for {name}: no requests at its ALB in the last {cfg.metrics_window_minutes} min"
    latency = max(values["latency"]) * 1000 if values["latency"] else None
    return Traffic(sum(values["requests"]), sum(values["errors"]), latency), ""


def traffic(aws: Aws, target: Target, slot: str, now: datetime) -> Traffic | None:
    """The slot's requests, errors and p99 latency over the window; None when there is no data."""
    return measure(aws, target, slot, now)[0]


def metric_gates(aws: Aws, target: Target, weights: dict[str, int], now: datetime,
                 baseline: Traffic | None = None) -> tuple[list[GateResult], Traffic | None]:
    """5xx rate and latency of the new slot against the live one; returns (results, live traffic)."""
    live, new = target.live_slot, target.new_slot
    if weights.get(new, 0) == 0:
        note = f"{new} has no traffic yet (weight 0): nothing to compare; alarms guard this step"
        return [GateResult("5xx-rate", SKIPPED, note), GateResult("latency-p99", SKIPPED, note)], None
    albs = load_balancers_of(aws, (target.eks_name(new), target.eks_name(live)), target.cluster.upgrade.ingress_group)
    green, green_why = measure(aws, target, new, now, albs[target.eks_name(new)])
    # at weight 0 the window may still hold the live slot's last minutes
    blue, blue_why = measure(aws, target, live, now, albs[target.eks_name(live)])
    blue_source = "now"
    if blue is None and baseline is not None:
        blue, blue_source = baseline, "baseline recorded before its weight reached 0"
    if green is None or blue is None:
        detail = "; ".join(why for t, why in ((green, green_why), (blue, blue_why)) if t is None)
        return [GateResult("5xx-rate", INCONCLUSIVE, detail), GateResult("latency-p99", INCONCLUSIVE, detail)], blue
    cfg = target.cluster.upgrade
    results = []
    diff = green.error_rate - blue.error_rate
    status = FAIL if diff > cfg.error_rate_margin else PASS
    results.append(GateResult("5xx-rate", status, f"{new} {green.error_rate:.3%} vs {live} {blue.error_rate:.3%} "
                                                  f"({blue_source}); margin {cfg.error_rate_margin:.2%}"))
    if green.latency_p99_ms is None or blue.latency_p99_ms is None:
        results.append(GateResult("latency-p99", INCONCLUSIVE, "no TargetResponseTime data"))
    else:
        delta = green.latency_p99_ms - blue.latency_p99_ms
        status = FAIL if delta > cfg.latency_margin_ms else PASS
        results.append(GateResult("latency-p99", status, f"{new} {green.latency_p99_ms:.0f} ms vs {live} "
                                                         f"{blue.latency_p99_ms:.0f} ms; margin "
                                                         f"{cfg.latency_margin_ms:.0f} ms"))
    return results, blue if blue_source == "now" else baseline


def promql_gates(aws: Aws, target: Target, weights: dict[str, int], now: datetime,
                 baseline: Traffic | None = None) -> tuple[list[GateResult], dict[str, float]]:
    """Each ``upgrade.prometheus.gates`` query for green and blue: green - blue above the margin fails.
    Returns (results, blue's values measured now)."""
    cfg = target.cluster.upgrade.prometheus
    if cfg is None:
        return [], {}
    live, new = target.live_slot, target.new_slot
    names = [f"promql:{name}" for name in cfg.gates]
    if weights.get(new, 0) == 0:
        note = f"{new} has no traffic yet (weight 0): nothing to compare"
        return [GateResult(name, SKIPPED, note) for name in names], {}
    try:
        client = promql_client(aws, target)
    except FleetformError as exc:
        return [GateResult(name, INCONCLUSIVE, str(exc)) for name in names], {}
    results: list[GateResult] = []
    blue_now: dict[str, float] = {}
    for (name, gate), label in zip(cfg.gates.items(), names, strict=True):
        green, green_why = _promql_value(client, gate.query, target.eks_name(new), now)
        blue, blue_why = _promql_value(client, gate.query, target.eks_name(live), now)
        source = "now"
        if blue is not None:
            blue_now[name] = blue
        elif baseline is not None and name in baseline.promql:
            blue, source = baseline.promql[name], "baseline recorded before its weight reached 0"
        if green is None or blue is None:
            why = "; ".join(f"{s}: {w}" for s, v, w in ((new, green, green_why), (live, blue, blue_why)) if v is None)
            results.append(GateResult(label, INCONCLUSIVE, why))
            continue
        status = FAIL if green - blue > gate.margin else PASS
        results.append(GateResult(label, status, f"{new} {green:g} vs {live} {blue:g} ({source}); "
                                                 f"margin {gate.margin:g}"))
    return results, blue_now


def workspace_arn(cfg: PrometheusGatesConfig, region: str, account_id: str) -> str:
    """The workspace's ARN: in the account of ``role_arn`` when one is set, else the cluster's account."""
    owner = cfg.role_arn.split(":")[4] if cfg.role_arn else account_id
    return f"arn:aws:aps:{cfg.region or region}:{owner}:workspace/{cfg.workspace}"


def promql_client(aws: Aws, target: Target) -> promql.PromQLClient:
    """A query client for the configured workspace, through ``role_arn`` when the workspace is elsewhere."""
    cfg = target.cluster.upgrade.prometheus
    assert cfg is not None
    region = cfg.region or target.region
    if cfg.role_arn:
        creds = call(aws.client("sts").assume_role, RoleArn=cfg.role_arn,
                     RoleSessionName="fleetform-upgrade-gates")["Credentials"]
        credentials = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        return promql.PromQLClient(promql.workspace_url(cfg.workspace, region, aws.endpoint_url), region, credentials)
    return promql.client_for(aws.session, region, cfg.workspace, aws.endpoint_url)


def _promql_value(client: promql.PromQLClient, query: str, cluster_name: str,
                  now: datetime) -> tuple[float | None, str]:
    try:
        samples = [s for s in client.query(query.replace("$cluster", cluster_name), now) if not s.is_nan]
    except FleetformError as exc:
        return None, str(exc)
    if len(samples) != 1:
        return None, f"the query gave {len(samples)} values, not one (aggregate it, e.g. sum(...))"
    return samples[0].value, ""


def run_gates(aws: Aws, target: Target, weights: dict[str, int], now: datetime,
              baseline: Traffic | None = None) -> tuple[list[GateResult], Traffic | None]:
    results = [alarm_gate(aws, target)]
    metric_results, live_traffic = metric_gates(aws, target, weights, now, baseline)
    promql_results, live_promql = promql_gates(aws, target, weights, now, baseline)
    if live_traffic is not None and (live_promql or (baseline and baseline.promql)):
        kept = baseline.promql if baseline else {}
        live_traffic = replace(live_traffic, promql={**kept, **live_traffic.promql, **live_promql})
    return results + metric_results + promql_results, live_traffic
