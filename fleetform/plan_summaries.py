"""One pull-request comment for a sharded plan: the shards write their summaries, one build combines them.

Each shard of the plan batch build writes its report (the ``report.json`` of ``fleetform plan``, plus
the shard, pull request, commit and build id) to the pipeline's artifacts bucket under
``plan-summaries/pr-<N>/<commit>/shard-<i>-of-<n>.json``; a shard that stopped before planning writes
its error there instead. The comment build (``fleetform plan-comment``) reads the n keys of the pull
request's head commit and renders one comment: which commit it describes, a warning naming every
shard that failed or did not report, the protected destroys, one table row per affected stack (in
dependency order), then each stack's changes collapsed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetform.aws_session import call
from fleetform.errors import FleetformError
from fleetform.naming import PLAN_SUMMARY_PREFIX
from fleetform.terraform.summary import (
    MARKDOWN_LIMIT,
    StackPlan,
    caution_lines,
    detail_lines,
    has_details,
    headline,
    table_lines,
)

RECORD_VERSION = 1
COMMIT_MARKER = "<!-- fleetform:commit {commit} -->"
SHORT_STATUS = {"no-changes": "no changes", "changes": "changes", "failed": "plan failed",
                "stopped": "failed before planning", "unfinished": "did not finish", "missing": "did not report"}
ERROR_LINES = 20  # of a shard's error shown in the comment (every configuration problem, usually)


def summary_key(pull_request: int, commit: str, index: int, total: int) -> str:
    return f"{PLAN_SUMMARY_PREFIX}pr-{pull_request}/{commit}/shard-{index}-of-{total}.json"


@dataclass
class ShardPublisher:
    """Writes one shard's summary (or the error that stopped it) where the comment build reads it."""

    s3: Any
    bucket: str
    pull_request: int
    commit: str
    index: int = 1
    total: int = 1

    @property
    def key(self) -> str:
        return summary_key(self.pull_request, self.commit, self.index, self.total)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def publish(self, report: dict[str, Any]) -> str:
        record = {"version": RECORD_VERSION, "pull_request": self.pull_request, "commit": self.commit,
                  "shard": f"{self.index}/{self.total}", "build_id": os.environ.get("CODEBUILD_BUILD_ID"),
                  "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **report}
        try:
            call(self.s3.put_object, Bucket=self.bucket, Key=self.key, Body=json.dumps(record, indent=1).encode(),
                 ContentType="application/json")
        except FleetformError as exc:
            raise FleetformError(f"cannot write the plan summary to {self.uri}: {exc}") from None
        return self.uri

    def publish_error(self, error: str) -> str:
        return self.publish({"exit_code": 1, "headline": "", "allow_destroy": False, "stacks": [], "error": error})

    def publish_started(self) -> str:
        """Written first, replaced by the result: a shard killed while planning (a timeout) shows as
        unfinished, never with an older run's summary of the same commit."""
        return self.publish({"exit_code": None, "headline": "", "allow_destroy": False, "stacks": [],
                             "started": True})


@dataclass
class ShardResult:
    index: int
    total: int
    # "no-changes", "changes"; "failed" (a stack's plan failed or a protected destroy is not allowed: its
    # stacks are listed); "stopped" (the command failed before planning: only its error); "unfinished"
    # (started, never wrote a result); "missing"
    state: str
    plans: list[StackPlan] = field(default_factory=list)
    allow_destroy: bool = False
    error: str = ""
    build_id: str | None = None
    written_at: str | None = None
    new_accounts: list[dict[str, Any]] = field(default_factory=list)  # stacks held back for new accounts

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def exit_code(self) -> int:
        return {"no-changes": 0, "changes": 2}.get(self.state, 1)

    @property
    def incomplete(self) -> bool:
        """No stacks to show: the shard stopped before planning or wrote nothing."""
        return self.state in ("stopped", "unfinished", "missing")

    @property
    def status(self) -> str:
        return SHORT_STATUS[self.state]

    def describe(self) -> str:
        if self.state == "missing":
            return "did not report (its build failed before writing a summary, was stopped, or is still running)"
        if self.state == "unfinished":
            return "started planning but did not finish (its build timed out or was stopped)"
        if self.state == "stopped":
            return f"failed before planning: {(self.error.strip() or 'no reason given').splitlines()[0][:300]}"
        return self.status


def _result(index: int, total: int, record: Any, commit: str) -> ShardResult:
    if not isinstance(record, dict) or record.get("commit") != commit or record.get("shard") != f"{index}/{total}":
        return ShardResult(index, total, "stopped", error="its summary is unreadable or describes another shard")
    try:
        plans = [StackPlan.from_dict(s) for s in record.get("stacks") or []]
    except (KeyError, TypeError) as exc:
        return ShardResult(index, total, "stopped", error=f"its summary is unreadable: {exc}")
    code = record.get("exit_code")
    if record.get("started"):
        state = "unfinished"
    elif record.get("error"):
        state = "stopped"
    else:
        state = {0: "no-changes", 2: "changes"}.get(code, "failed")
    return ShardResult(index, total, state, plans, bool(record.get("allow_destroy")), str(record.get("error") or ""),
                       record.get("build_id"), record.get("written_at"), list(record.get("new_accounts") or []))


def collect(s3: Any, bucket: str, pull_request: int, commit: str, total: int) -> list[ShardResult]:
    """Every shard's result for this commit; a shard without a summary is ``missing``.

    The commit's summaries are listed first (``s3:ListBucket`` on the prefix): without that
    permission S3 answers a missing key with 403, which could not be told from a real denial.
    """
    prefix = summary_key(pull_request, commit, 1, 1).rsplit("/", 1)[0] + "/"
    try:
        listed = call(s3.list_objects_v2, Bucket=bucket, Prefix=prefix)
        present = {item["Key"] for item in listed.get("Contents", [])}
        results = []
        for index in range(1, total + 1):
            key = summary_key(pull_request, commit, index, total)
            if key not in present:
                results.append(ShardResult(index, total, "missing"))
                continue
            body = call(s3.get_object, Bucket=bucket, Key=key)["Body"].read()
            try:
                record = json.loads(body)
            except ValueError:
                record = None
            results.append(_result(index, total, record, commit))
    except FleetformError as exc:
        raise FleetformError(f"cannot read the plan summaries s3://{bucket}/{prefix}: {exc}") from None
    return results


def combined_exit_code(shards: Sequence[ShardResult]) -> int:
    """1 if a shard failed or did not report, else 2 if anything changes, else 0 (like ``plan``)."""
    codes = {s.exit_code for s in shards}
    return 1 if 1 in codes else (2 if 2 in codes else 0)


def dependency_order(shards: Sequence[ShardResult]) -> list[StackPlan]:
    """Shard i planned stacks i, i+n, i+2n, ... of the dependency order: interleave them back."""
    plans: list[StackPlan] = []
    for position in range(max((len(s.plans) for s in shards), default=0)):
        plans += [s.plans[position] for s in shards if position < len(s.plans)]
    return plans


def _counts(plan: StackPlan) -> str:
    if plan.status == "error":
        return "ERROR"
    if not plan.has_changes:
        return "no changes" + (f", {len(plan.drift)} drifted" if plan.drift else "")
    text = f"{plan.adds} to add, {plan.updates} to change, {plan.destroys} to destroy"
    return text + (f", {len(plan.protected_destroys)} PROTECTED destroyed" if plan.protected_destroys else "")


def _details(plan: StackPlan) -> list[str]:
    opened = " open" if plan.status == "error" or plan.protected_destroys else ""
    return [f"<details{opened}><summary><code>{plan.stack}</code>: {_counts(plan)}</summary>", "",
            *detail_lines(plan), "", "</details>", ""]


def _shard_table(shards: Sequence[ShardResult]) -> list[str]:
    rows = [f"| {s.label} | {s.status} | {len(s.plans)} | {s.build_id or ''} | {s.written_at or ''} |"
            for s in shards]
    return ["<details><summary>shards</summary>", "", "| shard | result | stacks | build | written |",
            "|---|---|---:|---|---|", *rows, "", "</details>", ""]


def _new_account_lines(shards: Sequence[ShardResult]) -> list[str]:
    """What each shard held back for accounts the organization stack creates, as one section."""
    from fleetform.new_accounts import NewAccount, Pending

    stacks: dict[tuple[str, str], list[str]] = {}
    for shard in shards:
        for entry in shard.new_accounts:
            held = stacks.setdefault((entry["account"], entry["output"]), [])
            held += [name for name in entry.get("stacks", []) if name not in held]
    if not stacks:
        return []
    waiting = Pending([NewAccount(name, output, (output,), tuple(held)) for (name, output), held in stacks.items()])
    return waiting.markdown().lstrip("\n").splitlines() + [""]


def render_combined(shards: Sequence[ShardResult], commit: str, title: str = "fleetform plan") -> str:
    """The one pull-request comment for all shards of ``commit``."""
    plans = dependency_order(shards)
    incomplete = [s for s in shards if s.incomplete]
    flag = f" (INCOMPLETE: {len(incomplete)} of {len(shards)} shards missing)" if incomplete else ""
    lines = [f"## {title}: {headline(plans)}{flag}", "", COMMIT_MARKER.format(commit=commit),
             f"Plan of commit `{commit[:12]}` in {len(shards)} shard{'s' if len(shards) != 1 else ''}"
             + ("." if incomplete else ", all reported."), ""]
    failing = [s.label for s in shards if s.state == "failed"]
    if failing:
        lines += [f"**This plan fails** (shard{'s' if len(failing) != 1 else ''} {', '.join(failing)}): a stack's "
                  "plan failed or a protected resource would be destroyed; see below.", ""]
    if incomplete:
        lines += ["> [!WARNING]", f"> **This plan is INCOMPLETE**: {len(incomplete)} of {len(shards)} shard(s) "
                  "failed before planning or did not report, so their stacks are missing below. Fix the cause "
                  "and run the build again."]
        for shard in incomplete:
            more = shard.error.strip().splitlines()[1:]
            lines.append(f"> - shard {shard.label} {shard.describe()}")
            lines += [f">   - {line.strip()[:300]}" for line in more[:ERROR_LINES]]
            if len(more) > ERROR_LINES:
                lines.append(f">   - ... ({len(more) - ERROR_LINES} more line(s) in its build log)")
        lines.append("")
    reported = [s for s in shards if s.state != "missing" and s.plans]
    lines += caution_lines(plans, bool(reported) and all(s.allow_destroy for s in reported))
    if not plans:
        lines.append("No stacks to plan." if not incomplete else "No stacks reported.")
    else:
        lines += [*table_lines(plans), ""]
    lines += _new_account_lines(shards)
    lines += _shard_table(shards)
    details = [_details(p) for p in plans if has_details(p)]
    size = sum(len(line) + 1 for line in lines)
    for number, block in enumerate(details):
        block_size = sum(len(line) + 1 for line in block)
        if size + block_size > MARKDOWN_LIMIT:
            lines.append(f"... {len(details) - number} more stack(s) not shown (comment size limit); "
                         "every shard's plan is in the build's artifacts.")
            break
        lines += block
        size += block_size
    return "\n".join(lines).rstrip("\n") + "\n"
