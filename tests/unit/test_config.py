"""Typed configuration (issue 14, item 3): one reader for every configuration file, the same
`<file>: <field>: <problem>` errors, JSON Schemas that match the models, and examples that
validate."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data_plane.access import load_principals
from data_plane.errors import InputFileError
from data_plane.policy import load_policy as load_governance
from data_plane.retrieval import load_store_config
from data_plane.sources import load_source_catalog
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
