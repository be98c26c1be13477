"""The Session Manager bastion: one instance kept alive by an autoscaling group, no SSH.

No key pair and no ingress: people reach it only through Session Manager with the recorded
session document (see ``session_logging``); it reaches out only over HTTPS. kubectl (one
binary per Kubernetes minor version in the account, ``kubectl`` being the newest) and a
kubeconfig entry for every cluster are installed at boot and refreshed by a systemd timer.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.constructs.session_logging import SessionLogging
from fleetform.engine import Construct, Resource, policy_json

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
KUBECONFIG = "/etc/fleetform/kubeconfig"
KUBECTL_BASE_URL = "https://dl.k8s.io/release"
# Session documents whose traffic Session Manager cannot record (tunnels, one-off commands);
# the operator policy denies them, and the default shell document, explicitly.
UNRECORDED_DOCUMENTS = (
    "AWS-StartSSHSession",
    "AWS-StartPortForwardingSession",
    "AWS-StartPortForwardingSessionToRemoteHost",
    "AWS-StartPortForwardingSessionToSocket",
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
    "AWS-PasswordReset",
)
DEFAULT_SESSION_DOCUMENT = "SSM-SessionManagerRunShell"


def instance_architecture(instance_type: str) -> str:
    """``x86_64`` or ``arm64`` (Graviton families carry a ``g`` after the generation: t4g, m7gd, c7gn)."""
    family = instance_type.split(".", 1)[0]
    match = re.match(r"^[a-z]+\d+([a-z-]*)$", family)
    return "arm64" if match and "g" in match.group(1) else "x86_64"


def kubectl_versions(clusters: Mapping[str, str]) -> list[str]:
    """Distinct Kubernetes minor versions, oldest first (``["1.34", "1.36"]``)."""
    return sorted(set(clusters.values()), key=lambda v: tuple(int(p) for p in v.split(".")))


# Installs kubectl <minor> (its latest patch release) as $BIN_DIR/kubectl-<minor>, only when the
# download matches the sha256 published next to it. Every step is checked explicitly: errexit
# does not apply inside a function called from `until` (see retry).
KUBECTL_FUNCTIONS = r"""
install_kubectl() {
  local minor=$1 release url dir
  release=$(curl -fsSL --proto '=https' --tlsv1.2 "$KUBECTL_BASE_URL/stable-$minor.txt") || return 1
  case "$release" in
    "v$minor."*) ;;
    *) echo "unexpected kubectl release '$release' for $minor" >&2; return 1 ;;
  esac
  url="$KUBECTL_BASE_URL/$release/bin/linux/$ARCH/kubectl"
  dir=$(mktemp -d) || return 1
  if ! curl -fsSL --proto '=https' --tlsv1.2 -o "$dir/kubectl" "$url" ||
     ! curl -fsSL --proto '=https' --tlsv1.2 -o "$dir/kubectl.sha256" "$url.sha256"; then
    rm -rf "$dir"; return 1
  fi
  if ! echo "$(tr -d '[:space:]' < "$dir/kubectl.sha256")  $dir/kubectl" | sha256sum --check --strict --quiet; then
    echo "kubectl $release: checksum mismatch, not installed" >&2; rm -rf "$dir"; return 1
  fi
  install -m 0755 "$dir/kubectl" "$BIN_DIR/kubectl-$minor" || { rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}
"""

KUBECONFIG_SCRIPT = r"""#!/bin/bash
# Rebuild the kubeconfig with an entry (context) per cluster of the account. A cluster that does
# not exist yet is skipped and reported; the timer tries again.
set -uo pipefail
target=${FLEETFORM_KUBECONFIG:-@KUBECONFIG@}
work=$(mktemp -d "$(dirname "$target")/.kubeconfig.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
status=0
for cluster in @CLUSTERS@; do
  if ! aws eks update-kubeconfig --region @REGION@ --name "$cluster" --alias "$cluster" \
      --kubeconfig "$work/config" >/dev/null; then
    echo "cluster $cluster: not reachable yet, skipped" >&2
    status=1
  fi
done
if [ -s "$work/config" ]; then
  chmod 0644 "$work/config" && mv -f "$work/config" "$target" || exit 1
fi
exit $status
"""

BOOT_SCRIPT = r"""#!/bin/bash
# fleetform bastion: AWS CLI, kubectl @VERSIONS@ and a kubeconfig for: @CLUSTERS@
set -euo pipefail
ARCH=@ARCH@
KUBECTL_VERSIONS=@KUBECTL_VERSIONS@
NEWEST_KUBECTL=@NEWEST@
RUN_AS_USER=@RUN_AS_USER@
KUBECTL_BASE_URL=@KUBECTL_BASE_URL@
BIN_DIR=/usr/local/bin

retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge 5 ]; then echo "failed after $attempt attempts: $*" >&2; return 1; fi
    sleep $((attempt * 15)); attempt=$((attempt + 1))
  done
}
@KUBECTL_FUNCTIONS@
retry dnf install -y --setopt=install_weak_deps=False awscli-2 bash-completion

