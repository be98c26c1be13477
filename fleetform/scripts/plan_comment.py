"""``fleetform plan-comment``: the one pull-request comment of a sharded plan (the batch's last build)."""

from __future__ import annotations

import os
import sys

import click

from fleetform.config.models import PipelineConfig
from fleetform.errors import UsageError
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
@click.option("--pull-request", type=int, default=None, help="Pull request number (default: from CodeBuild's "
              "CODEBUILD_WEBHOOK_TRIGGER=pr/N).")
@click.option("--head-commit", required=True, metavar="SHA", envvar="CODEBUILD_RESOLVED_SOURCE_VERSION",
              help="The commit the shards planned (default: CODEBUILD_RESOLVED_SOURCE_VERSION).")
@github_options
@aws_options
@output_option
@handle_errors(usage_exit=DETAILED_USAGE_EXIT)
def plan_comment_command(config_dir: str, bucket: str, shards: int | None, pull_request: int | None,
                         head_commit: str, repository: str | None, api_url: str, token_secret: str | None,
                         profile: str | None, region: str | None, endpoint_url: str | None, output: str) -> None:
    """Combine the plan shards' summaries into ONE pull request comment, created or updated in place.

    Reads s3://BUCKET/plan-summaries/pr-N/SHA/shard-I-of-N.json for every shard. The comment names
    the commit, flags every shard that failed or did not report, then lists every affected stack
    (add / change / destroy, protected destroys first) with each stack's changes collapsed. When
    the pull request has moved on to a newer commit, nothing is posted (that commit's build will).
    Exit status like `plan`: 0 no changes, 2 changes, 1 a shard failed or did not report (or bad usage).

    \b
    Examples:
      fleetform plan-comment --bucket familyalbum-pipeline-artifacts-111111111111 --pull-request 42 \\
          --head-commit "$(git rev-parse HEAD)"
      fleetform plan-comment --output json      # in the plan batch build: everything from CodeBuild
    """
    from fleetform.github import pull_request_from_env
    from fleetform.plan_summaries import collect, combined_exit_code, render_combined

    # the comment must appear even when the pull request breaks accounts/ (the shards report that):
    # the configuration is read only for what the command line does not give
    needs_config = not repository or shards is None or not (token_secret or os.environ.get("GITHUB_TOKEN"))
    settings = _pipeline_settings(config_dir, required=False) if needs_config else PipelineConfig()
    repository = repository or settings.repository
    total = shards or settings.plan_shards
    number = pull_request if pull_request is not None else pull_request_from_env()
    if number is None:
        raise UsageError("plan-comment needs --pull-request N (or CodeBuild's CODEBUILD_WEBHOOK_TRIGGER=pr/N)")
    results = collect(_client("s3", profile, region, endpoint_url), bucket, number, head_commit, total)
    code = combined_exit_code(results)
    body = render_combined(results, head_commit)
    report = {"exit_code": code, "pull_request": number, "commit": head_commit,
              "shards": [{"shard": r.label, "state": r.state, "build_id": r.build_id, "error": r.error}
                         for r in results]}
    github = _github(api_url, token_secret or settings.github_token_secret, profile, region, endpoint_url)
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
    if output == "json":
        emit_json({**report, "markdown": body})
    else:
        click.echo(body)
    sys.exit(code)


plan_comment_command.usage_exit = DETAILED_USAGE_EXIT  # type: ignore[attr-defined]
