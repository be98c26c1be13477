"""Terraform resources, data sources and the AWS provider, spelled with Terraform's own names.

Resources and data sources are plain Python objects collected in their stack's document
(``fleetform.engine.document``). The prebuilt provider bindings are never imported (DESIGN
section 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fleetform.engine.document import Block, Dependable, Provider, Scope, clean

AWS_PROVIDER_SOURCE = "hashicorp/aws"
AWS_PROVIDER_CONSTRAINT = "~> 6.69"


class AwsProvider(Provider):
    """The hashicorp/aws provider block; attributes are passed as Terraform names.

    ``alias`` makes it an extra provider (``provider = aws.<alias>`` on the resources given it).
    """

    def __init__(self, scope: Scope, id: str, *, alias: str | None = None, **attributes: Any) -> None:
        super().__init__(scope, id, "aws", source=AWS_PROVIDER_SOURCE, version=AWS_PROVIDER_CONSTRAINT,
                         alias=alias, **attributes)


class Resource(Block):
    """Any AWS resource: ``Resource(self, "bucket", "aws_s3_bucket", bucket="x", tags={...})``.

    Attributes use Terraform's names; nested blocks are lists of dicts (or a dict for a single
    block). ``None`` values are dropped. Read attributes with ``.attr("arn")``, ``.arn`` and
    ``.id_ref``. ``skip_checks`` records checkov skips, each with its reason (decision 0002).
    """

    section = "resource"

    def __init__(
        self,
        scope: Scope,
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
        self.lifecycle: dict[str, Any] | None = self.document.resolve(clean(dict(lifecycle))) if lifecycle else None
        self.import_id: str | None = None
        self.check_skips: dict[str, str] = {}
        if skip_checks:
            add_check_skips(self, skip_checks)

    def import_from(self, import_id: str) -> None:
        """Adopt an existing object: an ``import`` block to this resource's address."""
        self.import_id = import_id

    def meta_arguments(self) -> dict[str, Any]:
        return {"lifecycle": self.lifecycle} if self.lifecycle else {}

    def import_block(self) -> dict[str, Any] | None:
        if self.import_id is None:
            return None
        entry = {"id": self.import_id, "to": self.address}
        if self.provider is not None:
            entry["provider"] = self.provider.address
        return entry


class DataSource(Block):
    """Any AWS data source: ``DataSource(self, "azs", "aws_availability_zones", state="available")``."""

    section = "data"


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


def policy_json(statements: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """An IAM policy document as JSON text; references inside resolve to ``${...}`` interpolations.

    Accepts a full document or a list of statements (Version is added).
    """
    document = statements if isinstance(statements, Mapping) else {
        "Version": "2012-10-17",
        "Statement": list(statements),
    }
    return json.dumps(clean(document), indent=None, separators=(",", ":"))
