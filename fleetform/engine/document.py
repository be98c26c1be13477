"""A stack's Terraform document, built in Python and handed to the cdktn core as one element.

Resources, data sources, constructs and outputs are plain Python objects. Each stack gives all
of them to the core as ONE element (``StackDocument``); the App, the stacks, their backends and
providers stay cdktn constructs, and the core still writes ``cdktf.out/`` and its manifest.
Why: a jsii round trip costs about 0.6 ms, and a resource made through the core used to cost
eight of them (docs/decisions/0004-one-element-per-stack.md).

References are strings with a placeholder for the resource (``${__ffr12__.arn}``), resolved
when the stack is synthesized: to ``${aws_x.name.arn}`` in the resource's own stack, and in any
other stack to remote state, exactly as the core does it: an output ``cross-stack-output-...``
in the owning stack, a ``terraform_remote_state`` ``cross-stack-reference-input-<stack>`` in the
consuming one, and a dependency between the two stacks in the manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from cdktn import TerraformElement, TerraformStack
from constructs import Construct as CoreConstruct

# a reference is "${__ffr<serial>__.<attribute path>}"; an expression may hold "__ffr<serial>__.<path>"
_PLACEHOLDER = re.compile(r"__ffr(\d+)__")
_WHOLE_REFERENCE = re.compile(r"\$\{__ffr(\d+)__((?:\.[A-Za-z0-9_\-\[\]\*\"]+)*)\}")
_serials = itertools.count(1)
_BY_SERIAL: weakref.WeakValueDictionary[int, Addressable] = weakref.WeakValueDictionary()

Resolver = Callable[[Any], Any]


class CrossStackExpressionError(ValueError):
    """A reference to another stack's resource inside a larger Terraform expression."""


def clean(value: Any) -> Any:
    """Drop None values so optional arguments can be passed unconditionally."""
    if isinstance(value, Mapping):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


class Construct:
    """A named scope of resources inside a stack, as in CDK: ``Vpc(stack, "vpc", props)``.

    Plain Python, like the resources: it is no element of the core, so making one costs no jsii
    round trip. Its path (``prod-network/vpc``) names what is defined below it.
    """

    def __init__(self, scope: Scope, id: str) -> None:
        _claim(scope, id)
        self.document = StackDocument.of(scope)
        self.stack: TerraformStack = self.document.stack
        self.path = f"{construct_path(scope)}/{id}"
        self.id = id
        self.__dict__["_fleet_path"] = self.path
        self.__dict__["_fleet_document"] = self.document


Scope = Construct | CoreConstruct


class Addressable:
    """Something other Terraform can refer to by an address (``aws_x.name``, ``var.x``, ``local.x``).

    References to it are strings with a placeholder (``${__ffr12__.arn}``) that the document of
    the stack they end up in resolves (see the module's docstring).
    """

    def __init__(self, document: StackDocument, address: str) -> None:
        self.document = document
        self.address = address
        document.members.append(self)  # references find it by serial (weakly): the document keeps it
        serial = next(_serials)
        self._placeholder = f"__ffr{serial}__"
        _BY_SERIAL[serial] = self

    @property
    def ref(self) -> str:
        """A reference to the whole thing (``${var.x}``); works from any stack."""
        return "${" + self._placeholder + "}"


class Variable(Addressable):
    """A Terraform input variable of a stack: ``Variable(stack, "role", type="string", default="x").ref``."""

    def __init__(self, stack: TerraformStack, name: str, **body: Any) -> None:
        document = StackDocument.of(stack)
        _claim(stack, name)
        super().__init__(document, f"var.{name}")
        document.add_section_entry("variable", name, clean(body))


class Local(Addressable):
    """A Terraform local value; its name is the construct path below the stack (``eks_issuer``)."""

    def __init__(self, scope: Scope, id: str, expression: Any) -> None:
        _claim(scope, id)
        name = readable_logical_id(scope, id)
        document = StackDocument.of(scope)
        super().__init__(document, f"local.{name}")
        document.add_section_entry("locals", name, expression)


