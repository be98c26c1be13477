"""A new account through the pipeline, with real Terraform on provider-free stand-in stacks.

``organization`` stands in for the organization stack: ``terraform_data.account`` for the
``aws_organizations_account`` it creates, and the outputs the real synth has (``account_id_<name>``
and the core's cross-stack output of the same value). ``analytics-baseline`` and
``analytics-network`` read the id through ``terraform_remote_state`` as the real stacks' providers
do. The pull request's plan must leave them out and say so; after the merge, ``fleetform apply``
creates the "account" and ``fleetform apply-new-accounts`` waits for its role (moto's STS) and
applies baseline, then network, through the roles the real pipeline uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from fixtures.tfstacks import edit_stack, local_backend, stack_body, terraform_data, write_synth

from fleetform.errors import FleetformError
from fleetform.new_accounts import wait_until_assumable
from fleetform.scripts.main import cli

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")

NEW_ID = "210987654321"  # what AWS would give the account
CROSS_STACK_OUTPUT = "cross-stack-output-aws_organizations_account_org_account-analytics_id"


def fleetform(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def reader(state_dir: Path, name: str, resources: dict, extra_outputs: dict | None = None) -> dict:
    """A stack that reads the new account's id from the organization stack, as the real ones do."""
    body = stack_body(resources, local_backend(state_dir, name), outputs=extra_outputs)
    body["data"] = {"terraform_remote_state": {"cross-stack-reference-input-organization": {
        "backend": "local", "config": {"path": str(state_dir / "organization.tfstate")}}}}
    body["variable"] = {"fleetform_role": {"type": "string", "default": "fleetform-apply"}}
    return body


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    state = tmp_path / "state"
    state.mkdir()
    account_id = "${data.terraform_remote_state.cross-stack-reference-input-organization.outputs." \
                 + CROSS_STACK_OUTPUT + "}"
    synth = write_synth(tmp_path / "cdktf.out", {
        "organization": stack_body(terraform_data(account=NEW_ID), local_backend(state, "organization"), outputs={
            "account_id_analytics": {"value": "${terraform_data.account.output}"},
            CROSS_STACK_OUTPUT: {"value": "${terraform_data.account.output}", "sensitive": True}}),
        "analytics-baseline": reader(state, "analytics-baseline", terraform_data(roles=account_id)),
        "analytics-network": reader(state, "analytics-network", terraform_data(vpc=account_id)),
        "prod-network": stack_body(terraform_data(vpc="prod"), local_backend(state, "prod-network")),
    }, {"analytics-baseline": ["organization"], "analytics-network": ["organization", "analytics-baseline"]})
    return {"synth": synth, "plans": tmp_path / "plans", "state": state}


def plan(world: dict[str, Path]) -> tuple[int, str, str]:
    return fleetform("plan", "--synth-dir", world["synth"], "--out-dir", world["plans"])


def test_pull_request_plan_creates_the_account_and_defers_its_stacks(world):
    code, out, err = plan(world)
    assert code == 2, err
    report = json.loads((world["plans"] / "report.json").read_text())
    assert [s["stack"] for s in report["stacks"]] == ["organization", "prod-network"]
    assert "`+` create `terraform_data.account`" in out
    assert report["new_accounts"] == [{"account": "analytics", "output": "account_id_analytics",
                                       "stacks": ["analytics-baseline", "analytics-network"]}]
    assert "### New accounts" in out and "`analytics-baseline`, `analytics-network` will be planned and applied " \
        "after the account exists" in out
    assert (world["plans"] / "summary.md").read_text().rstrip("\n") == out.rstrip("\n")
    assert not (world["plans"] / "analytics-baseline").exists()  # never planned: its input does not exist yet
    assert "new account analytics: analytics-baseline, analytics-network will be planned" in err


