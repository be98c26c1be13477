"""A stack's Terraform document, built in Python and written next to what the cdktn core writes.

Resources, data sources, providers, variables, locals, outputs and constructs are plain Python
objects collected per stack in a ``StackDocument``. The App, the stacks and their backends stay
cdktn constructs, and the core still synthesizes each stack (validations, annotations, backend,
``cdktf.out/`` and the manifest with stack dependencies); the stack's synthesizer then merges the
document into the same ``cdk.tf.json`` (``fleetform.engine.synthesizer``). Why: a jsii round trip
costs about 0.6 ms, and a resource made through the core cost eight of them; passing the
documents through jsii instead cost a third of the synth (docs/decisions/0004-one-element-per-stack.md).

References are strings with a placeholder for their target (``${__ffr12__.arn}``), resolved when
the object that holds them is made (its stack is known then): to ``${aws_x.name.arn}`` in the
target's own stack; in any other stack to remote state, exactly as the core does it: a sensitive
output ``cross-stack-output-<expression>`` in the owning stack, a ``terraform_remote_state``
``cross-stack-reference-input-<stack>`` in the consuming one, and a dependency between the two
stacks in the manifest.
"""

from __future__ import annotations

import itertools
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from cdktn import TerraformStack
from constructs import Construct as CoreConstruct

# a reference is "${__ffr<serial>__.<attribute path>}"; an expression may hold "__ffr<serial>__.<path>"
_PLACEHOLDER = re.compile(r"__ffr(\d+)__")
_WHOLE_REFERENCE = re.compile(r"\$\{__ffr(\d+)__((?:\.[A-Za-z0-9_\-\[\]\*\"]+)*)\}")
PLACEHOLDER_MARK = "__ffr"
_serials = itertools.count(1)
_BY_SERIAL: weakref.WeakValueDictionary[int, Addressable] = weakref.WeakValueDictionary()


# S3 native state locking (use_lockfile, every stack but bootstrap) came with Terraform/OpenTofu 1.10: an
# older binary should stop at "requires Terraform >= 1.10", not at an unknown backend argument mid-init
REQUIRED_TERRAFORM = ">= 1.10"

class CrossStackExpressionError(ValueError):
    """A reference to another stack that cannot travel through remote state."""


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
        self.path = f"{construct_path(scope)}/{id}"
        self.id = id


Scope = Construct | CoreConstruct


class Addressable:
    """Something other Terraform can refer to by an address (``aws_x.name``, ``var.x``, ``local.x``)."""

    def __init__(self, document: StackDocument, address: str) -> None:
        self.document = document
        self.address = address
        document.members.append(self)  # references find it by serial (weakly): the document keeps it
        self._serial_placeholder: str | None = None

    @property
    def _placeholder(self) -> str:
        """The token a reference to this carries until it is resolved; made when first referred to
        (most resources never are: no serial, no registry entry for them)."""
        if self._serial_placeholder is None:
            serial = next(_serials)
            self._serial_placeholder = f"{PLACEHOLDER_MARK}{serial}__"
            _BY_SERIAL[serial] = self
        return self._serial_placeholder

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
        document.add_section_entry("variable", name, document.resolve(clean(body)))


class Local(Addressable):
    """A Terraform local value; its name is the construct path below the stack (``eks_issuer``)."""

    def __init__(self, scope: Scope, id: str, expression: Any) -> None:
        _claim(scope, id)
        name = readable_logical_id(scope, id)
        document = StackDocument.of(scope)
        super().__init__(document, f"local.{name}")
        document.add_section_entry("locals", name, document.resolve(expression))


class Provider:
    """A provider block; ``address`` (``aws`` or ``aws.<alias>``) is what resources name it by."""

    def __init__(self, scope: Scope, id: str, terraform_type: str, *, source: str, version: str,
                 alias: str | None = None, **attributes: Any) -> None:
        _claim(scope, id)
        self.terraform_type = terraform_type
        self.source = source
        self.version = version
        self.alias = alias
        self.document = StackDocument.of(scope)
        self.attributes = self.document.resolve(clean(attributes))
        self.document.add_provider(self)

    @property
    def address(self) -> str:
        return f"{self.terraform_type}.{self.alias}" if self.alias else self.terraform_type

    def to_terraform(self) -> dict[str, Any]:
        return {**({"alias": self.alias} if self.alias else {}), **self.attributes}


class Block(Addressable):
    """A resource or data source: an address in a stack, its arguments and meta-arguments.

    Arguments are resolved when given (the constructor, ``add_override``); change them through
    those, not by editing ``attributes`` afterwards.
    """

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
        self.depends_on = [self._dependency_address(d) for d in depends_on or ()]
        self.provider = provider
        self.attributes: dict[str, Any] = self.document.resolve(clean(attributes))
        self.overrides: dict[str, Any] = {}
        self.document.add(self)

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
        self.overrides[path] = self.document.resolve(value)

    def to_terraform(self) -> dict[str, Any]:
        body: dict[str, Any] = {"//": {"metadata": {"path": self.path, "uniqueId": self.logical_id}}}
        body.update(self.attributes)
        if self.depends_on:
            body["depends_on"] = list(self.depends_on)
        if self.provider is not None:
            body["provider"] = self.provider.address
        body.update(self.meta_arguments())
        for path, value in self.overrides.items():
            _set_path(body, path.split("."), value)
        return body

    def meta_arguments(self) -> dict[str, Any]:
        return {}

    def import_block(self) -> dict[str, Any] | None:
        return None

    def _dependency_address(self, dependency: Dependable) -> str:
        if isinstance(dependency, str):
            return dependency
        if not isinstance(dependency, Block):
            raise TypeError(f"{self.path}: depends_on takes fleetform resources or addresses, "
                            f"not {type(dependency).__name__}")
        if dependency.document is not self.document:
            raise CrossStackExpressionError(
                f"{self.path}: depends_on {dependency.address} of stack {dependency.document.name!r}: "
                f"Terraform orders only within a stack; a reference to it orders the stacks")
        return dependency.address


