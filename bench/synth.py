"""Synth benchmark: fleetform's resource layer against the official prebuilt provider bindings.

Both paths produce the same Terraform JSON for the example organization:

* fleetform: ``fleetform.stacks.app.synth`` (resources as one document per stack on the cdktn core, decision 0004);
* bindings: every stack, backend, provider, variable, output, resource and data source that the
  fleetform synth emitted, rebuilt through ``cdktn_provider_aws.<module>.<Class>(stack, id, **kwargs)``
  with nested blocks as the binding's struct classes, and synthesized by the same cdktn core.

Each path runs in a fresh child process (as ``fleetform synth`` would), timed from start to exit,
while the parent samples the resident memory of the child's whole process tree (Python and the
node process that runs jsii) every 10 ms. Then the two outputs are compared, stack by stack.

Run ``.venv/bin/python bench/synth.py`` (or ``make bench``); ``--help`` for the options.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # aws_schema: the provider schema read from the jsii assembly

TARGETS = {"speedup": 5.0, "memory_ratio": 5.0, "fleetform_seconds": 3.0, "fleetform_mb": 250.0}
SAMPLE_SECONDS = 0.01
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# measuring a child process tree


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (a sum: shared pages count per process)."""
    total, stack, seen = 0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss(current)
        stack += _children(current)
    return total


@dataclass
class Measurement:
    seconds: float
    cpu_seconds: float  # user + system of the process and its reaped descendants: less sensitive to load
    peak_mb: float
    processes: int
    report: dict[str, Any] = field(default_factory=dict)


