"""Fuzzing the configuration: whatever YAML an account or organization file holds, loading it either
succeeds or raises ConfigurationError whose problems name a file (and a line when there is one): never
another exception, which the command line would show as a traceback (issue 17). Bounded (< 30 s)."""

from __future__ import annotations

import copy
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fleetform.config import load_config
from fleetform.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "accounts"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["1.30", "1.3", "444444444444", "m7i.larg", "gpü", "Batch Jobs", "10.10.0.0/16", "spot",
                     "blue", "green", "", "yes", "~", "0x1F", "tëam", "日本", "a" * 300]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


@st.composite
def mutated_document(draw: st.DrawFn, file: str) -> str:
    """The example file with a few of its nodes replaced, renamed or removed, dumped as YAML."""
    data = copy.deepcopy(load(EXAMPLE / file))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(paths(data)))
        if not where:
            continue
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "rename", "delete"]))
        if action == "replace":
            parent[where[-1]] = draw(values)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=15))] = parent.pop(where[-1])
        elif isinstance(parent, dict):
            del parent[where[-1]]
        elif isinstance(parent, list):
            parent.pop(where[-1])
    out = io.StringIO()
    YAML(typ="safe").dump(data, out)
    return out.getvalue()


@st.composite
def damaged_text(draw: st.DrawFn, file: str) -> str:
    """The example file's text with characters inserted or removed (indentation, brackets, tabs)."""
    text = (EXAMPLE / file).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from([" ", "  ", "\t", ":", "[", "]", "{", "}", "-", "\n", "'", '"', "#", "&a", "*a",
                                      "!!int ", "? "]))
        text = text[:at] + piece + text[at + draw(st.integers(0, 3)):]
    return text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fuzz") / "accounts"
    shutil.copytree(EXAMPLE, target)
    return target


def check(workdir: Path, file: str, text: str) -> None:
    original = (EXAMPLE / file).read_text(encoding="utf-8")
    (workdir / file).write_text(text, encoding="utf-8")
    try:
        load_config(workdir)
    except ConfigurationError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file and isinstance(problem.message, str) and problem.message
            assert problem.line is None or (isinstance(problem.line, int) and problem.line >= 1)
            str(problem)
    finally:
        (workdir / file).write_text(original, encoding="utf-8")


FILES = st.sampled_from(["prod.yaml", "organization.yaml", "dev.yaml"])
# FLEETFORM_FUZZ_EXAMPLES=2000 for a longer hunt
FUZZ = settings(max_examples=int(os.environ.get("FLEETFORM_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_any_model_level_change_is_an_answer_not_a_traceback(workdir, data):
    file = data.draw(FILES)
    check(workdir, file, data.draw(mutated_document(file)))


@FUZZ
@given(data=st.data())
def test_any_damaged_text_is_an_answer_not_a_traceback(workdir, data):
    file = data.draw(FILES)
    check(workdir, file, data.draw(damaged_text(file)))


def test_a_tag_that_does_not_fit_its_value_is_a_problem(workdir):
    """Found by the fuzz: ruamel raises a bare ValueError for `!!int Production`."""
    original = (EXAMPLE / "prod.yaml").read_text(encoding="utf-8")
    (workdir / "prod.yaml").write_text("!!int  Production: x\n" + original, encoding="utf-8")
    try:
        with pytest.raises(ConfigurationError) as caught:
            load_config(workdir)
    finally:
        (workdir / "prod.yaml").write_text(original, encoding="utf-8")
    assert any(p.file.endswith("prod.yaml") and "'!!' tag must fit its value" in p.message
               for p in caught.value.problems), caught.value.problems
