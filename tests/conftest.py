"""Shared fixtures: every test session gets its own state folder and embedded PostgreSQL.

``PLANE_STATE_DIR`` is pointed at a fresh temporary folder before anything starts, so tests never
touch a developer's ``.plane/``. Unless ``PLANE_DATABASE_URL`` names an external server, the real
embedded PostgreSQL + pgvector is started there on first use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
_STATE = Path(tempfile.mkdtemp(prefix="plane-test-state-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["PLANE_STATE_DIR"] = str(_STATE)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_STATE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _anchors_of_this_test(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test anchors its chain heads (data_plane.anchors) in a folder of its own: tests
    drop and recreate the plane schema, and a head anchored by another test's tick would read
    as a cut chain to `plane verify-log`."""
    monkeypatch.setenv("PLANE_ANCHOR_DIR", str(tmp_path_factory.mktemp("anchors")))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def database_url() -> str:
    """URL of the real PostgreSQL used by the tests (embedded unless PLANE_DATABASE_URL is set)."""
    from resources.database import database_url as resolve

    return resolve()


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as conn:
        yield conn


@pytest.fixture
def fresh_schema(pg: psycopg.Connection) -> Iterator[None]:
    """Drop the project's catalog tables before and after a test that needs them empty."""
    pg.execute("DROP SCHEMA IF EXISTS governance CASCADE")
    pg.commit()
    yield
    pg.rollback()
    pg.execute("DROP SCHEMA IF EXISTS governance CASCADE")
    pg.commit()


@pytest.fixture
def plane_db(database_url: str) -> Iterator[str]:
    """The database URL, with the reasoning plane's schema dropped before and after the test."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    yield database_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")


@pytest.fixture
def sample_catalog(tmp_path: Path) -> Path:
    """A copy of data/sources.yaml and the sample files in a temporary folder (safe to edit)."""
    shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    shutil.copy(REPO / "data" / "sources.yaml", tmp_path / "sources.yaml")
    return tmp_path / "sources.yaml"
