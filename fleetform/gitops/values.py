"""Per-slot values for the charts Argo CD installs, and the ops cluster's ExternalSecrets (decision 0005).

Everything here is computed from the configuration with the names the stacks use (role names,
the interruption queue, the Loki bucket, discovery tags), so it needs no credentials and no state.
What AWS decides at apply time (endpoint, CA, VPC id, the AMP workspace's URL) travels in the
slot's Argo CD registration (labels and annotations of the cluster Secret) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetform.config.capacity import managed_node_groups, system_group
from fleetform.config.hub import AMP_URL_ANNOTATION, VPC_ID_ANNOTATION, HubPlan, hub_plan
from fleetform.config.models import Account, ClusterConfig, FleetConfig
from fleetform.constructs.vpc import DISCOVERY_TAG
from fleetform.constructs.workload_identity import SERVICE_ACCOUNTS
from fleetform.gitops.karpenter import karpenter_manifests
from fleetform.naming import (
    AMP_WRITER_ROLE,
    ARGOCD_MANAGER_ROLE,
    PROMETHEUS_ROLE_SUFFIX,
    karpenter_node_role,
    loki_bucket,
    role_arn,
    slot_stack,
)

ESO_API = "external-secrets.io/v1"
REGISTRATION_STORE = "fleetform-argocd-registrations"
ARGOCD_NAMESPACE = "argocd"
# annotations on the registration whose values only exist after the apply


@dataclass(frozen=True)
class SlotFiles:
    cluster_name: str
    values: dict[str, Any]
    karpenter: list[dict[str, Any]]  # EC2NodeClass and NodePool manifests
    external_secrets: list[dict[str, Any]]  # the ops cluster's slots only


def workloads(account: Account, cluster: ClusterConfig, plan: HubPlan | None) -> list[str]:
    """The workloads with a Pod Identity role in a slot (as ``WorkloadIdentities`` builds them)."""
    names = ["load-balancer-controller", "keda"]
    if account.spec.dns is not None:
        names.append("external-dns")
    names.append("karpenter" if cluster.autoscaler == "karpenter" else "cluster-autoscaler")
    if plan is not None:
        names.append(PROMETHEUS_ROLE_SUFFIX)
    names.append("loki")
    return names


def slot_values(config: FleetConfig, account: Account, cluster_key: str, slot: str,
                plan: HubPlan | None) -> dict[str, Any]:
    cluster = account.spec.clusters[cluster_key]
    name = slot_stack(account.name, cluster_key, slot)
    region = config.region_of(account)
    roles = {w: role_arn(account.id, f"{name}-{w}") for w in workloads(account, cluster, plan)}

    def service_account(workload: str) -> dict[str, Any]:
        return {"create": True, "name": SERVICE_ACCOUNTS[workload][1]}

    values: dict[str, Any] = {
        "fleetform": {
            "account": account.name, "accountId": account.id, "region": region, "cluster": cluster_key,
            "clusterName": name, "slot": slot, "version": cluster.slots[slot].version, "role": cluster.role,
            "roleArns": roles,
            "nodeRoleName": karpenter_node_role(name),
            "systemNodeGroup": system_group(cluster),
            "managedNodeGroups": list(managed_node_groups(cluster)),
            "selectors": {"subnets": {DISCOVERY_TAG: account.name}, "securityGroups": {DISCOVERY_TAG: name}},
            "fromRegistration": {"vpcId": f"annotation {VPC_ID_ANNOTATION}",
                                 "ampRemoteWriteUrl": f"annotation {AMP_URL_ANNOTATION}"},
        },
        "aws-load-balancer-controller": {"clusterName": name, "region": region,
                                         "serviceAccount": service_account("load-balancer-controller")},
        "keda": {"serviceAccount": {"operator": service_account("keda")}},
        "loki": {"serviceAccount": service_account("loki"),
                 "loki": {"storage": {"type": "s3", "s3": {"region": region},
                                      "bucketNames": {k: loki_bucket(config.organization.name, account.id,
                                                                     cluster_key)
                                                      for k in ("chunks", "ruler", "admin")}}}},
    }
    if account.spec.dns is not None:
        values["external-dns"] = {"provider": {"name": "aws"}, "domainFilters": [account.spec.dns.zone],
                                  "txtOwnerId": name, "env": [{"name": "AWS_DEFAULT_REGION", "value": region}],
                                  "serviceAccount": service_account("external-dns")}
    if cluster.autoscaler == "karpenter":
        values["karpenter"] = {"settings": {"clusterName": name, "interruptionQueue": f"{name}-karpenter"},
                               "serviceAccount": service_account("karpenter")}
    else:
        values["cluster-autoscaler"] = {"autoDiscovery": {"clusterName": name}, "awsRegion": region,
                                        "rbac": {"serviceAccount": service_account("cluster-autoscaler")},
                                        "extraArgs": {"balance-similar-node-groups": True,
                                                      "skip-nodes-with-system-pods": False}}
    if plan is not None:
        values["prometheus"] = {
            "serviceAccount": service_account(PROMETHEUS_ROLE_SUFFIX),
            "remoteWrite": {"sigv4": {"region": config.region_of(plan.ops_account),
                                      "roleArn": role_arn(plan.ops_account.id, AMP_WRITER_ROLE)}}}
        if cluster.role == "service":
            values["fleetform"]["argocdManagerRoleArn"] = role_arn(account.id, ARGOCD_MANAGER_ROLE)
    return values


def external_secrets(config: FleetConfig, plan: HubPlan) -> list[dict[str, Any]]:
    """The store and one ExternalSecret per registered service slot, for the ops cluster's Argo CD."""
    manifests: list[dict[str, Any]] = [{
        "apiVersion": ESO_API, "kind": "ClusterSecretStore", "metadata": {"name": REGISTRATION_STORE},
        "spec": {"provider": {"aws": {"service": "SecretsManager",
                                      "region": config.region_of(plan.ops_account)}},
                 "conditions": [{"namespaces": [ARGOCD_NAMESPACE]}]},
    }]
    for registration in plan.registrations:
        manifests.append({
            "apiVersion": ESO_API, "kind": "ExternalSecret",
            "metadata": {"name": registration.cluster_name, "namespace": ARGOCD_NAMESPACE},
            "spec": {
                "refreshInterval": "5m",
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": REGISTRATION_STORE},
                "target": {
                    "name": registration.cluster_name, "creationPolicy": "Owner", "deletionPolicy": "Delete",
                    "template": {
                        "engineVersion": "v2",
                        "metadata": {"labels": {"argocd.argoproj.io/secret-type": "cluster",
                                                **registration.labels}},
                        "data": {key: "{{ ." + key + " }}" for key in ("name", "server", "config")},
                        "templateFrom": [{"target": "Annotations", "literal": "{{ .annotations }}"}],
                    },
                },
                "dataFrom": [{"extract": {"key": registration.secret_name}}],
            },
        })
    return manifests


