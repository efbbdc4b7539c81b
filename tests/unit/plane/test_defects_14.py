"""Defects found by independent checks (issue 14, items 7 and 8); each test failed first."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data_plane.errors import InputFileError
from reasoning_plane import batch, placement
from reasoning_plane.inputs import load_fleet
from reasoning_plane.model import DEFERRED, REJECTED, TeamQuota
from reasoning_plane.policy import PlacementPolicy, load_policy
from tests.oracle import reference
from tests.unit.plane import factory

REPO = Path(__file__).resolve().parents[3]


def test_a_congestion_cap_of_one_is_refused_at_load(tmp_path: Path) -> None:
    """With congestion_cap 1.0 a pool reporting utilisation 1.0 divided by zero and killed the
    whole tick; a cap must leave headroom (below 1)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("congestion_cap: 1.0\n")
    with pytest.raises(InputFileError, match="congestion_cap: must be below 1"):
        load_policy(policy)
    with pytest.raises(ValueError, match="congestion_cap must be at least 0 and below 1"):
        PlacementPolicy(congestion_cap=1.0)
    policy.write_text("congestion_cap: 0.99\n")
    assert load_policy(policy).congestion_cap == 0.99


def test_a_pool_named_cpu_is_refused_at_load(tmp_path: Path) -> None:
    """A pool named `cpu` collided with the CPU candidates' marker and silently switched
    placement to another code path."""
    raw = yaml.safe_load((REPO / "examples" / "seed_scenario" / "fleet.yaml").read_text())
    raw["clusters"][0]["pools"][0]["gpu_type"] = "CPU"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputFileError, match=r"pools\[0\]\.gpu_type: 'CPU' is reserved"):
        load_fleet(fleet)


@pytest.mark.parametrize(
    ("decide", "name"),
    [
        (placement.place, "fast"),
        (reference.place, "reference"),
        (lambda r, s, p: batch.place_batch([r], s, p)[0], "batch"),
    ],
)
def test_a_request_that_can_never_fit_is_rejected_not_deferred_for_ever(decide, name) -> None:
    policy = PlacementPolicy()
    # more GPUs than the team's whole quota (16), though pools of 32 exist
    snap = factory.snapshot()
    over_quota = factory.request(
        "q", gpu_count=20, datasets=("conference_transcripts",), workload="w/talks"
    )
    decision = decide(over_quota, snap, policy)
    assert decision.status == REJECTED, (name, decision.reason)
    assert "quota of 16 GPUs" in decision.reason
    # more GPUs than any pool has in all (32), within the quota
    snap = factory.snapshot(quotas={"financial-ml": TeamQuota("financial-ml", 64, "q")})
    too_big = factory.request(
        "p", gpu_count=40, datasets=("conference_transcripts",), workload="w/talks"
    )
    decision = decide(too_big, snap, policy)
    assert decision.status == REJECTED, (name, decision.reason)
    assert "GPUs in all, 40 needed" in decision.reason
    # what fits the quota and a pool but not now is still deferred
    busy = factory.snapshot(telemetry=factory.telemetry(a100_free=0, a10_free=0))
    later = factory.request(
        "l", gpu_count=2, datasets=("conference_transcripts",), workload="w/talks"
    )
    assert decide(later, busy, policy).status == DEFERRED


@pytest.mark.parametrize(
    ("place_batch", "name"), [(batch.place_batch, "fast"), (reference.place_batch, "reference")]
)
def test_joint_placement_does_not_override_its_own_plan(place_batch, name) -> None:
    """Quota 6: a 5-GPU request that fits only an A100 and two 3-GPU requests. The integer
    program places 3+3; the re-check's fallback used to place the 5-GPU one it had left out,
    which then pushed both planned ones out."""
    snap = factory.snapshot(
        quotas={t: TeamQuota(t, 6, "quotas.yaml#q") for t in ("financial-ml", "media-ml")}
    )
    public = dict(datasets=("conference_transcripts",), workload="w/talks", latency_slo_ms=None)
    big = factory.request("big", gpu_count=5, gpu_memory_gb=40, **public)
    small = [factory.request(f"small-{i}", gpu_count=3, **public) for i in (1, 2)]
    decisions = {
        d.request.request_id: d for d in place_batch([big, *small], snap, PlacementPolicy())
    }
    placed = sorted(rid for rid, d in decisions.items() if d.status == "placed")
    assert placed == ["small-1", "small-2"], (name, {k: d.reason for k, d in decisions.items()})
    assert decisions["big"].status == DEFERRED