class Provider:
    """A provider block; ``address`` (``aws`` or ``aws.<alias>``) is what resources name it by."""

    def __init__(self, scope: Scope, id: str, terraform_type: str, *, source: str, version: str,
                 alias: str | None = None, **attributes: Any) -> None:
        _claim(scope, id)
        self.terraform_type = terraform_type
        self.source = source
        self.version = version
        self.alias = alias
        self.attributes = clean(attributes)
        self.document = StackDocument.of(scope)
        self.document.add_provider(self)

    @property
    def address(self) -> str:
        return f"{self.terraform_type}.{self.alias}" if self.alias else self.terraform_type

    def to_terraform(self, resolve: Resolver) -> dict[str, Any]:
        return {**({"alias": self.alias} if self.alias else {}), **resolve(self.attributes)}


class Block(Addressable):
    """A resource or data source: an address in a stack, its arguments and meta-arguments."""

    section: ClassVar[str]  # "resource" or "data"

    def __init__(self, scope: Scope, id: str, terraform_type: str, *,
                 depends_on: Sequence[Dependable] | None = None, provider: Provider | None = None,
                 **attributes: Any) -> None:
        _claim(scope, id)
        self.terraform_type = terraform_type
        self.path = f"{construct_path(scope)}/{id}"
        self.logical_id = logical_id_for_path(self.path)
        prefix = "data." if self.section == "data" else ""
        super().__init__(StackDocument.of(scope), f"{prefix}{terraform_type}.{self.logical_id}")
        self.depends_on: list[Dependable] = list(depends_on or ())
        self.provider = provider
        self.attributes: dict[str, Any] = clean(attributes)
        self.overrides: dict[str, Any] = {}
        self.document.add(self)

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

    def to_terraform(self, resolve: Resolver) -> dict[str, Any]:
        body: dict[str, Any] = {"//": {"metadata": {"path": self.path, "uniqueId": self.logical_id}}}
        body.update(resolve(self.attributes))
        if self.depends_on:
            body["depends_on"] = [_dependency_address(d) for d in self.depends_on]
        if self.provider is not None:
            body["provider"] = self.provider.address
        body.update(self.meta_arguments(resolve))
        for path, value in self.overrides.items():
            _set_path(body, path.split("."), resolve(value))
        return body

    def meta_arguments(self, resolve: Resolver) -> dict[str, Any]:
        return {}

    def import_block(self) -> dict[str, Any] | None:
        return None


Dependable = Block | str


