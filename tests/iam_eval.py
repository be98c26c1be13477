"""Which statement of a policy document denies a request: a small evaluator for the guardrail tests.

Covers what fleetform's SCPs use, with the semantics of AWS's policy evaluation logic reference:
``Action``/``NotAction`` and ``Resource``/``NotResource`` with ``*``/``?`` wildcards (actions
case-insensitive); the condition operators ``String(Not)Equals``, ``String(Not)Like``,
``Arn(Not)Equals``, ``Arn(Not)Like``, ``Bool`` and ``Null``, the ``ForAnyValue:``/``ForAllValues:``
set qualifiers and ``...IfExists``. Condition key names are case-insensitive, values are not
(except for actions). A key that is missing from the request makes a positive operator false and
a negated one true; ``ForAllValues`` is true and ``ForAnyValue`` false on a missing key. Every
condition block and every key in a statement must match (AND); the values of one key are
alternatives (OR). An operator this module does not know raises, so no document passes by
being misread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One authorization: ``context`` holds the condition keys that AWS would put in the request
    context (``aws:RequestTag/Name``, ``aws:TagKeys``, ``ec2:CreateAction``, ...);
    ``aws:PrincipalArn`` is added from ``principal``."""

    action: str
    principal: str
    resource: str = "*"
    context: Mapping[str, Value] = field(default_factory=dict)

    def values(self, key: str) -> list[str] | None:
        merged = {"aws:principalarn": self.principal, **{k.lower(): v for k, v in self.context.items()}}
        value = merged.get(key.lower())
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches_any(patterns: Any, value: str, ignore_case: bool = False) -> bool:
    return any(_wildcard(p, value, ignore_case) for p in _as_list(patterns))


def _compare(base: str, expected: str, actual: str) -> bool:
    if base == "StringEquals":
        return actual == expected
    if base in ("StringLike", "ArnLike", "ArnEquals"):  # ArnEquals matches wildcards as ArnLike does
        return _wildcard(expected, actual)
    if base == "Bool":
        return actual.lower() == expected.lower()
    raise ValueError(f"condition operator {base!r} is not supported by tests/iam_eval.py")


POSITIVE = {"StringEquals": "StringEquals", "StringLike": "StringLike", "ArnEquals": "ArnEquals",
            "ArnLike": "ArnLike", "Bool": "Bool"}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals",
           "ArnNotLike": "ArnLike"}


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    actual = request.values(key)
    if operator == "Null":
        return (actual is None) == (str(expected).lower() == "true")
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name not in POSITIVE and name not in NEGATED:
        raise ValueError(f"condition operator {operator!r} is not supported by tests/iam_eval.py")
    negated = name in NEGATED
    base = NEGATED.get(name) or POSITIVE[name]
    wanted = _as_list(expected)
    if actual is None:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated

    def one(value: str) -> bool:
        hit = any(_compare(base, w, value) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in actual)
    if qualifier in ("ForAnyValue", ""):
        if qualifier == "" and len(actual) > 1:
            raise ValueError(f"{key} has several values; a single-valued operator cannot test it")
        return any(one(v) for v in actual)
    raise ValueError(f"set qualifier {qualifier!r} is not supported by tests/iam_eval.py")


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document["Statement"]
    return [statements] if isinstance(statements, Mapping) else list(statements)


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not _matches_any(statement["Action"], request.action, ignore_case=True):
            return False
    elif _matches_any(statement["NotAction"], request.action, ignore_case=True):
        return False
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], request.resource):
            return False
    elif "NotResource" in statement and _matches_any(statement["NotResource"], request.resource):
        return False
    return all(_condition_holds(operator, key, expected, request)
               for operator, block in statement.get("Condition", {}).items()
               for key, expected in block.items())


def denied_by(documents: Iterable[Mapping[str, Any]], request: Request) -> list[str]:
    """The Sids (or statement positions) of every Deny statement that applies to ``request``."""
    return [str(statement.get("Sid", i)) for document in documents
            for i, statement in enumerate(_statements(document))
            if statement["Effect"] == "Deny" and statement_applies(statement, request)]


def allowed_by(documents: Iterable[Mapping[str, Any]], request: Request) -> list[str]:
    """The Sids (or statement positions) of every Allow statement that applies to ``request``."""
    return [str(statement.get("Sid", i)) for document in documents
            for i, statement in enumerate(_statements(document))
            if statement["Effect"] == "Allow" and statement_applies(statement, request)]


def is_allowed(documents: Sequence[Mapping[str, Any]], request: Request) -> bool:
    """Identity-policy evaluation within one account: some Allow applies and no Deny does."""
    return bool(allowed_by(documents, request)) and not denied_by(documents, request)
