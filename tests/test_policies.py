"""Every IAM-style JSON document in every synthesized stack, linted with parliament.

Found generically: any string attribute, at any depth, whose JSON has a "Statement" (role trust
and inline policies, managed and role policies, bucket/key/topic/queue/repository/secret
policies, SCPs, ...). Known policy fields must hold literal JSON (built with
``fleetform.engine.policy_json``) so that they can be linted at all. ``${...}`` interpolations
are replaced by plausible values for their place (ARNs in Resource and Principal, account ids,
regions) before linting.

Fails on parliament findings of severity MEDIUM or above, and also on the LOW findings that
mean a policy is simply wrong (an action or service prefix that does not exist, an invalid Sid),
except the few entries of ALLOWLIST, each with its reason.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # parliament imports pkg_resources
    warnings.simplefilter("ignore")
    from parliament import analyze_policy_string, enhance_finding

ACCOUNT = "123456789012"
REGION = "ap-northeast-1"
OIDC_HOST = f"oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
FAILING_SEVERITIES = {"MEDIUM", "HIGH", "CRITICAL"}
# LOW in parliament, but each means the policy does not do what it says
PROMOTED_ISSUES = {"UNKNOWN_ACTION", "UNKNOWN_PREFIX", "INVALID_SID", "NO_VERSION", "OLD_VERSION"}


@dataclass(frozen=True)
class Allowed:
    """A parliament finding accepted on purpose: its issue, a regex on its detail, optionally a regex
    the policy text must match (to narrow a vague detail), and why."""

    issue: str
    detail: str
    reason: str
    document: str = ""


# Keep it short; every entry needs its reason.
UNKNOWN_CONDITION = "UNKNOWN_CONDITION_FOR_ACTION"
_LAUNCH = r"\{'action': 'ec2:(RunInstances|CreateFleet)', 'required_format': '[^']+'\}"
ALLOWLIST: list[Allowed] = [
    Allowed("UNKNOWN_FEDERATION_SOURCE", r"^arn:aws:iam::\d{12}:oidc-provider/",
            "parliament 1.6 knows SAML providers and four web-identity hosts only; an IAM OIDC provider "
            "(EKS IAM roles for service accounts) is a valid Federated principal"),
    Allowed(UNKNOWN_CONDITION, r"^Unknown condition oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/\w+:(sub|aud) ",
            "the <provider>:sub / <provider>:aud keys of an IAM OIDC provider are not in the STS service "
            "definition, but they are how AWS documents IRSA trust policies"),
    Allowed(UNKNOWN_CONDITION, r"^Unknown condition ssm:SessionDocumentAccessCheck for action ssm:StartSession$",
            "documented in the Session Manager guide to force the session-document permission check; "
            "absent from the service authorization reference that parliament 1.6 is built from"),
    Allowed(UNKNOWN_CONDITION, r"^Unknown condition kms:EncryptionContext:aws:logs:arn for action kms:Describe",
            "AWS's documented key policy for encrypted CloudWatch Logs groups grants kms:Describe* under this "
            "condition; DescribeKey carries no encryption context, so that grant is inert, never broader"),
    Allowed("MISMATCHED_TYPE", r"^Type mismatch: Arn(Equals|Like) requires a value of type Arn but given String$",
            "AWS documents kms:EncryptionContext:aws:logs:arn with ArnEquals/ArnLike; parliament types every "
            "encryption-context key as String", document=r'"Arn(Equals|Like)":\{"kms:EncryptionContext:aws:logs:arn"'),
    Allowed("RESOURCE_MISMATCH", rf"^\[{_LAUNCH}(, {_LAUNCH})*\]$",
            "RunInstances/CreateFleet are authorized per resource, so Karpenter's policy (as upstream) grants "
            "shared resources and tagged new instances in separate statements; parliament checks each statement "
            "for every resource type on its own"),
    Allowed("RESOURCE_MISMATCH", r"^\[\{'action': 'ssm:GetParameters?', 'required_format': '[^']+'\}\]$",
            "AWS public parameters (EKS/Bottlerocket AMI ids) have no account in their ARN "
            "(arn:aws:ssm:<region>::parameter/aws/service/...); parliament wants one",
            document=r"::parameter/aws/service/"),
    Allowed(UNKNOWN_CONDITION, r"^Unknown condition elasticloadbalancing:CreateAction for action "
                               r"elasticloadbalancing:AddTags$",
            "the upstream AWS Load Balancer Controller policy; AWS documents this key for AddTags on ELBv2, "
            "parliament checks AddTags against the v1 definition"),
    Allowed(UNKNOWN_CONDITION, r"^Unknown condition kms:ResourceAliases for action kms:(DisableKey|PutKeyPolicy|"
                               r"ScheduleKeyDeletion)$",
            "AWS KMS documents kms:ResourceAliases (2021) for every operation on a KMS key resource; the "
            "guardrail names the trail, Config and session keys by alias because their key ids are random"),
    Allowed("UNKNOWN_ACTION", r"^Unknown action elasticloadbalancing:ModifyIpPools$",
            "added to ELBv2 in 2025 (IPAM pools for load balancers; botocore has ModifyIpPools); parliament "
            "1.6.4's definitions predate it"),
]

# where a policy lives decides which elements its statements must (not) have
TRUST_FIELDS = {("aws_iam_role", "assume_role_policy")}
IDENTITY_FIELDS = {
    ("aws_iam_policy", "policy"), ("aws_iam_role_policy", "policy"), ("aws_iam_user_policy", "policy"),
    ("aws_iam_group_policy", "policy"), ("aws_iam_role", "inline_policy.policy"),
    ("aws_organizations_policy", "content"), ("aws_ssoadmin_permission_set_inline_policy", "inline_policy"),
}
RESOURCE_FIELDS = {
    ("aws_s3_bucket_policy", "policy"), ("aws_kms_key", "policy"), ("aws_kms_key_policy", "policy"),
    ("aws_sns_topic", "policy"), ("aws_sns_topic_policy", "policy"), ("aws_sqs_queue", "policy"),
    ("aws_sqs_queue_policy", "policy"), ("aws_ecr_repository_policy", "policy"),
    ("aws_secretsmanager_secret", "policy"), ("aws_secretsmanager_secret_policy", "policy"),
    ("aws_cloudwatch_log_resource_policy", "policy_document"), ("aws_ecr_registry_policy", "policy"),
    ("aws_cloudwatch_event_bus_policy", "policy"), ("aws_backup_vault_policy", "policy"),
    ("aws_glacier_vault", "access_policy"), ("aws_codeartifact_domain_permissions_policy", "policy_document"),
}
KNOWN_FIELDS = TRUST_FIELDS | IDENTITY_FIELDS | RESOURCE_FIELDS
# operators that compare literally: a "*" in their value is a plain character (ArnEquals does match wildcards)
LITERAL_OPERATORS = re.compile(r"^(ForAllValues:|ForAnyValue:)?(StringEquals|StringEqualsIgnoreCase)(IfExists)?$")

# a Terraform interpolation; "$${" is an escaped, literal "${" (an IAM policy variable such as ${aws:userid})
TOKEN = re.compile(r"(?<!\$)\$\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
# stands for one interpolation while the text is parsed: interpolations may hold quotes
# (``${replace(x, "https://", "")}``), which only Terraform's evaluation turns into valid JSON
PLACEHOLDER = re.compile(r"@@tf(\d+)@@")

# plausible ARNs by referenced resource type ({n} = a name)
ARNS = {
    "aws_s3_bucket": "arn:aws:s3:::{n}",
    "aws_kms_key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "aws_kms_alias": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/{{n}}",
    "aws_iam_role": f"arn:aws:iam::{ACCOUNT}:role/{{n}}",
    "aws_iam_user": f"arn:aws:iam::{ACCOUNT}:user/{{n}}",
    "aws_iam_service_linked_role": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/example.amazonaws.com/{{n}}",
    "aws_iam_policy": f"arn:aws:iam::{ACCOUNT}:policy/{{n}}",
    "aws_iam_instance_profile": f"arn:aws:iam::{ACCOUNT}:instance-profile/{{n}}",
    "aws_iam_openid_connect_provider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_HOST}",
    "aws_sns_topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{{n}}",
    "aws_sqs_queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{{n}}",
    "aws_cloudwatch_log_group": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{{n}}",
    "aws_eks_cluster": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{{n}}",
    "aws_eks_node_group": f"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{{n}}/{{n}}/0123abcd",
    "aws_ecr_repository": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{{n}}",
    "aws_secretsmanager_secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{{n}}-AbCdEf",
    "aws_ssm_document": f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/{{n}}",
    "aws_ssm_parameter": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{{n}}",
    "aws_codebuild_project": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{{n}}",
    "aws_codepipeline": f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{{n}}",
    "aws_codestarconnections_connection": f"arn:aws:codestar-connections:{REGION}:{ACCOUNT}:connection/{{n}}",
    "aws_codeconnections_connection": f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/{{n}}",
    "aws_cloudtrail": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{{n}}",
    "aws_dynamodb_table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{n}}",
    "aws_lambda_function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{{n}}",
    "aws_instance": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0",
    "aws_launch_template": f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0",
    "aws_vpc": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-0123456789abcdef0",
    "aws_subnet": f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0123456789abcdef0",
    "aws_security_group": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0",
    "aws_route53_zone": "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ",
    "aws_acm_certificate": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/1234abcd-12ab-34cd-56ef-1234567890ab",
    "aws_organizations_organization": f"arn:aws:organizations::{ACCOUNT}:organization/o-exampleorgid",
    "aws_organizations_account": f"arn:aws:organizations::{ACCOUNT}:account/o-exampleorgid/{ACCOUNT}",
    "aws_prometheus_workspace": f"arn:aws:aps:{REGION}:{ACCOUNT}:workspace/ws-0123abcd",
    "aws_guardduty_detector": f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/0123abcd",
    "aws_cloudwatch_event_rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{{n}}",
    "aws_sfn_state_machine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{{n}}",
}
GENERIC_ARN = f"arn:aws:iam::{ACCOUNT}:role/example"


@dataclass
class Document:
    stack: str
    address: str  # aws_iam_role.x
    field: str  # assume_role_policy, inline_policy.policy, ...
    tf_type: str
    text: str  # as synthesized, with ${...} interpolations

    @property
    def expressions(self) -> list[str]:
        return TOKEN.findall(self.text)

    def parse(self) -> Any:
        """The document as JSON, each interpolation replaced by a placeholder (raises ValueError)."""
        return parse_policy(self.text)

    def __str__(self) -> str:
        return f"{self.stack}: {self.address}.{self.field}"


# --- extraction -------------------------------------------------------------------------------

def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(field path without list indexes, string) for every string inside a resource body."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "//":
                yield from _strings(item, f"{path}.{key}" if path else key)


def parse_policy(text: str) -> Any:
    counter = iter(range(10**6))
    return json.loads(TOKEN.sub(lambda _: f"@@tf{next(counter)}@@", text))


def _has_statement(text: str) -> bool:
    try:
        parsed = parse_policy(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "Statement" in parsed


def extract_documents(stack: str, document: dict) -> tuple[list[Document], list[str]]:
    """(policy documents, problems): known policy fields that are not literal JSON are problems."""
    found: list[Document] = []
    problems: list[str] = []
    for section in ("resource", "data"):
        for tf_type, instances in document.get(section, {}).items():
            for name, body in instances.items():
                address = f"{'data.' if section == 'data' else ''}{tf_type}.{name}"
                for path, text in _strings(body, ""):
                    stripped = text.strip()
                    if stripped.startswith("{") and _has_statement(stripped):
                        found.append(Document(stack, address, path, tf_type, stripped))
                    elif (tf_type, path) in KNOWN_FIELDS:
                        problems.append(f"{stack}: {address}.{path}: not a literal JSON policy ({text[:80]!r}); "
                                        "build it with fleetform.engine.policy_json so it can be checked")
    return found, problems


# --- interpolation -> plausible values ----------------------------------------------------------

def _referenced_type(expression: str) -> str | None:
    """The resource type an interpolation refers to, also through remote state outputs
    (``...outputs.cross-stack-output-aws_kms_keystate-key_keyarn``)."""
    for candidate in re.findall(r"aws_[a-z0-9_]+", expression):
        matches = [t for t in ARNS if candidate.startswith(t)]
        if matches:
            return max(matches, key=len)
    return None


def plausible(expression: str, context: str, whole: bool = True) -> str:
    """A value for ``${expression}`` standing in ``context`` (Resource, Principal.AWS, Condition, ...);
    ``whole``: the interpolation starts the string (so it may be a whole ARN)."""
    attribute = re.split(r"[.\[\]]", expression.rstrip("]"))[-1].lower()
    if context == "Principal.Service":
        return "ec2.amazonaws.com"
    if context == "Principal.Federated":
        return ARNS["aws_iam_openid_connect_provider"]
    if context == "Condition.key":
        oidc = any(word in expression for word in ("oidc", "openid_connect", "url", "issuer"))
        return OIDC_HOST if oidc else "aws:PrincipalTag/x"
    if attribute.endswith(("account_id", "owner_id", "account")):
        return ACCOUNT
    if attribute == "partition":
        return "aws"
    if "aws_region" in expression:
        return REGION
    if attribute.endswith(("url", "issuer")):
        return f"https://{OIDC_HOST}"
    if whole and (attribute.endswith("arn") or context in ("Resource", "Principal.AWS")):
        return ARNS.get(_referenced_type(expression) or "", GENERIC_ARN).format(n="example")
    return "example"


def _substitute(value: Any, context: str, expressions: list[str]) -> Any:
    if isinstance(value, str):
        value = PLACEHOLDER.sub(lambda m: plausible(expressions[int(m.group(1))], context, m.start() == 0), value)
        return value.replace("$${", "${")
    if isinstance(value, list):
        return [_substitute(v, context, expressions) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, context, expressions) for k, v in value.items()}
    return value


def materialize(text: str, trust: bool = False) -> dict:
    """The document with every interpolation replaced by a plausible value, ready for parliament."""
    expressions = TOKEN.findall(text)
    policy = parse_policy(text)

    def sub(value: Any, context: str) -> Any:
        return _substitute(value, context, expressions)

    statements = policy.get("Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict):
            continue
        for key, value in list(statement.items()):
            if key in ("Principal", "NotPrincipal") and isinstance(value, dict):
                statement[key] = {kind: sub(v, f"Principal.{kind}") for kind, v in value.items()}
            elif key == "Condition" and isinstance(value, dict):
                statement[key] = {
                    operator: {sub(k, "Condition.key"): sub(v, "Condition") for k, v in block.items()}
                    if isinstance(block, dict) else block
                    for operator, block in value.items()}
            elif key in ("Resource", "NotResource"):
                statement[key] = sub(value, "Resource")
            else:
                statement[key] = sub(value, key)
        # a trust policy has no Resource element by definition; parliament lints only
        # identity and resource policies, which must have one
        if trust and "Resource" not in statement and "NotResource" not in statement:
            statement["Resource"] = "*"
    return policy


# --- checks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    where: str
    issue: str
    severity: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.issue} ({self.severity}): {self.detail}"


def allowlisted(issue: str, detail: str, text: str) -> Allowed | None:
    """The allowlist entry that accepts this finding in the policy ``text``, if any."""
    for entry in ALLOWLIST:
        if entry.issue == issue and re.search(entry.detail, detail) and re.search(entry.document, text):
            return entry
    return None


def structural_problems(doc: Document) -> list[str]:
    where = str(doc)
    try:
        policy = doc.parse()
    except ValueError as exc:
        return [f"{where}: not valid JSON ({exc})"]
    problems = []
    if policy.get("Version") != "2012-10-17":
        problems.append(f"{where}: Version is {policy.get('Version')!r}, not '2012-10-17'")
    statements = policy.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    key = (doc.tf_type, doc.field)
    for i, statement in enumerate(statements):
        has_principal = isinstance(statement, dict) and ("Principal" in statement or "NotPrincipal" in statement)
        if key in IDENTITY_FIELDS and has_principal:
            problems.append(f"{where}: Statement[{i}] has a Principal, which this kind of policy may not have")
        if (key in TRUST_FIELDS or key in RESOURCE_FIELDS) and not has_principal:
            problems.append(f"{where}: Statement[{i}] needs a Principal")
        conditions = statement.get("Condition", {}) if isinstance(statement, dict) else {}
        for operator, block in conditions.items() if isinstance(conditions, dict) else ():
            if not LITERAL_OPERATORS.match(operator) or not isinstance(block, dict):
                continue
            for condition_key, values in block.items():
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, str) and re.search(r"[*?]", re.sub(r"\$\{[*?$]\}", "", value)):
                        problems.append(f"{where}: Statement[{i}] {operator} {condition_key}: {value!r} never matches "
                                        f"a wildcard ({operator} compares literally; use StringLike or ArnLike)")
    return problems


def lint(doc: Document, accepted: list[Allowed] | None = None) -> list[Problem]:
    """Parliament findings that fail the build; those the allowlist accepts go to ``accepted``."""
    policy = materialize(doc.text, trust=(doc.tf_type, doc.field) in TRUST_FIELDS)
    problems = []
    for finding in analyze_policy_string(json.dumps(policy)).findings:
        finding = enhance_finding(finding)
        detail = str(finding.detail)
        if finding.severity not in FAILING_SEVERITIES and finding.issue not in PROMOTED_ISSUES:
            continue
        entry = allowlisted(finding.issue, detail, doc.text)
        if entry:
            if accepted is not None:
                accepted.append(entry)
            continue
        problems.append(Problem(str(doc), finding.issue, finding.severity, detail))
    return problems


# --- over the example organization ------------------------------------------------------------------

@pytest.fixture(scope="module")
def documents(synth_out: Path) -> tuple[list[Document], list[str]]:
    found: list[Document] = []
    problems: list[str] = []
    for path in sorted((synth_out / "stacks").glob("*/cdk.tf.json")):
        docs, issues = extract_documents(path.parent.name, json.loads(path.read_text()))
        found += docs
        problems += issues
    return found, problems


def test_policies_were_found(documents: tuple[list[Document], list[str]]) -> None:
    docs, _ = documents
    assert docs, "no policy document found in the example organization"
    assert {d.tf_type for d in docs} >= {"aws_kms_key", "aws_s3_bucket_policy"}


def test_policy_fields_hold_literal_json(documents: tuple[list[Document], list[str]]) -> None:
    _, problems = documents
    assert not problems, "\n".join(problems)


def test_policies_are_well_formed(documents: tuple[list[Document], list[str]]) -> None:
    docs, _ = documents
    problems = [p for doc in docs for p in structural_problems(doc)]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def linted(documents: tuple[list[Document], list[str]]) -> tuple[list[Problem], list[Allowed]]:
    accepted: list[Allowed] = []
    problems = [p for doc in documents[0] for p in lint(doc, accepted)]
    return problems, accepted


def test_parliament_finds_nothing_to_fix(linted: tuple[list[Problem], list[Allowed]]) -> None:
    problems, _ = linted
    assert not problems, f"{len(problems)} policy finding(s):\n" + "\n".join(f"  {p}" for p in problems)


def test_no_stale_allowlist_entry(linted: tuple[list[Problem], list[Allowed]]) -> None:
    """An entry that accepts nothing in the example organization is removed, so the list stays short."""
    _, accepted = linted
    stale = [f"{e.issue} {e.detail}" for e in ALLOWLIST if e not in accepted]
    assert not stale, "allowlist entries that accept no finding:\n" + "\n".join(stale)


def test_interpolations_became_plausible_values(documents: tuple[list[Document], list[str]]) -> None:
    docs, _ = documents
    for doc in docs:
        text = json.dumps(materialize(doc.text))
        # only IAM policy variables (${aws:username}, ${*}) may remain
        left = [m for m in re.findall(r"\$\{([^}]*)\}", text) if not re.fullmatch(r"[\w-]+:[\w/.:-]+|[*?$]", m)]
        assert not left, f"{doc}: interpolations left: {left}"


def test_allowlist_entries_carry_reasons() -> None:
    assert all(len(entry.reason.split()) >= 5 for entry in ALLOWLIST)


# --- negative and unit cases -------------------------------------------------------------------------

def _doc(statements: list[dict], tf_type: str = "aws_iam_policy", field_name: str = "policy",
         version: str = "2012-10-17") -> Document:
    text = json.dumps({"Version": version, "Statement": statements})
    return Document("t", f"{tf_type}.x", field_name, tf_type, text)


def test_bad_action_is_reported() -> None:
    doc = _doc([{"Effect": "Allow", "Action": ["s3:GetObjectt"], "Resource": "${aws_s3_bucket.b.arn}/*"}])
    problems = lint(doc)
    assert [p.issue for p in problems] == ["UNKNOWN_ACTION"], problems
    assert "s3:GetObjectt" in problems[0].detail


def test_unknown_service_and_medium_findings_are_reported() -> None:
    doc = _doc([{"Effect": "Allow", "Action": "s4:GetObject", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "${aws_sns_topic.t.arn}"}])
    issues = {p.issue for p in lint(doc)}
    assert issues == {"UNKNOWN_PREFIX", "RESOURCE_MISMATCH"}


def test_structure_is_checked() -> None:
    assert structural_problems(_doc([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
                                    version="2008-10-17"))
    assert structural_problems(_doc([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                      "Resource": "*"}]))
    assert structural_problems(_doc([{"Effect": "Allow", "Action": "sts:AssumeRole"}],
                                    tf_type="aws_iam_role", field_name="assume_role_policy"))
    wildcard = structural_problems(_doc([{"Effect": "Allow", "Action": "ec2:CreateSecurityGroup", "Resource": "*",
                                          "Condition": {"StringEquals": {"ec2:Vpc": "arn:aws:ec2:*:1:vpc/*"}}}]))
    assert len(wildcard) == 1 and "never matches a wildcard" in wildcard[0]
    assert not structural_problems(_doc([{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
                                          "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"},
                                                        "StringEquals": {"s3:delimiter": "${*}"}}}]))
    broken = Document("t", "aws_iam_policy.x", "policy", "aws_iam_policy", '{"Version": "2012-10-17", ')
    assert "not valid JSON" in structural_problems(broken)[0]


def test_trust_policy_with_references_lints_clean() -> None:
    """As synthesized: interpolations may hold raw quotes, which Terraform evaluates away."""
    issuer = '${replace(aws_eks_cluster.eks.identity.0.oidc.0.issuer, "https://", "")}'
    text = ('{"Version":"2012-10-17","Statement":['
            '{"Effect":"Allow","Principal":{"AWS":"${aws_iam_role.pipeline.arn}"},"Action":"sts:AssumeRole"},'
            '{"Effect":"Allow","Principal":{"Federated":"${aws_iam_openid_connect_provider.eks.arn}"},'
            '"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{'
            f'"{issuer}:sub":"system:serviceaccount:kube-system:ebs-csi-controller-sa",'
            f'"{issuer}:aud":"sts.amazonaws.com"}}}}}}]}}')
    doc = Document("t", "aws_iam_role.x", "assume_role_policy", "aws_iam_role", text)
    assert _has_statement(text)
    assert structural_problems(doc) == []
    assert lint(doc) == []
    materialized = materialize(doc.text, trust=True)
    assert materialized["Statement"][0]["Principal"]["AWS"] == f"arn:aws:iam::{ACCOUNT}:role/example"
    assert sorted(materialized["Statement"][1]["Condition"]["StringEquals"]) == [f"{OIDC_HOST}:aud",
                                                                                  f"{OIDC_HOST}:sub"]


def test_policy_text_is_found_anywhere_and_references_are_problems() -> None:
    stack = {"resource": {
        "aws_iam_role": {"r": {
            "assume_role_policy": "${data.aws_iam_policy_document.trust.json}",
            "inline_policy": [{"name": "p", "policy": json.dumps({"Version": "2012-10-17", "Statement": []})}],
        }},
        "aws_ssm_document": {"d": {"content": json.dumps({"schemaVersion": "1.0"})}},
    }}
    docs, problems = extract_documents("s", stack)
    assert [(d.address, d.field) for d in docs] == [("aws_iam_role.r", "inline_policy.policy")]
    assert len(problems) == 1 and "aws_iam_role.r.assume_role_policy" in problems[0]


def test_remote_state_references_resolve_to_their_type() -> None:
    expression = "data.terraform_remote_state.in-x.outputs.cross-stack-output-aws_kms_keystate-key_keyarn"
    assert plausible(expression, "Resource").startswith("arn:aws:kms:")
    assert plausible("aws_s3_bucket.b.bucket", "Resource", whole=False) == "example"


def test_escaped_policy_variables_stay_literal() -> None:
    doc = _doc([{"Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": "${aws_s3_bucket.b.arn}/home/$${aws:username}/*"}])
    assert materialize(doc.text)["Statement"][0]["Resource"] == "arn:aws:s3:::example/home/${aws:username}/*"
    assert lint(doc) == []


def test_allowlist_is_narrow() -> None:
    """The encryption-context entry accepts that key only: the same mismatch elsewhere still fails."""
    doc = _doc([{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "${aws_s3_bucket.b.arn}",
                 "Condition": {"ArnEquals": {"s3:prefix": "arn:aws:s3:::example/home"}}}])
    assert "MISMATCHED_TYPE" in {p.issue for p in lint(doc)}
