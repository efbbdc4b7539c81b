"""API keys the gateway checked a moment ago, remembered for a short, stated time.

Checking a key (`data_plane.credentials.authenticate`) is a PostgreSQL round trip; the gateway
would pay it on every request. `KeyCache` remembers a key that authenticated, with its principal,
for at most ``ttl_s`` seconds (``key_cache_s`` of ``config/serving.yaml``, 5 s unless set; 0
checks every request against the database):

* **the bound**: a key revoked at time *t* is refused by every request that arrives after
  *t* + ``ttl_s``. An answer is remembered from the moment its check *started* (the database
  answered as of some moment after that), so nothing is trusted for longer than ``ttl_s`` after
  the database last said so;
* a key never seen, one whose time ran out, and one that was refused are always checked against
  the database: refusals are never remembered, so a key issued a moment ago works at once;
* keys are remembered by their SHA-256, never as sent; at most ``max_keys`` of them (then the
  cache starts again: every key is checked once more).

`cached` answers from memory only (no I/O: safe on the event loop); `check` asks the database
(blocking: the gateway runs it in a thread) and remembers what it said.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

DEFAULT_TTL_S = 5.0
MAX_KEYS = 100_000


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class KeyCache:
    """API key -> principal name, each remembered at most ``ttl_s`` seconds after its check."""

    def __init__(
        self,
        authenticate: Callable[[str | None], str],
        ttl_s: float = DEFAULT_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if not 0 <= ttl_s < float("inf"):
            raise ValueError(f"key_cache_s: must be a number of seconds >= 0, got {ttl_s!r}")
        self.authenticate = authenticate
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_keys = max_keys
        self._known: dict[bytes, tuple[str, float]] = {}  # digest -> (principal, trusted until)
        self.checks = 0  # keys checked against the database (the rest were remembered)

    def cached(self, token: str | None) -> str | None:
        """The principal of ``token`` if it authenticated less than ``ttl_s`` ago, else None."""
        if not token or self.ttl_s <= 0:
            return None
        digest = _digest(token)
        found = self._known.get(digest)
        if found is None:
            return None
        principal, until = found
        if self.clock() >= until:
            self._known.pop(digest, None)
            return None
        return principal

    def check(self, token: str | None) -> str:
        """Ask the database (``authenticate``): the principal, remembered for ``ttl_s``; its
        refusal is raised and nothing is remembered (a remembered answer is forgotten)."""
        started = self.clock()
        self.checks += 1
        try:
            principal = self.authenticate(token)
        except BaseException:
            if token:
                self._known.pop(_digest(token), None)
            raise
        if token and self.ttl_s > 0:
            if len(self._known) >= self.max_keys:
                self._known.clear()
            self._known[_digest(token)] = (principal, started + self.ttl_s)
        return principal

    def __call__(self, token: str | None) -> str:
        """The principal of ``token``: remembered, else checked (blocking)."""
        found = self.cached(token)
        return found if found is not None else self.check(token)
