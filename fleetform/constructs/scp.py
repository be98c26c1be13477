"""A service control policy: one aws_organizations_policy and its attachments, keyed by target name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetform.constructs.scp_library import MAX_SCP_CHARS, document_text
from fleetform.engine import Construct, Resource


@dataclass(frozen=True)
class ScpProps:
    name: str
    description: str
    document: Mapping[str, Any]
    # stable key (e.g. the OU path or "Root") -> target id (root, OU or account id; may be a reference)
    targets: Mapping[str, str] = field(default_factory=dict)


class ServiceControlPolicy(Construct):
    """Attributes: ``policy`` (the resource), ``attachments`` (target key -> resource), ``content``."""

    def __init__(self, scope: Construct, id: str, props: ScpProps) -> None:
        super().__init__(scope, id)
        self.content = document_text(props.document)
        if len(self.content) > MAX_SCP_CHARS:
            raise ValueError(f"SCP {props.name}: {len(self.content)} characters, AWS allows {MAX_SCP_CHARS}")
        self.policy = Resource(self, "policy", "aws_organizations_policy", name=props.name,
                               description=props.description[:512], type="SERVICE_CONTROL_POLICY",
                               content=self.content)
        self.attachments: dict[str, Resource] = {}
        for key, target_id in sorted(props.targets.items()):
            self.attachments[key] = Resource(self, f"attach-{target_key(key)}", "aws_organizations_policy_attachment",
                                             policy_id=self.policy.id_ref, target_id=target_id)


def target_key(path: str) -> str:
    """A construct id for an OU path: ``Workloads/Prod`` -> ``Workloads--Prod``; spaces become ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", path.replace("/", "--"))
