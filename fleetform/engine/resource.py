"""Terraform resources, data sources and the AWS provider on the cdktn core.

Resources and data sources are plain Python objects. Each stack hands all of them to the core
as ONE element (``StackBlocks``), so building and synthesizing a resource costs no jsii round
trip; the stack, its backend, providers, variables, locals and outputs stay cdktn constructs.
Why: each jsii round trip costs about 0.6 ms, and a resource used to cost eight of them
(docs/decisions/0004-one-element-per-stack.md).

References are strings with a placeholder for the resource (``${__ffr12__.arn}``) that
``StackBlocks`` resolves when the stack is synthesized: to ``${aws_x.name.arn}`` in the
resource's own stack, and through the core's ``App.cross_stack_reference`` (an output in the
owning stack, remote state in the consuming one, a stack dependency) in any other stack.
"""

from __future__ import annotations

import itertools
import json
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from cdktn import App, TerraformElement, TerraformOutput, TerraformProvider, TerraformStack
from constructs import Construct

AWS_PROVIDER_SOURCE = "hashicorp/aws"
AWS_PROVIDER_CONSTRAINT = "~> 6.69"
_AWS_META = {"provider_name": "aws", "provider_version_constraint": AWS_PROVIDER_CONSTRAINT}

# a reference is "${__ffr<serial>__.<attribute path>}"; an expression may hold "__ffr<serial>__.<path>"
_PLACEHOLDER = re.compile(r"__ffr(\d+)__")
_WHOLE_REFERENCE = re.compile(r"\$\{__ffr(\d+)__((?:\.[A-Za-z0-9_\-\[\]\*\"]+)*)\}")
_serials = itertools.count(1)
_BY_SERIAL: weakref.WeakValueDictionary[int, Block] = weakref.WeakValueDictionary()


def _clean(value: Any) -> Any:
    """Drop None values so optional arguments can be passed unconditionally."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class CrossStackExpressionError(ValueError):
    """A reference to another stack's resource inside a larger Terraform expression."""


class AwsProvider(TerraformProvider):
    """The hashicorp/aws provider block; attributes are passed as Terraform names.

    ``alias`` makes it an extra provider (``provider = aws.<alias>`` on the resources given it).
    The core reads ``alias`` from the subclass (it is abstract there), hence the property.
    """

    def __init__(self, scope: Construct, id: str, *, alias: str | None = None, **attributes: Any) -> None:
        self._fleetform_alias = alias
        super().__init__(
            scope,
            id,
            terraform_resource_type="aws",
            terraform_generator_metadata=_AWS_META,
            terraform_provider_source=AWS_PROVIDER_SOURCE,
        )
        self._attributes = _clean(attributes)

    @property
    def alias(self) -> str | None:
        return self._fleetform_alias

    @alias.setter
    def alias(self, value: str | None) -> None:
        self._fleetform_alias = value

    @property
    def address(self) -> str:
        """``aws`` or ``aws.<alias>``, as a resource's ``provider`` argument names it."""
        return f"aws.{self._fleetform_alias}" if self._fleetform_alias else "aws"

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self._attributes


class Block:
    """What Resource and DataSource share: an address in a stack, arguments, meta-arguments."""

    section: ClassVar[str]

    def __init__(
        self,
        scope: Construct,
        id: str,
        terraform_type: str,
        *,
        depends_on: Sequence[Dependable] | None = None,
        provider: AwsProvider | None = None,
        **attributes: Any,
    ) -> None:
        self.stack_blocks = StackBlocks.of(scope)
        self.terraform_type = terraform_type
        self.path = f"{construct_path(scope)}/{id}"
        self.logical_id = logical_id_for_path(self.path)
        prefix = "data." if self.section == "data" else ""
        self.address = f"{prefix}{terraform_type}.{self.logical_id}"
        self.depends_on: list[Dependable] = list(depends_on or ())
        self.provider = provider
        self.attributes: dict[str, Any] = _clean(attributes)
        self.overrides: dict[str, Any] = {}
        serial = next(_serials)
        self._placeholder = f"__ffr{serial}__"
        _BY_SERIAL[serial] = self
        self.stack_blocks.add(self)

    @property
    def friendly_unique_id(self) -> str:
        """The Terraform name (the part after the type), as the core calls it."""
        return self.logical_id

    def attr(self, name: str) -> str:
        """A reference to an attribute (``${aws_x.y.name}``); works from any stack."""
        return "${" + self._placeholder + "." + name + "}"

    def expr(self, name: str) -> str:
        """The attribute as a bare expression (``aws_x.y.name``), to build a larger
        ``${...}`` expression in the same stack (a function call, a ``for``)."""
        return f"{self._placeholder}.{name}"

    @property
    def id_ref(self) -> str:
        return self.attr("id")

    @property
    def arn(self) -> str:
        return self.attr("arn")

    def add_override(self, path: str, value: Any) -> None:
        """Set a raw key of the emitted block, e.g. ``for_each`` or ``//.checkov_skip``."""
        self.overrides[path] = value

    def to_terraform(self, resolve: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"//": {"metadata": {"path": self.path, "uniqueId": self.logical_id}}}
        body.update(resolve(self.attributes))
        if self.depends_on:
            body["depends_on"] = [_dependency_address(d) for d in self.depends_on]
        if self.provider is not None:
            body["provider"] = self.provider.address
        body.update(self._meta_arguments(resolve))
        for path, value in self.overrides.items():
            _set_path(body, path.split("."), resolve(value))
        return body

    def _meta_arguments(self, resolve: Any) -> dict[str, Any]:
        return {}


