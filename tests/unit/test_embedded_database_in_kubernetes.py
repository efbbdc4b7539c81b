"""Inside a Kubernetes pod the embedded PostgreSQL is refused: it would be a private, empty
database per pod (the daemon's routing launcher would find no decisions and refuse every run,
or worse, each pod would keep its own decision log). The error names PLANE_DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources import database
from resources.database import EmbeddedDatabaseRefused, database_url


@pytest.fixture
def in_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.delenv("PLANE_DATABASE_URL", raising=False)
    for role in ("PLANE", "WORKER", "STEWARD", "READER"):
        monkeypatch.delenv(f"PLANE_DATABASE_URL_{role}", raising=False)
    monkeypatch.setenv("PLANE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.mark.parametrize("role", [None, "plane", "worker"])
def test_no_embedded_postgres_inside_kubernetes(in_a_pod: Path, role: str | None) -> None:
    with pytest.raises(EmbeddedDatabaseRefused) as error:
        database_url(role=role)
    message = str(error.value)
    assert message.startswith("PLANE_DATABASE_URL: not set")
    assert "KUBERNETES_SERVICE_HOST" in message and "reasoning-plane-db" in message
    # nothing was started: no data directory, no server registered for this process
    assert not (in_a_pod / "pg").exists()
    assert in_a_pod / "pg" not in database._embedded_urls


def test_an_external_database_is_used_inside_kubernetes(
    in_a_pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANE_DATABASE_URL", "postgresql://rp_plane:pw@db.internal:5432/plane")
    assert database_url(role="plane") == "postgresql://rp_plane:pw@db.internal:5432/plane"
    monkeypatch.setenv("PLANE_DATABASE_URL_WORKER", "postgresql://rp_worker:pw@db:5432/plane")
    assert database_url(role="worker") == "postgresql://rp_worker:pw@db:5432/plane"
