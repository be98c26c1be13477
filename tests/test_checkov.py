"""checkov over every stack the example organization synthesizes: no failed check (DESIGN section 7).

A check may only be skipped inline on the resource, with a reason (``skip_checks=``), which
fleetform's scan honours because checkov's terraform_json runner ignores skip comments
(docs/decisions/0002-checkov-inline-skips.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdktn import App, TerraformStack

from fleetform.checks.checkov_scan import SKIP, ScanResult, inline_skips, scan_stacks
from fleetform.engine import AwsProvider, Resource, add_check_skips


@pytest.fixture(scope="module")
def example_scan(checkov_scan: ScanResult) -> ScanResult:
    return checkov_scan


def _stacks(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "stacks").glob("*/cdk.tf.json"))}


def test_no_failed_check(example_scan: ScanResult) -> None:
    report = "\n".join(f"  {f}" for f in example_scan.failed)
    assert not example_scan.failed, f"{len(example_scan.failed)} failed checkov check(s):\n{report}"


def test_scan_really_ran(example_scan: ScanResult, synth_out: Path) -> None:
    assert example_scan.parsing_errors == []
    # at least one passed check per stack: a scan that read nothing would pass everything
    assert example_scan.passed >= len(_stacks(synth_out)) > 0


def test_every_skip_is_well_formed_with_a_reason(synth_out: Path) -> None:
    problems = []
    for stack, document in _stacks(synth_out).items():
        for tf_type, instances in document.get("resource", {}).items():
            for name, body in instances.items():
                for entry in body.get("//", {}).get("checkov_skip", []):
                    match = SKIP.match(entry)
                    if not match or not match.group(2).strip():
                        problems.append(f"{stack}: {tf_type}.{name}: {entry!r} is not 'checkov:skip=ID:reason'")
    assert not problems, "\n".join(problems)


def test_every_applied_skip_carries_its_reason(example_scan: ScanResult) -> None:
    assert all(f.reason.strip() for f in example_scan.skipped), example_scan.skipped


def test_no_stale_skip(example_scan: ScanResult, synth_out: Path) -> None:
    """A skip for a check that does not fail hides nothing today but misleads readers: remove it."""
    used = {(f.stack, f.resource, f.check_id) for f in example_scan.skipped}
    stale = [f"{stack}: {resource}: {check_id} ({reason})"
             for stack, document in _stacks(synth_out).items()
             for resource, skips in inline_skips(document).items()
             for check_id, reason in skips.items()
             if (stack, resource, check_id) not in used]
    assert not stale, "skips for checks that pass:\n" + "\n".join(stale)


# --- negative cases on a tiny real synth ------------------------------------------------------

@pytest.fixture(scope="module")
def bare_scan(tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    out = tmp_path_factory.mktemp("checkov-negative")
    app = App(outdir=str(out))
    stack = TerraformStack(app, "bare")
    AwsProvider(stack, "aws", region="ap-northeast-1")
    Resource(stack, "bare", "aws_s3_bucket", bucket="bare-bucket")
    Resource(stack, "skipping", "aws_s3_bucket", bucket="skipping-bucket",
             skip_checks={"CKV_AWS_18": "access logs go to the organization trail"})
    app.synth()
    return scan_stacks(out)


def test_bare_bucket_fails(bare_scan: ScanResult) -> None:
    failed = {(f.resource, f.check_id) for f in bare_scan.failed}
    assert ("aws_s3_bucket.bare", "CKV_AWS_145") in failed  # no KMS encryption
    assert ("aws_s3_bucket.bare", "CKV_AWS_21") in failed  # no versioning
    assert ("aws_s3_bucket.bare", "CKV_AWS_18") in failed  # no access logging


def test_inline_skip_is_honoured_with_its_reason(bare_scan: ScanResult) -> None:
    skipped = {(f.resource, f.check_id): f.reason for f in bare_scan.skipped}
    assert skipped == {("aws_s3_bucket.skipping", "CKV_AWS_18"): "access logs go to the organization trail"}
    failed = {(f.resource, f.check_id) for f in bare_scan.failed}
    assert ("aws_s3_bucket.skipping", "CKV_AWS_18") not in failed
    assert ("aws_s3_bucket.skipping", "CKV_AWS_21") in failed  # only the named check is skipped


def test_skip_without_reason_is_refused(tmp_path: Path) -> None:
    stack = TerraformStack(App(outdir=str(tmp_path)), "s")
    with pytest.raises(ValueError, match="CKV_AWS_18 needs a reason"):
        Resource(stack, "b", "aws_s3_bucket", bucket="b", skip_checks={"CKV_AWS_18": "  "})


def test_skips_added_later_are_merged(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "s")
    AwsProvider(stack, "aws", region="ap-northeast-1")
    bucket = Resource(stack, "b", "aws_s3_bucket", bucket="b", skip_checks={"CKV_AWS_18": "first reason"})
    add_check_skips(bucket, {"CKV_AWS_144": "second reason"})
    app.synth()
    document = json.loads((tmp_path / "stacks" / "s" / "cdk.tf.json").read_text())
    assert inline_skips(document) == {"aws_s3_bucket.b": {"CKV_AWS_18": "first reason",
                                                          "CKV_AWS_144": "second reason"}}
