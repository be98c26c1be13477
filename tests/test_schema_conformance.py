"""Schema conformance (DESIGN section 2): what fleetform synthesizes fits hashicorp/aws 6.69.1.

The generic resource layer emits Terraform attributes untyped; this test is what the typed
bindings would otherwise have checked. It runs over every stack the example organization
synthesizes, so each new stack is covered without touching this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_schema import Schema, assembly_path, check_out_dir, check_stack, load_schema
from cdktn import App, TerraformStack

from fleetform.engine import AwsProvider, DataSource, Resource

# arguments whose Terraform name differs from the camelCase property's naive snake_case form
EDGE_CASES = {
    ("resources", "aws_instance"): {"get_password_data": "fetchPasswordData"},
    ("resources", "aws_route53domains_registered_domain"): {},  # address_line_1 inside a nested block
    ("provider", "aws"): {"s3_us_east_1_regional_endpoint": "s3UsEast1RegionalEndpoint"},
}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def test_example_organization_conforms(schema: Schema, synth_out: Path) -> None:
    stacks, violations = check_out_dir(schema, synth_out)
    assert stacks, f"no stacks under {synth_out}"
    report = "\n".join(f"  {v}" for v in violations)
    assert not violations, f"{len(violations)} schema violation(s) against hashicorp/aws {schema.version}:\n{report}"


def test_every_emitted_type_was_checked(schema: Schema, synth_out: Path) -> None:
    """The check saw real resources: an empty or unparsed synth must not pass silently."""
    counted = 0
    for path in (synth_out / "stacks").glob("*/cdk.tf.json"):
        document = json.loads(path.read_text())
        assert document.get("provider", {}).get("aws"), f"{path}: no aws provider block"
        for tf_type, instances in document.get("resource", {}).items():
            assert tf_type in schema.resources or tf_type == "terraform_data", tf_type
            counted += len(instances)
    assert counted >= 20


# --- the index itself, checked against the binding source (never imported) ---------------------

def _binding_config_names(schema: Schema, kind: str, tf_type: str) -> dict[str, str]:
    """{python keyword: Terraform name} from the ``:param`` docs of the binding's Config class."""
    config_fqn = {"provider": schema.provider, "resources": schema.resources.get(tf_type),
                  "data_sources": schema.data_sources.get(tf_type)}[kind]
    namespace, config_name = config_fqn.split(".")[-2:]
    module = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", namespace).lower()
    source = (assembly_path().parent.parent / module / "__init__.py").read_text()
    match = re.search(rf"^class {config_name}\b", source, re.M)
    assert match, f"{config_name} not in {module}/__init__.py"
    start = match.start()
    docstring = source[source.index("'''", start) + 3:]
    docstring = docstring[:docstring.index("'''")]
    return dict(re.findall(r":param (\w+): [^\n]*?\{@link https://registry\.terraform\.io/providers/hashicorp/aws/"
                           r"[\d.]+/docs[\w/-]*#(\w+) ", docstring))


def _emitted_types(synth_out: Path) -> set[tuple[str, str]]:
    found = {("provider", "aws")}
    for path in (synth_out / "stacks").glob("*/cdk.tf.json"):
        document = json.loads(path.read_text())
        found |= {("resources", t) for t in document.get("resource", {}) if t.startswith("aws_")}
        found |= {("data_sources", t) for t in document.get("data", {}) if t.startswith("aws_")}
    return found


def test_terraform_names_match_binding_source(schema: Schema, synth_out: Path) -> None:
    """Terraform names in the index equal the registry anchors in the binding source, for every
    emitted type and the known renaming edge cases (digits, acronyms, renamed arguments)."""
    mismatches = []
    for kind, tf_type in sorted(_emitted_types(synth_out) | set(EDGE_CASES)):
        from_source = set(_binding_config_names(schema, kind, tf_type).values())
        assert from_source, f"no :param docs parsed for {tf_type}"
        attributes = schema.struct(schema.provider) if kind == "provider" else (
            schema.resource(tf_type) if kind == "resources" else schema.data_source(tf_type))
        if from_source != set(attributes):
            mismatches.append(f"{tf_type}: only in index {sorted(set(attributes) - from_source)}, "
                              f"only in binding {sorted(from_source - set(attributes))}")
        for name, jsii_name in EDGE_CASES.get((kind, tf_type), {}).items():
            assert attributes[name].jsii_name == jsii_name
    assert not mismatches, "\n".join(mismatches)


