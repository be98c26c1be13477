"""Which stacks a change affects: synthesize the base revision and the working tree, compare
each stack's Terraform JSON with metadata (``//``) ignored, add the stacks that depend on the
changed ones, in dependency order.

The base revision is synthesized with the base revision's own fleetform code when it has one
(``git archive`` of the code and the configuration into a temporary directory), so a change to
a construct shows up as changed stacks, not only a change to accounts/.

Where the time goes (docs/benchmark.md): the base's synth runs in a child process beside the
working tree's; it is skipped when the working tree has the same inputs as the base, and reused
from ``.fleetform/cache/affected/`` when an earlier run synthesized the same inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fleetform.errors import FleetformError, UsageError
from fleetform.manifest import StackInfo, dependency_order, dependents_closure, read_manifest
from fleetform.naming import BUILDSPEC_DIR_ENV, FIRST_APPLY_ENV, buildspec_dir
from fleetform.terraform.removed import keep_removed

CODE_DIR = "fleetform"
BUILDSPEC_DIR = "buildspec"  # the pipeline stack carries the buildspecs' text (constructs/pipeline.py)
APP_MODULE = "fleetform.stacks"  # the cdktf.json app: reads FLEETFORM_CONFIG, writes CDKTF_OUTDIR
PACKAGE_DIR = Path(__file__).resolve().parent  # the running fleetform package
SKIPPED_DIRS = {"__pycache__", ".git", ".fleetform"}
CACHE_DIR = ".fleetform/cache/affected"  # below the repository's root (git-ignored, as .fleetform/ is)
CACHE_KEEP = 4  # base synths kept (each about 1 MB per 1,000 resources)
CACHE_IDLE_SECONDS = 600
CACHE_FORMAT = "1"  # part of every cache key: change it when what the key covers changes
# up to this many configuration files the base is synthesized in this process after the working tree's
# rather than in a child beside it: a second synth in one process skips the imports and jsii's kernel, and
# costs less than a child until the organization is several times the example's (docs/benchmark.md)
IN_PROCESS_MAX_FILES = 16  # the example organization has 7, at 3x 13, at 10x 34


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


def same_stack(left: Path, right: Path) -> bool:
    """The two stack files hold the same Terraform, metadata aside (the bytes first: a synth is
    deterministic, so an unchanged stack is byte-identical and is not parsed)."""
    a, b = left.read_bytes(), right.read_bytes()
    return a == b or strip_metadata(orjson.loads(a)) == strip_metadata(orjson.loads(b))


def compare(base: list[StackInfo], head: list[StackInfo], ref: str) -> Affected:
    """Changed/added/removed stacks and their dependents (dependencies from the working tree)."""
    old, new = {s.name: s for s in base}, {s.name: s for s in head}
    result = Affected(base=ref)
    result.added = sorted(set(new) - set(old))
    result.removed = sorted(set(old) - set(new))
    result.changed = sorted(n for n in set(new) & set(old) if not same_stack(old[n].json_path, new[n].json_path))
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


def export_revision(root: Path, ref: str, paths: list[str], target: Path) -> None:
    """Extract ``paths`` of ``ref`` (each present there) into ``target``."""
    if paths:
        archive = git(root, "archive", "--format=tar", ref, "--", *paths, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")


# ------------------------------------------------------------------------------------ what a synth reads


def blob_id(data: bytes) -> str:
    """Git's object id of a file with these bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def directory_blobs(directory: Path) -> dict[str, str]:
    """``{relative path: blob id}`` of every file below ``directory`` (bytecode caches, git's and
    fleetform's own directories left out)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not SKIPPED_DIRS.intersection(relative.parts):
            found[relative.as_posix()] = blob_id(path.read_bytes())
    return found


def revision_blobs(root: Path, commit: str, paths: list[str]) -> dict[str, dict[str, str]]:
    """``{path: {relative path: blob id}}`` of the files below each of ``paths`` in ``commit`` (one
    ``git ls-tree``); a path the commit lacks is missing from the result."""
    found: dict[str, dict[str, str]] = {}
    listing = git(root, "ls-tree", "-r", "-z", commit, "--", *paths, binary=True).decode()
    for entry in filter(None, listing.split("\0")):
        meta, name = entry.split("\t", 1)
        kind, object_id = meta.split()[1:3]
        if kind != "blob":
            continue  # submodules
        for path in paths:
            if path == ".":
                found.setdefault(path, {})[name] = object_id
            elif name.startswith(path + "/"):
                found.setdefault(path, {})[name[len(path) + 1:]] = object_id
    return found


def _versions() -> dict[str, str]:
    """What else shapes a synth: the engine's packages, Python, and the one environment variable
    the stacks read (the baseline stack's first-apply switch)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0], FIRST_APPLY_ENV: os.environ.get(FIRST_APPLY_ENV, "")}
    for package in ("cdktn", "constructs", "jsii", "orjson", "pydantic", "ruamel.yaml"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = ""
    return found


def inputs_key(config: dict[str, str], code: dict[str, str], buildspecs: dict[str, str],
               versions: dict[str, str]) -> str:
    """A digest of everything a synth's output depends on: equal keys, byte-identical synths
    (the synth is deterministic: tests/test_engine.py)."""
    document = {"format": CACHE_FORMAT, "config": config, "code": code, "buildspec": buildspecs, "versions": versions}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass
class Plan:
    """How to get the base revision's synth, decided from ``git ls-tree`` and file digests alone."""

    commit: str
    present: list[str]  # of relative config dir, CODE_DIR, BUILDSPEC_DIR: those the base has
    with_code: bool  # synthesized with the base's own fleetform package
    base_key: str
    head_key: str  # equal to base_key: the working tree synthesizes the same (nothing to compare)
    unchanged_files: set[str] = field(default_factory=set)  # configuration files the same in both
    config_files: int = 0  # YAML files of the base's configuration


def plan_base(root: Path, config: Path, relative: str, commit: str) -> Plan:
    base = revision_blobs(root, commit, [relative, CODE_DIR, BUILDSPEC_DIR])
    here = PACKAGE_DIR
    running = directory_blobs(here)
    base_code = base.get(CODE_DIR, {})
    # the base's package is this one (a configuration-only change, the usual pull request): the base is
    # then synthesized with this installed, compiled code, which gives the same output sooner
    same_code = here == (root / CODE_DIR).resolve() and base_code == running
    with_code = "stacks/__main__.py" in base_code and not same_code
    try:
        current_buildspecs = directory_blobs(buildspec_dir())
    except FleetformError:
        current_buildspecs = {}  # the working tree's synth fails with the message
    versions = _versions()
    base_config, head_config = base.get(relative, {}), directory_blobs(config)
    base_key = inputs_key(base_config, base_code if with_code else running,
                          base.get(BUILDSPEC_DIR, current_buildspecs), versions)
    head_key = inputs_key(head_config, running, current_buildspecs, versions)
    return Plan(commit, [p for p in (relative, CODE_DIR, BUILDSPEC_DIR) if p in base], with_code, base_key, head_key,
                {name for name, blob in base_config.items() if head_config.get(name) == blob},
                sum(1 for name in base_config if "/" not in name and name.endswith((".yaml", ".yml"))))


# --------------------------------------------------------------------------------- the base's synth


class BaseSynth:
    """The cdktf.json app run in ``workdir`` (its fleetform package when ``with_code``) in a child
    process, started at once so that the working tree's synth runs beside it (two cores: about the
    time of one synth instead of two); ``result()`` waits for it."""

    def __init__(self, workdir: Path, config_dir: Path, out_dir: Path, with_code: bool) -> None:
        env = {**os.environ, "FLEETFORM_CONFIG": str(config_dir), "CDKTF_OUTDIR": str(out_dir)}
        # a base revision without buildspec/ (configuration-only repositories): today's
        env[BUILDSPEC_DIR_ENV] = str(workdir / BUILDSPEC_DIR if (workdir / BUILDSPEC_DIR).is_dir() else buildspec_dir())
        if with_code:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(workdir), env.get("PYTHONPATH", "")) if p)
        self.out_dir = out_dir
        self.process = subprocess.Popen([sys.executable, "-m", APP_MODULE], cwd=workdir, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self) -> Path:
        stdout, stderr = self.process.communicate()
        if self.process.returncode != 0:
            raise FleetformError(f"synthesizing the base revision failed (exit {self.process.returncode}):\n"
                                 f"{(stderr or stdout).strip()[-2000:]}")
        return self.out_dir

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SynthCache:
    """Base synths kept under ``<repository>/.fleetform/cache/affected/<inputs key>``: the key digests
    the base's configuration, the code and buildspecs that synthesized it and the engine's versions
    (``inputs_key``), so a changed base commit or changed code never finds a stale entry. The
    ``CACHE_KEEP`` most recently used entries are kept."""

    def __init__(self, root: Path) -> None:
        self.directory = root / CACHE_DIR

    def get(self, key: str) -> Path | None:
        entry = self.directory / key
        if not (entry / "manifest.json").is_file():
            return None
        with contextlib.suppress(OSError):  # a read-only cache is still a cache
            os.utime(entry)  # most recently used
        return entry

    def put(self, key: str, synth_dir: Path) -> None:
        """Copy a finished synth in (best effort: a cache that cannot be written is no cache). Complete
        or absent: it is copied beside the entries and renamed into place."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.directory))
        except OSError:
            return
        try:
            shutil.copytree(synth_dir, staging / "out")
            (staging / "out").rename(self.directory / key)
        except OSError:
            pass  # not writable, or another run stored the same key first (the same bytes)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.prune()

    def prune(self) -> None:
        """Beyond the ``CACHE_KEEP`` most recent, entries unused for a while (one in use by a concurrent
        run stays)."""
        used: list[tuple[float, Path]] = []
        for entry in self.directory.iterdir():
            try:
                used.append((entry.stat().st_mtime, entry))
            except FileNotFoundError:
                continue  # pruned by a concurrent run
        idle = time.time() - CACHE_IDLE_SECONDS
        for mtime, old in sorted(((m, e) for m, e in used if not e.name.startswith(".")), reverse=True)[CACHE_KEEP:]:
            if mtime < idle:
                shutil.rmtree(old, ignore_errors=True)


def affected_stacks(config_dir: str | Path, base: str, head_out: str | Path | None = None,
                    synthesize: Callable[[str, Path], list[StackInfo]] | None = None,
                    cache: bool = True, in_process: bool | None = None) -> Affected:
    """Synthesize ``base`` and the working tree (into ``head_out`` or a temp dir) and compare.

    The base's synth is skipped when the working tree has the same inputs (configuration, code,
    buildspecs), and taken from ``SynthCache`` when an earlier run made it (``cache=False``: neither
    read nor written). Otherwise it runs in this process after the working tree's when it uses this
    code and the organization is small (``in_process``: None decides by ``IN_PROCESS_MAX_FILES``),
    else in a child process beside it."""
    config = Path(config_dir).resolve()
    if not config.is_dir():
        raise UsageError(f"--config {config_dir}: not a directory")
    root = Path(git(config, "rev-parse", "--show-toplevel"))
    relative = config.relative_to(root).as_posix()
    if synthesize is None:
        from fleetform.scripts.synth import synthesize as default_synth

        synthesize = default_synth  # type: ignore[assignment]
    plan = plan_base(root, config, relative, resolve_base(root, base))
    store = SynthCache(root) if cache else None
    with tempfile.TemporaryDirectory(prefix="fleetform-affected-") as tmp:
        tmp_path = Path(tmp)
        tree = tmp_path / "base"
        tree.mkdir()
        head_dir = Path(head_out) if head_out else tmp_path / "head.out"
        base_out: Path | None = store.get(plan.base_key) if store else None
        same = plan.base_key == plan.head_key
        synthesize_base = relative in plan.present and not same and base_out is None
        # in this process only with this code: the base's own code needs its own interpreter
        in_process = not plan.with_code and (in_process if in_process is not None
                                             else plan.config_files <= IN_PROCESS_MAX_FILES)
        # the configuration always (removed accounts are refused); the code and buildspecs only to synthesize
        export_revision(root, plan.commit, [p for p in plan.present if p == relative or synthesize_base
                                            and (p == BUILDSPEC_DIR or plan.with_code)], tree)
        child = None
        if synthesize_base and not in_process:
            # started first: everything below imports cdktn (~0.6 s) while the base synthesizes beside it
            child = BaseSynth(tree, tree / relative, tmp_path / "base.out", plan.with_code)
        try:
            if relative in plan.present:
                _refuse_removed_accounts(tree / relative, config, relative, plan.unchanged_files)
            head_stacks = synthesize(str(config), head_dir)  # type: ignore[misc]
            if child:
                base_out = child.result()
            elif synthesize_base:
                base_out = synth_in_process(tree, tree / relative, tmp_path / "base.out")
        finally:
            if child:
                child.stop()
        # no base configuration: it is new, everything is added
        base_stacks = head_stacks if same else read_manifest(base_out) if base_out else []
        result = compare(base_stacks, head_stacks, base)
        result.base_code = "base" if plan.with_code else "current"
        # their destroy is planned from the base's JSON (and an earlier comparison's are cleared)
        keep_removed(base_out or head_dir, head_dir, result.removed)
        if synthesize_base and store and base_out:
            store.put(plan.base_key, base_out)
        return result


def synth_in_process(workdir: Path, config_dir: Path, out_dir: Path) -> Path:
    """The base's synth with this process's code, after the working tree's (its imports and jsii's
    kernel are paid once: at 1x the second synth costs ~0.35 s, a child process ~1 s of CPU)."""
    from fleetform.config import load_config
    from fleetform.errors import ConfigurationError
    from fleetform.stacks.app import synth

    saved = os.environ.get(BUILDSPEC_DIR_ENV)
    os.environ[BUILDSPEC_DIR_ENV] = str(workdir / BUILDSPEC_DIR if (workdir / BUILDSPEC_DIR).is_dir()
                                        else buildspec_dir())
    try:
        synth(load_config(config_dir), out_dir)
    except ConfigurationError as exc:
        raise FleetformError(f"synthesizing the base revision failed:\n{exc}") from None
    finally:
        if saved is None:
            os.environ.pop(BUILDSPEC_DIR_ENV, None)
        else:
            os.environ[BUILDSPEC_DIR_ENV] = saved
    return out_dir


def _refuse_removed_accounts(base_config: Path, head_config: Path, shown: str, unchanged: set[str]) -> None:
    from fleetform.config.lifecycle import removed_accounts
    from fleetform.errors import ConfigurationError

    problems = removed_accounts(base_config, head_config, shown, unchanged)
    if problems:
        raise ConfigurationError(problems)