Dependable = Block | str


class StackDocument:
    """What fleetform writes for one stack: resources, data sources, providers, variables, locals,
    outputs, imports, and the remote state and outputs that carry references between stacks."""

    def __init__(self, stack: TerraformStack) -> None:
        from fleetform.engine.synthesizer import DocumentSynthesizer  # it needs this module

        self.stack = stack
        self.name = construct_path(stack)
        self.blocks: list[Block] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.providers: list[Provider] = []
        self.members: list[Addressable] = []
        self._sections: dict[str, dict[str, Any]] = {}  # variable, locals: name -> body
        self._addresses: dict[str, str] = {}
        self._outgoing: dict[str, str] = {}  # cross-stack output id -> expression it exports
        self._incoming: dict[str, dict[str, Any]] = {}  # remote state name -> its arguments
        self._depends_on: set[str] = set()
        self._forgotten: list[str] = []  # addresses Terraform drops from state without destroying
        stack.synthesizer = DocumentSynthesizer(stack.synthesizer, self)

    @classmethod
    def of(cls, scope: Scope) -> StackDocument:
        """The document of the stack ``scope`` is in (looked up once per core scope)."""
        if isinstance(scope, Construct):
            return scope.document
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
        self.outputs[name] = self.resolve(clean({"value": value, "description": description, "sensitive": sensitive}))

    def add_provider(self, provider: Provider) -> None:
        if any(p.address == provider.address for p in self.providers):
            raise ValueError(f"provider {provider.address} is defined twice in stack {self.name!r}")
        self.providers.append(provider)

    def add_section_entry(self, section: str, name: str, body: Any) -> None:
        entries = self._sections.setdefault(section, {})
        if name in entries:
            raise ValueError(f"{section} {name!r} is defined twice in stack {self.name!r}")
        entries[name] = body

    def forget(self, address: str) -> None:
        """A ``removed`` block with ``destroy = false``: a resource that this stack no longer manages
        leaves the state without being destroyed (a no-op where the address is not in the state)."""
        if address not in self._forgotten:
            self._forgotten.append(address)

    def under(self, scope: Scope) -> Iterator[Block]:
        """The blocks defined below ``scope``."""
        prefix = construct_path(scope) + "/"
        return (b for b in self.blocks if b.path.startswith(prefix))

    def to_terraform(self) -> dict[str, Any]:
        """The document as Terraform JSON (merged by the synthesizer with what the core writes)."""
        document: dict[str, Any] = {section: dict(entries) for section, entries in self._sections.items()}
        document["terraform"] = {"required_version": REQUIRED_TERRAFORM}
        if self.providers:
            document["terraform"]["required_providers"] = {
                p.terraform_type: {"source": p.source, "version": p.version} for p in self.providers}
            document["provider"] = {}
            for provider in self.providers:
                document["provider"].setdefault(provider.terraform_type, []).append(provider.to_terraform())
        imports = []
        for block in self.blocks:
            document.setdefault(block.section, {}).setdefault(block.terraform_type, {})[block.logical_id] = \
                block.to_terraform()
            entry = block.import_block()
            if entry is not None:
                imports.append(entry)
        if imports:
            document["import"] = imports
        if self._forgotten:
            document["removed"] = [{"from": a, "lifecycle": {"destroy": False}} for a in self._forgotten]
        outputs = dict(self.outputs)
        for output_id, expression in self._outgoing.items():
            outputs[output_id] = {"sensitive": True, "value": "${" + expression + "}"}
        if outputs:
            document["output"] = {logical_id_for_path(f"{self.name}/{k}"): v for k, v in outputs.items()}
            # the core lists outputs in the stack's comment: construct id -> Terraform name
            document["//"] = {"outputs": {self.name: {k: logical_id_for_path(f"{self.name}/{k}") for k in outputs}}}
        if self._incoming:
            document.setdefault("data", {})["terraform_remote_state"] = dict(self._incoming)
        return document

    def resolve(self, value: Any) -> Any:
        """``value`` with every fleetform reference made valid in this stack."""
        if isinstance(value, str):
            return self._resolve_string(value) if PLACEHOLDER_MARK in value else value
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
    target = _BY_SERIAL.get(serial)
    if target is None:
        raise ValueError(f"reference {PLACEHOLDER_MARK}{serial}__ points to an object of an app that no longer exists")
    return target


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
    if isinstance(scope, Construct):
        return scope.path
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
