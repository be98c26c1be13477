"""Reusable constructs. They take small typed props and know nothing of accounts/ files."""

import fleetform.engine  # noqa: F401  (first: it sets how jsii starts, before cdktn is imported)
