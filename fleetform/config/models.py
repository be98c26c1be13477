"""Strict typed models of the accounts/ configuration (DESIGN section 3).

Every model forbids unknown keys; the loader turns pydantic's errors into messages that
name the file and the field path. Checks that need more than one field or more than one
file live in ``fleetform.config.checks``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from fleetform.config.endpoints import INTERFACE_ENDPOINTS, unknown_service_message
from fleetform.config.network import ZONE_ID, zones
from fleetform.naming import ADDONS_AFTER_NODES, ADDONS_BEFORE_NODES

ACCOUNT_ID = r"^\d{12}$"
K8S_VERSION = r"^1\.\d{2}$"
NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")

SLOT_NAMES = ("blue", "green")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError(f"{value!r} is not a valid email address")
    return value


Email = Annotated[str, AfterValidator(_check_email)]


def _check_endpoint_service(value: str) -> str:
    message = unknown_service_message(value)
    if message is not None:
        raise ValueError(message)
    return value


EndpointService = Annotated[str, AfterValidator(_check_endpoint_service)]


# ---------------------------------------------------------------- organization.yaml


class StateConfig(Strict):
    """Where every stack's Terraform state lives (the bootstrap stack creates the bucket)."""

    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    region: str


class ScpConfig(Strict):
    """An extra service control policy: ``library`` names one of fleetform's, ``file`` a JSON file."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")]
    library: str | None = None
    file: str | None = None
    targets: list[str] = Field(default_factory=list, description="OU paths (or 'Root')")

    @model_validator(mode="after")
    def _one_source(self) -> ScpConfig:
        if (self.library is None) == (self.file is None):
            raise ValueError("give exactly one of 'library' or 'file'")
        return self


class PipelineConfig(Strict):
    """The CodeBuild plan/apply pipeline (plan on pull request, apply on merge)."""

    account: str = Field("management", description="account (by name) that hosts the pipeline")
    repository: str = Field("familyalbum/infrastructure", pattern=r"^[\w.-]+/[\w.-]+$")
    branch: str = "main"
    drift_schedule: str = "cron(0 21 * * ? *)"
    notification_email: Email | None = None
    allow_destroy_label: str = "allow-destroy"
    github_token_secret: str = "fleetform/github-token"
    protected_types: list[str] = Field(
        default_factory=list, description="resource types whose destroy needs the allow-destroy label, "
        "in addition to fleetform's list (accounts, buckets, EKS clusters, KMS keys, zones, ...)")
    plan_shards: Annotated[int, Field(ge=1, le=16)] = 4


SnapshotFrequency = Literal["One_Hour", "Three_Hours", "Six_Hours", "Twelve_Hours", "TwentyFour_Hours"]
# AWS Config resource type names: AWS::<Service>::<Type>, both parts starting upper case (every type in the
# Config API's ResourceType list has this form; names are case-sensitive)
CONFIG_RESOURCE_TYPE = re.compile(r"^AWS::[A-Z][A-Za-z0-9]*::[A-Z][A-Za-z0-9]*$")
# the types AWS Config refuses to record daily (RecordingModeOverride in the Config API reference)
CONTINUOUS_ONLY_TYPES = frozenset(
    {"AWS::Config::ResourceCompliance", "AWS::Config::ConformancePackCompliance", "AWS::Config::ConfigurationRecorder"})
# recorded daily unless organization.aws_config.daily_recording says otherwise: the types that node churn
# (spot, Karpenter, the VPC CNI's IP assignments) changes many times a day; docs/organization.md has the why
DAILY_RECORDING_DEFAULT = ("AWS::EC2::Instance", "AWS::EC2::NetworkInterface", "AWS::EC2::Volume")


def _check_config_resource_type(value: str) -> str:
    if not CONFIG_RESOURCE_TYPE.match(value):
        raise ValueError(f"{value!r} is not an AWS Config resource type of the form AWS::Service::Type "
                         "(case-sensitive, e.g. AWS::EC2::NetworkInterface)")
    if value in CONTINUOUS_ONLY_TYPES:
        raise ValueError(f"AWS Config records {value} only continuously; remove it from the list")
    return value


ConfigResourceType = Annotated[str, AfterValidator(_check_config_resource_type)]


class AwsConfigConfig(Strict):
    """AWS Config in every account and allowed region, into one bucket in the log-archive account,
    with an organization aggregator there (docs/organization.md#aws-config)."""

    enabled: bool = Field(True, description="false removes the recorders, the bucket, the key and the aggregator")
    snapshot_frequency: SnapshotFrequency = Field(
        "TwentyFour_Hours", description="how often each recorder delivers a configuration snapshot to the bucket")
    existing_service_linked_role: list[str] = Field(
        default_factory=list, description="accounts (by name) that already have AWSServiceRoleForConfig: "
        "fleetform uses that role there and never creates or deletes it")
    daily_recording: list[ConfigResourceType] = Field(
        default_factory=lambda: list(DAILY_RECORDING_DEFAULT), description="resource types recorded at most once "
        "a day (their changes within a day collapse into one configuration item) instead of continuously; "
        "[] records everything continuously")


class OrganizationConfig(Strict):
    name: Annotated[str, Field(pattern=NAME)]
    home_region: str
    allowed_regions: list[str] = Field(min_length=1)
    management_account_id: Annotated[str, Field(pattern=ACCOUNT_ID)]
    id: Annotated[str, Field(pattern=r"^o-[a-z0-9]{10,32}$")] | None = Field(
        None, description="id of an existing organization, adopted by the organization stack (import)"
    )
    organizational_units: list[str] = Field(default_factory=list)
    state: StateConfig
    log_archive_account: str = Field("log-archive", description="account that keeps audit logs")
    break_glass_principal: str | None = Field(
        None, description="IAM principal ARN that may also assume the fleetform roles"
    )
    scps: list[ScpConfig] = Field(default_factory=list)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    aws_config: AwsConfigConfig = Field(default_factory=AwsConfigConfig)
    existing_autoscaling_service_linked_role: list[str] = Field(
        default_factory=list, description="accounts (by name) with clusters that already have "
        "AWSServiceRoleForAutoScaling (they ever had an Auto Scaling group): fleetform uses that role there and "
        "never creates or deletes it; elsewhere the account's baseline creates it before any volume key names it")

    @field_validator("organizational_units")
    @classmethod
    def _ou_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9 _-]*(/[A-Za-z0-9][A-Za-z0-9 _-]*)*$", path):
                raise ValueError(f"{path!r} is not an OU path like 'Workloads/Prod'")
        if len(set(value)) != len(value):
            raise ValueError("OU paths must be unique")
        return value

    @property
    def ou_tree(self) -> list[str]:
        """Every OU path including implied parents, parents first."""
        paths: set[str] = set()
        for path in self.organizational_units:
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                paths.add("/".join(parts[:i]))
        return sorted(paths, key=lambda p: (p.count("/"), p))


