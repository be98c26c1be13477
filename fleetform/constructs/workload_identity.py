"""Least-privilege IAM roles for the in-cluster software of one cluster slot.

The software itself is installed by Argo CD/Helm, never by Terraform; this only gives each
service account its role. Add-ons EKS installs (vpc-cni, aws-ebs-csi-driver) use IRSA; everything
else uses EKS Pod Identity associations (no per-cluster OIDC trust to rewrite on a new slot).
Role names are ``<cluster>-<workload>`` so the runbook and the Helm values can derive them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetform.constructs.ops import pod_identity_trust
from fleetform.engine import Construct, Resource, policy_json
from fleetform.naming import PROMETHEUS_ROLE_SUFFIX

AWS_MANAGED_POLICY = "arn:aws:iam::aws:policy/"

# (namespace, service account) of each workload, as the upstream Helm charts name them
SERVICE_ACCOUNTS: dict[str, tuple[str, str]] = {
    "vpc-cni": ("kube-system", "aws-node"),
    "ebs-csi": ("kube-system", "ebs-csi-controller-sa"),
    "load-balancer-controller": ("kube-system", "aws-load-balancer-controller"),
    "external-dns": ("external-dns", "external-dns"),
    "keda": ("keda", "keda-operator"),
    "karpenter": ("kube-system", "karpenter"),
    "cluster-autoscaler": ("kube-system", "cluster-autoscaler"),
    PROMETHEUS_ROLE_SUFFIX: ("monitoring", "prometheus"),
    "loki": ("loki", "loki"),
}
INTERRUPTION_EVENTS: dict[str, dict[str, Any]] = {
    "health": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
}


@dataclass(frozen=True)
class WorkloadIdentityProps:
    cluster_name: str  # plain string (role names, ARNs)
    cluster_name_ref: str  # reference to the cluster's name (orders associations after the cluster)
    cluster_arn: str
    account_id: str
    region: str
    vpc_id: str
    node_role_arn: str
    node_role_name: str
    volume_kms_key_arn: str
    autoscaler: str = "karpenter"
    hosted_zone_arn: str | None = None  # external-dns only when the account has a zone
    amp_writer_role_arn: str | None = None  # Prometheus remote write only when there is an ops workspace
    loki_bucket_arn: str | None = None
    loki_kms_key_arn: str | None = None


class WorkloadIdentities(Construct):
    """Attributes: ``roles`` (workload -> aws_iam_role), ``interruption_queue`` (Karpenter only)."""

    def __init__(self, scope: Construct, id: str, props: WorkloadIdentityProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.roles: dict[str, Resource] = {}
        self.interruption_queue: Resource | None = None
        self.pod_identity("load-balancer-controller", _load_balancer_controller(props))
        self.pod_identity("keda", [{
            "Sid": "ReadQueueLengths", "Effect": "Allow",
            "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": f"arn:aws:sqs:{props.region}:{props.account_id}:*",
        }])
        if props.hosted_zone_arn is not None:
            self.pod_identity("external-dns", [
                {"Sid": "ChangeRecordsInTheAccountZone", "Effect": "Allow",
                 "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
                            "route53:ListTagsForResource"],
                 "Resource": props.hosted_zone_arn},
                {"Sid": "FindZones", "Effect": "Allow", "Action": ["route53:ListHostedZones"], "Resource": "*"},
            ])
        if props.autoscaler == "karpenter":
            self._karpenter(props)
        else:
            self.pod_identity("cluster-autoscaler", _cluster_autoscaler(props))
        if props.amp_writer_role_arn is not None:
            self.pod_identity(PROMETHEUS_ROLE_SUFFIX, [{
                "Sid": "RemoteWriteThroughOpsRole", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                "Resource": props.amp_writer_role_arn}])
        if props.loki_bucket_arn is not None and props.loki_kms_key_arn is not None:
            self.pod_identity("loki", [
                {"Sid": "Chunks", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                 "Resource": f"{props.loki_bucket_arn}/*"},
                {"Sid": "ListChunks", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": props.loki_bucket_arn},
                {"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                 "Resource": props.loki_kms_key_arn},
            ])

    def _role(self, workload: str, trust: str, statements: Sequence[Mapping[str, Any]]) -> Resource:
        role = Resource(self, f"{workload}-role", "aws_iam_role", name=f"{self.props.cluster_name}-{workload}",
                        assume_role_policy=trust)
        if statements:
            Resource(self, f"{workload}-policy", "aws_iam_role_policy", name=workload, role=role.id_ref,
                     policy=policy_json(statements))
        self.roles[workload] = role
        return role

    def pod_identity(self, workload: str, statements: Sequence[Mapping[str, Any]]) -> Resource:
        """A role for ``SERVICE_ACCOUNTS[workload]`` through an EKS Pod Identity association."""
        namespace, service_account = SERVICE_ACCOUNTS[workload]
        cluster = f"arn:aws:eks:{self.props.region}:{self.props.account_id}:cluster/{self.props.cluster_name}"
        role = self._role(workload, pod_identity_trust(self.props.account_id, [cluster]), statements)
        Resource(self, f"{workload}-association", "aws_eks_pod_identity_association",
                 cluster_name=self.props.cluster_name_ref, namespace=namespace, service_account=service_account,
                 role_arn=role.arn)
        return role

    def irsa(self, workload: str, trust: str, managed_policies: Sequence[str] = (),
             statements: Sequence[Mapping[str, Any]] = ()) -> Resource:
        """A role for an EKS add-on's service account through IRSA (``trust`` from EksCluster.irsa_trust)."""
        role = self._role(workload, trust, statements)
        for policy in managed_policies:
            Resource(self, f"{workload}-{policy.rsplit('/', 1)[-1]}", "aws_iam_role_policy_attachment",
                     role=role.id_ref, policy_arn=f"{AWS_MANAGED_POLICY}{policy}")
        return role

    def _karpenter(self, props: WorkloadIdentityProps) -> None:
        name = f"{props.cluster_name}-karpenter"
        queue = Resource(self, "interruption-queue", "aws_sqs_queue", name=name, message_retention_seconds=300,
                         sqs_managed_sse_enabled=True)
        self.interruption_queue = queue
        Resource(self, "interruption-queue-policy", "aws_sqs_queue_policy", queue_url=queue.attr("url"),
                 policy=policy_json([
                     {"Sid": "EventBridgeWrites", "Effect": "Allow",
                      "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                      "Action": "sqs:SendMessage", "Resource": queue.arn},
                     {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
                      "Resource": queue.arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                 ]))
        for key, pattern in INTERRUPTION_EVENTS.items():
            rule = Resource(self, f"interruption-{key}", "aws_cloudwatch_event_rule", name=f"{name}-{key}",
                            description=f"Karpenter of {props.cluster_name}: {pattern['detail-type'][0]}",
                            event_pattern=policy_json(pattern))
            Resource(self, f"interruption-{key}-target", "aws_cloudwatch_event_target", rule=rule.attr("name"),
                     target_id="karpenter-interruption-queue", arn=queue.arn)
        self.pod_identity("karpenter", _karpenter_controller(props, queue.arn))


def _load_balancer_controller(props: WorkloadIdentityProps) -> list[dict[str, Any]]:
    """The upstream AWS Load Balancer Controller policy (v2.x): reads anywhere, writes only to what it
    tagged for this cluster (``elbv2.k8s.aws/cluster``) or, for listeners and rules (which it does not
    tag), to this account and region."""
    own = {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": props.cluster_name}}
    creating = {"StringEquals": {"aws:RequestTag/elbv2.k8s.aws/cluster": props.cluster_name}}
    region_account = f"{props.region}:{props.account_id}"
    elb = [f"arn:aws:elasticloadbalancing:{region_account}:{kind}/*/*"
           for kind in ("targetgroup", "loadbalancer/net", "loadbalancer/app")]
    # load balancers, listeners and rules of this account and region (upstream: "*")
    listeners = [f"arn:aws:elasticloadbalancing:{region_account}:{kind}"
                 for kind in ("loadbalancer/app/*/*", "loadbalancer/net/*/*", "listener/app/*/*/*",
                              "listener/net/*/*/*", "listener-rule/app/*/*/*/*", "listener-rule/net/*/*/*/*")]
    return [
        {"Sid": "ServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": "*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
            "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
            "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:GetCoipPoolUsage", "ec2:DescribeCoipPools",
            "ec2:GetSecurityGroupsForVpc", "ec2:DescribeIpamPools", "ec2:DescribeRouteTables",
            "elasticloadbalancing:Describe*", "acm:ListCertificates", "acm:DescribeCertificate",
            "iam:ListServerCertificates", "iam:GetServerCertificate", "cognito-idp:DescribeUserPoolClient",
            "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "wafv2:GetWebACL",
            "wafv2:GetWebACLForResource", "shield:GetSubscriptionState", "shield:DescribeProtection"]},
        {"Sid": "CreateSecurityGroupsInTheVpc", "Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"],
         "Resource": [f"arn:aws:ec2:{region_account}:security-group/*",
                      f"arn:aws:ec2:{region_account}:vpc/{props.vpc_id}"]},
        {"Sid": "TagNewSecurityGroups", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": f"arn:aws:ec2:{region_account}:security-group/*",
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup",
                                        "aws:RequestTag/elbv2.k8s.aws/cluster": props.cluster_name}}},
        {"Sid": "ManageOwnSecurityGroups", "Effect": "Allow", "Resource": "*", "Condition": own, "Action": [
            "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
            "ec2:CreateTags", "ec2:DeleteTags"]},
        {"Sid": "OpenNodeSecurityGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
         "Condition": {"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/" + props.cluster_name: "owned"}}},
        {"Sid": "CreateLoadBalancers", "Effect": "Allow", "Resource": "*", "Condition": creating, "Action": [
            "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]},
        {"Sid": "ManageListenersAndRules", "Effect": "Allow", "Resource": listeners, "Action": [
            "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule"]},
        {"Sid": "TagOwnLoadBalancers", "Effect": "Allow", "Resource": elb, "Condition": own,
         "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Resource": elb, "Action": "elasticloadbalancing:AddTags",
         "Condition": {"StringEquals": {
             "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"],
             "aws:RequestTag/elbv2.k8s.aws/cluster": props.cluster_name}}},
        {"Sid": "ManageOwnLoadBalancers", "Effect": "Allow", "Resource": "*", "Condition": own, "Action": [
            "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
            "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
            "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
            "elasticloadbalancing:ModifyIpPools"]},
        {"Sid": "Targets", "Effect": "Allow", "Resource": f"arn:aws:elasticloadbalancing:{region_account}:"
                                                          "targetgroup/*/*",
         "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]},
        {"Sid": "ListenersAndCertificates", "Effect": "Allow", "Resource": listeners, "Action": [
            "elasticloadbalancing:ModifyListener",
            "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
            "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities"]},
        # WAF and Shield resources are not known in advance (as upstream); SetWebAcl takes no resource
        {"Sid": "WafAndShield", "Effect": "Allow", "Resource": "*", "Action": [
            "elasticloadbalancing:SetWebAcl", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
            "waf-regional:AssociateWebACL", "waf-regional:DisassociateWebACL", "shield:CreateProtection",
            "shield:DeleteProtection"]},
    ]


def _cluster_autoscaler(props: WorkloadIdentityProps) -> list[dict[str, Any]]:
    return [
        {"Sid": "Discover", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
            "eks:DescribeNodegroup"]},
        {"Sid": "ScaleOwnGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/k8s.io/cluster-autoscaler/{props.cluster_name}": "owned"}}},
    ]


