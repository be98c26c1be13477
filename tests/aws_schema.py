"""The hashicorp/aws 6.69.1 schema, read from the jsii assembly of cdktn-provider-aws (tests only).

DESIGN section 2: fleetform emits Terraform attributes through a generic resource layer, so the
correctness that typed bindings would give comes from checking every synthesized stack against
the provider schema. The reference is the assembly shipped in ``cdktn-provider-aws==25.8.1``
(``package/.jsii`` inside ``_jsii/provider-aws@25.8.1.jsii.tgz``, 155 MB of JSON). Reading it
takes seconds and over a gigabyte, so it is read once, in a child process, into a compact index
cached on disk next to the virtual environment, keyed by the assembly's size and mtime.

Terraform names come from each property's registry link (``...#get_password_data``), not from
converting the camelCase name: the bindings rename some arguments (``fetchPasswordData``,
``selfAttribute``, ``equalTo``) and split digits differently (``addressLine1`` is
``address_line_1``). The binding itself is never imported here.

Usage: ``load_schema()`` -> ``Schema``; ``check_stack(schema, stack_name, cdk_tf_json)`` -> a
list of ``Violation``. ``python tests/aws_schema.py build`` (re)builds the cache.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROVIDER_VERSION = "6.69.1"
ASSEMBLY_NAME = "provider-aws@25.8.1.jsii.tgz"
FORMAT = 2  # bump when the index layout changes
_PREFIX = "@cdktn/provider-aws."
_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/" + re.escape(PROVIDER_VERSION)
    + r"/docs(?:/([\w-]+)/(\w+))?(?:#(\w+))? [\w.]+(?:#\w+)?\}"
)
# meta-arguments and comments: not part of a resource's schema
META_KEYS = frozenset({"//", "depends_on", "lifecycle", "provider", "count", "for_each", "provisioner",
                       "connection"})
# Terraform built-ins that need no provider
BUILTIN_RESOURCES = frozenset({"terraform_data"})
BUILTIN_DATA_SOURCES = frozenset({"terraform_remote_state"})
_TOKEN = re.compile(r"(?<![$%])[$%]\{.*\}", re.S)  # an interpolation or directive; "$${" is a literal "${"

# a type in the index: "string" | "number" | "boolean" | "any" | ["list", T] | ["map", T] | ["struct", fqn]
Type = Any


@dataclass(frozen=True)
class Attribute:
    name: str  # Terraform name
    jsii_name: str  # camelCase property name in the assembly
    required: bool
    type: Type


@dataclass(frozen=True)
class Violation:
    stack: str
    address: str  # aws_subnet.vpc_subnet-private-1, data.aws_x.y, provider.aws[0]
    path: str  # attribute path inside the block, "" for the block itself
    message: str

    def __str__(self) -> str:
        where = f"{self.address}.{self.path}" if self.path else self.address
        return f"{self.stack}: {where}: {self.message}"


# ---------------------------------------------------------------------------------------------
# building and caching the index


def assembly_path() -> Path:
    """The .jsii.tgz of the installed cdktn-provider-aws, found without importing the package."""
    spec = importlib.util.find_spec("cdktn_provider_aws")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cdktn-provider-aws is not installed: pip install -e '.[test]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "_jsii" / ASSEMBLY_NAME
    if not path.exists():
        raise RuntimeError(f"{path} not found: the schema test needs cdktn-provider-aws==25.8.1")
    return path


def cache_path(assembly: Path) -> Path:
    stat = assembly.stat()
    directory = Path(os.environ.get("FLEETFORM_SCHEMA_CACHE") or Path(sys.prefix) / ".cache" / "fleetform")
    return directory / f"aws-schema-{PROVIDER_VERSION}-{stat.st_size}-{stat.st_mtime_ns}-v{FORMAT}.json"


def _terraform_name(prop: dict) -> str:
    docs = prop.get("docs", {})
    for match in _LINK.finditer(f"{docs.get('summary', '')} {docs.get('remarks', '')}"):
        if match.group(3):
            return match.group(3)
    raise ValueError(f"no registry link with a Terraform name on property {prop['name']}")


def _encode(jsii_type: dict) -> Type:
    if "primitive" in jsii_type:
        return jsii_type["primitive"]  # string, number, boolean, any, json
    if "fqn" in jsii_type:
        return ["struct", jsii_type["fqn"]]
    if "collection" in jsii_type:
        kind = "map" if jsii_type["collection"]["kind"] == "map" else "list"
        return [kind, _encode(jsii_type["collection"]["elementtype"])]
    if "union" in jsii_type:
        members = [_encode(t) for t in jsii_type["union"]["types"] if t.get("fqn") != "cdktn.IResolvable"]
        return members[0] if len(members) == 1 else ["union", members]
    raise ValueError(f"unknown jsii type {jsii_type}")


def build_index(assembly: Path) -> dict:
    """Read the assembly into ``{"resources", "data_sources", "provider", "classes", "structs"}``."""
    with tarfile.open(assembly, "r:gz") as archive:
        member = archive.extractfile("package/.jsii")
        assert member is not None
        types: dict[str, dict] = json.load(member)["types"]
    index: dict[str, Any] = {"version": PROVIDER_VERSION, "resources": {}, "data_sources": {}, "provider": None,
                             "classes": {}, "structs": {}}
    for fqn, jtype in types.items():
        if jtype["kind"] != "class" or not fqn.startswith(_PREFIX):
            continue
        base = jtype.get("base")
        config = next((p["type"]["fqn"] for p in jtype.get("initializer", {}).get("parameters", [])
                       if p["name"] == "config"), None)
        if base == "cdktn.TerraformProvider":
            index["provider"] = config
            index["classes"]["provider"] = fqn
            continue
        if base not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource"):
            continue
        match = _LINK.search(jtype["docs"]["summary"])
        if not match or not match.group(2):
            raise ValueError(f"{fqn}: no Terraform type in its docs link")
        kind = {"resources": "resources", "data-sources": "data_sources"}[match.group(1)]
        tf_type = f"aws_{match.group(2)}"
        index[kind][tf_type] = config
        index["classes"][f"{kind}:{tf_type}"] = fqn
    for fqn, jtype in types.items():
        if not jtype.get("datatype") or not fqn.startswith(_PREFIX):
            continue
        index["structs"][fqn] = {
            _terraform_name(p): [p["name"], not p.get("optional", False), _encode(p["type"])]
            for p in jtype.get("properties", [])
        }
    return index


def _writable_cache(target: Path) -> Path:
    """``target``, or the same name under the temp directory when the environment is read-only."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.access(target.parent, os.W_OK):
            return target
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / "fleetform-cache" / target.name
    fallback.parent.mkdir(parents=True, exist_ok=True)
    return fallback


