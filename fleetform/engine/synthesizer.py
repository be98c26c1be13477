"""Writes a stack: the core's own synthesis first, then fleetform's document merged into its file.

The core (cdktn's stack synthesizer) runs unchanged: aspects, validations, annotations, the
manifest entry and ``cdk.tf.json`` with the backend and the stack's metadata. This synthesizer,
set on every stack that has a fleetform document, then merges the document into that file, as
the core merges its elements' fragments (objects key by key, everything else replaced), and
writes it the way the core does (keys sorted, two-space indent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsii
from cdktn import IStackSynthesizer, ISynthesisSession

from fleetform.engine.document import PLACEHOLDER_MARK

if TYPE_CHECKING:
    from fleetform.engine.document import StackDocument


@jsii.implements(IStackSynthesizer)
class DocumentSynthesizer:
    def __init__(self, core: IStackSynthesizer, document: StackDocument) -> None:
        self.core = core
        self.document = document

    def synthesize(self, session: ISynthesisSession) -> None:
        self.core.synthesize(session)
        path = Path(session.outdir) / session.manifest.for_stack(self.document.stack).synthesized_stack_path
        try:
            written = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: fleetform writes stacks as JSON; HCL output is not supported") from exc
        text = json.dumps(deep_merge(written, self.document.to_terraform()), indent=2, sort_keys=True,
                          ensure_ascii=False)
        if PLACEHOLDER_MARK in text:
            raise ValueError(f"stack {self.document.name!r} holds a reference that was never resolved: an "
                             f"attribute was changed after its resource was made; pass it to the constructor "
                             f"or use add_override")
        path.write_text(text)


def deep_merge(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """``source`` merged into ``target`` (which it changes): objects key by key, the rest replaced."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value
    return target
