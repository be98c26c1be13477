"""moto's server with the two read-only AWS answers a slot stack plans with and moto lacks (the
real-provider lane's MotoServer runs this instead of ``python -m moto.server``; same arguments).

- SSM public parameters ``/aws/service/eks/optimized-ami/<k8s>/<os>/<arch>/<variant>/recommended/
  release_version`` (the node groups' AMI release, documented by AWS in "Retrieve recommended Amazon
  Linux AMI IDs"): answered on demand as ``<k8s>.0-20251120``.
- EKS ``DescribeAddonVersions`` (the ``aws_eks_addon_version`` data source): one version per add-on,
  compatible with the asked Kubernetes version and its default, in the botocore service model's shape.

Nothing here is read by fleetform's own code; only Terraform's provider sees these answers.
"""

from __future__ import annotations

import re
import sys
from typing import Any

RELEASE_PARAMETER = re.compile(
    r"^/aws/service/eks/optimized-ami/(\d+\.\d+)/[^/]+/[^/]+/[^/]+/recommended/release_version$")
RELEASE_DATE = "20251120"


def _patch_ssm() -> None:
    from collections import defaultdict

    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ParameterDict

    original = ParameterDict._check_loading_status

    def check_loading_status(self: ParameterDict, key: str) -> None:
        original(self, key)
        match = RELEASE_PARAMETER.match(str(key or ""))
        if match and not dict.get(self, key):
            defaultdict.__getitem__(self, key).append(Parameter(
                account_id=self.account_id, name=key, value=f"{match.group(1)}.0-{RELEASE_DATE}",
                parameter_type="String", description=None, allowed_pattern=None, keyid=None,
                last_modified_date=utcnow(), version=1, data_type="text"))

    ParameterDict._check_loading_status = check_loading_status  # type: ignore[method-assign]


def _patch_eks() -> None:
    import json

    from moto.eks import urls
    from moto.eks.responses import EKSResponse

    def describe_addon_versions(self: EKSResponse) -> Any:
        name = self._get_param("addonName") or "vpc-cni"
        version = self._get_param("kubernetesVersion") or "1.34"
        body = {"addons": [{
            "addonName": name, "type": "networking", "owner": "aws", "publisher": "eks",
            "addonVersions": [{
                "addonVersion": "v1.0.0-eksbuild.1", "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2"], "requiresConfiguration": False, "requiresIamPermissions": False,
                "compatibilities": [{"clusterVersion": version, "platformVersions": ["*"], "defaultVersion": True}],
            }],
        }]}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    EKSResponse.describe_addon_versions = describe_addon_versions  # type: ignore[attr-defined]
    urls.url_paths["{0}/addons/supported-versions$"] = urls.response.dispatch


def main() -> None:
    _patch_ssm()
    _patch_eks()
    from moto.server import main as serve

    serve(sys.argv[1:])


if __name__ == "__main__":
    main()