Dependable = Block | str


class Resource(Block):
    """Any AWS resource: ``Resource(self, "bucket", "aws_s3_bucket", bucket="x", tags={...})``.

    Attributes use Terraform's names; nested blocks are lists of dicts (or a dict for a single
    block). ``None`` values are dropped. Read attributes with ``.attr("arn")``, ``.arn`` and
    ``.id_ref``. ``skip_checks`` records checkov skips, each with its reason (decision 0002).
    """

    section = "resource"

    def __init__(
        self,
        scope: Construct,
        id: str,
        terraform_type: str,
        *,
        depends_on: Sequence[Dependable] | None = None,
        lifecycle: Mapping[str, Any] | None = None,
        provider: AwsProvider | None = None,
        skip_checks: Mapping[str, str] | None = None,
        **attributes: Any,
    ) -> None:
        super().__init__(scope, id, terraform_type, depends_on=depends_on, provider=provider, **attributes)
        self.lifecycle: dict[str, Any] | None = _clean(dict(lifecycle)) if lifecycle else None
        self.import_id: str | None = None
        self.check_skips: dict[str, str] = {}
        if skip_checks:
            add_check_skips(self, skip_checks)

    def import_from(self, import_id: str) -> None:
        """Adopt an existing object: an ``import`` block to this resource's address."""
        self.import_id = import_id

    def _meta_arguments(self, resolve: Any) -> dict[str, Any]:
        return {"lifecycle": resolve(self.lifecycle)} if self.lifecycle else {}


class DataSource(Block):
    """Any AWS data source: ``DataSource(self, "azs", "aws_availability_zones", state="available")``."""

    section = "data"


class StackBlocks(TerraformElement):
    """The one element that carries all of a stack's resources and data sources to the core."""

    ID = "fleetform-blocks"

    def __init__(self, stack: TerraformStack) -> None:
        super().__init__(stack, self.ID)
        self.stack = stack
        self.blocks: list[Block] = []
        self._addresses: dict[str, str] = {}
        self._app: App | None = None
        self._cross_stack: dict[tuple[int, str], str] = {}

    @classmethod
    def of(cls, scope: Construct) -> StackBlocks:
        """The blocks of the stack ``scope`` is in (looked up once per scope)."""
        found = scope.__dict__.get("_fleet_blocks")
        if found is None:
            stack = scope if isinstance(scope, TerraformStack) else TerraformStack.of(scope)
            found = stack.__dict__.get("_fleet_blocks")
            if found is None:
                found = cls(stack)
                stack.__dict__["_fleet_blocks"] = found
            scope.__dict__["_fleet_blocks"] = found
        return found

    def add(self, block: Block) -> None:
        key = f"{block.section}.{block.terraform_type}.{block.logical_id}"
        if key in self._addresses:
            raise ValueError(f"{block.address} is defined twice in stack {construct_path(self.stack)!r} "
                             f"({self._addresses[key]} and {block.path})")
        self._addresses[key] = block.path
        self.blocks.append(block)

    def under(self, scope: Construct) -> Iterator[Block]:
        """The blocks defined below ``scope``."""
        prefix = construct_path(scope) + "/"
        return (b for b in self.blocks if b.path.startswith(prefix))

    def to_terraform(self) -> Any:  # called by the core for each synthesis pass
        document: dict[str, Any] = {}
        imports = []
        for block in self.blocks:
            body = block.to_terraform(self.resolve)
            document.setdefault(block.section, {}).setdefault(block.terraform_type, {})[block.logical_id] = body
            if isinstance(block, Resource) and block.import_id is not None:
                entry = {"id": block.import_id, "to": block.address}
                if block.provider is not None:
                    entry["provider"] = block.provider.address
                imports.append(entry)
        if imports:
            document["import"] = imports
        return document

    def resolve(self, value: Any) -> Any:
        """``value`` with every fleetform reference made valid in this stack."""
        if isinstance(value, str):
            return self._resolve_string(value) if "__ffr" in value else value
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.resolve(v) for v in value]
        if isinstance(value, Block):
            raise TypeError(f"{value.address}: pass a reference (.attr(...), .id_ref), not the resource itself")
        return value

    def _resolve_string(self, text: str) -> str:
        def whole(match: re.Match[str]) -> str:
            block = _block(int(match.group(1)))
            if block.stack_blocks is self:
                return "${" + block.address + match.group(2) + "}"
            return self._cross_stack_token(block, block.address + match.group(2))

        def bare(match: re.Match[str]) -> str:
            block = _block(int(match.group(1)))
            if block.stack_blocks is not self:
                raise CrossStackExpressionError(
                    f"{block.path} is in another stack than {construct_path(self.stack)!r}: a reference to it "
                    f"must be a whole ${{...}} of its own (use .attr(), not .expr()), so it can travel "
                    f"through remote state; in: {text}")
            return block.address

        return _PLACEHOLDER.sub(bare, _WHOLE_REFERENCE.sub(whole, text))

    def _cross_stack_token(self, block: Block, identifier: str) -> str:
        key = (id(block.stack_blocks), identifier)
        token = self._cross_stack.get(key)
        if token is None:
            if self._app is None:
                self._app = App.of(self.stack)
            token = self._app.cross_stack_reference(block.stack_blocks.stack, self.stack, identifier)
            self._cross_stack[key] = token
        return token


