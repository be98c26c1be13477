"""What each everyday YAML change does to an applied estate, planned with the real provider.

Each row edits a copy of accounts/, synthesizes it, finds the stacks whose Terraform changed
(``fleetform.affected.compare``) and plans them with hashicorp/aws 5.100.0 against the state that
the lane applied into moto (tests/test_real_provider.py), ``-refresh=false`` (the re-plan right after
the apply showed no changes, so the state is what moto holds). A new stack is planned from an empty
state. The row's actions are the plan's minus the unchanged configuration's plan (what moto could not
apply, MOTO_GAPS, is a create in both and cancels out), asserted against what the change names.

``python tests/change_matrix.py`` rewrites the table in docs/clusters.md (needs the provider mirror,
Terraform and a few minutes); the lane's test fails when the table there is not what it planned.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "clusters.md"
BEGIN = "<!-- change-matrix:begin (tests/change_matrix.py writes this table) -->"
END = "<!-- change-matrix:end -->"
ACCOUNT = "dev"  # the account every row edits: two AZs, an explicit endpoint list, one slot
# capacity a replacement must never take away first: replaced only create-before-destroy
CAPACITY_TYPES = frozenset({"aws_eks_node_group", "aws_eks_cluster", "aws_nat_gateway", "aws_subnet",
                            "aws_instance", "aws_autoscaling_group"})

Edit = Callable[[Path], None]


def _edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    document = yaml.load(path.read_text())
    change(document)
    with path.open("w") as handle:
        yaml.dump(document, handle)


def account_edit(change: Callable[[Any], None]) -> Edit:
    return lambda accounts: _edit_yaml(accounts / f"{ACCOUNT}.yaml", change)


def _add_account(accounts: Path) -> None:
    text = (accounts / f"{ACCOUNT}.yaml").read_text()
    text = (text.replace("name: dev", "name: qa").replace('id: "555555555555"', 'id: "666666666666"')
            .replace("aws+dev@", "aws+qa@").replace("10.30.0.0/16", "10.40.0.0/16")
            .replace("dev.familyalbum.example", "qa.familyalbum.example"))
    (accounts / "qa.yaml").write_text(text)


@dataclass(frozen=True)
class Row:
    key: str
    title: str  # what the user does, as the table says it
    yaml: str  # the edit, in YAML
    edit: Edit
    # addresses (regular expressions) the change names: only these may be replaced or destroyed
    may_replace: tuple[str, ...] = ()
    may_destroy: tuple[str, ...] = ()
    must_touch: tuple[str, ...] = ()  # the change does something: at least one action matches each
    # the change reaches no Terraform at all (and why, for the table): no stack may change
    outside_terraform: str = ""


KARPENTER = "none: under Karpenter the group is a NodePool, written by `fleetform gitops`"

ROWS: tuple[Row, ...] = (
    Row("add-node-group", "add a node group", "node_groups: {batch: {capacity: spot, instance_types: "
        "[c7i.large, c6i.large, c7a.large], min: 0, max: 10}}",
        account_edit(lambda d: d["clusters"]["main"]["node_groups"].update(
            batch={"capacity": "spot", "instance_types": ["c7i.large", "c6i.large", "c7a.large"],
                   "min": 0, "max": 10})),
        outside_terraform=KARPENTER),
    Row("scale-karpenter", "raise a Karpenter group's min/max", "app: {min: 1, max: 40}",
        account_edit(lambda d: d["clusters"]["main"]["node_groups"]["app"].update(min=1, max=40)),
        outside_terraform=KARPENTER),
    Row("scale-system", "raise the system group's min/max", "system: {min: 2, max: 5}",
        account_edit(lambda d: d["clusters"]["main"]["node_groups"]["system"].update(min=2, max=5)),
        must_touch=(r"aws_eks_node_group\..*system",)),
    Row("instance-types", "change the system group's instance types", "system: {instance_types: [t3.xlarge]}",
        account_edit(lambda d: d["clusters"]["main"]["node_groups"]["system"].update(instance_types=["t3.xlarge"])),
        may_replace=(r"aws_eks_node_group\..*system", r"aws_launch_template\..*system"),
        may_destroy=(r"aws_eks_node_group\..*system",),
        must_touch=(r"aws_eks_node_group\..*system",)),
    Row("add-az", "add an AZ", "network: {azs: [apne1-az1, apne1-az2, apne1-az4]}",
        account_edit(lambda d: d["network"]["azs"].append("apne1-az4")),
        # node groups take every private subnet: subnet_ids forces a new group (create before destroy)
        may_replace=(r"aws_eks_node_group\.",), may_destroy=(r"aws_eks_node_group\.",),
        must_touch=(r"aws_subnet\.",)),
    Row("drop-endpoint", "drop an interface endpoint", "interface_endpoints: without sqs",
        account_edit(lambda d: d["network"]["interface_endpoints"].remove("sqs")),
        may_destroy=(r"aws_vpc_endpoint\..*sqs",),
        must_touch=(r"aws_vpc_endpoint\..*sqs",)),
    Row("add-slot", "add a slot", 'slots: {green: {version: "1.35"}}',
        account_edit(lambda d: d["clusters"]["main"]["slots"].update(green={"version": "1.35"})),
        must_touch=(r"aws_eks_cluster\.",)),
    Row("add-account", "add an account", "accounts/qa.yaml (a copy of dev.yaml)", _add_account,
        must_touch=(r"aws_vpc\.",)),
    Row("cluster-version", "change a cluster version", 'blue: {version: "1.35"}',
        account_edit(lambda d: d["clusters"]["main"]["slots"]["blue"].update(version="1.35")),
        # the Argo CD registration carries the version label: a new secret version, new first
        may_replace=(r"aws_secretsmanager_secret_version\..*argocd-registration",),
        must_touch=(r"aws_eks_cluster\.",)),
)


@dataclass
class RowResult:
    row: Row
    stacks: list[str]  # whose Terraform changed, in dependency order
    new_stacks: list[str] = field(default_factory=list)
    unplanned: dict[str, str] = field(default_factory=dict)  # changed stacks the lane has no state for: why
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # stack -> address -> actions

    def all_changes(self) -> dict[str, list[str]]:
        return {f"{s}:{a}": act for s, c in self.changes.items() for a, act in c.items()}

    def problems(self) -> list[str]:
        """Why the row's plan is not what the change names (empty when it is)."""
        if self.row.outside_terraform:
            return [f"{s} changes although the change reaches no Terraform" for s in self.stacks]
        found = []
        for address, acts in self.all_changes().items():
            local = address.split(":", 1)[1]
            tf_type = resource_type(local)
            if "delete" in acts and "create" in acts:
                if not any(re.search(p, local) for p in self.row.may_replace):
                    found.append(f"{address} is replaced ({acts}) but the change does not name it")
                elif tf_type in CAPACITY_TYPES and acts != ["create", "delete"]:
                    found.append(f"{address} is destroyed before its replacement is created ({acts}): "
                                 "capacity must be replaced create-before-destroy")
            elif "delete" in acts and not any(re.search(p, local) for p in self.row.may_destroy):
                found.append(f"{address} is destroyed but the change does not name it")
        for pattern in self.row.must_touch:
            if not any(re.search(pattern, a.split(":", 1)[1]) for a in self.all_changes()):
                found.append(f"nothing matching {pattern} changes: the row planned nothing it was about")
        return found


