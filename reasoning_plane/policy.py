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
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, create_model

from data_plane.config import ConfigModel, checked, fail, one_of, validate
from data_plane.files import read_document

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
    # A recurring workload whose current cluster fails only the latency SLO leaves it only when
    # its predicted latency exceeds the SLO x (1 + this), and then not within min_dwell_s.
    slo_leave_margin: float = 0.25
    # Batch placement: exact integer program up to this many (request, candidate) pairs.
    exact_max_pairs: int = 4000
    # ... solved for at most this long: then the best plan found so far (re-checked like any
    # plan), or the greedy plan when none was found. A bound on the tick, not on the answer.
    exact_time_limit_s: float = 1.0
    # A placed run may hold its GPUs for the duration its reservation was made for (the chosen
    # candidate's estimate) times this, then Dagster's run monitoring ends it (tag
    # dagster/max_runtime) and Kubernetes its Jobs (activeDeadlineSeconds). Between 1 and 100.
    runtime_limit_factor: float = 1.5

    def __post_init__(self) -> None:
        # latency divides by (1 - utilisation capped at this): 1 would divide by zero
        if not 0 <= self.congestion_cap < 1:
            raise ValueError(
                f"congestion_cap must be at least 0 and below 1, got {self.congestion_cap}"
            )
        if not self.slo_leave_margin >= 0:  # NaN too
            raise ValueError(f"slo_leave_margin must be at least 0, got {self.slo_leave_margin}")

    def version(self) -> str:
        return self._version

    @cached_property
    def _version(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# The policy file: a pydantic model derived from PlacementPolicy's fields, so that a new setting
# (with its default) is loadable, bounded (>= 0 unless `_BOUNDS` says otherwise) and in the JSON
# Schema without further code.
# --------------------------------------------------------------------------------------------

# (low, high) of the number settings with bounds other than >= 0
_BOUNDS: dict[str, tuple[float, float | None]] = {
    "budget_headroom_share": (0.0, 1.0),
    "congestion_cap": (0.0, 1.0),
    "runtime_limit_factor": (1.0, 100.0),
}


def _number(value: Any, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        fail(f"must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        fail(f"must be {bound}, got {value}")
    return float(value)


def _number_type(name: str) -> Any:
    low, high = _BOUNDS.get(name, (0.0, None))

    def check(value: Any) -> float:
        number = _number(value, low, high)
        if name == "congestion_cap" and number >= 1:
            fail(f"must be below 1 (latency divides by 1 - it), got {value}")
        return number

    schema: dict[str, Any] = {"type": "number", "minimum": low}
    if name == "congestion_cap":
        schema["exclusiveMaximum"] = 1.0
    elif high is not None:
        schema["maximum"] = high
    return checked(float, check, schema)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fail(f"must be a whole number >= 0, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        fail("must be true or false")
    return value


def _label(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail("must be a name")
    return value.strip()


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail("must be a list of names")
    return tuple(value)


def _band(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        fail("must be [low, high] utilisation")
    low, high = (_number(v, 0.0, 1.0) for v in value)
    if low > high:
        fail("low must not exceed high")
    return (low, high)


def _setting_type(name: str, default: Any) -> Any:
    """The field type of one setting, chosen by its default's type."""
    if name == "objective":
        return one_of(OBJECTIVES)
    if name == "stable_band":
        return checked(
            tuple,
            _band,
            {
                "type": "array",
                "items": {"type": "number", "minimum": 0, "maximum": 1},
                "minItems": 2,
                "maxItems": 2,
            },
        )
    if isinstance(default, bool):
        return checked(bool, _flag, {"type": "boolean"})
    if isinstance(default, int):
        return checked(int, _whole, {"type": "integer", "minimum": 0})
    if isinstance(default, float):
        return _number_type(name)
    if isinstance(default, str):
        return checked(str, _label, {"type": "string", "minLength": 1})
    if isinstance(default, tuple):
        return checked(tuple, _names, {"type": "array", "items": {"type": "string"}})
    raise TypeError(f"PlacementPolicy.{name}: no file type for a {type(default).__name__}")


def _json_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


PlacementPolicyFile = create_model(  # type: ignore[call-overload]
    "PlacementPolicyFile",
    __base__=ConfigModel,
    __doc__="The placement policy file: every setting optional, keeping its default.",
    **{
        f.name: (
            _setting_type(f.name, f.default),
            Field(default=f.default, json_schema_extra={"default": _json_default(f.default)}),
        )
        for f in fields(PlacementPolicy)
    },
)


def load_policy(path: Path | str) -> PlacementPolicy:
    """Load a placement policy YAML; keys not given keep their defaults (an empty file, or one of
    comments only, is the default policy)."""
    path = Path(path)
    model = validate(PlacementPolicyFile, read_document(path, allow_empty=True) or {}, path)
    return PlacementPolicy(**{name: getattr(model, name) for name in model.model_fields_set})
