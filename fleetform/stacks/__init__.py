"""Stacks built from the configuration; ``python -m fleetform.stacks`` is the cdktf.json app."""

import fleetform.engine  # noqa: F401  (first: it sets how jsii starts, before cdktn is imported)
