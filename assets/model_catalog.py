"""``serving/model_catalog``: the governance catalog records of the models the gateway serves.

The served models are declared once, in ``config/serving.yaml``'s ``models`` (the gateway's own
list), each with its ``catalog`` facts: owner team, classification and residency of the data it
may serve, licence. This asset writes one catalog entry per model (`data_plane.catalog.
declared_model_entry`, as the steward: `GovernanceCatalogResource`), the record Cedar's
``use_model`` reads (`serving.authorization`). Whatever is not declared is written as UNKNOWN,
the most restrictive value: the policies refuse such a model to everyone until its owner
declares it.

A model shares the catalog's namespace with datasets: an entry that this loader did not write
(a tagged dataset, a trained model, a record written by hand) is never overwritten; the run fails
naming the file, the model and who wrote the entry.
"""

import dagster as dg

from assets.serving import SERVING_GROUP, ServingResource
from assets.tags import governance_tags
from data_plane.catalog import CatalogEntry, declared_model_entry
from resources.governance import GovernanceCatalogResource

MODEL_CATALOG_KEY = dg.AssetKey(["serving", "model_catalog"])
SOURCE_PREFIX = "serving-config:"  # lineage.source_system of the entries this asset writes

_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("model", "string"),
        dg.TableColumn("owner_team", "string"),
        dg.TableColumn("classification", "string"),
        dg.TableColumn("residency", "string", description="of the data it may serve"),
        dg.TableColumn("licence", "string"),
        dg.TableColumn("changed", "bool", description="the catalog entry was written anew"),
    ]
)


def model_entries(
    serving: ServingResource, governance: GovernanceCatalogResource
) -> list[CatalogEntry]:
    """The catalog entry of each model of the serving file, as declared (UNKNOWN if not)."""
    config = serving.config()
    source = f"{SOURCE_PREFIX}{serving.path.name}"
    return [
        declared_model_entry(
            model=f.name,
            owner_team=f.owner_team,
            classification=f.classification,
            residency=f.residency,
            licence=f.licence,
            source_system=source,
            policy=governance.policy,
        )
        for f in config.catalog.values()
    ]


def refuse_foreign(
    serving: ServingResource, entries: list[CatalogEntry], existing: dict[str, CatalogEntry]
) -> None:
    """Raise when a model's name is a catalog entry this loader did not write."""
    names = list(serving.config().catalog)
    for entry in entries:
        found = existing.get(entry.dataset_id)
        if found is not None and not found.record.source_system.startswith(SOURCE_PREFIX):
            i = names.index(entry.dataset_id)
            raise ValueError(
                f"{serving.path}: models[{i}] ({entry.dataset_id}).name: the governance catalog "
                f"already holds {entry.dataset_id!r} written by "
                f"{found.record.source_system!r}, not by this file; rename the model or remove "
                "that entry (a model's record never replaces a dataset's)"
            )


@dg.asset(
    key=MODEL_CATALOG_KEY,
    group_name=SERVING_GROUP,
    description=(
        "The governance catalog record of every model config/serving.yaml serves (owner team, "
        "classification and residency of the data it may serve, licence), which the Cedar "
        "policies read before the gateway lets anyone use it. Undeclared facts are UNKNOWN: "
        "refused to everyone."
    ),
    kinds={"python", "postgres"},
    owners=["team:platform"],
    # The records describe models; the facts of each are in the table, not one value for all.
    tags=governance_tags("UNKNOWN", "INTERNAL"),
)
def model_catalog_asset(
    context: dg.AssetExecutionContext,
    serving: ServingResource,
    governance: GovernanceCatalogResource,
) -> dg.MaterializeResult:
    entries = model_entries(serving, governance)
    refuse_foreign(serving, entries, {e.dataset_id: e for e in governance.entries()})
    rows = []
    for entry in entries:
        changed = governance.upsert(entry, run_id=context.run.run_id)
        rows.append(
            {
                "model": entry.dataset_id,
                "owner_team": entry.owner_team or "-",
                "classification": entry.record.classification,
                "residency": entry.record.data_residency,
                "licence": entry.licence or "UNKNOWN",
                "changed": changed,
            }
        )
        if entry.record.classification == "UNKNOWN" or not entry.record.residency_known:
            context.log.warning(
                f"{serving.path}: models ({entry.dataset_id}).catalog: classification or "
                "residency not declared: written as UNKNOWN, so nobody may use the model"
            )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "models": dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=_SCHEMA),
            "models_changed": sum(bool(r["changed"]) for r in rows),
            "models_unknown": sum(
                r["classification"] == "UNKNOWN" or r["residency"] == "UNKNOWN" for r in rows
            ),
            "serving_file": dg.MetadataValue.path(str(serving.path)),
        }
    )
