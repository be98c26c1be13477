"""Read-only checks before the first apply (``fleetform preflight``, docs/organization.md#first-apply).

Each account is reached the way the first apply reaches it -- the management account with the
caller's credentials, every other account through OrganizationAccountAccessRole assumed from
there -- and asked, one call each, what would make its first-apply stacks fail:

* ``access``: the first apply's way in works (sts:GetCallerIdentity, sts:AssumeRole);
* ``service-linked role``: AWSServiceRoleForConfig exists (iam:GetRole) exactly where
  ``organization.aws_config.existing_service_linked_role`` says so;
* ``autoscaling role``: in accounts with clusters, AWSServiceRoleForAutoScaling exists (iam:GetRole)
  exactly where ``organization.existing_autoscaling_service_linked_role`` says so (the baseline
  creates it elsewhere, and the slots' volume keys name it);
* ``config recorders``: no configuration recorder other than ``default`` in any allowed region
  (config:DescribeConfigurationRecorders), since Config allows one per region;
* ``organization``: the account is a member of the organization in ``organization.id``, managed
  by ``management_account_id`` (organizations:DescribeOrganization).

A check that cannot be made (access denied, an API error) is ``unknown`` with the reason; nothing
here raises for one account's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3

from fleetform.aws_session import AwsError, call
from fleetform.config.loader import ORGANIZATION_FILE
from fleetform.config.models import Account, FleetConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.naming import CONFIG_RECORDER, ORGANIZATION_ACCESS_ROLE, role_arn

OK = "ok"
ACTION = "action needed"
UNKNOWN = "unknown"
STATUS_ORDER = (OK, UNKNOWN, ACTION)  # a row shows its worst finding

ACCESS = "access"
SERVICE_LINKED_ROLE = "service-linked role"
RECORDERS = "config recorders"
ORGANIZATION = "organization"
AUTOSCALING_ROLE = "autoscaling role"
CHECKS = (ACCESS, SERVICE_LINKED_ROLE, AUTOSCALING_ROLE, RECORDERS, ORGANIZATION)

CONFIG_ROLE_NAME = "AWSServiceRoleForConfig"
SESSION_NAME = "fleetform-preflight"
SLR_FIELD = "organization.aws_config.existing_service_linked_role"
AUTOSCALING_ROLE_NAME = "AWSServiceRoleForAutoScaling"
AUTOSCALING_FIELD = "organization.existing_autoscaling_service_linked_role"
# what the command calls, for docs/organization.md and the operator's policy (all read-only)
PERMISSIONS = ("sts:GetCallerIdentity", f"sts:AssumeRole (on {ORGANIZATION_ACCESS_ROLE})", "iam:GetRole",
               "config:DescribeConfigurationRecorders", "organizations:DescribeOrganization",
               "organizations:ListAccounts")
NEW_ACCOUNT_ID = "(new)"

# (target account id, session, service, region) -> a boto3 client; tests wrap it to put a Stubber in
ClientFactory = Callable[[str, boto3.Session, str, str], Any]


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class AccountReport:
    name: str
    account_id: str
    via: str  # how the first apply reaches the account
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(f.status for f in self.findings)

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.name, "id": self.account_id, "via": self.via, "status": self.status,
                "checks": [f.as_dict() for f in self.findings]}


@dataclass(frozen=True)
class Fix:
    """YAML to paste into ``file`` so that the configuration matches the accounts."""

    file: str
    path: str
    yaml: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class PreflightResult:
    accounts: list[AccountReport]
    fixes: list[Fix]

    @property
    def counts(self) -> dict[str, int]:
        findings = [f for r in self.accounts for f in r.findings]
        return {status: sum(1 for f in findings if f.status == status) for status in STATUS_ORDER}

    @property
    def action_needed(self) -> bool:
        return any(r.status == ACTION for r in self.accounts)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.action_needed, "counts": self.counts,
                "accounts": [r.as_dict() for r in self.accounts], "fixes": [f.as_dict() for f in self.fixes]}


def worst(statuses: Iterator[str] | Sequence[str]) -> str:
    return max(statuses, key=STATUS_ORDER.index, default=OK)


def reason(exc: FleetformError) -> str:
    """A one-line reason for an answer AWS gave (or could not give), without the operation."""
    return exc.reason if isinstance(exc, AwsError) else str(exc)


def default_client(account_id: str, session: boto3.Session, service: str, region: str,
                   endpoint_url: str | None = None) -> Any:
    return session.client(service, region_name=region, endpoint_url=endpoint_url)


class Preflight:
    """The checks of every account in ``config`` (``run``), from the caller's ``session``."""

    def __init__(self, config: FleetConfig, session: boto3.Session, region: str | None = None,
                 endpoint_url: str | None = None, client: ClientFactory | None = None) -> None:
        self.config = config
        self.session = session
        self.region = region or config.organization.home_region
        self.endpoint_url = endpoint_url
        self.client: ClientFactory = client or (
            lambda account_id, sess, service, region: default_client(account_id, sess, service, region, endpoint_url))
        self.autoscaling_roles: dict[str, bool | None] = {}  # account name -> the role exists (None: unknown)

    # ------------------------------------------------------------------ reaching accounts
    def caller_account(self) -> str:
        """The caller's account id; no credentials at all is a usage error, not a finding."""
        if self.session.get_credentials() is None:
            raise UsageError("no AWS credentials: pass --profile (management-account administrator) or set "
                             "AWS_PROFILE / AWS_ACCESS_KEY_ID" + self.sandbox_hint())
        sts = self.client(self.config.organization.management_account_id, self.session, "sts", self.region)
        try:
            return call(sts.get_caller_identity)["Account"]
        except FleetformError as exc:
            raise FleetformError(f"cannot tell who the credentials belong to (sts:GetCallerIdentity): "
                                 f"{reason(exc)}") from None

    def sandbox_hint(self) -> str:
        """Where the sandbox's management-account keys are, when the endpoint is the sandbox."""
        from fleetform.sandbox.server import credentials_hint

        management = self.config.management
        return credentials_hint(self.endpoint_url, management.name if management else None)

    def reach(self, account: Account, caller: str) -> tuple[boto3.Session | None, Finding]:
        """The session the first apply would use in ``account``, and the ``access`` finding."""
        management = self.config.organization.management_account_id
        if account.id == management:
            if caller != management:
                return None, Finding(ACCESS, ACTION, f"the credentials are of account {caller}, not of the management "
                                                     f"account {management}: use management-account administrator "
                                                     "credentials (--profile), as the first apply does"
                                                     + self.sandbox_hint())
            return self.session, Finding(ACCESS, OK, "the caller's credentials (management account)")
        arn = role_arn(account.id, ORGANIZATION_ACCESS_ROLE)
        sts = self.client(account.id, self.session, "sts", self.region)
        try:
            creds = call(sts.assume_role, RoleArn=arn, RoleSessionName=SESSION_NAME)["Credentials"]
        except FleetformError as exc:
            return None, Finding(ACCESS, UNKNOWN, f"cannot assume {arn}: {reason(exc)}; the first apply goes "
                                                  "through this role")
        session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"], region_name=self.region)
        return session, Finding(ACCESS, OK, f"{ORGANIZATION_ACCESS_ROLE} from the management account")

    # ------------------------------------------------------------------ the checks
    def listed_role(self, account: Account, session: boto3.Session, check: str, role: str, field: str,
                    listed: bool, if_missing: str) -> tuple[Finding, bool | None]:
        """A service-linked role the baseline creates unless the account is in ``field``: the finding, and
        whether the role exists (None: unknown). Creating an existing one stops the apply; listing a
        missing one leaves what names it (``if_missing``) pointing nowhere."""
        iam = self.client(account.id, session, "iam", self.region)
        try:
            call(iam.get_role, RoleName=role)
            exists = True
        except FleetformError as exc:
            if not (isinstance(exc, AwsError) and exc.code == "NoSuchEntity"):
                return Finding(check, UNKNOWN, f"iam:GetRole {role}: {reason(exc)}"), None
            exists = False
        if exists and not listed:
            return Finding(check, ACTION, f"{role} exists but {account.name} is not in {field}: the baseline "
                                          "apply would stop with 'has been taken'"), True
        if listed and not exists:
            return Finding(check, ACTION, f"{account.name} is in {field} but {role} does not exist: "
                                          f"{if_missing}"), False
        return Finding(check, OK, "exists, listed (fleetform uses it)" if exists
                       else "absent, not listed (the baseline creates it)"), exists

    def service_linked_role(self, account: Account, session: boto3.Session) -> tuple[Finding, bool | None]:
        """AWS Config's service-linked role against the list: the finding, and whether it exists."""
        listed = account.name in self.config.organization.aws_config.existing_service_linked_role
        return self.listed_role(account, session, SERVICE_LINKED_ROLE, CONFIG_ROLE_NAME, SLR_FIELD, listed,
                                "the recorders would have no role")

    def autoscaling_role(self, account: Account, session: boto3.Session) -> Finding:
        """AWSServiceRoleForAutoScaling against the list, in accounts with clusters (the slots' volume keys
        name it)."""
        if not account.spec.clusters:
            return Finding(AUTOSCALING_ROLE, OK, "no clusters: fleetform neither creates nor names it")
        listed = account.name in self.config.organization.existing_autoscaling_service_linked_role
        finding, exists = self.listed_role(account, session, AUTOSCALING_ROLE, AUTOSCALING_ROLE_NAME,
                                           AUTOSCALING_FIELD, listed,
                                           "the slots' volume keys would name a missing role")
        self.autoscaling_roles[account.name] = exists
        return finding

    def recorders(self, account: Account, session: boto3.Session) -> Finding:
        """Recorders other than ``default`` in the allowed regions (one recorder per region)."""
        foreign: list[str] = []
        unknown: list[str] = []
        for region in self.config.organization.allowed_regions:
            config = self.client(account.id, session, "config", region)
            try:
                answer = call(config.describe_configuration_recorders)
            except FleetformError as exc:
                unknown.append(f"{region}: {reason(exc)}")
                continue
            names = [r["name"] for r in answer.get("ConfigurationRecorders", [])]
            foreign += [f"{name} in {region}" for name in names if name != CONFIG_RECORDER]
        if foreign:
            return Finding(RECORDERS, ACTION, f"recorder {', '.join(foreign)}: the baseline's '{CONFIG_RECORDER}' "
                                              "recorder would fail (MaxNumberOfConfigurationRecordersExceeded); "
                                              "delete it, or where Control Tower manages Config set "
                                              "organization.aws_config.enabled: false")
        if unknown:
            return Finding(RECORDERS, UNKNOWN, "; ".join(unknown))
        regions = ", ".join(self.config.organization.allowed_regions)
        return Finding(RECORDERS, OK, f"none but '{CONFIG_RECORDER}' in {regions}")

    def organization(self, account: Account, session: boto3.Session) -> tuple[Finding, str | None]:
        """The finding, and the organization id the account belongs to (None: unknown or none)."""
        org = self.config.organization
        client = self.client(account.id, session, "organizations", self.region)
        try:
            found = call(client.describe_organization)["Organization"]
        except FleetformError as exc:
            if isinstance(exc, AwsError) and exc.code == "AWSOrganizationsNotInUseException":
                return Finding(ORGANIZATION, ACTION, "not a member of any organization: invite it (or create it from "
                                                     "the management account) before the first apply"), None
            return Finding(ORGANIZATION, UNKNOWN, f"organizations:DescribeOrganization: {reason(exc)}"), None
        org_id, master = found.get("Id"), found.get("MasterAccountId")
        if master != org.management_account_id:
            return Finding(ORGANIZATION, ACTION, f"member of {org_id}, whose management account is {master}, not "
                                                 f"management_account_id {org.management_account_id}"), None
        if org.id is None:
            return Finding(ORGANIZATION, ACTION, f"organization.id is not set: the first apply would try to create "
                                                 f"an organization instead of adopting {org_id}"), org_id
        if org_id != org.id:
            return Finding(ORGANIZATION, ACTION, f"member of {org_id}, but organization.id is {org.id}"), org_id
        return Finding(ORGANIZATION, OK, f"member of {org_id}"), org_id

    # ------------------------------------------------------------------ the whole run
    def new_account(self, account: Account, caller: str) -> AccountReport:
        """A new account (no id): nothing to reach yet; its email must be free in the organization, or
        CreateAccount fails (an account with that email exists: adopt it with its id and adopt: true)."""
        report = AccountReport(account.name, NEW_ACCOUNT_ID, "created by the organization stack")
        report.findings.append(Finding(ACCESS, OK, "new account: the organization stack creates it, with "
                                                   f"{ORGANIZATION_ACCESS_ROLE} for its first baseline apply"))
        report.findings += [Finding(check, OK, "new account: made by the baseline") for check in
                            (SERVICE_LINKED_ROLE, AUTOSCALING_ROLE, RECORDERS)]
        email = account.spec.account.email.lower()
        if caller != self.config.organization.management_account_id:
            report.findings.append(Finding(ORGANIZATION, UNKNOWN, f"not checked: the credentials are of account "
                                                                  f"{caller}, not of the management account"))
            return report
        client = self.client(caller, self.session, "organizations", self.region)
        members: list[dict[str, Any]] = []
        token: dict[str, str] = {}
        try:
            while True:
                page = call(client.list_accounts, **token)
                members += page.get("Accounts", [])
                if not page.get("NextToken"):
                    break
                token = {"NextToken": page["NextToken"]}
        except FleetformError as exc:
            return _with(report, Finding(ORGANIZATION, UNKNOWN, f"organizations:ListAccounts: {reason(exc)}"))
        taken = next((a for a in members if str(a.get("Email", "")).lower() == email), None)
        if taken is not None:
            return _with(report, Finding(ORGANIZATION, ACTION, (
                f"{account.file}: account.email {email} is already used by account {taken.get('Id')} "
                f"({taken.get('Name')}) of the organization: CreateAccount would fail. Adopt that account "
                f"(account.id: \"{taken.get('Id')}\" and adopt: true) or choose another email")))
        return _with(report, Finding(ORGANIZATION, OK, f"email {email} is free in the organization "
                                                       f"({len(members)} accounts)"))

    def check(self, account: Account, caller: str) -> tuple[AccountReport, bool | None, str | None]:
        if account.is_new:
            return self.new_account(account, caller), None, None
        via = ("the caller's credentials" if account.id == self.config.organization.management_account_id
               else ORGANIZATION_ACCESS_ROLE)
        report = AccountReport(account.name, account.id, via)
        session, access = self.reach(account, caller)
        report.findings.append(access)
        if session is None:
            report.findings += [Finding(check, UNKNOWN, f"not checked: {access.check} is {access.status}")
                                for check in CHECKS[1:]]
            return report, None, None
        role_exists: bool | None = None
        if self.config.organization.aws_config.enabled:
            slr, role_exists = self.service_linked_role(account, session)
            report.findings += [slr, self.recorders(account, session)]
        else:
            off = "AWS Config is off (organization.aws_config.enabled: false)"
            report.findings += [Finding(SERVICE_LINKED_ROLE, OK, off), Finding(RECORDERS, OK, off)]
        report.findings.insert(2, self.autoscaling_role(account, session))
        finding, org_id = self.organization(account, session)
        report.findings.append(finding)
        return report, role_exists, org_id

    def run(self, progress: Callable[[Account], None] | None = None) -> PreflightResult:
        caller = self.caller_account()
        reports: list[AccountReport] = []
        roles: dict[str, bool | None] = {}
        org_ids: set[str] = set()
        for account in self.config.accounts:
            report, roles[account.name], org_id = self.check(account, caller)
            reports.append(report)
            if org_id:
                org_ids.add(org_id)
            if progress is not None:
                progress(account)
        return PreflightResult(reports, self.fixes(reports, roles, org_ids))

    def fixes(self, reports: list[AccountReport], roles: dict[str, bool | None], org_ids: set[str]) -> list[Fix]:
        org = self.config.organization
        file = f"{self.config.directory}/{ORGANIZATION_FILE}"
        fixes: list[Fix] = []
        if any(status(r, SERVICE_LINKED_ROLE) == ACTION for r in reports):
            fixes.append(Fix(file, SLR_FIELD, service_linked_role_yaml(self.config, roles)))
        if any(status(r, AUTOSCALING_ROLE) == ACTION for r in reports):
            fixes.append(Fix(file, AUTOSCALING_FIELD, autoscaling_role_yaml(self.config, self.autoscaling_roles)))
        # org_ids: the organizations managed by management_account_id that the accounts are in
        if len(org_ids) == 1 and org.id not in org_ids:
            fixes.append(Fix(file, "organization.id", f"organization:\n  id: {next(iter(org_ids))}\n"))
        return fixes


