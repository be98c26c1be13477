"""Options and error handling shared by every command (DESIGN section 5).

Exit statuses: 0 success, 1 a failed check or error, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fleetform.errors import ConfigurationError, FleetformError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "accounts"
DEFAULT_OUT = "cdktf.out"


def config_option(func: F) -> F:
    return click.option(
        "--config", "config_dir", default=DEFAULT_CONFIG, show_default=True,
        type=click.Path(file_okay=False), help="Directory with organization.yaml and one YAML file per account.",
    )(func)


def out_option(func: F) -> F:
    return click.option(
        "--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
        help="Directory for the synthesized Terraform JSON (cdktf.out layout).",
    )(func)


def output_option(func: F) -> F:
    return click.option(
        "--output", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
        help="text for people, json for scripts.",
    )(func)


def aws_options(func: F) -> F:
    """--profile / --region / --endpoint-url, named as the AWS CLI names them."""
    func = click.option("--endpoint-url", default=None, envvar="AWS_ENDPOINT_URL",
                        help="Send AWS calls to this endpoint (e.g. the sandbox: http://127.0.0.1:5000).")(func)
    func = click.option("--region", default=None, help="AWS region (default: the account's region).")(func)
    func = click.option("--profile", default=None, envvar="AWS_PROFILE",
                        help="Named AWS CLI profile to use.")(func)
    return func


def handle_errors(func: F) -> F:
    """Turn fleetform errors into a clear message and the documented exit status; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            output = kwargs.get("output")
            if output == "json":
                click.echo(json.dumps({"ok": False, "problems": [p.as_dict() for p in exc.problems]}, indent=2))
            else:
                count = len(exc.problems)
                click.secho(f"configuration has {count} problem{'s' if count != 1 else ''}:", fg="red", err=True)
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
            sys.exit(exc.exit_code)
        except FleetformError as exc:
            if kwargs.get("output") == "json":  # scripts get an object on stdout, with the same exit status
                click.echo(json.dumps({"ok": False, "error": str(exc), "problems": []}, indent=2))
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
