"""The gateway's decision records (issue 15, items 3, 4 and 9): one record per request, written
in batches off the request path to ``plane.serving_decisions`` (append-only, hash-chained), read
back by ``plane explain <request id>``; the settled cost of served requests counts in the team's
budget with batch work, and a restarted gateway starts from the period's spend.

Real PostgreSQL, the real gateway on loopback (uvicorn, its lifespan included), the real rule
engine. The runtime is a small loopback server speaking the OpenAI contract llama.cpp's server
speaks (``/v1/models``, ``/v1/chat/completions`` with ``usage``, SSE streaming): the tests check
that the settlement carries the runtime's own token counts, which needs counts known here."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from assets.spend import team_spend
from data_plane import credentials
from data_plane.access import Principal
from data_plane.hash_chain import verify_chain
from plane_cli.main import main as plane
from reasoning_plane import store
from reasoning_plane.model import Budget
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    place_request,
    serving_policy,
    serving_snapshot,
)
from reasoning_plane.serving.records import record_of
from resources.database import database_url as url_of
from serving import records
from serving.gateway import Gateway
from tests.loopback import FailingRuntime, OpenAIRuntime, serve_gateway, serve_handler
from tests.unit.plane import factory

MODEL = "gemma-3-270m"
TEAM = "financial-ml"
PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7  # what the runtime says it counted
STREAMED = ("Your", " order", " ships", " today")


_Runtime = OpenAIRuntime  # the OpenAI chat contract, as llama.cpp's server answers it
assert (_Runtime.PROMPT_TOKENS, _Runtime.COMPLETION_TOKENS, _Runtime.STREAMED) == (
    PROMPT_TOKENS,
    COMPLETION_TOKENS,
    STREAMED,
)


@pytest.fixture
def runtime() -> Iterator[str]:
    with serve_handler(_Runtime) as url:
        yield url


_serving = serve_gateway  # the gateway on loopback, its lifespan run (recorder, probes)


@pytest.fixture
def key(plane_db: str) -> tuple[str, object]:
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        _, token = credentials.issue(conn, "support-copilot")
        conn.commit()

    def authenticate(token_: str | None) -> str:
        with psycopg.connect(plane_db) as c:
            return credentials.authenticate(c, token_)

    return token, authenticate


def _endpoints(runtime: str) -> list[Endpoint]:
    models = frozenset({MODEL})
    return [
        Endpoint("us-a100-1", "us-east-a100", "A100-80GB", "llama.cpp", runtime, models),
        Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, models),
    ]


def _gateway(endpoints, authenticate, recorder=None, limit: float = 100.0) -> Gateway:
    return Gateway(
        fleet=factory.fleet(),
        endpoints=endpoints,
        principals={
            "support-copilot": Principal(
                "support-copilot", frozenset({TEAM}), "PII", frozenset({"EU"}), "EU"
            )
        },
        authenticate=authenticate,
        catalog=lambda: factory.CATALOG,
        budgets={TEAM: Budget(TEAM, limit)},
        recorder=recorder,
    )


def _recorder(**kw) -> records.Recorder:
    return records.Recorder(url_of(role="plane"), **kw)  # the gateway's own role


def _ask(url: str, token: str, *, stream: bool = False, datasets: str = "customer_orders_eu"):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "max_tokens": 16,
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {token}", "x-plane-datasets": datasets}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def _rows(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT request_id, status, endpoint_id, actual_usd, estimated_usd, prompt_tokens,"
            " completion_tokens, rejected_by_rule, runner_up, fastest_endpoint, chain_pos"
            " FROM plane.serving_decisions ORDER BY chain_pos"
        )
        names = [c.name for c in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def test_each_request_is_recorded_with_its_decision_and_settlement(plane_db, runtime, key):
    """Served (plain and streamed) and refused requests each get one record: the chosen
    endpoint, the rules' rejection counts, the estimate and the settlement with the tokens the
    runtime counted (or, streamed without usage, the chunks it sent)."""
    token, authenticate = key
    recorder = _recorder(batch_size=2, interval_s=60.0)  # batches by size; close writes the rest
    gateway = _gateway(_endpoints(runtime), authenticate, recorder)
    with _serving(gateway) as url:
        plain = _ask(url, token)
        streamed = _ask(url, token, stream=True)
        streamed.read()
        assert plain.status_code == 200 and streamed.status_code == 200
        # the only endpoint left is in the US: EU personal data is refused, and recorded
        gateway.endpoints = [e for e in gateway.endpoints if e.endpoint_id == "us-a100-1"]
        gateway.generation += 1
        refused = _ask(url, token)
        assert refused.status_code == 403
    rows = _rows(plane_db)
    assert set(rows) == {
        plain.headers["x-plane-request-id"],
        streamed.headers["x-plane-request-id"],
        refused.headers["x-plane-request-id"],
    }
    served = rows[plain.headers["x-plane-request-id"]]
    assert served["status"] == "placed" and served["endpoint_id"] == "eu-a10-1"
    assert (served["prompt_tokens"], served["completion_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert served["estimated_usd"] > 0 and served["actual_usd"] is not None
    assert served["rejected_by_rule"] == {"compliance": 1, "residency": 1}  # the US one
    assert served["runner_up"] is None  # the only feasible endpoint
    assert served["fastest_endpoint"] in {"eu-a10-1", "us-a100-1"}
    assert rows[streamed.headers["x-plane-request-id"]]["completion_tokens"] == len(STREAMED)
    no = rows[refused.headers["x-plane-request-id"]]
    assert no["status"] == "rejected" and no["endpoint_id"] is None
    assert no["actual_usd"] is None and no["rejected_by_rule"] == {"compliance": 1, "residency": 1}
    assert recorder.written == 3 and not recorder.waiting
    # the residency planner's demand query reads these columns
    with psycopg.connect(plane_db) as conn:
        demand = conn.execute(
            "SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens)"
            " FROM plane.serving_decisions WHERE decided_at > now() - interval '1 hour'"
            " GROUP BY model"
        ).fetchall()
    prompts = sum(r["prompt_tokens"] for r in rows.values())
    assert demand == [(MODEL, 3, prompts, COMPLETION_TOKENS + len(STREAMED))]


def _records(n: int) -> list:
    """``n`` real records: requests placed by the engine on the seed fleet."""
    endpoints = _endpoints("http://127.0.0.1:9")
    now = datetime.now(UTC)
    samples = {
        e.endpoint_id: EndpointSample(e.endpoint_id, now, 0, 0, 150.0, 20.0, frozenset({MODEL}))
        for e in endpoints
    }
    snapshot = serving_snapshot(
        factory.fleet(),
        endpoints,
        samples,
        MODEL,
        budgets={},
        usage={},
        catalog=factory.CATALOG,
        now=now,
    )
    policy = serving_policy(PlacementPolicy())
    out = []
    for k in range(n):
        ask = InferenceRequest(f"req-{k}", TEAM, MODEL, 40, 64, ("customer_orders_eu",))
        out.append(record_of(place_request(ask, snapshot, {}, policy), ask, principal="alice"))
    return out


@pytest.fixture
def broken() -> Iterator[str]:
    with serve_handler(FailingRuntime) as url:
        yield url


def test_a_failed_over_request_has_one_record_naming_what_failed(plane_db, runtime, key, broken):
    token, authenticate = key
    # the broken one is the cheapest (8 slots share the GPU-hour), so it is chosen first
    bad = Endpoint("eu-a10-bad", "eu-fra-a10", "A10", "llama.cpp", broken, frozenset({MODEL}), 1, 8)
    recorder = _recorder()
    gateway = _gateway([bad, *_endpoints(runtime)], authenticate, recorder)
    with _serving(gateway) as url:
        reply = _ask(url, token)
    assert reply.status_code == 200 and reply.headers["x-plane-failed-over"] == "eu-a10-bad"
    with psycopg.connect(plane_db) as conn:
        rows = conn.execute(
            "SELECT request_id, decision_id, endpoint_id, payload->'failed_over', actual_usd"
            " FROM plane.serving_decisions"
        ).fetchall()
    assert rows == [
        (
            reply.headers["x-plane-request-id"],
            reply.headers["x-plane-decision-id"],
            "eu-a10-1",
            ["eu-a10-bad"],
            rows[0][4],
        )
    ]
    assert rows[0][4] is not None  # settled once, by the endpoint that served it
    assert gateway.reserved_usd[TEAM] == pytest.approx(0.0, abs=1e-12)


def test_records_are_written_in_batches_of_one_transaction_each(plane_db) -> None:
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.commit()
    recorder = _recorder(batch_size=5, interval_s=60.0)
    recorder.start()
    for record in _records(12):
        recorder.add(record)  # returns at once: the thread writes
    recorder.close()
    assert recorder.written == 12 and not recorder.waiting
    with psycopg.connect(plane_db) as conn:
        per_transaction = [
            n
            for (n,) in conn.execute(
                "SELECT count(*) FROM plane.serving_decisions GROUP BY xmin::text"
            ).fetchall()
        ]
        positions = [
            p
            for (p,) in conn.execute(
                "SELECT chain_pos FROM plane.serving_decisions ORDER BY chain_pos"
            ).fetchall()
        ]
    assert sum(per_transaction) == 12 and max(per_transaction) <= 5
    assert len(per_transaction) == recorder.batches >= 3
    assert positions == list(range(1, 13))


def test_a_failed_write_is_retried_and_a_full_buffer_stops_admission(plane_db, runtime, key):
    """The database is unreachable: nothing is dropped, the buffer fills, the gateway answers
    503 instead of serving unrecorded; when the database is back every record is written."""
    token, authenticate = key
    # no spend refresh: its connection, opened to the good URL while a slow start-up took more
    # than refresh_s, would be kept and the "unreachable" database never failed a write
    recorder = _recorder(
        batch_size=1, interval_s=0.05, max_buffered=2, retry_s=0.01, refresh_s=3600.0
    )
    good = recorder.url
    gateway = _gateway(_endpoints(runtime), authenticate, recorder)
    with _serving(gateway) as url:
        recorder.url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"  # down
        first, second = _ask(url, token), _ask(url, token)
        assert first.status_code == second.status_code == 200
        deadline = time.monotonic() + 20
        while recorder.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.failures > 0 and recorder.waiting == 2
        refused = _ask(url, token)
        assert refused.status_code == 503, refused.text
        assert "decision log" in refused.json()["error"]["message"]
        recorder.url = good  # the database is back
        deadline = time.monotonic() + 20
        while recorder.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _ask(url, token)
        assert after.status_code == 200
    assert set(_rows(plane_db)) == {
        r.headers["x-plane-request-id"] for r in (first, second, after)
    }  # the refused one was never served, so it has no record


def test_a_callers_nul_byte_is_recorded_and_does_not_stop_the_log(plane_db, runtime, key):
    """PostgreSQL refuses NUL in text and jsonb: a model name carrying one would be a record
    that can never be written, filling the buffer until the gateway refused everyone."""
    token, authenticate = key
    recorder = _recorder(batch_size=1, interval_s=0.05)
    gateway = _gateway(_endpoints(runtime), authenticate, recorder)
    with _serving(gateway) as url:
        body = {"model": "gemma\u0000x", "messages": [{"role": "user", "content": "a\u0000b"}]}
        headers = {"authorization": f"Bearer {token}", "x-plane-datasets": "customer_orders_eu"}
        odd = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert odd.status_code == 403  # no endpoint serves that model
        assert _ask(url, token).status_code == 200
    assert recorder.refused == 0 and recorder.failures == 0 and not recorder.waiting
    with psycopg.connect(plane_db) as conn:
        model = conn.execute(
            "SELECT model FROM plane.serving_decisions WHERE request_id = %s",
            (odd.headers["x-plane-request-id"],),
        ).fetchone()
    assert model == ("gemma\ufffdx",)


def test_a_record_the_database_refuses_is_logged_whole_and_the_rest_written(
    plane_db, caplog
) -> None:
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.commit()
    good = _records(3)
    bad = dataclasses.replace(good[1], estimated_usd=None, status="placed")  # a CHECK refuses
    recorder = _recorder(batch_size=3, interval_s=60.0)
    for record in (good[0], bad, good[2]):
        recorder.add(record)
    with caplog.at_level(logging.ERROR, logger="plane.serving.records"):
        assert recorder.flush()
    assert recorder.refused == 1 and not recorder.waiting
    assert set(_rows(plane_db)) == {"req-0", "req-2"}
    assert "request req-1" in caplog.text and '"status": "placed"' in caplog.text


def test_the_chain_verifies_and_a_tampered_record_is_named(plane_db) -> None:
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        records.write(conn, _records(3))
        assert not verify_chain(conn, "plane.serving_decisions").problems
    assert plane(["verify-log", "--log", "serving", "--no-anchor"]) == 0
    with psycopg.connect(plane_db, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # a superuser's edit
        conn.execute(
            "UPDATE plane.serving_decisions SET reason = 'edited' WHERE request_id = 'req-1'"
        )
    with psycopg.connect(plane_db) as conn:
        problems = verify_chain(conn, "plane.serving_decisions").problems
    assert problems == ["plane.serving_decisions: row 2 was changed after it was written"]
    assert plane(["verify-log", "--no-anchor"]) == 6  # every log by default, this one included
    with psycopg.connect(plane_db) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM plane.serving_decisions")  # append-only


def test_a_restarted_gateway_keeps_the_teams_spend(plane_db, runtime, key) -> None:
    """Batch and serving spend are one budget: what the period holds is loaded at start, so a
    restart does not give the team its budget back."""
    token, authenticate = key
    gateway = _gateway(_endpoints(runtime), authenticate, _recorder())
    with _serving(gateway) as url:
        assert _ask(url, token).status_code == 200
    served = _rows(plane_db)
    actual = sum(r["actual_usd"] for r in served.values())
    assert actual > 0
    _batch_spend(plane_db, 100.0 - actual)  # batch work of the team: up to the limit
    with psycopg.connect(plane_db) as conn:
        month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        assert store.usage(conn, month)[TEAM].spent_usd == pytest.approx(100.0)
        assert store.ledger_by_team(conn, [TEAM], month)[TEAM][2] == pytest.approx(100.0)
        # and the spend view people read (plane/team_spend) shows both
        view = team_spend(conn, {}, {TEAM: Budget(TEAM, 100.0)}, datetime.now(UTC))
        assert [(v.team, round(v.spent_usd, 4)) for v in view] == [(TEAM, 100.0)]
    # a gateway that forgot the spend would serve; the restarted one defers on the budget
    forgetful = _gateway(_endpoints(runtime), authenticate)
    with _serving(forgetful) as url:
        assert _ask(url, token).status_code == 200
    restarted = _gateway(_endpoints(runtime), authenticate, _recorder())
    with _serving(restarted) as url:
        assert restarted.spent_usd[TEAM] == pytest.approx(100.0)
        again = _ask(url, token)
    assert again.status_code == 429, again.text
    assert "budget" in again.json()["error"]["message"]


def _batch_spend(url: str, usd: float) -> None:
    """A batch run of the team, placed and settled at ``usd`` this period (`plane.ledger`)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO plane.decisions (decision_id, request_id, workload, team, status,"
            " policy_version, snapshot_hash, payload, explanation, decided_at)"
            " VALUES ('d-batch', 'r-batch', 'embeddings/x', %s, 'placed', 'v', 's', '{}', '',"
            " now())",
            (TEAM,),
        )
        conn.execute(
            "INSERT INTO plane.ledger (team, decision_id, kind, gpus, usd) VALUES"
            " (%s, 'd-batch', 'reserve', 1, 5), (%s, 'd-batch', 'settle', 1, %s)",
            (TEAM, TEAM, usd),
        )
        conn.commit()


