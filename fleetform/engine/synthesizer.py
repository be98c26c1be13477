"""Writes a stack: the core's own synthesis first, then fleetform's document merged into its file.

The core (cdktn's stack synthesizer) runs unchanged: aspects, validations, annotations, the
manifest entry and ``cdk.tf.json`` with the backend and the stack's metadata. This synthesizer,
set on every stack that has a fleetform document, then merges the document into that file, as
the core merges its elements' fragments (objects key by key, everything else replaced), and
writes it the way the core does (keys sorted, two-space indent), with orjson's C encoder: the
standard library's encoder falls back to pure Python whenever ``indent`` is set (a quarter of a
large synth's time); the bytes are the same (tests/test_engine.py compares them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsii
import orjson
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
        path = self._written_path(session)
        try:
            written = orjson.loads(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: fleetform writes stacks as JSON; HCL output is not supported") from exc
        text = dumps(deep_merge(written, self.document.to_terraform()))
        if PLACEHOLDER_MARK in text:
            raise ValueError(f"stack {self.document.name!r} holds a reference that was never resolved: an "
                             f"attribute was changed after its resource was made; pass it to the constructor "
                             f"or use add_override")
        path.write_text(text)

    def _written_path(self, session: ISynthesisSession) -> Path:
        """Where the core wrote the stack: ``stacks/<name>/cdk.tf.json`` under the output directory, as the
        core names it; asked of the session's manifest (a dozen jsii round trips) only if it is not there."""
        outdir = Path(session.outdir)
        path = outdir / "stacks" / self.document.name / "cdk.tf.json"
        if path.is_file():
            return path
        return outdir / session.manifest.for_stack(self.document.stack).synthesized_stack_path


def dumps(document: dict[str, Any]) -> str:
    """``document`` as the core writes it: ``json.dumps(indent=2, sort_keys=True, ensure_ascii=False)``."""
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, non-string keys: the slow path
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def deep_merge(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """``source`` merged into ``target`` (which it changes): objects key by key, the rest replaced."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value
    return target