def test_merge_creates_the_account_waits_and_applies_its_stacks_in_order(world, moto_endpoint, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    assert plan(world)[0] == 2
    code, _, err = fleetform("apply", "--synth-dir", world["synth"], "--out-dir", world["plans"], "--yes")
    assert code == 0, err
    code, out, err = fleetform("apply-new-accounts", "--synth-dir", world["synth"], "--out-dir", world["plans"],
                               "--yes", "--endpoint-url", moto_endpoint, "--wait-interval", "1", "--output", "json")
    assert code == 0, err
    applied = json.loads(out)["applied"]
    assert [(r["stack"], r["status"]) for r in applied] == [("analytics-baseline", "applied"),
                                                            ("analytics-network", "applied")]
    # each waited for the role its provider assumes: the baseline the one CreateAccount made, then fleetform's
    assert f"arn:aws:iam::{NEW_ID}:role/OrganizationAccountAccessRole: assumable" in err
    assert f"arn:aws:iam::{NEW_ID}:role/fleetform-apply: assumable" in err
    assert err.index("analytics-baseline: applied") < err.index("role/fleetform-apply: assumable") \
        < err.index("analytics-network: applying")
    plans = world["plans"] / "new-accounts" / "analytics"
    baseline_plan = json.loads((plans / "analytics-baseline" / "plan.json").read_text())
    network_plan = json.loads((plans / "analytics-network" / "plan.json").read_text())
    assert baseline_plan["variables"]["fleetform_role"]["value"] == "OrganizationAccountAccessRole"
    assert network_plan["variables"]["fleetform_role"]["value"] == "fleetform-apply"
    for name in ("analytics-baseline", "analytics-network"):
        state = json.loads((world["state"] / f"{name}.tfstate").read_text())
        (resource,) = [r for r in state["resources"] if r["mode"] == "managed"]
        assert resource["instances"][0]["attributes"]["input"]["value"] == NEW_ID
    # the next pull request plans every stack again, with no changes and nothing held back
    code, out, err = plan(world)
    assert code == 0, out + err
    report = json.loads((world["plans"] / "report.json").read_text())
    assert {s["stack"] for s in report["stacks"]} == {"organization", "analytics-baseline", "analytics-network",
                                                       "prod-network"}
    assert "new_accounts" not in report and "### New accounts" not in out
    code, out, _ = fleetform("apply-new-accounts", "--synth-dir", world["synth"], "--out-dir", world["plans"], "--yes")
    assert code == 0 and "no stack waits for a new account" in out
    # a later pull request writes the id into the file: the stacks then hold it literally; no change
    for name in ("analytics-baseline", "analytics-network"):
        edit_stack(world["synth"], name, lambda doc: doc.update(json.loads(
            json.dumps(doc).replace("${data.terraform_remote_state.cross-stack-reference-input-organization."
                                    f"outputs.{CROSS_STACK_OUTPUT}}}", NEW_ID))))
    assert NEW_ID in (world["synth"] / "stacks" / "analytics-network" / "cdk.tf.json").read_text()
    code, out, err = plan(world)
    assert code == 0, out + err


def test_apply_new_accounts_refuses_before_the_organization_stack_is_applied(world):
    assert plan(world)[0] == 2
    code, out, err = fleetform("apply-new-accounts", "--synth-dir", world["synth"], "--out-dir", world["plans"],
                               "--yes")
    assert code == 1
    assert "has no account_id_analytics yet: apply organization first" in out + err
    assert not (world["state"] / "analytics-baseline.tfstate").exists()


ROLE = f"arn:aws:iam::{NEW_ID}:role/OrganizationAccountAccessRole"
CREDENTIALS = {"Credentials": {"AccessKeyId": "ASIAEXAMPLEEXAMPLE01", "SecretAccessKey": "secret" * 4,
                               "SessionToken": "token", "Expiration": "2030-01-01T00:00:00Z"}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sts_client():
    return boto3.client("sts", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def test_wait_retries_access_denied_until_the_role_can_be_assumed():
    sts = sts_client()
    clock = FakeClock()
    messages: list[str] = []
    with Stubber(sts) as stub:
        for _ in range(2):  # what STS answers while the new account's role is not there yet
            stub.add_client_error("assume_role", "AccessDenied", f"User is not authorized to perform: "
                                  f"sts:AssumeRole on resource: {ROLE}", 403)
        stub.add_response("assume_role", CREDENTIALS,
                          {"RoleArn": ROLE, "RoleSessionName": "fleetform-new-account-check", "DurationSeconds": 900})
        waited = wait_until_assumable(sts, ROLE, timeout=60, interval=15, progress=messages.append, clock=clock,
                                      sleep=clock.sleep)
        stub.assert_no_pending_responses()
    assert waited == 30 and clock.sleeps == [15, 15]
    assert messages[0] == f"{ROLE}: not assumable yet (AccessDenied: User is not authorized to perform: " \
                          f"sts:AssumeRole on resource: {ROLE}); retrying, 0/60 s"
    assert messages[-1] == f"{ROLE}: assumable after 30 s (3 attempt(s))"


def test_wait_gives_up_after_the_timeout_with_the_last_reason():
    sts = sts_client()
    clock = FakeClock()
    with Stubber(sts) as stub:
        for _ in range(4):
            stub.add_client_error("assume_role", "AccessDenied", "not authorized", 403)
        with pytest.raises(FleetformError) as caught:
            wait_until_assumable(sts, ROLE, timeout=30, interval=10, clock=clock, sleep=clock.sleep)
        stub.assert_no_pending_responses()
    assert clock.sleeps == [10, 10, 10]  # attempts at 0, 10, 20 and 30 s; one more would start after 30 s
    assert f"{ROLE} could not be assumed within 30 s (4 attempts); last reason: AccessDenied: not authorized" \
        in str(caught.value)
    assert "run `fleetform apply-new-accounts` again" in str(caught.value)


def test_the_sharded_pull_request_comment_keeps_the_new_account_section():
    from fleetform.plan_summaries import _result, render_combined

    def record(index: int, stacks: list[str]) -> dict:
        return {"commit": "abc", "shard": f"{index}/2", "exit_code": 2, "stacks": [], "allow_destroy": False,
                "new_accounts": [{"account": "analytics", "output": "account_id_analytics", "stacks": stacks}]}

    shards = [_result(1, 2, record(1, ["analytics-baseline"]), "abc"),
              _result(2, 2, record(2, ["analytics-network", "pipeline"]), "abc")]
    text = render_combined(shards, "abc")
    assert "### New accounts" in text
    assert "`analytics-baseline`, `analytics-network`, `pipeline` will be planned and applied after the account " \
           "exists" in text
