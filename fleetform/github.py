"""Post the plan summary to a pull request, updating fleetform's own earlier comment.

The comment carries a hidden marker (``<!-- fleetform:plan -->``); the next plan of the same
pull request edits that comment instead of adding another one (as Atlantis users expect).
The token comes from ``GITHUB_TOKEN`` or from Secrets Manager (the pipeline stores it there).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from fleetform.errors import FleetformError, UsageError

DEFAULT_API_URL = "https://api.github.com"
MARKER = "<!-- fleetform:{key} -->"
PAGE_SIZE = 100


def marker(key: str = "plan") -> str:
    return MARKER.format(key=key)


@dataclass
class GitHub:
    token: str
    api_url: str = DEFAULT_API_URL
    timeout: float = 30.0

    def request(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.api_url.rstrip('/')}{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "fleetform",
            **({"Content-Type": "application/json"} if data is not None else {}),
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (https/loopback)
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise FleetformError(f"GitHub API {method} {path}: HTTP {exc.code} {exc.reason}: {detail}") from None
        except urllib.error.URLError as exc:
            raise FleetformError(f"GitHub API {method} {url}: {exc.reason}") from None
        return json.loads(text) if text.strip() else None

    def comments(self, repository: str, number: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.request("GET", f"/repos/{repository}/issues/{number}/comments"
                                        f"?per_page={PAGE_SIZE}&page={page}") or []
            result.extend(batch)
            if len(batch) < PAGE_SIZE:
                return result
            page += 1

    def labels(self, repository: str, number: int) -> list[str]:
        data = self.request("GET", f"/repos/{repository}/issues/{number}/labels?per_page={PAGE_SIZE}") or []
        return [label["name"] for label in data]

    def pull_request_for_commit(self, repository: str, sha: str) -> int | None:
        """The pull request that brought ``sha`` (a merge commit on the main branch), if any."""
        pulls = self.request("GET", f"/repos/{repository}/commits/{sha}/pulls") or []
        merged = [p for p in pulls if p.get("merged_at")] or pulls
        return int(merged[0]["number"]) if merged else None

    def pull_request_head(self, repository: str, number: int) -> str:
        """The commit at the head of the pull request now (newer pushes supersede older plans)."""
        return str(self.request("GET", f"/repos/{repository}/pulls/{number}")["head"]["sha"])

    def delete_comments(self, repository: str, number: int, keys: list[str]) -> list[int]:
        """Delete our comments that carry one of these markers (e.g. the per-shard comments of old
        versions); returns their ids."""
        tags = [marker(key) for key in keys]
        deleted = []
        for comment in self.comments(repository, number):
            if any(tag in (comment.get("body") or "") for tag in tags):
                self.request("DELETE", f"/repos/{repository}/issues/comments/{comment['id']}")
                deleted.append(int(comment["id"]))
        return deleted

    def upsert_comment(self, repository: str, number: int, body: str, key: str = "plan") -> dict[str, Any]:
        """Edit the comment that carries our marker, or create it; returns action, id and url."""
        tag = marker(key)
        text = f"{tag}\n{body}"
        for comment in self.comments(repository, number):
            if tag in (comment.get("body") or ""):
                updated = self.request("PATCH", f"/repos/{repository}/issues/comments/{comment['id']}",
                                       {"body": text})
                return {"action": "updated", "id": updated["id"], "url": updated.get("html_url")}
        created = self.request("POST", f"/repos/{repository}/issues/{number}/comments", {"body": text})
        return {"action": "created", "id": created["id"], "url": created.get("html_url")}


def resolve_token(secret_id: str | None, session: Any = None) -> str:
    """``GITHUB_TOKEN``, else the Secrets Manager secret (plain text or JSON with a ``token`` key)."""
    token = os.environ.get("GITHUB_TOKEN")
    if token:
        return token
    if not secret_id:
        raise UsageError("no GitHub token: set GITHUB_TOKEN or pass --token-secret")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = (session or boto3.session.Session()).client("secretsmanager")
    try:
        secret = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise FleetformError(f"cannot read the GitHub token from secret {secret_id}: {exc}") from None
    try:
        data = json.loads(secret)
    except json.JSONDecodeError:
        return secret.strip()
    return str(data["token"]) if isinstance(data, dict) and "token" in data else secret.strip()


def pull_request_from_env() -> int | None:
    """The pull request number of a CodeBuild webhook build (``CODEBUILD_WEBHOOK_TRIGGER=pr/42``)."""
    for name in ("CODEBUILD_WEBHOOK_TRIGGER", "CODEBUILD_SOURCE_VERSION"):
        match = re.fullmatch(r"pr/(\d+)", os.environ.get(name, ""))
        if match:
            return int(match.group(1))
    return None
