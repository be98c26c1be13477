"""moto's server with what the example organization's stacks apply and moto 5.2 lacks (the real-provider
lane's MotoServer runs this instead of ``python -m moto.server``; same arguments). Each addition follows
botocore's service model (moto's own router and serializer, or the model's member names) and AWS's
documented behaviour; tests/test_moto_lane_server.py checks the answers against the models.

- SSM public parameters ``/aws/service/eks/optimized-ami/<k8s>/<os>/<arch>/<variant>/recommended/
  release_version`` (the node groups' AMI release, documented by AWS in "Retrieve recommended Amazon
  Linux AMI IDs"): answered on demand as ``<k8s>.0-20251120``.
- ACM ``RequestCertificate`` with ``KeyAlgorithm``: moto always issues RSA_2048; here the certificate
  reports the algorithm it was requested with (the provider forces a replacement when it differs).
- AMP ``CreateWorkspace`` with ``kmsKeyArn``: moto drops it; here DescribeWorkspace returns it.
- A security group rule that references another group returns its description (moto loses it), and a
  launch template's own tags stay out of its instances' tag specifications (moto copies them there).
- EKS add-ons and their versions, access entries, access policies, Pod Identity, the cluster security
  group and the cluster and node group settings moto drops: tests/moto_lane_eks.py. The Ops hub's RAM
  share and Transit Gateway: tests/moto_lane_hub.py.

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
