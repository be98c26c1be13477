"""AWS clients for the runbook: one session, optional endpoint (the sandbox), call observers.

``CALL_OBSERVERS`` get ``(service, operation)`` for every call made through these clients
(the permissions test records them). ``ApiUnavailable`` marks an API the endpoint does not
offer (moto lacks several EKS ones; defined with ``call`` in fleetform.aws_session): checks turn it
into "unknown", never "pass".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from fleetform import aws_session
from fleetform.aws_session import call
from fleetform.upgrade.permissions import declare

# moto serves one fake account; in sandbox mode every configured account maps to it
SANDBOX_ACCOUNT_ID = "123456789012"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

CALL_OBSERVERS: list[Callable[[str, str], None]] = []

CALLER_ACTIONS = declare("caller-identity", "sts:GetCallerIdentity")


def is_sandbox_endpoint(endpoint_url: str | None) -> bool:
    return bool(endpoint_url) and urlparse(endpoint_url).hostname in _LOOPBACK


@dataclass
class Aws:
    session: boto3.Session
    region: str
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def sandbox(self) -> bool:
        return is_sandbox_endpoint(self.endpoint_url)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=20)
            client = self.session.client(service, region_name=self.region, endpoint_url=self.endpoint_url,
                                         config=cfg)
            client.meta.events.register("before-parameter-build.*.*", _observer(service))
            self._clients[service] = client
        return self._clients[service]

    def caller(self) -> dict[str, str]:
        identity = call(self.client("sts").get_caller_identity)
        return {"account": identity["Account"], "arn": identity["Arn"], "user_id": identity["UserId"]}


def _observer(service: str) -> Callable[..., None]:
    def notify(model: Any = None, **_: Any) -> None:
        for observer in CALL_OBSERVERS:
            observer(service, model.name)

    return notify


def connect(profile: str | None, region: str, endpoint_url: str | None) -> Aws:
    session = aws_session.session(profile, region)
    if is_sandbox_endpoint(endpoint_url) and session.get_credentials() is None:
        # the sandbox accepts any key; spare the user an export
        session = boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=region)
    return Aws(session, region, endpoint_url)


