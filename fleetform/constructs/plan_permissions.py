"""What ``fleetform-plan`` may read: AWS's ViewOnlyAccess plus the exact calls that the hashicorp/aws
provider makes to refresh fleetform's resource types, and never data.

A pull request's plan runs the pull request's code with this role, so it must not read what the
accounts hold (log events, parameters, secrets, objects, images, function code, items, messages):
only what Terraform needs to compare configuration. ViewOnlyAccess gives List/Describe of most
services; ``PROVIDER_READS`` adds the Get/Describe calls of each resource type's Read function that
it lacks. A resource type that fleetform starts to emit needs an entry here (a test checks every
type of the example organization), so the plan role never grows by accident.
"""

from __future__ import annotations

VIEW_ONLY_POLICY = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"

_S3_BUCKET = (
    "s3:ListBucket", "s3:GetBucketAcl", "s3:GetBucketCORS", "s3:GetBucketWebsite", "s3:GetBucketVersioning",
    "s3:GetAccelerateConfiguration", "s3:GetBucketRequestPayment", "s3:GetBucketLogging",
    "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration", "s3:GetEncryptionConfiguration",
    "s3:GetBucketObjectLockConfiguration", "s3:GetBucketTagging", "s3:GetBucketPolicy", "s3:GetBucketLocation",
)
_EC2_SECURITY_GROUPS = ("ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules")
_ROUTES = ("ec2:DescribeRouteTables",)
_ORG_TAGS = ("organizations:ListTagsForResource",)
_GUARDDUTY_ORG = ("guardduty:DescribeOrganizationConfiguration",)
_DNSSEC = ("route53:GetDNSSEC",)

