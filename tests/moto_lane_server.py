"""moto's server with the two read-only AWS answers a slot stack plans with and moto lacks (the
real-provider lane's MotoServer runs this instead of ``python -m moto.server``; same arguments).

- SSM public parameters ``/aws/service/eks/optimized-ami/<k8s>/<os>/<arch>/<variant>/recommended/
  release_version`` (the node groups' AMI release, documented by AWS in "Retrieve recommended Amazon
  Linux AMI IDs"): answered on demand as ``<k8s>.0-20251120``.
- EKS ``DescribeAddonVersions`` (the ``aws_eks_addon_version`` data source): one version per add-on,
  compatible with the asked Kubernetes version and its default, in the botocore service model's shape.
- The cluster security group EKS creates with every cluster (``vpc_config.cluster_security_group_id``,
  which the slot stack tags for Karpenter and opens to the bastion): moto's CreateCluster makes none,
  so here it creates ``eks-cluster-sg-<name>`` in the cluster's VPC as EKS does.

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


def _patch_cluster_security_group() -> None:
    from moto.ec2.models import ec2_backends
    from moto.eks.models import Cluster

    original = Cluster.__init__

    def init(self: Cluster, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        config = self.resources_vpc_config or {}
        subnets = config.get("subnetIds") or []
        if subnets and not config.get("clusterSecurityGroupId"):
            ec2 = ec2_backends[kwargs.get("account_id") or args[3]][kwargs.get("region_name") or args[4]]
            vpc_id = ec2.get_subnet(subnets[0]).vpc_id
            group = ec2.create_security_group(f"eks-cluster-sg-{self.name}", "EKS created security group",
                                              vpc_id=vpc_id, tags={f"kubernetes.io/cluster/{self.name}": "owned"})
            config["clusterSecurityGroupId"] = group.id
            self.resources_vpc_config = config

    Cluster.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    _patch_ssm()
    _patch_eks()
    _patch_cluster_security_group()
    from moto.server import main as serve

    serve(sys.argv[1:])


if __name__ == "__main__":
    main()
