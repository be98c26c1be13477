"""Shared helpers of the upgrade tests (no tests here): a seeded moto, a fake clock, a recording
display, and a recorder of every AWS call the runbook makes (for the permissions test)."""

from __future__ import annotations

import itertools
import os
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_ACCOUNTS, free_port

from fleetform.config import load_config
from fleetform.config.models import FleetConfig
from fleetform.sandbox.catalogue import Catalogue
from fleetform.sandbox.proxy import Proxy
from fleetform.sandbox.seed import put_traffic, seed
from fleetform.upgrade import aws as aws_mod
from fleetform.upgrade.aws import Aws, connect
from fleetform.upgrade.gates import GateResult
from fleetform.upgrade.runbook import Options, Runbook
from fleetform.upgrade.state import AuditLog, LocalStore, utcnow
from fleetform.upgrade.target import resolve
from fleetform.upgrade.weights import WeightedRecords

# every (service, operation) that the runbook itself called in any upgrade test: calls from inside
# fleetform.upgrade / the cluster-upgrade command, not from seeding (fleetform.sandbox) or test helpers
CALLS: set[tuple[str, str]] = set()
_RUNBOOK = (f"{os.sep}fleetform{os.sep}upgrade{os.sep}", f"{os.sep}scripts{os.sep}upgrade.py")
_NOT_RUNBOOK = (f"{os.sep}fleetform{os.sep}sandbox{os.sep}", "test_upgrade_support.py")


def _record_call(service: str, operation: str) -> None:
    files = []
    frame = sys._getframe(1)
    while frame is not None:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    files = [f for f in files if not f.endswith(f"upgrade{os.sep}aws.py")]  # the hook and call() themselves
    if any(m in f for f in files for m in _RUNBOOK) and not any(m in f for f in files for m in _NOT_RUNBOOK):
        CALLS.add((service, operation))


if not any(getattr(o, "__name__", "") == "_record_call" for o in aws_mod.CALL_OBSERVERS):
    aws_mod.CALL_OBSERVERS.append(_record_call)


class FakeClock:
    """now() moves only when sleep() is called; hooks run after each sleep with the new time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or utcnow()
        self.hooks: list[Callable[[datetime], None]] = []
        self.slept = 0.0

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)
        self.slept += seconds
        for hook in list(self.hooks):
            hook(self.moment)

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@dataclass
class RecordingDisplay:
    answers: list[bool] = field(default_factory=list)
    typed: str = ""
    notes: list[str] = field(default_factory=list)
    steps: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    gate_results: list[GateResult] = field(default_factory=list)
    countdowns: int = 0

    def note(self, text: str) -> None:
        self.notes.append(text)

    def step(self, number: int, total: int, percent: int, before: dict[str, int], after: dict[str, int]) -> None:
        self.steps.append((number, after))

    def gates(self, results: list[GateResult]) -> None:
        self.gate_results.extend(results)

    def countdown(self, label: str, remaining: float, total: float) -> None:
        self.countdowns += 1

    def confirm(self, question: str) -> bool:
        return self.answers.pop(0) if self.answers else False

    def typed_confirm(self, expected: str) -> str:
        return self.typed


@dataclass
class Env:
    """The example organization applied to a fresh moto server."""

    endpoint: str
    config_dir: Path
    state_dir: Path
    config: FleetConfig
    clock: FakeClock
    display: RecordingDisplay

    clients: dict[str, Aws] = field(default_factory=dict)

    def aws(self, region: str = "ap-northeast-1") -> Aws:
        if region not in self.clients:
            self.clients[region] = connect(None, region, self.endpoint)
        return self.clients[region]

    def runbook(self, cluster: str = "main", account: str = "prod", aws: Aws | None = None,
                **options: Any) -> Runbook:
        config = load_config(self.config_dir)
        target = resolve(config, cluster, account)
        options.setdefault("insync_interval", 1)
        return Runbook(target, aws or self.aws(target.region), LocalStore(self.state_dir),
                       AuditLog(self.state_dir / "audit.jsonl"), self.display, self.clock, Options(**options))

    def records(self, cluster: str = "main", account: str = "prod") -> WeightedRecords:
        target = resolve(self.config, cluster, account)
        return WeightedRecords(self.aws(target.region), target)

    def weights(self) -> dict[str, int]:
        return self.records().weights()

    def set_weights(self, weights: dict[str, int]) -> None:
        self.records().change(weights, "by hand")

    def set_alarm(self, name: str, state: str) -> None:
        self.aws().client("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def traffic(self, moment: datetime, unhealthy: set[str] = frozenset(), requests: float = 1000.0) -> None:
        """prod/main traffic in proportion to the weights (what CloudWatch would see)."""
        aws = self.aws()
        weights = self.weights()
        for slot, weight in weights.items():
            if weight:
                bad = slot in unhealthy
                share = requests * weight / 100
                put_traffic(aws, f"prod-main-{slot}", moment, share, share * (0.08 if bad else 0.001),
                            700.0 if bad else 120.0)
                PROMQL_RATES[f"prod-main-{slot}"] = 0.08 if bad else 0.001
            else:
                PROMQL_RATES.pop(f"prod-main-{slot}", None)

    def traffic_every(self, seconds: float = 30, **kwargs: Any) -> None:
        """Emit traffic from the clock's hooks every ``seconds`` of fake time."""
        last = [self.clock.now() - timedelta(seconds=seconds)]

        def hook(moment: datetime) -> None:
            if (moment - last[0]).total_seconds() >= seconds:
                last[0] = moment
                self.traffic(moment, **kwargs)

        self.clock.hooks.append(hook)


_EPOCHS = itertools.count(1)
# what the sandbox's PromQL endpoint answers: cluster -> error ratio, set by Env.traffic as CloudWatch's data
PROMQL_RATES: dict[str, float] = {}


@pytest.fixture(scope="module", name="seeded")
def seeded_fixture(moto_server: str) -> Iterator[str]:
    """moto emptied and seeded with the prod account once per test module (seeding costs seconds), behind
    the sandbox's proxy (EKS versions, add-ons, insights, quotas, the PromQL endpoint); yields the proxy."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    config = load_config(EXAMPLE_ACCOUNTS)
    proxy = Proxy(free_port(), moto_server, Catalogue.from_config(config), lambda: dict(PROMQL_RATES)).start()
    clients: dict[str, Aws] = {}
    seed(lambda region: clients.setdefault(region, connect(None, region, proxy.endpoint)), config, only={"prod"})
    try:
        yield proxy.endpoint
    finally:
        proxy.stop()


@pytest.fixture(name="env")
def env_fixture(seeded: str, accounts_copy: Path, tmp_path: Path) -> Env:
    """Per test: blue 100 / green 0, alarms OK, fresh state dir and YAML copy, and a clock of its own
    week in the past so that no two tests' metrics share a gate window."""
    clock = FakeClock(utcnow() - timedelta(days=7 * next(_EPOCHS)))
    env = Env(seeded, accounts_copy, tmp_path / "state", load_config(accounts_copy), clock, RecordingDisplay())
    env.set_weights({"blue": 100, "green": 0})
    PROMQL_RATES.clear()
    for alarm in ("prod-main-5xx", "prod-main-latency-p99"):
        env.set_alarm(alarm, "OK")
    return env
