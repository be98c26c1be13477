"""Stacks run along the dependency graph, several at a time (fleetform/terraform/parallel.py): the
scheduler's rules on random graphs and failures, then plan and apply with real Terraform."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.tfstacks import local_backend, stack_body, terraform_data, write_synth
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetform.scripts.main import cli
from fleetform.terraform.parallel import run_along_graph


@st.composite
def graphs(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[str], int]:
    """A random DAG (each stack depends on some earlier ones), the stacks that fail, a parallelism."""
    size = draw(st.integers(1, 12))
    names = [f"s{i:02d}" for i in range(size)]
    graph = {name: draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=3)) if i else []
             for i, name in enumerate(names)}
    failing = set(draw(st.lists(st.sampled_from(names), unique=True, max_size=3)))
    return graph, failing, draw(st.integers(1, 4))


def _closure(graph: dict[str, list[str]], failing: set[str]) -> set[str]:
    """Stacks that depend, directly or not, on a failing one."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, deps in graph.items():
            if name not in found and (found | failing).intersection(deps):
                found.add(name)
                changed = True
    return found


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_schedule_respects_dependencies_failures_and_parallelism(case):
    graph, failing, parallelism = case
    lock = threading.Lock()
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    running: set[str] = set()
    most = 0

    def work(name: str) -> str:
        nonlocal most
        with lock:
            started[name] = time.monotonic()
            running.add(name)
            most = max(most, len(running))
        time.sleep(random.uniform(0, 0.003))
        with lock:
            running.discard(name)
            finished[name] = time.monotonic()
        if name in failing and name.endswith(("0", "2", "4", "6", "8")):
            raise RuntimeError("boom")
        return "failed" if name in failing else "ok"

    outcomes = run_along_graph(graph, work, parallelism=parallelism, failed=lambda r: r == "failed")

    assert set(outcomes) == set(graph) and most <= parallelism
    blocked = _closure(graph, failing)
    for name, outcome in outcomes.items():
        if name in blocked:  # downstream of a failure: never ran, and says which dependency failed
            assert not outcome.ran and name not in started
            assert outcome.skipped_because in graph[name]
        else:
            assert outcome.ran and name in started
            for dependency in graph[name]:
                assert finished[dependency] <= started[name]
        if name in failing and name not in blocked:
            assert outcome.error is not None or outcome.result == "failed"


def test_independent_stacks_run_at_the_same_time_and_one_worker_keeps_the_order():
    barrier = threading.Barrier(2, timeout=10)  # broken (an error) unless both run at once
    graph = {"base": [], "left": ["base"], "right": ["base"], "top": ["left", "right"]}

    def meet(name: str) -> str:
        if name in ("left", "right"):
            barrier.wait()
        return name

    outcomes = run_along_graph(graph, meet, parallelism=2)
    assert [o.error for o in outcomes.values()] == [None] * 4

    order: list[str] = []
    run_along_graph(graph, order.append, parallelism=1)
    assert order == ["base", "left", "right", "top"]


def test_parallelism_below_one_is_refused():
    with pytest.raises(ValueError):
        run_along_graph({"a": []}, str, parallelism=0)


# ---------------------------------------------------------------- real Terraform


needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")


def fan_out(out: Path, state: Path, broken: str | None = None) -> Path:
    """root <- mid-a, mid-b <- leaf-a1, leaf-a2 (on mid-a), leaf-b1 (on mid-b); ``broken`` fails to plan."""
    graph = {"root": [], "mid-a": ["root"], "mid-b": ["root"], "leaf-a1": ["mid-a"], "leaf-a2": ["mid-a"],
             "leaf-b1": ["mid-b"]}
    stacks = {}
    for name in graph:
        body = stack_body(terraform_data(thing=name), local_backend(state, name))
        if name == broken:
            body["resource"]["terraform_data"]["thing"]["no_such_argument"] = 1
        stacks[name] = body
    state.mkdir(parents=True, exist_ok=True)
    return write_synth(out, stacks, graph)


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@needs_terraform
def test_parallel_plan_failure_stops_only_its_dependents_then_apply(tmp_path):
    synth = fan_out(tmp_path / "cdktf.out", tmp_path / "state", broken="mid-a")
    code, out, err = run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plans", "--parallelism", "3",
                         "--output", "json")
    assert code == 1, err
    stacks = {s["stack"]: s for s in json.loads(out)["stacks"]}
    assert list(stacks) == ["root", "mid-a", "mid-b", "leaf-a1", "leaf-a2", "leaf-b1"]  # the report keeps the order
    assert stacks["mid-a"]["status"] == "error" and "no_such_argument" in stacks["mid-a"]["error"]
    for name in ("leaf-a1", "leaf-a2"):
        assert stacks[name]["status"] == "error" and "mid-a failed" in stacks[name]["error"]
        assert f"{name}: not planned, mid-a failed" in err
    assert all(stacks[n]["status"] == "changes" for n in ("root", "mid-b", "leaf-b1"))
    assert "also running" in err  # independent stacks were planned side by side

    synth = fan_out(tmp_path / "cdktf.out", tmp_path / "state")
    assert run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plans", "--parallelism", "3")[0] == 2
    code, out, err = run("apply", "--synth-dir", synth, "--out-dir", tmp_path / "plans", "--yes",
                         "--parallelism", "3", "--output", "json")
    assert code == 0, err
    applied = json.loads(out)["applied"]
    assert [r["stack"] for r in applied] == ["root", "mid-a", "mid-b", "leaf-a1", "leaf-a2", "leaf-b1"]
    assert {r["status"] for r in applied} == {"applied"}
    assert all((tmp_path / "state" / f"{name}.tfstate").is_file() for name in stacks)
    code, _, err = run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plans", "--parallelism", "3")
    assert code == 0, err


@needs_terraform
def test_parallel_apply_failure_stops_only_its_dependents(tmp_path):
    """mid-b's apply fails (a local-exec provisioner that exits 1, a real apply-time error): leaf-b1 is not
    applied, everything else is, and the command fails naming both."""
    synth = fan_out(tmp_path / "cdktf.out", tmp_path / "state")
    body_path = synth / "stacks" / "mid-b" / "cdk.tf.json"
    body = json.loads(body_path.read_text())
    body["resource"]["terraform_data"]["thing"]["provisioner"] = [{"local-exec": {"command": "exit 1"}}]
    body_path.write_text(json.dumps(body))
    assert run("plan", "--synth-dir", synth, "--out-dir", tmp_path / "plans")[0] == 2
    code, out, err = run("apply", "--synth-dir", synth, "--out-dir", tmp_path / "plans", "--yes", "--parallelism", "2")
    assert code == 1
    assert "apply of mid-b failed" in err and "not applied (leaf-b1)" in err
    assert "leaf-b1: not applied, mid-b failed" in err
    state = tmp_path / "state"
    assert {p.stem for p in state.glob("*.tfstate")} >= {"root", "mid-a", "leaf-a1", "leaf-a2"}
    assert not (state / "leaf-b1.tfstate").exists()