# ---------------------------------------------------------------- <account>.yaml


class AccountInfo(Strict):
    name: Annotated[str, Field(pattern=NAME)]
    id: Annotated[str, Field(pattern=ACCOUNT_ID)] | None = Field(
        None, description="the account's id; none for a new account, which the organization stack creates "
        "(its stacks then read the id from the organization stack's state); writing it later changes nothing")
    email: Email
    ou: str | None = Field(None, description="OU path; none only for the management account")
    region: str | None = Field(None, description="defaults to the organization's home_region")
    adopt: StrictBool = Field(
        False, description="the account (with this id) exists outside fleetform: the organization stack "
        "imports it (an import block, no CreateAccount); run `fleetform preflight` first")
    closed: StrictBool = Field(
        False, description="the account is leaving: the organization stack sets close_on_deletion and drops "
        "prevent_destroy, so removing the file afterwards closes it (a protected destroy: the pipeline applies "
        "it only with the allow-destroy label); without this, removing an account file is refused")

    @model_validator(mode="after")
    def _adopt_needs_id(self) -> AccountInfo:
        if self.adopt and self.id is None:
            raise ValueError("adopt: true needs the existing account's id (account.id); without an id the "
                             "organization stack creates a new account")
        return self


class BudgetConfig(Strict):
    monthly_usd: Annotated[int, Field(gt=0)]
    alert_email: Email
    threshold_percent: Annotated[int, Field(gt=0, le=1000)] = 80


