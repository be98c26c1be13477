"""Applying the network stack with the real provider (issue 18): ``prod-network`` of the example
organization with hashicorp/aws 5.100.0 (the filesystem mirror) and PATH's Terraform, into a moto
server on 127.0.0.1.

The harness is the real-provider lane's (tests/real_provider.py, imported, not copied): moto over
HTTPS with the managed policies loaded, the CLI configuration for the mirror, the S3 backend in
moto, the management account's credentials from which the provider assumes its role into prod, the
v5-compatibility step and ``MOTO_GAPS`` (what moto cannot apply, left out with ``-target`` as the lane
does; none of prod-network's resources since the lane's moto answers the ops hub's RAM and Transit
Gateway calls).

Per run: a fresh moto server and working directories; ``bootstrap`` applied first (the state bucket
that prod-network's backend writes to; timed separately), then prod-network through the lane's
``Lane.apply``: ``init``, ``plan``, ``apply`` and a re-plan, each timed, with the peak memory of the
Terraform process tree (Terraform and the provider plugin; moto's server reported apart). The re-plan
must show no change outside the gaps. prod-network
has no ``terraform_remote_state``: its other dependencies (organization, prod-baseline) only order the
real pipeline (the account and its roles must exist), which moto does not need.

    .venv/bin/python bench/network_apply.py --runs 3      # or: make bench-apply

Without the mirror (or a Terraform >= 1.10 on PATH) it prints why and exits 0.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))

from real_provider import PROVIDER_VERSION, Lane, MotoServer, unavailable  # noqa: E402
from synth import tree_rss  # noqa: E402

STACK = "prod-network"
DEPENDENCIES = ("bootstrap",)  # the state bucket; see the module docstring for the others
HISTORICAL = "9 min 50 s for 117 resources (issue 18: 45 aws_vpc_endpoint_subnet_association, ~1 min each)"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PeakMemory:
    """The largest resident size of this process's child trees (Terraform and its provider plugin),
    leaving out ``exclude`` (moto's server, sampled on its own), every 50 ms."""

    def __init__(self, exclude: int) -> None:
        self.exclude = exclude
        self.peak = 0
        self.moto_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        from synth import _children

        me = os.getpid()
        while not self._stop.is_set():
            children = _children(me)
            self.peak = max(self.peak, sum(tree_rss(c) for c in children if c != self.exclude))
            self.moto_peak = max(self.moto_peak, tree_rss(self.exclude))
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def moto_server(work: Path) -> Iterator[MotoServer]:
    moto = MotoServer(free_port(), work / "moto")
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()


def one_run(synth_dir: Path, work: Path, management: str, region: str) -> dict[str, Any]:
    with moto_server(work) as moto:
        credentials = moto.management_credentials(management, region)
        lane = Lane(work / "lane", env={**credentials, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_REGION": region,
                                        "AWS_CA_BUNDLE": str(moto.ca_bundle)}, moto=True)
        lane.write_from(synth_dir, (*DEPENDENCIES, STACK))
        dependencies = {name: round(lane.apply(name).seconds, 1) for name in DEPENDENCIES}
        # the lane's own apply: init, plan (-target of what moto can apply), apply, re-plan; each phase timed
        with PeakMemory(exclude=moto.process.pid if moto.process else -1) as memory:
            run = lane.apply(STACK)
    doc = lane.doc(STACK)
    phases = run.phases
    return {"dependencies_seconds": dependencies, "phases_seconds": phases,
            "seconds": round(phases["init"] + phases["plan"] + phases["apply"], 1),
            "resources": sum(len(v) for v in doc.get("resource", {}).values()),
            "applied": count_created(lane.stack_dir(STACK) / "apply.log"),
            "left_out_for_moto": sorted(run.gaps), "replan_changes": run.unexpected(),
            "peak_mb": round(memory.peak / 2**20), "moto_peak_mb": round(memory.moto_peak / 2**20)}


def count_created(apply_log: Path) -> int:
    """Resources the apply created ("<address>: Creation complete after 3s" in Terraform's output)."""
    return sum(1 for line in apply_log.read_text().splitlines() if ": Creation complete after " in line)


def benchmark(config_dir: Path, runs: int) -> dict[str, Any]:
    from fleetform.config import load_config

    config = load_config(config_dir)
    management = config.organization.management_account_id
    region = config.organization.home_region
    terraform = subprocess.run(["terraform", "version", "-json"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="fleetform-bench-network-") as tmp:
        synth_dir = Path(tmp) / "synth"
        subprocess.run([str(Path(sys.executable).with_name("fleetform")), "synth", "--config", str(config_dir),
                        "--synth-dir", str(synth_dir)], check=True, capture_output=True)
        results = [one_run(synth_dir, Path(tmp) / f"run-{i}", management, region) for i in range(runs)]
    last = results[-1]
    return {
        "stack": STACK, "runs": runs, "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "terraform": json.loads(terraform.stdout)["terraform_version"], "provider": f"hashicorp/aws {PROVIDER_VERSION}",
        "resources": last["resources"], "created": last["applied"], "left_out_for_moto": last["left_out_for_moto"],
        "seconds": statistics.median(r["seconds"] for r in results),
        "apply_seconds": statistics.median(r["phases_seconds"]["apply"] for r in results),
        "replan_seconds": statistics.median(r["phases_seconds"].get("replan", 0.0) for r in results),
        "peak_mb": statistics.median(r["peak_mb"] for r in results),
        "dependencies_seconds": {n: statistics.median(r["dependencies_seconds"][n] for r in results)
                                 for n in DEPENDENCIES},
        "replan_clean": all(not r["replan_changes"] for r in results),
        "historical_baseline": HISTORICAL, "per_run": results,
    }


def print_text(result: dict[str, Any]) -> None:
    load = ", ".join(str(x) for x in result["load_average"])
    runs = result["per_run"]
    print(f"{result['stack']}: Terraform {result['terraform']}, {result['provider']} (filesystem mirror), moto on "
          f"127.0.0.1; {result['runs']} run(s), {result['cpus']} CPUs, load average at the end {load}")
    print(f"  resources {result['resources']}, created {result['created']}; left out for moto (MOTO_GAPS): "
          f"{len(result['left_out_for_moto'])}")
    for i, r in enumerate(runs, 1):
        p = r["phases_seconds"]
        print(f"  run {i}: init {p['init']} s + plan {p['plan']} s + apply {p['apply']} s = {r['seconds']} s "
              f"(re-plan {p.get('replan', '-')} s), "
              f"peak {r['peak_mb']} MB (moto {r['moto_peak_mb']} MB); before it: "
              + ", ".join(f"{n} {s} s" for n, s in r["dependencies_seconds"].items()))
    print(f"median: {result['seconds']:.1f} s (apply alone {result['apply_seconds']:.1f} s), "
          f"peak {result['peak_mb']} MB of Terraform + provider; re-plan after the apply: "
          f"{'no changes' if result['replan_clean'] else [r['replan_changes'] for r in runs]}")
    print(f"historical baseline, not re-measured: {result['historical_baseline']}")


def main() -> None:
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--config", "config_dir", default=str(ROOT / "accounts"), show_default="accounts/",
                  type=click.Path(file_okay=False, exists=True, path_type=Path), help="The organization.")
    @click.option("--runs", type=click.IntRange(1, 10), default=1, show_default=True,
                  help="Runs, each into a fresh moto server; medians are reported.")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def cli(config_dir: Path, runs: int, output: str) -> None:
        """Wall time and peak memory of applying prod-network with the real provider into moto.

        \b
        Example:
          .venv/bin/python bench/network_apply.py --runs 3
        """
        reason = unavailable()
        if reason:
            click.echo(f"skipped: the network apply benchmark needs the real provider: {reason}")
            return
        result = benchmark(config_dir, runs)
        if output == "json":
            click.echo(json.dumps(result, indent=2))
        else:
            print_text(result)
        if not result["replan_clean"]:
            sys.exit(1)  # the apply did not converge: the figure would not mean what it says

    cli()


if __name__ == "__main__":
    main()
