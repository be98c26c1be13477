"""What commands say after partial failure (issue 17): drift never claims "no drift" about stacks it
could not check; synth removes the stack directories a removed stack left in cdktf.out/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.tfstacks import edit_stack, two_stacks

from fleetform.scripts.main import cli


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")
def test_drift_does_not_say_no_drift_when_a_stack_could_not_be_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no accounts/ here: drift uses the default pipeline settings
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    (tmp_path / "state").mkdir()

    def broken(body: dict) -> None:  # an undeclared variable: terraform plan fails for this stack
        body["resource"]["terraform_data"]["web"]["input"] = "${var.nope}"

    edit_stack(synth, "app", broken)
    result = CliRunner().invoke(cli, ["drift", "--synth-dir", str(synth), "--out-dir", str(tmp_path / "drift")])
    assert result.exit_code == 1, result.output
    assert "no drift" not in result.stderr
    assert "could not check: app" in result.stderr
    as_json = CliRunner().invoke(cli, ["drift", "--synth-dir", str(synth), "--out-dir", str(tmp_path / "drift"),
                                       "--output", "json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["exit_code"] == 1


def test_synth_removes_stale_stack_directories_but_keeps_local_state(tmp_path):
    out = tmp_path / "cdktf.out"
    stale = out / "stacks" / "prod-main-green-old"
    stale.mkdir(parents=True)
    (stale / "cdk.tf.json").write_text("{}")
    with_state = out / "stacks" / "retired-bootstrap"
    with_state.mkdir()
    (with_state / "terraform.tfstate").write_text("{}")
    root = Path(__file__).resolve().parent.parent
    result = CliRunner().invoke(cli, ["synth", "--config", str(root / "accounts"), "--out", str(out),
                                      "--output", "json"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert (with_state / "terraform.tfstate").exists()
    assert "removed stacks no longer in the configuration" in result.stderr and "prod-main-green-old" in result.stderr
    assert "kept because they hold a local Terraform state: retired-bootstrap" in result.stderr
    listed = {s["name"] for s in json.loads(result.stdout)["stacks"]}
    assert {p.name for p in (out / "stacks").iterdir()} == listed | {"retired-bootstrap"}
