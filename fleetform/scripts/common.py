"""Options and error handling shared by every command (DESIGN section 5).

Exit statuses: 0 success, 1 a failed check or error, 2 bad usage or bad configuration; the commands
that follow terraform's ``-detailed-exitcode`` (plan, drift, plan-comment) use 2 for "changes", so
their bad usage and configuration exit 1 (``DETAILED_USAGE_EXIT``), as terraform's own do.
With ``--output json`` a failure prints ``{"ok": false, "error": ..., "exit_code": ..., "problems": [...]}``
on stdout (``error_document``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from fleetform.errors import ConfigurationError, FleetformError, Problem, UsageError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "accounts"
DEFAULT_SYNTH_DIR = "cdktf.out"
# the usage/configuration exit status of commands where 2 means "changes" (terraform -detailed-exitcode)
DETAILED_USAGE_EXIT = 1


def config_option(func: F) -> F:
    return click.option(
        "--config", "config_dir", default=DEFAULT_CONFIG, show_default=True,
        type=click.Path(file_okay=False), help="Directory with organization.yaml and one YAML file per account.",
    )(func)


def synth_dir_option(*, out_alias: bool = False,
                     help: str = "Synthesized stacks (cdktf.out layout with manifest.json).") -> Callable[[F], F]:
    """``--synth-dir``: the one name of the synthesized directory in every command that reads or writes it
    (docs/decisions/0007-option-names.md). ``out_alias``: ``--out`` too, its name in synth and bootstrap
    before; only there, since ``--out-dir`` is the plans' directory in plan and apply."""
    names = ("--synth-dir", "--out") if out_alias else ("--synth-dir",)
    if out_alias:
        help = f"{help} --out is the same option (its former name)."
    return click.option(*names, "synth_dir", default=DEFAULT_SYNTH_DIR, show_default=True,
                        type=click.Path(file_okay=False), help=help)


def renamed_option(old: str, new: str, dest: str, type: Any = None) -> Callable[[F], F]:
    """Keep an option's former spelling ``old`` working for one release, hidden from --help: it sets
    ``dest`` as ``new`` does, and says on stderr that it is renamed. Put it right below ``new``."""
    alias = f"{dest}_{old.lstrip('-').replace('-', '_')}_alias"

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(alias, None)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) == click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the former name of {new}: give {new} alone", ctx)
                click.echo(f"note: {old} is now {new}; {old} goes away in the next release", err=True)
                kwargs[dest] = value
            return func(*args, **kwargs)

        return click.option(old, alias, default=None, hidden=True, type=type)(wrapper)  # type: ignore[return-value]

    return decorator


def output_option(func: F) -> F:
    return click.option(
        "--output", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
        help="text for people, json for scripts.",
    )(func)


def aws_options(func: F) -> F:
    """--profile / --region / --endpoint-url, named as the AWS CLI names them."""
    func = click.option("--endpoint-url", default=None, envvar="AWS_ENDPOINT_URL",
                        help="Send AWS calls to this endpoint, with its scheme (the sandbox: "
                             "http://127.0.0.1:5055). Default: AWS_ENDPOINT_URL.")(func)
    func = click.option("--region", default=None, help="AWS region (default: the account's region).")(func)
    func = click.option("--profile", default=None, envvar="AWS_PROFILE",
                        help="Named AWS CLI profile to use.")(func)
    return func


def wants_json(kwargs: dict[str, Any]) -> bool:
    return kwargs.get("output") == "json" or bool(kwargs.get("as_json"))


def error_document(message: str, exit_code: int, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The one JSON shape of a failed command (``--output json``), for every command."""
    return {"ok": False, "error": message, "exit_code": exit_code, "problems": [p.as_dict() for p in problems]}


def fail(message: str, exit_code: int, as_json: bool, problems: Sequence[Problem] = ()) -> None:
    """Report a failure and exit. For people on stderr; with ``as_json`` the error document on stdout,
    and (except for configuration problems, which are all in the document) the one-line error on
    stderr too, for the build log."""
    if as_json:
        click.echo(json.dumps(error_document(message, exit_code, problems), indent=2))
    if problems:
        if not as_json:
            count = len(problems)
            click.secho(f"configuration has {count} problem{'s' if count != 1 else ''}:", fg="red", err=True)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(exit_code)


def handle_errors(func: F | None = None, *, usage_exit: int = 2) -> Any:
    """Turn fleetform errors into a clear message and the documented exit status; no traceback.

    ``usage_exit``: the status of bad usage and bad configuration (``DETAILED_USAGE_EXIT`` for the
    commands whose 2 means "changes"). Checks ``--endpoint-url`` / AWS_ENDPOINT_URL before the command
    runs. Use as ``@handle_errors`` or ``@handle_errors(usage_exit=DETAILED_USAGE_EXIT)``."""
    if func is None:
        return functools.partial(handle_errors, usage_exit=usage_exit)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = wants_json(kwargs)
        try:
            if kwargs.get("endpoint_url"):  # (click fills it from AWS_ENDPOINT_URL too) boto3 only when given
                from fleetform.aws_session import check_endpoint_url

                check_endpoint_url(kwargs["endpoint_url"], _endpoint_source())
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            count = len(exc.problems)
            fail(f"configuration has {count} problem{'s' if count != 1 else ''}", usage_exit, as_json,
                 exc.problems)
        except UsageError as exc:
            fail(str(exc), usage_exit, as_json)
        except FleetformError as exc:
            fail(str(exc), exc.exit_code, as_json)
        except OSError as exc:  # a path below a file, a full disk, no permission: say which file
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1, as_json)
        except KeyboardInterrupt:
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(130)

    wrapper.usage_exit = usage_exit  # type: ignore[attr-defined]  # click's own parse errors: ContractGroup
    return wrapper


def _endpoint_source() -> str:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source("endpoint_url") == click.core.ParameterSource.ENVIRONMENT:
        return "AWS_ENDPOINT_URL"
    return "--endpoint-url"


def json_requested(args: Sequence[str]) -> bool:
    """Whether a command line asks for JSON (to answer even a parse error with the error document)."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg in ("--json", "--output=json") or (arg == "--output" and args[i + 1:i + 2] == ["json"]):
            return True
    return False


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


class ContractGroup(click.Group):
    """A command group whose subcommands' parse errors follow the contract too: the subcommand's usage
    status (the ``usage_exit`` that ``handle_errors`` gave it, e.g. plan's 1) and, with --output json,
    the error document."""

    def invoke(self, ctx: click.Context) -> Any:
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            command = exc.ctx.command if exc.ctx is not None else None
            exc.exit_code = getattr(getattr(command, "callback", None), "usage_exit", exc.exit_code)
            if not json_requested(args):
                raise
            click.echo(json.dumps(error_document(exc.format_message(), exc.exit_code), indent=2))
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