def measure(command: list[str], ok: tuple[int, ...] = (0,)) -> Measurement:
    """Run ``command``; wall time to exit and peak resident memory of its process tree (exit status in ``ok``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CHECKPOINT_DISABLE": "1"})
    peak, processes = 0, 1
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        processes = max(processes, 1 + len(_children(proc.pid)))
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = proc.communicate()
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(command[:3])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    peak = max(peak, usage.ru_maxrss * 1024)  # the Python process alone, as the kernel counted it
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(seconds, cpu, peak / 2**20, processes, json.loads(lines[-1]) if lines else {})


# ---------------------------------------------------------------------------------------------
# the fleetform path (child process)


def run_fleetform(config_dir: str, out_dir: str) -> None:
    started = time.perf_counter()
    from fleetform.config import load_config
    from fleetform.stacks.app import synth

    imported = time.perf_counter()
    synth(load_config(config_dir), out_dir)
    done = time.perf_counter()
    print(json.dumps({"import_s": round(imported - started, 3), "synth_s": round(done - imported, 3)}))


# ---------------------------------------------------------------------------------------------
# the prebuilt-bindings path (child process)


def _module_name(namespace: str) -> str:
    return "cdktn_provider_aws." + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", namespace).lower()


def _normal(name: str) -> str:
    return name.replace("_", "").lower()


class Rebuilder:
    """Turns Terraform JSON attribute values into binding keyword arguments."""

    def __init__(self, schema: Any) -> None:
        import importlib
        import inspect

        from cdktn import Token

        self.schema = schema
        self.token = Token
        self._import = importlib.import_module
        self._signature = inspect.signature
        self._classes: dict[str, tuple[Any, dict[str, str]]] = {}

    def binding(self, fqn: str) -> tuple[Any, dict[str, str]]:
        """(class, {normalized jsii name: python keyword}) of a binding class or struct."""
        if fqn not in self._classes:
            namespace, name = fqn.split(".")[-2:]
            cls = getattr(self._import(_module_name(namespace)), name)
            keywords = {_normal(p.rstrip("_")): p for p in self._signature(cls.__init__).parameters}
            self._classes[fqn] = (cls, keywords)
        return self._classes[fqn]

    def kwargs(self, struct_fqn: str, body: dict[str, Any], class_fqn: str | None = None) -> dict[str, Any]:
        attributes = self.schema.struct(struct_fqn)
        _, keywords = self.binding(class_fqn or struct_fqn)
        result = {}
        for key, value in body.items():
            attribute = attributes[key]
            result[keywords[_normal(attribute.jsii_name)]] = self.value(attribute.type, value)
        return result

    def value(self, kind: Any, value: Any) -> Any:
        token = isinstance(value, str) and "${" in value
        if isinstance(kind, str):
            if token and kind == "number":
                return self.token.as_number(value)
            if token and kind == "boolean":
                return self.token.as_any(value)
            return value
        if kind[0] == "union":
            return value
        if kind[0] == "struct":
            if token:
                return self.token.as_any(value)
            item = value[0] if isinstance(value, list) else value
            cls, _ = self.binding(kind[1])
            return cls(**self.kwargs(kind[1], item))
        if kind[0] == "list":
            if token:
                element = kind[1]
                if element == "number":
                    return self.token.as_number_list(value)
                return self.token.as_list(value) if element == "string" else self.token.as_any(value)
            items = value if isinstance(value, list) else [value]
            return [self.value(kind[1], item) for item in items]
        if kind[0] == "map":
            if token:
                return {"string": self.token.as_string_map, "number": self.token.as_number_map,
                        "boolean": self.token.as_boolean_map}.get(kind[1], self.token.as_any_map)(value)
            return {k: self.value(kind[1], v) for k, v in value.items()}
        return value


def run_bindings(plan_file: str, source_dir: str, out_dir: str) -> None:
    """Rebuild every stack of ``source_dir`` (a fleetform synth) through the prebuilt bindings."""
    started = time.perf_counter()
    # the same exit as fleetform's synth (fleetform.stacks.app freezes the garbage collector at exit)
    import atexit
    import gc

    atexit.register(gc.freeze)
    import cdktn_provider_aws  # noqa: F401  (loads the whole assembly, as any user of the bindings does)
    from cdktn import (
        App,
        LocalBackend,
        S3Backend,
        TerraformDataSource,
        TerraformLocal,
        TerraformOutput,
        TerraformResource,
        TerraformStack,
        TerraformVariable,
    )

    imported = time.perf_counter()
    from aws_schema import Schema

    schema = Schema(json.loads(Path(plan_file).read_text()))
    rebuild = Rebuilder(schema)

    class Stack(TerraformStack):
        """Construct ids are "<kind>|<name>" (an output and a resource may share a name); the
        Terraform name is the part after the "|", verbatim as fleetform emitted it."""

        def _allocate_logical_id(self, element: Any) -> str:
            return element.node.id.rsplit("|", 1)[-1]

    class RawResource(TerraformResource):  # Terraform built-ins (terraform_data): not in the bindings
        def __init__(self, scope: Any, id: str, tf_type: str, body: dict) -> None:
            super().__init__(scope, id, terraform_resource_type=tf_type)
            self._body = body

        def _synthesize_attributes(self) -> dict:
            return self._body

    class RawData(TerraformDataSource):  # terraform_remote_state (cross-stack references)
        def __init__(self, scope: Any, id: str, tf_type: str, body: dict) -> None:
            super().__init__(scope, id, terraform_resource_type=tf_type)
            self._body = body

        def _synthesize_attributes(self) -> dict:
            return self._body

    manifest = json.loads((Path(source_dir) / "manifest.json").read_text())
    app = App(outdir=out_dir, context={"targetVersions": {"terraform": ">=1.10.0", "opentofu": ">=1.10.0"}})
    stacks = {}
    for name, entry in manifest["stacks"].items():
        document = json.loads((Path(source_dir) / entry["synthesizedStackPath"]).read_text())
        stack = stacks[name] = Stack(app, name)
        backend = document.get("terraform", {}).get("backend", {})
        if "s3" in backend:
            S3Backend(stack, **backend["s3"])
        elif "local" in backend:
            LocalBackend(stack, **backend["local"])
        provider_cls, _ = rebuild.binding(schema.class_fqn("provider", "aws"))
        for i, body in enumerate(document.get("provider", {}).get("aws", [])):
            provider_cls(stack, f"provider|aws{i}", **rebuild.kwargs(schema.provider, body,
                                                                                   schema.class_fqn("provider", "aws")))
        for var_name, body in document.get("variable", {}).items():
            TerraformVariable(stack, f"variable|{var_name}", **body)
        for local_name, expression in document.get("locals", {}).items():
            TerraformLocal(stack, f"local|{local_name}", expression)
        for section, kind in (("resource", "resources"), ("data", "data_sources")):
            for tf_type, instances in document.get(section, {}).items():
                known = schema.resources if kind == "resources" else schema.data_sources
                for logical, body in instances.items():
                    meta = {k: v for k, v in body.items() if k in META}
                    attributes = {k: v for k, v in body.items() if k not in META}
                    if tf_type in known:
                        cls_fqn = schema.class_fqn(kind, tf_type)
                        cls, _ = rebuild.binding(cls_fqn)
                        element = cls(stack, f"{section}.{tf_type}|{logical}",
                                      **rebuild.kwargs(known[tf_type], attributes, cls_fqn))
                    else:
                        raw = RawResource if section == "resource" else RawData
                        element = raw(stack, f"{section}.{tf_type}|{logical}", tf_type, attributes)
                    for key, value in meta.items():
                        if key == "//":
                            for comment, text in value.items():
                                if comment != "metadata":
                                    element.add_override(f"//.{comment}", text)
                        else:
                            element.add_override(key, value)
        for out_name, body in document.get("output", {}).items():
            TerraformOutput(stack, f"output|{out_name}", **body)
        # top-level settings and blocks fleetform writes (Terraform version, import/removed blocks): the
        # bindings user adds them the only way the core allows, as overrides of the stack
        if document.get("terraform", {}).get("required_version"):
            stack.add_override("terraform.required_version", document["terraform"]["required_version"])
        for block in ("import", "removed", "moved"):
            if block in document:
                stack.add_override(block, document[block])
    for name, entry in manifest["stacks"].items():
        for dependency in entry.get("dependencies", []):
            stacks[name].add_dependency(stacks[dependency])
    app.synth()
    done = time.perf_counter()
    print(json.dumps({"import_s": round(imported - started, 3), "synth_s": round(done - imported, 3)}))


META = {"//", "depends_on", "lifecycle", "provider", "count", "for_each"}


# ---------------------------------------------------------------------------------------------
# comparing the outputs


def _stacks(out_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out_dir / "stacks").glob("*/cdk.tf.json"))}


def _strip(value: Any) -> Any:
    """Drop cdktn's bookkeeping (construct paths), keep everything Terraform reads (and checkov skips)."""
    if isinstance(value, dict):
        result = {k: _strip(v) for k, v in value.items() if k != "metadata" or not isinstance(v, dict)}
        return {k: v for k, v in result.items() if not (k == "//" and v == {})}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _diff(left: Any, right: Any, path: str) -> Iterator[str]:
    # a block that allows one item: fleetform writes [{...}], the bindings {...}; Terraform reads both alike
    if isinstance(left, list) and len(left) == 1 and isinstance(left[0], dict) and isinstance(right, dict):
        left = left[0]
    if isinstance(right, list) and len(right) == 1 and isinstance(right[0], dict) and isinstance(left, dict):
        right = right[0]
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            where = f"{path}.{key}" if path else key
            if key not in right:
                yield f"{where}: only in fleetform"
            elif key not in left:
                yield f"{where}: only in bindings"
            else:
                yield from _diff(left[key], right[key], where)
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from _diff(a, b, f"{path}[{i}]")
    elif left != right:
        yield f"{path}: {json.dumps(left)[:80]} != {json.dumps(right)[:80]}"


