"""The cdktf.json app: ``cdktn synth`` runs this with CDKTF_OUTDIR set."""

import os
import sys

from fleetform.config import load_config
from fleetform.errors import ConfigurationError
from fleetform.stacks.app import synth


def main() -> int:
    try:
        config = load_config(os.environ.get("FLEETFORM_CONFIG", "accounts"))
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    synth(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
