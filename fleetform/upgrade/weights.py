"""The weighted Route 53 records of a cluster's hostname: read, change (one batch), wait INSYNC.

One CNAME per slot: name = hostname, set identifier = slot, value = ``naming.slot_hostname``,
TTL ``naming.WEIGHTED_RECORD_TTL``. Weights are percentages (0..100) of the new slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetform import naming
from fleetform.aws_session import call
from fleetform.errors import FleetformError, UsageError
from fleetform.upgrade.aws import Aws
from fleetform.upgrade.permissions import declare
from fleetform.upgrade.target import Target

READ_ACTIONS = declare("weights-read", "route53:ListHostedZonesByName", "route53:ListResourceRecordSets")
CHANGE_ACTIONS = declare("weights-change", "route53:ChangeResourceRecordSets", "route53:GetChange")


@dataclass(frozen=True)
class WeightedRecord:
    slot: str
    weight: int
    ttl: int | None
    value: str | None


def parse_schedule(text: str) -> list[int]:
    """``5,25,50,100`` -> [5, 25, 50, 100]; exit 2 for a schedule that could strand traffic."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError("--steps: give percentages of traffic for the new slot, e.g. 5,25,50,100")
    try:
        steps = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--steps {text!r}: every step must be a whole percentage, e.g. 5,25,50,100") from None
    bad = [s for s in steps if not 0 <= s <= 100]
    if bad:
        raise UsageError(f"--steps {text!r}: percentages must be within 0..100 (got {bad[0]})")
    for before, after in zip(steps, steps[1:], strict=False):
        if after <= before:
            raise UsageError(f"--steps {text!r}: steps must increase ({after} follows {before}); "
                             "to go back use `cluster-upgrade rollback`")
    if steps[-1] != 100:
        raise UsageError(f"--steps {text!r}: the last step must be 100 so the new slot ends with all traffic")
    for step in steps:
        if sum(step_weights("a", "b", step).values()) == 0:
            raise UsageError(f"--steps {text!r}: step {step} would set every weight to 0 (no traffic served)")
    return steps


def step_weights(from_slot: str, to_slot: str, percent: int) -> dict[str, int]:
    return {from_slot: 100 - percent, to_slot: percent}


class WeightedRecords:
    def __init__(self, aws: Aws, target: Target) -> None:
        if not target.hostname or not target.zone:
            raise FleetformError(f"{target.account.file}: clusters.{target.cluster_key}.hostname: the runbook moves "
                                 "traffic with weighted records; set hostname (and dns.zone)")
        self.aws, self.target = aws, target
        self.hostname = target.hostname.rstrip(".")
        self._zone_id: str | None = None

    @property
    def route53(self) -> Any:
        return self.aws.client("route53")

    def zone_id(self) -> str:
        if self._zone_id is None:
            zone = self.target.zone.rstrip(".") + "."  # type: ignore[union-attr]
            found = call(self.route53.list_hosted_zones_by_name, DNSName=zone, MaxItems="10")
            ids = [z["Id"].split("/")[-1] for z in found["HostedZones"]
                   if z["Name"] == zone and not z.get("Config", {}).get("PrivateZone", False)]
            if not ids:
                raise FleetformError(f"no public hosted zone {zone} (dns.zone of {self.target.account.name})")
            self._zone_id = ids[0]
        return self._zone_id

    def records(self) -> dict[str, WeightedRecord]:
        name = self.hostname + "."
        found = call(self.route53.list_resource_record_sets, HostedZoneId=self.zone_id(), StartRecordName=name,
                     StartRecordType="CNAME", MaxItems="20")
        records = {}
        for rrs in found["ResourceRecordSets"]:
            if rrs["Name"].rstrip(".") != self.hostname or rrs["Type"] != "CNAME" or "SetIdentifier" not in rrs:
                continue
            values = [r["Value"] for r in rrs.get("ResourceRecords", [])]
            records[rrs["SetIdentifier"]] = WeightedRecord(rrs["SetIdentifier"], int(rrs.get("Weight", 0)),
                                                           rrs.get("TTL"), values[0] if values else None)
        return records

    def weights(self) -> dict[str, int]:
        return {slot: rec.weight for slot, rec in sorted(self.records().items())}

    def change(self, weights: dict[str, int], comment: str) -> str:
        """Set every slot's weight in ONE change batch; returns the change id."""
        if sum(weights.values()) == 0:
            raise FleetformError("refusing to set every weight to 0: the hostname would serve nothing")
        existing = self.records()
        changes = []
        for slot, weight in sorted(weights.items()):
            rec = existing.get(slot)
            changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                "Name": self.hostname + ".", "Type": "CNAME", "SetIdentifier": slot, "Weight": weight,
                "TTL": rec.ttl if rec and rec.ttl else naming.WEIGHTED_RECORD_TTL,
                "ResourceRecords": [{"Value": rec.value if rec and rec.value
                                     else naming.slot_hostname(self.hostname, slot)}]}})
        answer = call(self.route53.change_resource_record_sets, HostedZoneId=self.zone_id(),
                      ChangeBatch={"Comment": comment[:256], "Changes": changes})
        return answer["ChangeInfo"]["Id"].split("/")[-1]

    def wait_insync(self, change_id: str, sleep: Callable[[float], None], now: Callable[[], datetime],
                    timeout: float = 600, interval: float = 5) -> None:
        started = now()
        while True:
            status = call(self.route53.get_change, Id=change_id)["ChangeInfo"]["Status"]
            if status == "INSYNC":
                return
            if (now() - started).total_seconds() > timeout:
                raise FleetformError(f"Route 53 change {change_id} is still {status} after {timeout:.0f}s; "
                                     "run `cluster-upgrade resume` to keep waiting")
            sleep(interval)

    def ttl(self) -> int:
        ttls = [r.ttl for r in self.records().values() if r.ttl is not None]
        return max(ttls) if ttls else naming.WEIGHTED_RECORD_TTL
