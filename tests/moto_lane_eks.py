"""The EKS operations a slot stack applies and moto 5.2 lacks, added to moto's own EKS service for the
real-provider lane (tests/moto_lane_server.py installs them before the server starts).

What comes from outside, not from us: the operations, their URIs and the request parsing are moto's
router over botocore's EKS service model; the answers go through moto's serializer, which writes each
member the botocore output shape names and nothing else. What AWS documents and we follow:

- add-ons, access entries, access policy associations and Pod Identity associations are created
  ACTIVE (the provider waits for it) and read back with what was asked; an access entry's default
  ``username`` and ``kubernetesGroups`` are AWS's (EKS user guide, "Create access entries");
  ``type`` defaults to STANDARD;
- ``DescribeAddonVersions`` (the ``aws_eks_addon_version`` data source) answers one version per add-on,
  compatible with the asked Kubernetes version and its default;
- every cluster gets the security group EKS creates with it (``eks-cluster-sg-<name>`` in the cluster's
  VPC, ``vpc_config.cluster_security_group_id``, which the slot stack tags and opens): moto makes none;
- a cluster returns the ``accessConfig``, ``upgradePolicy`` and ``zonalShiftConfig`` it was created or
  updated with, a node group its ``updateConfig`` and ``nodeRepairConfig``; a node group created with
  a launch template has no ``diskSize`` and no ``remoteAccess`` (the API reference of Nodegroup: they
  belong to the launch template then).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

NOT_FOUND = "No {kind} found for name: {name}."


def _now() -> datetime:
    return datetime.now(UTC)


class _LaneEks:
    """What the lane adds to one EKS backend (one account and region)."""

    def __init__(self) -> None:
        self.addons: dict[tuple[str, str], dict[str, Any]] = {}
        self.access_entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.access_policies: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.pod_identities: dict[tuple[str, str], dict[str, Any]] = {}


def _state(backend: Any) -> _LaneEks:
    if not hasattr(backend, "lane_eks"):
        backend.lane_eks = _LaneEks()
    return backend.lane_eks


def _default_username(principal: str, entry_type: str, account: str) -> str:
    if entry_type in ("EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX"):
        return "system:node:{{EC2PrivateDNSName}}"
    if ":role/" in principal:
        role = principal.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{account}:assumed-role/{role}/{{{{SessionName}}}}"
    return principal


def _default_groups(entry_type: str) -> list[str]:
    return ["system:nodes"] if entry_type in ("EC2_LINUX", "EC2_WINDOWS") else []


def install() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.eks import urls
    from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException
    from moto.eks.responses import EKSResponse

    def cluster_of(self: EKSResponse) -> Any:
        name = self._get_param("clusterName") or self._get_param("name")
        return self.eks_backend.describe_cluster(name=name)  # raises moto's own ResourceNotFoundException

    def missing(kind: str, name: str) -> Exception:
        return ResourceNotFoundException(clusterName=None, nodegroupName=None, fargateProfileName=None,
                                         addonName=None, message=NOT_FOUND.format(kind=kind, name=name))

    def stored(self: EKSResponse, table: str, kind: str, name: str) -> tuple[tuple[str, str], dict[str, Any]]:
        """``(key, item)`` of this cluster's ``name`` in the lane's ``table``, or EKS's not-found error."""
        key = (cluster_of(self).name, name)
        item = getattr(_state(self.eks_backend), table).get(key)
        if item is None:
            raise missing(kind, name)
        return key, item

    def arn(self: EKSResponse, kind: str, *parts: str) -> str:
        return f"arn:aws:eks:{self.region}:{self.current_account}:{kind}/{'/'.join(parts)}"

    # ----------------------------------------------------------------------------------- add-ons

    def create_addon(self: EKSResponse) -> ActionResult:
        cluster = cluster_of(self)
        state, name = _state(self.eks_backend), self._get_param("addonName")
        key = (cluster.name, name)
        if key in state.addons:
            raise ResourceInUseException(clusterName=cluster.name, nodegroupName=None, addonName=name,
                                         message=f"Addon already exists: {name}")
        addon = {"addonName": name, "clusterName": cluster.name, "status": "ACTIVE",
                 "addonVersion": self._get_param("addonVersion") or "v1.0.0-eksbuild.1",
                 "health": {"issues": []}, "addonArn": arn(self, "addon", cluster.name, name, str(uuid.uuid4())),
                 "createdAt": _now(), "modifiedAt": _now(), "tags": self._get_param("tags") or {},
                 "owner": "aws", "publisher": "eks"}
        for member in ("serviceAccountRoleArn", "configurationValues"):
            if self._get_param(member):
                addon[member] = self._get_param(member)
        state.addons[key] = addon
        return ActionResult({"addon": addon})

    def describe_addon(self: EKSResponse) -> ActionResult:
        return ActionResult({"addon": stored(self, "addons", "addon", self._get_param("addonName"))[1]})

    def update_addon(self: EKSResponse) -> ActionResult:
        name = self._get_param("addonName")
        _, addon = stored(self, "addons", "addon", name)
        for member in ("addonVersion", "serviceAccountRoleArn", "configurationValues"):
            if self._get_param(member) is not None:
                addon[member] = self._get_param(member)
        addon["modifiedAt"] = _now()
        return ActionResult({"update": _update(self, "AddonUpdate", addon=name)})

    def delete_addon(self: EKSResponse) -> ActionResult:
        key, addon = stored(self, "addons", "addon", self._get_param("addonName"))
        del _state(self.eks_backend).addons[key]
        return ActionResult({"addon": {**addon, "status": "DELETING"}})

    def list_addons(self: EKSResponse) -> ActionResult:
        cluster = cluster_of(self)
        return ActionResult({"addons": sorted(n for c, n in _state(self.eks_backend).addons if c == cluster.name)})

    updates: dict[str, dict[str, Any]] = {}

    def _update(self: EKSResponse, kind: str, **target: str) -> dict[str, Any]:
        update = {"id": str(uuid.uuid4()), "status": "Successful", "type": kind, "params": [],
                  "createdAt": _now(), "errors": []}
        updates[update["id"]] = update
        return update

    def describe_update(self: EKSResponse) -> ActionResult:
        update_id = self._get_param("updateId")
        if update_id not in updates:
            raise missing("update", update_id)
        return ActionResult({"update": updates[update_id]})

    # ---------------------------------------------------------------------------- access entries

    def principal_of(self: EKSResponse) -> str:
        return unquote(self._get_param("principalArn"))

    def create_access_entry(self: EKSResponse) -> ActionResult:
        cluster, principal = cluster_of(self), principal_of(self)
        state = _state(self.eks_backend)
        if (cluster.name, principal) in state.access_entries:
            raise ResourceInUseException(clusterName=cluster.name, nodegroupName=None, addonName=None,
                                         message=f"The specified access entry resource is already in use: {principal}")
        entry_type = self._get_param("type") or "STANDARD"
        entry = {"clusterName": cluster.name, "principalArn": principal,
                 "kubernetesGroups": self._get_param("kubernetesGroups") or _default_groups(entry_type),
                 "accessEntryArn": arn(self, "access-entry", cluster.name, "role", self.current_account,
                                       principal.rsplit("/", 1)[-1], str(uuid.uuid4())),
                 "createdAt": _now(), "modifiedAt": _now(), "tags": self._get_param("tags") or {},
                 "username": self._get_param("username")
                 or _default_username(principal, entry_type, self.current_account),
                 "type": entry_type}
        state.access_entries[(cluster.name, principal)] = entry
        return ActionResult({"accessEntry": entry})

    def access_entry_of(self: EKSResponse) -> tuple[tuple[str, str], dict[str, Any]]:
        return stored(self, "access_entries", "access entry", principal_of(self))

    def describe_access_entry(self: EKSResponse) -> ActionResult:
        return ActionResult({"accessEntry": access_entry_of(self)[1]})

    def update_access_entry(self: EKSResponse) -> ActionResult:
        _, entry = access_entry_of(self)
        for member in ("kubernetesGroups", "username"):
            if self._get_param(member) is not None:
                entry[member] = self._get_param(member)
        entry["modifiedAt"] = _now()
        return ActionResult({"accessEntry": entry})

    def delete_access_entry(self: EKSResponse) -> ActionResult:
        key, _ = access_entry_of(self)
        state = _state(self.eks_backend)
        del state.access_entries[key]
        state.access_policies.pop(key, None)
        return EmptyResult()

    def associate_access_policy(self: EKSResponse) -> ActionResult:
        (cluster, principal), _ = access_entry_of(self)
        policy = {"policyArn": self._get_param("policyArn"), "accessScope": self._get_param("accessScope"),
                  "associatedAt": _now(), "modifiedAt": _now()}
        _state(self.eks_backend).access_policies.setdefault((cluster, principal), {})[policy["policyArn"]] = policy
        return ActionResult({"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": policy})

    def list_associated_access_policies(self: EKSResponse) -> ActionResult:
        key, _ = access_entry_of(self)
        policies = list(_state(self.eks_backend).access_policies.get(key, {}).values())
        return ActionResult({"clusterName": key[0], "principalArn": key[1], "associatedAccessPolicies": policies})

    def disassociate_access_policy(self: EKSResponse) -> ActionResult:
        cluster, principal = cluster_of(self), principal_of(self)
        policies = _state(self.eks_backend).access_policies.get((cluster.name, principal), {})
        if policies.pop(unquote(self._get_param("policyArn")), None) is None:
            raise missing("access policy association", principal)
        return EmptyResult()

    # ------------------------------------------------------------------- Pod Identity associations

    def create_pod_identity_association(self: EKSResponse) -> ActionResult:
        cluster = cluster_of(self)
        association_id = f"a-{uuid.uuid4().hex[:17]}"
        association = {"clusterName": cluster.name, "namespace": self._get_param("namespace"),
                       "serviceAccount": self._get_param("serviceAccount"), "roleArn": self._get_param("roleArn"),
                       "associationArn": arn(self, "podidentityassociation", cluster.name, association_id),
                       "associationId": association_id, "tags": self._get_param("tags") or {},
                       "createdAt": _now(), "modifiedAt": _now(),
                       "disableSessionTags": bool(self._get_param("disableSessionTags"))}
        if self._get_param("targetRoleArn"):
            association["targetRoleArn"] = self._get_param("targetRoleArn")
        _state(self.eks_backend).pod_identities[(cluster.name, association_id)] = association
        return ActionResult({"association": association})

    def pod_identity_of(self: EKSResponse) -> dict[str, Any]:
        return stored(self, "pod_identities", "pod identity association", self._get_param("associationId"))[1]

    def describe_pod_identity_association(self: EKSResponse) -> ActionResult:
        return ActionResult({"association": pod_identity_of(self)})

    def update_pod_identity_association(self: EKSResponse) -> ActionResult:
        association = pod_identity_of(self)
        for member in ("roleArn", "targetRoleArn", "disableSessionTags"):
            if self._get_param(member) is not None:
                association[member] = self._get_param(member)
        association["modifiedAt"] = _now()
        return ActionResult({"association": association})

    def delete_pod_identity_association(self: EKSResponse) -> ActionResult:
        association = pod_identity_of(self)
        _state(self.eks_backend).pod_identities.pop((association["clusterName"], association["associationId"]))
        return ActionResult({"association": association})

    def list_pod_identity_associations(self: EKSResponse) -> ActionResult:
        cluster = cluster_of(self)
        found = [{k: a[k] for k in ("clusterName", "namespace", "serviceAccount", "associationArn",
                                    "associationId")}
                 for (c, _), a in _state(self.eks_backend).pod_identities.items() if c == cluster.name]
        return ActionResult({"associations": found})

    handlers = {f.__name__: f for f in (
        create_addon, describe_addon, update_addon, delete_addon, list_addons, describe_update,
        create_access_entry, describe_access_entry, update_access_entry, delete_access_entry,
        associate_access_policy, list_associated_access_policies, disassociate_access_policy,
        create_pod_identity_association, describe_pod_identity_association, update_pod_identity_association,
        delete_pod_identity_association, list_pod_identity_associations)}
    for name, handler in handlers.items():
        setattr(EKSResponse, name, handler)
    cluster = "{0}/clusters/(?P<name>[^/]+)"
    for suffix in ("/addons$", "/addons/(?P<addonName>[^/]+)$", "/addons/(?P<addonName>[^/]+)/update$",
                   "/updates/(?P<updateId>[^/]+)$",
                   # the server matches decoded paths, and a principal ARN brings its own slashes: one
                   # route for all; moto's router picks the operation from the raw path by the model
                   "/access-entries$", "/access-entries/(?P<entryPath>.+)$",
                   "/pod-identity-associations$", "/pod-identity-associations/(?P<associationId>[^/]+)$"):
        urls.url_paths[cluster + suffix] = urls.response.dispatch
    _keep_cluster_and_node_group_settings()
    _addon_versions()
    _patch_cluster_security_group()


