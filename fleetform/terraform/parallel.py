"""Run one piece of work per stack along the dependency graph, several at a time.

A stack starts once every stack it depends on (among those being run) has finished without
failing; a failure stops only the stacks that depend on it, directly or not, and the others go
on. Work is started in dependency order (ties by name), so with ``parallelism=1`` the order is
exactly the sequential one. Terraform runs as a child process and its output is captured per
command, so threads are enough and no two stacks' output can interleave: the caller reports
each stack's result as a whole when ``on_event`` says it finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from fleetform.manifest import dependency_order

R = TypeVar("R")

# Each terraform with the AWS provider holds ~0.3 GB and mostly waits on AWS's APIs, so a few more
# workers than cores pay; CodeBuild's smallest machine (2 vCPUs, 3 GB) runs 4 comfortably.
DEFAULT_PARALLELISM = min(4, 2 * (os.cpu_count() or 1))


@dataclass
class Outcome(Generic[R]):
    name: str
    result: R | None = None
    error: BaseException | None = None  # the work raised
    skipped_because: str | None = None  # a stack it depends on failed; the work never ran

    @property
    def ran(self) -> bool:
        return self.skipped_because is None


@dataclass(frozen=True)
class Event:
    kind: Literal["started", "finished", "skipped"]
    name: str
    running: tuple[str, ...]  # after this event
    waiting: int  # not started yet, not skipped
    done: int  # finished or skipped
    total: int
    outcome: Outcome | None = field(default=None, compare=False)


def run_along_graph(dependencies: Mapping[str, Sequence[str]], work: Callable[[str], R], *, parallelism: int = 1,
                    failed: Callable[[R], bool] = lambda result: False,
                    on_event: Callable[[Event], None] | None = None) -> dict[str, Outcome[R]]:
    """``work(name)`` for every name of ``dependencies`` (name -> the names it depends on; names outside
    the mapping are taken as done), at most ``parallelism`` at a time. A name fails when ``work`` raises
    or ``failed(result)`` is true. Returns every name's outcome, in dependency order."""
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    order = dependency_order({n: tuple(d) for n, d in dependencies.items()})
    position = {name: i for i, name in enumerate(order)}
    needs = {n: {d for d in dependencies[n] if d in dependencies and d != n} for n in order}
    outcomes: dict[str, Outcome[R]] = {}
    running: dict[Future[R], str] = {}
    pending = list(order)

    def emit(kind: Literal["started", "finished", "skipped"], name: str) -> None:
        if on_event:
            on_event(Event(kind, name, tuple(sorted(running.values(), key=position.__getitem__)),
                           len(pending), len(outcomes), len(order), outcomes.get(name)))

    def failed_dependency(name: str) -> str | None:
        for dependency in sorted(needs[name], key=position.__getitem__):
            outcome = outcomes.get(dependency)
            if outcome is not None and (not outcome.ran or outcome.error is not None
                                        or (outcome.result is not None and failed(outcome.result))):
                return dependency
        return None

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="fleetform-stack") as pool:
        while pending or running:
            for name in list(pending):  # skip what can no longer run, start what is ready
                cause = failed_dependency(name)
                if cause is not None:
                    pending.remove(name)
                    outcomes[name] = Outcome(name, skipped_because=cause)
                    emit("skipped", name)
                elif len(running) < parallelism and all(d in outcomes for d in needs[name]):
                    pending.remove(name)
                    running[pool.submit(work, name)] = name
                    emit("started", name)
            if not running:
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: position[running[f]]):
                name = running.pop(future)
                error = future.exception()
                outcomes[name] = Outcome(name, error=error) if error else Outcome(name, result=future.result())
                emit("finished", name)
    return {name: outcomes[name] for name in order}