def _write_cache(assembly: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    temporary.write_text(json.dumps(build_index(assembly), separators=(",", ":")))
    os.replace(temporary, target)  # atomic: concurrent test runs never read half a file


@lru_cache(maxsize=1)
def load_schema() -> Schema:
    """The cached index; built in a child process the first time (keeps this process small)."""
    assembly = assembly_path()
    target = _writable_cache(cache_path(assembly))
    if not target.exists():
        proc = subprocess.run([sys.executable, __file__, "build", str(target)], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0 or not target.exists():
            raise RuntimeError(f"building the schema index failed:\n{proc.stderr[-3000:]}")
    return Schema(json.loads(target.read_text()))


# ---------------------------------------------------------------------------------------------
# the schema and the checks


class Schema:
    def __init__(self, index: dict) -> None:
        self.version: str = index["version"]
        self.resources: dict[str, str] = index["resources"]
        self.data_sources: dict[str, str] = index["data_sources"]
        self.provider: str = index["provider"]
        self.classes: dict[str, str] = index["classes"]
        self._structs: dict[str, dict[str, list]] = index["structs"]

    def struct(self, fqn: str) -> dict[str, Attribute]:
        return {name: Attribute(name, *entry) for name, entry in self._structs[fqn].items()}

    def resource(self, tf_type: str) -> dict[str, Attribute]:
        return self.struct(self.resources[tf_type])

    def data_source(self, tf_type: str) -> dict[str, Attribute]:
        return self.struct(self.data_sources[tf_type])

    def class_fqn(self, kind: str, tf_type: str) -> str:
        """``kind`` is "resources", "data_sources" or "provider"."""
        return self.classes["provider" if kind == "provider" else f"{kind}:{tf_type}"]


def is_token(value: Any) -> bool:
    return isinstance(value, str) and bool(_TOKEN.search(value))


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(kind: Type) -> str:
    if isinstance(kind, str):
        return kind
    if kind[0] == "struct":
        return "block " + kind[1].rsplit(".", 1)[-1]
    if kind[0] == "union":
        return " or ".join(_describe(k) for k in kind[1])
    return f"{kind[0]} of {_describe(kind[1])}"


def _check_value(schema: Schema, kind: Type, value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, message) for each way ``value`` does not fit ``kind``."""
    if value is None or is_token(value) or kind in ("any", "json"):
        return
    if isinstance(kind, list) and kind[0] == "union":
        results = [list(_check_value(schema, k, value, path)) for k in kind[1]]
        if all(results):
            yield path, f"expected {_describe(kind)}, got {type(value).__name__} {_short(value)}"
        return
    if kind == "string":
        if not isinstance(value, str):
            yield path, f"expected string, got {type(value).__name__} {_short(value)}"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            yield path, f"expected number, got {type(value).__name__} {_short(value)}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield path, f"expected boolean, got {type(value).__name__} {_short(value)}"
    elif kind[0] == "list":
        if not isinstance(value, list):
            # a single nested block may be written as an object in Terraform JSON
            if isinstance(kind[1], list) and kind[1][0] == "struct" and isinstance(value, dict):
                yield from _check_block(schema, kind[1][1], value, path)
            else:
                yield path, f"expected {_describe(kind)}, got {type(value).__name__} {_short(value)}"
            return
        for i, item in enumerate(value):
            yield from _check_value(schema, kind[1], item, f"{path}[{i}]")
    elif kind[0] == "map":
        if not isinstance(value, dict):
            yield path, f"expected {_describe(kind)}, got {type(value).__name__} {_short(value)}"
            return
        for key, item in value.items():
            yield from _check_value(schema, kind[1], item, f"{path}[{key!r}]")
    elif kind[0] == "struct":
        # a block with at most one element: an object, or a list of at most one object
        if isinstance(value, list):
            if len(value) > 1:
                yield path, f"at most one {_describe(kind)} allowed, got {len(value)}"
            for i, item in enumerate(value):
                yield from _check_value(schema, kind, item, f"{path}[{i}]")
        elif isinstance(value, dict):
            yield from _check_block(schema, kind[1], value, path)
        else:
            yield path, f"expected {_describe(kind)}, got {type(value).__name__} {_short(value)}"


def _check_block(schema: Schema, fqn: str, body: dict, path: str, skip: frozenset[str] = frozenset()) \
        -> Iterator[tuple[str, str]]:
    attributes = schema.struct(fqn)
    for key, value in body.items():
        if key in skip:
            continue
        where = f"{path}.{key}" if path else key
        if key == "dynamic" and isinstance(value, dict):
            for block, spec in value.items():
                if block not in attributes:
                    yield f"{where}.{block}", f"unknown dynamic block{_suggest(block, attributes)}"
                elif isinstance(spec, dict) and isinstance(spec.get("content"), dict):
                    element = attributes[block].type
                    element = element[1] if isinstance(element, list) and element[0] == "list" else element
                    yield from _check_value(schema, element, spec["content"], f"{where}.{block}.content")
            continue
        if key not in attributes:
            yield where, f"unknown attribute{_suggest(key, attributes)}"
            continue
        yield from _check_value(schema, attributes[key].type, value, where)
    dynamic = body.get("dynamic") if isinstance(body.get("dynamic"), dict) else {}
    for name, attribute in sorted(attributes.items()):
        if attribute.required and name not in body and name not in dynamic:
            yield (f"{path}.{name}" if path else name), "required argument missing"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_stack(schema: Schema, stack: str, document: dict) -> list[Violation]:
    """Every way one synthesized stack (parsed cdk.tf.json) departs from the provider schema."""
    found: list[Violation] = []

    def block(address: str, fqn: str, body: dict) -> None:
        for path, message in _check_block(schema, fqn, body, "", skip=META_KEYS):
            found.append(Violation(stack, address, path, message))

    for name, configs in document.get("provider", {}).items():
        for i, body in enumerate(configs if isinstance(configs, list) else [configs]):
            address = f"provider.{name}[{i}]"
            if name == "aws":
                block(address, schema.provider, body)
            else:
                found.append(Violation(stack, address, "", f"provider {name!r} is not hashicorp/aws"))
    sections = (("resource", schema.resources, BUILTIN_RESOURCES, ""), ("data", schema.data_sources,
                                                                        BUILTIN_DATA_SOURCES, "data."))
    for section, known, builtins, prefix in sections:
        for tf_type, instances in document.get(section, {}).items():
            for name, body in instances.items():
                address = f"{prefix}{tf_type}.{name}"
                if tf_type in builtins:
                    continue
                if tf_type not in known:
                    kind = "resource" if section == "resource" else "data source"
                    found.append(Violation(stack, address, "", f"unknown {kind} type in hashicorp/aws "
                                           f"{schema.version}{_suggest(tf_type, known)}"))
                    continue
                block(address, known[tf_type], body)
    return found


def check_out_dir(schema: Schema, out_dir: Path) -> tuple[list[str], list[Violation]]:
    """(stack names, violations) for every ``stacks/*/cdk.tf.json`` under a synth output."""
    stacks = sorted(p.parent.name for p in (Path(out_dir) / "stacks").glob("*/cdk.tf.json"))
    violations: list[Violation] = []
    for name in stacks:
        document = json.loads((Path(out_dir) / "stacks" / name / "cdk.tf.json").read_text())
        violations += check_stack(schema, name, document)
    return stacks, violations


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        _write_cache(assembly_path(), Path(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "build":
        _write_cache(assembly_path(), cache_path(assembly_path()))
        print(cache_path(assembly_path()))
    else:
        sys.exit("usage: python tests/aws_schema.py build [TARGET]")
