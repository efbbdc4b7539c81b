"""The seed's copilot case end to end (issue 15, item 8): an EU customer's question, governed
retrieval from the EU pgvector store, the completion on an EU endpoint of a real llama.cpp
server; with only a US endpoint up, refused with the reason.

The attack: a caller that declares no data (no ``x-plane-datasets``) but has the gateway
retrieve EU personal data as its context. The data the completion holds is what was retrieved,
so the request is placed as EU personal data whatever it declared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from data_plane import catalog_store
from data_plane.access import load_principals
from data_plane.authz import Authorizer
from data_plane.catalog import tag_dataset
from data_plane.embedder import Embedder
from data_plane.policy import load_policy
from data_plane.retrieval import Retriever, read_grants
from data_plane.vector_store import ChunkRow, RegionStore, ensure_store, upsert_chunks
from reasoning_plane.model import Budget
from reasoning_plane.serving.endpoints import Endpoint
from resources.vectors import connect_store
from serving.gateway import Gateway
from tests.integration.test_gateway import MODEL, _serve, runtime  # noqa: F401 (fixture)
from tests.unit.plane import factory

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STORE = RegionStore(region="EU", schema="vectors_copilot_eu")
TICKETS = [
    "Anna Schmidt asks where the refund for order 1182 to her IBAN DE89 3704 0044 is.",
    "Customer in Berlin: the parcel arrived damaged, wants a replacement.",
    "Refunds are paid to the original payment method within five working days.",
]


@pytest.fixture(scope="module")
def eu_store(database_url: str) -> Iterator[None]:
    """The EU store holding support_tickets (EU personal data), and its catalog entry."""
    policy = load_policy(REPO / "config" / "governance.yaml")
    entry = tag_dataset(
        dataset_id="support_tickets",
        storage_endpoints=["s3://eu-central-1/support/tickets"],
        source_system="zendesk",
        owner_team="customer-support",
        declared_classification="PII",
        declared_retention="1_year",
        pii_columns={"body": ["PERSON", "IBAN_CODE"]},
        last_updated=datetime(2026, 11, 25, tzinfo=UTC),
        policy=policy,
    )
    assert entry.record.data_residency == "EU" and entry.record.classification == "PII"
    embedder = Embedder()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {STORE.schema} CASCADE")
    with psycopg.connect(database_url) as conn:
        catalog_store.ensure_schema(conn)
        catalog_store.upsert_entry(conn, entry)
        conn.commit()
    rows = [
        ChunkRow(
            chunk_id=f"t{i}",
            dataset_id="support_tickets",
            source_column="body",
            row_ref=str(i),
            chunk_index=0,
            text=text,
            classification="PII",
            residency="EU",
            owner_team="customer-support",
            pii_types=("PERSON",),
            content_hash=f"h{i}",
        )
        for i, text in enumerate(TICKETS)
    ]
    with connect_store(STORE) as conn:
        ensure_store(conn, STORE)
        upsert_chunks(conn, STORE, rows, embedder.encode([r.text for r in rows]), "m")
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {STORE.schema} CASCADE")
        conn.execute("DELETE FROM governance.catalog WHERE dataset_id = 'support_tickets'")


@pytest.fixture
def copilot(database_url: str, eu_store) -> Iterator[tuple[str, Gateway]]:
    """support-copilot's API key, and a gateway that retrieves from the EU store."""
    from data_plane import credentials

    with psycopg.connect(database_url) as conn:
        _, token = credentials.issue(conn, "support-copilot")
        conn.commit()

    def authenticate(token_: str | None) -> str:
        with psycopg.connect(database_url) as c:
            return credentials.authenticate(c, token_)

    def entries():
        with psycopg.connect(database_url) as conn:
            return catalog_store.list_entries(conn)

    principals = load_principals(REPO / "config" / "principals.yaml")
    authorizer = Authorizer(REPO / "config" / "policies")
    with psycopg.connect(database_url) as conn:  # what `plane db migrate` grants
        grants = read_grants(authorizer, principals, entries(), {"EU": STORE})
        catalog_store.replace_read_grants(conn, grants, authorizer.version)
        conn.commit()

    @contextmanager
    def as_reader(store: RegionStore) -> Iterator[psycopg.Connection]:
        with connect_store(store, role="reader") as conn:
            yield conn

    retriever = Retriever(
        stores={"EU": STORE},
        connect=as_reader,  # the stores' search function checks each caller's key and grants
        embed=Embedder().encode,
        catalog=entries,
        principals=principals,
        authorizer=authorizer,
    )

    def gateway(endpoints: list[Endpoint]) -> Gateway:
        return Gateway(
            fleet=factory.fleet(),
            endpoints=endpoints,
            principals=principals,
            authenticate=authenticate,
            catalog=lambda: {e.dataset_id: e.record for e in entries()},
            budgets={"customer-support": Budget("customer-support", 100.0)},
            retriever=retriever,
        )

    yield token, gateway


def _ask(question: str, **retrieval) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 8,
        "retrieval": {"query": question, "k": 2, **retrieval},
    }


def test_the_copilot_answers_from_eu_data_on_an_eu_endpoint_or_not_at_all(
    runtime: str,  # noqa: F811 (the fixture)
    copilot,
    database_url: str,
) -> None:
    token, gateway = copilot
    eu = Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}))
    us = Endpoint(
        "us-a100-1", "us-east-a100", "A100-80GB", "llama.cpp", runtime, frozenset({MODEL})
    )
    headers = {"authorization": f"Bearer {token}"}  # no x-plane-datasets: declares nothing
    body = _ask("Where is my refund?")
    for url in _serve(gateway([us, eu])):
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-plane-context-datasets"] == "support_tickets"
        assert reply.headers["x-plane-endpoint"] == "eu-a10-1"
        assert reply.json()["usage"]["prompt_tokens"] > 20  # the retrieved context was sent
        bad = httpx.post(
            f"{url}/v1/chat/completions",
            json={**body, "retrieval": {"query": "refund", "k": 0}},
            headers=headers,
            timeout=60,
        )
        assert bad.status_code == 400 and "retrieval.k" in bad.json()["error"]["message"]
    for url in _serve(gateway([us])):
        refused = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert refused.status_code == 403, refused.text
        assert "x-plane-endpoint" not in refused.headers
        message = refused.json()["error"]["message"]
        assert "support_tickets is PII with residency EU" in message
    with psycopg.connect(database_url) as conn:  # the database, not only Cedar, says no
        catalog_store.replace_read_grants(conn, [], "revoked")
        conn.commit()
    for url in _serve(gateway([us, eu])):
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-plane-context-datasets"] == ""  # nothing it may read
