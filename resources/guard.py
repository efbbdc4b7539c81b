"""`PlacementGuardResource`: enforcement where the data is read.

Every asset that reads governed data calls `PlacementGuardResource.require` before it reads a
byte. The run must carry out a placed decision of the reasoning plane *for that asset*:

* the run names a decision (``plane/decision_id``) that ``plane.decisions`` holds, signed by the
  plane (`reasoning_plane.signing`; a row written by anything else does not verify);
* the decision placed exactly this asset, and the run materializes exactly it;
* the decision is claimed by this run (the launcher claims it at launch, ``plane run`` before it
  starts a run; a run worker's database role may not claim, so ``dagster job execute`` or an
  in-process ``materialize()`` nobody claimed for is refused): a decision carries out at most
  one run, so a re-execution or a copied run cannot reuse it;
* this process runs where the decision placed the work (``PLANE_CLUSTER``, set by the launcher on
  Kubernetes; else this machine, ``local``, whose zone must still be the decided one);
* the decided zone and certifications satisfy the governance of every dataset the workload
  reads, as the catalog says now (the placement rules themselves, `reasoning_plane.binding`).

Otherwise the step fails with a message saying how to get the work placed, and nothing is read.
This holds in every execution path, because it runs inside the step, not in the launcher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from assets.workloads import DATASETS_KEY
from data_plane import catalog_store
from reasoning_plane import store
from reasoning_plane.binding import governance_problems, governance_records, run_problems
from reasoning_plane.launch import DECISION_ID
from reasoning_plane.policy import PlacementPolicy, load_policy
from reasoning_plane.signing import SigningError, verifier
from reasoning_plane.snapshot import LOCAL, local_place
from resources.database import project_root
from resources.postgres import PostgresResource

HOME_CLUSTER_ENV = "PLANE_CLUSTER"  # set on run workers by the launcher (resources.launcher)


class PlacementRequired(dg.Failure):
    """The step may not read its data: no valid placement decision for it in this run."""


def here() -> str:
    """The cluster this process runs on: ``PLANE_CLUSTER``, else this machine (``local``)."""
    return os.environ.get(HOME_CLUSTER_ENV) or LOCAL


def how_to_place(key: str) -> str:
    return (
        f"To run it, let the reasoning plane place it: `plane run --select {key}` runs what the "
        "plane places on this machine (declare where this machine is with PLANE_LOCAL_ZONE and "
        "PLANE_LOCAL_CERTIFICATIONS), or queue it with `plane request` and let placement_sensor "
        "launch the placed run"
    )


class PlacementGuardResource(dg.ConfigurableResource):
    """Checks, inside the step, that the run carries out a signed decision for this asset."""

    postgres: PostgresResource
    policy_file: str | None = Field(
        default=None, description="Placement policy; env PLANE_PLACEMENT_POLICY."
    )

    def _policy(self) -> PlacementPolicy:
        raw = self.policy_file or os.environ.get("PLANE_PLACEMENT_POLICY")
        if not raw:
            return PlacementPolicy()
        path = os.path.expanduser(raw)
        return load_policy(path if os.path.isabs(path) else project_root() / path)

    def problems(
        self,
        *,
        asset_key: str,
        datasets: Sequence[str],
        run_id: str,
        run_tags: dict[str, str],
        run_assets: Sequence[str],
        partition: str | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """(why the run may not read the data, the decision's binding) for one asset."""
        decision_id = run_tags.get(DECISION_ID)
        if not decision_id:
            return [f"the run carries no placement decision (no {DECISION_ID} tag)"], {}
        with self.postgres.connect() as conn:
            store.ensure_schema(conn)
            logged = store.signed_decision(conn, decision_id)
            if logged is None:
                return [f"decision {decision_id} is not in plane.decisions"], {}
            try:
                problems = logged.verify(verifier())
            except SigningError as exc:
                return [f"decision {decision_id} cannot be verified: {exc}"], {}
            if problems:
                return problems, {}
            binding = dict(logged.binding or {})
            problems = run_problems(binding, asset_keys=run_assets, partition=partition)
            if binding.get("workload") != asset_key:
                problems.append(
                    f"decision {decision_id} placed {binding.get('workload')}, not {asset_key}"
                )
            if binding.get("cluster") != here():
                problems.append(
                    f"decision {decision_id} placed the work on {binding.get('cluster')}, but "
                    f"this process runs on {here()}"
                )
            elif here() == LOCAL:
                zone, certs = local_place()
                if zone != binding.get("zone") or not set(binding.get("certifications") or ()) <= (
                    certs
                ):
                    problems.append(
                        f"decision {decision_id} placed the work on this machine as zone "
                        f"{binding.get('zone')} ({', '.join(binding.get('certifications') or [])})"
                        f", but this machine is now declared {zone} ({', '.join(sorted(certs))})"
                    )
            catalog_store.ensure_schema(conn)
            current = {
                name: entry.record
                for name in set(datasets) | set(binding.get("datasets") or ())
                if (entry := catalog_store.get_entry(conn, name)) is not None
            }
            records, missing = governance_records(binding, datasets, current)
            problems += governance_problems(
                binding, records, missing, self._policy(), now=datetime.now(UTC)
            )
            holder = logged.claimed_by
            if holder is None:
                problems.append(
                    f"decision {decision_id} is claimed by no run: the launcher, or `plane run`, "
                    "claims a decision for the one run that carries it out"
                )
            elif holder != run_id:
                problems.append(
                    f"decision {decision_id} is claimed by run {holder}; a decision carries "
                    "out one run"
                )
            conn.commit()
        return problems, binding

    def require(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        """Fail the step (`PlacementRequired`) unless this run may read this asset's data;
        the decision's binding when it may."""
        key = context.asset_key
        meta = context.assets_def.specs_by_key[key].metadata or {}
        raw = meta.get(DATASETS_KEY, "")
        datasets = [d for d in str(getattr(raw, "value", raw)).split(",") if d]
        selection = context.run.asset_selection
        run_assets = (
            [k.to_user_string() for k in selection]
            if selection is not None
            else [k.to_user_string() for k in context.job_def.asset_layer.executable_asset_keys]
        )
        problems, binding = self.problems(
            asset_key=key.to_user_string(),
            datasets=datasets,
            run_id=context.run.run_id,
            run_tags=dict(context.run.tags),
            run_assets=run_assets,
            partition=context.partition_key if context.has_partition_key else None,
        )
        if problems:
            name = key.to_user_string()
            raise PlacementRequired(
                description=(
                    f"{name} reads governed data ({', '.join(datasets) or 'its inputs'}) and runs "
                    "only under a signed placement decision of the reasoning plane for itself; "
                    f"nothing was read: {'; '.join(problems)}. {how_to_place(name)}"
                ),
                metadata={"placement_problems": "\n".join(problems)},
            )
        context.log.info(
            f"placement verified: decision {binding['decision_id']} places "
            f"{binding['workload']} on {binding['cluster']} (zone {binding['zone']})"
        )
        return binding
