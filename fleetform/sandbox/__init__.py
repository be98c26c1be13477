"""The offline AWS sandbox: a moto server on 127.0.0.1 seeded from accounts/ (docs/upgrade.md)."""
