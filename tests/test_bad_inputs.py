"""Every wrong input an SRE is likely to write, as a table: each gets exit status 2, the file and the
line, the field path, the fix (a suggestion where one exists), and never a traceback (issue 17).

Each case edits a copy of accounts/ and names what `fleetform validate --output json` must report.
The expected line is found in the edited file by a marker, never hard-coded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetform.scripts.main import cli


@dataclass(frozen=True)
class Expect:
    file: str
    path: str
    marker: str  # text on the line the problem must point at (first occurrence in the edited file)
    says: tuple[str, ...]  # fragments of the message: what is wrong and the fix


@dataclass(frozen=True)
class Case:
    edits: tuple[tuple[str, str, str], ...]  # (file, old, new); old == "" writes a new file
    expect: tuple[Expect, ...]
    never: tuple[str, ...] = field(default=())  # text no problem may contain (noise for the same typo)


NEW_ACCOUNT = ('account:\n  name: aaa\n  id: "999999999999"\n  email: {email}\n  ou: Sandbox\n'
               'network: {{cidr: {cidr}, azs: 2}}\n')
PROD_SYSTEM = "system: {instance_types: [m7i.large], min: 2, max: 6}"
PROD_GPU = "gpu: {gpu: true, instance_types: [g6.xlarge, g5.xlarge], min: 0, max: 10}"
PROD_APP = "app: {capacity: spot, instance_types: [m7i.xlarge, m6i.xlarge, m7a.xlarge, m6a.xlarge], min: 3, max: 100}"

CASES: dict[str, Case] = {
    "instance_type for instance_types": Case(
        (("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("instance_types", "instance_type")),),
        (Expect("prod.yaml", "clusters.main.node_groups.system.instance_type", "system: {instance_type:",
                ("unknown key", "did you mean 'instance_types'?", "Allowed here: instance_types, min, max")),),
        never=("required field is missing",)),
    "nodegroups for node_groups": Case(
        (("stg.yaml", "    node_groups:", "    nodegroups:"),),
        (Expect("stg.yaml", "clusters.main.nodegroups", "nodegroups:", ("did you mean 'node_groups'?",
                                                                         "Allowed here: role, hostname")),)),
    "unknown key with nothing close lists the allowed keys": Case(
        (("dev.yaml", "  nat: single", "  nat: single\n  colour: blue"),),
        (Expect("dev.yaml", "network.colour", "colour: blue", ("unknown key; allowed here: cidr, azs, nat",)),)),
    "unknown top-level section": Case(
        (("dev.yaml", "budget:", "bugdet:"),),
        (Expect("dev.yaml", "bugdet", "bugdet:", ("did you mean 'budget'?",)),)),
    "min greater than max": Case(
        (("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("min: 2", "min: 7")),),
        (Expect("prod.yaml", "clusters.main.node_groups.system.min", "system:",
                ("min (7) is greater than max (6)",)),)),
    "spot group without diversity": Case(
        (("prod.yaml", PROD_APP, PROD_APP.replace(", m7a.xlarge, m6a.xlarge", "")),),
        (Expect("prod.yaml", "clusters.main.node_groups.app.instance_types", "app: {capacity: spot",
                ("at least 3 instance types",)),)),
    "GPU group on CPU instance types": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("g6.xlarge, g5.xlarge", "m7i.xlarge")),),
        (Expect("prod.yaml", "clusters.main.node_groups.gpu.instance_types", "gpu: {gpu: true",
                ("GPU group on non-GPU instance types m7i.xlarge", "g6, g5, p5")),)),
    "hostname outside the zone": Case(
        (("dev.yaml", "hostname: api.dev.familyalbum.example", "hostname: api.elsewhere.example"),),
        (Expect("dev.yaml", "clusters.main.hostname", "hostname: api.elsewhere", ("not inside the zone",)),)),
    "explicit all-zero weights": Case(
        (("stg.yaml", 'blue: {version: "1.34"}', 'blue: {version: "1.34", weight: 0}'),),
        (Expect("stg.yaml", "clusters.main.slots", "slots:", ("all slot weights are 0", "blue 0")),)),
    "zero weight with the other slot at its default": Case(
        (("prod.yaml", 'blue: {version: "1.34"}', 'blue: {version: "1.34", weight: 0}'),),
        (Expect("prod.yaml", "clusters.main.slots", "slots:", ("all slot weights are 0", "green 0 (default)")),)),
    "a size no AWS API takes": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("max: 10", "max: 100000000000000000000000000")),),
        (Expect("prod.yaml", "clusters.main.node_groups.gpu.max", "gpu: {gpu: true",
                ("100000000000000000000000000 is too large", "2147483647")),)),
    "node group name with a non-ASCII letter": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("gpu: {", "gpü: {")),),
        (Expect("prod.yaml", "clusters.main.node_groups.gpü", "gpü:", ("node group name 'gpü'", "letters, digits",
                                                                        "'-' and '_'")),)),
    "node group name with a space": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("gpu: {", '"Batch Jobs": {')),),
        (Expect("prod.yaml", "clusters.main.node_groups.Batch Jobs", "Batch Jobs", ("node group name 'Batch Jobs'",
                                                                                   "e.g. 'batch-jobs'")),)),
    "node group name too long": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("gpu: {", f"{'g' * 64}: {{")),),
        (Expect("prod.yaml", f"clusters.main.node_groups.{'g' * 64}", "g" * 64, ("64 characters long",
                                                                                 "at most 36")),)),
    "misspelt instance type": Case(
        (("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("m7i.large", "m7i.larg")),),
        (Expect("prod.yaml", "clusters.main.node_groups.system.instance_types.0", "m7i.larg]",
                ("'m7i.larg' is not an EC2 instance type", "did you mean 'm7i.large'")),)),
    "misspelt bastion instance type": Case(
        (("stg.yaml", "bastion: {instance_type: t3.small}", "bastion: {instance_type: t3.smal}"),),
        (Expect("stg.yaml", "bastion.instance_type", "bastion:", ("'t3.smal' is not an EC2 instance type",
                                                                  "did you mean 't3.small'")),)),
    "labels Kubernetes refuses": Case(
        (("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("max: 6}", "max: 6, labels: {tëam: 日本}}")),),
        (Expect("prod.yaml", "clusters.main.node_groups.system.labels.tëam", "tëam",
                ("label key 'tëam'", "ASCII letters")),
         Expect("prod.yaml", "clusters.main.node_groups.system.labels.tëam", "tëam",
                ("label 'tëam': value '日本'", "ASCII letters")))),
    "taint key and value Kubernetes refuses": Case(
        (("prod.yaml", PROD_GPU, PROD_GPU.replace("max: 10}", "max: 10, taints: [{key: 'nvidia.com/gpu ', value: "
                                                              "'-yes'}]}")),),
        (Expect("prod.yaml", "clusters.main.node_groups.gpu.taints.0.key", "taints:", ("taint key 'nvidia.com/gpu '",)),
         Expect("prod.yaml", "clusters.main.node_groups.gpu.taints.0.value", "taints:", ("taint value '-yes'",)))),
    "long cluster name is told the length rule": Case(
        (("stg.yaml", "  main:", "  main-cluster-of-the-estate:"),),
        (Expect("stg.yaml", "clusters.main-cluster-of-the-estate", "main-cluster-of-the-estate:",
                ("26 characters long", "at most 21")),),
        never=("lower-case letters, digits and '-'",)),
    "long account name is told the length rule": Case(
        (("stg.yaml", "  name: stg", "  name: staging-environment-for-the-whole-team"),),
        (Expect("stg.yaml", "account.name", "name: staging", ("is 38 characters long", "at most 32")),)),
    "YAML indentation": Case(
        (("dev.yaml", "  azs: [", "   azs: ["),),
        (Expect("dev.yaml", "", "azs: [", ("YAML syntax error", "column", "indentation")),)),
    "YAML tab": Case(
        (("dev.yaml", "  azs: [", "\tazs: ["),),
        (Expect("dev.yaml", "", "azs: [", ("YAML syntax error", "column 1", "spaces, not tabs")),)),
    "unquoted account id": Case(
        (("stg.yaml", 'id: "444444444444"', "id: 444444444444"),),
        (Expect("stg.yaml", "account.id", "id: 444444444444", ('quote it, id: "444444444444"',)),)),
    "unquoted version 1.30 becomes 1.3": Case(
        (("stg.yaml", 'blue: {version: "1.34"}', "blue: {version: 1.30}"),),
        (Expect("stg.yaml", "clusters.main.slots.blue.version", "version: 1.30",
                ('quote it, version: "1.30"', "1.30 is read as 1.3")),)),
    "misspelt region": Case(
        (("organization.yaml", "[ap-northeast-1, us-east-1]", "[ap-northeast-1, us-east1]"),),
        (Expect("organization.yaml", "organization.allowed_regions.1", "allowed_regions:",
                ("'us-east1' is not an AWS region", "did you mean 'us-east-1'?")),)),
    "misspelt OU": Case(
        (("prod.yaml", "ou: Workloads/Prod", "ou: Workloads/Production"),),
        (Expect("prod.yaml", "account.ou", "ou: Workloads/Production", ("did you mean 'Workloads/Prod'?",)),)),
    "a new account reusing an email: both files, with the other's line": Case(
        (("aaa.yaml", "", NEW_ACCOUNT.format(email="aws+prod@familyalbum.example", cidr="10.90.0.0/16")),),
        (Expect("aaa.yaml", "account.email", "email:", ("already used by", "prod.yaml:5")),
         Expect("prod.yaml", "account.email", "email:", ("already used by", "aaa.yaml:4")))),
    "a new account reusing a CIDR: both files, with the other's line": Case(
        (("aaa.yaml", "", NEW_ACCOUNT.format(email="aws+aaa@familyalbum.example", cidr="10.10.0.0/16")),),
        (Expect("aaa.yaml", "network.cidr", "network:", ("overlaps 10.10.0.0/16 in", "prod.yaml:9")),
         Expect("prod.yaml", "network.cidr", "cidr:", ("overlaps 10.10.0.0/16 in", "aaa.yaml:6")))),
    "per-file errors do not hide a clash across files": Case(
        (("stg.yaml", "  azs: [", "  azss: ["), ("stg.yaml", "aws+stg@", "aws+dev@")),
        (Expect("stg.yaml", "network.azss", "azss: [", ("did you mean 'azs'?",)),
         Expect("stg.yaml", "account.email", "email:", ("already used by", "dev.yaml:5")),
         Expect("dev.yaml", "account.email", "email:", ("already used by", "stg.yaml:5")))),
    "an unquoted account id does not hide a clash across files": Case(
        (("stg.yaml", 'id: "444444444444"', "id: 444444444444"),
         ("stg.yaml", "cidr: 10.20.0.0/16", "cidr: 10.10.0.0/16")),
        (Expect("stg.yaml", "account.id", "id: 444444444444", ("quote it",)),
         Expect("stg.yaml", "network.cidr", "cidr:", ("overlaps 10.10.0.0/16 in", "prod.yaml:9")),
         Expect("prod.yaml", "network.cidr", "cidr:", ("overlaps 10.10.0.0/16 in", "stg.yaml:9")))),
    "a broken node group does not hide its neighbour's problem": Case(
        (("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("instance_types", "instance_type")),
         ("prod.yaml", PROD_GPU, PROD_GPU.replace("min: 0", "min: 11"))),
        (Expect("prod.yaml", "clusters.main.node_groups.system.instance_type", "system:", ("did you mean",)),
         Expect("prod.yaml", "clusters.main.node_groups.gpu.min", "gpu:", ("min (11) is greater than max (10)",)))),
    "a broken organization.yaml does not hide the accounts' problems": Case(
        (("organization.yaml", "  name: familyalbum", "  name: familyalbum\n  colour: blue"),
         ("prod.yaml", PROD_SYSTEM, PROD_SYSTEM.replace("min: 2", "min: 7"))),
        (Expect("organization.yaml", "organization.colour", "colour: blue", ("unknown key",)),
         Expect("prod.yaml", "clusters.main.node_groups.system.min", "system:", ("greater than max",)))),
}


def apply_edits(accounts: Path, edits: tuple[tuple[str, str, str], ...]) -> None:
    for file, old, new in edits:
        path = accounts / file
        if not old:
            path.write_text(new, encoding="utf-8")
            continue
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_with(path: Path, marker: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_answered_where_what_and_how(accounts_copy, name):
    case = CASES[name]
    apply_edits(accounts_copy, case.edits)
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy), "--output", "json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    document = json.loads(result.stdout)
    problems = document["problems"]
    assert document["exit_code"] == 2 and document["error"].startswith("configuration has")
    for expect in case.expect:
        file = str(accounts_copy / expect.file)
        line = line_with(accounts_copy / expect.file, expect.marker)
        matching = [p for p in problems if p["file"] == file and p["path"] == expect.path
                    and all(fragment in p["message"] for fragment in expect.says)]
        assert matching, f"no problem {expect} among:\n" + "\n".join(map(str, problems))
        assert matching[0]["line"] == line, matching[0]
    for text in case.never:
        assert not any(text in p["message"] for p in problems), problems
    # the same problems for people, each as file:line: path: message
    human = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert human.exit_code == 2 and "Traceback" not in human.output
    for expect in case.expect:
        where = f"{accounts_copy / expect.file}:{line_with(accounts_copy / expect.file, expect.marker)}: "
        assert where + (f"{expect.path}: " if expect.path else "") in human.stderr, human.stderr


def test_validate_stays_light(accounts_copy):
    """validate checks instance types from botocore's data files without importing boto3 (or parsing the
    whole EC2 model): it stays a fraction of a second."""
    import subprocess
    import sys

    code = ("import sys\nfrom fleetform.scripts.main import cli\n"
            f"try:\n    cli(['validate', '--config', {str(accounts_copy)!r}])\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "print(sorted(m for m in ('boto3', 'botocore.client') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]"), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["validate"]])
def test_commands_that_do_not_synthesize_do_not_import_the_engine(args):
    """cdktn (and its jsii kernel) costs ~0.3 s to import: `fleetform --help` lists every command, and
    must not pay for the one (gitops, synth) that needs it."""
    import subprocess
    import sys

    code = ("import sys\nfrom fleetform.scripts.main import cli\n"
            f"try:\n    cli({args!r})\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "print(sorted(m for m in ('cdktn', 'constructs', 'jsii') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]"), proc.stdout[-300:]