def _with(report: AccountReport, finding: Finding) -> AccountReport:
    report.findings.append(finding)
    return report


def status(report: AccountReport, check: str) -> str | None:
    finding = report.finding(check)
    return finding.status if finding else None


def service_linked_role_yaml(config: FleetConfig, roles: dict[str, bool | None]) -> str:
    """The whole list as it should be: accounts where the role exists, plus listed ones that could
    not be checked (kept as they are), in the order of the account files."""
    listed = set(config.organization.aws_config.existing_service_linked_role)
    names = [a.name for a in config.accounts if roles.get(a.name) or (roles.get(a.name) is None and a.name in listed)]
    return f"organization:\n  aws_config:\n    existing_service_linked_role: [{', '.join(names)}]\n"


def autoscaling_role_yaml(config: FleetConfig, roles: dict[str, bool | None]) -> str:
    """The list as it should be: accounts with clusters where the role exists, plus listed ones that could
    not be checked (kept as they are), in the order of the account files."""
    listed = set(config.organization.existing_autoscaling_service_linked_role)
    names = [a.name for a in config.accounts
             if roles.get(a.name) or (roles.get(a.name) is None and a.name in listed)]
    return f"organization:\n  existing_autoscaling_service_linked_role: [{', '.join(names)}]\n"
