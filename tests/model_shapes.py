"""Answers of a fake AWS checked against botocore's service models: the raw JSON strictly (no member the
model lacks, every type and enum right) and the parsed answer with botocore's Stubber. Used by the tests
of the sandbox proxy and of the real-provider lane's moto additions."""

from __future__ import annotations

import json
from typing import Any

from botocore.model import Shape
from botocore.stub import Stubber

from fleetform.aws_session import call


def strict(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Problems of raw JSON ``value`` against a botocore output shape (unknown keys included)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        names = {m.serialization.get("name", n): m for n, m in shape.members.items()}
        problems = [f"{path}.{k}: not in the model" for k in value if k not in names]
        for key, item in value.items():
            if key in names:
                problems += strict(item, names[key], f"{path}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, item in enumerate(value) for p in strict(item, shape.member, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: not a map"]
        return [p for k, v in value.items() for p in strict(k, shape.key, path) + strict(v, shape.value, f"{path}.{k}")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        return [f"{path}: {value!r} not in {shape.enum}"] if shape.enum and value not in shape.enum else []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: not a boolean"]
    if kind in ("integer", "long"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: not an integer"]
    if kind in ("double", "float"):
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: not a number"]
    if kind == "timestamp":
        return [] if isinstance(value, int | float) else [f"{path}: not epoch seconds"]
    return [f"{path}: unexpected type {kind}"]


def answered_by(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """Call through a real client; check the raw body strictly and the parsed answer with a Stubber."""
    raw: list[bytes] = []
    name = client.meta.method_to_api_mapping[operation]
    hook = f"after-call.{client.meta.service_model.service_id.hyphenize()}.{name}"

    def keep(http_response: Any = None, **_: Any) -> None:
        raw.append(http_response.content)

    client.meta.events.register(hook, keep)
    try:
        parsed = call(getattr(client, operation), **kwargs)
    finally:
        client.meta.events.unregister(hook, keep)
    output = client.meta.service_model.operation_model(name).output_shape
    assert strict(json.loads(raw[0]), output) == []
    parsed.pop("ResponseMetadata", None)
    stubber = Stubber(client)
    stubber.add_response(operation, parsed)  # validates the parsed answer against the model
    return parsed
