"""The plane/* run-tag contract has one owner, `reasoning_plane.launch`: the tags a placed run
gets and the tags its signed binding expects come from one mapping, so a run built by the plane
always passes the launcher's and the data guard's check, and any routing tag changed by hand
does not."""

from reasoning_plane import launch
from reasoning_plane.binding import binding_of
from reasoning_plane.model import CPU
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import fleet, request, snapshot


def test_the_tags_of_a_placed_run_are_what_its_binding_expects() -> None:
    snap = snapshot()
    decision = place(request(), snap, PlacementPolicy())
    assert decision.chosen is not None
    tags = launch.run_tags(decision, fleet())
    binding = binding_of(decision, snap, "run-key")
    assert launch.routing_problems(tags, binding) == []
    assert set(launch.expected_tags(binding)) | {launch.DECISION_ID} == set(launch.ROUTING_TAGS)
    assert tags[launch.DEVICE] == ("cpu" if decision.chosen.gpu_type == CPU else "cuda")
    assert launch.claims_placement(tags)
    assert tags[launch.SUMMARY] == launch.summary(tags)


def test_every_routing_tag_changed_by_hand_is_caught() -> None:
    snap = snapshot()
    decision = place(request(), snap, PlacementPolicy())
    tags = launch.run_tags(decision, fleet())
    binding = binding_of(decision, snap, "run-key")
    for tag in launch.expected_tags(binding):
        forged = {**tags, tag: "elsewhere"}
        (problem,) = launch.routing_problems(forged, binding)
        assert problem.startswith(f"tag {tag}='elsewhere' but the decision says ")
    assert not launch.claims_placement({launch.SUMMARY: "x", launch.EXPLAIN: "y"})