def gitops_files(config: FleetConfig) -> list[SlotFiles]:
    """Everything ``fleetform gitops`` writes, per slot of every cluster."""
    plan = hub_plan(config)
    files = []
    for account in config.accounts:
        if account.id is None:
            continue  # a new account: its ids are known once the organization stack created it (skipped_accounts)
        for cluster_key, cluster in account.spec.clusters.items():
            for slot in cluster.slots:
                name = slot_stack(account.name, cluster_key, slot)
                tags = {"fleetform:cluster": f"{account.name}-{cluster_key}", "fleetform:slot": slot}
                karpenter = (karpenter_manifests(cluster, cluster_name=name, account=account.name,
                                                 region=config.region_of(account), account_id=account.id,
                                                 tags=tags)
                             if cluster.autoscaler == "karpenter" else [])
                values = slot_values(config, account, cluster_key, slot, plan)
                if karpenter:
                    values["karpenterResources"] = karpenter
                ops = plan is not None and cluster.role == "ops"
                files.append(SlotFiles(name, values, karpenter,
                                       external_secrets(config, plan) if ops and plan is not None else []))
    return files



def skipped_accounts(config: FleetConfig) -> list[str]:
    """Accounts with clusters but no id yet (new accounts): ``fleetform gitops`` writes nothing for them."""
    return [a.name for a in config.accounts if a.id is None and a.spec.clusters]