class StackDocument(TerraformElement):
    """The one core element that carries a stack's resources, data sources and outputs."""

    ID = "fleetform-document"

    def __init__(self, stack: TerraformStack) -> None:
        super().__init__(stack, self.ID)
        self.stack = stack
        self.name = construct_path(stack)
        self.blocks: list[Block] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self._addresses: dict[str, str] = {}
        self._outgoing: dict[str, str] = {}  # cross-stack output id -> expression it exports
        self._incoming: dict[str, dict[str, Any]] = {}  # remote state name -> its arguments
        self._depends_on: set[str] = set()
        self.providers: list[Provider] = []
        self.members: list[Addressable] = []
        self._preparing = False
        self._sections: dict[str, dict[str, Any]] = {}  # variable, locals: name -> body

    @classmethod
    def of(cls, scope: Scope) -> StackDocument:
        """The document of the stack ``scope`` is in (looked up once per core scope)."""
        found = scope.__dict__.get("_fleet_document")
        if found is None:
            stack = scope if isinstance(scope, TerraformStack) else TerraformStack.of(scope)
            found = stack.__dict__.get("_fleet_document")
            if found is None:
                found = cls(stack)
                stack.__dict__["_fleet_document"] = found
            scope.__dict__["_fleet_document"] = found
        return found

    def add(self, block: Block) -> None:
        key = f"{block.section}.{block.terraform_type}.{block.logical_id}"
        if key in self._addresses:
            raise ValueError(f"{block.address} is defined twice in stack {self.name!r} "
                             f"({self._addresses[key]} and {block.path})")
        self._addresses[key] = block.path
        self.blocks.append(block)

    def add_output(self, name: str, value: Any, *, description: str | None = None,
                   sensitive: bool | None = None) -> None:
        if name in self.outputs:
            raise ValueError(f"output {name!r} is defined twice in stack {self.name!r}")
        self.outputs[name] = clean({"value": value, "description": description, "sensitive": sensitive})

    def add_provider(self, provider: Provider) -> None:
        if any(p.address == provider.address for p in self.providers):
            raise ValueError(f"provider {provider.address} is defined twice in stack {self.name!r}")
        self.providers.append(provider)

    def add_section_entry(self, section: str, name: str, body: Any) -> None:
        entries = self._sections.setdefault(section, {})
        if name in entries:
            raise ValueError(f"{section} {name!r} is defined twice in stack {self.name!r}")
        entries[name] = body

    def under(self, scope: Scope) -> Iterator[Block]:
        """The blocks defined below ``scope``."""
        prefix = construct_path(scope) + "/"
        return (b for b in self.blocks if b.path.startswith(prefix))

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """The core's preparing pass (``TerraformStack.prepare_stack``) resolves every element to
        discover the core tokens in it, and throws the result away. This document holds none (its
        references, variables and locals are its own), so during that pass it only does its own
        wiring (cross-stack outputs and remote state) and hands the core nothing: that saves
        sending every stack's document through jsii twice (a third of the synth time)."""
        self._preparing = True
        try:
            yield
        finally:
            self._preparing = False

    def to_terraform(self) -> Any:  # called by the core for each synthesis pass
        document = self._document()
        return {} if self._preparing else document

    def _document(self) -> dict[str, Any]:
        document: dict[str, Any] = {section: self.resolve(entries) for section, entries in self._sections.items()}
        if self.providers:
            document["terraform"] = {"required_providers": {
                p.terraform_type: {"source": p.source, "version": p.version} for p in self.providers}}
            document["provider"] = {}
            for provider in self.providers:
                document["provider"].setdefault(provider.terraform_type, []).append(provider.to_terraform(self.resolve))
        imports = []
        for block in self.blocks:
            document.setdefault(block.section, {}).setdefault(block.terraform_type, {})[block.logical_id] = \
                block.to_terraform(self.resolve)
            entry = block.import_block()
            if entry is not None:
                imports.append(entry)
        if imports:
            document["import"] = imports
        outputs = {name: self.resolve(body) for name, body in self.outputs.items()}
        for output_id, expression in self._outgoing.items():
            outputs[output_id] = {"sensitive": True, "value": "${" + expression + "}"}
        if outputs:
            document["output"] = {logical_id_for_path(f"{self.name}/{k}"): v for k, v in outputs.items()}
            # the core lists its outputs in the stack's comment: construct id -> Terraform name
            document["//"] = {"outputs": {self.name: {k: logical_id_for_path(f"{self.name}/{k}") for k in outputs}}}
        if self._incoming:  # after the blocks: resolving them is what registers remote state
            document.setdefault("data", {})["terraform_remote_state"] = dict(self._incoming)
        return document

    def resolve(self, value: Any) -> Any:
        """``value`` with every fleetform reference made valid in this stack."""
        if isinstance(value, str):
            return self._resolve_string(value) if "__ffr" in value else value
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.resolve(v) for v in value]
        if isinstance(value, Addressable):
            raise TypeError(f"{value.address}: pass a reference (.attr(...), .ref), not the object itself")
        return value

    def _resolve_string(self, text: str) -> str:
        def whole(match: re.Match[str]) -> str:
            target = _addressable(int(match.group(1)))
            expression = target.address + match.group(2)
            if target.document is self:
                return "${" + expression + "}"
            return "${" + self._import_from(target.document, expression) + "}"

        def bare(match: re.Match[str]) -> str:
            target = _addressable(int(match.group(1)))
            if target.document is not self:
                raise CrossStackExpressionError(
                    f"{target.address} of stack {target.document.name!r}, used in stack {self.name!r}: a "
                    f"reference to another stack must be a whole ${{...}} of its own (.attr(), not .expr()), "
                    f"so it can travel through remote state; in: {text}")
            return target.address

        return _PLACEHOLDER.sub(bare, _WHOLE_REFERENCE.sub(whole, text))

    def _import_from(self, owner: StackDocument, expression: str) -> str:
        """``expression`` of ``owner``'s stack, read here through remote state."""
        output_id = owner.export(expression)
        remote = f"cross-stack-reference-input-{owner.name}"
        if remote not in self._incoming:
            self._incoming[remote] = {**owner.remote_state(), "workspace": "${terraform.workspace}"}
        if owner.name not in self._depends_on:
            self._depends_on.add(owner.name)
            self.stack.add_dependency(owner.stack)
        return f"data.terraform_remote_state.{remote}.outputs.{logical_id_for_path(f'{owner.name}/{output_id}')}"

    def export(self, expression: str) -> str:
        """The id of the sensitive output that gives other stacks ``expression``."""
        output_id = f"cross-stack-output-{expression}"
        self._outgoing[output_id] = expression
        return output_id

    def remote_state(self) -> dict[str, Any]:
        """How other stacks read this one's outputs: ``backend`` and ``config`` of terraform_remote_state."""
        reader = getattr(self.stack, "remote_state", None)
        if reader is None:
            raise CrossStackExpressionError(
                f"stack {self.name!r} is referred to from another stack but does not say where its state "
                f"is: give it a remote_state() method (fleetform.stacks.base.FleetStack has one)")
        return reader()