class NetworkConfig(Strict):
    cidr: str
    azs: Annotated[int, Field(ge=1, le=4)] | list[str | None] = Field(
        3, description="AZ IDs, the n-th entry being AZ n (null keeps a removed zone's number), e.g. "
        "[apne1-az1, apne1-az2, apne1-az4]; or a count: the region's first zones by name (older form)")
    nat: Literal["per-az", "single", "none"] = "per-az"
    flow_log_retention_days: Annotated[int, Field(ge=365)] = Field(
        365, description="days; at least a year, rounded up to a retention CloudWatch Logs accepts")
    interface_endpoints: list[EndpointService] = Field(
        default_factory=lambda: list(INTERFACE_ENDPOINTS),
        description="services that get an interface endpoint in the private subnets; default: all of "
        "fleetform's; [] for none (S3 and DynamoDB gateway endpoints are always there)")

    @field_validator("azs")
    @classmethod
    def _zone_ids(cls, value: int | list[str | None]) -> int | list[str | None]:
        if isinstance(value, int):
            return value
        for zone in value:
            if zone is not None and not ZONE_ID.match(zone):
                raise ValueError(f"{zone!r} is not an AZ ID like 'apne1-az1' (aws ec2 describe-availability-zones "
                                 "shows each zone's ZoneId)")
        repeated = sorted({z for z in value if z is not None and value.count(z) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        if value and value[-1] is None:
            raise ValueError("a null entry keeps a removed zone's number for the zones after it; drop trailing nulls")
        return value

    @property
    def az_count(self) -> int:
        return len(zones(self.azs))

    @field_validator("interface_endpoints")
    @classmethod
    def _unique_endpoints(cls, value: list[str]) -> list[str]:
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value


class DnsConfig(Strict):
    zone: Annotated[str, Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")]
    dnssec: StrictBool = Field(
        False, description="sign the zone with DNSSEC (KMS key in us-east-1, key-signing key, alarms); the DS "
        "record goes to the parent afterwards, by hand, in the order of docs/clusters.md#dnssec")


class SlotConfig(Strict):
    version: Annotated[str, Field(pattern=K8S_VERSION)]
    weight: Annotated[int, Field(ge=0, le=255)] | None = Field(
        None, description="initial Route 53 weight; afterwards the upgrade runbook owns it"
    )
    ami_releases: dict[str, Annotated[str, Field(pattern=r"^[0-9][0-9A-Za-z.+-]*$")]] = Field(
        default_factory=dict, description="AMI type -> EKS optimized AMI release the slot's node groups of that "
        "type stay on (e.g. AL2023_x86_64_STANDARD: 1.34.2-20251120); unpinned: the newest release in AWS's "
        "public SSM parameter, so a new release shows in the next plan as a rolling update")
    addon_versions: dict[str, Annotated[str, Field(pattern=r"^v[0-9][0-9A-Za-z.+-]*$")]] = Field(
        default_factory=dict, description="add-on -> version the slot stays on (e.g. coredns: v1.12.1-eksbuild.2); "
        "unpinned: the newest version EKS publishes for the slot's Kubernetes version")

    @field_validator("addon_versions")
    @classmethod
    def _known_addons(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES))
        if unknown:
            raise ValueError(f"fleetform installs no add-on {', '.join(map(repr, unknown))}; it installs "
                             f"{', '.join(ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES)}")
        return value


class Taint(Strict):
    key: str
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class NodeGroupConfig(Strict):
    instance_types: list[str] = Field(min_length=1)
    min: Annotated[int, Field(ge=0)]
    max: Annotated[int, Field(ge=1)]
    desired: Annotated[int, Field(ge=0)] | None = Field(
        None, description="fixed desired size; by default the autoscaler owns it"
    )
    capacity: Literal["on-demand", "spot"] = "on-demand"
    gpu: bool = False
    ami_type: str | None = None
    disk_size_gb: Annotated[int, Field(ge=20, le=16384)] = 50
    max_unavailable: Annotated[int, Field(ge=1)] | None = Field(
        None, description="nodes replaced at a time in a rolling update; default: max_unavailable_percentage")
    max_unavailable_percentage: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="share of the nodes replaced at a time in a rolling update; default 33")
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    @field_validator("instance_types")
    @classmethod
    def _instance_type_shape(cls, value: list[str]) -> list[str]:
        for t in value:
            if not re.match(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", t):
                raise ValueError(f"{t!r} is not an EC2 instance type like 'm7i.large'")
        if len(set(value)) != len(value):
            raise ValueError("instance types must be unique")
        return value


class UpgradeConfig(Strict):
    """Guard rails for the blue/green runbook (cluster-upgrade)."""

    alarms: list[str] = Field(default_factory=list, description="CloudWatch alarms that must be OK")
    error_rate_margin: Annotated[float, Field(ge=0)] = 0.01
    latency_margin_ms: Annotated[float, Field(ge=0)] = 50.0
    soak_minutes: Annotated[int, Field(ge=0)] = 1440
    smoke_paths: list[str] = Field(default_factory=list)
    metrics_window_minutes: Annotated[int, Field(ge=1, le=60)] = Field(
        5, description="gates compare green and blue over this many recent minutes"
    )
    retire_max_requests: Annotated[int, Field(ge=0)] = Field(
        0, description="retire only if the old slot served at most this many requests in the window"
    )
    state_bucket: str | None = Field(
        None, description="S3 bucket for run state records, locks and audit trail; default: local .fleetform/upgrades/"
    )


class ClusterConfig(Strict):
    role: Literal["service", "ops"] = "service"
    hostname: str | None = None
    slots: dict[str, SlotConfig] = Field(min_length=1)
    node_groups: dict[str, NodeGroupConfig] = Field(default_factory=dict)
    public_access_cidrs: list[str] = Field(
        default_factory=list, description="public endpoint only for these CIDRs; empty = private only"
    )
    admins: list[str] = Field(default_factory=list, description="IAM role ARNs with cluster admin")
    autoscaler: Literal["karpenter", "cluster-autoscaler"] = "karpenter"
    deletion_protection: bool | None = Field(None, description="default: on in Prod OUs")
    support_type: Literal["STANDARD", "EXTENDED"] = Field(
        "STANDARD", description="EKS upgrade policy: STANDARD (auto-upgrade at end of support) or EXTENDED"
    )
    upgrade: UpgradeConfig = Field(default_factory=UpgradeConfig)

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, value: dict[str, SlotConfig]) -> dict[str, SlotConfig]:
        bad = [k for k in value if k not in SLOT_NAMES]
        if bad:
            raise ValueError(f"slot names must be blue or green, not {', '.join(map(repr, bad))}")
        return value


class BastionConfig(Strict):
    instance_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = "t3.small"
    session_log_retention_days: Annotated[int, Field(ge=365)] = Field(
        365, description="days every session recording is kept (S3 and CloudWatch); at least a year"
    )
    idle_timeout_minutes: Annotated[int, Field(ge=1, le=60)] = 20
    max_session_minutes: Annotated[int, Field(ge=1, le=1440)] = 480
    run_as_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,30}$")] = Field(
        "bastion", description="OS user of sessions unless the principal has an SSMSessionRunAs tag"
    )
    root_volume_gb: Annotated[int, Field(ge=8, le=1024)] = 20
    max_instance_lifetime_days: Annotated[int, Field(ge=0, le=365)] = Field(
        7, description="replace the bastion this often so it runs the current AMI; 0 = never"
    )
    access_policy: str = "AmazonEKSClusterAdminPolicy"
    developer_roles: list[str] = Field(
        default_factory=list, description="role ARNs granted view/edit (no exec) on the clusters"
    )


