"""Which account, cluster and slots a command acts on, and the caller-account guard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetform import naming
from fleetform.config.lifecycle import require_account_id
from fleetform.config.models import SLOT_NAMES, Account, ClusterConfig, FleetConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.upgrade.aws import SANDBOX_ACCOUNT_ID, Aws


@dataclass(frozen=True)
class Target:
    config: FleetConfig
    account: Account
    cluster_key: str
    cluster: ClusterConfig
    live_slot: str  # serves traffic today (blue)
    new_slot: str  # the slot being brought up (green)

    @property
    def key(self) -> str:
        return f"{self.account.name}-{self.cluster_key}"

    @property
    def file(self) -> Path:
        return Path(self.account.file)

    @property
    def region(self) -> str:
        return self.config.region_of(self.account)

    @property
    def zone(self) -> str | None:
        return self.account.spec.dns.zone if self.account.spec.dns else None

    @property
    def hostname(self) -> str | None:
        return self.cluster.hostname

    @property
    def alarms(self) -> list[str]:
        return list(self.cluster.upgrade.alarms)

    def eks_name(self, slot: str) -> str:
        return naming.cluster_name(self.account.name, self.cluster_key, slot)

    def version_of(self, slot: str) -> str | None:
        cfg = self.cluster.slots.get(slot)
        return cfg.version if cfg else None

    def with_slots(self, live: str, new: str) -> Target:
        return Target(self.config, self.account, self.cluster_key, self.cluster, live, new)


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def live_and_new(cluster: ClusterConfig) -> tuple[str, str]:
    """The live slot is the only one, or the older of two (ties: the one with weight, else blue)."""
    slots = cluster.slots
    if len(slots) == 1:
        live = next(iter(slots))
    else:
        def rank(name: str) -> tuple[tuple[int, int], int, int]:
            weight = slots[name].weight
            return version_tuple(slots[name].version), -(weight or 0), SLOT_NAMES.index(name)

        live = min(slots, key=rank)
    return live, next(s for s in SLOT_NAMES if s != live)


def resolve(config: FleetConfig, cluster: str, account: str | None) -> Target:
    """Find CLUSTER (in --account, or the only account that has it); exit 2 when ambiguous."""
    if account is not None:
        try:
            candidates = [config.account(account)]
        except KeyError:
            names = ", ".join(a.name for a in config.accounts)
            raise UsageError(f"--account: no account named {account!r} (accounts: {names})") from None
    else:
        candidates = [a for a in config.accounts if cluster in a.spec.clusters]
        if len(candidates) > 1:
            raise UsageError(f"cluster {cluster!r} exists in accounts "
                             f"{', '.join(a.name for a in candidates)}: choose one with --account")
    found = [a for a in candidates if cluster in a.spec.clusters]
    if not found:
        where = f"account {account!r}" if account else "any account"
        known = sorted(f"{a.name}/{c}" for a in candidates for c in a.spec.clusters)
        raise UsageError(f"no cluster {cluster!r} in {where} (clusters: {', '.join(known) or 'none'})")
    acct = found[0]
    cfg = acct.spec.clusters[cluster]
    live, new = live_and_new(cfg)
    return Target(config, acct, cluster, cfg, live, new)


def expected_account_id(target: Target, aws: Aws) -> str:
    """The account the caller must be in; in the sandbox every account is moto's one account."""
    if aws.sandbox:
        return SANDBOX_ACCOUNT_ID
    return require_account_id(target.account)


def check_caller(target: Target, aws: Aws) -> dict[str, str]:
    """Refuse to act when the credentials belong to another account than the configuration's."""
    caller = aws.caller()
    expected = expected_account_id(target, aws)
    if caller["account"] != expected:
        note = " (sandbox: moto's account)" if aws.sandbox else ""
        raise FleetformError(
            f"caller {caller['arn']} is in account {caller['account']}, but {target.account.file} says "
            f"{target.account.name} is {expected}{note}; use --profile for {target.account.name}")
    return caller
