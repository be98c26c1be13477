"""Turn ``terraform show -json`` of a saved plan into counts, flagged resources and Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# destroying one of these loses data or an account: a plan that does so fails without --allow-destroy
DEFAULT_PROTECTED_TYPES: tuple[str, ...] = (
    "aws_organizations_account",
    "aws_organizations_organization",
    "aws_organizations_organizational_unit",
    "aws_s3_bucket",
    "aws_eks_cluster",
    "aws_kms_key",
    "aws_route53_zone",
    "aws_route53_hosted_zone_dnssec",
    "aws_route53_key_signing_key",
    "aws_dynamodb_table",
    "aws_rds_cluster",
    "aws_db_instance",
)
# what a protected destroy of these types does beyond the resource itself, said where the reviewer looks
DNSSEC_OFF = ("DNSSEC SIGNING STOPS: if the parent zone/registrar still holds this zone's DS record, validating "
              "resolvers fail the whole zone; remove the DS record first and wait for its TTL "
              "(docs/clusters.md#turning-dnssec-off)")
CAPACITY_GONE = ("CAPACITY REMOVED before any replacement exists: the nodes are drained and their pods wait for "
                 "room elsewhere; under Karpenter, sync the slot's NodePools (fleetform gitops) first "
                 "(docs/clusters.md#capacity)")
DESTROY_WARNINGS: dict[str, str] = {
    "aws_route53_hosted_zone_dnssec": DNSSEC_OFF,
    "aws_route53_key_signing_key": DNSSEC_OFF,
    "aws_eks_node_group": CAPACITY_GONE,
}
# Types whose destroy takes running capacity away: protected like the types above, except when they are
# replaced new-first (create_before_destroy: terraform's ["create", "delete"]), which is how fleetform's node
# groups change instance types; a destroy, or a replacement that deletes first, needs the allow-destroy label.
CAPACITY_TYPES: frozenset[str] = frozenset({"aws_eks_node_group"})
# terraform's own refusal (lifecycle.prevent_destroy) names the resource like this
PREVENT_DESTROY = re.compile(r"Resource (\S+) has lifecycle\.prevent_destroy set")
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<=", "forget": "x"}
MARKDOWN_LIMIT = 60000  # a GitHub comment holds 65,536 characters


@dataclass(frozen=True)
class Change:
    address: str
    type: str
    action: str  # create, update, delete, replace, read, forget
    protected: bool = False
    detail: str = ""  # changed attributes or why it is replaced


@dataclass
class StackPlan:
    stack: str
    status: str  # "no-changes", "changes" or "error"
    changes: list[Change] = field(default_factory=list)
    drift: list[Change] = field(default_factory=list)  # changed outside Terraform (refresh)
    outputs_changed: list[str] = field(default_factory=list)
    error: str = ""

    def count(self, *actions: str) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def adds(self) -> int:
        return self.count("create", "replace")

    @property
    def updates(self) -> int:
        return self.count("update")

    @property
    def destroys(self) -> int:
        return self.count("delete", "replace")

    @property
    def replacements(self) -> list[Change]:
        return [c for c in self.changes if c.action == "replace"]

    @property
    def protected_destroys(self) -> list[Change]:
        return [c for c in self.changes if c.protected]

    @property
    def has_changes(self) -> bool:
        return self.status == "changes"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(adds=self.adds, updates=self.updates, destroys=self.destroys,
                    replacements=[c.address for c in self.replacements],
                    protected_destroys=[c.address for c in self.protected_destroys])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackPlan:
        """The inverse of :meth:`as_dict` (a stack of a report.json); computed keys are ignored."""
        return cls(stack=str(data["stack"]), status=str(data["status"]),
                   changes=[Change(**c) for c in data.get("changes") or []],
                   drift=[Change(**c) for c in data.get("drift") or []],
                   outputs_changed=list(data.get("outputs_changed") or []), error=str(data.get("error") or ""))


def _action(actions: Sequence[str]) -> str:
    if "delete" in actions and "create" in actions:
        return "replace"
    return actions[0] if actions else "no-op"


def _changed_keys(before: Any, after: Any) -> list[str]:
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return []
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _detail(action: str, change: Mapping[str, Any], reason: str | None) -> str:
    if action == "replace":
        paths = [".".join(str(p) for p in path) for path in change.get("replace_paths") or []]
        return f"forces replacement: {', '.join(paths)}" if paths else (reason or "").replace("_", " ").lower()
    if action == "update":
        keys = _changed_keys(change.get("before"), change.get("after"))
        return ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
    if action == "delete" and reason:
        return reason.replace("_", " ").lower()
    return ""


def _changes(entries: Iterable[Mapping[str, Any]], protected_types: frozenset[str],
             capacity_types: frozenset[str] = frozenset()) -> list[Change]:
    result = []
    for entry in entries:
        change = entry.get("change", {})
        action = _action(change.get("actions", []))
        if action == "no-op":
            continue
        tf_type = entry.get("type", "")
        destroys = action in ("delete", "replace")
        new_first = list(change.get("actions", [])) == ["create", "delete"]
        takes_capacity = tf_type in capacity_types and destroys and not new_first
        detail = _detail(action, change, entry.get("action_reason"))
        if destroys and tf_type in DESTROY_WARNINGS and (tf_type not in capacity_types or takes_capacity):
            detail = "; ".join(filter(None, (detail, DESTROY_WARNINGS[tf_type])))
        result.append(Change(
            address=entry["address"], type=tf_type, action=action,
            protected=entry.get("mode", "managed") == "managed" and (
                (destroys and tf_type in protected_types) or takes_capacity),
            detail=detail,
        ))
    return result


def summarize_plan(stack: str, plan: Mapping[str, Any], protected_types: Iterable[str] = DEFAULT_PROTECTED_TYPES,
                   capacity_types: Iterable[str] = CAPACITY_TYPES) -> StackPlan:
    """A StackPlan from the JSON of ``terraform show -json PLANFILE``."""
    types = frozenset(protected_types)
    changes = _changes(plan.get("resource_changes", []), types, frozenset(capacity_types))
    drift = [Change(c.address, c.type, c.action, False, c.detail)
             for c in _changes(plan.get("resource_drift", []), frozenset())]
    outputs = sorted(name for name, body in (plan.get("output_changes") or {}).items()
                     if _action(body.get("actions", [])) not in ("no-op",))
    status = "changes" if changes or outputs else "no-changes"
    return StackPlan(stack, status, changes, drift, outputs)


def failed_plan(stack: str, error: str) -> StackPlan:
    """A plan that Terraform refused; ``prevent_destroy`` refusals are kept as protected destroys."""
    changes = []
    for address in dict.fromkeys(PREVENT_DESTROY.findall(error)):
        tf_type = address.split(".")[-2] if address.count(".") >= 1 else ""
        detail = "; ".join(filter(None, ("lifecycle.prevent_destroy", DESTROY_WARNINGS.get(tf_type))))
        changes.append(Change(address, tf_type, "delete", True, detail))
    return StackPlan(stack, "error", changes, error=error)


# ---------------------------------------------------------------------------- Markdown


def headline(plans: Sequence[StackPlan]) -> str:
    changed = sum(1 for p in plans if p.status == "changes")
    errors = sum(1 for p in plans if p.status == "error")
    same = sum(1 for p in plans if p.status == "no-changes")
    return (f"{changed} stack{'s' if changed != 1 else ''} with changes, {same} without, "
            f"{errors} error{'s' if errors != 1 else ''}")


def caution_lines(plans: Sequence[StackPlan], allow_destroy: bool) -> list[str]:
    """The CAUTION block listing every protected destroy (empty when there is none)."""
    protected = [(p.stack, c) for p in plans for c in p.protected_destroys]
    if not protected:
        return []
    verdict = ("allowed by the allow-destroy label" if allow_destroy
               else "this plan FAILS until the pull request carries the allow-destroy label")
    lines = ["> [!CAUTION]", f"> **{len(protected)} PROTECTED RESOURCE(S) WOULD BE DESTROYED** ({verdict}):"]
    lines += [f"> - `{stack}`: `{c.address}` ({c.action}{', ' + c.detail if c.detail else ''})"
              for stack, c in protected]
    return [*lines, ""]


def table_lines(plans: Sequence[StackPlan]) -> list[str]:
    """One row per stack: add / change / destroy counts and notes (errors, protected destroys, drift)."""
    lines = ["| stack | add | change | destroy | notes |", "|---|---:|---:|---:|---|"]
    for plan in plans:
        notes = []
        if plan.status == "error":
            notes.append("**error**")
        if plan.replacements:
            notes.append(f"{len(plan.replacements)} replaced")
        if plan.protected_destroys:
            notes.append(f"**{len(plan.protected_destroys)} protected destroyed**")
        if plan.drift:
            notes.append(f"{len(plan.drift)} drifted")
        if plan.status == "no-changes" and not plan.drift:
            notes.append("no changes")
        lines.append(f"| `{plan.stack}` | {plan.adds} | {plan.updates} | {plan.destroys} | {', '.join(notes)} |")
    return lines


def has_details(plan: StackPlan) -> bool:
    return not (plan.status == "no-changes" and not plan.drift)


def detail_lines(plan: StackPlan) -> list[str]:
    """A stack's changes, outputs, drift and error, one Markdown list item each."""
    lines: list[str] = []
    if plan.error:
        lines += ["```", plan.error.strip()[-2500:], "```"]
    for change in plan.changes:
        flag = " **PROTECTED**" if change.protected else ""
        detail = f" ({change.detail})" if change.detail else ""
        lines.append(f"- `{SYMBOLS.get(change.action, '?')}` {change.action} `{change.address}`{flag}{detail}")
    if plan.outputs_changed:
        lines.append(f"- outputs changed: {', '.join(f'`{o}`' for o in plan.outputs_changed)}")
    if plan.drift:
        lines.append("- changed outside Terraform (drift): "
                     + ", ".join(f"`{c.address}` ({c.action})" for c in plan.drift))
    return lines


def render_markdown(plans: Sequence[StackPlan], title: str = "fleetform plan", allow_destroy: bool = False) -> str:
    lines = [f"## {title}: {headline(plans)}", "", *caution_lines(plans, allow_destroy)]
    if not plans:
        return "\n".join(lines + ["No stacks to plan."]) + "\n"
    lines += table_lines(plans)
    for plan in plans:
        if has_details(plan):
            lines += ["", f"### `{plan.stack}`", *([""] if plan.error else []), *detail_lines(plan)]
    text = "\n".join(lines) + "\n"
    if len(text) > MARKDOWN_LIMIT:
        text = text[:MARKDOWN_LIMIT] + "\n\n... (truncated; the full report is in the build's artifacts)\n"
    return text
