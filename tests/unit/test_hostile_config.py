"""Hostile configuration files of the data plane (issue 8, item 7): the source catalog, the
governance policy, the principals and the vector stores. Any file either loads or is refused
with `InputFileError` naming the file; no other exception, no silent acceptance of a bad value.
(The reasoning plane's own files are fuzzed the same way in test_inputs.py.)"""

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.access import load_principals
from data_plane.errors import InputFileError
from data_plane.policy import load_policy
from data_plane.retrieval import load_store_config
from data_plane.sources import load_source_catalog
from tests.strategies import json_like

REPO = Path(__file__).resolve().parents[2]
Loader = Callable[[Path], Any]
LOADERS: list[tuple[Loader, Path]] = [
    (load_source_catalog, REPO / "data" / "sources.yaml"),
    (load_policy, REPO / "config" / "governance.yaml"),
    (load_principals, REPO / "config" / "principals.yaml"),
    (load_store_config, REPO / "config" / "vector_stores.yaml"),
]
IDS = [loader.__name__ for loader, _ in LOADERS]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOSTILE_TEXT = st.sampled_from(
    [
        "'; DROP SCHEMA governance CASCADE; --",
        'x" OR 1=1 --',
        "../../../../etc/passwd",
        "/etc/shadow",
        "..\\..\\windows\\system32",
        "a" * 100_000,
        "\u202eevil\u202c",
        "\u0000",
        "na\u00efve\u200b",
        "\U0001f4a5",
        "{team}",
        "%s%s%s",
        "${PLANE_DATABASE_URL}",
        "1e309",
        "-0",
        "NaN",
    ]
)
JSON_LIKE = json_like(
    HOSTILE_TEXT, int_bound=10**30, keys=st.text(max_size=8), max_keys=4, max_leaves=20
)


def _workdir(tmp_path: Path, example: Path) -> Path:
    """A copy of the example (with the sample files the source catalog points at)."""
    target = tmp_path / example.name
    if example.name == "sources.yaml" and not (tmp_path / "samples").exists():
        shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    return target


def _load_or_refuse(loader: Loader, path: Path) -> Any:
    try:
        return loader(path)
    except InputFileError as exc:
        assert exc.path == str(path) and str(exc).startswith(str(path))
        return None


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


@pytest.mark.parametrize(("loader", "example"), LOADERS, ids=IDS)
@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_or_are_refused(
    tmp_path: Path, loader: Loader, example: Path, data: bytes
) -> None:
    path = _workdir(tmp_path, example)
    path.write_bytes(data)
    _load_or_refuse(loader, path)


@pytest.mark.parametrize(("loader", "example"), LOADERS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_mutated_examples_load_or_are_refused(
    tmp_path: Path, loader: Loader, example: Path, data: Any
) -> None:
    doc = yaml.safe_load(example.read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        where = data.draw(st.sampled_from(_paths(doc)), label="path")
        value = data.draw(JSON_LIKE, label="value")
        doc = copy.deepcopy(doc)
        if not where:
            doc = value
            continue
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = value
    path = _workdir(tmp_path, example)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    _load_or_refuse(loader, path)


def _source_doc() -> dict:
    return yaml.safe_load((REPO / "data" / "sources.yaml").read_text())


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("name", "orders'; DROP TABLE governance.catalog; --", "lower_snake_case"),
        ("name", "../../etc", "lower_snake_case"),
        ("name", "o" * 64, "at most 63"),
        ("name", "commandes_\u00e9t\u00e9", "lower_snake_case"),
        ("path", "../../../../etc/passwd", "must stay inside the catalog's folder"),
        ("path", "samples/../../outside.csv", "must stay inside the catalog's folder"),
        ("owner_team", "Finance; rm -rf /", "namespace name"),
        ("quarantine_max_share", 1e309, "quarantine_max_share"),
    ],
)
def test_hostile_source_fields_are_refused_by_name(
    tmp_path: Path, field: str, value: Any, said: str
) -> None:
    doc = _source_doc()
    doc["sources"][0][field] = value
    path = _workdir(tmp_path, REPO / "data" / "sources.yaml")
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(InputFileError, match=r"sources\.yaml") as refused:
        load_source_catalog(path)
    assert said in str(refused.value)
    assert "sources[0]" in refused.value.field


@pytest.mark.parametrize(
    "name",
    ["x' OR '1'='1", "a/../../b", "a\u0000b", "\u202e", "a" * 129, "", " spaced"],
)
def test_hostile_principal_names_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "principals.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "principals": [
                    {"name": name, "clearance": "PII", "regions": ["EU"], "home_region": "EU"}
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputFileError, match=r"principals\[0\]\.name"):
        load_principals(path)


@pytest.mark.parametrize(
    "schema", ["public; DROP SCHEMA governance", "Vectors_EU", "pg_catalog\u0000", "a" * 64]
)
def test_hostile_store_schemas_are_refused(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "vector_stores.yaml"
    path.write_text(yaml.safe_dump({"stores": {"EU": {"schema": schema}}}), encoding="utf-8")
    with pytest.raises(InputFileError, match=r"stores\.EU\.schema"):
        load_store_config(path)


def test_huge_and_deep_documents_are_refused_or_loaded_quickly(tmp_path: Path) -> None:
    path = tmp_path / "principals.yaml"
    # A billion-laughs style alias bomb: refused or loaded without expanding it into memory.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
    path.write_text(bomb, encoding="utf-8")
    with pytest.raises(InputFileError):
        load_principals(path)
    path.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(InputFileError):
        load_principals(path)
