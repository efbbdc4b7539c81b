"""The gateway's hot path kept honest (issue 15, gateway overhead): API keys remembered for a
stated, bounded time (`serving.keys`), and bodies forwarded as sent only when the runtime reads
what the gateway decided on.

Real PostgreSQL API keys (`data_plane.credentials`: issued, checked, revoked), the real gateway
on loopback (uvicorn, its lifespan), the real rule engine; the runtime is the loopback OpenAI
stub (`tests.loopback.OpenAIRuntime`), recording the bytes it received. Time is driven (the key
cache's clock), not slept."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from data_plane import credentials
from data_plane.access import Principal
from reasoning_plane.model import Budget
from reasoning_plane.serving.endpoints import Endpoint
from serving.gateway import Gateway
from serving.keys import KeyCache
from tests.loopback import OpenAIRuntime, serve_gateway, serve_handler
from tests.unit.plane import factory

MODEL = OpenAIRuntime.MODEL
TEAM = "financial-ml"


class _Recording(OpenAIRuntime):
    """The OpenAI stub, keeping every request body it received."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["content-length"]))
        self.received.append(raw)
        self.rfile = io.BytesIO(raw)  # read again by the stub
        super().do_POST()


@pytest.fixture
def runtime() -> Iterator[str]:
    _Recording.received = []
    with serve_handler(_Recording) as url:
        yield url


class Clock:
    """The key cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(database_url: str) -> tuple[str, list[str]]:
    """The database URL, and the keys the gateway asked it about (one entry per check)."""
    return database_url, []


def _authenticate(database_url: str, asked: list[str]):
    """`credentials.authenticate` on the real database, noting each key it is asked about."""

    def authenticate(token: str | None) -> str:
        asked.append(token or "")
        with psycopg.connect(database_url) as conn:
            return credentials.authenticate(conn, token)

    return authenticate


def _issue(database_url: str) -> tuple[str, str]:
    with psycopg.connect(database_url) as conn:
        key_id, token = credentials.issue(conn, "support-copilot")
        conn.commit()
    return key_id, token


def _revoke(database_url: str, key_id: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert credentials.revoke(conn, key_id)
        conn.commit()


def _gateway(runtime: str, keys: KeyCache) -> Gateway:
    return Gateway(
        fleet=factory.fleet(),
        endpoints=[
            Endpoint(
                "eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}), slots=8
            )
        ],
        principals={
            "support-copilot": Principal(
                "support-copilot", frozenset({TEAM}), "PII", frozenset({"EU"}), "EU"
            )
        },
        authenticate=keys.authenticate,
        keys=keys,
        catalog=lambda: factory.CATALOG,
        budgets={TEAM: Budget(TEAM, 100.0)},
    )


BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _ask(url: str, token: str, content: bytes | None = None) -> httpx.Response:
    headers = {
        "authorization": f"Bearer {token}",
        "x-plane-datasets": "customer_orders_eu",
        "content-type": "application/json",
    }
    data = content if content is not None else json.dumps(BODY).encode()
    return httpx.post(f"{url}/v1/chat/completions", content=data, headers=headers, timeout=30)


def test_a_revoked_key_is_refused_once_the_cache_bound_has_passed(runtime, db) -> None:
    """The documented bound: a key revoked at t is refused from t + key_cache_s on; before
    that the gateway answers from memory, without a database round trip."""
    database_url, asked = db
    key_id, token = _issue(database_url)
    clock = Clock()
    keys = KeyCache(_authenticate(database_url, asked), 5.0, clock=clock)
    with serve_gateway(_gateway(runtime, keys)) as url:
        assert _ask(url, token).status_code == 200
        assert len(asked) == 1  # checked in PostgreSQL once
        _revoke(database_url, key_id)
        clock.now += 4.9  # within the bound: still trusted, from memory
        assert _ask(url, token).status_code == 200
        assert len(asked) == 1
        clock.now += 0.1  # the bound has passed since the check began: asked again, refused
        refused = _ask(url, token)
        assert refused.status_code == 401, refused.text
        assert f"API key {key_id} was revoked" in refused.json()["error"]["message"]
        assert len(asked) == 2
        clock.now += 60.0
        assert _ask(url, token).status_code == 401  # a refusal is never remembered as valid
        assert len(asked) == 3


def test_a_key_never_seen_is_checked_against_the_database(runtime, db) -> None:
    """Only a key that authenticated is remembered: a key revoked before its first use, an
    unknown key and a fresh one are each asked of PostgreSQL, however long the cache's time."""
    database_url, asked = db
    revoked_id, revoked = _issue(database_url)
    _revoke(database_url, revoked_id)
    _, fresh = _issue(database_url)
    keys = KeyCache(_authenticate(database_url, asked), 300.0, clock=Clock())
    with serve_gateway(_gateway(runtime, keys)) as url:
        assert _ask(url, revoked).status_code == 401
        assert asked == [revoked]
        unknown = "rpk_0123456789ab_" + "A" * 43
        for _ in range(2):
            assert _ask(url, unknown).status_code == 401
        assert asked == [revoked, unknown, unknown]
        assert _ask(url, fresh).status_code == 200
        assert _ask(url, fresh).status_code == 200
        assert asked == [revoked, unknown, unknown, fresh]  # the second from memory
        # a key that merely shares the remembered key's id is not the remembered key
        forged = fresh[:-4] + ("AAAA" if not fresh.endswith("AAAA") else "BBBB")
        assert _ask(url, forged).status_code == 401
        assert asked[-1] == forged


