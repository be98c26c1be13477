"""Load accounts/ into a FleetConfig, collecting every problem with its file, line and field."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fleetform.config.checks import check_accounts, check_config
from fleetform.config.messages import line_of, oversized_integers, problems_from, yaml_syntax_problem
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
    documents: dict[str, Any] = {}
    dropped: dict[str, list[list[str]]] = {}  # file -> parts left out of the checks across files
    org_path = root / ORGANIZATION_FILE
    organization = None
    accounts: list[Account] = []
    if not org_path.exists():
        problems.append(Problem(str(org_path), "", "missing: the organization file is required"))
    for path in files:
        data = _read_yaml(path, problems)
        if data is None:
            continue
        documents[str(path)] = data
        model = OrganizationFile if path.name == ORGANIZATION_FILE else AccountFile
        file_problems: list[Problem] = []
        try:
            parsed: OrganizationFile | AccountFile | None = model.model_validate(data)
        except ValidationError as exc:
            source = path.read_text(encoding="utf-8").splitlines()
            file_problems = problems_from(exc, path, data, model, source)
            parsed = None
            if model is AccountFile:
                parsed, cuts = _salvage(data, file_problems)
                dropped[str(path)] = cuts
        reported = {p.path for p in file_problems}
        problems.extend(file_problems)
        problems.extend(p for p in oversized_integers(path, data) if p.path not in reported)
        if isinstance(parsed, OrganizationFile):
            organization = parsed.organization
        elif isinstance(parsed, AccountFile):
            accounts.append(Account(file=str(path), spec=parsed))

    def locate(file: str, field: str) -> str:
        line = line_of(documents.get(file), field.split("."))
        return f"{file}:{line}" if line else file

    # with some files unparsed, still report what the others get wrong (all problems at once); without
    # a usable organization.yaml, what the accounts get wrong among themselves
    config = None
    if organization is None:
        found = check_accounts(accounts, locate)
    else:
        config = FleetConfig(directory=str(root), organization=organization, accounts=accounts)
        found = check_config(config, partial=bool(problems), locate=locate)
    for problem in found:
        if _about_dropped(problem, dropped.get(problem.file, [])):
            continue  # follows from a part already reported and left out
        if problem.line is None:
            problem = replace(problem, line=line_of(documents.get(problem.file), problem.path.split(".")))
        problems.append(problem)
    if problems or config is None:
        raise ConfigurationError(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    return config


def _salvage(data: Any, file_problems: list[Problem]) -> tuple[AccountFile | None, list[list[str]]]:
    """The account file without the parts that have problems, for the checks across files; None when the
    account section itself is wrong (the account is then known by no name, id or email)."""
    pruned = copy.deepcopy(data)
    cuts = []
    for problem in file_problems:
        parts = problem.path.split(".") if problem.path else []
        if parts[:1] == ["account"] and _unquoted_number(pruned, parts):
            continue  # reported ("quote it"); the account is still known by its id for the other checks
        cut = _cut(parts)
        if not cut or cut[0] == "account":
            return None, cuts
        cuts.append(cut)
        _delete(pruned, cut)
    try:
        return AccountFile.model_validate(pruned), cuts
    except ValidationError:
        return None, cuts


def _unquoted_number(data: Any, parts: list[str]) -> bool:
    """Turn an unquoted number at parts (``id: 444444444444``) into the text it was meant to be."""
    node = data
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    value = node.get(parts[-1]) if isinstance(node, dict) and parts else None
    if isinstance(value, int) and not isinstance(value, bool):
        node[parts[-1]] = str(value)
        return True
    return False


def _cut(parts: list[str]) -> list[str]:
    """The smallest self-contained part around a problem: a node group, a cluster or a top-level section."""
    if parts[:1] == ["clusters"] and len(parts) >= 4 and parts[2] == "node_groups":
        return parts[:4]
    if parts[:1] == ["clusters"] and len(parts) >= 2:
        return parts[:2]
    return parts[:1]


def _delete(data: Any, cut: list[str]) -> None:
    node = data
    for part in cut[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(cut[-1], None)


def _about_dropped(problem: Problem, cuts: list[list[str]]) -> bool:
    path = problem.path.split(".")
    for cut in cuts:
        if path[:len(cut)] == cut or cut[:len(path)] == path:
            return True
        if cut == ["dns"] and path[-1] == "hostname":
            return True
    return False


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
        problems.append(yaml_syntax_problem(path, exc))
        return None
    except (ValueError, TypeError, OverflowError) as exc:  # a tag that does not fit its value: !!int Production
        problems.append(Problem(str(path), "", f"YAML value that cannot be read: {exc}; a '!!' tag must fit its "
                                               "value (remove the tag, or quote the value)"))
        return None
    if data is None:
        problems.append(Problem(str(path), "", "file is empty"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(str(path), "", "top level must be a mapping"))
        return None
    return data
