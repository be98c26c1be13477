"""Reusable constructs. They take small typed props and know nothing of accounts/ files."""
