"""The sandbox's organization, per-account credentials and bastions: what ``fleetform preflight`` and
``fleetform bastion`` need, which (unlike the runbook) check whose credentials they hold.

Everything else the sandbox seeds lives in moto's default account (``SANDBOX_ACCOUNT_ID``); this part
uses the ids accounts/ gives, through moto's multi-account support (the account of a request is the
one its access key belongs to; sts:AssumeRole into another account's role gives that account's keys):

* the organization, created by the management account (organizations:CreateOrganization), with the
  accounts that have an id (organizations:CreateAccount, which also makes their
  OrganizationAccountAccessRole). moto invents organization and account ids and has no
  InviteAccountToOrganization/AcceptHandshake, so while they are created moto's id generators give
  the ids of accounts/ (``configured_id``): the organization the example adopts, as it exists.
  Accounts without an id are not created: preflight checks that their email is free;
* an IAM user with an access key in each of those accounts (``sandbox-<account>`` profiles in
  ``<state dir>/credentials``), as an administrator of that account would hold;
* in each account with a ``bastion:`` section, the bastion as its stack makes it: a launch template
  and an autoscaling group of one (tags Name=fleetform-bastion, fleetform:account, propagated at
  launch), in the account's default VPC (the sandbox's VPCs are in moto's default account).

moto has no Session Manager sessions (ssm:StartSession) nor instance inventory
(ssm:DescribeInstanceInformation): ``bastion connect`` says so against the sandbox and prints the
command instead of starting it.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from fleetform.config.models import FleetConfig
from fleetform.naming import BASTION_NAME_TAG, ORGANIZATION_ACCESS_ROLE, role_arn
from fleetform.sandbox.server import CREDENTIALS_FILE, profile_name

ADMIN_USER = "fleetform-sandbox-admin"
ADMIN_POLICY = json.dumps({"Version": "2012-10-17",
                           "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@contextlib.contextmanager
def configured_id(generator: str, value: str) -> Iterator[None]:
    """moto's ``generator`` (make_random_org_id, make_random_account_id) gives ``value`` meanwhile (in
    moto's process); the call made meanwhile must create exactly that one organization or account."""
    from moto.organizations import utils

    original = getattr(utils, generator)
    setattr(utils, generator, lambda: value)
    try:
        yield
    finally:
        setattr(utils, generator, original)


def seed_accounts(endpoint: str, config: FleetConfig, state_dir: str | Path,
                  base: boto3.Session | None = None) -> dict[str, Any]:
    """Create the organization, per-account keys and bastions; write the credentials file.
    Returns what was made (for the sandbox's record)."""
    base = base or boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    org = config.organization
    home = org.home_region
    management = org.management_account_id
    mgmt = _assumed(base, endpoint, home, role_arn(management, ORGANIZATION_ACCESS_ROLE))
    members = [a for a in config.accounts if a.id and a.id != management]
    organizations = mgmt.client("organizations", region_name=home, endpoint_url=endpoint)
    with configured_id("make_random_org_id", org.id) if org.id else contextlib.nullcontext():
        found = organizations.create_organization(FeatureSet="ALL")["Organization"]
    for account in members:
        assert account.id is not None
        with configured_id("make_random_account_id", account.id):
            made = organizations.create_account(AccountName=account.name, Email=account.spec.account.email)
        if made["CreateAccountStatus"].get("AccountId") != account.id:
            raise RuntimeError(f"moto created {account.name} as {made['CreateAccountStatus'].get('AccountId')}, "
                               f"not {account.id}")
    keys: dict[str, tuple[str, str]] = {}
    for account in config.accounts:
        if not account.id:
            continue
        session = mgmt if account.id == management else _assumed(
            mgmt, endpoint, home, role_arn(account.id, ORGANIZATION_ACCESS_ROLE))
        keys[account.name] = _admin_keys(session, endpoint, home)
    path = write_credentials(Path(state_dir) / CREDENTIALS_FILE, keys)
    bastions: dict[str, str] = {}
    for account in config.accounts:
        if account.spec.bastion is None or account.name not in keys:
            continue
        key_id, secret = keys[account.name]
        session = boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret)
        bastions[account.name] = _bastion(session, endpoint, config.region_of(account), account.name,
                                          account.spec.bastion.instance_type)
    return {"organization": found["Id"], "credentials": str(path.resolve()),
            "profiles": {name: profile_name(name) for name in keys}, "bastions": bastions}


def _assumed(session: boto3.Session, endpoint: str, region: str, arn: str) -> boto3.Session:
    creds = session.client("sts", region_name=region, endpoint_url=endpoint).assume_role(
        RoleArn=arn, RoleSessionName="fleetform-sandbox")["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])


def _admin_keys(session: boto3.Session, endpoint: str, region: str) -> tuple[str, str]:
    iam = session.client("iam", region_name=region, endpoint_url=endpoint)
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=ADMIN_POLICY)
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def write_credentials(path: Path, keys: dict[str, tuple[str, str]]) -> Path:
    """An AWS shared credentials file, one ``sandbox-<account>`` profile per account; owner-only."""
    parser = configparser.ConfigParser()
    for name, (key_id, secret) in keys.items():
        parser[profile_name(name)] = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("# the sandbox's keys (fleetform sandbox up): valid only at its endpoint\n")
        parser.write(handle)
    return path


def _bastion(session: boto3.Session, endpoint: str, region: str, account: str, instance_type: str) -> str:
    """The bastion stack's launch template and autoscaling group of one; returns the group's instance."""
    from fleetform.constructs.bastion import AMI_PARAMETER, instance_architecture

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint)

    ec2 = client("ec2")
    # the stack's launch template resolves this public parameter (resolve:ssm:...); moto serves it
    parameter = AMI_PARAMETER.format(arch=instance_architecture(instance_type))
    image = client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    tags = {"Name": BASTION_NAME_TAG, "fleetform:account": account}
    ec2.create_launch_template(LaunchTemplateName=BASTION_NAME_TAG, LaunchTemplateData={
        "ImageId": image, "InstanceType": instance_type,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]})
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    autoscaling = client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=BASTION_NAME_TAG, MinSize=1, MaxSize=1, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": BASTION_NAME_TAG, "Version": "$Latest"},
        VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets[:2]),
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": BASTION_NAME_TAG,
               "ResourceType": "auto-scaling-group"} for k, v in sorted(tags.items())])
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[BASTION_NAME_TAG])["AutoScalingGroups"][0]
    return str(group["Instances"][0]["InstanceId"])
