"""What the Ops cluster reaches and registers, derived from the configuration alone (decision 0005).

One source for the stacks (Transit Gateway, registration secrets), ``fleetform gitops`` (values and
ExternalSecrets) and the configuration check, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fleetform.config.models import Account, FleetConfig
from fleetform.errors import Problem
from fleetform.naming import argocd_registration_secret, slot_stack

LABEL_PREFIX = "fleetform.io/"
# annotations of each registration that the cluster's charts read (fleetform gitops names them)
VPC_ID_ANNOTATION = f"{LABEL_PREFIX}vpc-id"
REGION_ANNOTATION = f"{LABEL_PREFIX}region"
AMP_URL_ANNOTATION = f"{LABEL_PREFIX}amp-remote-write-url"


@dataclass(frozen=True)
class Spoke:
    """An account whose VPC attaches to the ops hub's Transit Gateway."""

    name: str
    account_id: str | None  # None: a new account (the organization stack creates it)
    cidr: str


@dataclass(frozen=True)
class Registration:
    """One service slot as Argo CD sees it."""

    stack: str  # also the EKS cluster name
    account: str
    account_id: str | None  # None: a new account (the organization stack creates it)
    region: str
    cluster: str  # the cluster's key under ``clusters:``
    slot: str
    version: str

    @property
    def cluster_name(self) -> str:
        return self.stack

    @property
    def secret_name(self) -> str:
        return argocd_registration_secret(self.stack)

    @property
    def labels(self) -> dict[str, str]:
        """Labels of the Argo CD cluster Secret; ApplicationSets select clusters by them
        (``fleetform.io/slot: green``). The environment is the account (prod, stg, dev)."""
        values = {"account": self.account, "cluster": self.cluster, "slot": self.slot, "version": self.version,
                  "environment": self.account}
        return {f"{LABEL_PREFIX}{k}": v for k, v in values.items()}


@dataclass(frozen=True)
class HubPlan:
    ops_account: Account
    ops_cluster: str
    ops_cidr: str
    ops_slots: list[str]  # slot stacks of the ops cluster
    spokes: list[Spoke]  # accounts other than the ops account with service clusters
    registrations: list[Registration]


def _ops(config: FleetConfig) -> tuple[Account, str] | None:
    for account in config.accounts:
        for name, cluster in account.spec.clusters.items():
            if cluster.role == "ops":
                return account, name
    return None


def hub_plan(config: FleetConfig) -> HubPlan | None:
    """None without an ops cluster (or when its account has no network: the configuration check says so)."""
    found = _ops(config)
    if found is None or found[0].spec.network is None:
        return None
    ops_account, ops_cluster = found
    ops_region = config.region_of(ops_account)
    spokes: list[Spoke] = []
    registrations: list[Registration] = []
    for account in config.accounts:
        services = {n: c for n, c in account.spec.clusters.items() if c.role == "service"}
        if not services or account.spec.network is None or config.region_of(account) != ops_region:
            continue
        if account.name != ops_account.name:
            spokes.append(Spoke(account.name, account.id, account.spec.network.cidr))
        for name, cluster in services.items():
            for slot, settings in cluster.slots.items():
                registrations.append(Registration(
                    stack=slot_stack(account.name, name, slot), account=account.name, account_id=account.id,
                    region=config.region_of(account), cluster=name, slot=slot, version=settings.version))
    ops_slots = [slot_stack(ops_account.name, ops_cluster, s) for s in ops_account.spec.clusters[ops_cluster].slots]
    return HubPlan(ops_account, ops_cluster, ops_account.spec.network.cidr, ops_slots,
                   sorted(spokes, key=lambda s: s.name), registrations)


def hub_problems(config: FleetConfig) -> Iterator[Problem]:
    """Service clusters the hub cannot reach: another region than the ops cluster's (no peering is built)."""
    found = _ops(config)
    if found is None:
        return
    ops_account, ops_cluster = found
    ops_region = config.region_of(ops_account)
    for account in config.accounts:
        region = config.region_of(account)
        for name, cluster in account.spec.clusters.items():
            if cluster.role == "service" and region != ops_region:
                yield Problem(account.file, f"clusters.{name}",
                              f"the ops cluster ({ops_account.name}/{ops_cluster}) reaches service clusters through "
                              f"a Transit Gateway in {ops_region}; this account is in {region}, and fleetform builds "
                              f"no Transit Gateway peering between regions (docs/decisions/0005-ops-hub.md): put "
                              f"the account in {ops_region}")
