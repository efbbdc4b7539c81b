"""The telemetry rule on the plane's clock: a sample observed after now plus the allowed clock
skew is refused (``telemetry_future``), and a sample is stale when it was observed, or received by
the plane, longer ago than ``max_telemetry_age_s``. The fast path (`placement`) and the
reference path (`reference`) decide alike."""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from data_plane.errors import InputFileError
from reasoning_plane import placement, store
from reasoning_plane.explain import to_dict
from reasoning_plane.model import DEFERRED, PLACED
from reasoning_plane.policy import PlacementPolicy, load_policy
from reasoning_plane.replay import replay
from tests.oracle import reference
from tests.unit.plane.factory import NOW, request, snapshot, telemetry

PATHS = [placement.place, reference.place]
IDS = ["fast", "reference"]


def _shifted(ahead_s: float = 0.0, received_ago_s: float | None = None):
    """The factory's telemetry observed ``ahead_s`` after NOW, received ``received_ago_s``
    before NOW (unknown when None)."""
    return {
        k: replace(
            s,
            observed_at=NOW + timedelta(seconds=ahead_s),
            **(
                {"received_at": NOW - timedelta(seconds=received_ago_s)}
                if received_ago_s is not None
                else {}
            ),
        )
        for k, s in telemetry().items()
    }


def _messages(decision, rule: str) -> list[str]:
    e = next(e for e in decision.evaluations if e.candidate.label == "eu-fra-a10/A10")
    return [r.message for r in e.rejections if r.rule == rule]


@pytest.mark.parametrize("place", PATHS, ids=IDS)
def test_a_sample_from_the_future_is_refused(place) -> None:
    d = place(request(), snapshot(telemetry=_shifted(ahead_s=3600)), PlacementPolicy())
    assert d.status == DEFERRED and d.chosen is None
    (message,) = _messages(d, "telemetry_future")
    assert message == (
        "telemetry of eu-fra-a10/A10 is observed 3600 s ahead of the plane's clock (max clock "
        "skew 5 s); refused, not assumed idle"
    )
    assert "telemetry_future" in d.reason


@pytest.mark.parametrize("place", PATHS, ids=IDS)
def test_clock_skew_within_the_policy_is_tolerated(place) -> None:
    assert place(request(), snapshot(telemetry=_shifted(5)), PlacementPolicy()).status == PLACED
    assert place(request(), snapshot(telemetry=_shifted(5.5)), PlacementPolicy()).status != PLACED
    lenient = PlacementPolicy(max_clock_skew_s=60)
    assert place(request(), snapshot(telemetry=_shifted(30)), lenient).status == PLACED


@pytest.mark.parametrize("place", PATHS, ids=IDS)
def test_a_sample_received_long_ago_is_stale(place) -> None:
    old = snapshot(telemetry=_shifted(ahead_s=0, received_ago_s=60))
    d = place(request(), old, PlacementPolicy())
    assert d.status == DEFERRED
    (message,) = _messages(d, "telemetry_stale")
    assert message == (
        "telemetry of eu-fra-a10/A10 was received 60 s ago (max 5 s); not assumed idle"
    )
    recent = snapshot(telemetry=_shifted(ahead_s=-1, received_ago_s=1))
    assert place(request(), recent, PlacementPolicy()).status == PLACED


def test_max_clock_skew_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("max_clock_skew_s: 2\n")
    assert load_policy(path).max_clock_skew_s == 2.0
    assert PlacementPolicy().max_clock_skew_s == 5.0
    for text, problem in (
        ("max_clock_skew_s: -1", "max_clock_skew_s: must be >= 0.0, got -1"),
        ("max_clock_skew_s: soon", "max_clock_skew_s: must be a number, got 'soon'"),
    ):
        path.write_text(text + "\n")
        with pytest.raises(InputFileError) as err:
            load_policy(path)
        assert str(err.value) == f"{path}: {problem}"


def test_replay_sees_when_a_sample_was_received() -> None:
    """The logged snapshot keeps ``received_at``: `plane replay` decides as the tick did."""
    snap = snapshot(telemetry=_shifted(ahead_s=0, received_ago_s=60))
    decision = placement.place(request(), snap, PlacementPolicy())
    logged = store.snapshot_payload(snap, decision.request.datasets, decision.request.team)
    assert {s["received_at"] for s in logged["telemetry"]} == {"2026-11-25T11:59:00+00:00"}
    (row,) = replay([{**to_dict(decision), "snapshot": logged}], snap.fleet, PlacementPolicy())
    assert row.before == row.after == DEFERRED
