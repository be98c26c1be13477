"""``fleetform plan-comment``: the one pull-request comment of a sharded plan (the batch's last build)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from fleetform.config.models import PipelineConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.scripts.common import (
    DETAILED_USAGE_EXIT,
    aws_options,
    config_option,
    emit_json,
    handle_errors,
    output_option,
)
from fleetform.scripts.pipeline import _client, _github, _pipeline_settings, _progress, github_options

# organization.pipeline.plan_shards allows 1..16; the per-shard comments of earlier versions
# (markers plan-I-of-N) are deleted once the combined comment is posted
MAX_SHARDS = 16


@click.command("plan-comment")
@config_option
@click.option("--bucket", required=True, envvar="FLEETFORM_ARTIFACTS_BUCKET", metavar="BUCKET",
              help="Bucket the shards wrote to with `plan --publish-bucket` (default: FLEETFORM_ARTIFACTS_BUCKET).")
@click.option("--shards", type=click.IntRange(1, MAX_SHARDS), default=None, envvar="FLEETFORM_SHARDS",
              help="How many shards planned (default: pipeline.plan_shards).")
@click.option("--pull-request", type=int, default=None, help="Pull request number (default: from --from-build or "
              "CodeBuild's CODEBUILD_WEBHOOK_TRIGGER=pr/N).")
@click.option("--head-commit", default=None, metavar="SHA", help="The commit the shards planned (default: from "
              "--from-build).")
@click.option("--from-build", "from_build", default=None, metavar="BUILD_ID", envvar="FLEETFORM_PLAN_BUILD",
              help="A plan build (EventBridge passes the one that just ended): its pull request and commit are "
                   "read from CodeBuild.")
@click.option("--plan-project", default=None, envvar="FLEETFORM_PLAN_PROJECT", metavar="NAME",
              help="Accept a shard's summary only if CodeBuild says a build of this project, for this pull "
                   "request at this commit, wrote it (the pipeline always passes it).")
@click.option("--record-reviewed", is_flag=True, help="Record the posted plan as the pull request's reviewed plan "
              "(s3://BUCKET/reviewed/pr-N.json), which the apply build compares its plan with.")
@github_options
@aws_options
@output_option
@handle_errors(usage_exit=DETAILED_USAGE_EXIT)
def plan_comment_command(config_dir: str, bucket: str, shards: int | None, pull_request: int | None,
                         head_commit: str | None, from_build: str | None, plan_project: str | None,
                         record_reviewed: bool, repository: str | None, api_url: str, token_secret: str | None,
                         profile: str | None, region: str | None, endpoint_url: str | None, output: str) -> None:
    """Combine the plan shards' summaries into ONE pull request comment, created or updated in place.

    Reads s3://BUCKET/plan-summaries/pr-N/SHA/shard-I-of-N.json for every shard. With --plan-project,
    a summary counts only when CodeBuild (BatchGetBuilds) says the build named in it is a build of
    that project for this pull request at this commit. The comment names the commit, flags every
    shard that failed, did not report or was not accepted, then lists every affected stack (add /
    change / destroy, protected destroys first) with each stack's changes collapsed. When the pull
    request has moved on to a newer commit, nothing is posted (that commit's build will).
    Exit status like `plan`: 0 no changes, 2 changes, 1 a shard failed or did not report (or bad usage).

    \b
    Examples:
      fleetform plan-comment --bucket familyalbum-pipeline-artifacts-111111111111 --pull-request 42 \\
          --head-commit "$(git rev-parse HEAD)"
      fleetform plan-comment --from-build familyalbum-plan:0b6f... --plan-project familyalbum-plan \\
          --record-reviewed --output json      # the pipeline's comment build
    """
    from fleetform.github import pull_request_from_env
    from fleetform.plan_summaries import collect, combined_exit_code, render_combined, verify_writers
    from fleetform.reviewed_plan import Reviewed, describe_builds, fingerprint, record

    # the comment must appear even when the pull request breaks accounts/ (the shards report that)
    try:
        settings = _pipeline_settings(config_dir, required=False)
    except FleetformError as exc:
        _progress(f"the configuration cannot be read ({str(exc).splitlines()[0]}): pipeline defaults and the "
                  "command line are used")
        settings = PipelineConfig()
    repository = repository or settings.repository
    total = shards or settings.plan_shards
    codebuild = _client("codebuild", profile, region, endpoint_url) if (from_build or plan_project) else None
    if from_build:
        build = describe_builds(codebuild, [from_build]).get(from_build)
        if build is None or build.pull_request is None or not build.commit:
            raise UsageError(f"--from-build {from_build}: CodeBuild knows no pull request build with that id")
        if plan_project and build.project != plan_project:
            raise UsageError(f"--from-build {from_build}: not a build of {plan_project}")
        pull_request = build.pull_request if pull_request is None else pull_request
        head_commit = head_commit or build.commit
    number = pull_request if pull_request is not None else pull_request_from_env()
    if number is None:
        raise UsageError("plan-comment needs --pull-request N, --from-build ID (or CodeBuild's "
                         "CODEBUILD_WEBHOOK_TRIGGER=pr/N)")
    if not head_commit:
        raise UsageError("plan-comment needs --head-commit SHA or --from-build ID")
    s3 = _client("s3", profile, region, endpoint_url)
    results = collect(s3, bucket, number, head_commit, total)
    if plan_project:
        results = verify_writers(results, codebuild, plan_project, number, head_commit)
    # the comment-only token (pipeline.github_comment_token_secret), never the pipeline's own
    github = _github(api_url, token_secret or settings.github_comment_token_secret, profile, region, endpoint_url)
    if settings.allow_destroy_label in github.labels(repository, number):
        for result in results:
            result.allow_destroy = True
    code = combined_exit_code(results)
    body = render_combined(results, head_commit)
    report: dict[str, Any] = {
        "exit_code": code, "pull_request": number, "commit": head_commit,
        "shards": [{"shard": r.label, "state": r.state, "build_id": r.build_id, "error": r.error} for r in results]}
    head = github.pull_request_head(repository, number)
    if head != head_commit:
        _progress(f"pull request #{number} is now at {head[:12]}: not replacing its comment with the plan of "
                  f"{head_commit[:12]}")
        report["comment"] = {"action": "skipped", "reason": f"superseded by {head}"}
    else:
        report["comment"] = github.upsert_comment(repository, number, body, key="plan")
        legacy = [f"plan-{i}-of-{n}" for n in range(1, MAX_SHARDS + 1) for i in range(1, n + 1)]
        report["comment"]["deleted_shard_comments"] = github.delete_comments(repository, number, legacy)
        _progress(f"pull request comment {report['comment']['action']}: {report['comment'].get('url')}")
        if record_reviewed:
            complete = not any(r.incomplete for r in results) and all(p.status != "error" for r in results
                                                                    for p in r.plans)
            reviewed = Reviewed(number, head_commit, complete, fingerprint(p for r in results for p in r.plans),
                                os.environ.get("CODEBUILD_BUILD_ID"))
            report["reviewed"] = record(s3, bucket, reviewed)
            _progress(f"reviewed plan recorded at {report['reviewed']} ({'complete' if complete else 'INCOMPLETE'})")
    if output == "json":
        emit_json({**report, "markdown": body})
    else:
        click.echo(body)
    sys.exit(code)

