"""Argo CD cluster registrations as Secrets Manager secrets in the ops account (decision 0005).

- ``RegistrationStore`` (the ops cluster's shared stack): the KMS key the secrets are encrypted with
  (alias ``naming.ARGOCD_REGISTRATION_KEY_ALIAS``) and ``naming.EXTERNAL_SECRETS_ROLE``, the Pod Identity
  role of External Secrets in the ops cluster, which may only read the registrations.
- ``ArgoCdRegistration`` (each service slot stack, through a provider for the ops account): one secret
  ``fleetform/argocd/clusters/<cluster>`` whose JSON is what Argo CD's cluster Secret holds.

Terraform writes only AWS objects: External Secrets turns each secret into the Kubernetes Secret that
Argo CD reads (the ExternalSecret manifests come from ``fleetform gitops``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.ops import pod_identity_trust
from fleetform.engine import AwsProvider, Construct, Resource, policy_json
from fleetform.naming import (
    ACCOUNT_APPLY_ROLE,
    ACCOUNT_PLAN_ROLE,
    ARGOCD_REGISTRATION_KEY_ALIAS,
    ARGOCD_REGISTRATION_PREFIX,
    EXTERNAL_SECRETS_ROLE,
    role_arn,
)

# External Secrets as its upstream chart names it
EXTERNAL_SECRETS_NAMESPACE = "external-secrets"
EXTERNAL_SECRETS_SERVICE_ACCOUNT = "external-secrets"
NO_ROTATION_REASON = ("the secret holds no credential: a cluster's endpoint, CA certificate and the role Argo CD "
                      "assumes (IAM authenticates); it is rewritten on every apply of its slot")
READ_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]


def registration_key_arn(region: str, ops_account_id: str) -> str:
    """The key by its alias ARN (Secrets Manager accepts one): no reference into the ops shared stack."""
    return f"arn:aws:kms:{region}:{ops_account_id}:alias/{ARGOCD_REGISTRATION_KEY_ALIAS}"


def registration_document(*, name: str, endpoint: str, ca_data: str, manager_role_arn: str,
                          labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, Any]:
    """The secret's JSON: Argo CD's cluster Secret keys (``name``, ``server``, ``config`` as JSON text)
    plus ``labels`` and ``annotations`` that the ExternalSecret template puts on the Secret."""
    config = {"awsAuthConfig": {"clusterName": name, "roleARN": manager_role_arn},
              "tlsClientConfig": {"caData": ca_data}}
    return {
        "name": name,
        "server": endpoint,
        "config": json.dumps(config, separators=(",", ":"), sort_keys=True),
        "labels": dict(labels),
        "annotations": dict(annotations),
    }


@dataclass(frozen=True)
class RegistrationStoreProps:
    account_id: str  # the ops account
    region: str


class RegistrationStore(Construct):
    """Attributes: ``key_arn``, ``external_secrets_role_arn``."""

    def __init__(self, scope: Construct, id: str, props: RegistrationStoreProps) -> None:
        super().__init__(scope, id)
        key = KmsKey(self, "key", KmsKeyProps(
            alias=ARGOCD_REGISTRATION_KEY_ALIAS, description="Argo CD cluster registrations (Secrets Manager)",
            account_id=props.account_id))
        self.key_arn = key.arn
        role = Resource(self, "external-secrets", "aws_iam_role", name=EXTERNAL_SECRETS_ROLE,
                        description="External Secrets in the ops cluster reads Argo CD cluster registrations",
                        assume_role_policy=pod_identity_trust(props.account_id))
        secrets = f"arn:aws:secretsmanager:{props.region}:{props.account_id}:secret:{ARGOCD_REGISTRATION_PREFIX}*"
        Resource(self, "external-secrets-policy", "aws_iam_role_policy", name="read-registrations",
                 role=role.id_ref, policy=policy_json([
                     {"Sid": "ReadRegistrations", "Effect": "Allow", "Action": READ_ACTIONS, "Resource": secrets},
                     {"Sid": "DecryptRegistrations", "Effect": "Allow", "Action": "kms:Decrypt",
                      "Resource": key.arn,
                      "Condition": {"StringEquals": {
                          "kms:ViaService": f"secretsmanager.{props.region}.amazonaws.com"}}},
                 ]))
        self.external_secrets_role_arn = role.arn


@dataclass(frozen=True)
class ArgoCdRegistrationProps:
    secret_name: str
    ops_account_id: str
    region: str  # the ops account's region
    document: Mapping[str, Any]  # registration_document(...), references allowed


class ArgoCdRegistration(Construct):
    """Attributes: ``secret`` (the aws_secretsmanager_secret)."""

    def __init__(self, scope: Construct, id: str, props: ArgoCdRegistrationProps, provider: AwsProvider) -> None:
        super().__init__(scope, id)
        writer = role_arn(props.ops_account_id, ACCOUNT_APPLY_ROLE)
        planner = role_arn(props.ops_account_id, ACCOUNT_PLAN_ROLE)
        reader = role_arn(props.ops_account_id, EXTERNAL_SECRETS_ROLE)
        # 7 days: a retired slot's name comes back at the next upgrade, months later
        self.secret = Resource(self, "secret", "aws_secretsmanager_secret", provider=provider,
                               name=props.secret_name, kms_key_id=registration_key_arn(props.region,
                                                                                       props.ops_account_id),
                               description="Argo CD cluster registration, written by the slot's stack",
                               recovery_window_in_days=7,
                               skip_checks={"CKV2_AWS_57": NO_ROTATION_REASON})
        Resource(self, "policy", "aws_secretsmanager_secret_policy", provider=provider,
                 secret_arn=self.secret.arn, block_public_policy=True, policy=policy_json([
                     {"Sid": "OnlyPipelineAndExternalSecrets", "Effect": "Deny", "Principal": "*",
                      "Action": "secretsmanager:*", "Resource": "*",
                      "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [writer, planner, reader]}}},
                     {"Sid": "OnlyThePipelineWrites", "Effect": "Deny", "Principal": "*",
                      "NotAction": [*READ_ACTIONS, "secretsmanager:GetResourcePolicy"], "Resource": "*",
                      "Condition": {"ArnNotEquals": {"aws:PrincipalArn": writer}}},
                 ]))
        # a new document (a version change relabels the slot) is a new secret version, which the provider
        # replaces: the new one becomes AWSCURRENT before the old resource goes, so readers never miss it
        Resource(self, "value", "aws_secretsmanager_secret_version", provider=provider,
                 secret_id=self.secret.id_ref,
                 secret_string=json.dumps(dict(props.document), separators=(",", ":"), sort_keys=True),
                 lifecycle={"create_before_destroy": True})
