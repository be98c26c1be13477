"""Read-only checks against a real AWS account; excluded by default (marker ``live``).

Run with real credentials (nothing is changed in the account):

    FLEETFORM_LIVE=1 AWS_PROFILE=prod-readonly FLEETFORM_LIVE_ACCOUNT=prod FLEETFORM_LIVE_CLUSTER=main \\
      .venv/bin/pytest -m live
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from fleetform.scripts.upgrade import cli as upgrade_cli

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.environ.get("FLEETFORM_LIVE") != "1", reason="set FLEETFORM_LIVE=1 and real credentials"),
]

ACCOUNT = os.environ.get("FLEETFORM_LIVE_ACCOUNT", "prod")
CLUSTER = os.environ.get("FLEETFORM_LIVE_CLUSTER", "main")


def test_credentials_belong_to_the_configured_account(example_config):
    from fleetform.aws_session import session

    identity = session(os.environ.get("AWS_PROFILE")).client("sts").get_caller_identity()
    assert identity["Account"] == example_config.account(ACCOUNT).id


def test_upgrade_preflight_runs_read_only(tmp_path, example_config):
    """The preflight reads the live cluster, versions, insights, quotas, records and alarms."""
    blue = example_config.account(ACCOUNT).spec.clusters[CLUSTER].slots["blue"].version
    major, minor = blue.split(".")
    result = CliRunner().invoke(upgrade_cli, [
        "plan", CLUSTER, "--account", ACCOUNT, "--to", f"{major}.{int(minor) + 1}",
        "--state-dir", str(tmp_path), "--output", "json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert report["checks"], report
    assert all(check["status"] in ("pass", "warn", "fail", "unknown") for check in report["checks"])