# Session Manager runs sessions as this user (runAsEnabled); it has no sudo.
id -u "$RUN_AS_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUN_AS_USER"

for minor in $KUBECTL_VERSIONS; do
  retry install_kubectl "$minor" || echo "ERROR: kubectl $minor is not installed (see above)" >&2
done
if [ -n "$NEWEST_KUBECTL" ]; then ln -sf "$BIN_DIR/kubectl-$NEWEST_KUBECTL" "$BIN_DIR/kubectl"; fi

install -d -m 0755 @KUBECONFIG_DIR@
cat > /usr/local/sbin/fleetform-kubeconfig <<'SCRIPT'
@KUBECONFIG_SCRIPT@SCRIPT
chmod 0755 /usr/local/sbin/fleetform-kubeconfig

cat > /etc/systemd/system/fleetform-kubeconfig.service <<'UNIT'
[Unit]
Description=Refresh the kubeconfig for the account's EKS clusters
After=network-online.target
Wants=network-online.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleetform-kubeconfig
UNIT
cat > /etc/systemd/system/fleetform-kubeconfig.timer <<'UNIT'
[Unit]
Description=Refresh the kubeconfig every 15 minutes (new cluster slots appear during upgrades)
[Timer]
OnBootSec=1min
OnUnitActiveSec=15min
[Install]
WantedBy=timers.target
UNIT

cat > /etc/profile.d/fleetform.sh <<'PROFILE'
export KUBECONFIG=@KUBECONFIG@
PROFILE
cat > /etc/motd <<'MOTD'
fleetform bastion: this session is recorded (S3 and CloudWatch Logs).
Clusters (kubectl contexts): @CLUSTERS@
kubectl binaries: @KUBECTL_BINARIES@ (kubectl = the newest)
MOTD

