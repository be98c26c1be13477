"""The resource layer on the cdktn core (DESIGN section 2, decision 0004).

Resources are emitted as raw Terraform attributes, collected per stack in one document; the
prebuilt provider bindings are never imported at run time. tests/test_schema_conformance.py
checks every emitted type and attribute against hashicorp/aws 6.69.1 instead.
"""

from fleetform.engine.jsii_process import use_direct_kernel

use_direct_kernel()  # before anything imports cdktn, which starts jsii's kernel (decision 0006)

from fleetform.engine.document import (  # noqa: E402
    Block,
    Construct,
    CrossStackExpressionError,
    Dependable,
    Local,
    Provider,
    Scope,
    StackDocument,
    Variable,
    logical_id_for_path,
    output,
    readable_logical_id,
)
from fleetform.engine.resource import (  # noqa: E402
    AWS_PROVIDER_CONSTRAINT,
    AwsProvider,
    DataSource,
    Resource,
    add_check_skips,
    policy_json,
)

__all__ = [
    "AWS_PROVIDER_CONSTRAINT", "AwsProvider", "Block", "Construct", "CrossStackExpressionError", "DataSource",
    "Dependable", "Local", "Provider", "Resource", "Scope", "StackDocument", "Variable", "add_check_skips",
    "logical_id_for_path", "output", "policy_json", "readable_logical_id",
]
