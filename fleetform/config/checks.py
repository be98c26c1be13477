"""Checks that span fields or files; each returns Problems naming file and field path."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path

from fleetform.config.endpoints import BASTION_ENDPOINTS, cluster_endpoints, missing_endpoints
from fleetform.config.models import Account, ClusterConfig, FleetConfig, NodeGroupConfig
from fleetform.config.network import subnet_plan
from fleetform.constructs.scp_library import (
    BUILTIN,
    FULL_AWS_ACCESS,
    LIBRARY,
    MAX_SCP_CHARS,
    MAX_SCPS_PER_TARGET,
    ROOT_TARGET,
    builtin_targets,
)
from fleetform.errors import Problem
from fleetform.naming import ROUTE53_QUERY_LOG_REGION

# NVIDIA GPU instance families (EKS NVIDIA AMIs support these); AMD/Inferentia/Trainium are not here.
NVIDIA_GPU_FAMILIES = frozenset(
    {"g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6", "gr6f", "g7e", "p3", "p3dn", "p4d", "p4de",
     "p5", "p5e", "p5en", "p6-b200", "p6-b300", "p6e-gb200"}
)
NVIDIA_AMI_TYPES = frozenset(
    {"AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA"}
)
AMI_TYPES = NVIDIA_AMI_TYPES | {
    "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NEURON",
    "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64", "CUSTOM",
}
MAX_MINOR_JUMP = 2
# "<account>-<cluster>-<slot>" is the EKS cluster name and prefixes the workload roles
# ("-load-balancer-controller" is the longest suffix; IAM role names are at most 64 characters)
MAX_SLOT_NAME = 38
# Graviton (ARM) families have a "g" right after the generation digit: m7g, c7gn, r8gd, t4g, g5g
NODE_GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,35}$")
# ARM (Graviton or NVIDIA Grace) instance families: a g after the generation (m7g, c7gd, c7gn, r8g,
# x2gd, im4gn, is4gen, hpc7g, g5g), the first Graviton (a1), and Grace Blackwell (p6e-gb200)
ARM_FAMILY = re.compile(r"^([a-z]+\d+g[a-z]*|a1|[a-z]+\d+[a-z]*-gb\d+)$")
IAM_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$")


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def check_config(config: FleetConfig, partial: bool = False) -> list[Problem]:
    """All cross-field problems. ``partial``: some account files did not parse, so checks that
    need every account (references to accounts by name or id) are left out."""
    return [
        *_unique_accounts(config),
        *_account_lifecycle(config, partial),
        *_organization(config, partial),
        *_scps(config, partial),
        *_regions(config),
        *_networks(config),
        *_clusters(config),
    ]


def _unique_accounts(config: FleetConfig) -> Iterator[Problem]:
    seen: dict[tuple[str, str], str] = {}
    # accounts that exist first: a clash with a new account (no id) is the new account's file to fix
    for acct in sorted(config.accounts, key=lambda a: a.id is None):
        info = acct.spec.account
        for field, value in (("name", info.name), ("email", info.email.lower()), ("id", info.id)):
            if value is None:
                continue
            key = (field, value)
            if key in seen:
                hint = ("; a new account (no id) needs an email address that no other account of the organization "
                        "uses (AWS refuses CreateAccount otherwise)") if field == "email" and info.id is None else ""
                yield Problem(acct.file, f"account.{field}", f"{value!r} is already used by {seen[key]}{hint}")
            else:
                seen[key] = acct.file


def _organization(config: FleetConfig, partial: bool) -> Iterator[Problem]:
    org = config.organization
    org_file = str(Path(config.directory) / "organization.yaml")
    names = {a.name for a in config.accounts}
    if partial:
        names = set()
    elif config.management is None:
        yield Problem(org_file, "organization.management_account_id",
                      f"no account file has id {org.management_account_id!r}; describe the management "
                      "account in its own file")
    for field, value in (("log_archive_account", org.log_archive_account), ("pipeline.account",
                                                                            org.pipeline.account)):
        if names and value not in names:
            yield Problem(org_file, f"organization.{field}",
                          f"no account named {value!r} (accounts: {', '.join(sorted(names))})")
    ous = set(org.ou_tree)
    for acct in config.accounts:
        ou = acct.spec.account.ou
        if ou is None and acct.id != org.management_account_id:
            yield Problem(acct.file, "account.ou", "required for every account but the management account")
        elif ou is not None and ou not in ous:
            yield Problem(acct.file, "account.ou",
                          f"unknown OU {ou!r}; organization.yaml defines: {', '.join(sorted(ous))}")
    for i, scp in enumerate(org.scps):
        for j, target in enumerate(scp.targets):
            if target != ROOT_TARGET and target not in ous:
                yield Problem(org_file, f"organization.scps.{i}.targets.{j}", f"unknown OU {target!r}")
        if scp.file is not None:
            problem = _policy_file_problem(Path(config.directory) / scp.file)
            if problem:
                yield Problem(org_file, f"organization.scps.{i}.file", problem)
    for i, name in enumerate(org.aws_config.existing_service_linked_role):
        if names and name not in names:
            yield Problem(org_file, f"organization.aws_config.existing_service_linked_role.{i}",
                          f"no account named {name!r} (accounts: {', '.join(sorted(names))})")
    for i, name in enumerate(org.existing_autoscaling_service_linked_role):
        if names and name not in names:
            yield Problem(org_file, f"organization.existing_autoscaling_service_linked_role.{i}",
                          f"no account named {name!r} (accounts: {', '.join(sorted(names))})")
    daily = org.aws_config.daily_recording
    for i, resource_type in enumerate(daily):
        if resource_type in daily[:i]:
            yield Problem(org_file, f"organization.aws_config.daily_recording.{i}",
                          f"{resource_type} is already listed (item {daily.index(resource_type)})")
    if org.break_glass_principal and not IAM_ARN.match(org.break_glass_principal):
        yield Problem(org_file, "organization.break_glass_principal",
                      f"{org.break_glass_principal!r} is not an IAM role, user or root ARN")


def _policy_file_problem(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {exc}"
    except json.JSONDecodeError as exc:
        return f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}"
    if not isinstance(document, dict) or document.get("Version") != "2012-10-17":
        return f"{path} is not a policy document: it needs \"Version\": \"2012-10-17\""
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return f"{path} is not a policy document: \"Statement\" must be a non-empty list"
    for n, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            return f"{path}: Statement {n} needs \"Effect\": \"Allow\" or \"Deny\""
        if not any(k in statement for k in ("Action", "NotAction")):
            return f"{path}: Statement {n} needs \"Action\" or \"NotAction\""
    return None


def _scps(config: FleetConfig, partial: bool) -> Iterator[Problem]:
    """organization.scps: known library names, unique names, AWS quotas; log-archive is a member."""
    org = config.organization
    org_file = str(Path(config.directory) / "organization.yaml")
    attached: dict[str, list[str]] = {ROOT_TARGET: [FULL_AWS_ACCESS], **{p: [FULL_AWS_ACCESS] for p in org.ou_tree}}
    for guardrail in BUILTIN.values():
        for target in builtin_targets(guardrail, org.ou_tree, config.bastion_ous):
            attached[target].append(guardrail.name)
    names = set(BUILTIN)
    for i, scp in enumerate(org.scps):
        base = f"organization.scps.{i}"
        if scp.name in names:
            yield Problem(org_file, f"{base}.name", f"an SCP named {scp.name!r} already exists"
                          + (" (built in)" if scp.name in BUILTIN else ""))
        names.add(scp.name)
        if scp.library is not None and scp.library not in LIBRARY:
            yield Problem(org_file, f"{base}.library",
                          f"unknown SCP {scp.library!r}; the library has: {', '.join(sorted(LIBRARY))}")
        if scp.file is not None:
            size = _compact_size(Path(config.directory) / scp.file)
            if size is not None and size > MAX_SCP_CHARS:
                yield Problem(org_file, f"{base}.file", f"{scp.file} is {size} characters without white space; "
                                                        f"AWS allows {MAX_SCP_CHARS} per SCP")
        for j, target in enumerate(scp.targets or [ROOT_TARGET]):
            if target in attached:
                attached[target].append(scp.name)
                if len(attached[target]) == MAX_SCPS_PER_TARGET + 1:
                    yield Problem(org_file, f"{base}.targets.{j}" if scp.targets else f"{base}.targets",
                                  f"{target} would have {MAX_SCPS_PER_TARGET + 1} SCPs attached, AWS allows "
                                  f"{MAX_SCPS_PER_TARGET} ({', '.join(attached[target])}); "
                                  "attach it lower in the OU tree")
    if not partial:
        log_archive = next((a for a in config.accounts if a.name == org.log_archive_account), None)
        if log_archive is not None and log_archive.id == org.management_account_id:
            yield Problem(org_file, "organization.log_archive_account",
                          "must be a member account: the management account cannot be the delegated "
                          "administrator for GuardDuty")


def _compact_size(path: Path) -> int | None:
    try:
        return len(json.dumps(json.loads(path.read_text(encoding="utf-8")), separators=(",", ":")))
    except (OSError, ValueError):
        return None  # reported by _policy_file_problem


def _regions(config: FleetConfig) -> Iterator[Problem]:
    org = config.organization
    org_file = str(Path(config.directory) / "organization.yaml")
    allowed = set(org.allowed_regions)
    if org.home_region not in allowed:
        yield Problem(org_file, "organization.home_region",
                      f"{org.home_region!r} is not in allowed_regions {sorted(allowed)}")
    if org.state.region not in allowed:
        yield Problem(org_file, "organization.state.region",
                      f"{org.state.region!r} is not in allowed_regions {sorted(allowed)}")
    for acct in config.accounts:
        region = acct.spec.account.region
        if region is not None and region not in allowed:
            yield Problem(acct.file, "account.region", f"{region!r} is not in allowed_regions {sorted(allowed)}")


def _networks(config: FleetConfig) -> Iterator[Problem]:
    claimed: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    for acct in config.accounts:
        spec = acct.spec
        if spec.network is None:
            if spec.clusters:
                yield Problem(acct.file, "network", "clusters need a network section in the same account")
            if spec.bastion is not None:
                yield Problem(acct.file, "network", "the bastion needs a network section in the same account")
            continue
        yield from _without_nat(acct)
        try:
            network = ipaddress.ip_network(spec.network.cidr, strict=True)
        except ValueError as exc:
            yield Problem(acct.file, "network.cidr", f"not a valid network CIDR: {exc}")
            continue
        if network.version != 4 or not network.is_private:
            yield Problem(acct.file, "network.cidr", f"{network} must be a private IPv4 range (RFC 1918)")
        elif not 16 <= network.prefixlen <= 24:
            yield Problem(acct.file, "network.cidr", f"{network}: a VPC CIDR must be between /16 and /24")
        else:
            try:
                subnet_plan(str(network), spec.network.azs)
            except ValueError as exc:
                yield Problem(acct.file, "network.azs", str(exc))
        for other, other_file in claimed:
            if network.overlaps(other):
                yield Problem(acct.file, "network.cidr", f"{network} overlaps {other} in {other_file}")
        claimed.append((network, acct.file))


def _without_nat(acct: Account) -> Iterator[Problem]:
    """``nat: none``: private subnets reach AWS only through interface endpoints (S3 through its
    gateway endpoint) and nothing else at all. The cluster nodes need the endpoints of
    ``cluster_endpoints``; the bastion needs NAT whatever endpoints there are (kubectl comes from
    dl.k8s.io), so its Session Manager endpoints are named in that one message, not a second rule."""
    spec = acct.spec
    network = spec.network
    if network is None or network.nat != "none":
        return
    if spec.clusters:
        needed = cluster_endpoints(c.autoscaler for c in spec.clusters.values())
        missing = missing_endpoints(needed, network.interface_endpoints)
        if missing:
            names = ("cluster " if len(spec.clusters) == 1 else "clusters ") + ", ".join(sorted(spec.clusters))
            yield Problem(acct.file, "network.interface_endpoints",
                          f"with nat: none the nodes of {names} reach AWS only through interface "
                          f"endpoints, and need {', '.join(needed)}; missing: "
                          + "; ".join(f"{service} ({why})" for service, why in missing.items())
                          + ". Add them, or use nat: single or per-az")
    if spec.bastion is not None:
        message = ("the bastion needs outbound HTTPS through NAT: it downloads kubectl from dl.k8s.io at boot, "
                   "which no VPC endpoint serves; use nat: single or per-az")
        missing = missing_endpoints(BASTION_ENDPOINTS, network.interface_endpoints)
        if missing:
            message += (f" (without NAT, Session Manager would also need the interface endpoints "
                        f"{', '.join(BASTION_ENDPOINTS)}; missing: {', '.join(missing)})")
        yield Problem(acct.file, "network.nat", message)


def _clusters(config: FleetConfig) -> Iterator[Problem]:
    ops_clusters: list[str] = []
    for acct in config.accounts:
        spec = acct.spec
        if spec.clusters and spec.network is not None and spec.network.az_count < 2:
            yield Problem(acct.file, "network.azs", "EKS needs subnets in at least 2 AZs: list 2 or more")
        if spec.dns is not None and ROUTE53_QUERY_LOG_REGION not in config.organization.allowed_regions:
            yield Problem(acct.file, "dns", f"Route 53 writes query logs to CloudWatch in {ROUTE53_QUERY_LOG_REGION}: "
                                            f"add {ROUTE53_QUERY_LOG_REGION} to organization.allowed_regions")
        for name, cluster in spec.clusters.items():
            base = f"clusters.{name}"
            if not re.match(r"^[a-z][a-z0-9-]{0,20}$", name):
                yield Problem(acct.file, base, "cluster names are lower-case letters, digits and '-'")
            longest = f"{acct.name}-{name}-green"
            if len(longest) > MAX_SLOT_NAME:
                yield Problem(acct.file, base, f"account and cluster names are too long: slot names like "
                                               f"{longest!r} ({len(longest)} characters) must stay within "
                                               f"{MAX_SLOT_NAME} so the workload IAM role names fit in 64")
            if cluster.role == "ops":
                ops_clusters.append(f"{acct.file}: {base}")
            yield from _cluster(acct.file, base, cluster, spec.dns.zone if spec.dns else None)
    if len(ops_clusters) > 1:
        for where in ops_clusters[1:]:
            file, path = where.split(": ", 1)
            yield Problem(file, f"{path}.role", f"only one ops cluster is allowed; first is {ops_clusters[0]}")


def _cluster(file: str, base: str, cluster: ClusterConfig, zone: str | None) -> Iterator[Problem]:
    if cluster.hostname is not None:
        if zone is None:
            yield Problem(file, f"{base}.hostname", "needs a dns.zone in the same account")
        elif cluster.hostname == zone:
            yield Problem(file, f"{base}.hostname", f"{cluster.hostname!r} is the zone apex, where the weighted "
                                                    f"CNAME records of the slots cannot live; use a name below it "
                                                    f"such as 'api.{zone}'")
        elif not cluster.hostname.endswith("." + zone):
            yield Problem(file, f"{base}.hostname", f"{cluster.hostname!r} is not inside the zone {zone!r}")
    versions = {slot: tuple(int(p) for p in s.version.split(".")) for slot, s in cluster.slots.items()}
    if len(versions) == 2:
        minors = sorted(v[1] for v in versions.values())
        if minors[1] - minors[0] > MAX_MINOR_JUMP:
            yield Problem(file, f"{base}.slots",
                          f"slots are {minors[1] - minors[0]} minor versions apart; a blue/green jump "
                          f"moves at most {MAX_MINOR_JUMP}")
    weights = [s.weight for s in cluster.slots.values()]
    if all(w is not None for w in weights) and sum(w or 0 for w in weights) == 0:
        yield Problem(file, f"{base}.slots", "all slot weights are 0: the hostname would serve nothing")
    for i, cidr in enumerate(cluster.public_access_cidrs):
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            yield Problem(file, f"{base}.public_access_cidrs.{i}", f"not a valid CIDR: {exc}")
            continue
        if net.prefixlen == 0:
            yield Problem(file, f"{base}.public_access_cidrs.{i}",
                          "0.0.0.0/0 opens the API endpoint to the internet; list your office/VPN ranges")
    for i, arn in enumerate(cluster.admins):
        if not IAM_ARN.match(arn):
            yield Problem(file, f"{base}.admins.{i}", f"{arn!r} is not an IAM role or user ARN")
    if cluster.role == "service" and not cluster.node_groups:
        yield Problem(file, f"{base}.node_groups", "a service cluster needs at least one node group")
    for group_name, group in cluster.node_groups.items():
        if not NODE_GROUP_NAME.match(group_name):
            yield Problem(file, f"{base}.node_groups.{group_name}",
                          "a node group name is 1-36 lowercase letters, digits and dashes, starting with a "
                          "letter (EKS adds a 27-character unique suffix within its 63)")
        yield from _node_group(file, f"{base}.node_groups.{group_name}", group)


def _node_group(file: str, base: str, group: NodeGroupConfig) -> Iterator[Problem]:
    if group.min > group.max:
        yield Problem(file, f"{base}.min", f"min ({group.min}) is greater than max ({group.max})")
    if group.max_unavailable is not None and group.max_unavailable_percentage is not None:
        yield Problem(file, f"{base}.max_unavailable_percentage",
                      "set either max_unavailable (nodes) or max_unavailable_percentage, not both")
    if group.desired is not None and not group.min <= group.desired <= group.max:
        yield Problem(file, f"{base}.desired", f"desired ({group.desired}) must be within min..max "
                                               f"({group.min}..{group.max})")
    families = {instance_family(t) for t in group.instance_types}
    if group.capacity == "spot":
        if len(group.instance_types) < 3:
            yield Problem(file, f"{base}.instance_types",
                          f"a spot group needs at least 3 instance types to survive capacity reclaims "
                          f"(has {len(group.instance_types)})")
        elif len(families) < 2:
            yield Problem(file, f"{base}.instance_types",
                          "a spot group needs instance types from at least 2 families (e.g. m7i and m6a)")
    arm = sorted(t for t in group.instance_types if ARM_FAMILY.match(instance_family(t)))
    if arm and len(arm) != len(group.instance_types):
        yield Problem(file, f"{base}.instance_types",
                      f"mixes ARM ({', '.join(arm)}) and x86 instance types; one AMI cannot run both: "
                      f"use two node groups")
    if group.gpu:
        non_gpu = [t for t in group.instance_types if instance_family(t) not in NVIDIA_GPU_FAMILIES]
        if non_gpu:
            yield Problem(file, f"{base}.instance_types",
                          f"GPU group on non-GPU instance types {', '.join(non_gpu)}; use NVIDIA GPU "
                          f"families such as g6, g5, p5")
        if group.ami_type is not None and group.ami_type not in NVIDIA_AMI_TYPES:
            yield Problem(file, f"{base}.ami_type",
                          f"{group.ami_type!r} has no NVIDIA driver; use one of {sorted(NVIDIA_AMI_TYPES)}")
    if group.ami_type is not None and group.ami_type not in AMI_TYPES:
        yield Problem(file, f"{base}.ami_type", f"unknown AMI type {group.ami_type!r}; one of {sorted(AMI_TYPES)}")
    for i, taint in enumerate(group.taints):
        if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", taint.key):
            yield Problem(file, f"{base}.taints.{i}.key", f"{taint.key!r} is not a valid Kubernetes taint key")


def _account_lifecycle(config: FleetConfig, partial: bool) -> Iterator[Problem]:
    """New (no id), adopted and closed accounts: what each may be (docs/organization.md#adding-an-account)."""
    org = config.organization
    if partial:
        return
    # these exist before the organization stack runs: its providers and the state bucket use their ids
    roles = {org.log_archive_account: "the log-archive account (organization.log_archive_account)",
             org.pipeline.account: "the pipeline account (organization.pipeline.account)"}
    for acct in config.accounts:
        info = acct.spec.account
        role = roles.get(acct.name)
        if role is not None and info.id is None:
            yield Problem(acct.file, "account.id", f"required: {role} must exist before the organization "
                          "stack runs (create it and write its id, with adopt: true if fleetform never managed it)")
        if role is not None and info.closed:
            yield Problem(acct.file, "account.closed", f"{role} cannot be closed")
        if info.ou is None and info.id is None:
            yield Problem(acct.file, "account.id", "a new account (no id) needs account.ou: the OU the "
                          "organization stack creates it in")
        if info.id is not None and info.id == org.management_account_id and (info.adopt or info.closed):
            field = "adopt" if info.adopt else "closed"
            yield Problem(acct.file, f"account.{field}", "not for the management account: it is the organization")
        if info.closed and info.id is None:
            yield Problem(acct.file, "account.closed", "closing needs the account's id (account.id): an account "
                          "that was never created has nothing to close; remove the file instead")
