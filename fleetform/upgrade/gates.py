"""Health gates before each traffic step: guard alarms OK, green not worse than blue.

Metric convention (the sandbox seeds it; docs/upgrade.md): namespace
``naming.TRAFFIC_METRICS_NAMESPACE``, dimension ``Cluster`` = the slot's EKS cluster name,
``RequestCount`` and ``5xxCount`` (Sum per minute), ``LatencyP99`` (milliseconds, Maximum).
No data is inconclusive: the run pauses, it never passes on silence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from fleetform import naming
from fleetform.aws_session import call
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.permissions import declare
from fleetform.upgrade.target import Target

ALARM_ACTIONS = declare("gate-alarms", "cloudwatch:DescribeAlarms")
METRIC_ACTIONS = declare("gate-metrics", "cloudwatch:GetMetricData")

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


def traffic(aws: Aws, target: Target, slot: str, now: datetime) -> Traffic | None:
    """The slot's requests, errors and p99 latency over the window; None when there is no data."""
    window = target.cluster.upgrade.metrics_window_minutes
    dims = [{"Name": "Cluster", "Value": target.eks_name(slot)}]

    def query(qid: str, metric: str, stat: str) -> dict[str, Any]:
        return {"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": naming.TRAFFIC_METRICS_NAMESPACE, "MetricName": metric, "Dimensions": dims},
            "Period": 60, "Stat": stat}}

    answer = call(aws.client("cloudwatch").get_metric_data, StartTime=now - timedelta(minutes=window),
                  EndTime=now + timedelta(minutes=1), ScanBy="TimestampDescending", MetricDataQueries=[
                      query("requests", "RequestCount", "Sum"), query("errors", "5xxCount", "Sum"),
                      query("latency", "LatencyP99", "Maximum")])
    values = {r["Id"]: r.get("Values", []) for r in answer["MetricDataResults"]}
    if not values.get("requests") or sum(values["requests"]) <= 0:
        return None
    latency = values.get("latency") or []
    return Traffic(float(sum(values["requests"])), float(sum(values.get("errors") or [])),
                   float(max(latency)) if latency else None)


def metric_gates(aws: Aws, target: Target, weights: dict[str, int], now: datetime,
                 baseline: Traffic | None = None) -> tuple[list[GateResult], Traffic | None]:
    """5xx rate and latency of the new slot against the live one; returns (results, live traffic)."""
    live, new = target.live_slot, target.new_slot
    if weights.get(new, 0) == 0:
        note = f"{new} has no traffic yet (weight 0): nothing to compare; alarms guard this step"
        return [GateResult("5xx-rate", SKIPPED, note), GateResult("latency-p99", SKIPPED, note)], None
    green = traffic(aws, target, new, now)
    blue = traffic(aws, target, live, now)  # at weight 0 the window may still hold its last minutes
    blue_source = "now"
    if blue is None and baseline is not None:
        blue, blue_source = baseline, "baseline recorded before its weight reached 0"
    if green is None or blue is None:
        missing = ", ".join(s for s, t in ((new, green), (live, blue)) if t is None)
        detail = f"no data for {missing} in the last {target.cluster.upgrade.metrics_window_minutes} min"
        return [GateResult("5xx-rate", INCONCLUSIVE, detail), GateResult("latency-p99", INCONCLUSIVE, detail)], blue
    cfg = target.cluster.upgrade
    results = []
    diff = green.error_rate - blue.error_rate
    status = FAIL if diff > cfg.error_rate_margin else PASS
    results.append(GateResult("5xx-rate", status, f"{new} {green.error_rate:.3%} vs {live} {blue.error_rate:.3%} "
                                                  f"({blue_source}); margin {cfg.error_rate_margin:.2%}"))
    if green.latency_p99_ms is None or blue.latency_p99_ms is None:
        results.append(GateResult("latency-p99", INCONCLUSIVE, "no LatencyP99 data"))
    else:
        delta = green.latency_p99_ms - blue.latency_p99_ms
        status = FAIL if delta > cfg.latency_margin_ms else PASS
        results.append(GateResult("latency-p99", status, f"{new} {green.latency_p99_ms:.0f} ms vs {live} "
                                                         f"{blue.latency_p99_ms:.0f} ms; margin "
                                                         f"{cfg.latency_margin_ms:.0f} ms"))
    return results, blue if blue_source == "now" else baseline


def run_gates(aws: Aws, target: Target, weights: dict[str, int], now: datetime,
              baseline: Traffic | None = None) -> tuple[list[GateResult], Traffic | None]:
    results = [alarm_gate(aws, target)]
    metric_results, live_traffic = metric_gates(aws, target, weights, now, baseline)
    return results + metric_results, live_traffic