def test_batch_spend_while_the_gateway_runs_counts_against_its_budget(
    plane_db, runtime, key
) -> None:
    """The gateway follows the period's spend: a batch run settled after it started takes
    the same budget, and the next request is deferred by the budget rule."""
    token, authenticate = key
    recorder = _recorder(interval_s=0.05, refresh_s=0.05)
    gateway = _gateway(_endpoints(runtime), authenticate, recorder)
    with _serving(gateway) as url:
        first = _ask(url, token)
        assert first.status_code == 200
        _batch_spend(plane_db, 100.0)
        seen = recorder.refreshes
        deadline = time.monotonic() + 20
        while recorder.refreshes < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # the batch run, and this gateway's own settled request (written or still buffered)
        served = gateway.spent_usd[TEAM] - 100.0
        assert served > 0
        second = _ask(url, token)
    assert second.status_code == 429 and "budget" in second.json()["error"]["message"]
    assert sum(r["actual_usd"] or 0 for r in _rows(plane_db).values()) == pytest.approx(served)


def test_plane_explain_prints_a_gateway_requests_record(plane_db, runtime, key) -> None:
    token, authenticate = key
    gateway = _gateway(_endpoints(runtime), authenticate, _recorder())
    with _serving(gateway) as url:
        reply = _ask(url, token)
    assert reply.status_code == 200
    request_id = reply.headers["x-plane-request-id"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert plane(["explain", request_id]) == 0
    text = out.getvalue()
    assert f"Request {request_id}: PLACED on eu-a10-1 (eu-fra-a10)" in text
    assert "runner-up: none (no other feasible endpoint)" in text
    assert "fastest: " in text and "would have cost $" in text
    assert "cost: estimated $" in text and "actual $" in text
    assert "rejected per rule: compliance 1, residency 1" in text
    assert f"completion {COMPLETION_TOKENS}" in text
    assert "chain position 1" in text
    # by its decision id too, and as JSON
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert plane(["explain", reply.headers["x-plane-decision-id"], "--json"]) == 0
    assert json.loads(out.getvalue())["request_id"] == request_id
    assert plane(["explain", "gw-no-such-request"]) == 4
