"""Stacks removed from the configuration (a retired cluster slot, ...): destroyed by the pipeline.

``fleetform affected`` synthesizes the base revision; the stacks that only it has are kept in
``<synth dir>/removed/<stack>/cdk.tf.json`` so that ``fleetform plan --affected`` plans their
destroy (``terraform plan -destroy`` against the same state) and ``fleetform apply`` applies it.
Destroying a protected resource type (EKS clusters among them) needs the allow-destroy label, as
any protected destroy does. A stack whose EKS cluster still has deletion protection on is not
planned at all: EKS would refuse the delete half way through (docs/upgrade.md#7-retire).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from fleetform.manifest import StackInfo

REMOVED_DIR = "removed"


def keep_removed(base_out: Path, head_out: Path, names: Iterable[str]) -> list[StackInfo]:
    """Copy each removed stack's Terraform JSON from the base synth into ``head_out/removed/``."""
    target = head_out / REMOVED_DIR
    shutil.rmtree(target, ignore_errors=True)  # from an earlier comparison
    for name in names:
        source = base_out / "stacks" / name / "cdk.tf.json"
        (target / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name / "cdk.tf.json")
    return removed_stacks(head_out)


def removed_stacks(synth_dir: str | Path) -> list[StackInfo]:
    """The removed stacks kept in a synth directory, by name; to be destroyed."""
    root = Path(synth_dir) / REMOVED_DIR
    stacks = []
    for path in sorted(root.glob("*/cdk.tf.json")):
        body = json.loads(path.read_text())
        count = sum(len(v) for v in body.get("resource", {}).values())
        stacks.append(StackInfo(path.parent.name, (), path.parent, count, destroy=True))
    return stacks


def protection_problems(stack: StackInfo) -> list[str]:
    """Why the stack cannot be destroyed yet: its EKS clusters with deletion protection on."""
    body = json.loads(stack.json_path.read_text())
    clusters = body.get("resource", {}).get("aws_eks_cluster", {})
    return [f"aws_eks_cluster.{key} ({spec.get('name', key)}) still has deletion_protection = true: retire its "
            "slot in two steps (`cluster-upgrade retire` marks it retiring, which turns the protection off; "
            "merge and apply that first, then remove the slot)"
            for key, spec in sorted(clusters.items()) if spec.get("deletion_protection") is True]
