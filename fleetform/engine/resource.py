"""Generic Terraform resources, data sources and the AWS provider on the cdktn core."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cdktn import (
    ITerraformDependable,
    TerraformDataSource,
    TerraformProvider,
    TerraformResource,
    TerraformResourceLifecycle,
)
from constructs import Construct

AWS_PROVIDER_SOURCE = "hashicorp/aws"
AWS_PROVIDER_CONSTRAINT = "~> 6.69"
_AWS_META = {"provider_name": "aws", "provider_version_constraint": AWS_PROVIDER_CONSTRAINT}


def _clean(value: Any) -> Any:
    """Drop None values so optional arguments can be passed unconditionally."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


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

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self._attributes


class Resource(TerraformResource):
    """Any AWS resource: ``Resource(self, "bucket", "aws_s3_bucket", bucket="x", tags={...})``.

    Attributes use Terraform's names; nested blocks are lists of dicts (or a dict for a single
    block). ``None`` values are dropped. Read attributes with ``.attr("arn")``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        terraform_type: str,
        *,
        depends_on: Sequence[ITerraformDependable] | None = None,
        lifecycle: TerraformResourceLifecycle | Mapping[str, Any] | None = None,
        provider: TerraformProvider | None = None,
        skip_checks: Mapping[str, str] | None = None,
        **attributes: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            terraform_resource_type=terraform_type,
            terraform_generator_metadata=_AWS_META,
            depends_on=list(depends_on) if depends_on else None,
            lifecycle=_lifecycle(lifecycle),
            provider=provider,
        )
        self.terraform_type = terraform_type
        self._fleet_logical_id = readable_logical_id(scope, id)
        self._attributes = _clean(attributes)
        if skip_checks:
            add_check_skips(self, skip_checks)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self._attributes

    def attr(self, name: str) -> str:
        """A string reference to an attribute (``${aws_x.y.name}``), cross-stack aware."""
        return self.get_string_attribute(name)

    @property
    def id_ref(self) -> str:
        return self.get_string_attribute("id")

    @property
    def arn(self) -> str:
        return self.get_string_attribute("arn")


class DataSource(TerraformDataSource):
    """Any AWS data source: ``DataSource(self, "azs", "aws_availability_zones", state="available")``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        terraform_type: str,
        *,
        depends_on: Sequence[ITerraformDependable] | None = None,
        provider: TerraformProvider | None = None,
        **attributes: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            terraform_resource_type=terraform_type,
            terraform_generator_metadata=_AWS_META,
            depends_on=list(depends_on) if depends_on else None,
            provider=provider,
        )
        self.terraform_type = terraform_type
        self._fleet_logical_id = readable_logical_id(scope, id)
        self._attributes = _clean(attributes)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self._attributes

    def attr(self, name: str) -> str:
        return self.get_string_attribute(name)


def add_check_skips(resource: TerraformResource, skips: Mapping[str, str]) -> None:
    """Record inline checkov skips, each with its reason, in the resource's ``//`` comment.

    checkov's terraform_json runner ignores skip comments, so fleetform's scan
    (fleetform.checks.checkov_scan) honours these entries instead; see
    docs/decisions/0002-checkov-inline-skips.md.
    """
    for check_id, reason in skips.items():
        if not reason or not reason.strip():
            raise ValueError(f"checkov skip {check_id} needs a reason")
    # the override replaces the whole list: merge with earlier calls so none is silently lost
    merged = {**getattr(resource, "_fleetform_check_skips", {}), **skips}
    resource._fleetform_check_skips = merged
    resource.add_override("//.checkov_skip", [f"checkov:skip={k}:{v}" for k, v in sorted(merged.items())])


def readable_logical_id(scope: Construct, id: str) -> str:
    """The element's construct path below its stack, joined by '_' (``vpc_subnet-private-1``).

    Computed in Python with the scope's path cached on the scope object: asking node for each
    element's path would cost two more jsii round trips per element (see bench/synth.py).
    """
    path = scope.__dict__.get("_fleet_path")
    if path is None:
        path = scope.node.path
        scope.__dict__["_fleet_path"] = path
    return logical_id_for_path(f"{path}/{id}")


def logical_id_for_path(path: str) -> str:
    """``prod-network/vpc/subnet-private-1`` -> ``vpc_subnet-private-1`` (the stack name dropped)."""
    parts = [p for p in path.split("/")[1:] if p != "Default"]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "_".join(parts))


def _lifecycle(value: TerraformResourceLifecycle | Mapping[str, Any] | None) -> Any:
    if value is None or isinstance(value, TerraformResourceLifecycle):
        return value
    return TerraformResourceLifecycle(**value)


def policy_json(statements: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """An IAM policy document as JSON text; references inside resolve to ``${...}`` interpolations.

    Accepts a full document or a list of statements (Version is added).
    """
    document = statements if isinstance(statements, Mapping) else {
        "Version": "2012-10-17",
        "Statement": list(statements),
    }
    return json.dumps(_clean(document), indent=None, separators=(",", ":"))
