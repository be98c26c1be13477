"""Run checkov over synthesized stacks and honour fleetform's inline skips.

checkov's terraform_json runner does not read skip comments, so a resource records its skips
as ``"//": {"checkov_skip": ["checkov:skip=CKV_AWS_144:reason", ...]}`` (see
fleetform.engine.resource.add_check_skips); a failed check listed there becomes a skip with
that reason. Nothing else is skipped.

checkov's terraform_json parser fails on top-level blocks written as JSON arrays (``import``,
``removed``: Terraform's form for several unlabelled blocks) and on plain values in the
``terraform`` block (``required_version``). No checkov check reads them, so the scan runs on
copies of the stacks without them, under the same stack directory names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SKIP = re.compile(r"^checkov:skip=([A-Z0-9_]+):(.+)$")
UNPARSED_BLOCKS = ("import", "removed")  # lists at the top level: checkov's JSON parser wants objects


@dataclass(frozen=True)
class Finding:
    stack: str
    resource: str
    check_id: str
    check_name: str
    reason: str = ""

    def __str__(self) -> str:
        text = f"{self.stack}: {self.resource}: {self.check_id} {self.check_name}"
        return f"{text} (skipped: {self.reason})" if self.reason else text


@dataclass
class ScanResult:
    passed_by_stack: dict[str, int] = field(default_factory=dict)
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(self.passed_by_stack.values())

    def only(self, stacks: Iterable[str]) -> ScanResult:
        """The part of this scan about the named stacks (one checkov run can serve many questions)."""
        names = set(stacks)
        return ScanResult(
            passed_by_stack={k: v for k, v in self.passed_by_stack.items() if k in names},
            failed=[f for f in self.failed if f.stack in names],
            skipped=[f for f in self.skipped if f.stack in names],
            parsing_errors=[e for e in self.parsing_errors if Path(e).parent.name in names],
        )


def inline_skips(stack_json: dict) -> dict[str, dict[str, str]]:
    """``{"aws_s3_bucket.x": {"CKV_AWS_144": "reason"}}`` for one synthesized stack."""
    skips: dict[str, dict[str, str]] = {}
    for rtype, resources in stack_json.get("resource", {}).items():
        for name, body in resources.items():
            for entry in body.get("//", {}).get("checkov_skip", []):
                match = SKIP.match(entry)
                if match:
                    skips.setdefault(f"{rtype}.{name}", {})[match.group(1)] = match.group(2).strip()
    return skips


def checkov_parsable(document: dict) -> dict:
    """The stack without what checkov's terraform_json parser cannot read (and no check looks at)."""
    parsable = {k: v for k, v in document.items() if k not in UNPARSED_BLOCKS}
    if isinstance(parsable.get("terraform"), dict):
        parsable["terraform"] = {k: v for k, v in parsable["terraform"].items() if isinstance(v, dict)}
    return parsable


def scan_stacks(out_dir: str | Path, stacks: list[str] | None = None) -> ScanResult:
    """Scan ``cdktf.out/stacks/*/cdk.tf.json`` (or the named stacks) in one checkov run."""
    root = Path(out_dir) / "stacks"
    names = stacks or sorted(p.name for p in root.iterdir() if (p / "cdk.tf.json").exists())
    documents = {name: json.loads((root / name / "cdk.tf.json").read_text()) for name in names}
    with tempfile.TemporaryDirectory(prefix="fleetform-checkov-") as tmp:
        files = [_readable_copy(root, name, documents[name], Path(tmp)) for name in names]
        return _scan(files, documents)


def _readable_copy(root: Path, name: str, document: dict, tmp: Path) -> str:
    """The stack's file, or a copy without what checkov's terraform_json parser cannot read
    (``checkov_parsable``: import and removed blocks, required_version)."""
    parsable = checkov_parsable(document)
    if parsable == document:
        return str(root / name / "cdk.tf.json")
    copy = tmp / name / "cdk.tf.json"  # the directory keeps the stack's name: findings are keyed by it
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(parsable))
    return str(copy)


def _scan(files: list[str], documents: dict[str, dict]) -> ScanResult:
    skips = {name: inline_skips(document) for name, document in documents.items()}
    types = {name: _types_by_name(document) for name, document in documents.items()}
    command = [sys.executable, "-m", "checkov.main", "--framework", "terraform_json", "--skip-download",
               "--compact", "-o", "json"]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
           "LOG_LEVEL": "ERROR"}
    for file in files:
        command += ["-f", file]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    reports = json.loads(proc.stdout) if proc.stdout.strip() else []
    if isinstance(reports, dict):
        reports = [reports]
    result = ScanResult()
    for report in reports:
        if "results" not in report:
            continue
        for check in report["results"].get("passed_checks", []):
            stack = Path(check["file_path"]).parent.name
            result.passed_by_stack[stack] = result.passed_by_stack.get(stack, 0) + 1
        result.parsing_errors += report["results"].get("parsing_errors", [])
        for check in report["results"].get("failed_checks", []):
            stack = Path(check["file_path"]).parent.name
            resource = _address(check["resource"], types.get(stack, {}))
            finding = Finding(stack, resource, check["check_id"], check.get("check_name", ""))
            reason = skips.get(stack, {}).get(resource, {}).get(check["check_id"])
            if reason:
                result.skipped.append(Finding(stack, resource, finding.check_id, finding.check_name, reason))
            else:
                result.failed.append(finding)
    return result


def _types_by_name(stack_json: dict) -> dict[str, str]:
    """Resource name -> type, for names that only one resource type of the stack uses."""
    seen: dict[str, list[str]] = {}
    for rtype, resources in stack_json.get("resource", {}).items():
        for name in resources:
            seen.setdefault(name, []).append(rtype)
    return {name: rtypes[0] for name, rtypes in seen.items() if len(rtypes) == 1}


def _address(resource: str, types: dict[str, str]) -> str:
    """checkov's terraform_json runner names Python-check results ``resource.<name>`` (graph-check
    results ``<type>.<name>``); turn the former into the Terraform address skips are keyed by."""
    if resource.startswith("resource."):
        name = resource.split(".", 1)[1]
        if name in types:
            return f"{types[name]}.{name}"
    return resource
