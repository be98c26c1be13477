"""The fleetform-protect-bastion-tag SCP: only fleetform may put Name=fleetform-bastion on anything,
take it off, or change what the bastion's launch template and Auto Scaling group launch.

Requests are evaluated (tests/iam_eval.py) against the documents as synthesized, with the request
context AWS documents for each action: tags in the request as ``aws:RequestTag/<key>`` and
``aws:TagKeys``, tags of the target as ``aws:ResourceTag/<key>``, tag-on-create as ec2:CreateTags
with ``ec2:CreateAction``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from iam_eval import Request, denied_by

from fleetform.config import load_config
from fleetform.constructs.scp_library import (
    BUILTIN,
    MAX_SCP_CHARS,
    GuardrailContext,
    document_text,
    protect_bastion_tag,
)
from fleetform.naming import BASTION_NAME_TAG
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth

GUARDRAIL = "fleetform-protect-bastion-tag"
PROD, MANAGEMENT = "333333333333", "111111111111"
REGION = "ap-northeast-1"
OU = "${aws_organizations_organizational_unit.org_ou-%s.id}"
ROOT = "${aws_organizations_organization.org_organization.roots[0].id}"

INSTANCE = f"arn:aws:ec2:{REGION}:{PROD}:instance/i-0123456789abcdef0"
TEMPLATE = f"arn:aws:ec2:{REGION}:{PROD}:launch-template/lt-0123456789abcdef0"
GROUP = f"arn:aws:autoscaling:{REGION}:{PROD}:autoScalingGroup:0123abcd:autoScalingGroupName/fleetform-bastion"
OTHER_GROUP = f"arn:aws:autoscaling:{REGION}:{PROD}:autoScalingGroup:4567cdef:autoScalingGroupName/workers"

DEVELOPER = f"arn:aws:iam::{PROD}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Developer_0123456789abcdef"
ADMIN = f"arn:aws:iam::{PROD}:role/Admin"
EXEMPT = [f"arn:aws:iam::{PROD}:role/fleetform-apply", f"arn:aws:iam::{PROD}:role/OrganizationAccountAccessRole"]


@pytest.fixture(scope="module")
def org(stack_json) -> dict:
    return stack_json("organization")


def scp(org: dict, name: str) -> dict:
    return json.loads(org["resource"]["aws_organizations_policy"][f"scp-{name}_policy"]["content"])


def scps_on_path(org: dict, ou_path: str) -> dict[str, dict]:
    """Every SCP (name -> document) attached to the root or to an OU on ``ou_path``'s way down."""
    parts = ou_path.split("/")
    targets = {ROOT} | {OU % "--".join(parts[:i]) for i in range(1, len(parts) + 1)}
    names = {re.sub(r"_attach-.*$", "", key).removeprefix("scp-")
             for key, body in org["resource"]["aws_organizations_policy_attachment"].items()
             if body["target_id"] in targets}
    return {name: scp(org, name) for name in names}


def tag_request(action: str, principal: str, tags: dict[str, str], resource: str = "*",
                resource_tags: dict[str, str] | None = None, **context: str) -> Request:
    keys = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        keys["aws:TagKeys"] = sorted(tags)  # type: ignore[assignment]
    keys |= {f"aws:ResourceTag/{k}": v for k, v in (resource_tags or {}).items()}
    return Request(action, principal, resource, {"aws:RequestedRegion": REGION, **keys, **context})


