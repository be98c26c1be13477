"""AWS Config: a configuration recorder in every account and allowed region (the account baseline),
delivering to one KMS-encrypted bucket in the log-archive account, with an organization
aggregator there (the organization stack). docs/organization.md#aws-config has the why.

Both sides derive the bucket name and the key's alias ARN from ``fleetform.naming``, so a baseline
needs no cross-stack reference to the organization stack (it only has to be applied after it).
Config delivers as its service principal (the service-linked role has no access to the bucket or
the key), so the bucket and key policies name ``config.amazonaws.com`` and the organization's
accounts (``aws:SourceAccount``), nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.engine import Construct, Dependable, Resource, policy_json
from fleetform.naming import (
    CONFIG_AGGREGATOR_ROLE,
    CONFIG_DELIVERY_CHANNEL,
    CONFIG_RECORDER,
    CONFIG_SERVICE,
    config_bucket,
    config_key_alias,
    config_service_linked_role_arn,
)

DEFAULT_SNAPSHOT_FREQUENCY = "TwentyFour_Hours"
CONFIG_LOG_TRANSITION_DAYS = 90  # then STANDARD_IA, as the trail's logs
AGGREGATOR_POLICY = "arn:aws:iam::aws:policy/service-role/AWSConfigRoleForOrganizations"
# delegated administration in the log-archive account: the aggregator (config) and organization
# rules and conformance packs (config-multiaccountsetup)
DELEGATED_SERVICES = (CONFIG_SERVICE, "config-multiaccountsetup.amazonaws.com")
# the global resource types that include_global_resource_types switches on (home region only)
GLOBAL_IAM_TYPES = frozenset({"AWS::IAM::User", "AWS::IAM::Group", "AWS::IAM::Role", "AWS::IAM::Policy"})
DAILY_OVERRIDE_DESCRIPTION = "fleetform: organization.aws_config.daily_recording"
GLOBAL_TYPES_ONCE = ("global resource types (IAM users, roles, groups, policies) are recorded once per account, "
                     "by the home region's recorder; recording them in every region duplicates each item and "
                     "its cost")


@dataclass(frozen=True)
class ConfigRecorderProps:
    account_id: str
    regions: Sequence[str]  # a recorder, a delivery channel and a recorder status in each
    home_region: str  # the only region that records global resource types
    bucket: str  # naming.config_bucket(...)
    kms_key_arn: str  # naming.config_key_alias_arn(...): Config accepts an alias ARN
    snapshot_frequency: str = DEFAULT_SNAPSHOT_FREQUENCY
    create_service_linked_role: bool = True  # False: AWSServiceRoleForConfig exists; use it, never own it
    daily_recording: Sequence[str] = ()  # resource types recorded daily; everything else continuously


class ConfigRecorders(Construct):
    """One account's recorders. Attributes: ``recorders``, ``channels``, ``statuses`` (region ->
    resource), ``service_linked_role`` (None where the account already had one)."""

    def __init__(self, scope: Construct, id: str, props: ConfigRecorderProps) -> None:
        super().__init__(scope, id)
        if props.home_region not in props.regions:
            raise ValueError(f"home region {props.home_region} is not among the recorder regions {list(props.regions)}")
        self.service_linked_role = Resource(
            self, "service-linked-role", "aws_iam_service_linked_role", aws_service_name=CONFIG_SERVICE,
            description="AWS Config configuration recorders (fleetform baseline)",
        ) if props.create_service_linked_role else None
        # the ARN, not the resource's attribute: the same whether fleetform created the role or found it
        role_arn = config_service_linked_role_arn(props.account_id)
        role = [self.service_linked_role] if self.service_linked_role is not None else []
        self.recorders: dict[str, Resource] = {}
        self.channels: dict[str, Resource] = {}
        self.statuses: dict[str, Resource] = {}
        for region in props.regions:
            home = region == props.home_region
            recorder = Resource(
                self, f"recorder-{region}", "aws_config_configuration_recorder", region=region,
                name=CONFIG_RECORDER, role_arn=role_arn,
                recording_group=[{"all_supported": True, "include_global_resource_types": home}],
                recording_mode=[recording_mode(props.daily_recording, global_types=home)],
                depends_on=role or None, skip_checks=None if home else {"CKV2_AWS_48": GLOBAL_TYPES_ONCE})
            # a delivery channel needs its region's recorder; recording starts once both exist
            channel = Resource(
                self, f"delivery-channel-{region}", "aws_config_delivery_channel", region=region,
                name=CONFIG_DELIVERY_CHANNEL, s3_bucket_name=props.bucket, s3_kms_key_arn=props.kms_key_arn,
                snapshot_delivery_properties=[{"delivery_frequency": props.snapshot_frequency}],
                depends_on=[recorder])
            self.statuses[region] = Resource(
                self, f"recorder-status-{region}", "aws_config_configuration_recorder_status", region=region,
                name=recorder.attr("name"), is_enabled=True, depends_on=[channel])
            self.recorders[region], self.channels[region] = recorder, channel


def recording_mode(daily_recording: Sequence[str], *, global_types: bool) -> dict:
    """Continuous recording, with the ``daily_recording`` types overridden to DAILY (at most one
    configuration item per resource a day). ``global_types``: the recorder records the global IAM
    types; where it does not, they are left out of the override (nothing there to record daily)."""
    types = sorted({t for t in daily_recording if global_types or t not in GLOBAL_IAM_TYPES})
    mode: dict = {"recording_frequency": "CONTINUOUS"}
    if types:
        mode["recording_mode_override"] = [{"description": DAILY_OVERRIDE_DESCRIPTION, "recording_frequency": "DAILY",
                                            "resource_types": types}]
    return mode


@dataclass(frozen=True)
class ConfigArchiveProps:
    organization_name: str
    log_archive_account_id: str
    home_region: str  # where the bucket, its key and the aggregator are (the log-archive provider's region)
    regions: Sequence[str]  # the aggregator collects from these
    account_ids: Sequence[str]  # every account whose recorders deliver to the bucket

    @property
    def bucket(self) -> str:
        return config_bucket(self.organization_name, self.log_archive_account_id)

    @property
    def sources(self) -> list[str]:
        return sorted(set(self.account_ids))


class ConfigArchive(Construct):
    """The log-archive side: the bucket, its key, the aggregator and its role. Put it under a scope
    whose resources use the log-archive provider. Attributes: ``key``, ``bucket``, ``aggregator``."""

    def __init__(self, scope: Construct, id: str, props: ConfigArchiveProps, *, access_log_bucket: str,
                 delegations: Sequence[Dependable], access_log_ready: Sequence[Dependable] = ()) -> None:
        super().__init__(scope, id)
        self.key = KmsKey(self, "key", KmsKeyProps(
            alias=config_key_alias(props.organization_name), description="AWS Config deliveries of the organization",
            account_id=props.log_archive_account_id, extra_statements=[key_statement(props)]))
        self.bucket = SecureBucket(self, "bucket", BucketProps(
            name=props.bucket,
            kms_key_arn=self.key.arn,
            policy_statements=bucket_statements(props),
            noncurrent_days=365,
            transition_days=CONFIG_LOG_TRANSITION_DAYS,
            access_log_bucket=access_log_bucket,
            access_log_ready=access_log_ready,
            prevent_destroy=True,
        ))
        role = Resource(
            self, "aggregator-role", "aws_iam_role", name=CONFIG_AGGREGATOR_ROLE,
            description="fleetform: the AWS Config organization aggregator reads the organization's accounts",
            assume_role_policy=policy_json([{
                "Sid": "ConfigAggregator", "Effect": "Allow", "Principal": {"Service": CONFIG_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": props.log_archive_account_id}},
            }]))
        attachment = Resource(self, "aggregator-policy", "aws_iam_role_policy_attachment", role=role.id_ref,
                              policy_arn=AGGREGATOR_POLICY)
        self.aggregator = Resource(
            self, "aggregator", "aws_config_configuration_aggregator", region=props.home_region,
            name=f"{props.organization_name}-organization",
            organization_aggregation_source=[{"role_arn": role.arn, "regions": list(props.regions)}],
            depends_on=[*delegations, attachment],
            skip_checks={"CKV_AWS_121": "the region SCP denies every region outside allowed_regions; the "
                                        "aggregator collects exactly those, as the recorders do"})


def config_delegations(scope: Construct, log_archive_account_id: str, organization: Dependable) -> list[Resource]:
    """The management account's part: log-archive as delegated administrator for AWS Config (the
    organization's trusted access for both principals is in ``constructs.organization``)."""
    return [Resource(scope, f"config-admin-{service.split('.')[0]}", "aws_organizations_delegated_administrator",
                     account_id=log_archive_account_id, service_principal=service, depends_on=[organization])
            for service in DELEGATED_SERVICES]