def resolve(scope: Construct, value: Any) -> Any:
    """``value`` with fleetform references resolved for ``scope``'s stack: for arguments of the
    core's own constructs (``TerraformOutput``, ``TerraformLocal``), which do not know them."""
    return StackBlocks.of(scope).resolve(value)


def output(scope: Construct, id: str, value: Any, **options: Any) -> TerraformOutput:
    """A stack output whose value may hold fleetform references."""
    return TerraformOutput(scope, id, value=resolve(scope, value), **options)


def _block(serial: int) -> Block:
    block = _BY_SERIAL.get(serial)
    if block is None:
        raise ValueError(f"reference __ffr{serial}__ points to a resource of an app that no longer exists")
    return block


def _dependency_address(dependency: Dependable) -> str:
    if isinstance(dependency, Block):
        return dependency.address
    if isinstance(dependency, str):
        return dependency
    raise TypeError(f"depends_on takes fleetform resources or addresses, not {type(dependency).__name__}")


def _set_path(body: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = body.get(key)
        if not isinstance(child, dict):
            child = body[key] = {}
        body = child
    body[keys[-1]] = value


def add_check_skips(resource: Resource, skips: Mapping[str, str]) -> None:
    """Record inline checkov skips, each with its reason, in the resource's ``//`` comment.

    checkov's terraform_json runner ignores skip comments, so fleetform's scan
    (fleetform.checks.checkov_scan) honours these entries instead; see
    docs/decisions/0002-checkov-inline-skips.md.
    """
    for check_id, reason in skips.items():
        if not reason or not reason.strip():
            raise ValueError(f"checkov skip {check_id} needs a reason")
    resource.check_skips.update(skips)  # later calls add to earlier ones; none is silently lost
    resource.add_override("//.checkov_skip",
                          [f"checkov:skip={k}:{v}" for k, v in sorted(resource.check_skips.items())])


def construct_path(scope: Construct) -> str:
    """``scope.node.path``, cached on the scope: asking node costs jsii round trips."""
    path = scope.__dict__.get("_fleet_path")
    if path is None:
        path = scope.node.path
        scope.__dict__["_fleet_path"] = path
    return path


def readable_logical_id(scope: Construct, id: str) -> str:
    """The element's construct path below its stack, joined by '_' (``vpc_subnet-private-1``)."""
    return logical_id_for_path(f"{construct_path(scope)}/{id}")


def logical_id_for_path(path: str) -> str:
    """``prod-network/vpc/subnet-private-1`` -> ``vpc_subnet-private-1`` (the stack name dropped)."""
    parts = [p for p in path.split("/")[1:] if p != "Default"]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(parts))


def policy_json(statements: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """An IAM policy document as JSON text; references inside resolve to ``${...}`` interpolations.

    Accepts a full document or a list of statements (Version is added).
    """
    document = statements if isinstance(statements, Mapping) else {
        "Version": "2012-10-17",
        "Statement": list(statements),
    }
    return json.dumps(_clean(document), indent=None, separators=(",", ":"))
