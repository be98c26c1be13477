"""What the sandbox answers for the operations moto lacks, shaped as botocore's service models say.

EKS ``DescribeClusterVersions``, ``ListAddons``, ``DescribeAddon``, ``DescribeAddonVersions``,
``ListInsights``, ``DescribeInsight``; Service Quotas ``GetServiceQuota`` and ``ListServiceQuotas``
for the EC2 vCPU quotas. The data is synthetic (dates relative to today, so the demo does not
rot), the shapes are AWS's: tests/test_sandbox_proxy.py validates every answer against the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetform.config.models import FleetConfig
from fleetform.constructs.eks_cluster import ADDONS_AFTER_NODES, ADDONS_BEFORE_NODES

SANDBOX_ACCOUNT_ID = "123456789012"
STANDARD_SUPPORT = timedelta(days=14 * 30)
EXTENDED_SUPPORT = timedelta(days=26 * 30)

# EC2 vCPU quotas that the preflight reads (names as Service Quotas shows them)
EC2_QUOTAS = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "Standard/OnDemand", 2048.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "Standard/Spot", 2048.0),
    "L-DB2E81BA": ("Running On-Demand G and VT instances", "G/OnDemand", 256.0),
    "L-3819A6DF": ("All G and VT Spot Instance Requests", "G/Spot", 256.0),
    "L-417A185B": ("Running On-Demand P instances", "P/OnDemand", 0.0),
    "L-7212CCBC": ("All P4, P3 and P2 Spot Instance Requests", "P/Spot", 0.0),
}

# the add-on that the blocking insight finds too old for the next Kubernetes version
BLOCKING_ADDON = "vpc-cni"


def _minor(version: str) -> int:
    return int(version.split(".")[1])


def _addon_version(addon: str, kubernetes: str) -> str:
    build = int(hashlib.sha256(f"{addon}{kubernetes}".encode()).hexdigest()[:2], 16) % 5 + 1
    return f"v1.{_minor(kubernetes)}.{build}-eksbuild.1"


@dataclass
class Catalogue:
    """Cluster versions, add-ons, insights and quotas of one sandbox."""

    clusters: dict[str, str]  # EKS cluster name -> its Kubernetes version
    blocked: set[str]  # clusters with an ERROR upgrade insight
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_config(cls, config: FleetConfig, now: datetime | None = None) -> Catalogue:
        """Every slot of every account; the blocking insight on each service cluster with a hostname
        and no upgrade under way (one slot: dev/main and stg/main in the example), so prod/main's demo
        upgrade stays clear and any other is a rehearsal of a blocked one."""
        from fleetform import naming

        clusters: dict[str, str] = {}
        blocked: set[str] = set()
        for account in config.accounts:
            for key, cluster in account.spec.clusters.items():
                for slot, slot_cfg in cluster.slots.items():
                    clusters[naming.cluster_name(account.name, key, slot)] = slot_cfg.version
                if cluster.role == "service" and len(cluster.slots) == 1 and cluster.hostname:
                    blocked.add(naming.cluster_name(account.name, key, next(iter(cluster.slots))))
        return cls(clusters, blocked, now or datetime.now(UTC))

    # ---------------------------------------------------------------- EKS
    def versions(self) -> list[dict[str, Any]]:
        """Kubernetes minors from four below the oldest to one above the newest configured; the
        newest was released 45 days ago, each older one 120 days before the next."""
        minors = [_minor(v) for v in self.clusters.values()] or [34]
        newest = max(minors) + 1
        answer = []
        for minor in range(newest, min(minors) - 5, -1):
            released = self.now - timedelta(days=45 + 120 * (newest - minor))
            standard, extended = released + STANDARD_SUPPORT, released + EXTENDED_SUPPORT
            status = ("STANDARD_SUPPORT" if self.now < standard else
                      "EXTENDED_SUPPORT" if self.now < extended else "UNSUPPORTED")
            answer.append({
                "clusterVersion": f"1.{minor}", "clusterType": "eks", "defaultPlatformVersion": "eks.1",
                "defaultVersion": minor == newest - 1, "releaseDate": released.timestamp(),
                "endOfStandardSupportDate": standard.timestamp(), "endOfExtendedSupportDate": extended.timestamp(),
                "status": status.lower().replace("_", "-"), "versionStatus": status,
                "kubernetesPatchVersion": f"1.{minor}.{(newest - minor) * 3 + 1}"})
        return answer

    def describe_cluster_versions(self, wanted: list[str], include_all: bool) -> dict[str, Any]:
        versions = self.versions()
        if wanted:
            versions = [v for v in versions if v["clusterVersion"] in wanted]
        elif not include_all:
            versions = [v for v in versions if v["versionStatus"] != "UNSUPPORTED"]
        return {"clusterVersions": versions}

    def addons(self, cluster: str) -> list[str]:
        return sorted(ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES) if cluster in self.clusters else []

    def describe_addon(self, cluster: str, addon: str, region: str) -> dict[str, Any]:
        version = self.clusters[cluster]
        return {"addon": {
            "addonName": addon, "clusterName": cluster, "status": "ACTIVE",
            "addonVersion": _addon_version(addon, version), "health": {"issues": []},
            "addonArn": f"arn:aws:eks:{region}:{SANDBOX_ACCOUNT_ID}:addon/{cluster}/{addon}/sandbox",
            "createdAt": (self.now - timedelta(days=30)).timestamp(),
            "modifiedAt": (self.now - timedelta(days=30)).timestamp(), "tags": {}}}

    def describe_addon_versions(self, addon: str | None, kubernetes: str | None) -> dict[str, Any]:
        known = [v["clusterVersion"] for v in self.versions() if v["versionStatus"] != "UNSUPPORTED"]
        names = sorted(ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES)
        answer = []
        for name in names if addon is None else [n for n in names if n == addon]:
            targets = known if kubernetes is None else [k for k in known if k == kubernetes]
            answer.append({"addonName": name, "type": "networking" if name in ("vpc-cni", "kube-proxy", "coredns")
                           else "storage" if name.endswith("csi-driver") else "security",
                           "owner": "aws", "publisher": "eks", "addonVersions": [
                               {"addonVersion": _addon_version(name, k), "architecture": ["amd64", "arm64"],
                                "compatibilities": [{"clusterVersion": k, "platformVersions": ["*"],
                                                     "defaultVersion": True}],
                                "requiresConfiguration": False} for k in targets]})
        return {"addons": answer}

    def insights(self, cluster: str) -> list[dict[str, Any]]:
        """The upgrade-readiness insights EKS runs for the next minor version."""
        version = self.clusters[cluster]
        nxt = f"1.{_minor(version) + 1}"
        refreshed = (self.now - timedelta(hours=6)).timestamp()
        changed = (self.now - timedelta(days=3)).timestamp()

        def insight(key: str, name: str, status: str, reason: str, description: str, recommendation: str,
                    summary: dict[str, Any]) -> dict[str, Any]:
            digest = hashlib.sha256(f"{cluster}/{key}".encode()).hexdigest()
            return {"id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
                    "name": name, "category": "UPGRADE_READINESS", "kubernetesVersion": nxt,
                    "lastRefreshTime": refreshed, "lastTransitionTime": changed, "description": description,
                    "insightStatus": {"status": status, "reason": reason}, "recommendation": recommendation,
                    "additionalInfo": {"EKS update cluster documentation":
                                       "https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html"},
                    "resources": [], "categorySpecificSummary": summary}

        blocked = cluster in self.blocked
        none: dict[str, Any] = {"deprecationDetails": [], "addonCompatibilityDetails": []}
        addons = {"deprecationDetails": [], "addonCompatibilityDetails": [
            {"name": BLOCKING_ADDON, "compatibleVersions": [_addon_version(BLOCKING_ADDON, nxt)]}]}
        return [
            insight("deprecated-apis", f"Deprecated APIs removed in Kubernetes v{nxt}", "PASSING",
                    "No deprecated API usage detected within the last 30 days.",
                    "Checks for usage of deprecated APIs that are scheduled for removal in the next version.",
                    "Update manifests and API clients to use newer Kubernetes APIs if applicable before "
                    "upgrading.", none),
            insight("addon-compatibility", "Amazon EKS add-on version compatibility", "ERROR" if blocked else "PASSING",
                    f"{BLOCKING_ADDON} is not compatible with Kubernetes {nxt}." if blocked
                    else "All installed add-ons are compatible with the next Kubernetes version.",
                    "Checks version of installed EKS add-ons to ensure they are compatible with the next version "
                    "of Kubernetes.", "Upgrade your EKS add-on to a compatible version before upgrading the "
                    "cluster.", addons if blocked else none),
            insight("kubelet-skew", "Kubelet version skew", "PASSING", "Node kubelet versions match the cluster.",
                    "Checks for kubelet versions of worker nodes in the cluster to see if an upgrade would "
                    "cause non compliance with supported Kubernetes kubelet version skew policy.",
                    "Upgrade your worker nodes to match the Kubernetes version of your cluster control plane.",
                    none),
            insight("cluster-health", "Cluster health issues", "PASSING", "No cluster health issues detected.",
                    "Checks for any cluster health issues that prevent successful upgrade to the next Kubernetes "
                    "version on EKS.", "Refer to the EKS documentation on cluster health issues.", none),
        ]

    def list_insights(self, cluster: str, categories: list[str], statuses: list[str]) -> dict[str, Any]:
        summary_keys = ("id", "name", "category", "kubernetesVersion", "lastRefreshTime", "lastTransitionTime",
                        "description", "insightStatus")
        chosen = [i for i in self.insights(cluster) if (not categories or i["category"] in categories)
                  and (not statuses or i["insightStatus"]["status"] in statuses)]
        return {"insights": [{k: i[k] for k in summary_keys} for i in chosen]}

    def describe_insight(self, cluster: str, insight_id: str) -> dict[str, Any] | None:
        found = [i for i in self.insights(cluster) if i["id"] == insight_id]
        return {"insight": found[0]} if found else None

    # ---------------------------------------------------------------- Service Quotas
    def quota(self, code: str, region: str) -> dict[str, Any]:
        name, klass, value = EC2_QUOTAS[code]
        return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": f"arn:aws:servicequotas:{region}:{SANDBOX_ACCOUNT_ID}:ec2/{code}", "QuotaCode": code,
                "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False,
                "UsageMetric": {"MetricNamespace": "AWS/Usage", "MetricName": "ResourceCount",
                                "MetricDimensions": {"Class": klass, "Resource": "vCPU", "Service": "EC2",
                                                     "Type": "Resource"},
                                "MetricStatisticRecommendation": "Maximum"},
                "QuotaAppliedAtLevel": "ACCOUNT"}
