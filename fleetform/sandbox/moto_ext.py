"""What the sandbox adds inside moto's process: CloudWatch percentile statistics (``p99``).

moto computes Sum/Average/Minimum/Maximum/SampleCount only and answers ``None`` for a percentile;
AWS computes ``pNN`` over the period's samples (docs: CloudWatch "Percentiles"). The gates read
``TargetResponseTime`` as ``p99``, so the sandbox must too. Nearest-rank percentile over the raw
values put with ``Values``/``Counts`` or ``Value``.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


def percentile(values: list[float], rank: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def install() -> None:
    """Patch moto's statistics once (idempotent); call in the process that runs the moto server."""
    from moto.cloudwatch import models

    original = models.Statistics.get_statistics_for_type
    if getattr(original, "_fleetform", False):
        return

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        match = _PERCENTILE.match(stat)
        if match:
            return percentile(self.metric_single_values_list, float(match.group(1)))
        return original(self, stat)

    get_statistics_for_type._fleetform = True  # type: ignore[attr-defined]
    models.Statistics.get_statistics_for_type = get_statistics_for_type
