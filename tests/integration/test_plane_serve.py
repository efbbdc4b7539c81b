"""`plane serve` as an operator runs it: a real subprocess on loopback, in front of a real
llama.cpp server (Gemma 3 270M) and the real sentence-transformers embeddings runtime, with API
keys and the governance catalog in real PostgreSQL and the project's Cedar policies plus a rule
that forbids a team a model. Called over HTTP with httpx, as an OpenAI client would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from data_plane import catalog_store, credentials
from data_plane.authz import POLICY_DIR
from data_plane.catalog import CatalogEntry
from resources.database import database_url as plane_role_url
from tests.integration.test_gateway import runtime  # noqa: F401 (the fixture)
from tests.loopback import free_port, wait_until_answering
from tests.unit.plane import factory

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"
EMBEDDER = "all-MiniLM-L6-v2"
FORBID_MEDIA = """
@id("media-ml-not-gemma")
forbid (
  principal in Plane::Team::"media-ml",
  action == Plane::Action::"use_model",
  resource == Plane::Model::"gemma-3-270m"
);
"""


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PLANE_DATABASE_URL": database_url,
        # the gateway logs in as the plane's role: it reads keys and the catalog, writes nothing
        "PLANE_DATABASE_URL_PLANE": plane_role_url(role="plane"),
        "PLANE_FLEET_FILE": str(SEED / "fleet.yaml"),
        "PLANE_BUDGETS_FILE": str(SEED / "budgets.yaml"),
        "PLANE_PRINCIPALS_FILE": str(REPO / "config" / "principals.yaml"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }


@pytest.fixture(scope="module")
def embeddings_runtime() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.embedding_server", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/v1/models", seconds=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _config(llama: str, embedder: str) -> dict:
    return {
        "probe_interval_s": 0.5,
        "models": [
            {"name": "gemma-3-270m-q8", "kind": "chat", "equivalents": ["gemma-3-270m"]},
            {"name": "gemma-3-270m", "kind": "chat"},
            {"name": EMBEDDER, "kind": "embedding"},
        ],
        "endpoints": [
            {
                "id": "eu-fra-gemma",
                "cluster": "eu-fra-a10",
                "gpu_type": "A10",
                "runtime": "llama.cpp",
                "url": llama,
                "models": ["gemma-3-270m"],
                "slots": 2,
            },
            {
                "id": "eu-fra-minilm",
                "cluster": "eu-fra-a10",
                "gpu_type": "A10",
                "runtime": "sentence-transformers",
                "url": embedder,
                "models": [EMBEDDER],
                "slots": 4,
            },
        ],
        # the copilot's default SLO no endpoint can meet: without a header it is not served
        "teams": [
            {"team": "customer-support", "priority": 200, "slo_ttft_ms": 1},
            {"team": "media-ml", "priority": 50},
        ],
    }


@pytest.fixture
def served(runtime, embeddings_runtime, database_url, tmp_path) -> Iterator[tuple[str, dict]]:  # noqa: F811
    """`plane serve` running; yields its URL and an API key per principal."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies)
    (policies / "serving.cedar").write_text(FORBID_MEDIA)
    config = tmp_path / "serving.yaml"
    config.write_text(yaml.safe_dump(_config(runtime, embeddings_runtime)))
    keys = {}
    with psycopg.connect(database_url) as conn:
        catalog_store.ensure_schema(conn)
        for model in ("gemma-3-270m", "gemma-3-270m-q8", EMBEDDER):
            record = factory.record(model, "INTERNAL", "EU")
            catalog_store.upsert_entry(conn, CatalogEntry(record, "customer-support"))
        for principal in ("support-copilot", "media-tagger"):
            keys[principal] = credentials.issue(conn, principal)[1]
        conn.commit()
    port = free_port()
    args = ["--config", str(config), "--policies", str(policies), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "plane_cli.main", "serve", *args, "--port", str(port)],
        cwd=REPO,
        env=_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_answering(f"{url}/healthz", seconds=60)
        except TimeoutError:
            proc.kill()
            pytest.fail(f"plane serve did not start: {proc.communicate()[0]}")
        for _ in range(100):  # until its probe trusts both runtimes
            if httpx.get(f"{url}/healthz").json()["trusted"] == 2:
                break
            time.sleep(0.1)
        yield url, keys
    finally:
        proc.terminate()
        proc.wait(10)
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "DELETE FROM governance.catalog WHERE dataset_id = ANY(%s)",
                (["gemma-3-270m", "gemma-3-270m-q8", EMBEDDER],),
            )
            conn.commit()


def _headers(key: str, **more: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **more}


