"""Run Terraform commands in a stack's working directory, never interactively."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetform.errors import FleetformError
from fleetform.terraform.binary import TerraformBinary

AUTOMATION_ENV = {
    "CHECKPOINT_DISABLE": "1",  # no version check over the network
    "TF_IN_AUTOMATION": "1",
    "TF_INPUT": "0",
}




def aws_env(profile: str | None, region: str | None, endpoint_url: str | None = None) -> dict[str, str]:
    """What makes Terraform's AWS provider and S3 backend use ``--profile``/``--region``/``--endpoint-url``
    (they read only the environment and their own settings, never fleetform's options); without it a
    command could check one endpoint and apply to another."""
    env: dict[str, str] = {}
    if profile:
        env["AWS_PROFILE"] = profile
    if region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


# terraform's warning about a missing TF_CLI_CONFIG_FILE: noise in an error report
CLI_CONFIG_WARNING = re.compile(r"There are some problems with the CLI configuration:.*?╵\n?", re.S)


class TerraformError(FleetformError):
    """A Terraform command failed; the message carries the end of its error output."""

    def __init__(self, message: str, result: TerraformResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class TerraformResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def error_text(self, limit: int = 3000) -> str:
        text = CLI_CONFIG_WARNING.sub("", self.stderr).strip() or self.stdout.strip()
        return text[-limit:]


@dataclass
class Terraform:
    """``Terraform(find_terraform()).plan(stack_dir, "tfplan")``; every call is non-interactive."""

    binary: TerraformBinary
    env: Mapping[str, str] | None = None
    log: Callable[[str], None] | None = None  # receives one line per command (progress)

    def run(self, args: Sequence[str], cwd: str | Path, ok: Sequence[int] = (0,)) -> TerraformResult:
        env = {**os.environ, **AUTOMATION_ENV, **(self.env or {})}
        command = [*self.binary.argv, *args]
        if self.log:
            self.log(f"terraform {' '.join(args)}  ({cwd})")
        try:
            proc = subprocess.run(command, cwd=str(cwd), env=env, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise TerraformError(f"cannot run {self.binary.describe()}: {exc}") from None
        result = TerraformResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
        if result.code not in ok:
            raise TerraformError(f"terraform {args[0]} failed in {cwd} (exit {result.code}):\n"
                                 f"{result.error_text()}", result)
        return result

    def init(self, cwd: str | Path, backend_config: Sequence[str] = ()) -> TerraformResult:
        args = ["init", "-input=false", "-no-color", "-reconfigure"]
        args += [f"-backend-config={item}" for item in backend_config]
        return self.run(args, cwd)

    def plan(self, cwd: str | Path, plan_file: str | Path, variables: Sequence[str] = (),
             refresh_only: bool = False, lock: bool = True, destroy: bool = False) -> TerraformResult:
        """Exit code 0 = no changes, 2 = changes (``-detailed-exitcode``); other codes raise.
        ``lock=False``: no state lock (a read-only role cannot write the lock file)."""
        args = ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={plan_file}"]
        if not lock:
            args.append("-lock=false")
        if refresh_only:
            args.append("-refresh-only")
        if destroy:
            args.append("-destroy")
        args += [f"-var={item}" for item in variables]
        return self.run(args, cwd, ok=(0, 2))

    def show_json(self, cwd: str | Path, plan_file: str | Path | None = None) -> dict[str, Any]:
        args = ["show", "-json", "-no-color"] + ([str(plan_file)] if plan_file else [])
        result = self.run(args, cwd)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise TerraformError(f"terraform show -json in {cwd} printed no JSON ({exc.msg})", result) from None

    def apply(self, cwd: str | Path, plan_file: str | Path) -> TerraformResult:
        return self.run(["apply", "-input=false", "-no-color", "-auto-approve", str(plan_file)], cwd)