systemctl daemon-reload
systemctl enable --now fleetform-kubeconfig.timer
/usr/local/sbin/fleetform-kubeconfig || echo "some clusters are not ready yet; the timer retries" >&2
"""


def _fill(template: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def kubeconfig_script(region: str, clusters: Mapping[str, str]) -> str:
    """/usr/local/sbin/fleetform-kubeconfig, run at boot and by a timer."""
    return _fill(KUBECONFIG_SCRIPT, {"KUBECONFIG": KUBECONFIG, "REGION": shlex.quote(region),
                                     "CLUSTERS": " ".join(shlex.quote(n) for n in sorted(clusters))})


def user_data(region: str, instance_type: str, clusters: Mapping[str, str], run_as_user: str) -> str:
    """The boot script (shell). ``clusters``: EKS cluster name -> Kubernetes minor version."""
    versions = kubectl_versions(clusters)
    return _fill(BOOT_SCRIPT, {
        "KUBECTL_FUNCTIONS": KUBECTL_FUNCTIONS,
        "KUBECONFIG_SCRIPT": kubeconfig_script(region, clusters),
        "ARCH": "arm64" if instance_architecture(instance_type) == "arm64" else "amd64",
        "KUBECTL_VERSIONS": shlex.quote(" ".join(versions)),
        "NEWEST": shlex.quote(versions[-1] if versions else ""),
        "RUN_AS_USER": shlex.quote(run_as_user),
        "KUBECTL_BASE_URL": KUBECTL_BASE_URL,
        "KUBECONFIG_DIR": KUBECONFIG.rsplit("/", 1)[0],
        "KUBECONFIG": KUBECONFIG,
        "VERSIONS": " ".join(versions) or "(no clusters)",
        "KUBECTL_BINARIES": " ".join(f"kubectl-{v}" for v in versions) or "(none)",
        "CLUSTERS": " ".join(sorted(clusters)) or "(none)",
    })


@dataclass(frozen=True)
class BastionProps:
    account_id: str
    region: str
    vpc_id: str
    subnet_ids: Sequence[str]
    role_name: str
    name_tag: str
    operator_policy_name: str
    clusters: Mapping[str, str] = field(default_factory=dict)  # EKS cluster name -> "1.34"
    instance_type: str = "t3.small"
    run_as_user: str = "bastion"
    root_volume_gb: int = 20
    max_instance_lifetime_days: int = 7
    tags: Mapping[str, str] = field(default_factory=dict)


class Bastion(Construct):
    """Attributes: ``role_arn``, ``security_group_id``, ``operator_policy_arn``, ``asg_name``."""

    def __init__(self, scope: Construct, id: str, props: BastionProps, session: SessionLogging) -> None:
        super().__init__(scope, id)
        self.props = props
        self.session = session
        role = self._role(props, session)
        volume_key = self._volume_key(props)
        security_group = self._security_group(props)
        arch = instance_architecture(props.instance_type)
        tags = {**props.tags, "Name": props.name_tag}
        self.launch_template = Resource(
            self, "launch-template", "aws_launch_template",
            name=props.name_tag,
            description="fleetform Session Manager bastion (no key pair, no ingress)",
            image_id=f"resolve:ssm:{AMI_PARAMETER.format(arch=arch)}",
            instance_type=props.instance_type,
            update_default_version=True,
            ebs_optimized="true",
            iam_instance_profile=[{"arn": self.instance_profile.arn}],
            vpc_security_group_ids=[security_group.id_ref],
            metadata_options=[{
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            }],
            block_device_mappings=[{
                "device_name": "/dev/xvda",
                "ebs": [{
                    "volume_size": props.root_volume_gb,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "kms_key_id": volume_key.arn,
                    "delete_on_termination": "true",
                }],
            }],
            monitoring=[{"enabled": True}],
            user_data=base64.b64encode(
                user_data(props.region, props.instance_type, props.clusters, props.run_as_user).encode()
            ).decode(),
            tag_specifications=[{"resource_type": kind, "tags": tags}
                                for kind in ("instance", "volume", "network-interface")],
            # the template carries the tag too: the protect-bastion-tag SCP lets only fleetform change it
            tags=tags,
        )
        lifetime = props.max_instance_lifetime_days * 86400 or None
        self.asg = Resource(
            self, "asg", "aws_autoscaling_group",
            name=props.name_tag,
            min_size=1,
            max_size=1,
            desired_capacity=1,
            vpc_zone_identifier=list(props.subnet_ids),
            launch_template=[{"id": self.launch_template.id_ref,
                              "version": self.launch_template.attr("latest_version")}],
            health_check_type="EC2",
            health_check_grace_period=300,
            max_instance_lifetime=lifetime,
            service_linked_role_arn=self.autoscaling_role.arn,
            # a new launch template version (AMI, kubectl, clusters) replaces the bastion
            instance_refresh=[{"strategy": "Rolling", "preferences": [{"min_healthy_percentage": 0}]}],
            tag=[{"key": k, "value": v, "propagate_at_launch": True} for k, v in sorted(tags.items())],
        )
        self.asg_name = props.name_tag
        self.role_arn = role.arn
        self.security_group_id = security_group.id_ref
        self.operator_policy = Resource(
            self, "operator-policy", "aws_iam_policy",
            name=props.operator_policy_name,
            description="Start recorded Session Manager sessions on the fleetform bastion, nothing else",
            policy=policy_json(self.operator_statements()),
        )
        self.operator_policy_arn = self.operator_policy.arn

    # ------------------------------------------------------------ parts

    def _role(self, props: BastionProps, session: SessionLogging) -> Resource:
        role = Resource(
            self, "role", "aws_iam_role",
            name=props.role_name,
            description="fleetform bastion instance: Session Manager, session recording, EKS access",
            assume_role_policy=policy_json([{
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }]),
        )
        Resource(self, "ssm-core", "aws_iam_role_policy_attachment", role=role.attr("name"),
                 policy_arn=SSM_CORE_POLICY)
        statements: list[Mapping[str, Any]] = list(session.writer_statements())
        if props.clusters:
            statements.insert(0, {
                "Sid": "WriteKubeconfig",
                "Effect": "Allow",
                "Action": "eks:DescribeCluster",
                "Resource": [f"arn:aws:eks:{props.region}:{props.account_id}:cluster/{name}"
                             for name in sorted(props.clusters)],
            })
        Resource(self, "role-policy", "aws_iam_role_policy", name="bastion", role=role.id_ref,
                 policy=policy_json(statements))
        self.instance_profile = Resource(self, "instance-profile", "aws_iam_instance_profile",
                                         name=props.role_name, role=role.attr("name"))
        return role

    def _volume_key(self, props: BastionProps) -> KmsKey:
        # Auto Scaling launches the instance, so its service-linked role must be able to use the
        # key; a role of our own (custom suffix) exists before the key policy names it.
        self.autoscaling_role = Resource(
            self, "autoscaling-role", "aws_iam_service_linked_role",
            aws_service_name="autoscaling.amazonaws.com",
            custom_suffix=props.name_tag,
            description="Auto Scaling for the fleetform bastion (uses the volume key)",
        )
        principal = {"AWS": self.autoscaling_role.arn}
        return KmsKey(self, "volume-key", KmsKeyProps(
            alias=f"{props.name_tag}-volume",
            description="fleetform bastion root volume",
            account_id=props.account_id,
            extra_statements=[
                {
                    "Sid": "AutoScalingUsesKeyForVolumes",
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                               "kms:DescribeKey"],
                    "Resource": "*",
                },
                {
                    "Sid": "AutoScalingAttachesVolumes",
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": "kms:CreateGrant",
                    "Resource": "*",
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        ))

    def _security_group(self, props: BastionProps) -> Resource:
        group = Resource(
            self, "security-group", "aws_security_group",
            name=props.name_tag,
            description="fleetform bastion: no ingress (Session Manager only), HTTPS out",
            vpc_id=props.vpc_id,
            ingress=[],  # managed as empty: an ingress rule added by hand is removed on the next apply
            revoke_rules_on_delete=True,
            tags={"Name": props.name_tag},
        )
        Resource(self, "egress-https", "aws_vpc_security_group_egress_rule",
                 security_group_id=group.id_ref, ip_protocol="tcp", from_port=443, to_port=443,
                 cidr_ipv4="0.0.0.0/0",
                 description="HTTPS to AWS APIs (SSM, EKS, S3, CloudWatch Logs) and dl.k8s.io for kubectl")
        return group

    # ------------------------------------------------------------ who may connect

    def operator_statements(self) -> list[Mapping[str, Any]]:
        """Start sessions only on the bastion and only with the recorded document; never tunnels."""
        props = self.props
        region, account = props.region, props.account_id
        document_check = {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
        return [
            {
                "Sid": "StartSessionOnTheBastion",
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": f"arn:aws:ec2:{region}:{account}:instance/*",
                "Condition": {"StringEquals": {"ssm:resourceTag/Name": props.name_tag}, **document_check},
            },
            {
                "Sid": "OnlyWithTheRecordedDocument",
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": self.session.document_arn,
                "Condition": document_check,
            },
            {
                "Sid": "DenyUnrecordedSessionDocuments",
                "Effect": "Deny",
                "Action": "ssm:StartSession",
                "Resource": [f"arn:aws:ssm:*:*:document/{name}" for name in
                             (*UNRECORDED_DOCUMENTS, DEFAULT_SESSION_DOCUMENT)],
            },
            {
                # Session Manager tags each session with the user id of the principal that started it
                "Sid": "ResumeAndEndOwnSessions",
                "Effect": "Allow",
                "Action": ["ssm:ResumeSession", "ssm:TerminateSession"],
                "Resource": f"arn:aws:ssm:{region}:{account}:session/*",
                "Condition": {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": ["$${aws:userid}"]}},
            },
            {
                "Sid": "FindTheBastion",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ssm:DescribeSessions", "ssm:DescribeInstanceInformation",
                           "ssm:GetConnectionStatus"],
                "Resource": "*",
            },
            {
                "Sid": "EncryptTheSession",
                "Effect": "Allow",
                "Action": "kms:GenerateDataKey",
                "Resource": self.session.key_arn,
            },
        ]
