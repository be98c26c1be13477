"""The one way commands make a boto3 session from ``--profile`` / ``--region``, and call AWS."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.exceptions import ProfileNotFound

from fleetform.errors import FleetformError, UsageError


def check_endpoint_url(url: str | None, source: str = "--endpoint-url") -> str | None:
    """The one check of an endpoint URL (``--endpoint-url`` and AWS_ENDPOINT_URL): botocore refuses a URL
    without http:// or https:// with a bare ValueError at the first client; here it is a usage error."""
    if url is None or url == "":
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        guess = url.split("://", 1)[-1]
        raise UsageError(f"{source} {url!r} is not a URL with a scheme: write http://{guess} "
                         f"(or https://{guess})")
    return url


def session(profile: str | None, region: str | None = None) -> boto3.Session:
    """A boto3 session; an unknown ``--profile`` or a malformed AWS_ENDPOINT_URL is a usage error (exit 2),
    not a traceback."""
    check_endpoint_url(os.environ.get("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL")
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise UsageError(f"--profile: {exc}") from None


class ApiUnavailable(FleetformError):
    """The endpoint does not implement this API (or answers it with a non-AWS error)."""


class AwsError(FleetformError):
    """AWS answered with an error: ``operation``, ``code`` and AWS's ``message``."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        super().__init__(f"{operation}: {self.reason}")

    @property
    def reason(self) -> str:
        """``Code: message`` (the code alone when AWS gave no message)."""
        return f"{self.code}: {self.message}" if self.message else self.code


def call(method: Callable[..., Any], **kwargs: Any) -> Any:
    """Call an AWS API; raise ApiUnavailable when the endpoint lacks it, FleetformError otherwise."""
    try:
        return method(**kwargs)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NotImplemented", "UnknownOperationException", "InvalidAction") or (
                status == 404 and code.isdigit()):
            raise ApiUnavailable(f"{exc.operation_name} is not offered by this endpoint") from exc
        raise AwsError(exc.operation_name, code, str(error.get("Message", "")).strip()) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        # fixed on the command line, like an unknown profile: a usage error (exit 2) in every command
        raise UsageError("no AWS credentials: use --profile, or for the sandbox --endpoint-url") from exc
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as exc:
        raise FleetformError(f"cannot reach AWS: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise FleetformError(f"AWS call failed: {exc}") from exc