def key_statement(props: ConfigArchiveProps) -> dict:
    """Config encrypts deliveries with the key, for the organization's accounts only."""
    return {"Sid": "ConfigEncryptsDeliveries", "Effect": "Allow", "Principal": {"Service": CONFIG_SERVICE},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": props.sources}}}


def bucket_statements(props: ConfigArchiveProps) -> list[dict]:
    """Config (the service principal) checks the bucket and writes under ``AWSLogs/<account>/Config/``,
    for the organization's accounts only."""
    bucket = f"arn:aws:s3:::{props.bucket}"
    sources = {"aws:SourceAccount": props.sources}
    principal = {"Service": CONFIG_SERVICE}
    return [
        {"Sid": "ConfigChecksBucketAcl", "Effect": "Allow", "Principal": principal, "Action": "s3:GetBucketAcl",
         "Resource": bucket, "Condition": {"StringEquals": sources}},
        {"Sid": "ConfigChecksBucketExists", "Effect": "Allow", "Principal": principal, "Action": "s3:ListBucket",
         "Resource": bucket, "Condition": {"StringEquals": sources}},
        {"Sid": "ConfigDelivers", "Effect": "Allow", "Principal": principal, "Action": "s3:PutObject",
         "Resource": [f"{bucket}/AWSLogs/{account}/Config/*" for account in props.sources],
         "Condition": {"StringEquals": {**sources, "s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]
