"""Principals are authenticated (issue 13, item 3): the CLI takes who is calling from an API key
(stored hashed, mapped to a principal), never from a free argument. Real PostgreSQL, the real
`plane` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from data_plane import credentials

REPO = Path(__file__).resolve().parents[2]
PLANE = str(Path(sys.executable).parent / "plane")
SEED = REPO / "examples" / "seed_scenario"


def plane(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PLANE_API_KEY"}
    if key is not None:
        env["PLANE_API_KEY"] = key
    return subprocess.run(
        [PLANE, *args], cwd=SEED, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_keys_are_stored_hashed_and_map_to_their_principal(
    database_url: str, fresh_schema: None
) -> None:
    with psycopg.connect(database_url) as conn:
        key_id, token = credentials.issue(conn, "support-copilot")
        conn.commit()
        stored = conn.execute(
            "SELECT key_hash, principal FROM governance.api_keys WHERE key_id = %s", (key_id,)
        ).fetchone()
        assert stored[1] == "support-copilot" and token not in stored[0]  # only a hash is kept
        assert credentials.authenticate(conn, token) == "support-copilot"
        for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), "rpk_nope_x", "", "x"):
            with pytest.raises(credentials.AuthenticationError):
                credentials.authenticate(conn, forged)
        assert credentials.revoke(conn, key_id)
        conn.commit()
        with pytest.raises(credentials.AuthenticationError, match="revoked"):
            credentials.authenticate(conn, token)


def test_the_cli_takes_the_principal_from_the_key_never_from_an_argument(
    database_url: str, fresh_schema: None, plane_db: str
) -> None:
    # `--principal` is gone: naming someone is not being them.
    named = plane("search", "refund", "--principal", "finance-assistant")
    assert named.returncode == 2 and "--principal" in named.stderr
    missing = plane("search", "refund to my IBAN")
    assert missing.returncode == 7 and "PLANE_API_KEY" in missing.stderr
    wrong = plane("search", "refund to my IBAN", key="rpk_0123456789ab_not-a-key")
    assert wrong.returncode == 7 and "not a valid API key" in wrong.stderr

    issued = plane("keys", "issue", "--principal", "anna.schmidt")
    assert issued.returncode == 0, issued.stderr
    token = next(w for w in issued.stdout.split() if w.startswith("rpk_"))
    queued = plane("request", "--requests", "requests.yaml", key=token)
    assert queued.returncode == 0, queued.stderr
    with psycopg.connect(plane_db) as conn:
        asked = {r[0] for r in conn.execute("SELECT payload->>'requested_by' FROM plane.requests")}
    assert asked == {"anna.schmidt"}
    unknown = plane("keys", "issue", "--principal", "mallory")
    assert unknown.returncode == 4 and "mallory" in unknown.stderr

    key_id = token.split("_")[1]
    assert plane("keys", "revoke", key_id).returncode == 0
    revoked = plane("request", "--requests", "requests.yaml", key=token)
    assert revoked.returncode == 7 and "revoked" in revoked.stderr
