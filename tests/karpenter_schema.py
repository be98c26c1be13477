"""Check manifests against Karpenter v1's own CRDs (tests/fixtures/karpenter/, copied from
aws/karpenter-provider-aws pkg/apis/crds at 1d927085dd81a9df9301e613f371dac5b4d16bfe, v1.14.1).

Two layers: the CRD's openAPIV3Schema through ``jsonschema`` (types, enums, patterns, required,
min/max), and a strict walk that rejects every key the schema does not declare (the API server
silently prunes unknown fields of a structural schema, so a misspelt key would never fail there).
The CEL rules (``x-kubernetes-validations``) are not evaluated.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

CRDS = Path(__file__).parent / "fixtures" / "karpenter"
FILES = {("karpenter.sh/v1", "NodePool"): "karpenter.sh_nodepools.yaml",
         ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_ec2nodeclasses.yaml"}


@cache
def schema(api_version: str, kind: str) -> dict[str, Any]:
    crd = YAML(typ="safe", pure=True).load((CRDS / FILES[(api_version, kind)]).read_text())
    version = api_version.split("/")[1]
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return served["schema"]["openAPIV3Schema"]


def unknown_keys(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        properties = node.get("properties")
        if properties is None:
            return []  # a map (additionalProperties): any key
        found = [f"{path}.{k}".lstrip(".") for k in value if k not in properties]
        for key, item in value.items():
            if key in properties:
                found += unknown_keys(item, properties[key], f"{path}.{key}")
        return found
    if isinstance(value, list) and "items" in node:
        return [p for i, item in enumerate(value) for p in unknown_keys(item, node["items"], f"{path}.{i}")]
    return []


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every way ``manifest`` disagrees with its CRD's schema (empty: conforms)."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key not in FILES:
        return [f"not a Karpenter v1 NodePool or EC2NodeClass: {key}"]
    node = schema(*key)
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    found = [f"unknown field {p}" for p in unknown_keys(body, node)]
    validator = jsonschema.Draft7Validator({**node, "properties": {
        k: v for k, v in node["properties"].items() if k not in ("apiVersion", "kind", "metadata")}})
    found += [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    return found
