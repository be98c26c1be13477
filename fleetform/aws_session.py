"""The one way commands make a boto3 session from ``--profile`` / ``--region``."""

from __future__ import annotations

import boto3
from botocore.exceptions import ProfileNotFound

from fleetform.errors import UsageError


def session(profile: str | None, region: str | None = None) -> boto3.Session:
    """A boto3 session; an unknown ``--profile`` is a usage error (exit 2), not a traceback."""
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise UsageError(f"--profile: {exc}") from None
