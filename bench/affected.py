"""`fleetform affected` next to one `fleetform synth` of the same organization (issue 18: at most 1.5x).

A configuration-only repository (the organization's YAML files in ``accounts/``, fleetform installed:
the usual infrastructure repository) with one commit, and the working tree changed by one line (prod's
NAT gateways per AZ -> single, which changes ``prod-network`` and what depends on it). Each run measures,
one right after the other so that they see the same machine:

* ``fleetform synth`` of the working tree;
* ``fleetform affected --base HEAD --no-cache``: the base commit synthesized in a child process beside
  the working tree's synth (what the first run against a base commit pays);
* ``fleetform affected --base HEAD``: the base's synth taken from ``.fleetform/cache/affected/``
  (every later run against the same base commit and code);
* ``fleetform affected --base HEAD`` in a clean clone: nothing changed, the base's synth is skipped.

Before timing, the three ``affected`` variants must list the same stacks (the clean clone: none).

    .venv/bin/python bench/affected.py --runs 3 --scale 1,10
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from scale import scale  # noqa: E402
from synth import measure  # noqa: E402

TARGET = 1.5  # affected / synth
CHANGE = ("prod.yaml", "nat: per-az", "nat: single")
VARIANTS = {
    "synth": "fleetform synth",
    "cold": "affected, base synthesized (--no-cache)",
    "cached": "affected, base synth from the cache",
    "unchanged": "affected, nothing changed (base synth skipped)",
}
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def make_repo(config: Path, repo: Path, change: bool) -> Path:
    """``repo`` with ``config`` committed as accounts/; ``change``: prod's NAT edited in the working tree."""
    shutil.copytree(config, repo / "accounts")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "organization")
    if change:
        path = repo / "accounts" / CHANGE[0]
        text = path.read_text()
        if CHANGE[1] not in text:
            raise SystemExit(f"{path}: no {CHANGE[1]!r} to change")
        path.write_text(text.replace(CHANGE[1], CHANGE[2], 1))
    return repo / "accounts"


def affected_json(fleetform: str, config: Path, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([fleetform, "affected", "--base", "HEAD", "--config", str(config), "--json", *extra],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"fleetform affected failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def bench_size(config: Path, runs: int, work: Path) -> dict[str, Any]:
    fleetform = str(Path(sys.executable).with_name("fleetform"))
    changed = make_repo(config, work / "changed", change=True)
    clean = make_repo(config, work / "clean", change=False)
    # the same answer three ways (this also fills the cache for the "cached" runs)
    cold = affected_json(fleetform, changed, "--no-cache")
    stored = affected_json(fleetform, changed)
    cached = affected_json(fleetform, changed)
    unchanged = affected_json(fleetform, clean)
    keys = ("changed", "added", "removed", "dependents", "stacks")
    if not ({k: cold[k] for k in keys} == {k: stored[k] for k in keys} == {k: cached[k] for k in keys}):
        raise SystemExit(f"affected differs with the cache: {cold} != {cached}")
    if unchanged["stacks"] or not cold["changed"]:
        raise SystemExit(f"unexpected: unchanged {unchanged['stacks']}, changed {cold['changed']}")
    commands = {
        "synth": [fleetform, "synth", "--config", str(changed), "--synth-dir", str(work / "synth.out")],
        "cold": [fleetform, "affected", "--base", "HEAD", "--config", str(changed), "--no-cache"],
        "cached": [fleetform, "affected", "--base", "HEAD", "--config", str(changed)],
        "unchanged": [fleetform, "affected", "--base", "HEAD", "--config", str(clean)],
    }
    measured: dict[str, list[Any]] = {k: [] for k in commands}
    for _ in range(runs):
        for key, command in commands.items():  # side by side: each run sees the same machine for all four
            measured[key].append(measure(command))
    synth_stacks = len(list((work / "synth.out" / "stacks").iterdir()))
    result: dict[str, Any] = {"stacks": synth_stacks, "changed": cold["changed"], "affected": len(cold["stacks"])}
    for key, values in measured.items():
        result[key] = {"seconds": round(statistics.median(m.seconds for m in values), 2),
                       "cpu_seconds": round(statistics.median(m.cpu_seconds for m in values), 2),
                       "peak_mb": round(statistics.median(m.peak_mb for m in values), 1),
                       "runs": [round(m.seconds, 2) for m in values]}
    for key in ("cold", "cached", "unchanged"):
        result[key]["ratio"] = round(result[key]["seconds"] / result["synth"]["seconds"], 2)
        result[key]["cpu_ratio"] = round(result[key]["cpu_seconds"] / result["synth"]["cpu_seconds"], 2)
        result[key]["met"] = result[key]["ratio"] <= TARGET
    return result


def print_results(results: list[dict[str, Any]], runs: int) -> None:
    from rich.console import Console
    from rich.table import Table

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    table = Table(title=f"fleetform affected / one synth, wall time (median of {runs} run(s), {os.cpu_count()} CPUs, "
                        f"load average now {load}; target <= {TARGET}x)")
    table.add_column("size", justify="right")
    table.add_column("stacks", justify="right")
    for key in VARIANTS:
        table.add_column(VARIANTS[key], justify="right")
    for r in results:
        cells = [f"{r['synth']['seconds']:.2f} s (CPU {r['synth']['cpu_seconds']:.2f} s)"]
        for key in ("cold", "cached", "unchanged"):
            mark = "" if r[key]["met"] else " (over)"
            cells.append(f"{r[key]['seconds']:.2f} s = {r[key]['ratio']}x{mark} (CPU {r[key]['cpu_ratio']}x)")
        table.add_row(f"{r['scale']}x", str(r["stacks"]), *cells)
    Console(width=150).print(table)


def main() -> None:
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--config", "config_dir", default=str(ROOT / "accounts"), show_default="accounts/",
                  type=click.Path(file_okay=False, exists=True), help="The organization (1x).")
    @click.option("--runs", type=click.IntRange(1, 20), default=1, show_default=True,
                  help="Runs of each command; medians are reported.")
    @click.option("--scale", "scales", default="1,10", show_default=True,
                  help="Comma-separated sizes: N copies of each workload account (bench/scale.py).")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def cli(config_dir: str, runs: int, scales: str, output: str) -> None:
        """Wall time of `fleetform affected` next to one `fleetform synth`, at each size.

        \b
        Example:
          .venv/bin/python bench/affected.py --runs 3 --scale 1,10
        """
        try:
            sizes = [int(s) for s in scales.split(",")]
        except ValueError:
            raise click.BadParameter(f"{scales!r}: comma-separated whole numbers", param_hint="--scale") from None
        results = []
        with tempfile.TemporaryDirectory(prefix="fleetform-bench-affected-") as tmp:
            for size in sizes:
                work = Path(tmp) / f"x{size}"
                config = Path(config_dir) if size == 1 else scale(size, work / "generated", Path(config_dir))
                result = bench_size(config, runs, work)
                result["scale"] = size
                results.append(result)
        if output == "json":
            click.echo(json.dumps({"runs": runs, "cpus": os.cpu_count(), "target": TARGET,
                                   "load_average": [round(x, 2) for x in os.getloadavg()], "sizes": results},
                                  indent=2))
        else:
            print_results(results, runs)

    cli()


if __name__ == "__main__":
    main()
