"""Command line: ``fleetform ...`` and ``cluster-upgrade ...``."""