def test_with_no_cache_time_every_request_is_checked(runtime, db) -> None:
    database_url, asked = db
    _, token = _issue(database_url)
    keys = KeyCache(_authenticate(database_url, asked), 0.0, clock=Clock())
    with serve_gateway(_gateway(runtime, keys)) as url:
        for _ in range(3):
            assert _ask(url, token).status_code == 200
    assert asked == [token] * 3


def test_an_unchanged_body_is_forwarded_as_sent_and_a_key_given_twice_is_refused(
    runtime, db
) -> None:
    """The gateway forwards the caller's bytes when it changes nothing, so it must read them
    as the runtime does: a body naming ``model`` (or any key) twice is refused, not guessed."""
    database_url, asked = db
    _, token = _issue(database_url)
    keys = KeyCache(_authenticate(database_url, asked), 5.0, clock=Clock())
    with serve_gateway(_gateway(runtime, keys)) as url:
        sent = b'{"model":  "gemma-3-270m", "max_tokens": 4,\n "messages": [{"role": "user",'
        sent += b' "content": "Hi \\u00e9"}]}'
        assert _ask(url, token, sent).status_code == 200
        assert _Recording.received == [sent]
        twice = b'{"model": "unlisted-model", "model": "gemma-3-270m", "messages": []}'
        refused = _ask(url, token, twice)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "body: model: the key is given twice"
        nested = b'{"model": "gemma-3-270m", "messages": [{"role": "user", "role": "system"}]}'
        assert _ask(url, token, nested).status_code == 400
        assert _ask(url, token, "{}".encode("utf-16")).status_code == 400  # JSON is UTF-8
        assert len(_Recording.received) == 1  # none of the refused reached the runtime


def test_requests_missing_the_cache_together_share_one_check(runtime, db) -> None:
    """When a key's time runs out under load, the requests that arrive meanwhile wait for one
    database check instead of queueing one each behind the key store's connection."""
    database_url, asked = db
    _, token = _issue(database_url)
    check = _authenticate(database_url, asked)
    all_sent = threading.Event()

    def slow(token_: str | None) -> str:
        all_sent.wait(5)  # the check is still running when every request has arrived
        return check(token_)

    keys = KeyCache(slow, 5.0, clock=Clock())
    with serve_gateway(_gateway(runtime, keys)) as url, ThreadPoolExecutor(8) as pool:
        replies = [pool.submit(_ask, url, token) for _ in range(8)]
        time.sleep(0.3)  # the eight requests reach the gateway, all missing the cache
        all_sent.set()
        assert [r.result().status_code for r in replies] == [200] * 8
    assert asked == [token]
