"""The placement policy: the knobs of every decision, versioned by a hash of their values.

``objective``:
  * ``cheapest_within_slo`` (default): among feasible candidates whose estimated latency meets the
    request's SLO, the lowest total cost (GPU + egress); latency breaks ties.
  * ``weighted``: the lowest ``cost_weight * total_usd + latency_weight * latency_ms``; the SLO is
    then a soft target, not a filter.

Residency: data whose classification is in ``strict_classifications`` (PII, CONFIDENTIAL and
UNKNOWN by default) may only be processed in its own residency zone; other data may move to any
known zone, paying egress. Unknown residency allows only clusters marked for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data_plane.errors import InputFileError
from data_plane.files import read_document
from reasoning_plane.memo import cache_of

OBJECTIVES = ("cheapest_within_slo", "weighted")


@dataclass(frozen=True)
class PlacementPolicy:
    objective: str = "cheapest_within_slo"
    cost_weight: float = 1.0  # weighted objective: per USD
    latency_weight: float = 0.01  # weighted objective: per ms
    max_telemetry_age_s: float = 5.0  # older samples make a cluster ineligible
    # Samples observed later than now plus this are refused (rule telemetry_future), on push
    # (`store.insert_samples`) and in every decision: clocks differ, but not by minutes.
    max_clock_skew_s: float = 5.0
    strict_classifications: tuple[str, ...] = ("PII", "CONFIDENTIAL", "UNKNOWN")
    pii_certifications: tuple[str, ...] = ("ISO27001",)  # required to process any PII
    gdpr_certification: str = "GDPR"  # required for records with gdpr_compliant: true
    require_quota: bool = True  # a team without a GPU ResourceQuota gets no GPU
    require_budget: bool = True  # a team without a budget gets nothing that costs money
    low_priority_below: int = 100  # priorities below this are "low"
    budget_headroom_share: float = 0.10  # share of a budget kept for work that is not low
    cpu_slowdown: float = 10.0  # CPU duration = GPU duration x this, when not given
    cpu_inference_latency_ms: float = 400.0
    congestion_cap: float = 0.95  # utilisation above this counts as this in latency
    # Hysteresis for recurring workloads.
    move_margin_usd: float = 0.50  # a move must save this much beyond the cost of moving
    cold_start_usd: float = 0.25  # cost of starting cold on another cluster
    stable_band: tuple[float, float] = (0.65, 0.85)  # a source in this band is left alone
    min_dwell_s: float = 3600.0  # no second move within this time
    # Batch placement: exact integer program up to this many (request, candidate) pairs.
    exact_max_pairs: int = 4000
    # ... solved for at most this long: then the best plan found so far (re-checked like any
    # plan), or the greedy plan when none was found. A bound on the tick, not on the answer.
    exact_time_limit_s: float = 1.0
    # A placed run may hold its GPUs for the duration its reservation was made for (the chosen
    # candidate's estimate) times this, then Dagster's run monitoring ends it (tag
    # dagster/max_runtime) and Kubernetes its Jobs (activeDeadlineSeconds). Between 1 and 100.
    runtime_limit_factor: float = 1.5
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # latency divides by (1 - utilisation capped at this): 1 would divide by zero
        if not 0 <= self.congestion_cap < 1:
            raise ValueError(
                f"congestion_cap must be at least 0 and below 1, got {self.congestion_cap}"
            )

    def version(self) -> str:
        cache = cache_of(self)
        if "version" not in cache:
            payload = json.dumps(asdict(self), sort_keys=True, default=list)
            cache["version"] = hashlib.sha256(payload.encode()).hexdigest()[:12]
        return cache["version"]


_FIELDS = {f for f in PlacementPolicy.__dataclass_fields__ if f != "extra"}
# (low, high) of the number settings with bounds other than >= 0
_BOUNDS: dict[str, tuple[float, float | None]] = {
    "budget_headroom_share": (0.0, 1.0),
    "congestion_cap": (0.0, 1.0),
    "runtime_limit_factor": (1.0, 100.0),
}


def _number(
    value: Any, path: Path, name: str, low: float = 0.0, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputFileError(path, name, f"must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InputFileError(path, name, f"must be {bound}, got {value}")
    return float(value)


def load_policy(path: Path | str) -> PlacementPolicy:
    """Load a placement policy YAML; keys not given keep their defaults."""
    path = Path(path)
    raw = read_document(path, allow_empty=True) or {}
    if not isinstance(raw, Mapping):
        raise InputFileError(path, "(top level)", "must be a mapping of policy settings")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InputFileError(path, unknown[0], f"unknown setting; allowed: {sorted(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(PlacementPolicy(), key)
        if key == "objective":
            if value not in OBJECTIVES:
                raise InputFileError(path, key, f"must be one of {list(OBJECTIVES)}")
            values[key] = value
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputFileError(path, key, "must be true or false")
            values[key] = value
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputFileError(path, key, f"must be a whole number >= 0, got {value!r}")
            values[key] = value
        elif isinstance(default, float):
            low, high = _BOUNDS.get(key, (0.0, None))
            values[key] = _number(value, path, key, low, high)
            if key == "congestion_cap" and values[key] >= 1:
                raise InputFileError(
                    path, key, f"must be below 1 (latency divides by 1 - it), got {value}"
                )
        elif key == "stable_band":
            if not isinstance(value, list) or len(value) != 2:
                raise InputFileError(path, key, "must be [low, high] utilisation")
            low, high = (_number(v, path, key, 0.0, 1.0) for v in value)
            if low > high:
                raise InputFileError(path, key, "low must not exceed high")
            values[key] = (low, high)
        elif isinstance(default, str):
            if not isinstance(value, str) or not value.strip():
                raise InputFileError(path, key, "must be a name")
            values[key] = value.strip()
        else:  # tuples of names
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputFileError(path, key, "must be a list of names")
            values[key] = tuple(value)
    return PlacementPolicy(**values)