def compare(fleetform_out: Path, bindings_out: Path) -> dict[str, Any]:
    ours, theirs = _stacks(fleetform_out), _stacks(bindings_out)
    differences: list[str] = []
    resources = 0
    constraints: set[str | None] = set()
    for name in sorted(set(ours) | set(theirs)):
        if name not in theirs or name not in ours:
            differences.append(f"{name}: stack only in {'fleetform' if name in ours else 'bindings'}")
            continue
        left, right = _strip(ours[name]), _strip(theirs[name])
        for document in (left, right):
            document.pop("//", None)
            # the bindings pin the exact provider release they were generated from; fleetform
            # declares "~> 6.69" (DESIGN section 2). Reported, not counted as a difference.
            constraints.add(document.get("terraform", {}).get("required_providers", {}).pop("aws", {}).get("version"))
        resources += sum(len(v) for v in ours[name].get("resource", {}).values())
        differences += [f"{name}: {d}" for d in _diff(left, right, "")]
    return {"stacks": len(ours), "resources": resources, "identical": not differences,
            "differences": len(differences), "examples": differences[:20],
            "provider_constraints": sorted(c for c in constraints if c)}


def write_plan(fleetform_out: Path, target: Path) -> None:
    """The part of the provider schema this output needs (so the child reads kilobytes, not the index)."""
    from aws_schema import load_schema

    schema = load_schema()
    index = {"version": schema.version, "resources": {}, "data_sources": {}, "provider": schema.provider,
             "classes": {"provider": schema.class_fqn("provider", "aws")}, "structs": {}}
    pending = [schema.provider]
    for document in _stacks(fleetform_out).values():
        for section, kind in (("resource", "resources"), ("data", "data_sources")):
            known = schema.resources if kind == "resources" else schema.data_sources
            for tf_type in document.get(section, {}):
                if tf_type in known:
                    index[kind][tf_type] = known[tf_type]
                    index["classes"][f"{kind}:{tf_type}"] = schema.class_fqn(kind, tf_type)
                    pending.append(known[tf_type])
    while pending:
        fqn = pending.pop()
        if fqn in index["structs"]:
            continue
        attributes = schema.struct(fqn)
        index["structs"][fqn] = {a.name: [a.jsii_name, a.required, a.type] for a in attributes.values()}
        pending += re.findall(r'"struct", "([^"]+)"', json.dumps([a.type for a in attributes.values()]))
    target.write_text(json.dumps(index))