def resolve(scope: Scope, value: Any) -> Any:
    """``value`` with fleetform references resolved for ``scope``'s stack: for arguments of the
    core's own constructs (a ``TerraformLocal``), which do not know them."""
    return StackDocument.of(scope).resolve(value)


def output(scope: Scope, id: str, value: Any, *, description: str | None = None,
           sensitive: bool | None = None) -> None:
    """A stack output (``id`` below a construct is prefixed with its path, as for resources)."""
    name = id if isinstance(scope, TerraformStack) else readable_logical_id(scope, id)
    StackDocument.of(scope).add_output(name, value, description=description, sensitive=sensitive)


def _claim(scope: Scope, id: str) -> None:
    """Names are unique within a scope, as the constructs library requires of its own."""
    if not id or "/" in id:
        raise ValueError(f"invalid construct id {id!r} in {construct_path(scope)!r}")
    children = scope.__dict__.setdefault("_fleet_children", set())
    if id in children:
        raise ValueError(f"there is already a construct named {id!r} in {construct_path(scope)!r}")
    children.add(id)


def _addressable(serial: int) -> Addressable:
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


def construct_path(scope: Scope) -> str:
    """The scope's path (``prod-network/vpc``); for a core construct, ``node.path``, cached
    on the scope, because asking node costs jsii round trips."""
    path = scope.__dict__.get("_fleet_path")
    if path is None:
        path = scope.node.path
        scope.__dict__["_fleet_path"] = path
    return path


def readable_logical_id(scope: Scope, id: str) -> str:
    """The element's construct path below its stack, joined by '_' (``vpc_subnet-private-1``)."""
    return logical_id_for_path(f"{construct_path(scope)}/{id}")


def logical_id_for_path(path: str) -> str:
    """``prod-network/vpc/subnet-private-1`` -> ``vpc_subnet-private-1`` (the stack name dropped)."""
    parts = [p for p in path.split("/")[1:] if p != "Default"]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(parts))