# resource (and data source) type -> the provider's read calls (hashicorp/aws, Read functions)
PROVIDER_READS: dict[str, tuple[str, ...]] = {
    "aws_accessanalyzer_analyzer": ("access-analyzer:GetAnalyzer",),
    "aws_acm_certificate": ("acm:DescribeCertificate", "acm:ListTagsForCertificate"),
    "aws_acm_certificate_validation": ("acm:DescribeCertificate",),
    "aws_autoscaling_group": ("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLifecycleHooks",
                              "autoscaling:DescribeTrafficSources", "autoscaling:DescribeWarmPool",
                              "autoscaling:DescribeLoadBalancerTargetGroups", "autoscaling:DescribeLoadBalancers",
                              "autoscaling:DescribeNotificationConfigurations", "autoscaling:DescribeTags"),
    "aws_budgets_budget": ("budgets:ViewBudget", "budgets:ListTagsForResource"),
    "aws_cloudtrail": ("cloudtrail:DescribeTrails", "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus",
                       "cloudtrail:GetEventSelectors", "cloudtrail:GetInsightSelectors", "cloudtrail:ListTags"),
    "aws_cloudwatch_event_rule": ("events:DescribeRule", "events:ListTagsForResource"),
    "aws_cloudwatch_event_target": ("events:ListTargetsByRule",),
    "aws_cloudwatch_log_group": ("logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:ListTagsLogGroup"),
    "aws_cloudwatch_log_resource_policy": ("logs:DescribeResourcePolicies",),
    "aws_cloudwatch_metric_alarm": ("cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"),
    "aws_codebuild_project": ("codebuild:BatchGetProjects",),
    "aws_codebuild_source_credential": ("codebuild:ListSourceCredentials",),
    "aws_codebuild_webhook": ("codebuild:BatchGetProjects",),
    "aws_config_configuration_aggregator": ("config:DescribeConfigurationAggregators", "config:ListTagsForResource"),
    "aws_config_configuration_recorder": ("config:DescribeConfigurationRecorders",),
    "aws_config_configuration_recorder_status": ("config:DescribeConfigurationRecorderStatus",),
    "aws_config_delivery_channel": ("config:DescribeDeliveryChannels",),
    "aws_default_security_group": _EC2_SECURITY_GROUPS,
    "aws_ebs_encryption_by_default": ("ec2:GetEbsEncryptionByDefault",),
    "aws_ebs_snapshot_block_public_access": ("ec2:GetSnapshotBlockPublicAccessState",),
    "aws_ec2_instance_metadata_defaults": ("ec2:GetInstanceMetadataDefaults",),
    "aws_ec2_tag": ("ec2:DescribeTags",),
    "aws_eip": ("ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute"),
    "aws_eks_access_entry": ("eks:DescribeAccessEntry",),
    "aws_eks_access_policy_association": ("eks:ListAssociatedAccessPolicies",),
    "aws_eks_addon": ("eks:DescribeAddon",),
    "aws_eks_cluster": ("eks:DescribeCluster",),
    "aws_eks_node_group": ("eks:DescribeNodegroup",),
    "aws_eks_pod_identity_association": ("eks:DescribePodIdentityAssociation",),
    "aws_flow_log": ("ec2:DescribeFlowLogs",),
    "aws_guardduty_detector": ("guardduty:GetDetector", "guardduty:ListTagsForResource"),
    "aws_guardduty_organization_admin_account": ("guardduty:ListOrganizationAdminAccounts",),
    "aws_guardduty_organization_configuration": _GUARDDUTY_ORG,
    "aws_guardduty_organization_configuration_feature": _GUARDDUTY_ORG,
    "aws_iam_account_password_policy": ("iam:GetAccountPasswordPolicy",),
    "aws_iam_instance_profile": ("iam:GetInstanceProfile",),
    "aws_iam_openid_connect_provider": ("iam:GetOpenIDConnectProvider",),
    "aws_iam_policy": ("iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyTags"),
    "aws_iam_role": ("iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListRoleTags"),
    "aws_iam_role_policy": ("iam:GetRolePolicy",),
    "aws_iam_role_policy_attachment": ("iam:ListAttachedRolePolicies",),
    "aws_iam_service_linked_role": ("iam:GetRole",),
    "aws_internet_gateway": ("ec2:DescribeInternetGateways",),
    "aws_kms_alias": ("kms:ListAliases",),
    "aws_kms_key": ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"),
    "aws_launch_template": ("ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions"),
    "aws_nat_gateway": ("ec2:DescribeNatGateways",),
    "aws_organizations_account": ("organizations:DescribeAccount", "organizations:ListParents", *_ORG_TAGS),
    "aws_organizations_delegated_administrator": ("organizations:ListDelegatedAdministrators",),
    "aws_organizations_organization": ("organizations:DescribeOrganization", "organizations:ListRoots",
                                       "organizations:ListAccounts",
                                       "organizations:ListAWSServiceAccessForOrganization"),
    "aws_organizations_organizational_unit": ("organizations:DescribeOrganizationalUnit",
                                              "organizations:ListAccountsForParent", *_ORG_TAGS),
    "aws_organizations_policy": ("organizations:DescribePolicy", *_ORG_TAGS),
    "aws_organizations_policy_attachment": ("organizations:ListTargetsForPolicy",),
    "aws_prometheus_workspace": ("aps:DescribeWorkspace", "aps:DescribeLoggingConfiguration",
                                 "aps:ListTagsForResource"),
    "aws_route": _ROUTES,
    "aws_route_table": _ROUTES,
    # the ops hub (decision 0005): Transit Gateway, its RAM share, the Argo CD registrations' policies
    "aws_ec2_transit_gateway": ("ec2:DescribeTransitGateways",),
    "aws_ec2_transit_gateway_route": ("ec2:SearchTransitGatewayRoutes",),
    "aws_ec2_transit_gateway_route_table": ("ec2:DescribeTransitGatewayRouteTables",),
    "aws_ec2_transit_gateway_route_table_association": ("ec2:GetTransitGatewayRouteTableAssociations",),
    "aws_ec2_transit_gateway_route_table_propagation": ("ec2:GetTransitGatewayRouteTablePropagations",),
    "aws_ec2_transit_gateway_vpc_attachment": ("ec2:DescribeTransitGatewayVpcAttachments",
                                               "ec2:DescribeTransitGatewayRouteTables",
                                               "ec2:GetTransitGatewayRouteTableAssociations",
                                               "ec2:GetTransitGatewayRouteTablePropagations"),
    "aws_ram_principal_association": ("ram:GetResourceShareAssociations",),
    "aws_ram_resource_association": ("ram:GetResourceShareAssociations",),
    "aws_ram_resource_share": ("ram:GetResourceShares", "ram:ListResourceSharePermissions"),
    "aws_ram_sharing_with_organization": ("organizations:ListAWSServiceAccessForOrganization",),
    "aws_secretsmanager_secret_policy": ("secretsmanager:GetResourcePolicy",),
    # the one value read: Argo CD registrations hold no credential (endpoint, CA, a role ARN), and the
    # provider refreshes a secret version by reading it; DATA_READS_EXEMPT narrows it to them
    "aws_secretsmanager_secret_version": ("secretsmanager:GetSecretValue",),
    "aws_route_table_association": _ROUTES,
    "aws_route53_hosted_zone_dnssec": _DNSSEC,
    "aws_route53_key_signing_key": _DNSSEC,
    "aws_route53_query_log": ("route53:GetQueryLoggingConfig",),
    "aws_route53_record": ("route53:ListResourceRecordSets",),
    "aws_route53_zone": ("route53:GetHostedZone", "route53:ListTagsForResource", "route53:GetChange"),
    "aws_s3_account_public_access_block": ("s3:GetAccountPublicAccessBlock",),
    "aws_s3_bucket": _S3_BUCKET,
    "aws_s3_bucket_lifecycle_configuration": ("s3:GetLifecycleConfiguration",),
    "aws_s3_bucket_logging": ("s3:GetBucketLogging",),
    "aws_s3_bucket_object_lock_configuration": ("s3:GetBucketObjectLockConfiguration",),
    "aws_s3_bucket_ownership_controls": ("s3:GetBucketOwnershipControls",),
    "aws_s3_bucket_policy": ("s3:GetBucketPolicy",),
    "aws_s3_bucket_public_access_block": ("s3:GetBucketPublicAccessBlock",),
    "aws_s3_bucket_server_side_encryption_configuration": ("s3:GetEncryptionConfiguration",),
    "aws_s3_bucket_versioning": ("s3:GetBucketVersioning",),
    "aws_security_group": _EC2_SECURITY_GROUPS,
    "aws_sns_topic": ("sns:GetTopicAttributes", "sns:ListTagsForResource"),
    "aws_sns_topic_policy": ("sns:GetTopicAttributes",),
    "aws_sns_topic_subscription": ("sns:GetSubscriptionAttributes",),
    "aws_sqs_queue": ("sqs:GetQueueAttributes", "sqs:ListQueueTags"),
    "aws_sqs_queue_policy": ("sqs:GetQueueAttributes",),
    "aws_ssm_document": ("ssm:DescribeDocument", "ssm:GetDocument", "ssm:DescribeDocumentPermission",
                         "ssm:ListTagsForResource"),
    "aws_subnet": ("ec2:DescribeSubnets",),
    "aws_vpc": ("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeNetworkAcls", *_ROUTES,
                *_EC2_SECURITY_GROUPS),
    "aws_vpc_endpoint": ("ec2:DescribeVpcEndpoints", "ec2:DescribePrefixLists"),
    "aws_vpc_endpoint_route_table_association": ("ec2:DescribeVpcEndpoints",),
    "aws_vpc_endpoint_subnet_association": ("ec2:DescribeVpcEndpoints",),
    "aws_vpc_security_group_egress_rule": ("ec2:DescribeSecurityGroupRules",),
    "aws_vpc_security_group_ingress_rule": ("ec2:DescribeSecurityGroupRules",),
    # data sources
    "aws_availability_zones": ("ec2:DescribeAvailabilityZones",),
    "aws_secretsmanager_secret": ("secretsmanager:DescribeSecret",),  # the secret's metadata, never its value
    "aws_eks_addon_version": ("eks:DescribeAddonVersions",),
    "aws_route53_records": ("route53:ListResourceRecordSets",),
    # the EKS optimized AMI releases: AWS's public parameters only (DATA_READS_EXEMPT), never the accounts' own
    "aws_ssm_parameter": ("ssm:GetParameter",),
}

