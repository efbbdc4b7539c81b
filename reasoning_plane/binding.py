"""What a decision binds, and the checks that hold a run to it.

A placed decision authorises exactly one run of exactly one workload, in one place. Its
*binding* is the part of the decision that the run must match; the plane signs it
(`reasoning_plane.signing`) when it records the decision, and both enforcement points check it:

* the run launcher, before a run is launched (`resources.launcher`);
* the data guard, in the run itself, before an asset reads a byte of governed data
  (`resources.guard`): this also covers runs nobody launched (``dagster job execute``,
  ``dagster asset materialize``, in-process ``materialize()``).

Everything here is plain data and pure functions; the governance re-check uses the placement
rules themselves (`rules.residency_reasons`, `rules.compliance_reasons`), not a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane import rules
from reasoning_plane.model import CPU, PLACED, Decision, Snapshot
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.signing import Verifier


def binding_of(decision: Decision, snapshot: Snapshot, run_key: str | None) -> dict[str, Any]:
    """The signed content of a decision (also for deferred and rejected ones: nothing to run).

    ``governance``: the catalog records of the workload's datasets as the plane decided on them
    (the guard uses them for a dataset the catalog does not hold yet, e.g. a first ingestion)."""
    chosen = decision.chosen
    cluster = snapshot.fleet.get(chosen.cluster) if chosen else None
    gpu = chosen is not None and chosen.gpu_type != CPU
    return {
        "decision_id": decision.decision_id,
        "request_id": decision.request.request_id,
        "run_key": run_key,
        "workload": decision.request.workload,
        "partition": None,
        "team": decision.request.team,
        "status": decision.status,
        "decided_at": decision.decided_at.isoformat(),
        "cluster": cluster.name if cluster else None,
        "zone": cluster.zone if cluster else None,
        "certifications": sorted(cluster.certifications) if cluster else [],
        "gpu_type": chosen.gpu_type if chosen else None,
        "gpu_count": decision.request.gpu_count if gpu else 0,
        "executor": decision.executor,
        "namespace": cluster.namespace(decision.request.team) if cluster else None,
        "datasets": sorted(decision.request.datasets),
        "governance": {
            d: snapshot.catalog[d].to_dict()
            for d in sorted(decision.request.datasets)
            if d in snapshot.catalog
        },
    }


def governance_records(
    binding: Mapping[str, Any],
    datasets: Iterable[str],
    current: Mapping[str, CatalogRecord],
) -> tuple[list[CatalogRecord], list[str]]:
    """(records, datasets with none) of ``datasets`` and the binding's: the catalog as it is now
    where it holds the dataset, else the record the plane signed with the decision."""
    signed = binding.get("governance") or {}
    records, missing = [], []
    for name in sorted(set(datasets) | set(binding.get("datasets") or ())):
        if name in current:
            records.append(current[name])
        elif name in signed:
            records.append(CatalogRecord.from_dict(signed[name], where=f"decision {name}"))
        else:
            missing.append(name)
    return records, missing


@dataclass(frozen=True)
class SignedDecision:
    """A decision as logged: its row's columns, its binding and its signature."""

    decision_id: str
    status: str
    workload: str
    team: str
    cluster: str | None
    binding: Mapping[str, Any] | None
    signature: str | None
    key_id: str | None
    claimed_by: str | None  # the run that claimed it at launch, if any

    def verify(self, verifier: Verifier) -> list[str]:
        """Why this logged decision is not one the plane signed (empty when it is)."""
        if self.binding is None:
            return [f"decision {self.decision_id} carries no signature of the reasoning plane"]
        problem = verifier.problem(self.binding, self.signature, self.key_id)
        if problem:
            return [f"decision {self.decision_id}: {problem}"]
        columns = {
            "decision_id": self.decision_id,
            "status": self.status,
            "workload": self.workload,
            "team": self.team,
            "cluster": self.cluster,
        }
        return [
            f"decision {self.decision_id}: column {k}={v!r} but the signed decision says "
            f"{self.binding.get(k)!r}"
            for k, v in columns.items()
            if self.binding.get(k) != v
        ]


def run_problems(
    binding: Mapping[str, Any], *, asset_keys: Iterable[str], partition: str | None = None
) -> list[str]:
    """Why a run that materializes ``asset_keys`` may not carry out this decision."""
    problems = []
    if binding.get("status") != PLACED:
        problems.append(f"decision {binding.get('decision_id')} is {binding.get('status')!r}")
    keys = sorted(set(asset_keys))
    if keys != [binding.get("workload")]:
        problems.append(
            f"the run materializes {', '.join(keys) or 'no asset'} but decision "
            f"{binding.get('decision_id')} placed {binding.get('workload')} alone"
        )
    if binding.get("partition") != partition:
        problems.append(
            f"the run is for partition {partition!r}, the decision for {binding.get('partition')!r}"
        )
    return problems


def governance_problems(
    binding: Mapping[str, Any],
    records: Sequence[CatalogRecord],
    missing: Sequence[str],
    policy: PlacementPolicy,
    *,
    now: datetime,
) -> list[str]:
    """Why the decision's zone and certifications do not (or no longer) satisfy the governance
    of the data the workload reads: the placement rules `residency` and `compliance`, applied to
    the decided place and the catalog as it is now."""
    cluster = str(binding.get("cluster"))
    zone = str(binding.get("zone") or UNKNOWN)
    certifications = frozenset(binding.get("certifications") or ())
    zone_sets = [residency_parts(r.data_residency) for r in records]
    reasons = rules.residency_reasons(records, zone_sets, missing, zone, False, cluster, policy)
    reasons += rules.compliance_reasons(
        rules.certifications_needed(records, policy), cluster, certifications
    )
    return [r.message for r in reasons]