# ---------------------------------------------------------------------------------------------
# the command


def _summary(runs: list[Measurement]) -> dict[str, Any]:
    return {"seconds": round(statistics.median(r.seconds for r in runs), 2),
            "seconds_min": round(min(r.seconds for r in runs), 2),
            "cpu_seconds": round(statistics.median(r.cpu_seconds for r in runs), 2),
            "peak_mb": round(statistics.median(r.peak_mb for r in runs), 1),
            "peak_mb_max": round(max(r.peak_mb for r in runs), 1),
            "processes": max(r.processes for r in runs),
            "phases": runs[-1].report, "runs": [asdict(r) | {"report": None} for r in runs]}


def benchmark(config_dir: str, runs: int, keep: Path | None, bindings: bool) -> dict[str, Any]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _benchmark(config_dir, runs, keep, bindings)
    with tempfile.TemporaryDirectory(prefix="fleetform-bench-") as work:
        return _benchmark(config_dir, runs, Path(work), bindings)


def _benchmark(config_dir: str, runs: int, work: Path, bindings: bool) -> dict[str, Any]:
    me = [sys.executable, str(Path(__file__).resolve())]
    ours = [measure(me + ["_fleetform", config_dir, str(work / f"fleetform-{i}")]) for i in range(runs)]
    result: dict[str, Any] = {"config": config_dir, "runs": runs, "cpus": os.cpu_count(),
                              "load_average": [round(x, 2) for x in os.getloadavg()],
                              "fleetform": _summary(ours), "targets": TARGETS}
    if not bindings:
        return result
    source = work / "fleetform-0"
    plan = work / "plan.json"
    write_plan(source, plan)
    theirs = [measure(me + ["_bindings", str(plan), str(source), str(work / f"bindings-{i}")]) for i in range(runs)]
    result["bindings"] = _summary(theirs)
    result["output"] = compare(source, work / "bindings-0")
    f, b = result["fleetform"], result["bindings"]
    result["speedup"] = round(b["seconds"] / f["seconds"], 1)
    result["cpu_ratio"] = round(b["cpu_seconds"] / f["cpu_seconds"], 1)
    result["memory_ratio"] = round(b["peak_mb"] / f["peak_mb"], 1)
    result["met"] = {
        "speedup": result["speedup"] >= TARGETS["speedup"],
        "memory_ratio": result["memory_ratio"] >= TARGETS["memory_ratio"],
        "fleetform_seconds": f["seconds"] < TARGETS["fleetform_seconds"],
        "fleetform_mb": f["peak_mb"] < TARGETS["fleetform_mb"],
        "same_output": result["output"]["identical"],
    }
    return result


