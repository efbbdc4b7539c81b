"""Run tags that carry a placement decision to Dagster and dagster-k8s.

The tags are machine-readable (``plane/*``) and include ``dagster-k8s/config``: the GPU limit,
node selector (the pool's and cluster's node labels) and tolerations of the chosen pool, and
labels linking the Kubernetes Job to the decision id.
"""

from __future__ import annotations

import json

from reasoning_plane.model import CPU, Decision, Fleet

DECISION_LABEL = "reasoning-plane/decision-id"


def _labels(decision: Decision) -> dict[str, str]:
    return {DECISION_LABEL: decision.decision_id, "reasoning-plane/team": decision.request.team}


def k8s_config(decision: Decision, fleet: Fleet, *, gpu: bool) -> dict:
    """A ``dagster-k8s/config`` value: the run worker's (``gpu=False``: the cluster's node
    selector and the decision labels) or each GPU step's (``gpu=True``: also the
    ``nvidia.com/gpu`` limit, the pool's node selector and its tolerations)."""
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
    }


def run_config(decision: Decision, fleet: Fleet) -> dict:
    """Run config selecting the decision's executor of `resources.executor.placement_executor`."""
    if decision.executor == "k8s_job_executor":
        return {
            "execution": {
                "config": {
                    "k8s": {
                        "job_namespace": decision.namespace,
                        "step_k8s_config": k8s_config(decision, fleet, gpu=True),
                    }
                }
            }
        }
    return {"execution": {"config": {decision.executor or "multiprocess": {}}}}


def run_tags(decision: Decision, fleet: Fleet) -> dict[str, str]:
    """Tags of the run that carries out a placed decision."""
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
    }
    if not cluster.local:
        tags["dagster-k8s/config"] = json.dumps(
            k8s_config(decision, fleet, gpu=False), sort_keys=True
        )
    return tags