NAME = BASTION_TAGGED = {"Name": BASTION_NAME_TAG}  # as request tags, as the target's tags
# what someone other than fleetform must not be able to do, with the statement that refuses it
FORBIDDEN = {
    "tag another instance as the bastion": ("DenyBastionNameTagOnRequests", tag_request(
        "ec2:CreateTags", DEVELOPER, NAME, INSTANCE, {"Name": "sidekiq-worker"})),
    "launch an instance with the tag": ("DenyBastionNameTagOnRequests", tag_request(
        "ec2:RunInstances", DEVELOPER, NAME, INSTANCE)),
    "tag on create while launching": ("DenyBastionNameTagOnRequests", tag_request(
        "ec2:CreateTags", DEVELOPER, NAME, INSTANCE, **{"ec2:CreateAction": "RunInstances"})),
    "launch an EC2 fleet with the tag": ("DenyBastionNameTagOnRequests", tag_request(
        "ec2:CreateFleet", DEVELOPER, NAME, INSTANCE)),
    "create a launch template tagged as the bastion": ("DenyBastionNameTagOnRequests", tag_request(
        "ec2:CreateLaunchTemplate", DEVELOPER, NAME, TEMPLATE)),
    "create a group that propagates the tag": ("DenyBastionNameTagOnRequests", tag_request(
        "autoscaling:CreateAutoScalingGroup", ADMIN, NAME, OTHER_GROUP)),
    "add the tag to another group": ("DenyBastionNameTagOnRequests", tag_request(
        "autoscaling:CreateOrUpdateTags", ADMIN, NAME, OTHER_GROUP, {"Name": "workers"})),
    "rename the bastion": ("DenyChangingBastionNameTag", tag_request(
        "ec2:CreateTags", ADMIN, {"Name": "not-the-bastion"}, INSTANCE, BASTION_TAGGED)),
    "remove the bastion's Name tag": ("DenyChangingBastionNameTag", tag_request(
        "ec2:DeleteTags", ADMIN, {"Name": BASTION_NAME_TAG}, INSTANCE, BASTION_TAGGED)),
    "remove every tag of the bastion": ("DenyRemovingAllBastionTags", tag_request(
        "ec2:DeleteTags", ADMIN, {}, INSTANCE, BASTION_TAGGED)),
    "change the bastion's launch template": ("ProtectBastionLaunchTemplate", tag_request(
        "ec2:CreateLaunchTemplateVersion", ADMIN, {}, TEMPLATE, BASTION_TAGGED)),
    "point the bastion group at another template": ("ProtectBastionGroup", tag_request(
        "autoscaling:UpdateAutoScalingGroup", ADMIN, {}, GROUP, BASTION_TAGGED)),
    "attach another instance to the bastion group": ("ProtectBastionGroup", tag_request(
        "autoscaling:AttachInstances", ADMIN, {}, GROUP, BASTION_TAGGED)),
}
# ordinary work that the guardrail must leave alone
ALLOWED = {
    "tag a worker": tag_request("ec2:CreateTags", DEVELOPER, {"Name": "sidekiq-worker"}, INSTANCE),
    "launch a worker": tag_request("ec2:RunInstances", DEVELOPER, {"Name": "sidekiq-worker"}, INSTANCE),
    "cost tag on the bastion": tag_request("ec2:CreateTags", ADMIN, {"CostCenter": "sre"}, INSTANCE,
                                           BASTION_TAGGED),
    "remove a worker's Name": tag_request("ec2:DeleteTags", ADMIN, {"Name": "sidekiq-worker"}, INSTANCE,
                                          {"Name": "sidekiq-worker"}),
    "a value that only looks alike": tag_request("ec2:CreateTags", ADMIN, {"Name": "fleetform-bastion-old"},
                                                 INSTANCE),
    "update another group": tag_request("autoscaling:UpdateAutoScalingGroup", ADMIN, {}, OTHER_GROUP,
                                        {"Name": "workers"}),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_guardrail_denies_the_tag_to_everyone_else(org, case):
    sid, request = FORBIDDEN[case]
    assert denied_by([scp(org, GUARDRAIL)], request) == [sid]


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
@pytest.mark.parametrize("principal", EXEMPT + [f"arn:aws:iam::{MANAGEMENT}:role/fleetform-pipeline-apply"])
def test_fleetforms_apply_roles_are_exempt(org, case, principal):
    _, request = FORBIDDEN[case]
    assert denied_by([scp(org, GUARDRAIL)], Request(request.action, principal, request.resource,
                                                    request.context)) == []


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_guardrail_leaves_ordinary_tagging_alone(org, case):
    assert denied_by([scp(org, GUARDRAIL)], ALLOWED[case]) == []


def test_break_glass_principal_is_exempt():
    glass = "arn:aws:iam::888888888888:role/break-glass"
    document = protect_bastion_tag(GuardrailContext((REGION,), "bucket", MANAGEMENT, glass))
    for sid, request in FORBIDDEN.values():
        assert denied_by([document], request) == [sid]
        assert denied_by([document], Request(request.action, glass, request.resource, request.context)) == []


def test_bastion_stack_applies_under_every_scp_of_its_account(org, stack_json):
    """What fleetform-apply does for prod-bastion, against every SCP on prod's path (Root, Workloads,
    Workloads/Prod): no SCP denies it. The tags are the ones the stack really sets."""
    stack = stack_json("prod-bastion")["resource"]
    template = stack["aws_launch_template"]["bastion_launch-template"]
    instance_tags = next(t["tags"] for t in template["tag_specifications"] if t["resource_type"] == "instance")
    group_tags = {t["key"]: t["value"] for t in stack["aws_autoscaling_group"]["bastion_asg"]["tag"]}
    assert template["tags"]["Name"] == instance_tags["Name"] == group_tags["Name"] == BASTION_NAME_TAG
    documents = scps_on_path(org, "Workloads/Prod")
    assert GUARDRAIL in documents and "require-imdsv2" in documents
    apply = EXEMPT[0]
    requests = [
        tag_request("ec2:CreateLaunchTemplate", apply, template["tags"], TEMPLATE),
        tag_request("ec2:CreateTags", apply, template["tags"], TEMPLATE,
                    **{"ec2:CreateAction": "CreateLaunchTemplate"}),
        tag_request("ec2:CreateLaunchTemplateVersion", apply, {}, TEMPLATE, template["tags"]),
        tag_request("autoscaling:CreateAutoScalingGroup", apply, group_tags, GROUP),
        # Auto Scaling checks that the caller may launch from the template (its instance tags) ...
        tag_request("ec2:RunInstances", apply, instance_tags, INSTANCE, **{"ec2:MetadataHttpTokens": "required"}),
        tag_request("autoscaling:UpdateAutoScalingGroup", apply, {}, GROUP, group_tags),
    ]
    for request in requests:
        assert denied_by(documents.values(), request) == [], request
    # ... and launches through its service-linked role, which SCPs do not affect; if they did, the
    # guardrail would stop the bastion's own launches, so that role must stay a service-linked one
    launch_as_service = tag_request("ec2:RunInstances", "arn:aws:iam::333333333333:role/aws-service-role/"
                                    "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_fleetform-bastion",
                                    instance_tags, INSTANCE, **{"ec2:MetadataHttpTokens": "required"})
    assert denied_by([documents[GUARDRAIL]], launch_as_service) == ["DenyBastionNameTagOnRequests"]
    group = stack["aws_autoscaling_group"]["bastion_asg"]
    assert group["service_linked_role_arn"] == "${aws_iam_service_linked_role.bastion_autoscaling-role.arn}"
    assert stack["aws_iam_service_linked_role"]["bastion_autoscaling-role"]["aws_service_name"] == \
        "autoscaling.amazonaws.com"


def test_operator_policy_trusts_exactly_the_protected_tag(stack_json):
    """The operator policy and the guardrail must name the same tag and value, compared exactly."""
    policy = json.loads(stack_json("prod-bastion")["resource"]["aws_iam_policy"]["bastion_operator-policy"]["policy"])
    start = next(s for s in policy["Statement"] if s.get("Sid") == "StartSessionOnTheBastion")
    assert start["Condition"]["StringEquals"] == {"ssm:resourceTag/Name": BASTION_NAME_TAG}


def test_attached_where_bastions_run(org):
    attached = {body["target_id"] for key, body in org["resource"]["aws_organizations_policy_attachment"].items()
                if key.startswith(f"scp-{GUARDRAIL}_attach-")}
    # dev and stg (Workloads/NonProd) and prod (Workloads/Prod) have a bastion; nothing else does
    assert attached == {OU % "Workloads--Prod", OU % "Workloads--NonProd"}
    assert BUILTIN[GUARDRAIL].attach == "bastion-ous"


def test_follows_the_accounts_that_have_a_bastion(accounts_copy, tmp_path):
    text = (accounts_copy / "log-archive.yaml").read_text()
    (accounts_copy / "log-archive.yaml").write_text(text + "network: {cidr: 10.50.0.0/16, azs: 2, nat: single}\n"
                                                           "bastion: {instance_type: t4g.small}\n")
    for name in ("dev", "stg"):
        path = accounts_copy / f"{name}.yaml"
        path.write_text(path.read_text().replace("bastion: {instance_type: t3.small}\n", ""))
    synth(load_config(accounts_copy), tmp_path / "out")
    body = json.loads((tmp_path / "out/stacks/organization/cdk.tf.json").read_text())
    attached = {b["target_id"] for k, b in body["resource"]["aws_organizations_policy_attachment"].items()
                if k.startswith(f"scp-{GUARDRAIL}_attach-")}
    assert attached == {OU % "Security", OU % "Workloads--Prod"}


def test_fits_the_scp_size_limit_with_a_break_glass_principal():
    glass = "arn:aws:iam::888888888888:role/" + "b" * 64
    text = document_text(protect_bastion_tag(GuardrailContext((REGION,), "bucket", MANAGEMENT, glass)))
    assert len(text) <= MAX_SCP_CHARS


def test_counts_against_the_scp_quota_of_a_bastion_ou(accounts_copy):
    scps = "    - {name: require-imdsv2, library: require-imdsv2, targets: [Workloads]}\n"
    text = (accounts_copy / "organization.yaml").read_text()
    extra = "".join(f"    - {{name: extra-{i}, library: deny-iam-users, targets: [Workloads/Prod]}}\n"
                    for i in range(4))
    (accounts_copy / "organization.yaml").write_text(text.replace(scps, scps + extra))
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2, result.output
    assert "organization.scps.4.targets.0: Workloads/Prod would have 6 SCPs attached, AWS allows 5 " \
           f"(FullAWSAccess, {GUARDRAIL}, extra-0, extra-1, extra-2, extra-3)" in result.output
    assert "Traceback" not in result.output


GLOBAL_KEYS = {"aws:principalarn"}  # present in every request context


def action_condition_keys(definition: list[dict], action: str) -> list[str]:
    prefix, name = action.split(":")
    service = next(s for s in definition if s["prefix"] == prefix)
    privilege = next(p for p in service["privileges"] if p["privilege"] == name)
    return [key for r in privilege["resource_types"] for key in r["condition_keys"]]


def test_every_condition_key_is_one_that_its_actions_have():
    """A deny whose key never appears in an action's request context silently never applies (parliament
    accepts any aws:* key on any action); the service authorization reference lists the real ones."""
    import parliament

    definition = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
    document = protect_bastion_tag(GuardrailContext((REGION,), "bucket", MANAGEMENT))
    for statement in document["Statement"]:
        keys = {key for block in statement["Condition"].values() for key in block}
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            known = action_condition_keys(definition, action)
            for key in keys:
                if key.lower() in GLOBAL_KEYS:
                    continue
                assert any(re.fullmatch(re.escape(k).replace(re.escape("${TagKey}"), r"[^/]+"), key, re.IGNORECASE)
                           for k in known), f"{statement['Sid']}: {action} has no condition key {key}"


@pytest.mark.parametrize(("condition", "denied"), [
    ({"StringEquals": {"aws:RequestTag/Name": "x"}}, False),  # missing key: a positive operator is false
    ({"StringNotEquals": {"aws:RequestTag/Name": "x"}}, True),  # ... a negated one is true
    ({"StringEqualsIfExists": {"aws:RequestTag/Name": "x"}}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Name"]}}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Name"]}}, True),
    ({"Null": {"aws:TagKeys": "true"}}, True),
    ({"Null": {"aws:TagKeys": "false"}}, False),
    ({"StringEquals": {"AWS:REQUESTEDREGION": REGION}}, True),  # key names are case-insensitive
    ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/fleetform-*"}}, True),
    ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/aws-reserved/*"}}, False),
])
def test_evaluator_follows_aws_semantics_for_missing_keys(condition, denied):
    document = {"Statement": [{"Effect": "Deny", "Action": "ec2:*", "Resource": "*", "Condition": condition}]}
    request = Request("EC2:DeleteTags", DEVELOPER, INSTANCE, {"aws:RequestedRegion": REGION})
    assert denied_by([document], request) == (["0"] if denied else [])


def test_evaluator_refuses_what_it_does_not_know():
    document = {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                               "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}]}
    with pytest.raises(ValueError, match="not supported"):
        denied_by([document], Request("ec2:RunInstances", DEVELOPER))
