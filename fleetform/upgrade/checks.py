"""The read-only checks of ``plan`` (before green exists) and ``verify`` (green is ready).

Each check declares its IAM actions and returns pass / warn / fail / unknown with a
remediation. An API the endpoint does not offer, or one the caller may not call, makes the
check "unknown", never "pass".
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetform import naming
from fleetform.aws_session import ApiUnavailable, AwsError, call
from fleetform.config.checks import MAX_MINOR_JUMP, instance_family
from fleetform.errors import FleetformError
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.gates import alarm_states
from fleetform.upgrade.permissions import declare
from fleetform.upgrade.state import Store
from fleetform.upgrade.target import Target, version_tuple
from fleetform.upgrade.weights import WeightedRecords

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
# nodes need an address each plus the pods' addresses (VPC CNI, secondary IPs): a planning figure
IPS_PER_NODE = 30
CONTROL_PLANE_IPS = 8
# AMI families EKS stops publishing from a Kubernetes version on (Amazon Linux 2: none for 1.33+)
DROPPED_AMI_TYPES = {"AL2_": (1, 33), "WINDOWS_CORE_2019": (1, 36), "WINDOWS_FULL_2019": (1, 36)}
# EC2 vCPU quotas: (on-demand, spot) per instance family class
_QUOTAS = {"standard": ("L-1216C47A", "L-34B43A08"), "g": ("L-DB2E81BA", "L-3819A6DF"),
           "p": ("L-417A185B", "L-7212CCBC")}


@dataclass
class CheckResult:
    id: str
    title: str
    status: str
    detail: str
    remediation: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "status": self.status, "detail": self.detail,
                "remediation": self.remediation if self.status != PASS else ""}


@dataclass
class CheckContext:
    aws: Aws
    target: Target
    to_version: str
    store: Store | None = None
    now: datetime | None = None
    smoke_base_url: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def cluster(self, slot: str) -> dict[str, Any]:
        key = f"cluster:{slot}"
        if key not in self.cache:
            self.cache[key] = call(self.aws.client("eks").describe_cluster,
                                   name=self.target.eks_name(slot))["cluster"]
        return self.cache[key]

    def nodegroups(self, slot: str) -> list[dict[str, Any]]:
        key = f"nodegroups:{slot}"
        if key not in self.cache:
            eks = self.aws.client("eks")
            name = self.target.eks_name(slot)
            names = call(eks.list_nodegroups, clusterName=name)["nodegroups"]
            self.cache[key] = [call(eks.describe_nodegroup, clusterName=name, nodegroupName=n)["nodegroup"]
                               for n in names]
        return self.cache[key]


Outcome = tuple[str, str]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    remediation: str
    actions: tuple[str, ...]
    run: Callable[[CheckContext], Outcome]


def run_checks(checks: list[Check], ctx: CheckContext) -> list[CheckResult]:
    results = []
    for check in checks:
        try:
            status, detail = check.run(ctx)
        except ApiUnavailable as exc:
            status, detail = UNKNOWN, f"{exc}; check this by hand"
        except AwsError as exc:
            if exc.code in ("ResourceNotFoundException", "NoSuchEntity") and check.id in _NOT_FOUND_FAILS:
                status, detail = FAIL, str(exc)
            else:
                status, detail = UNKNOWN, str(exc)
        except FleetformError as exc:
            status, detail = UNKNOWN, str(exc)
        results.append(CheckResult(check.id, check.title, status, detail, check.remediation))
    return results


def blocking(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == FAIL]


_NOT_FOUND_FAILS = {"blue-active", "node-groups", "green-active", "green-node-groups"}


def _check(id: str, title: str, remediation: str, *actions: str) -> Callable[[Callable], Check]:
    def wrap(func: Callable[[CheckContext], Outcome]) -> Check:
        return Check(id, title, remediation, declare(f"check:{id}", *actions), func)

    return wrap


# ----------------------------------------------------------------------------- plan


@_check("blue-active", "live cluster ACTIVE and healthy",
        "fix the live cluster first (EKS console: cluster health); the upgrade starts from a healthy cluster",
        "eks:DescribeCluster")
def blue_active(ctx: CheckContext) -> Outcome:
    live = ctx.target.live_slot
    cluster = ctx.cluster(live)
    issues = (cluster.get("health") or {}).get("issues") or []
    if cluster["status"] != "ACTIVE":
        return FAIL, f"{cluster['name']} is {cluster['status']}"
    if issues:
        return FAIL, f"{cluster['name']} health issues: " + "; ".join(i.get("message", i.get("code", "?"))
                                                                      for i in issues)
    return PASS, f"{cluster['name']} ACTIVE at {cluster['version']}"


@_check("target-version", "target version exists and is in standard support",
        "pick a version in standard support: aws eks describe-cluster-versions", "eks:DescribeClusterVersions")
def target_version(ctx: CheckContext) -> Outcome:
    answer = call(ctx.aws.client("eks").describe_cluster_versions, clusterVersions=[ctx.to_version],
                  includeAll=True)
    found = [v for v in answer.get("clusterVersions", []) if v.get("clusterVersion") == ctx.to_version]
    if not found:
        return FAIL, f"EKS does not offer Kubernetes {ctx.to_version}"
    info = found[0]
    status = info.get("versionStatus") or str(info.get("status", "")).upper().replace("-", "_")
    end = info.get("endOfStandardSupportDate")
    until = f" until {end:%Y-%m-%d}" if hasattr(end, "strftime") else ""
    if status == "STANDARD_SUPPORT":
        return PASS, f"{ctx.to_version} is in standard support{until}"
    if status == "EXTENDED_SUPPORT":
        return WARN, f"{ctx.to_version} is only in extended support (extra cost)"
    return FAIL, f"{ctx.to_version} is {status or 'of unknown status'}"


@_check("version-jump", f"jump of at most {MAX_MINOR_JUMP} minor versions, forwards",
        f"choose a target 1 to {MAX_MINOR_JUMP} minor versions above the live slot", "eks:DescribeCluster")
def version_jump(ctx: CheckContext) -> Outcome:
    current = ctx.cluster(ctx.target.live_slot)["version"]
    now, to = version_tuple(current), version_tuple(ctx.to_version)
    if to[0] != now[0] or to[1] <= now[1]:
        return FAIL, f"{current} -> {ctx.to_version} does not move forwards"
    if to[1] - now[1] > MAX_MINOR_JUMP:
        return FAIL, f"{current} -> {ctx.to_version} jumps {to[1] - now[1]} minor versions"
    configured = ctx.target.version_of(ctx.target.new_slot)
    if configured is not None and configured != ctx.to_version:
        return FAIL, f"the configuration already has {ctx.target.new_slot} at {configured}, not {ctx.to_version}"
    return PASS, f"{current} -> {ctx.to_version} ({to[1] - now[1]} minor)"


@_check("addon-versions", "every add-on has a version for the target",
        "remove or replace add-ons without a build for the target before upgrading",
        "eks:ListAddons", "eks:DescribeAddonVersions")
def addon_versions(ctx: CheckContext) -> Outcome:
    eks = ctx.aws.client("eks")
    addons = call(eks.list_addons, clusterName=ctx.target.eks_name(ctx.target.live_slot))["addons"]
    missing = []
    for addon in addons:
        answer = call(eks.describe_addon_versions, addonName=addon, kubernetesVersion=ctx.to_version)
        versions = [v for a in answer.get("addons", []) for v in a.get("addonVersions", [])]
        if not versions:
            missing.append(addon)
    if missing:
        return FAIL, f"no version for {ctx.to_version}: {', '.join(missing)}"
    return PASS, f"{len(addons)} add-on(s) available for {ctx.to_version}"


@_check("upgrade-insights", "EKS upgrade insights have no errors",
        "read the insight (aws eks describe-insight) and fix deprecated API use before upgrading",
        "eks:ListInsights")
def upgrade_insights(ctx: CheckContext) -> Outcome:
    answer = call(ctx.aws.client("eks").list_insights, clusterName=ctx.target.eks_name(ctx.target.live_slot),
                  filter={"categories": ["UPGRADE_READINESS"]})
    insights = answer.get("insights", [])
    errors = [i["name"] for i in insights if i.get("insightStatus", {}).get("status") == "ERROR"]
    warnings = [i["name"] for i in insights if i.get("insightStatus", {}).get("status") in ("WARNING", "UNKNOWN")]
    if errors:
        return FAIL, "errors: " + "; ".join(errors)
    if warnings:
        return WARN, "warnings: " + "; ".join(warnings)
    return PASS, f"{len(insights)} insight(s), none failing"


@_check("node-groups", "node groups healthy, none on an AMI type the target drops",
        "fix unhealthy node groups; move AL2 node groups to AL2023 or Bottlerocket (ami_type in the YAML)",
        "eks:ListNodegroups", "eks:DescribeNodegroup")
def node_groups(ctx: CheckContext) -> Outcome:
    groups = ctx.nodegroups(ctx.target.live_slot)
    if not groups:
        return FAIL, "the live cluster has no node groups"
    problems = []
    to = version_tuple(ctx.to_version)
    for group in groups:
        name = group["nodegroupName"]
        issues = (group.get("health") or {}).get("issues") or []
        if group["status"] != "ACTIVE":
            problems.append(f"{name} is {group['status']}")
        elif issues:
            problems.append(f"{name}: {issues[0].get('message', issues[0].get('code'))}")
        ami = group.get("amiType", "")
        for prefix, since in DROPPED_AMI_TYPES.items():
            if ami.startswith(prefix) and to >= since:
                problems.append(f"{name} uses {ami}, not published for {since[0]}.{since[1]}+")
    if problems:
        return FAIL, "; ".join(problems)
    return PASS, f"{len(groups)} node group(s) ACTIVE"


@_check("free-ips", "free IPs for a second cluster and its nodes",
        "add subnets or a secondary CIDR, or scale blue down before creating green", "ec2:DescribeSubnets",
        "eks:DescribeCluster", "eks:ListNodegroups", "eks:DescribeNodegroup")
def free_ips(ctx: CheckContext) -> Outcome:
    cluster = ctx.cluster(ctx.target.live_slot)
    groups = ctx.nodegroups(ctx.target.live_slot)
    subnet_ids = set(cluster.get("resourcesVpcConfig", {}).get("subnetIds", []))
    for group in groups:
        subnet_ids.update(group.get("subnets", []))
    if not subnet_ids:
        return FAIL, "the live cluster lists no subnets"
    subnets = call(ctx.aws.client("ec2").describe_subnets, SubnetIds=sorted(subnet_ids))["Subnets"]
    free = sum(s["AvailableIpAddressCount"] for s in subnets)
    nodes = sum((g.get("scalingConfig") or {}).get("desiredSize", 0) for g in groups)
    need = CONTROL_PLANE_IPS + nodes * IPS_PER_NODE
    detail = f"{free} free in {len(subnets)} subnet(s); a copy of {nodes} node(s) needs about {need}"
    if free < need:
        return FAIL, detail
    if free < need * 1.5:
        return WARN, detail + " (under 50% headroom)"
    return PASS, detail


@_check("ec2-quota", "EC2 vCPU quota for double capacity",
        "request a quota increase (Service Quotas, EC2) before creating green",
        "servicequotas:GetServiceQuota", "ec2:DescribeInstanceTypes", "eks:ListNodegroups", "eks:DescribeNodegroup")
def ec2_quota(ctx: CheckContext) -> Outcome:
    groups = ctx.nodegroups(ctx.target.live_slot)
    types = sorted({t for g in groups for t in (g.get("instanceTypes") or [])[:1]})
    vcpus: dict[str, int] = {}
    if types:
        answer = call(ctx.aws.client("ec2").describe_instance_types, InstanceTypes=types)
        vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"] for t in answer["InstanceTypes"]}
    used: dict[str, int] = {}
    for group in groups:
        first = (group.get("instanceTypes") or ["?"])[0]
        family = instance_family(first)
        kind = "p" if family.startswith("p") else "g" if family.startswith(("g", "vt")) else "standard"
        code = _QUOTAS[kind][1 if group.get("capacityType") == "SPOT" else 0]
        nodes = (group.get("scalingConfig") or {}).get("desiredSize", 0)
        used[code] = used.get(code, 0) + nodes * vcpus.get(first, 0)
    short = []
    for code, vcpu in sorted(used.items()):
        if vcpu == 0:
            continue
        quota = call(ctx.aws.client("service-quotas").get_service_quota, ServiceCode="ec2", QuotaCode=code)
        value = quota["Quota"]["Value"]
        if value < 2 * vcpu:
            short.append(f"{code} is {value:.0f} vCPU, double capacity needs {2 * vcpu}")
    if short:
        return FAIL, "; ".join(short)
    return PASS, f"quotas cover twice the live capacity ({sum(used.values())} vCPU)"


@_check("weighted-records", "weighted records for every slot exist with a short TTL",
        "apply the cluster's DNS (one weighted CNAME per slot, TTL 60) through the pipeline",
        *("route53:ListHostedZonesByName", "route53:ListResourceRecordSets"))
def weighted_records(ctx: CheckContext) -> Outcome:
    if not ctx.target.hostname or not ctx.target.zone:
        return FAIL, f"clusters.{ctx.target.cluster_key} has no hostname (or the account no dns.zone)"
    records = WeightedRecords(ctx.aws, ctx.target).records()
    wanted = sorted(ctx.target.cluster.slots)
    missing = [s for s in wanted if s not in records]
    if missing:
        return FAIL, f"no weighted record for {', '.join(missing)} at {ctx.target.hostname}"
    long_ttl = [f"{s} TTL {records[s].ttl}" for s in wanted if (records[s].ttl or 0) > naming.WEIGHTED_RECORD_TTL]
    if long_ttl:
        return WARN, f"TTL above {naming.WEIGHTED_RECORD_TTL}s slows every step and rollback: {', '.join(long_ttl)}"
    weights = ", ".join(f"{s}={records[s].weight}" for s in wanted)
    return PASS, f"{ctx.target.hostname}: {weights}"


@_check("guard-alarms", "guard alarms exist and are OK",
        "create the alarms named in upgrade.alarms and resolve any in ALARM", "cloudwatch:DescribeAlarms")
def guard_alarms(ctx: CheckContext) -> Outcome:
    names = ctx.target.alarms
    if not names:
        return FAIL, f"no alarms configured (clusters.{ctx.target.cluster_key}.upgrade.alarms)"
    states = alarm_states(ctx.aws, names)
    missing = [n for n in names if n not in states]
    bad = [f"{n} {states[n]}" for n in names if n in states and states[n] != "OK"]
    if missing:
        return FAIL, f"missing: {', '.join(missing)}"
    if any(s.endswith(" ALARM") for s in bad):
        return FAIL, ", ".join(bad)
    if bad:
        return WARN, ", ".join(bad)
    return PASS, ", ".join(f"{n} OK" for n in names)


@_check("lock", "no other run holds the lock", "wait for the other operator, or ask them (status shows who)")
def lock_free(ctx: CheckContext) -> Outcome:
    if ctx.store is None or ctx.now is None:
        return UNKNOWN, "no state store"
    held = ctx.store.read_lock(ctx.target.key)
    if held is None:
        return PASS, "free"
    if held.expired(ctx.now):
        return PASS, f"expired lock of {held.owner} (will be taken over)"
    return FAIL, f"held by {held.owner} until {held.expires_at}"


PLAN_CHECKS = [blue_active, target_version, version_jump, addon_versions, upgrade_insights, node_groups,
               free_ips, ec2_quota, weighted_records, guard_alarms, lock_free]


# ----------------------------------------------------------------------------- verify


@_check("green-active", "new cluster ACTIVE at the target version",
        "wait for the pipeline's apply of the new slot, or read its Terraform output", "eks:DescribeCluster")
def green_active(ctx: CheckContext) -> Outcome:
    cluster = ctx.cluster(ctx.target.new_slot)
    if cluster["status"] != "ACTIVE":
        return FAIL, f"{cluster['name']} is {cluster['status']}"
    if cluster["version"] != ctx.to_version:
        return FAIL, f"{cluster['name']} runs {cluster['version']}, expected {ctx.to_version}"
    return PASS, f"{cluster['name']} ACTIVE at {cluster['version']}"


@_check("green-node-groups", "new node groups ACTIVE at their desired size",
        "wait for the node groups, or fix their scaling (EKS console: node group health)",
        "eks:ListNodegroups", "eks:DescribeNodegroup")
def green_node_groups(ctx: CheckContext) -> Outcome:
    groups = {naming.node_group_key(g): g for g in ctx.nodegroups(ctx.target.new_slot)}
    wanted = ctx.target.cluster.node_groups
    problems = [f"{name} missing" for name in wanted if name not in groups]
    for name, group in groups.items():
        scaling = group.get("scalingConfig") or {}
        cfg = wanted.get(name)
        floor = cfg.desired if cfg and cfg.desired is not None else (cfg.min if cfg else 0)
        if group["status"] != "ACTIVE":
            problems.append(f"{name} is {group['status']}")
        elif scaling.get("desiredSize", 0) < floor:
            problems.append(f"{name} desired {scaling.get('desiredSize')} < {floor}")
    if problems:
        return FAIL, "; ".join(problems)
    return PASS, f"{len(groups)} node group(s) ACTIVE"


@_check("green-addons", "new add-ons ACTIVE", "inspect the add-on (aws eks describe-addon) and fix its health",
        "eks:ListAddons", "eks:DescribeAddon")
def green_addons(ctx: CheckContext) -> Outcome:
    eks = ctx.aws.client("eks")
    name = ctx.target.eks_name(ctx.target.new_slot)
    addons = call(eks.list_addons, clusterName=name)["addons"]
    bad = []
    for addon in addons:
        status = call(eks.describe_addon, clusterName=name, addonName=addon)["addon"]["status"]
        if status != "ACTIVE":
            bad.append(f"{addon} {status}")
    if bad:
        return FAIL, ", ".join(bad)
    return PASS, f"{len(addons)} add-on(s) ACTIVE"


@_check("smoke", "HTTP smoke checks on the new slot's own hostname",
        "see the failing path's logs in the new cluster; fix before moving traffic")
def smoke(ctx: CheckContext) -> Outcome:
    paths = ctx.target.cluster.upgrade.smoke_paths
    if not paths:
        return WARN, f"no smoke paths configured (clusters.{ctx.target.cluster_key}.upgrade.smoke_paths)"
    if not ctx.target.hostname:
        return FAIL, "the cluster has no hostname"
    base = ctx.smoke_base_url or f"https://{naming.slot_hostname(ctx.target.hostname, ctx.target.new_slot)}"
    failed = []
    for path in paths:
        url = base.rstrip("/") + "/" + path.lstrip("/")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - operator's own URL
                if not 200 <= response.status < 400:
                    failed.append(f"{url} -> {response.status}")
        except urllib.error.HTTPError as exc:
            failed.append(f"{url} -> {exc.code}")
        except (urllib.error.URLError, OSError) as exc:
            failed.append(f"{url} -> {getattr(exc, 'reason', exc)}")
    if failed:
        return FAIL, "; ".join(failed)
    return PASS, f"{len(paths)} path(s) answered on {base}"


VERIFY_CHECKS = [green_active, green_node_groups, green_addons, smoke]
