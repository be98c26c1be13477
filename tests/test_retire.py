"""Retiring a slot end to end: the runbook's two steps (mark retiring: deletion protection off;
then remove), and the pipeline's destroy of a removed stack: kept from the base synth by
`fleetform affected`, planned with `terraform plan -destroy`, protected behind allow-destroy,
refused while an EKS cluster in it still has deletion protection on. Real Terraform on
provider-free stacks; the real synth of the example organization for the protection flag."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from conftest import ROOT
from fixtures.tfstacks import local_backend, stack_body, terraform_data, two_stacks, write_synth
from test_upgrade_support import Env, env_fixture, seeded_fixture  # noqa: F401 - fixtures

from fleetform.errors import FleetformError
from fleetform.scripts.main import cli
from fleetform.terraform import Terraform, find_terraform
from fleetform.terraform.removed import keep_removed, protection_problems, removed_stacks
from fleetform.terraform.workflow import PlanOptions, plan_stacks
from fleetform.upgrade.state import SHIFTED


def fleetform(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def state_addresses(state_file: Path) -> set[str]:
    return {f"{r['type']}.{r['name']}" for r in json.loads(state_file.read_text())["resources"]}


@pytest.fixture
def applied(tmp_path: Path) -> dict[str, Path]:
    """``base`` and ``app`` applied; then a new synth without ``app`` (its JSON kept as removed)."""
    state = tmp_path / "state"
    state.mkdir()
    old = two_stacks(tmp_path / "old.out", state)
    assert fleetform("plan", "--synth-dir", old, "--out-dir", tmp_path / "plans0")[0] == 2
    assert fleetform("apply", "--synth-dir", old, "--out-dir", tmp_path / "plans0", "--yes")[0] == 0
    new = write_synth(tmp_path / "new.out", {
        "base": stack_body(terraform_data(seed="v1"), local_backend(state, "base"),
                           outputs={"seed_id": {"value": "${terraform_data.seed.id}"}})})
    kept = keep_removed(old, new, ["app"])
    assert [(s.name, s.destroy, s.resource_count) for s in kept] == [("app", True, 2)]
    return {"old": old, "new": new, "state": state, "plans": tmp_path / "plans"}


def plan_removed(world: dict[str, Path], allow_destroy: bool) -> object:
    options = PlanOptions(out_dir=world["plans"], protected_types=("terraform_data",), allow_destroy=allow_destroy)
    return plan_stacks(Terraform(find_terraform(None)), removed_stacks(world["new"]), options)


def test_a_removed_stack_is_destroyed_only_with_allow_destroy(applied: dict[str, Path]) -> None:
    refused = plan_removed(applied, allow_destroy=False)
    [plan] = refused.plans
    assert (plan.stack, plan.destroys, refused.exit_code) == ("app", 2, 1)  # protected: the plan fails
    assert "allow-destroy label" in refused.markdown
    code, _, err = fleetform("apply", "--synth-dir", applied["new"], "--out-dir", applied["plans"], "--yes")
    assert code == 1 and "destroy protected resources" in err
    assert state_addresses(applied["state"] / "app.tfstate") == {"terraform_data.web", "terraform_data.worker"}

    allowed = plan_removed(applied, allow_destroy=True)
    assert allowed.exit_code == 2
    code, _, err = fleetform("apply", "--synth-dir", applied["new"], "--out-dir", applied["plans"], "--yes")
    assert code == 0, err
    assert state_addresses(applied["state"] / "app.tfstate") == set()  # destroyed
    assert state_addresses(applied["state"] / "base.tfstate") == {"terraform_data.seed"}  # untouched


def test_a_stack_whose_cluster_is_still_protected_is_not_planned(tmp_path: Path) -> None:
    protected = stack_body({"aws_eks_cluster": {"eks": {"name": "prod-main-blue", "deletion_protection": True}}})
    old = write_synth(tmp_path / "old.out", {"prod-main-blue": protected})
    (tmp_path / "new.out").mkdir()
    new = write_synth(tmp_path / "new.out", {})
    [stack] = keep_removed(old, new, ["prod-main-blue"])
    run = plan_stacks(Terraform(find_terraform(None)), [stack], PlanOptions(out_dir=tmp_path / "plans",
                                                                            allow_destroy=True))
    assert run.exit_code == 1 and run.plans[0].status == "error"
    assert "deletion_protection = true" in run.markdown and "cluster-upgrade retire" in run.markdown


# ----------------------------------------------------------------------------- with the real synth

def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_affected_keeps_the_removed_slot_and_the_protection_is_off_only_after_the_mark(tmp_path: Path) -> None:
    repo = tmp_path / "infra"
    shutil.copytree(ROOT / "accounts", repo / "accounts")
    prod = repo / "accounts" / "prod.yaml"
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "green live, blue protected")
    text = prod.read_text()
    prod.write_text(text.replace('      blue: {version: "1.34"}\n', ""))  # removed without the mark
    synth = tmp_path / "cdktf.out"
    code, out, err = fleetform("affected", "--base", "HEAD", "--config", repo / "accounts", "--synth-dir", synth,
                               "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == ["prod-main-blue"]
    [stack] = removed_stacks(synth)
    assert stack.name == "prod-main-blue" and protection_problems(stack)  # prod: protection on in the base

    prod.write_text(text.replace('      blue: {version: "1.34"}\n', '      blue: {version: "1.34", retiring: true}\n'))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "retire: mark blue")
    prod.write_text(text.replace('      blue: {version: "1.34"}\n', ""))
    code, out, err = fleetform("affected", "--base", "HEAD", "--config", repo / "accounts", "--synth-dir", synth)
    assert code == 0, err
    assert "prod-main-blue\tremoved (destroy planned; protected resources need the allow-destroy label)" in out
    [stack] = removed_stacks(synth)
    assert protection_problems(stack) == []  # the marked slot was synthesized with deletion protection off


# ----------------------------------------------------------------------------- the runbook


def test_the_slot_is_removed_only_once_eks_reports_the_protection_off(env: Env) -> None:
    env.traffic_every(30)
    assert env.runbook(yes=True, ttl_wait=False).shift([50, 100], 10).phase == SHIFTED
    env.clock.advance(minutes=1441)
    marked = env.runbook().retire("prod-main-blue")
    assert marked["step"] == "mark" and "retiring: true" in (env.config_dir / "prod.yaml").read_text()
    runbook = env.runbook()
    stubber = Stubber(runbook.aws.client("eks"))
    stubber.add_response("describe_cluster", {"cluster": {"name": "prod-main-blue", "deletionProtection": True}},
                         {"name": "prod-main-blue"})
    with stubber, pytest.raises(FleetformError, match="still has deletion protection on"):
        runbook.retire("prod-main-blue")
    assert "retiring: true" in (env.config_dir / "prod.yaml").read_text()  # nothing removed
    stubber.add_response("describe_cluster", {"cluster": {"name": "prod-main-blue", "deletionProtection": False}},
                         {"name": "prod-main-blue"})
    with stubber:
        removed = env.runbook(aws=runbook.aws).retire("prod-main-blue")
    assert removed["step"] == "remove" and "blue:" not in (env.config_dir / "prod.yaml").read_text().split(
        "node_groups")[0].split("main:")[1]


def test_a_removed_stacks_destroy_waits_for_every_other_stack_of_the_run(tmp_path: Path) -> None:
    from fleetform.manifest import StackInfo
    from fleetform.terraform.workflow import run_graph

    network = StackInfo("prod-network", (), tmp_path, 1)
    green = StackInfo("prod-main-green", ("prod-network",), tmp_path, 1)
    blue = StackInfo("prod-main-blue", (), tmp_path, 1, destroy=True)
    assert run_graph([network, green, blue]) == {"prod-network": (), "prod-main-green": ("prod-network",),
                                                 "prod-main-blue": ("prod-network", "prod-main-green")}
