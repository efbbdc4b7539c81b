"""Run tags that carry a placement decision to Dagster and dagster-k8s: the one owner of the
``plane/*`` run-tag contract, built (`run_tags`) and verified (`routing_problems`) here.

The tags are machine-readable (``plane/*``) and include ``dagster-k8s/config``: the GPU limit,
node selector (the pool's and cluster's node labels) and tolerations of the chosen pool, and
labels linking the Kubernetes Job to the decision id. The routing tags (`ROUTING_TAGS`) are a
function of the decision's signed binding (`expected_tags`): the run launcher and the data guard
compare a run's tags with it, so a run's tags can only say what its decision says.

The duration the decision reserved GPUs and budget for is a hard limit of the run
(`runtime_limit_s`): ``dagster/max_runtime`` on every run (Dagster's run monitoring ends a run
past it) and the Jobs' ``activeDeadlineSeconds`` (Kubernetes ends the run worker and each step).
Only a new decision extends it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from reasoning_plane.model import CPU, Decision, Fleet
from reasoning_plane.policy import PlacementPolicy

DECISION_LABEL = "reasoning-plane/decision-id"
TEAM_LABEL = "reasoning-plane/team"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # seconds; enforced by Dagster's run monitoring
K8S_CONFIG_TAG = "dagster-k8s/config"

# The plane/* run tags.
DECISION_ID = "plane/decision_id"
REQUEST_ID = "plane/request_id"
TEAM = "plane/team"
CLUSTER = "plane/cluster"
ZONE = "plane/zone"
REGION = "plane/region"
GPU_TYPE = "plane/gpu_type"
GPU_COUNT = "plane/gpu_count"
EXECUTOR = "plane/executor"
NAMESPACE = "plane/namespace"
DEVICE = "plane/device"  # "cuda" or "cpu"
EST_COST_USD = "plane/est_cost_usd"
EST_DURATION_S = "plane/est_duration_s"
POLICY_VERSION = "plane/policy_version"
SNAPSHOT = "plane/snapshot"
EXPLAIN = "plane/explain"
SUMMARY = "plane/summary"
# A run carrying any of these (or dagster-k8s/config) claims a placement; the other plane/*
# tags (summary, explain, estimated cost...) only describe one.
ROUTING_TAGS = (
    DECISION_ID,
    REQUEST_ID,
    TEAM,
    CLUSTER,
    ZONE,
    GPU_TYPE,
    GPU_COUNT,
    EXECUTOR,
    NAMESPACE,
    DEVICE,
)


def runtime_limit_s(decision: Decision, policy: PlacementPolicy | None = None) -> int:
    """Whole seconds a placed run may last: the duration its reservation was made for (the
    chosen candidate's) times ``policy.runtime_limit_factor`` (default policy when None)."""
    chosen = decision.chosen_evaluation
    if chosen is None:
        raise ValueError(f"decision {decision.decision_id} placed nothing: it has no run limit")
    factor = (policy or PlacementPolicy()).runtime_limit_factor
    return max(math.ceil(round(chosen.cost.duration_s * factor, 6)), 1)


def _labels(decision: Decision) -> dict[str, str]:
    return {DECISION_LABEL: decision.decision_id, TEAM_LABEL: decision.request.team}


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


def _routing(
    *,
    request_id: object,
    team: object,
    cluster: object,
    zone: object,
    gpu_type: object,
    gpu_count: object,
    executor: object,
    namespace: object,
) -> dict[str, str]:
    """The routing tags (but the decision id) of a placement: where, on what, in which
    namespace. One mapping for the tags a run gets and those its binding expects."""
    gpu = gpu_type not in (None, "", CPU)
    return {
        REQUEST_ID: str(request_id or ""),
        TEAM: str(team or ""),
        CLUSTER: str(cluster or ""),
        ZONE: str(zone or ""),
        GPU_TYPE: str(gpu_type or ""),
        GPU_COUNT: str(gpu_count or 0) if gpu else "0",
        EXECUTOR: str(executor or "multiprocess"),
        NAMESPACE: str(namespace or ""),
        DEVICE: "cuda" if gpu else "cpu",
    }


def run_tags(
    decision: Decision, fleet: Fleet, policy: PlacementPolicy | None = None
) -> dict[str, str]:
    """Tags of the run that carries out a placed decision, with a one-line `summary`
    (``policy``: the one the decision was made under, for the run's hard limit; the default
    policy when None). ``fleet``: the fleet of the snapshot the decision was made on."""
    assert decision.chosen is not None and decision.chosen_evaluation is not None
    cost = decision.chosen_evaluation.cost
    cluster = fleet.get(decision.chosen.cluster)
    assert cluster is not None
    tags = {
        DECISION_ID: decision.decision_id,
        **_routing(
            request_id=decision.request.request_id,
            team=decision.request.team,
            cluster=cluster.name,
            zone=cluster.zone,
            gpu_type=decision.chosen.gpu_type,
            gpu_count=decision.request.gpu_count,
            executor=decision.executor,
            namespace=cluster.namespace(decision.request.team),
        ),
        REGION: cluster.region,
        EST_COST_USD: f"{cost.total_usd:.4f}",
        EST_DURATION_S: f"{cost.duration_s:.0f}",
        POLICY_VERSION: decision.policy_version,
        SNAPSHOT: decision.snapshot_hash,
        EXPLAIN: f"plane explain {decision.decision_id}",
        "dagster/priority": str(decision.request.priority),
        MAX_RUNTIME_TAG: str(runtime_limit_s(decision, policy)),
    }
    tags[SUMMARY] = summary(tags)
    if not cluster.local:
        tags[K8S_CONFIG_TAG] = json.dumps(
            k8s_config(decision, fleet, gpu=False, policy=policy), sort_keys=True
        )
    return tags


def expected_tags(binding: Mapping[str, Any]) -> dict[str, str]:
    """The routing tags (but the decision id) a run of the decision whose signed binding is
    ``binding`` must carry (`reasoning_plane.binding.binding_of`)."""
    return _routing(
        request_id=binding.get("request_id"),
        team=binding.get("team"),
        cluster=binding.get("cluster"),
        zone=binding.get("zone"),
        gpu_type=binding.get("gpu_type"),
        gpu_count=binding.get("gpu_count"),
        executor=binding.get("executor"),
        namespace=binding.get("namespace"),
    )


def routing_problems(tags: Mapping[str, str], binding: Mapping[str, Any]) -> list[str]:
    """Where a run's routing tags differ from what its decision's binding says (empty: none)."""
    return [
        f"tag {tag}={tags.get(tag)!r} but the decision says {expected!r}"
        for tag, expected in expected_tags(binding).items()
        if tags.get(tag) != expected
    ]


def claims_placement(tags: Mapping[str, str]) -> bool:
    """Whether a run's tags claim a placement (a routing tag or a pod configuration)."""
    return any(t in tags for t in ROUTING_TAGS) or K8S_CONFIG_TAG in tags


def summary(tags: Mapping[str, str]) -> str:
    """One short line a person reads on the run: where, on what, at what estimated cost (the
    full explanation: the `EXPLAIN` tag's command). Built from the decision's run tags."""
    missing = [k for k in (CLUSTER, GPU_TYPE, EST_COST_USD, DECISION_ID) if not tags.get(k)]
    if missing:
        raise ValueError(f"run tags lack {', '.join(missing)}: not a placed decision's tags")
    gpus = int(tags.get(GPU_COUNT, "0") or 0)
    hardware = f"{gpus}x {tags[GPU_TYPE]}" if gpus else "CPU"
    region = tags.get(REGION)
    where = ", ".join(v for v in (region if region != tags[CLUSTER] else None, tags.get(ZONE)) if v)
    hours = float(tags.get(EST_DURATION_S, "0") or 0) / 3600
    return (
        f"{tags[CLUSTER]} ({where or 'zone unknown'}) | {hardware} | "
        f"est ${float(tags[EST_COST_USD]):.2f} for {hours:.2f} h"
    )
