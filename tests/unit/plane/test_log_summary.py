"""The decision log over a large fleet: a bounded summary that stays true to every candidate.

Over more than `explain.FULL_LIMIT` candidates a decision's log entry lists the chosen candidate,
the cheapest feasible and the cheapest rejected ones, and counts per rule over all of them. The
counts come from the index's verdict arrays without building every evaluation; here they are
checked against the evaluations built one by one by the reference path.
"""

import json
from collections import Counter

import pytest

from reasoning_plane import batch, explain, placement, store
from reasoning_plane.model import PLACED
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation import _static_snapshot, generated_scenario
from tests.oracle import reference


@pytest.fixture(scope="module")
def world():
    scenario = generated_scenario(seed=3, n_requests=60, n_clusters=40)
    snapshot = _static_snapshot(
        scenario.fleet, scenario.quotas, scenario.budgets, scenario.catalog, {}
    )
    return snapshot, [t.request for t in scenario.trace]


def _all_rules(evaluations) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for e in evaluations:
        counts.update({r.rule for r in e.rejections})
    return dict(counts)


def test_large_decisions_are_summarised_with_exact_counts(world) -> None:
    snapshot, requests = world
    policy = PlacementPolicy()
    decisions = batch.place_batch(requests, snapshot, policy)
    assert {d.status for d in decisions} >= {PLACED}
    renderer = store._SharedSnapshot(snapshot).renderer
    for decision in decisions:
        n = len(decision.evaluations)
        assert n > explain.FULL_LIMIT
        payload = json.loads(renderer.payload_json(decision))
        text = renderer.explain(decision)
        full = reference.evaluate(decision.request, snapshot, policy)  # one by one, in full
        assert payload["candidates_total"] == n == len(full)
        assert payload["feasible_total"] == sum(e.feasible for e in decision.evaluations)
        assert payload["rejections_by_rule"] == _all_rules(decision.evaluations)
        listed = payload["candidates"]
        assert len(listed) <= 1 + explain.LISTED_FEASIBLE + explain.LISTED_REJECTED
        assert [c["chosen"] for c in listed].count(True) == (decision.status == PLACED)
        # the listed ones are the cheapest of their kind, and read as in the full log
        full_log = {c["candidate"]: c for c in explain.to_dict(decision, full=True)["candidates"]}
        assert len(full_log) == n
        for c in listed:
            assert c == full_log[c["candidate"]]
        for feasible, limit in ((True, explain.LISTED_FEASIBLE), (False, explain.LISTED_REJECTED)):
            scores = sorted(c["score"] for c in full_log.values() if c["feasible"] is feasible)
            shown = sorted(c["score"] for c in listed if c["feasible"] is feasible)
            cheapest = scores[:limit]
            assert not Counter(cheapest) - Counter(shown)  # all of the cheapest are listed
            assert len(shown) <= len(cheapest) + (feasible and decision.status == PLACED)
        assert f"more of {n:,} candidates not listed" in text
        assert len(text.splitlines()) < 40
        assert explain.to_dict(decision) == {k: v for k, v in payload.items() if k != "snapshot"}


def test_a_single_placement_reads_only_what_it_needs(world) -> None:
    snapshot, requests = world
    policy = PlacementPolicy()
    decision = placement.place(requests[0], snapshot, policy)
    evaluations = decision.evaluations
    assert evaluations.built <= 2 < len(evaluations)  # the choice and the runner-up
    assert decision == reference.place(requests[0], snapshot, policy)  # ... and all are right
    assert evaluations.built == len(evaluations)
