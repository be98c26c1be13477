"""Find an account's bastion (boto3) and start a recorded Session Manager session on it.

The session itself is run by the AWS CLI with the session-manager-plugin, exactly as a
person would type it; this module finds the instance, checks that the credentials belong to
the account asked for, and builds that command.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from fleetform.aws_session import session
from fleetform.config.lifecycle import require_account_id
from fleetform.config.models import FleetConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.naming import BASTION_NAME_TAG, SESSION_DOCUMENT

REQUIRED_TOOLS = ("aws", "session-manager-plugin")
INSTALL_HINTS = {
    "aws": "AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
    "session-manager-plugin": (
        "Session Manager plugin: https://docs.aws.amazon.com/systems-manager/latest/userguide/"
        "session-manager-working-with-install-plugin.html\n"
        "      macOS: brew install --cask session-manager-plugin\n"
        "      Amazon Linux/RHEL: sudo dnf install -y https://s3.amazonaws.com/session-manager-downloads/plugin/"
        "latest/linux_64bit/session-manager-plugin.rpm\n"
        "      Debian/Ubuntu: curl -fsSLo /tmp/smp.deb https://s3.amazonaws.com/session-manager-downloads/plugin/"
        "latest/ubuntu_64bit/session-manager-plugin.deb && sudo dpkg -i /tmp/smp.deb"
    ),
}
LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass(frozen=True)
class Target:
    """The account whose bastion to reach, and how to reach AWS."""

    account: str
    account_id: str
    region: str
    profile: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class BastionInstance:
    instance_id: str
    state: str
    availability_zone: str | None = None
    private_ip: str | None = None
    launch_time: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "state": self.state,
                "availability_zone": self.availability_zone, "private_ip": self.private_ip,
                "launch_time": self.launch_time}


def resolve_target(config: FleetConfig, env: str, profile: str | None = None, region: str | None = None,
                   endpoint_url: str | None = None) -> Target:
    """The account named ``env``; UsageError (exit 2) when it is unknown or has no bastion."""
    with_bastion = sorted(a.name for a in config.accounts if a.spec.bastion is not None)
    known = ", ".join(with_bastion) or "none"
    try:
        account = config.account(env)
    except KeyError:
        raise UsageError(f"no account named {env!r} in {config.directory}/ (accounts with a bastion: {known})") \
            from None
    if account.spec.bastion is None:
        raise UsageError(f"account {env!r} has no bastion: {account.file} has no 'bastion:' section "
                         f"(accounts with a bastion: {known})")
    return Target(account=account.name, account_id=require_account_id(account),
                  region=region or config.region_of(account), profile=profile, endpoint_url=endpoint_url)


def aws_session(target: Target) -> boto3.Session:
    return session(target.profile, target.region)


def _client(session: boto3.Session, service: str, target: Target) -> Any:
    return session.client(service, region_name=target.region, endpoint_url=target.endpoint_url)


def _aws_error(action: str, target: Target, exc: Exception) -> FleetformError:
    text = f"{action} in account {target.account} ({target.region}) failed: {exc}"
    if isinstance(exc, NoCredentialsError):  # fixed on the command line: a usage error, as in every command
        return UsageError(f"{text} (give --profile, or log in first, e.g. `aws sso login --profile ...`)"
                          + _sandbox_hint(target))
    return FleetformError(text)


def check_account(session: boto3.Session, target: Target) -> None:
    """Refuse credentials of another account: every account's bastion carries the same tag."""
    try:
        identity = _client(session, "sts", target).get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise _aws_error("checking the credentials", target, exc) from None
    actual = identity.get("Account")
    if actual != target.account_id:
        raise FleetformError(
            f"the credentials are for account {actual} ({identity.get('Arn')}), but {target.account} is "
            f"{target.account_id}; choose that account's profile with --profile" + _sandbox_hint(target))


def _sandbox_hint(target: Target) -> str:
    from fleetform.sandbox.server import credentials_hint

    return credentials_hint(target.endpoint_url, target.account)


