"""fleetform: an AWS Organizations + EKS estate defined with CDK for Terraform (cdktn)."""

import os

__version__ = "0.1.0"

# jsii's runtime prints a full-screen banner on Node 20 (end of life for jsii, still working);
# operators read plans and errors on this output, so keep it clean unless they ask otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
