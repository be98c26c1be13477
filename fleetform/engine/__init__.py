"""The thin resource layer on the cdktn core (DESIGN section 2, decision 0004).

Resources are emitted as raw Terraform attributes; the prebuilt provider bindings are never
imported at run time. tests/test_schema_conformance.py checks every emitted type and
attribute against hashicorp/aws 6.69.1 instead.
"""

from fleetform.engine.resource import (
    AWS_PROVIDER_CONSTRAINT,
    AwsProvider,
    Block,
    DataSource,
    Dependable,
    Resource,
    StackBlocks,
    output,
    policy_json,
    resolve,
)

__all__ = ["AWS_PROVIDER_CONSTRAINT", "AwsProvider", "Block", "DataSource", "Dependable", "Resource",
           "StackBlocks", "output", "policy_json", "resolve"]