def sandbox_session_gap(target: Target) -> str | None:
    """Against the sandbox: why no session can start there (moto has no Session Manager); else None."""
    from fleetform.sandbox.server import sandbox_info

    if sandbox_info(target.endpoint_url) is None:
        return None
    return (f"the sandbox at {target.endpoint_url} cannot start a session: moto has no Session Manager "
            "(ssm:StartSession) and no instance inventory (ssm:DescribeInstanceInformation). The bastion was found; "
            "the session would start with")


def list_bastions(session: boto3.Session, target: Target) -> list[BastionInstance]:
    """Every not-terminated instance tagged as the bastion, oldest first."""
    filters = [{"Name": "tag:Name", "Values": [BASTION_NAME_TAG]},
               {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    found: list[BastionInstance] = []
    try:
        pages = _client(session, "ec2", target).get_paginator("describe_instances").paginate(Filters=filters)
        for page in pages:
            for reservation in page.get("Reservations", []):
                for item in reservation.get("Instances", []):
                    launched = item.get("LaunchTime")
                    found.append(BastionInstance(
                        instance_id=item["InstanceId"],
                        state=item.get("State", {}).get("Name", "unknown"),
                        availability_zone=item.get("Placement", {}).get("AvailabilityZone"),
                        private_ip=item.get("PrivateIpAddress"),
                        launch_time=launched.isoformat() if launched is not None else None,
                    ))
    except (BotoCoreError, ClientError) as exc:
        raise _aws_error("looking up the bastion (ec2:DescribeInstances)", target, exc) from None
    return sorted(found, key=lambda i: (i.launch_time or "", i.instance_id))


def pick_running(instances: Sequence[BastionInstance], target: Target) -> BastionInstance:
    """The one running bastion; FleetformError (exit 1) for none or several."""
    running = [i for i in instances if i.state == "running"]
    if len(running) == 1:
        return running[0]
    where = f"account {target.account} ({target.account_id}, {target.region})"
    if len(running) > 1:
        ids = ", ".join(i.instance_id for i in running)
        raise FleetformError(f"{len(running)} running instances are tagged Name={BASTION_NAME_TAG} in {where}: "
                             f"{ids}; the bastion group keeps one, so another instance carries the tag by "
                             "mistake (or a replacement is under way): check them, then connect with "
                             f"`aws ssm start-session --target <id> --document-name {SESSION_DOCUMENT}`")
    others = ", ".join(f"{i.instance_id} ({i.state})" for i in instances)
    detail = f"; not running: {others}" if others else ""
    raise FleetformError(f"no running bastion (tag Name={BASTION_NAME_TAG}) in {where}{detail}. Is the "
                         f"{target.account}-bastion stack applied? Its autoscaling group replaces a lost "
                         "instance within minutes.")


def session_command(instance_id: str, target: Target) -> list[str]:
    """The AWS CLI command that starts the recorded session."""
    command = ["aws", "ssm", "start-session", "--target", instance_id, "--document-name", SESSION_DOCUMENT,
               "--region", target.region]
    if target.profile:
        command += ["--profile", target.profile]
    if target.endpoint_url:
        command += ["--endpoint-url", target.endpoint_url]
    return command


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def missing_tools_message(missing: Sequence[str], command: Sequence[str]) -> str:
    lines = [f"cannot start the session: {' and '.join(missing)} not found on PATH. Install:"]
    lines += [f"  - {INSTALL_HINTS[tool]}" for tool in missing]
    lines += ["then run:", f"  {shlex.join(command)}"]
    return "\n".join(lines)


def _ignore(signum: int, frame: Any) -> None:
    """A handler rather than SIG_IGN: exec resets handlers, so the child still gets Ctrl-C."""


def run_session(command: Sequence[str]) -> int:
    """Run the session in the foreground; Ctrl-C belongs to the remote shell, not to us."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _ignore) if in_main_thread else None
    try:
        return subprocess.run(list(command), check=False).returncode
    except OSError as exc:
        raise FleetformError(f"cannot run {command[0]}: {exc}") from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
