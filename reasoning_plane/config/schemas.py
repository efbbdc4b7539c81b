"""JSON Schemas of every configuration file, generated from the models, for editors.

``python -m reasoning_plane.config.schemas`` writes ``docs/schemas/<kind>.schema.json``;
``--check`` only says whether the committed files are what the models generate (a test runs
it, so the schemas cannot go stale). An editor with a YAML language server validates and
completes a file that names its schema in a first-line comment::

    # yaml-language-server: $schema=../docs/schemas/fleet.schema.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from data_plane.access import PrincipalsFile
from data_plane.config import json_schema
from data_plane.policy import GovernanceFile
from data_plane.retrieval import VectorStoresFile
from data_plane.sources import SourceCatalogFile
from reasoning_plane.config.plane import (
    BudgetsFile,
    FleetFile,
    RequestsFile,
    ResourceQuotaModel,
    TelemetryFile,
)
from reasoning_plane.config.serving import ServingFile
from reasoning_plane.policy import PlacementPolicyFile

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"

# kind -> (model, what the file is, an example of it in this repository)
FILES: dict[str, tuple[type[BaseModel], str]] = {
    "fleet": (FleetFile, "GPU fleet: clusters, zones, prices, latencies, GPU pools"),
    "quotas": (ResourceQuotaModel, "a Kubernetes ResourceQuota (each document of a quotas file)"),
    "budgets": (BudgetsFile, "spending limit per team and period"),
    "requests": (RequestsFile, "workload requests to place"),
    "telemetry": (TelemetryFile, "GPU telemetry samples per cluster and GPU type"),
    "placement_policy": (PlacementPolicyFile, "placement policy: the knobs of every decision"),
    "sources": (SourceCatalogFile, "source catalog: the Layer 1C sources and derived datasets"),
    "governance": (GovernanceFile, "governance policy: residency, regulations, retention"),
    "principals": (PrincipalsFile, "principals (users and agents) of governed retrieval"),
    "vector_stores": (VectorStoresFile, "regional vector stores: residency zone -> schema"),
    "serving": (ServingFile, "serving: the gateway's endpoints, models and team defaults"),
}


def schemas() -> dict[str, dict[str, Any]]:
    """``{kind: JSON Schema}`` of every configuration file."""
    return {
        kind: json_schema(model, f"Reasoning Plane {kind.replace('_', ' ')} file", what)
        for kind, (model, what) in FILES.items()
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def stale(folder: Path = SCHEMA_DIR) -> list[str]:
    """The schema files of ``folder`` that differ from what the models generate (or are
    missing, or are not generated at all)."""
    wanted = {f"{kind}.schema.json": render(s) for kind, s in schemas().items()}
    present = {p.name for p in folder.glob("*.schema.json")} if folder.is_dir() else set()
    out = [name for name in sorted(present - set(wanted))]
    for name, text in wanted.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return sorted(out)


def write(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in schemas().items():
        path = folder / f"{kind}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="folder (docs/schemas)")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.out)
        for name in differing:
            print(f"{args.out / name}: out of date; run python -m reasoning_plane.config.schemas")
        return 1 if differing else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
