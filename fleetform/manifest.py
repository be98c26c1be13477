"""What a synth produced: stacks, their dependencies and resource counts, in dependency order."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from fleetform.errors import FleetformError


@dataclass(frozen=True)
class StackInfo:
    name: str
    dependencies: tuple[str, ...]
    directory: Path  # the stack's working directory (holds cdk.tf.json)
    resource_count: int
    destroy: bool = False  # removed from the configuration: plan its destroy (fleetform.terraform.removed)

    @property
    def json_path(self) -> Path:
        return self.directory / "cdk.tf.json"

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "dependencies": list(self.dependencies),
                "directory": str(self.directory), "resources": self.resource_count}


def read_manifest(out_dir: str | Path) -> list[StackInfo]:
    """Stacks of a synthesized output directory, dependencies first (then by name)."""
    root = Path(out_dir)
    path = root / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FleetformError(f"{path} not found: run `fleetform synth` first") from None
    except json.JSONDecodeError as exc:
        raise FleetformError(f"{path} is not valid JSON ({exc.msg}); synthesize again") from None
    stacks = {}
    for name, entry in manifest["stacks"].items():
        directory = root / entry["workingDirectory"]
        body = json.loads((root / entry["synthesizedStackPath"]).read_text())
        count = sum(len(v) for v in body.get("resource", {}).values())
        stacks[name] = StackInfo(name, tuple(sorted(entry.get("dependencies", []))), directory, count)
    return [stacks[name] for name in dependency_order({n: s.dependencies for n, s in stacks.items()})]


def prune_stale_stacks(out_dir: str | Path) -> tuple[list[str], list[str]]:
    """Remove the stack directories of ``out_dir/stacks`` that the manifest no longer lists (a removed
    account, cluster or slot), so nothing plans or applies them by mistake. A directory that holds a
    local Terraform state is kept and reported: removing it would lose that state.
    Returns (removed, kept)."""
    root = Path(out_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    current = {(root / entry["workingDirectory"]).resolve() for entry in manifest["stacks"].values()}
    removed, kept = [], []
    stacks = root / "stacks"
    for directory in sorted(stacks.iterdir()) if stacks.is_dir() else []:
        if not directory.is_dir() or directory.resolve() in current:
            continue
        if any(directory.glob("terraform.tfstate*")):
            kept.append(directory.name)
            continue
        shutil.rmtree(directory)
        removed.append(directory.name)
    return removed, kept


def dependency_order(graph: dict[str, tuple[str, ...] | list[str]]) -> list[str]:
    """Names with every dependency before its dependents; ties broken by name (stable output)."""
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in sorted(graph):
        sorter.add(name, *sorted(d for d in graph[name] if d in graph))
    try:
        sorter.prepare()
    except CycleError as exc:
        raise FleetformError(f"stack dependency cycle: {' -> '.join(exc.args[1])}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def dependents_closure(graph: dict[str, tuple[str, ...] | list[str]], changed: set[str]) -> set[str]:
    """The changed stacks plus every stack that depends on them, directly or not."""
    result = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in graph.items():
            if name not in result and result.intersection(deps):
                result.add(name)
                grew = True
    return result