def print_text(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    f, b = result["fleetform"], result.get("bindings")
    load = ", ".join(str(x) for x in result["load_average"])
    table = Table(title=f"synth of {result['config']} (median of {result['runs']} run(s), {result['cpus']} CPUs, "
                        f"load average {load})")
    for column in ("", "fleetform", "prebuilt bindings", "bindings / fleetform"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("wall time, process start to exit", f"{f['seconds']:.2f} s",
                  f"{b['seconds']:.2f} s" if b else "-", f"{result['speedup']}x" if b else "-")
    table.add_row("CPU time (user + system)", f"{f['cpu_seconds']:.2f} s",
                  f"{b['cpu_seconds']:.2f} s" if b else "-", f"{result['cpu_ratio']}x" if b else "-")
    table.add_row("peak memory, process tree", f"{f['peak_mb']:.0f} MB",
                  f"{b['peak_mb']:.0f} MB" if b else "-", f"{result['memory_ratio']}x" if b else "-")
    table.add_row("  of which imports / build + synth",
                  f"{f['phases'].get('import_s', 0):.2f} s / {f['phases'].get('synth_s', 0):.2f} s",
                  f"{b['phases'].get('import_s', 0):.2f} s / {b['phases'].get('synth_s', 0):.2f} s" if b else "-", "")
    console.print(table)
    console.print(f"targets: bindings/fleetform >= {TARGETS['speedup']:.0f}x in time and in memory; fleetform "
                  f"< {TARGETS['fleetform_seconds']:.0f} s and < {TARGETS['fleetform_mb']:.0f} MB")
    if not b:
        return
    output = result["output"]
    same = "identical" if output["identical"] else f"{output['differences']} difference(s)"
    console.print(f"output: {output['stacks']} stacks, {output['resources']} resources, {same} "
                  f"(provider constraints: {', '.join(output['provider_constraints'])})")
    for line in output["examples"]:
        console.print(f"  {line}", markup=False, overflow="ellipsis", no_wrap=True)
    missed = [name for name, ok in result["met"].items() if not ok]
    console.print("all targets met" if not missed else f"[red]targets missed: {', '.join(missed)}[/red]")


def print_scales(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="synth at each size (medians)")
    for column in ("size", "stacks", "resources", "fleetform", "prebuilt bindings", "ratio time / memory"):
        table.add_column(column, justify="right")
    for r in results:
        f, b, out = r["fleetform"], r.get("bindings"), r.get("output", {})
        table.add_row(f"{r['scale']}x", str(out.get("stacks", "-")), str(out.get("resources", "-")),
                      f"{f['seconds']:.2f} s, {f['peak_mb']:.0f} MB",
                      f"{b['seconds']:.2f} s, {b['peak_mb']:.0f} MB" if b else "-",
                      f"{r['speedup']}x / {r['memory_ratio']}x" if b else "-")
    Console(width=120).print(table)


def main() -> None:
    import click

    from fleetform.config import load_config
    from fleetform.scripts.common import handle_errors

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--config", "config_dir", default=str(ROOT / "accounts"), show_default="accounts/",
                  type=click.Path(file_okay=False, exists=True), help="Configuration to synthesize.")
    @click.option("--runs", type=click.IntRange(1, 20), default=1, show_default=True,
                  help="Runs of each path; medians are reported.")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
                  help="text for people, json for scripts.")
    @click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Keep both outputs in this directory (default: a temporary directory).")
    @click.option("--no-bindings", is_flag=True, help="Measure the fleetform path only (skips the ~1 GB bindings run).")
    @click.option("--scale", "scales", default="1", show_default=True,
                  help="Comma-separated sizes: N copies of each workload account of --config (bench/scale.py), "
                       "e.g. 1,10,25.")
    @handle_errors
    def cli(config_dir: str, runs: int, output: str, keep: Path | None, no_bindings: bool, scales: str) -> None:
        """Time and peak memory of `fleetform synth` next to the prebuilt provider bindings.

        \b
        Example:
          .venv/bin/python bench/synth.py                 # one run of each path, a table
          .venv/bin/python bench/synth.py --runs 3 --output json
          .venv/bin/python bench/synth.py --runs 3 --scale 1,10,25   # the example organization, 10x and 25x
        """
        from scale import scale

        try:
            sizes = [int(s) for s in scales.split(",")]
        except ValueError:
            raise click.BadParameter(f"{scales!r}: comma-separated whole numbers", param_hint="--scale") from None
        load_config(config_dir)  # bad configuration: the usual message and exit 2, before any timing
        results = []
        with tempfile.TemporaryDirectory(prefix="fleetform-scale-") as generated:
            for size in sizes:
                config = config_dir if size == 1 else str(scale(size, Path(generated) / f"x{size}", Path(config_dir)))
                result = benchmark(config, runs, keep / f"x{size}" if keep else None, bindings=not no_bindings)
                result["scale"] = size
                results.append(result)
                if output != "json":
                    print_text(result)
        if output == "json":
            click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        elif len(results) > 1:
            print_scales(results)

    cli()


if __name__ == "__main__":
    if sys.argv[1:2] == ["_fleetform"]:
        run_fleetform(*sys.argv[2:4])
    elif sys.argv[1:2] == ["_bindings"]:
        run_bindings(*sys.argv[2:5])
    else:
        main()
