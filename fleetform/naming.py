"""Names that several stacks and commands must agree on without a cross-stack reference.

Role names and stack names are deterministic so that a stack can trust or grant access to a
role in another stack (or account) without creating a dependency cycle, and so the runbook and
the pipeline can find what Terraform made. Changing one of these renames live resources.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetform.errors import FleetformError

# roles in every account (baseline stack), assumed by the pipeline's CodeBuild roles
ACCOUNT_PLAN_ROLE = "fleetform-plan"
ACCOUNT_APPLY_ROLE = "fleetform-apply"
# every managed node group carries its configuration key as this Kubernetes label (and as the
# NODE_GROUP_TAG tag); its EKS name is "<key>-<unique suffix>" (name prefix, create before destroy)
NODE_GROUP_LABEL = "fleetform.io/node-group"
NODE_GROUP_TAG = "fleetform:node-group"


# EKS managed add-ons of every slot: those the nodes need to join and get credentials come before any
# node group, those that run as Deployments on the nodes after them
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
ADDONS_AFTER_NODES = ("coredns", "aws-ebs-csi-driver")


def karpenter_node_role(cluster_name: str) -> str:
    """The role of the nodes Karpenter launches (EC2NodeClass ``spec.role``); its EC2_LINUX access entry is
    fleetform's. Managed node groups use ``<cluster>-node``, whose entry EKS creates with the first group."""
    return f"{cluster_name}-karpenter-node"


def node_group_key(group: dict) -> str:
    """The configuration key of a DescribeNodegroup answer: its label, its tag, else its EKS name
    (groups created before the name prefix carried the key as their name)."""
    return ((group.get("labels") or {}).get(NODE_GROUP_LABEL) or (group.get("tags") or {}).get(NODE_GROUP_TAG)
            or group["nodegroupName"])


# roles of the pipeline's CodeBuild projects, in the pipeline account (pipeline stack)
PIPELINE_PLAN_ROLE = "fleetform-pipeline-plan"
PIPELINE_APPLY_ROLE = "fleetform-pipeline-apply"
# the trusted builds: the pull request comment (default branch code) and scheduled drift detection;
# the batch role only starts the plan project's shard builds (docs/pipeline.md, threat model)
PIPELINE_COMMENT_ROLE = "fleetform-pipeline-comment"
PIPELINE_DRIFT_ROLE = "fleetform-pipeline-drift"
PIPELINE_PLAN_BATCH_ROLE = "fleetform-pipeline-plan-batch"
# key prefix in the pipeline's artifacts bucket where each plan shard of a pull request writes its
# summary (``<prefix>pr-<N>/<commit>/shard-<i>-of-<n>.json``); the plan role may write only there
# (besides its builds' own artifacts), the comment build reads them back
PLAN_SUMMARY_PREFIX = "plan-summaries/"
# where the comment build records the plan it posted and verified (``<prefix>pr-<N>.json``): what the
# reviewers saw, which the apply build compares its own plan with; only the comment role writes there
REVIEWED_PLAN_PREFIX = "reviewed/"
# the role AWS Organizations creates in every member account, trusted by the management account:
# the first apply of a baseline stack goes through it (the fleetform roles do not exist yet)
ORGANIZATION_ACCESS_ROLE = "OrganizationAccountAccessRole"
# set (to 1) while synthesizing for the first apply (fleetform bootstrap): the organization and
# baseline stacks then reach accounts through ORGANIZATION_ACCESS_ROLE / the caller's credentials
FIRST_APPLY_ENV = "FLEETFORM_FIRST_APPLY"
# the bastion instance role in each account with a bastion (bastion stack)
BASTION_ROLE = "fleetform-bastion"
# Argo CD in the Ops cluster runs as ARGOCD_ROLE (ops account); every service cluster slot's
# account has ARGOCD_MANAGER_ROLE, trusted by ARGOCD_ROLE and granted an EKS access entry
ARGOCD_ROLE = "fleetform-argocd"
ARGOCD_MANAGER_ROLE = "fleetform-argocd-manager"
# Session Manager document that every bastion session must use (bastion stack)
SESSION_DOCUMENT = "fleetform-bastion-session"
BASTION_NAME_TAG = "fleetform-bastion"
# customer-managed policy in each bastion account: attach it to the SRE roles / permission sets
BASTION_OPERATOR_POLICY = "fleetform-bastion-operator"

WEIGHTED_RECORD_TTL = 60
# role in the ops account that Prometheus in every cluster assumes to remote-write to the ops AMP
# workspace; trusted by each cluster account's ``<account>-*-prometheus`` roles
AMP_WRITER_ROLE = "fleetform-amp-remote-write"
# suffix of the per-slot Prometheus workload role (``prod-main-blue-prometheus``)
PROMETHEUS_ROLE_SUFFIX = "prometheus"
# the role an operator assumes to run cluster-upgrade (policy: `cluster-upgrade permissions`)
UPGRADE_OPERATOR_ROLE = "fleetform-upgrade-operator"