def test_plane_serve_serves_chat_and_embeddings_governed_and_placed(served) -> None:
    url, keys = served
    copilot = _headers(keys["support-copilot"], **{"x-slo-ttft-ms": "60000"})
    chat = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]}
    chat["max_tokens"] = 8
    health = httpx.get(f"{url}/healthz").json()
    assert health == {"status": "ok", "endpoints": 2, "trusted": 2}

    reply = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=copilot, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-plane-endpoint"] == "eu-fra-gemma"
    assert reply.headers["x-plane-model"] == "gemma-3-270m"
    assert reply.json()["usage"]["completion_tokens"] > 0

    streamed = httpx.post(
        f"{url}/v1/chat/completions", json={**chat, "stream": True}, headers=copilot, timeout=60
    )
    assert streamed.status_code == 200 and "data: " in streamed.text

    # a request for the Q8 build is answered by its allowed equivalent, and says so
    q8 = httpx.post(
        f"{url}/v1/chat/completions",
        json={**chat, "model": "gemma-3-270m-q8"},
        headers=copilot,
        timeout=60,
    )
    assert q8.status_code == 200, q8.text
    assert q8.headers["x-plane-model"] == "gemma-3-270m"

    # embeddings: forwarded to the embedding runtime, placed by the same engine, usage counted
    texts = ["Where is my order?", "Refund to my account"]
    emb = httpx.post(
        f"{url}/v1/embeddings",
        json={"model": EMBEDDER, "input": texts},
        headers=copilot,
        timeout=60,
    )
    assert emb.status_code == 200, emb.text
    assert emb.headers["x-plane-endpoint"] == "eu-fra-minilm"
    body = emb.json()
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 384
    assert body["usage"]["prompt_tokens"] > len(texts)

    # each model on its own paths; an unknown model is not served
    wrong = httpx.post(f"{url}/v1/embeddings", json={**chat, "input": "x"}, headers=copilot)
    assert wrong.status_code == 400 and "chat model" in wrong.text
    wrong = httpx.post(
        f"{url}/v1/chat/completions", json={**chat, "model": EMBEDDER}, headers=copilot
    )
    assert wrong.status_code == 400 and "embedding model" in wrong.text
    unknown = httpx.post(
        f"{url}/v1/chat/completions", json={**chat, "model": "gpt-4o"}, headers=copilot
    )
    assert unknown.status_code == 404
    assert httpx.post(f"{url}/v1/chat/completions", json=chat).status_code == 401
    for slo in ("abc", "0", "-5", "nan", "inf"):
        bad = httpx.post(
            f"{url}/v1/chat/completions",
            json=chat,
            headers=_headers(keys["support-copilot"], **{"x-slo-ttft-ms": slo}),
        )
        assert bad.status_code == 400 and "x-slo-ttft-ms" in bad.text, (slo, bad.text)
    streamed = httpx.post(
        f"{url}/v1/embeddings",
        json={"model": EMBEDDER, "input": "x", "stream": True},
        headers=copilot,
    )
    assert streamed.status_code == 400


def test_the_teams_default_slo_applies_without_a_header(served) -> None:
    url, keys = served
    chat = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]}
    refused = httpx.post(
        f"{url}/v1/chat/completions", json=chat, headers=_headers(keys["support-copilot"])
    )
    assert refused.status_code == 403, refused.text
    assert "failed: slo:" in refused.json()["error"]["message"]
    assert "x-plane-endpoint" not in refused.headers


def test_a_team_the_policies_forbid_a_model_gets_403_and_no_equivalent(served) -> None:
    url, keys = served
    tagger = _headers(keys["media-tagger"], **{"x-slo-ttft-ms": "60000"})
    chat = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]}
    denied = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=tagger)
    assert denied.status_code == 403
    message = denied.json()["error"]["message"]
    assert "media-tagger may not use Model::gemma-3-270m" in message
    assert "forbid: media-ml-not-gemma" in message and "[policy sha256:" in message
    # allowed the Q8 build, but not its only equivalent: never answered by the forbidden model
    q8 = httpx.post(
        f"{url}/v1/chat/completions", json={**chat, "model": "gemma-3-270m-q8"}, headers=tagger
    )
    assert q8.status_code == 403 and "x-plane-model" not in q8.headers, q8.text
    assert "media-tagger may not use its equivalents ['gemma-3-270m']" in q8.text


def test_plane_serve_refuses_an_endpoint_on_a_pool_the_fleet_lacks(database_url, tmp_path) -> None:
    doc = _config("http://127.0.0.1:1", "http://127.0.0.1:2")
    doc["endpoints"][0]["gpu_type"] = "H100-80GB"
    config = tmp_path / "serving.yaml"
    config.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "plane_cli.main", "serve", "--config", str(config)],
        cwd=REPO,
        env=_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert (
        f"{config}: endpoints[0] (eu-fra-gemma).gpu_type: 'H100-80GB' is not a GPU pool of "
        "cluster eu-fra-a10" in done.stderr
    )


def test_the_gateway_plane_serve_builds_counts_usage_and_charges_the_team(
    runtime,  # noqa: F811
    embeddings_runtime,
    database_url,
    tmp_path,
    monkeypatch,
) -> None:
    """`build_gateway` in this process (the same one `plane serve` runs), so its counters can be
    read: an embedding request's tokens, as the runtime counted them, go to the caller's team,
    and its GPU time is charged to the team's budget."""
    import argparse

    from plane_cli.serve import build_gateway
    from tests.integration.test_gateway import _serve

    for name, value in _env(database_url).items():
        if name.startswith("PLANE_"):
            monkeypatch.setenv(name, value)
    config = tmp_path / "serving.yaml"
    config.write_text(yaml.safe_dump(_config(runtime, embeddings_runtime)))
    with psycopg.connect(database_url) as conn:
        catalog_store.ensure_schema(conn)
        record = factory.record(EMBEDDER, "INTERNAL", "EU")
        catalog_store.upsert_entry(conn, CatalogEntry(record, "customer-support"))
        key = credentials.issue(conn, "support-copilot")[1]
        conn.commit()
    try:
        args = argparse.Namespace(config=str(config), policies=None)
        gateway, _ = build_gateway(args)
        assert gateway.access is not None and gateway.kinds[EMBEDDER] == "embedding"
        for url in _serve(gateway):
            reply = httpx.post(
                f"{url}/v1/embeddings",
                json={"model": EMBEDDER, "input": "Where is my order?"},
                headers=_headers(key, **{"x-slo-ttft-ms": "60000"}),
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
            tokens = reply.json()["usage"]["prompt_tokens"]
            assert gateway.usage_tokens == {"customer-support": tokens}
            assert gateway.spent_usd["customer-support"] > 0
            assert gateway.reserved_usd["customer-support"] == pytest.approx(0.0, abs=1e-12)
    finally:
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM governance.catalog WHERE dataset_id = %s", (EMBEDDER,))
            conn.commit()
