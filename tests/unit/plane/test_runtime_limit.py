"""A placed run carries its reservation's duration as a hard limit: the decision's duration
times the policy's ``runtime_limit_factor``, as Dagster's ``dagster/max_runtime`` tag (every run)
and as the Kubernetes Jobs' ``activeDeadlineSeconds`` (run worker and GPU steps)."""

import json
import math
from pathlib import Path

import pytest

from data_plane.errors import InputFileError
from reasoning_plane.launch import run_config, run_tags
from reasoning_plane.model import CPU
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy, load_policy
from tests.unit.plane.factory import fleet, request, snapshot


def _limits(decision, policy: PlacementPolicy | None = None) -> tuple[str, dict, dict]:
    tags = run_tags(decision, fleet(), policy)
    worker = json.loads(tags["dagster-k8s/config"])["job_spec_config"]
    step = run_config(decision, fleet(), policy)["execution"]["config"]["k8s"]["step_k8s_config"]
    return tags["dagster/max_runtime"], worker, step["job_spec_config"]


def test_the_reserved_duration_is_the_runs_hard_limit() -> None:
    decision = place(request(), snapshot(), PlacementPolicy())
    assert decision.chosen.label == "eu-fra-a10/A10"
    assert decision.chosen_evaluation.cost.duration_s == pytest.approx(3600 / 0.45)
    max_runtime, worker, step = _limits(decision)  # the default factor, 1.5
    assert max_runtime == "12000"
    assert worker == step == {"active_deadline_seconds": 12000}


def test_the_policy_factor_sets_the_limit_and_it_is_rounded_up() -> None:
    decision = place(request(estimated_duration_s=1000), snapshot(), PlacementPolicy())
    # 1000 / 0.45 = 2222.2 s, x 2 = 4444.4 s
    max_runtime, worker, step = _limits(decision, PlacementPolicy(runtime_limit_factor=2))
    assert max_runtime == "4445"
    assert worker == step == {"active_deadline_seconds": 4445}


def test_cpu_runs_are_limited_too() -> None:
    work = request(
        datasets=("conference_transcripts",),
        team="media-ml",
        gpu_optional=True,
        latency_slo_ms=None,
    )
    decision = place(work, snapshot(telemetry={}), PlacementPolicy())
    assert decision.chosen.gpu_type == CPU
    limit = math.ceil(decision.chosen_evaluation.cost.duration_s * 1.5)
    assert run_tags(decision, fleet())["dagster/max_runtime"] == str(limit)


def test_runtime_limit_factor_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("runtime_limit_factor: 2.5\n")
    assert load_policy(path).runtime_limit_factor == 2.5
    assert PlacementPolicy().runtime_limit_factor == 1.5
    for text, problem in (
        ("runtime_limit_factor: 0.5", "must be between 1.0 and 100.0, got 0.5"),
        ("runtime_limit_factor: .inf", "must be between 1.0 and 100.0, got inf"),
        ("runtime_limit_factor: long", "must be a number, got 'long'"),
    ):
        path.write_text(text + "\n")
        with pytest.raises(InputFileError) as err:
            load_policy(path)
        assert str(err.value) == f"{path}: runtime_limit_factor: {problem}"
