"""Round-trip edits of an account file (comments and layout kept): add, mark or remove a slot.

``prepare`` adds the new slot beside the live one; ``retire`` marks the old slot ``retiring``
(deletion protection off), then removes it. Each writes
the file atomically, re-validate the whole configuration (and restore the file when it does not
load) and return a unified diff for the pull request.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from fleetform.config import load_config
from fleetform.errors import ConfigurationError, FleetformError
from fleetform.upgrade.state import write_atomic


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _slots(document: CommentedMap, path: Path, cluster: str) -> CommentedMap:
    try:
        return document["clusters"][cluster]["slots"]
    except (KeyError, TypeError):
        raise FleetformError(f"{path}: clusters.{cluster}.slots not found") from None


def _edit(path: Path, cluster: str, change: Callable[[CommentedMap], None]) -> str:
    yaml = _yaml()
    original = path.read_text(encoding="utf-8")
    document = yaml.load(original)
    change(_slots(document, path, cluster))
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    updated = buffer.getvalue()
    if updated == original:
        return ""
    write_atomic(path, updated)
    try:
        load_config(path.parent)
    except ConfigurationError:
        write_atomic(path, original)
        raise
    return "".join(difflib.unified_diff(original.splitlines(True), updated.splitlines(True),
                                        fromfile=f"a/{path.name}", tofile=f"b/{path.name}"))


def add_slot(path: Path, cluster: str, slot: str, version: str, after: str) -> str:
    """Add ``slot: {version: "X"}`` right after the live slot, in the live slot's style."""

    def change(slots: CommentedMap) -> None:
        if slot in slots:
            raise FleetformError(f"{path}: clusters.{cluster}.slots.{slot} already exists")
        entry = CommentedMap(version=DoubleQuotedScalarString(version))
        live = slots.get(after)
        if isinstance(live, CommentedMap) and live.fa.flow_style():
            entry.fa.set_flow_style()
        position = list(slots).index(after) + 1 if after in slots else len(slots)
        slots.insert(position, slot, entry)

    return _edit(path, cluster, change)


def remove_slot(path: Path, cluster: str, slot: str) -> str:
    def change(slots: CommentedMap) -> None:
        if slot not in slots:
            raise FleetformError(f"{path}: clusters.{cluster}.slots.{slot} does not exist")
        if len(slots) < 2:
            raise FleetformError(f"{path}: clusters.{cluster}: refusing to remove the only slot")
        # a comment trailing the removed entry (e.g. "# present only during an upgrade") goes with it
        del slots[slot]

    return _edit(path, cluster, change)


def mark_retiring(path: Path, cluster: str, slot: str) -> str:
    """``slot: {version: "X", retiring: true}``: the pipeline turns the cluster's deletion protection off."""

    def change(slots: CommentedMap) -> None:
        if slot not in slots:
            raise FleetformError(f"{path}: clusters.{cluster}.slots.{slot} does not exist")
        slots[slot]["retiring"] = True

    return _edit(path, cluster, change)
