"""Which stacks a change affects: synthesize the base revision and the working tree, compare
each stack's Terraform JSON with metadata (``//``) ignored, add the stacks that depend on the
changed ones, in dependency order.

The base revision is synthesized with the base revision's own fleetform code when it has one
(``git archive`` of the code and the configuration into a temporary directory), so a change to
a construct shows up as changed stacks, not only a change to accounts/.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetform.errors import FleetformError, UsageError
from fleetform.manifest import StackInfo, dependency_order, dependents_closure, read_manifest
from fleetform.naming import BUILDSPEC_DIR_ENV
from fleetform.terraform.removed import keep_removed

CODE_DIR = "fleetform"
BUILDSPEC_DIR = "buildspec"  # the pipeline stack carries the buildspecs' text (constructs/pipeline.py)
APP_MODULE = "fleetform.stacks"  # the cdktf.json app: reads FLEETFORM_CONFIG, writes CDKTF_OUTDIR


@dataclass
class Affected:
    base: str
    changed: list[str] = field(default_factory=list)  # JSON differs
    added: list[str] = field(default_factory=list)  # only in the working tree
    removed: list[str] = field(default_factory=list)  # only in the base: kept in <synth>/removed/ to destroy
    dependents: list[str] = field(default_factory=list)  # unchanged, but depend on changed stacks
    stacks: list[str] = field(default_factory=list)  # what to plan, in dependency order
    base_code: str = "base"  # "base": synthesized with the base's code, "current": with this code

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def strip_metadata(value: Any) -> Any:
    """The Terraform JSON without cdktn's ``//`` metadata (paths, unique ids, skips)."""
    if isinstance(value, dict):
        return {k: strip_metadata(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [strip_metadata(v) for v in value]
    return value


def stack_bodies(stacks: list[StackInfo]) -> dict[str, Any]:
    return {s.name: strip_metadata(json.loads(s.json_path.read_text())) for s in stacks}


def compare(base: list[StackInfo], head: list[StackInfo], ref: str) -> Affected:
    """Changed/added/removed stacks and their dependents (dependencies from the working tree)."""
    old, new = stack_bodies(base), stack_bodies(head)
    result = Affected(base=ref)
    result.added = sorted(set(new) - set(old))
    result.removed = sorted(set(old) - set(new))
    result.changed = sorted(n for n in set(new) & set(old) if new[n] != old[n])
    graph = {s.name: s.dependencies for s in head}
    closure = dependents_closure(graph, set(result.changed) | set(result.added))
    result.dependents = sorted(closure - set(result.changed) - set(result.added))
    result.stacks = [n for n in dependency_order(graph) if n in closure]
    return result


def git(root: Path, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout if binary else proc.stdout.decode().strip()


def resolve_base(root: Path, ref: str) -> str:
    """The commit to compare with: the merge base of ``ref`` and HEAD (``git diff ref...HEAD``), so
    commits that landed on the main branch after the pull request started are not counted.
    ``origin/<branch>`` is fetched when the clone lacks it (CodeBuild's pull request checkouts)."""
    try:
        commit = _commit_of(root, ref)
    except UsageError:
        if not ref.startswith("origin/"):
            raise
        branch = ref.removeprefix("origin/")
        git(root, "fetch", "--no-tags", "--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/{ref}")
        commit = _commit_of(root, ref)
    try:
        return git(root, "merge-base", commit, "HEAD")
    except UsageError:
        return commit  # unrelated histories or no HEAD: compare with the ref itself


def _commit_of(root: Path, ref: str) -> str:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except UsageError:
        raise UsageError(f"--base {ref!r}: no such commit, branch or tag in {root}") from None


def export_revision(root: Path, ref: str, paths: list[str], target: Path) -> list[str]:
    """Extract ``paths`` of ``ref`` into ``target``; returns the paths that exist there."""
    present = [p for p in paths if git(root, "ls-tree", "--name-only", ref, "--", p)]
    if present:
        archive = git(root, "archive", "--format=tar", ref, "--", *present, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return present


class BaseSynth:
    """The cdktf.json app run in ``workdir`` (its fleetform package when ``with_code``) in a child
    process, started at once so that the working tree's synth runs beside it (two cores: about the
    time of one synth instead of two); ``result()`` waits for it."""

    def __init__(self, workdir: Path, config_dir: Path, out_dir: Path, with_code: bool) -> None:
        env = {**os.environ, "FLEETFORM_CONFIG": str(config_dir), "CDKTF_OUTDIR": str(out_dir)}
        if (workdir / BUILDSPEC_DIR).is_dir():
            env[BUILDSPEC_DIR_ENV] = str(workdir / BUILDSPEC_DIR)
        else:  # a base revision without buildspec/ (configuration-only repositories): today's
            from fleetform.constructs.pipeline import buildspec_dir  # imports cdktn: only when needed

            env[BUILDSPEC_DIR_ENV] = str(buildspec_dir())
        if with_code:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(workdir), env.get("PYTHONPATH", "")) if p)
        self.out_dir = out_dir
        self.process = subprocess.Popen([sys.executable, "-m", APP_MODULE], cwd=workdir, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self) -> list[StackInfo]:
        stdout, stderr = self.process.communicate()
        if self.process.returncode != 0:
            raise FleetformError(f"synthesizing the base revision failed (exit {self.process.returncode}):\n"
                                 f"{(stderr or stdout).strip()[-2000:]}")
        return read_manifest(self.out_dir)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def affected_stacks(config_dir: str | Path, base: str, head_out: str | Path | None = None,
                    synthesize: Callable[[str, Path], list[StackInfo]] | None = None) -> Affected:
    """Synthesize ``base`` and the working tree (into ``head_out`` or a temp dir) and compare."""
    config = Path(config_dir).resolve()
    if not config.is_dir():
        raise UsageError(f"--config {config_dir}: not a directory")
    root = Path(git(config, "rev-parse", "--show-toplevel"))
    relative = config.relative_to(root).as_posix()
    if synthesize is None:
        from fleetform.scripts.synth import synthesize as default_synth

        synthesize = default_synth  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="fleetform-affected-") as tmp:
        tmp_path = Path(tmp)
        tree = tmp_path / "base"
        tree.mkdir()
        present = export_revision(root, resolve_base(root, base), [relative, CODE_DIR, BUILDSPEC_DIR], tree)
        base_out = tmp_path / "base.out"
        with_code = (CODE_DIR in present and (tree / CODE_DIR / "stacks" / "__main__.py").exists()
                     and not _same_code(root, tree))
        # started first: everything below imports cdktn (~0.6 s) while the base synthesizes beside it
        base_synth = BaseSynth(tree, tree / relative, base_out, with_code) if relative in present else None
        try:
            if relative in present:
                _refuse_removed_accounts(tree / relative, config, relative)
            head_dir = Path(head_out) if head_out else tmp_path / "head.out"
            head_stacks = synthesize(str(config), head_dir)  # type: ignore[misc]
            # no base configuration: it is new, everything is added
            base_stacks: list[StackInfo] = base_synth.result() if base_synth else []
        finally:
            if base_synth:
                base_synth.stop()
        result = compare(base_stacks, head_stacks, base)
        result.base_code = "base" if with_code else "current"
        keep_removed(base_out, head_dir, result.removed)  # their destroy is planned from the base's JSON
        return result


def _same_code(root: Path, tree: Path) -> bool:
    """The base's fleetform package is this one's (a configuration-only change, the usual pull request): the
    base is then synthesized with this installed, compiled code, which gives the same output sooner."""
    here = Path(__file__).resolve().parent
    if here != (root / CODE_DIR).resolve():
        return False  # not running from this checkout (an installed fleetform): use the base's own code
    return all(_same_files(here, tree / CODE_DIR, path) for path in _python_files(here, tree / CODE_DIR))


def _python_files(*roots: Path) -> set[Path]:
    return {p.relative_to(r) for r in roots for p in r.rglob("*.py")}


def _same_files(left: Path, right: Path, relative: Path) -> bool:
    a, b = left / relative, right / relative
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def _refuse_removed_accounts(base_config: Path, head_config: Path, shown: str) -> None:
    from fleetform.config.lifecycle import removed_accounts
    from fleetform.errors import ConfigurationError

    problems = removed_accounts(base_config, head_config, shown)
    if problems:
        raise ConfigurationError(problems)
