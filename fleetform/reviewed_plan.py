"""The reviewed plan is the contract: merge applies what the pull request's comment showed, or nothing.

The comment build (trusted code) records, per pull request, the plan it verified and posted:
``reviewed/pr-<N>.json`` in the pipeline's artifacts bucket with the head commit and, per stack, every
planned change as (address, action, changed attributes). Attribute values are not compared: they
come from the reviewed code itself, which the merge applies. The apply build plans the merge again
with the apply roles and refuses when that plan differs from the record of the merged pull request's
head commit: a summary that a pull request's own (untrusted) code falsified, a base branch that moved
since the review, or reality that changed in between all stop the apply; plan again instead.

Which build wrote a shard's summary is checked with CodeBuild (``BatchGetBuilds``): only a build of
the plan project, triggered by this pull request (``sourceVersion`` ``pr/N``) at its head commit
(``resolvedSourceVersion``), counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetform.aws_session import call
from fleetform.errors import FleetformError
from fleetform.naming import REVIEWED_PLAN_PREFIX
from fleetform.terraform.summary import StackPlan

RECORD_VERSION = 1
Fingerprint = dict[str, list[list[str]]]  # stack -> [address, action, detail] of each change


def reviewed_key(pull_request: int) -> str:
    return f"{REVIEWED_PLAN_PREFIX}pr-{pull_request}.json"


def fingerprint(plans: Iterable[StackPlan]) -> Fingerprint:
    """Per stack with changes: its sorted (address, action, detail) triples, the detail naming the changed
    attributes or why a resource is replaced. Stacks without changes are left out, so the same changes
    planned in other shards or with other stacks around compare equal."""
    return {p.stack: sorted([c.address, c.action, c.detail] for c in p.changes) for p in plans if p.changes}


def differences(reviewed: Mapping[str, Sequence[Sequence[str]]], planned: Mapping[str, Sequence[Sequence[str]]]
                ) -> list[str]:
    """What the merge would do that the review did not show, and the reverse, one line each."""
    lines = []
    for stack in sorted(set(reviewed) | set(planned)):
        before = {tuple(c) for c in reviewed.get(stack, [])}
        after = {tuple(c) for c in planned.get(stack, [])}
        lines += [f"{stack}: {_describe(change)} was not in the reviewed plan" for change in sorted(after - before)]
        lines += [f"{stack}: {_describe(change)} was reviewed but is no longer planned"
                  for change in sorted(before - after)]
    return lines


def _describe(change: Sequence[str]) -> str:
    address, action, *detail = change
    return f"{action} {address}" + (f" ({detail[0]})" if detail and detail[0] else "")


@dataclass(frozen=True)
class Reviewed:
    pull_request: int
    commit: str
    complete: bool
    stacks: Fingerprint
    build_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "pull_request": self.pull_request, "commit": self.commit,
                "complete": self.complete, "stacks": self.stacks, "build_id": self.build_id,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    @classmethod
    def from_dict(cls, data: Any) -> Reviewed:
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise FleetformError("the reviewed plan record is unreadable or of another version")
        stacks = data.get("stacks")
        if not isinstance(stacks, dict):
            raise FleetformError("the reviewed plan record has no stacks")
        return cls(int(data["pull_request"]), str(data["commit"]), bool(data.get("complete")),
                   {str(k): [[str(x) for x in c] for c in v] for k, v in stacks.items()}, data.get("build_id"))


def record(s3: Any, bucket: str, reviewed: Reviewed) -> str:
    key = reviewed_key(reviewed.pull_request)
    try:
        call(s3.put_object, Bucket=bucket, Key=key, Body=json.dumps(reviewed.as_dict(), indent=1).encode(),
             ContentType="application/json")
    except FleetformError as exc:
        raise FleetformError(f"cannot record the reviewed plan at s3://{bucket}/{key}: {exc}") from None
    return f"s3://{bucket}/{key}"


def load(s3: Any, bucket: str, pull_request: int) -> Reviewed | None:
    """The record of ``pull_request``, or None when its plan was never commented."""
    key = reviewed_key(pull_request)
    try:
        listed = call(s3.list_objects_v2, Bucket=bucket, Prefix=key)
        if not any(item["Key"] == key for item in listed.get("Contents", [])):
            return None
        body = call(s3.get_object, Bucket=bucket, Key=key)["Body"].read()
    except FleetformError as exc:
        raise FleetformError(f"cannot read the reviewed plan s3://{bucket}/{key}: {exc}") from None
    try:
        return Reviewed.from_dict(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise FleetformError(f"s3://{bucket}/{key}: unreadable reviewed plan ({exc})") from None


def check(reviewed: Reviewed | None, pull_request: int | None, head: str | None, plans: Sequence[StackPlan]
          ) -> list[str]:
    """Why the merge's plan may not be applied; empty when it is the reviewed plan (or changes nothing)."""
    planned = fingerprint(plans)
    if not planned:
        return []  # nothing to apply: no review needed
    if pull_request is None:
        return ["no merged pull request brought this commit, so no plan was reviewed"]
    if reviewed is None:
        return [f"pull request #{pull_request} has no reviewed plan (its plan comment was never posted)"]
    if head and reviewed.commit != head:
        return [f"the reviewed plan of pull request #{pull_request} is of {reviewed.commit[:12]}, but it was merged "
                f"at {head[:12]}: its last commit was never planned and reviewed"]
    if not reviewed.complete:
        return [f"the reviewed plan of pull request #{pull_request} was incomplete (a shard failed or did not "
                "report)"]
    return differences(reviewed.stacks, planned)


# ----------------------------------------------------------------------- who wrote a summary


@dataclass(frozen=True)
class PlanBuild:
    """A build of the plan project, as CodeBuild describes it."""

    id: str
    project: str
    pull_request: int | None
    commit: str | None
    status: str | None


def _pull_request_of(source_version: str | None) -> int | None:
    if source_version and source_version.startswith("pr/") and source_version[3:].isdigit():
        return int(source_version[3:])
    return None


def describe_builds(codebuild: Any, ids: Sequence[str]) -> dict[str, PlanBuild]:
    """CodeBuild's account of each build id (ids CodeBuild does not know are left out)."""
    found: dict[str, PlanBuild] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), 100):  # BatchGetBuilds takes at most 100 ids
        try:
            answer = call(codebuild.batch_get_builds, ids=unique[start:start + 100])
        except FleetformError as exc:
            raise FleetformError(f"cannot ask CodeBuild who wrote the plan summaries: {exc}") from None
        for build in answer.get("builds", []):
            found[build["id"]] = PlanBuild(build["id"], build.get("projectName", ""),
                                           _pull_request_of(build.get("sourceVersion")),
                                           build.get("resolvedSourceVersion"), build.get("buildStatus"))
    return found


def why_not_from(build: PlanBuild | None, project: str, pull_request: int, commit: str) -> str | None:
    """Why a summary claiming ``build`` does not count for this pull request's commit (None: it counts)."""
    if build is None:
        return "CodeBuild knows no build with the id in its summary"
    if build.project != project:
        return f"its build {build.id} is not a build of {project}"
    if build.pull_request != pull_request:
        return f"its build {build.id} planned another pull request"
    if build.commit != commit:
        return f"its build {build.id} planned another commit ({(build.commit or 'unknown')[:12]})"
    return None