class AccountFile(Strict):
    account: AccountInfo
    budget: BudgetConfig | None = None
    network: NetworkConfig | None = None
    dns: DnsConfig | None = None
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    bastion: BastionConfig | None = None


class OrganizationFile(Strict):
    organization: OrganizationConfig


# ---------------------------------------------------------------- the loaded whole


class Account(BaseModel):
    """An account file plus where it came from."""

    model_config = ConfigDict(frozen=True)

    file: str
    spec: AccountFile

    @property
    def name(self) -> str:
        return self.spec.account.name

    @property
    def id(self) -> str | None:
        """The id written in the file; None for a new account (use FleetApp.account_id in stacks)."""
        return self.spec.account.id

    @property
    def is_new(self) -> bool:
        """No id in the file: the organization stack creates (or has created) the account."""
        return self.spec.account.id is None


class FleetConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    directory: str
    organization: OrganizationConfig
    accounts: list[Account]

    def account(self, name: str) -> Account:
        for acct in self.accounts:
            if acct.name == name:
                return acct
        raise KeyError(name)

    def region_of(self, account: Account) -> str:
        return account.spec.account.region or self.organization.home_region

    @property
    def bastion_ous(self) -> list[str]:
        """The OU paths of the accounts that have a bastion (the management account has none: no OU)."""
        return sorted({a.spec.account.ou for a in self.accounts if a.spec.bastion is not None and a.spec.account.ou})

    @property
    def management(self) -> Account | None:
        for acct in self.accounts:
            if acct.id == self.organization.management_account_id:
                return acct
        return None