def resource_type(address: str) -> str:
    """``aws_route53_record`` of ``aws_route53_record.validation["dev.example.com"]``."""
    return address.split("[", 1)[0].split(".")[-2]


def kind(actions: Sequence[str]) -> str:
    if "delete" in actions and "create" in actions:
        return "replaced, create before destroy" if list(actions) == ["create", "delete"] else "replaced, destroy first"
    return {"create": "created", "update": "updated in place", "delete": "destroyed"}.get(actions[0], actions[0])


def summarize(changes: Mapping[str, Sequence[str]]) -> dict[str, Counter[str]]:
    """``{"created": Counter({"aws_subnet": 3}), ...}``."""
    result: dict[str, Counter[str]] = {}
    for address, acts in changes.items():
        tf_type = resource_type(address.split(":", 1)[-1])
        result.setdefault(kind(acts), Counter())[tf_type] += 1
    return result


COLUMNS = ("created", "updated in place", "replaced, create before destroy", "replaced, destroy first", "destroyed")


def _cell(counter: Counter[str] | None) -> str:
    if not counter:
        return "-"
    return ", ".join(f"{n} `{t}`" for t, n in sorted(counter.items()))


def render_table(results: Sequence[RowResult]) -> str:
    lines = ["| change (`accounts/dev.yaml`) | stacks planned | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for result in results:
        counts = summarize(result.all_changes())
        stacks = ", ".join(f"`{s}`" + (" (new)" if s in result.new_stacks else "") for s in result.stacks
                           if s not in result.unplanned)
        row = [f"{result.row.title}: `{result.row.yaml}`", result.row.outside_terraform or stacks or "-",
               *(_cell(counts.get(c)) for c in COLUMNS)]
        lines.append("| " + " | ".join(row) + " |")
    unplanned = sorted({f"`{s}` ({why})" for r in results for s, why in r.unplanned.items()})
    if unplanned:
        lines += ["", "Changed but not planned by the lane: " + "; ".join(unplanned) + "."]
    return "\n".join(lines) + "\n"


def replace_section(text: str, table: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table + text[end:]


def current_section(text: str) -> str:
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def copy_accounts(target: Path) -> Path:
    shutil.copytree(ROOT / "accounts", target)
    return target


def main() -> int:  # pragma: no cover - the lane's test runs the same code
    import os

    import pytest

    # the lane's fixtures build the estate; its test writes the table when asked to
    os.environ["FLEETFORM_WRITE_CHANGE_MATRIX"] = "1"
    return pytest.main([str(HERE / "test_real_provider.py"), "-q", "-s", "-k", "change_matrix",
                        "-p", "no:cacheprovider"])


if __name__ == "__main__":
    sys.exit(main())
