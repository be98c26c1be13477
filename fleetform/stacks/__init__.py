"""Stacks built from the configuration; ``python -m fleetform.stacks`` is the cdktf.json app."""