def role_arn(account_id: str, role: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{role}"


def baseline_stack(account: str) -> str:
    return f"{account}-baseline"


def network_stack(account: str) -> str:
    return f"{account}-network"


def slot_stack(account: str, cluster: str, slot: str) -> str:
    """Also the EKS cluster name: ``prod-main-blue``."""
    return f"{account}-{cluster}-{slot}"


def cluster_name(account: str, cluster: str, slot: str) -> str:
    return slot_stack(account, cluster, slot)


def cluster_shared_stack(account: str, cluster: str) -> str:
    """What outlives a cluster's slots (Loki bucket; for the ops cluster the AMP workspace and the
    Argo CD role): ``prod-main-shared``. Slot names are only blue/green, so it never collides."""
    return f"{account}-{cluster}-shared"


def loki_bucket(organization: str, account_id: str, cluster: str) -> str:
    """Loki's chunk bucket of a cluster (its shared stack), named in the slots' Helm values."""
    return f"{organization}-{account_id}-{cluster}-loki"


def bastion_stack(account: str) -> str:
    return f"{account}-bastion"


def dns_stack(account: str) -> str:
    return f"{account}-dns"


ORGANIZATION_STACK = "organization"
BOOTSTRAP_STACK = "bootstrap"
PIPELINE_STACK = "pipeline"


def slot_hostname(hostname: str, slot: str) -> str:
    """The slot-only name (``green.api.example.com``): target of the weighted record for that
    slot, managed by external-dns in the slot's cluster; also used for smoke checks."""
    return f"{slot}.{hostname}"

# Route 53 delivers query logs only to CloudWatch Logs in us-east-1, whatever the zone's account region
ROUTE53_QUERY_LOG_REGION = "us-east-1"

# AWS Config (docs/organization.md#aws-config): every account's baseline records into one bucket in
# the log-archive account (organization stack), so both sides derive the bucket and key from here.
# "default" is the name the console and the provider use: an adopted account whose recorder and
# delivery channel were made in the console is taken over in place (one of each per region).
CONFIG_RECORDER = "default"
CONFIG_DELIVERY_CHANNEL = "default"
CONFIG_SERVICE = "config.amazonaws.com"
# the aggregator's role in the log-archive account (organization stack)
CONFIG_AGGREGATOR_ROLE = "fleetform-config-aggregator"


def config_bucket(organization: str, log_archive_account_id: str) -> str:
    """The central AWS Config bucket in the log-archive account (like the trail bucket's name)."""
    return f"{organization}-config-{log_archive_account_id}"


def config_key_alias(organization: str) -> str:
    """The alias (without ``alias/``) of the Config bucket's KMS key, in the home region."""
    return f"{organization}-config"


def config_key_alias_arn(organization: str, home_region: str, log_archive_account_id: str) -> str:
    """Delivery channels name the key by alias ARN (Config accepts one): no cross-stack reference."""
    return f"arn:aws:kms:{home_region}:{log_archive_account_id}:alias/{config_key_alias(organization)}"


AUTOSCALING_SERVICE = "autoscaling.amazonaws.com"


def autoscaling_service_linked_role_arn(account_id: str) -> str:
    """AWSServiceRoleForAutoScaling: the role that launches managed node groups' instances, and so
    uses the volume key (created by the baseline of each account with clusters, or already there)."""
    return f"arn:aws:iam::{account_id}:role/aws-service-role/{AUTOSCALING_SERVICE}/AWSServiceRoleForAutoScaling"


def config_service_linked_role_arn(account_id: str) -> str:
    """AWSServiceRoleForConfig: the role every configuration recorder uses, whoever created it."""
    return f"arn:aws:iam::{account_id}:role/aws-service-role/{CONFIG_SERVICE}/AWSServiceRoleForConfig"

# Ops hub (docs/decisions/0005-ops-hub.md): the Transit Gateway's owner-side stack in the ops account,
# the registration secrets every service slot writes there, their key and External Secrets' role
TRANSIT_STACK_SUFFIX = "transit"
ARGOCD_REGISTRATION_PREFIX = "fleetform/argocd/clusters/"
ARGOCD_REGISTRATION_KEY_ALIAS = "fleetform-argocd-clusters"
EXTERNAL_SECRETS_ROLE = "fleetform-external-secrets"


def transit_stack(account: str) -> str:
    """An account's part of the ops hub's Transit Gateway: in the ops account the association and
    propagation of every spoke attachment (``prod-transit``), in a spoke its attachment and route back."""
    return f"{account}-{TRANSIT_STACK_SUFFIX}"


def argocd_registration_secret(cluster: str) -> str:
    """The Secrets Manager secret (ops account) holding a slot's Argo CD cluster registration."""
    return f"{ARGOCD_REGISTRATION_PREFIX}{cluster}"


# role in the ops account that `cluster-upgrade verify` assumes (from any cluster account's
# UPGRADE_OPERATOR_ROLE) to read Argo CD's metrics in the ops AMP workspace
ARGOCD_STATUS_ROLE = "fleetform-argocd-status"


def amp_workspace_alias(ops_account: str, ops_cluster: str) -> str:
    """The ops cluster's AMP workspace alias (its shared stack): how the runbook finds its id."""
    return f"{ops_account}-{ops_cluster}-metrics"


def new_account_output(account: str) -> str:
    """The organization stack's output with the id of a new account it created."""
    return f"account_id_{account}"

# where the pipeline stack reads the buildspecs it puts inline (a base revision's, for `fleetform affected`)
BUILDSPEC_DIR_ENV = "FLEETFORM_BUILDSPEC_DIR"


def buildspec_dir() -> Path:
    """``buildspec/`` of the checkout: ``FLEETFORM_BUILDSPEC_DIR``, next to the package (a checkout or an
    editable install), or in the working directory. Here rather than in constructs/pipeline.py so that
    ``fleetform affected`` finds it without importing cdktn."""
    configured = [Path(os.environ[BUILDSPEC_DIR_ENV])] if os.environ.get(BUILDSPEC_DIR_ENV) else []
    for candidate in (*configured, Path(__file__).resolve().parents[1] / "buildspec", Path.cwd() / "buildspec"):
        if candidate.is_dir():
            return candidate
    raise FleetformError("the pipeline stack puts buildspec/*.yml into its projects, but buildspec/ is neither next "
                         "to the fleetform package nor in the working directory: synthesize from the repository")
