"""What to tell the operator about a YAML or model error: where (line, column), what, and the fix."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from fleetform.errors import Problem

# AWS APIs take 32-bit integers (botocore's "integer" shapes): a larger number is refused at apply time
MAX_API_INTEGER = 2**31 - 1


def yaml_syntax_problem(path: Path, exc: YAMLError) -> Problem:
    """PyYAML/ruamel's text, with the line and column it points at and a hint where one helps."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    detail = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"YAML syntax error: {detail}"
    if context:
        text += f" ({context})"
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    if "found duplicate key" in str(exc):
        text += "; each key may appear once in a mapping"
    elif any(word in f"{detail} {context}" for word in ("block end", "mapping values", "block mapping",
                                                        "block collection", "indentation")):
        text += ("; check the indentation: keys of one mapping start in the same column (spaces, not tabs), "
                 "and a value that contains ': ' needs quotes")
    elif "\\t" in str(detail) or "\t" in str(detail) or "tab" in str(detail):
        text += "; indent with spaces, not tabs"
    elif "flow" in str(detail) or "expected ',' or" in str(detail):
        text += "; a [list] or {mapping} on one line needs its closing bracket and commas between items"
    return Problem(str(path), "", text, line)


def problems_from(exc: ValidationError, path: Path, data: Any, model: type[BaseModel],
                  source: Sequence[str]) -> list[Problem]:
    """One Problem per pydantic error, with the line, a did-you-mean and the allowed keys; a required key
    reported missing next to an unknown key that is its misspelling is said once, as the misspelling."""
    errors = [(error, _clean_loc(data, error["loc"])) for error in exc.errors()]
    misspelt: set[tuple[tuple[str, ...], str]] = set()
    for error, loc in errors:
        if error["type"] == "extra_forbidden":
            hint = _closest(str(loc[-1]), fields_at(model, loc[:-1]))
            if hint:
                misspelt.add((tuple(map(str, loc[:-1])), hint))
    problems = []
    for error, loc in errors:
        if error["type"] == "missing" and (tuple(map(str, loc[:-1])), str(loc[-1])) in misspelt:
            continue
        field = ".".join(str(p) for p in loc)
        line = line_of(data, loc)
        problems.append(Problem(str(path), field, _message(error, model, loc, source, line), line))
    return problems


def _closest(word: str, known: Sequence[str]) -> str | None:
    hints = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return hints[0] if hints else None


_TAG = re.compile(r"^[a-z-]+\[.*\]$")


def _clean_loc(data: Any, loc: Sequence[Any]) -> list[Any]:
    """pydantic's loc without the tags it inserts ('function-after[...]', union member names): a part is
    kept when it is a key (or position) of the document there, or does not look like a tag."""
    kept: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and (_TAG.match(part) or part in ("str", "int", "none")):
            continue
        else:
            node = None
        kept.append(part)
    return kept


def _message(error: dict[str, Any], model: type[BaseModel], loc: list[Any], source: Sequence[str],
             line: int | None) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        known = fields_at(model, loc[:-1])
        hint = _closest(str(loc[-1]), known)
        text = "unknown key"
        if hint:
            text += f"; did you mean {hint!r}?"
            if _is_required(model, [*loc[:-1], hint]):
                text += f" ({hint!r} is required)"
        if known:
            text += f" Allowed here: {', '.join(known)}" if hint else f"; allowed here: {', '.join(known)}"
        return text
    if kind == "missing":
        return "required field is missing"
    msg = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind in ("bool_type", "bool_parsing"):
        return f"{value!r} is not a boolean: write true or false"
    if kind == "string_pattern_mismatch":
        return _pattern_message(str(value), error["ctx"]["pattern"])
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return _quote_advice(loc, value, source, line)
    if kind in ("int_from_float", "int_parsing", "int_type") and isinstance(value, str):
        return f"{value!r} is not a whole number: write it without quotes, e.g. 3"
    return msg


def _quote_advice(loc: list[Any], value: int | float, source: Sequence[str], line: int | None) -> str:
    """YAML reads 444444444444 as a number and 1.30 as the number 1.3: the model wants text."""
    key = str(loc[-1]) if loc and not isinstance(loc[-1], int) else None
    raw = (_raw_scalar(source, line, key) if key else None) or str(value)
    text = f"{raw} is a number in YAML, but this field is text: quote it, " + (f'{key}: "{raw}"' if key else f'"{raw}"')
    if isinstance(value, float) and raw != repr(value) and raw != str(value):
        text += f" (unquoted, {raw} is read as {value!r})"
    return text


def _raw_scalar(source: Sequence[str], line: int | None, key: str) -> str | None:
    if line is None or not 0 < line <= len(source):
        return None
    match = re.search(rf"(?:^|[\s{{,]){re.escape(key)}\s*:\s*([^\s,}}\]#]+)", source[line - 1])
    return match.group(1) if match else None


NAME_RULE = re.compile(r"^\^\[a-z\]\[a-z0-9-\]\{0,(\d+)\}\[a-z0-9\]\$$")


def _pattern_message(value: str, pattern: str) -> str:
    name = NAME_RULE.match(pattern)
    if name:
        longest = int(name.group(1)) + 2
        if len(value) > longest:
            return f"{value!r} is {len(value)} characters long; names are at most {longest}"
        return (f"{value!r} is not a name: lower-case letters, digits and '-', starting with a letter "
                f"and not ending with '-' (2 to {longest} characters)")
    return f"{value!r} does not match the expected form {pattern}"


def _is_required(model: type[BaseModel], loc: list[Any]) -> bool:
    parent = _model_at(model, loc[:-1])
    field = parent.model_fields.get(str(loc[-1])) if parent is not None else None
    return bool(field is not None and field.is_required())


def fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the model reached by walking loc through nested models, dicts and lists."""
    found = _model_at(model, loc)
    return list(found.model_fields) if found is not None else []


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        current = _strip(current)
        if _is_model(current):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _strip(current)
    return current if _is_model(current) else None


def _strip(tp: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X (the first model, else the first non-None member)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if _is_model(_strip(a))]
            tp = (models or members or [tp])[0]
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                return tp
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def line_of(data: Any, loc: Sequence[Any]) -> int | None:
    """1-based line of the deepest node of loc found in a round-trip loaded document.

    ``loc`` parts may be strings for list positions (``"2"``), as in a Problem's dotted path."""
    node = data
    line = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and str(part).isdigit() and int(part) < len(node):
            line = node.lc.item(int(part))[0] + 1
            node = node[int(part)]
        else:
            if isinstance(node, CommentedMap | CommentedSeq) and node.lc.line is not None and line is None:
                line = node.lc.line + 1
            break
    return line


def oversized_integers(path: Path, data: Any) -> list[Problem]:
    """Numbers no AWS API takes: every integer setting ends up in a 32-bit API field."""
    found: list[Problem] = []

    def walk(node: Any, where: tuple[str, ...]) -> None:
        items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            here = (*where, str(key))
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_API_INTEGER:
                found.append(Problem(str(path), ".".join(here), f"{value} is too large: AWS takes whole numbers "
                                     f"up to {MAX_API_INTEGER}", line_of(data, here)))
            elif isinstance(value, dict | list):
                walk(value, here)

    walk(data, ())
    return found