# reads of what the accounts hold rather than how they are configured; denied outright, whatever a
# managed policy grants now or later (log events hold bastion session transcripts and EKS audit logs)
DATA_READS: tuple[str, ...] = (
    "athena:GetQueryResults", "cognito-identity:GetCredentialsForIdentity", "cognito-identity:GetOpenIdToken",
    "dax:BatchGetItem", "dax:GetItem", "dax:Query", "dax:Scan",
    "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:GetRecords", "dynamodb:Query", "dynamodb:Scan",
    "ec2:GetConsoleOutput", "ec2:GetConsoleScreenshot", "ec2:GetPasswordData",
    "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
    "es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost",
    "kinesis:GetRecords", "kinesis:GetShardIterator",
    "lambda:GetFunction", "lambda:GetLayerVersion",
    "logs:FilterLogEvents", "logs:GetLogEvents", "logs:GetLogRecord", "logs:GetQueryResults", "logs:StartLiveTail",
    "logs:StartQuery",
    "rds:DownloadCompleteDBLogFile", "rds:DownloadDBLogFilePortion",
    "s3:GetObject", "s3:GetObjectAttributes", "s3:GetObjectVersion",
    "secretsmanager:GetSecretValue",
    "sqs:ReceiveMessage",
    "ssm:GetCommandInvocation", "ssm:GetParameter", "ssm:GetParameterHistory", "ssm:GetParameters",
    "ssm:GetParametersByPath",
)


# data reads allowed on these resources only: the Argo CD cluster registrations (decision 0005)
DATA_READS_EXEMPT: dict[str, tuple[str, ...]] = {
    "secretsmanager:GetSecretValue": ("arn:aws:secretsmanager:*:*:secret:fleetform/argocd/clusters/*",),
    # AWS's public parameters have no account in their ARN (arn:aws:ssm:<region>::parameter/aws/service/...)
    "ssm:GetParameter": ("arn:aws:ssm:*::parameter/aws/service/*",),
}


def plan_read_actions(types: set[str] | None = None) -> list[str]:
    """The provider's read calls for ``types`` (default: every type fleetform emits), sorted and unique."""
    chosen = PROVIDER_READS if types is None else {t: PROVIDER_READS[t] for t in types}
    return sorted({action for actions in chosen.values() for action in actions})
