"""Running Terraform for fleetform: binary selection, the runner, plan summaries and locks."""

from fleetform.terraform.binary import TerraformBinary, find_terraform
from fleetform.terraform.runner import Terraform, TerraformResult

__all__ = ["Terraform", "TerraformBinary", "TerraformResult", "find_terraform"]
