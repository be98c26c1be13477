"""The real-provider lane (issue 14, DESIGN sections 6-7): the example organization with the real
hashicorp/aws provider 5.100.0 and a real Terraform: validate every stack, apply stacks into a moto
server and plan them again (no changes), and plan each everyday YAML change from the applied state
(tests/change_matrix.py). Skipped with the reason where the mirror or Terraform is missing.

The only differences from what the pipeline runs are in tests/real_provider.py: the v6-only arguments
(``provider_5_compatible``) and what moto cannot apply (``MOTO_GAPS``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from real_provider import (
    MOTO_GAPS,
    PROVIDER_VERSION,
    Lane,
    gaps_of,
    provider_5_compatible,
    unavailable,
)

UNAVAILABLE = unavailable()
needs_provider = [pytest.mark.real_provider,
                  pytest.mark.skipif(UNAVAILABLE is not None, reason=f"real-provider lane: {UNAVAILABLE}")]


# ------------------------------------------------------------------ the harness's own rules (no Terraform)


def test_compat_moves_a_per_resource_region_to_an_aliased_provider_of_that_region(stack_json):
    doc = stack_json("prod-baseline")
    compat = provider_5_compatible(doc)
    assert compat["terraform"]["required_providers"]["aws"]["version"] == PROVIDER_VERSION
    providers = {p.get("alias", ""): p for p in compat["provider"]["aws"]}
    for tf_type, items in doc["resource"].items():
        for name, body in items.items():
            moved = compat["resource"][tf_type][name]
            assert "region" not in moved
            if body.get("region") == "us-east-1":
                regional = providers[moved["provider"].removeprefix("aws.")]
                assert regional["region"] == "us-east-1"
                # the same account, role and tags as the stack's provider: only the region differs
                assert {k: v for k, v in regional.items() if k not in ("alias", "region")} == {
                    k: v for k, v in providers[""].items() if k != "region"}
            elif body.get("region") == "ap-northeast-1":
                assert "provider" not in moved
    assert doc["terraform"]["required_providers"]["aws"]["version"].startswith("~> 6")  # the input is untouched


def test_compat_drops_eks_deletion_protection_only(stack_json):
    doc = stack_json("prod-main-blue")
    compat = provider_5_compatible(doc)
    for name, body in doc["resource"]["aws_eks_cluster"].items():
        assert {k: v for k, v in body.items() if k != "deletion_protection"} == compat["resource"]["aws_eks_cluster"][name]


def test_gaps_name_each_unapplied_resource_with_a_reason(stack_json):
    doc = stack_json("prod-main-blue")
    gaps = gaps_of("prod-main-blue", doc)
    assert gaps, "a slot stack has EKS add-ons and access entries"
    for address, reason in gaps.items():
        tf_type = address.split(".")[-2]
        assert reason == MOTO_GAPS.get(tf_type) or reason.startswith("depends on ")
    assert "aws_eks_cluster.cluster_cluster" not in gaps and not any(".aws_eks_node_group" in a for a in gaps)


# --------------------------------------------------------------------------------------- 1. validate


@pytest.mark.slow
@pytest.mark.parametrize("_", [None], ids=["all-stacks"])
def test_every_stack_validates_with_the_real_provider(_, synth_out: Path, tmp_path: Path):
    """Each stack is a module of one root: one init and one load of the provider's schema for all of
    them; a diagnostic names its module, which is the stack."""
    pytest.importorskip("cryptography")
    if UNAVAILABLE:
        pytest.skip(f"real-provider lane: {UNAVAILABLE}")
    lane = Lane(tmp_path / "lane")
    names = sorted(p.name for p in (synth_out / "stacks").iterdir())
    lane.write_from(synth_out, names)
    root = lane.root / "all"
    root.mkdir()
    (root / "main.tf.json").write_text(json.dumps({
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}}},
        "module": {name: {"source": f"../stacks/{name}"} for name in names}}))
    tf = lane.terraform()
    tf.run(["init", "-backend=false", "-input=false", "-no-color"], root)
    result = tf.run(["validate", "-json", "-no-color"], root, ok=(0, 1))
    report = json.loads(result.stdout)
    errors = [d for d in report["diagnostics"] if d["severity"] == "error"]
    warnings = {d["summary"] for d in report["diagnostics"] if d["severity"] == "warning"}
    assert not errors, "\n".join(f"{d.get('range', {}).get('filename')}: {d['summary']}: {d.get('detail', '')}"
                                 for d in errors)
    assert report["valid"] is True
    # the only warning: a backend in a child module is ignored (each stack has its own backend)
    assert warnings <= {"Backend configuration ignored"}
    modules = json.loads((root / ".terraform" / "modules" / "modules.json").read_text())["Modules"]
    assert {m["Key"] for m in modules} - {""} == set(names)


@pytest.mark.slow
def test_the_provider_refuses_v6_arguments_without_the_compat_step(synth_out: Path, tmp_path: Path):
    """The validate above can fail: the same provider on an untouched stack names the v6-only argument."""
    if UNAVAILABLE:
        pytest.skip(f"real-provider lane: {UNAVAILABLE}")
    lane = Lane(tmp_path / "lane")
    directory = lane.stack_dir("prod-baseline")
    directory.mkdir(parents=True)
    doc = json.loads((synth_out / "stacks" / "prod-baseline" / "cdk.tf.json").read_text())
    doc["terraform"]["required_providers"]["aws"]["version"] = PROVIDER_VERSION  # the constraint alone
    (directory / "cdk.tf.json").write_text(json.dumps(doc))
    tf = lane.terraform()
    tf.run(["init", "-backend=false", "-input=false", "-no-color"], directory)
    report = json.loads(tf.run(["validate", "-json", "-no-color"], directory, ok=(0, 1)).stdout)
    assert report["valid"] is False
    assert any(d["summary"] == "Extraneous JSON object property" and "region" in d.get("detail", "")
               for d in report["diagnostics"]), report["diagnostics"][:3]
    shutil.rmtree(lane.root)