def _addon_versions() -> None:
    import json

    from moto.eks import urls
    from moto.eks.responses import EKSResponse

    def describe_addon_versions(self: EKSResponse) -> Any:
        name = self._get_param("addonName") or "vpc-cni"
        version = self._get_param("kubernetesVersion") or "1.34"
        body = {"addons": [{
            "addonName": name, "type": "networking", "owner": "aws", "publisher": "eks",
            "addonVersions": [{
                "addonVersion": "v1.0.0-eksbuild.1", "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2"], "requiresConfiguration": False, "requiresIamPermissions": False,
                "compatibilities": [{"clusterVersion": version, "platformVersions": ["*"], "defaultVersion": True}],
            }],
        }]}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    EKSResponse.describe_addon_versions = describe_addon_versions  # type: ignore[attr-defined]
    urls.url_paths["{0}/addons/supported-versions$"] = urls.response.dispatch


def _patch_cluster_security_group() -> None:
    from moto.ec2.models import ec2_backends
    from moto.eks.models import Cluster

    original = Cluster.__init__

    def init(self: Cluster, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        config = self.resources_vpc_config or {}
        subnets = config.get("subnetIds") or []
        if subnets and not config.get("clusterSecurityGroupId"):
            ec2 = ec2_backends[kwargs.get("account_id") or args[3]][kwargs.get("region_name") or args[4]]
            vpc_id = ec2.get_subnet(subnets[0]).vpc_id
            group = ec2.create_security_group(f"eks-cluster-sg-{self.name}", "EKS created security group",
                                              vpc_id=vpc_id, tags={f"kubernetes.io/cluster/{self.name}": "owned"})
            config["clusterSecurityGroupId"] = group.id
            self.resources_vpc_config = config

    Cluster.__init__ = init  # type: ignore[method-assign]


# cluster members the API returns as created (or updated); moto drops them
CLUSTER_SETTINGS = ("accessConfig", "upgradePolicy", "zonalShiftConfig")
NODE_GROUP_SETTINGS = ("updateConfig", "nodeRepairConfig")


def _keep_cluster_and_node_group_settings() -> None:
    from moto.eks.responses import EKSResponse

    create_cluster, update_cluster = EKSResponse.create_cluster, EKSResponse.update_cluster_config
    create_nodegroup, update_nodegroup = EKSResponse.create_nodegroup, EKSResponse.update_nodegroup_config

    def keep(self: EKSResponse, target: Any, members: tuple[str, ...], defaults: dict[str, Any]) -> None:
        for member in members:
            value = self._get_param(member)
            attribute = "".join(f"_{c.lower()}" if c.isupper() else c for c in member)
            if value is not None:
                current = getattr(target, attribute, None) or {}
                setattr(target, attribute, {**current, **value})
            elif getattr(target, attribute, None) is None and member in defaults:
                setattr(target, attribute, defaults[member])

    def create_cluster_keeping(self: EKSResponse) -> Any:
        result = create_cluster(self)
        cluster = self.eks_backend.describe_cluster(name=self._get_param("name"))
        # AWS's defaults when the request leaves them out (CreateCluster API reference)
        keep(self, cluster, CLUSTER_SETTINGS, {
            "accessConfig": {"authenticationMode": "CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": True},
            "upgradePolicy": {"supportType": "EXTENDED"}})
        return result

    def update_cluster_keeping(self: EKSResponse) -> Any:
        result = update_cluster(self)
        keep(self, self.eks_backend.describe_cluster(name=self._get_param("name")), CLUSTER_SETTINGS, {})
        return result

    def node_group(self: EKSResponse) -> Any:
        return self.eks_backend.describe_nodegroup(cluster_name=self._get_param("name"),
                                                   nodegroup_name=self._get_param("nodegroupName"))

    def create_nodegroup_keeping(self: EKSResponse) -> Any:
        result = create_nodegroup(self)
        group = node_group(self)
        keep(self, group, NODE_GROUP_SETTINGS, {"updateConfig": {"maxUnavailable": 1}})
        template = self._get_param("launchTemplate")
        if template:
            group.disk_size, group.remote_access = None, None
            # DescribeNodegroup names the template by id, name and version, however it was given
            from moto.ec2.models import ec2_backends

            ec2 = ec2_backends[self.current_account][self.region]
            found = ec2.describe_launch_templates(template_ids=[template["id"]] if template.get("id") else None,
                                                  template_names=[template["name"]] if template.get("name") else None,
                                                  filters=None)[0]
            group.launch_template = {"id": found.id, "name": found.name, "version": template.get("version")
                                     or str(found.default_version_number)}
        return result

    def update_nodegroup_keeping(self: EKSResponse) -> Any:
        result = update_nodegroup(self)
        keep(self, node_group(self), NODE_GROUP_SETTINGS, {})
        return result

    EKSResponse.create_cluster = create_cluster_keeping  # type: ignore[method-assign]
    EKSResponse.update_cluster_config = update_cluster_keeping  # type: ignore[method-assign]
    EKSResponse.create_nodegroup = create_nodegroup_keeping  # type: ignore[method-assign]
    EKSResponse.update_nodegroup_config = update_nodegroup_keeping  # type: ignore[method-assign]
