"""Run tags that carry a placement decision to Dagster and dagster-k8s.

The tags are machine-readable (``plane/*``) and include ``dagster-k8s/config``: the GPU limit,
node selector (the pool's and cluster's node labels) and tolerations of the chosen pool, and
labels linking the Kubernetes Job to the decision id.

The duration the decision reserved GPUs and budget for is a hard limit of the run
(`runtime_limit_s`): ``dagster/max_runtime`` on every run (Dagster's run monitoring ends a run
past it) and the Jobs' ``activeDeadlineSeconds`` (Kubernetes ends the run worker and each step).
Only a new decision extends it.
"""

from __future__ import annotations

import json
import math

from reasoning_plane.model import CPU, Decision, Fleet
from reasoning_plane.policy import PlacementPolicy

DECISION_LABEL = "reasoning-plane/decision-id"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # seconds; enforced by Dagster's run monitoring


def runtime_limit_s(decision: Decision, policy: PlacementPolicy | None = None) -> int:
    """Whole seconds a placed run may last: the duration its reservation was made for (the
    chosen candidate's) times ``policy.runtime_limit_factor`` (default policy when None)."""
    chosen = decision.chosen_evaluation
    if chosen is None:
        raise ValueError(f"decision {decision.decision_id} placed nothing: it has no run limit")
    factor = (policy or PlacementPolicy()).runtime_limit_factor
    return max(math.ceil(round(chosen.cost.duration_s * factor, 6)), 1)


def _labels(decision: Decision) -> dict[str, str]:
    return {DECISION_LABEL: decision.decision_id, "reasoning-plane/team": decision.request.team}


def k8s_config(
    decision: Decision, fleet: Fleet, *, gpu: bool, policy: PlacementPolicy | None = None
) -> dict:
    """A ``dagster-k8s/config`` value: the run worker's (``gpu=False``: the cluster's node
    selector and the decision labels) or each GPU step's (``gpu=True``: also the
    ``nvidia.com/gpu`` limit, the pool's node selector and its tolerations). Both carry the
    run's hard limit as the Job's ``activeDeadlineSeconds`` (`runtime_limit_s` under
    ``policy``)."""
    assert decision.chosen is not None
    cluster = fleet.get(decision.chosen.cluster)
    assert cluster is not None
    labels = _labels(decision)
    selector = dict(cluster.node_labels)
    container: dict = {}
    pod_spec: dict = {}
    if gpu and decision.chosen.gpu_type != CPU:
        pool = cluster.pool(decision.chosen.gpu_type)
        assert pool is not None
        selector.update(pool.node_labels)
        gpus = str(decision.request.gpu_count)
        container["resources"] = {
            "limits": {"nvidia.com/gpu": gpus},
            "requests": {"nvidia.com/gpu": gpus},
        }
        if pool.tolerations:
            pod_spec["tolerations"] = [t.to_k8s() for t in pool.tolerations]
    if selector:
        pod_spec["node_selector"] = selector
    return {
        "container_config": container,
        "pod_spec_config": pod_spec,
        "job_metadata": {"labels": labels},
        "pod_template_spec_metadata": {"labels": labels},
        "job_spec_config": {"active_deadline_seconds": runtime_limit_s(decision, policy)},
    }


def run_config(decision: Decision, fleet: Fleet, policy: PlacementPolicy | None = None) -> dict:
    """Run config selecting the decision's executor of `resources.executor.placement_executor`
    (``policy``: the one the decision was made under, for the steps' Job deadline)."""
    if decision.executor == "k8s_job_executor":
        return {
            "execution": {
                "config": {
                    "k8s": {
                        "job_namespace": decision.namespace,
                        "step_k8s_config": k8s_config(decision, fleet, gpu=True, policy=policy),
                    }
                }
            }
        }
    return {"execution": {"config": {decision.executor or "multiprocess": {}}}}


def run_tags(
    decision: Decision, fleet: Fleet, policy: PlacementPolicy | None = None
) -> dict[str, str]:
    """Tags of the run that carries out a placed decision (``policy``: the one the decision was
    made under, for the run's hard limit; the default policy when None)."""
    assert decision.chosen is not None and decision.chosen_evaluation is not None
    cost = decision.chosen_evaluation.cost
    cluster = fleet.get(decision.chosen.cluster)
    assert cluster is not None
    gpu = decision.chosen.gpu_type != CPU
    tags = {
        "plane/decision_id": decision.decision_id,
        "plane/request_id": decision.request.request_id,
        "plane/team": decision.request.team,
        "plane/cluster": cluster.name,
        "plane/zone": cluster.zone,
        "plane/region": cluster.region,
        "plane/gpu_type": decision.chosen.gpu_type,
        "plane/gpu_count": str(decision.request.gpu_count if gpu else 0),
        "plane/executor": decision.executor or "multiprocess",
        "plane/namespace": cluster.namespace(decision.request.team),
        "plane/device": "cuda" if gpu else "cpu",
        "plane/est_cost_usd": f"{cost.total_usd:.4f}",
        "plane/est_duration_s": f"{cost.duration_s:.0f}",
        "plane/policy_version": decision.policy_version,
        "plane/snapshot": decision.snapshot_hash,
        "plane/explain": f"plane explain {decision.decision_id}",
        "dagster/priority": str(decision.request.priority),
        MAX_RUNTIME_TAG: str(runtime_limit_s(decision, policy)),
    }
    if not cluster.local:
        tags["dagster-k8s/config"] = json.dumps(
            k8s_config(decision, fleet, gpu=False, policy=policy), sort_keys=True
        )
    return tags
