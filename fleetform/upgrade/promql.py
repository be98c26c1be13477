"""Instant PromQL queries against an Amazon Managed Service for Prometheus (AMP) workspace.

``POST <workspace endpoint>/api/v1/query`` (the Prometheus HTTP API that AMP serves), signed with
SigV4 for the service ``aps`` (IAM action ``aps:QueryMetrics``). The workspace endpoint is
``https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>``; with ``--endpoint-url`` /
``AWS_ENDPOINT_URL`` (the sandbox) it is ``<endpoint-url>/workspaces/<id>`` instead.

Answers become typed ``Sample``s; every failure is a FleetformError: ``AwsError`` when AMP refuses
(403 AccessDenied, 429 throttling, ...), ``PromQLError`` for a query Prometheus rejects,
``ApiUnavailable`` when the endpoint has no such API (404).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fleetform.aws_session import ApiUnavailable, AwsError
from fleetform.errors import FleetformError
from fleetform.upgrade.permissions import declare

QUERY_ACTIONS = declare("gate-promql", "aps:QueryMetrics")
SERVICE = "aps"
OPERATION = "QueryMetrics"
DEFAULT_TIMEOUT = 15.0


class PromQLError(FleetformError):
    """Prometheus rejected the query (``bad_data``, ``execution``, ``timeout``, ...) or answered nonsense."""


@dataclass(frozen=True)
class Sample:
    """One value of an instant query: the series' labels (empty for a scalar), time and value."""

    labels: dict[str, str]
    timestamp: float
    value: float

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)


def workspace_url(workspace_id: str, region: str, endpoint_url: str | None = None) -> str:
    """The workspace's Prometheus endpoint (no trailing slash)."""
    base = (endpoint_url or f"https://aps-workspaces.{region}.amazonaws.com").rstrip("/")
    return f"{base}/workspaces/{workspace_id}"


@dataclass
class PromQLClient:
    """``query(expr, at)`` against one AMP workspace, with the caller's AWS credentials."""

    url: str  # workspace_url(...)
    region: str
    credentials: Credentials
    timeout: float = DEFAULT_TIMEOUT

    def query(self, expr: str, at: datetime | None = None) -> list[Sample]:
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        body = urllib.parse.urlencode(form).encode()
        request = AWSRequest(method="POST", url=f"{self.url}/api/v1/query", data=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        prepared = request.prepare()
        http = urllib.request.Request(prepared.url, data=body, method="POST", headers=dict(prepared.headers.items()))
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as answer:  # noqa: S310 - https or loopback
                return parse(answer.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc.code, exc.read()) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FleetformError(f"cannot reach the Prometheus workspace {self.url}: {reason}") from None


def client_for(session: Any, region: str, workspace_id: str, endpoint_url: str | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> PromQLClient:
    """A client from a boto3 session's credentials (``--profile``; the sandbox's fake keys)."""
    credentials = session.get_credentials()
    if credentials is None:
        raise FleetformError("no AWS credentials for the Prometheus workspace: use --profile, "
                             "or for the sandbox --endpoint-url")
    return PromQLClient(workspace_url(workspace_id, region, endpoint_url), region, credentials, timeout)


def parse(raw: bytes) -> list[Sample]:
    """The samples of a Prometheus API answer (``vector`` or ``scalar``); PromQLError otherwise."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PromQLError("the Prometheus workspace answered with something that is not JSON") from None
    if not isinstance(document, dict):
        raise PromQLError("the Prometheus workspace answered with JSON that is not an object")
    if document.get("status") != "success":
        raise PromQLError(f"query failed: {document.get('errorType', 'error')}: {document.get('error', '')}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise PromQLError("the answer has no data object")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector":
            return [Sample({str(k): str(v) for k, v in item.get("metric", {}).items()}, float(item["value"][0]),
                           float(item["value"][1])) for item in result]
        if kind == "scalar":
            return [Sample({}, float(result[0]), float(result[1]))]
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        raise PromQLError(f"malformed {kind} result in the answer") from None
    raise PromQLError(f"an instant query must give a vector or a scalar, not {kind!r}")


def _http_error(status: int, raw: bytes) -> FleetformError:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        document = {}
    document = document if isinstance(document, dict) else {}
    if status in (400, 422) and document.get("status") == "error":
        return PromQLError(f"query rejected: {document.get('errorType', 'bad_data')}: {document.get('error', '')}")
    if status == 404:
        return ApiUnavailable(f"{OPERATION} is not offered by this endpoint (no such workspace or API)")
    message = str(document.get("message") or document.get("Message") or document.get("error") or "").strip()
    code = {400: "ValidationException", 403: "AccessDeniedException", 429: "ThrottlingException"}.get(
        status, "InternalServerException" if status >= 500 else f"HTTP{status}")
    return AwsError(OPERATION, code, message or f"HTTP {status}")