def test_nested_names_keep_digit_separators(schema: Schema) -> None:
    contact = schema.struct("@cdktn/provider-aws.route53DomainsRegisteredDomain."
                            "Route53DomainsRegisteredDomainAdminContact")
    assert contact["address_line_1"].jsii_name == "addressLine1"
    assert "address_line1" not in contact


# --- negative cases: a tiny real synth with one mistake per resource ---------------------------

@pytest.fixture(scope="module")
def broken_stack(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("schema-negative")
    app = App(outdir=str(out))
    stack = TerraformStack(app, "broken")
    AwsProvider(stack, "aws", region="ap-northeast-1", regoin_typo="x")
    Resource(stack, "typo", "aws_s3_bucket", bucket="b", bucket_prefixx="p")
    Resource(stack, "missing", "aws_kms_alias", name="alias/x")  # target_key_id is required
    Resource(stack, "badtype", "aws_kms_key", deletion_window_in_days="thirty", enable_key_rotation="yes")
    Resource(stack, "unknown", "aws_s3_buckett", bucket="b")
    Resource(stack, "nested", "aws_s3_bucket_versioning", bucket="b",
             versioning_configuration=[{"status": "Enabled", "mfa_deletee": "x"}])
    Resource(stack, "tokens", "aws_kms_key", deletion_window_in_days="${var.days}", enable_key_rotation=True,
             tags={"a": "b"})
    DataSource(stack, "nods", "aws_no_such_data")
    app.synth()
    return json.loads((out / "stacks" / "broken" / "cdk.tf.json").read_text())


@pytest.fixture(scope="module")
def broken_report(schema: Schema, broken_stack: dict) -> list[str]:
    return [str(v) for v in check_stack(schema, "broken", broken_stack)]


def _reported(report: list[str], *fragments: str) -> bool:
    return any(all(f in line for f in fragments) for line in report)


def test_unknown_attribute_is_reported(broken_report: list[str]) -> None:
    assert _reported(broken_report, "aws_s3_bucket.typo.bucket_prefixx", "unknown attribute",
                     "did you mean 'bucket_prefix'"), broken_report


def test_unknown_provider_attribute_is_reported(broken_report: list[str]) -> None:
    assert _reported(broken_report, "provider.aws[0].regoin_typo", "unknown attribute"), broken_report


def test_missing_required_argument_is_reported(broken_report: list[str]) -> None:
    assert _reported(broken_report, "aws_kms_alias.missing.target_key_id", "required argument missing"), \
        broken_report


def test_wrong_scalar_types_are_reported(broken_report: list[str]) -> None:
    assert _reported(broken_report, "aws_kms_key.badtype.deletion_window_in_days", "expected number"), broken_report
    assert _reported(broken_report, "aws_kms_key.badtype.enable_key_rotation", "expected boolean"), broken_report


def test_unknown_types_are_reported(broken_report: list[str]) -> None:
    assert _reported(broken_report, "aws_s3_buckett.unknown", "unknown resource type",
                     "did you mean 'aws_s3_bucket'"), broken_report
    assert _reported(broken_report, "data.aws_no_such_data.nods", "unknown data source type"), broken_report


def test_nested_block_keys_are_checked(broken_report: list[str]) -> None:
    assert _reported(broken_report, "versioning_configuration[0].mfa_deletee", "unknown attribute"), broken_report


def test_tokens_fit_any_type_and_correct_blocks_pass(broken_report: list[str]) -> None:
    assert not [line for line in broken_report if ".tokens" in line], broken_report
    assert len(broken_report) == 8, "\n".join(broken_report)
