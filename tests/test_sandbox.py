"""The sandbox: seeding a moto server from accounts/, and `fleetform sandbox up/status/alarm/down`
running a detached server process on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ACCOUNTS, free_port

from fleetform.config import load_config
from fleetform.sandbox import server
from fleetform.sandbox.seed import seed
from fleetform.scripts.main import cli
from fleetform.scripts.upgrade import cli as upgrade_cli
from fleetform.upgrade.aws import connect
from fleetform.upgrade.gates import traffic
from fleetform.upgrade.state import utcnow
from fleetform.upgrade.target import resolve


def test_seed_applies_the_example_organization(moto_endpoint: str) -> None:
    config = load_config(EXAMPLE_ACCOUNTS)
    clients: dict = {}
    summary = seed(lambda region: clients.setdefault(region, connect(None, region, moto_endpoint)), config)
    assert sorted(summary["clusters"]) == ["dev-main-blue", "prod-main-blue", "prod-main-green", "prod-ops-blue",
                                           "stg-main-blue"]
    aws = connect(None, "ap-northeast-1", moto_endpoint)
    eks = aws.client("eks")
    green = eks.describe_cluster(name="prod-main-green")["cluster"]
    assert green["status"] == "ACTIVE" and green["version"] == "1.36"
    assert sorted(eks.list_nodegroups(clusterName="prod-main-green")["nodegroups"]) == ["app", "gpu", "system"]
    app = eks.describe_nodegroup(clusterName="prod-main-blue", nodegroupName="app")["nodegroup"]
    assert app["capacityType"] == "SPOT" and app["scalingConfig"]["desiredSize"] == 3
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNames=["prod-main-5xx", "prod-main-latency-p99"])
    assert [a["StateValue"] for a in alarms["MetricAlarms"]] == ["OK", "OK"]
    target = resolve(config, "main", "prod")
    from fleetform.upgrade.weights import WeightedRecords

    records = WeightedRecords(aws, target).records()
    assert {s: (r.weight, r.ttl, r.value) for s, r in records.items()} == {
        "blue": (100, 60, "blue.api.familyalbum.example"), "green": (0, 60, "green.api.familyalbum.example")}
    seen = traffic(aws, target, "blue", utcnow() + timedelta(seconds=5))
    assert seen is not None and seen.requests > 0 and traffic(aws, target, "green", utcnow()) is None
    subnets = aws.client("ec2").describe_subnets(Filters=[{"Name": "tag:fleetform:tier", "Values": ["private"]}])
    assert {s["CidrBlock"] for s in subnets["Subnets"]} >= {"10.10.0.0/19", "10.10.32.0/19", "10.10.64.0/19"}


def sandbox(directory: Path, *args: str):
    return CliRunner().invoke(cli, ["sandbox", *args, "--state-dir", str(directory)])


def test_sandbox_up_status_alarm_down(tmp_path: Path) -> None:
    port = free_port()
    directory = tmp_path / "sandbox"
    try:
        up = CliRunner().invoke(cli, ["sandbox", "up", "--port", str(port), "--state-dir", str(directory),
                                      "--config", str(EXAMPLE_ACCOUNTS)])
        assert up.exit_code == 0, up.output
        endpoint = f"http://127.0.0.1:{port}"
        assert f"export AWS_ENDPOINT_URL={endpoint}" in up.stdout and "123456789012" in up.stdout
        record = json.loads((directory / "server.json").read_text())
        assert record["endpoint"] == endpoint and server.alive(record["pid"])
        status = sandbox(directory, "status", "--output", "json")
        assert status.exit_code == 0 and json.loads(status.stdout)["running"] is True
        again = CliRunner().invoke(cli, ["sandbox", "up", "--port", str(port), "--state-dir", str(directory)])
        assert again.exit_code == 1 and "already running" in again.stderr
        # it serves what it seeded, and keeps traffic metrics flowing for the gates
        plan = CliRunner().invoke(upgrade_cli, ["status", "main", "--account", "prod", "--endpoint-url", endpoint,
                                                "--config", str(EXAMPLE_ACCOUNTS), "--state-dir",
                                                str(tmp_path / "state"), "--output", "json"])
        assert plan.exit_code == 0, plan.output
        assert json.loads(plan.stdout)["actual_weights"] == {"blue": 100, "green": 0}
        aws = connect(None, "ap-northeast-1", endpoint)
        target = resolve(load_config(EXAMPLE_ACCOUNTS), "main", "prod")
        deadline = time.monotonic() + 10
        while traffic(aws, target, "blue", utcnow()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert traffic(aws, target, "blue", utcnow()) is not None
        fired = sandbox(directory, "alarm", "prod-main-5xx")
        assert fired.exit_code == 0, fired.output
        alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=["prod-main-5xx"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "ALARM"
    finally:
        down = sandbox(directory, "down")
    assert down.exit_code == 0 and f"pid {record['pid']}" in down.stdout
    assert not server.alive(record["pid"]) and not (directory / "server.json").exists()
    stopped = sandbox(directory, "status")
    assert stopped.exit_code == 1 and "not running" in stopped.stdout
    assert sandbox(directory, "down").stdout.strip() == "no sandbox running"


def test_sandbox_up_refuses_bad_configuration_and_busy_ports(tmp_path: Path, accounts_copy: Path) -> None:
    (accounts_copy / "prod.yaml").write_text((accounts_copy / "prod.yaml").read_text().replace("azs: [", "azs: [x, "))
    bad = CliRunner().invoke(cli, ["sandbox", "up", "--port", str(free_port()), "--state-dir", str(tmp_path),
                                   "--config", str(accounts_copy)])
    assert bad.exit_code == 2 and "prod.yaml" in bad.stderr and not (tmp_path / "server.json").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = CliRunner().invoke(cli, ["sandbox", "up", "--port", str(port), "--state-dir", str(tmp_path)])
    assert taken.exit_code == 1 and "in use" in taken.stderr


@pytest.mark.parametrize("endpoint, sandbox", [("http://127.0.0.1:5055", True), ("http://localhost:1", True),
                                               ("https://eks.ap-northeast-1.amazonaws.com", False), (None, False)])
def test_sandbox_mode_is_a_loopback_endpoint(endpoint, sandbox) -> None:
    from fleetform.upgrade.aws import is_sandbox_endpoint

    assert is_sandbox_endpoint(endpoint) is sandbox
