"""moto's server with what the example organization's stacks apply and moto 5.2 lacks (the real-provider
lane's MotoServer runs this instead of ``python -m moto.server``; same arguments). Each addition follows
botocore's service model (moto's own router and serializer, or the model's member names) and AWS's
documented behaviour; tests/test_moto_lane_server.py checks the answers against the models.

- SSM public parameters ``/aws/service/eks/optimized-ami/<k8s>/<os>/<arch>/<variant>/recommended/
  release_version`` (the node groups' AMI release, documented by AWS in "Retrieve recommended Amazon
  Linux AMI IDs"): answered on demand as ``<k8s>.0-20251120``.
- EKS ``DescribeAddonVersions`` (the ``aws_eks_addon_version`` data source): one version per add-on,
  compatible with the asked Kubernetes version and its default, in the botocore service model's shape.
- The cluster security group EKS creates with every cluster (``vpc_config.cluster_security_group_id``,
  which the slot stack tags for Karpenter and opens to the bastion): moto's CreateCluster makes none,
  so here it creates ``eks-cluster-sg-<name>`` in the cluster's VPC as EKS does.

- ACM ``RequestCertificate`` with ``KeyAlgorithm``: moto always issues RSA_2048; here the certificate
  reports the algorithm it was requested with (the provider forces a replacement when it differs).
- AMP ``CreateWorkspace`` with ``kmsKeyArn``: moto drops it; here DescribeWorkspace returns it.
- A security group rule that references another group returns its description (moto loses it), and a
  launch template's own tags stay out of its instances' tag specifications (moto copies them there).
- EKS add-ons, access entries, access policies, Pod Identity and the cluster and node group settings
  moto drops: tests/moto_lane_eks.py. The Ops hub's RAM share and Transit Gateway: tests/moto_lane_hub.py.

Nothing here is read by fleetform's own code; only Terraform's provider sees these answers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
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


def _patch_acm() -> None:
    from moto.acm.models import CertBundle
    from moto.acm.responses import AWSCertificateManagerResponse

    original_request, original_describe = AWSCertificateManagerResponse.request_certificate, CertBundle.describe

    def request_certificate(self: AWSCertificateManagerResponse) -> Any:
        result = original_request(self)
        algorithm = self._get_param("KeyAlgorithm")
        if algorithm:
            arn = result.result["CertificateArn"]
            self.acm_backend.get_certificate(arn).lane_key_algorithm = algorithm
        return result

    def describe(self: CertBundle) -> dict[str, Any]:
        result = original_describe(self)
        if getattr(self, "lane_key_algorithm", None):
            result["Certificate"]["KeyAlgorithm"] = self.lane_key_algorithm
        return result

    AWSCertificateManagerResponse.request_certificate = request_certificate  # type: ignore[method-assign]
    CertBundle.describe = describe  # type: ignore[method-assign]


def _patch_amp() -> None:
    import json

    from moto.amp.models import Workspace
    from moto.amp.responses import PrometheusServiceResponse

    original_create, original_to_dict = PrometheusServiceResponse.create_workspace, Workspace.to_dict

    def create_workspace(self: PrometheusServiceResponse) -> str:
        answer = json.loads(original_create(self))
        key = json.loads(self.body).get("kmsKeyArn")
        if key:
            self.amp_backend.describe_workspace(workspace_id=answer["workspaceId"]).lane_kms_key_arn = key
            answer["kmsKeyArn"] = key
        return json.dumps(answer)

    def to_dict(self: Workspace) -> dict[str, Any]:
        result = original_to_dict(self)
        if getattr(self, "lane_kms_key_arn", None):
            result["kmsKeyArn"] = self.lane_kms_key_arn
        return result

    PrometheusServiceResponse.create_workspace = create_workspace  # type: ignore[method-assign]
    Workspace.to_dict = to_dict  # type: ignore[method-assign]


def _patch_security_group_rule_description() -> None:
    """A rule that references a security group keeps its description with the group pair (moto stores it
    there, and reads a rule's description only from the CIDR range)."""
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: SecurityGroupRule) -> str | None:
        return self.ip_range.get("Description") or (self.source_group or {}).get("Description")

    SecurityGroupRule.description = property(description)  # type: ignore[assignment, method-assign]


def _patch_launch_template_tags() -> None:
    """A launch template's own tags (the request's ``launch-template`` tag specification) are not part of
    the instances' template data; moto copies them into ``LaunchTemplateData.TagSpecifications``."""
    from moto.ec2.models import EC2Backend

    original = EC2Backend.create_launch_template

    def create(self: EC2Backend, name: str, description: str, template_data: dict[str, Any],
               tag_spec: dict[str, Any]) -> Any:
        specs = [t for t in template_data.get("TagSpecifications") or [] if t.get("ResourceType") != "launch-template"]
        if "TagSpecifications" in template_data:
            template_data = {**template_data, "TagSpecifications": specs}
        return original(self, name, description, template_data, tag_spec)

    EC2Backend.create_launch_template = create  # type: ignore[method-assign]


def install() -> None:
    """Every addition, into this process's moto (the server's, or a test's in-process one)."""
    import moto_lane_eks
    import moto_lane_hub

    _patch_ssm()
    _patch_eks()
    _patch_cluster_security_group()
    _patch_acm()
    _patch_amp()
    _patch_security_group_rule_description()
    _patch_launch_template_tags()
    moto_lane_eks.install()
    moto_lane_hub.install()


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    install()
    from moto.server import main as serve

    serve(sys.argv[1:])


if __name__ == "__main__":
    main()
