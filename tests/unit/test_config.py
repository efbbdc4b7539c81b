"""Typed configuration (issue 14, item 3): one reader for every configuration file, the same
`<file>: <field>: <problem>` errors, JSON Schemas that match the models, and examples that
validate."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import jsonschema  # with the dev extras (kubernetes-validate needs it)
import pytest
import yaml

from data_plane.access import load_principals
from data_plane.errors import InputFileError
from data_plane.policy import load_policy as load_governance
from data_plane.retrieval import load_store_config
from data_plane.sources import load_source_catalog
from reasoning_plane.config.schemas import FILES, SCHEMA_DIR, schemas, stale, write
from reasoning_plane.config.schemas import main as schemas_main
from reasoning_plane.config.serving import load_serving
from reasoning_plane.inputs import (
    load_budgets,
    load_fleet,
    load_quotas,
    load_requests,
    load_telemetry,
)
from reasoning_plane.policy import PlacementPolicy, PlacementPolicyFile
from reasoning_plane.policy import load_policy as load_placement_policy

REPO = Path(__file__).resolve().parents[2]

# (loader, example file, a top-level key of it to give twice)
DUPLICABLE: list[tuple[Callable[[Path], Any], Path, str]] = [
    (load_source_catalog, REPO / "data" / "sources.yaml", "sources"),
    (load_governance, REPO / "config" / "governance.yaml", "quarantine_max_share"),
    (load_principals, REPO / "config" / "principals.yaml", "principals"),
    (load_store_config, REPO / "config" / "vector_stores.yaml", "stores"),
]


@pytest.mark.parametrize(
    ("loader", "example", "key"), DUPLICABLE, ids=[e.name for _, e, _ in DUPLICABLE]
)
def test_a_key_given_twice_is_refused_not_silently_overridden(
    tmp_path: Path, loader: Callable[[Path], Any], example: Path, key: str
) -> None:
    """The data plane's files were read with ``yaml.safe_load``, which keeps the last of two
    equal keys: a second ``principals:`` list silently replaced the first."""
    if example.name == "sources.yaml":
        shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    path = tmp_path / example.name
    text = example.read_text(encoding="utf-8")
    block = text[text.index(f"\n{key}:") + 1 :]
    path.write_text(text + "\n" + block, encoding="utf-8")
    with pytest.raises(InputFileError, match="duplicate key") as refused:
        loader(path)
    assert refused.value.path == str(path) and refused.value.field.startswith("line ")


def test_a_placement_policy_setting_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("congestion_cap: 0.9\nmin_dwell_s: 60\ncongestion_cap: 0.5\n")
    with pytest.raises(InputFileError, match="duplicate key 'congestion_cap'"):
        load_placement_policy(path)


# ------------------------------------------------------------------------------------------------
# JSON Schemas and examples
# ------------------------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_models_generate() -> None:
    """``docs/schemas/`` cannot go stale: change a model, rerun
    ``python -m reasoning_plane.config.schemas``."""
    assert stale() == []
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == {
        f"{kind}.schema.json" for kind in FILES
    }


def test_a_changed_schema_file_is_reported_stale(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale(tmp_path) == []
    (tmp_path / "fleet.schema.json").write_text("{}\n")
    (tmp_path / "old.schema.json").write_text("{}\n")
    assert stale(tmp_path) == ["fleet.schema.json", "old.schema.json"]
    assert schemas_main(["--check", "--out", str(tmp_path)]) == 1


SEED = REPO / "examples" / "seed_scenario"
# (schema kind, loader, a configuration file of this repository)
EXAMPLES: list[tuple[str, Callable[[Path], Any], Path]] = [
    ("fleet", load_fleet, SEED / "fleet.yaml"),
    ("quotas", load_quotas, SEED / "quotas.yaml"),
    ("quotas", load_quotas, REPO / "deploy" / "k8s" / "quotas.yaml"),
    ("budgets", load_budgets, SEED / "budgets.yaml"),
    ("requests", load_requests, SEED / "requests.yaml"),
    ("telemetry", load_telemetry, SEED / "telemetry.yaml"),
    ("sources", load_source_catalog, REPO / "data" / "sources.yaml"),
    ("governance", load_governance, REPO / "config" / "governance.yaml"),
    ("principals", load_principals, REPO / "config" / "principals.yaml"),
    ("vector_stores", load_store_config, REPO / "config" / "vector_stores.yaml"),
    ("serving", load_serving, REPO / "config" / "serving.yaml"),
]


def _documents(kind: str, path: Path) -> list[Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    if kind == "quotas":  # the schema is a ResourceQuota's; the loader skips other kinds
        return [d for d in docs if d.get("kind") == "ResourceQuota"]
    return docs


@pytest.mark.parametrize(
    ("kind", "loader", "path"),
    EXAMPLES,
    ids=[f"{kind}:{p.relative_to(REPO)}" for kind, _, p in EXAMPLES],
)
def test_every_example_loads_and_matches_its_schema(
    kind: str, loader: Callable[[Path], Any], path: Path
) -> None:
    assert loader(path)
    documents = _documents(kind, path)
    assert documents
    validator = jsonschema.Draft202012Validator(schemas()[kind])
    for doc in documents:
        assert list(validator.iter_errors(doc)) == []


def test_the_default_placement_policy_as_a_file_matches_its_schema(tmp_path: Path) -> None:
    """No placement policy file is committed: the defaults written out are one."""
    doc = json.loads(json.dumps(asdict(PlacementPolicy())))
    jsonschema.Draft202012Validator(schemas()["placement_policy"]).validate(doc)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_placement_policy(path) == PlacementPolicy()
    assert load_placement_policy(path).version() == PlacementPolicy().version()


def test_the_policy_file_has_exactly_the_settings_of_placement_policy() -> None:
    """The file's model is derived from the dataclass: a new setting needs no loader code."""
    settings = {f.name for f in fields(PlacementPolicy)}
    assert set(PlacementPolicyFile.model_fields) == settings
    assert set(schemas()["placement_policy"]["properties"]) == settings


@pytest.mark.parametrize(
    ("kind", "doc"),
    [
        ("fleet", {"clusters": [{"name": "a", "zone": "UNKNOWN"}]}),
        ("vector_stores", {"stores": {"eu": {"schema": "vectors_eu"}}}),
        ("budgets", {"budgets": [{"team": "a", "limit_usd": 1, "currency": "EUR"}]}),
        ("placement_policy", {"congestion_cap": 1.0}),
        ("principals", {"principals": [{"name": "a", "clearance": "SECRET"}]}),
    ],
)
def test_the_schemas_refuse_what_the_loaders_refuse(kind: str, doc: Any) -> None:
    assert list(jsonschema.Draft202012Validator(schemas()[kind]).iter_errors(doc))


_MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def test_every_schema_modeline_names_a_schema_the_file_matches() -> None:
    """Files that tell editors their schema (first-line comment) name one that exists and that
    they validate against."""
    named = 0
    for path in sorted(REPO.glob("**/*.yaml")):
        if any(part in {".venv", "node_modules", ".git"} for part in path.parts):
            continue
        match = _MODELINE.search(path.read_text(encoding="utf-8"))
        if match is None:
            continue
        schema_path = (path.parent / match.group(1)).resolve()
        assert schema_path.parent == SCHEMA_DIR and schema_path.is_file(), path
        kind = schema_path.name.removesuffix(".schema.json")
        validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
        for doc in _documents(kind, path):
            assert list(validator.iter_errors(doc)) == [], path
        named += 1
    assert named >= 8
