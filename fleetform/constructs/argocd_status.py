"""The role `cluster-upgrade verify` assumes to read Argo CD's metrics in the ops AMP workspace.

Operators run the runbook with credentials of the service cluster's account (the caller guard insists
on it); the workspace is in the ops account. So the ops cluster's shared stack holds
``naming.ARGOCD_STATUS_ROLE``: trusted by each cluster account's ``naming.UPGRADE_OPERATOR_ROLE`` (an
``aws:PrincipalArn`` condition, as the other cross-account roles), allowed to find the workspace and to
query it, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.constructs.ops import ACCOUNT_PRINCIPAL_REASON, cross_account_trust
from fleetform.engine import Construct, Resource, policy_json
from fleetform.naming import ARGOCD_STATUS_ROLE, UPGRADE_OPERATOR_ROLE, role_arn


@dataclass(frozen=True)
class ArgoCdStatusProps:
    workspace_arn: str
    operator_account_ids: Sequence[str]  # accounts with clusters


class ArgoCdStatusRole(Construct):
    """Attributes: ``arn``."""

    def __init__(self, scope: Construct, id: str, props: ArgoCdStatusProps) -> None:
        super().__init__(scope, id)
        trust = {a: [role_arn(a, UPGRADE_OPERATOR_ROLE)] for a in sorted(set(props.operator_account_ids))}
        role = Resource(self, "role", "aws_iam_role", name=ARGOCD_STATUS_ROLE,
                        description="cluster-upgrade verify reads Argo CD's application metrics (ops AMP workspace)",
                        assume_role_policy=cross_account_trust(trust), max_session_duration=3600,
                        skip_checks={"CKV_AWS_61": ACCOUNT_PRINCIPAL_REASON})
        Resource(self, "policy", "aws_iam_role_policy", name="query-argocd-metrics", role=role.id_ref,
                 policy=policy_json([
                     # ListWorkspaces has no resource-level permissions
                     {"Sid": "FindWorkspace", "Effect": "Allow", "Action": "aps:ListWorkspaces", "Resource": "*"},
                     {"Sid": "QueryMetrics", "Effect": "Allow", "Action": "aps:QueryMetrics",
                      "Resource": props.workspace_arn},
                 ]))
        self.arn = role.arn
