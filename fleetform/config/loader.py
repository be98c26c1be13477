"""Load accounts/ into a FleetConfig, collecting every problem with its file, line and field."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from fleetform.config.checks import check_config
from fleetform.config.models import Account, AccountFile, FleetConfig, OrganizationFile
from fleetform.errors import ConfigurationError, Problem

ORGANIZATION_FILE = "organization.yaml"


def load_config(directory: str | Path = "accounts") -> FleetConfig:
    """Load and check a configuration directory; raise ConfigurationError with every problem."""
    root = Path(directory)
    if not root.exists():
        raise ConfigurationError([Problem(str(root), "", "configuration directory does not exist")])
    if not root.is_dir():
        raise ConfigurationError([Problem(str(root), "", "is not a directory")])
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigurationError([Problem(str(root), "", "no .yaml files: expected organization.yaml "
                                          "and one file per account")])
    problems: list[Problem] = []
    org_path = root / ORGANIZATION_FILE
    organization = None
    accounts: list[Account] = []
    if not org_path.exists():
        problems.append(Problem(str(org_path), "", "missing: the organization file is required"))
    for path in files:
        data = _read_yaml(path, problems)
        if data is None:
            continue
        model = OrganizationFile if path.name == ORGANIZATION_FILE else AccountFile
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problems_from(exc, path, data, model))
            continue
        if isinstance(parsed, OrganizationFile):
            organization = parsed.organization
        else:
            accounts.append(Account(file=str(path), spec=parsed))
    if organization is None:
        raise ConfigurationError(problems)
    config = FleetConfig(directory=str(root), organization=organization, accounts=accounts)
    # with some files unparsed, still report what the others get wrong (all problems at once)
    problems.extend(check_config(config, partial=bool(problems)))
    if problems:
        raise ConfigurationError(problems)
    return config


def read_yaml_document(path: Path) -> Any:
    """Round-trip load (keeps comments and line numbers); raises YAMLError/OSError."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle)


def _read_yaml(path: Path, problems: list[Problem]) -> Any:
    try:
        data = read_yaml_document(path)
    except OSError as exc:
        problems.append(Problem(str(path), "", f"cannot read file: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError:
        problems.append(Problem(str(path), "", "is not UTF-8 text"))
        return None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        detail = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(str(path), "", f"YAML syntax error: {detail}", line))
        return None
    if data is None:
        problems.append(Problem(str(path), "", "file is empty"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(str(path), "", "top level must be a mapping"))
        return None
    return data


def _problems_from(exc: ValidationError, path: Path, data: Any, model: type[BaseModel]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if not _is_validator_tag(part)]
        field = ".".join(str(p) for p in loc)
        message = _message(error, model, loc)
        problems.append(Problem(str(path), field, message, line_of(data, loc)))
    return problems


def _is_validator_tag(part: Any) -> bool:
    # pydantic inserts tags like 'function-after[...]' or union member names into loc
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "none"))


def _message(error: dict[str, Any], model: type[BaseModel], loc: list[Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        text = "unknown key"
        if hint:
            text += f"; did you mean {hint[0]!r}?"
        elif known:
            text += f"; known keys: {', '.join(sorted(known))}"
        return text
    if kind == "missing":
        return "required field is missing"
    msg = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind in ("bool_type", "bool_parsing"):
        msg = f"{error.get('input')!r} is not a boolean: write true or false"
    if kind == "string_pattern_mismatch":
        msg = f"{error.get('input')!r} does not match the expected form {error['ctx']['pattern']}"
    return msg


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """Field names of the model found by walking loc through nested models and dicts."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            current = _inner(current)
        current = _unwrap(current)
    current = _unwrap(_inner(current) if not _is_model(current) else current)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    """Optional[Model] / Annotated[Model, ...] -> Model."""
    for arg in getattr(tp, "__args__", ()) or ():
        if _is_model(arg):
            return arg
    return tp


def _inner(tp: Any) -> Any:
    """dict[str, Model] / list[Model] -> Model."""
    args = getattr(tp, "__args__", ()) or ()
    for arg in reversed(args):
        if _is_model(arg):
            return arg
    return tp


def line_of(data: Any, loc: list[Any]) -> int | None:
    """1-based line of the deepest node of loc found in a round-trip loaded document."""
    node = data
    line = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            if isinstance(node, CommentedMap) and node.lc.line is not None and line is None:
                line = node.lc.line + 1
            break
    return line
