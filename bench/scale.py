"""A larger organization for the benchmarks: the example organization with its workload accounts copied.

``scale(N)`` keeps ``organization.yaml``, the management and log-archive accounts, and writes N copies of
each workload account (prod, stg, dev: every account file with a ``network``): copy k of ``prod.yaml`` is
``prod-k`` with its own id, e-mail, CIDR (10.<n>.0.0/16) and DNS zone, and without the ops cluster (an
organization has one). N=1 is the example organization
itself; N=10 gives 254 stacks and about 10,000 resources, N=25 634 stacks and about 25,000.

    .venv/bin/python bench/scale.py 10 /tmp/org-10x      # then: fleetform synth --config /tmp/org-10x
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "accounts"


def _rename_zone(value: str, zone: str, new_zone: str) -> str:
    return value[: -len(zone)] + new_zone if value == zone or value.endswith("." + zone) else value


def _copy(document: dict[str, Any], copy: int, serial: int) -> dict[str, Any]:
    name = document["account"]["name"]
    document["account"]["name"] = f"{name}-{copy}"
    if "id" in document["account"]:
        document["account"]["id"] = f"{900000000000 + serial:012d}"
    local, domain = document["account"]["email"].split("@", 1)
    document["account"]["email"] = f"{local}-{copy}@{domain}"
    document["network"]["cidr"] = f"10.{100 + serial}.0.0/16" if serial < 156 else f"172.{serial - 140}.0.0/16"
    clusters = document.get("clusters") or {}
    for cluster_name in [n for n, c in clusters.items() if (c or {}).get("role") == "ops"]:
        del clusters[cluster_name]  # one ops cluster per organization: the original's
    dns = document.get("dns")
    if dns:
        zone = dns["zone"]
        new_zone = f"{name}-{copy}.{zone}"
        dns["zone"] = new_zone
        for cluster in (document.get("clusters") or {}).values():
            if cluster.get("hostname"):
                cluster["hostname"] = _rename_zone(cluster["hostname"], zone, new_zone)
    return document


def scale(factor: int, target: Path, source: Path = EXAMPLE) -> Path:
    """Write the example organization with ``factor`` copies of each workload account into ``target``."""
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    if factor == 1:
        return target
    yaml = YAML()
    workloads = sorted(p for p in target.glob("*.yaml")
                       if p.name != "organization.yaml" and "network" in (yaml.load(p.read_text()) or {}))
    serial = 0
    for path in workloads:
        for copy in range(2, factor + 1):
            serial += 1
            document = _copy(yaml.load(path.read_text()), copy, serial)
            with (target / f"{path.stem}-{copy}.yaml").open("w") as handle:
                yaml.dump(document, handle)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        sys.exit("usage: bench/scale.py FACTOR DIR")
    print(scale(int(sys.argv[1]), Path(sys.argv[2])))
