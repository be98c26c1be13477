"""Plan and apply benchmark: `fleetform plan`/`apply` one stack at a time against --parallelism N.

Provider-free fixture stacks (``terraform_data``, local state) in a fan-out dependency tree (a root,
then each stack depending on the one at (i-1)//3), so real Terraform runs init, plan, show and apply
with no provider download. Each configuration runs ``fleetform plan`` then ``fleetform apply`` in a
fresh child process on a fresh copy of the stacks; the parent samples the whole process tree's
resident memory (bench/synth.py's sampler). Against real AWS a plan mostly waits on the provider and
the APIs, so the speed-up there is larger than on these CPU-bound fixtures.

    .venv/bin/python bench/parallel.py                      # 20 and 50 stacks, parallelism 1, 2, 4
    .venv/bin/python bench/parallel.py --stacks 20 --parallelism 1,4 --output json
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from fixtures.tfstacks import local_backend, stack_body, terraform_data, write_synth  # noqa: E402
from synth import measure  # noqa: E402


def fan_out(out: Path, state: Path, count: int) -> Path:
    names = [f"stack-{i:03d}" for i in range(count)]
    graph = {name: [names[(i - 1) // 3]] if i else [] for i, name in enumerate(names)}
    state.mkdir(parents=True, exist_ok=True)
    return write_synth(out, {n: stack_body(terraform_data(a=n, b=n + "-b"), local_backend(state, n)) for n in names},
                       graph)


def one(count: int, parallelism: int, work: Path) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    synth = fan_out(work / "cdktf.out", work / "state", count)
    fleetform = [sys.executable, "-m", "fleetform.scripts.main"]
    common = ["--synth-dir", str(synth), "--out-dir", str(work / "plans"), "--parallelism", str(parallelism)]
    plan = measure([*fleetform, "plan", *common], ok=(2,))
    apply = measure([*fleetform, "apply", *common, "--yes"])
    return {"stacks": count, "parallelism": parallelism, "plan_s": round(plan.seconds, 2),
            "apply_s": round(apply.seconds, 2), "plan_peak_mb": round(plan.peak_mb),
            "apply_peak_mb": round(apply.peak_mb)}


def main() -> None:
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--stacks", "counts", default="20,50", show_default=True, help="Comma-separated stack counts.")
    @click.option("--parallelism", "levels", default="1,2,4", show_default=True, help="Comma-separated levels.")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def cli(counts: str, levels: str, output: str) -> None:
        """Wall time and peak memory of plan and apply, sequential and in parallel, on fixture stacks."""
        rows = []
        with tempfile.TemporaryDirectory(prefix="fleetform-bench-parallel-") as tmp:
            for count in (int(c) for c in counts.split(",")):
                for level in (int(p) for p in levels.split(",")):
                    rows.append(one(count, level, Path(tmp) / f"{count}-{level}"))
                    base = next(r for r in rows if r["stacks"] == count)
                    rows[-1]["speedup"] = round((base["plan_s"] + base["apply_s"])
                                                / (rows[-1]["plan_s"] + rows[-1]["apply_s"]), 2)
                    if output == "text":
                        r = rows[-1]
                        click.echo(f"{count} stacks, parallelism {level}: plan {r['plan_s']} s ({r['plan_peak_mb']} MB)"
                                   f", apply {r['apply_s']} s ({r['apply_peak_mb']} MB): {r['speedup']}x")
        if output == "json":
            click.echo(json.dumps({"cpus": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows}, indent=2))

    cli()


if __name__ == "__main__":
    main()