def _karpenter_controller(props: WorkloadIdentityProps, queue_arn: str) -> list[dict[str, Any]]:
    """Karpenter v1's controller policy, scoped to this cluster's tags, node role and queue."""
    region_account = f"{props.region}:{props.account_id}"
    owned = f"aws:ResourceTag/kubernetes.io/cluster/{props.cluster_name}"
    request_owned = f"aws:RequestTag/kubernetes.io/cluster/{props.cluster_name}"
    return [
        {"Sid": "LaunchFromSharedResources", "Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": [f"arn:aws:ec2:{props.region}::image/*", f"arn:aws:ec2:{props.region}::snapshot/*",
                      f"arn:aws:ec2:{region_account}:security-group/*", f"arn:aws:ec2:{region_account}:subnet/*",
                      f"arn:aws:ec2:{region_account}:capacity-reservation/*"]},
        {"Sid": "LaunchOwnTemplates", "Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": f"arn:aws:ec2:{region_account}:launch-template/*",
         "Condition": {"StringEquals": {owned: "owned"}, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "CreateTaggedResources", "Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
         "Resource": [f"arn:aws:ec2:{region_account}:{kind}/*" for kind in (
             "fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")],
         "Condition": {"StringEquals": {request_owned: "owned", "aws:RequestTag/eks:eks-cluster-name":
                                        props.cluster_name},
                       "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": [f"arn:aws:ec2:{region_account}:{kind}/*" for kind in (
             "fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")],
         "Condition": {"StringEquals": {request_owned: "owned",
                                        "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                       "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "TagOwnInstances", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": f"arn:aws:ec2:{region_account}:instance/*",
         "Condition": {"StringEquals": {owned: "owned"}, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim",
                                                                     "Name"]}}},
        {"Sid": "DeleteOwnResources", "Effect": "Allow",
         "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
         "Resource": [f"arn:aws:ec2:{region_account}:instance/*", f"arn:aws:ec2:{region_account}:launch-template/*"],
         "Condition": {"StringEquals": {owned: "owned"}, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": props.region}}, "Action": [
             "ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
             "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplates",
             "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
             "ec2:DescribeAvailabilityZones", "pricing:GetProducts"]},
        {"Sid": "AmiParameters", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": f"arn:aws:ssm:{props.region}::parameter/aws/service/*"},
        {"Sid": "InterruptionQueue", "Effect": "Allow", "Resource": queue_arn,
         "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]},
        {"Sid": "PassNodeRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": props.node_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}},
        {"Sid": "OwnInstanceProfiles", "Effect": "Allow",
         "Action": ["iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
                    "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile"],
         "Resource": f"arn:aws:iam::{props.account_id}:instance-profile/*",
         "Condition": {"StringEquals": {owned: "owned", "aws:ResourceTag/topology.kubernetes.io/region":
                                        props.region}}},
        {"Sid": "CreateInstanceProfiles", "Effect": "Allow",
         "Action": ["iam:CreateInstanceProfile", "iam:TagInstanceProfile"],
         "Resource": f"arn:aws:iam::{props.account_id}:instance-profile/*",
         "Condition": {"StringEquals": {request_owned: "owned", "aws:RequestTag/topology.kubernetes.io/region":
                                        props.region}}},
        {"Sid": "ListInstanceProfiles", "Effect": "Allow", "Action": "iam:ListInstanceProfiles", "Resource": "*"},
        {"Sid": "ClusterEndpoint", "Effect": "Allow", "Action": "eks:DescribeCluster",
         "Resource": props.cluster_arn},
        {"Sid": "EncryptedVolumes", "Effect": "Allow", "Resource": props.volume_kms_key_arn,
         "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"],
         "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{props.region}.amazonaws.com"}}},
    ]
