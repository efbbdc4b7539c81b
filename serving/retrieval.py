"""The gateway's retrieval step: a request that asks the gateway to retrieve its context carries
the data of what was retrieved, whatever it declares.

A caller adds ``"retrieval": {"query": "...", "k": 4}`` to an OpenAI request body (``extra_body``
in the OpenAI clients). The gateway then

1. searches the governed stores as the API key's principal (`data_plane.retrieval.Retriever`:
   Cedar decides which datasets it may read, and with the key as credential the stores' search
   function checks the principal's read grants in the database again);
2. gives the runtime the chunks found as context, before the text of the last user message of
   a chat (not as a system message: some chat formats, Gemma's among them, drop those) or of a
   completion's prompt, and never the ``retrieval`` field, which runtimes do not know;
3. adds the datasets of those chunks to the datasets the request carries, so the placement's
   residency and compliance rules see the data the completion will actually hold: a question
   answered from EU personal data is placed like EU personal data even when the caller declared
   nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_plane.vector_store import SearchHit

MAX_K = 20


class RetrievalRequestError(ValueError):
    """The body's ``retrieval`` field is malformed (the message names the field)."""


@dataclass(frozen=True)
class RetrievalAsk:
    query: str
    k: int


def retrieval_ask(body: dict[str, Any]) -> RetrievalAsk | None:
    """The retrieval a request body asks for, or None. Malformed: `RetrievalRequestError`."""
    if "retrieval" not in body:
        return None
    asked = body["retrieval"]
    if not isinstance(asked, dict):
        raise RetrievalRequestError("retrieval: must be an object with a query")
    unknown = sorted(set(asked) - {"query", "k"})
    if unknown:
        raise RetrievalRequestError(f"retrieval: unknown field(s) {', '.join(unknown)}")
    query = asked.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RetrievalRequestError("retrieval.query: must be a non-empty string")
    k = asked.get("k", 4)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise RetrievalRequestError(f"retrieval.k: must be a whole number from 1 to {MAX_K}")
    return RetrievalAsk(query, k)


def context_datasets(hits: Sequence[SearchHit]) -> tuple[str, ...]:
    """The datasets a request holds once ``hits`` are its context (sorted, once each)."""
    return tuple(sorted({h.dataset_id for h in hits}))


def with_context(body: dict[str, Any], hits: Sequence[SearchHit]) -> dict[str, Any]:
    """The body the runtime gets: the chunks as context, without the ``retrieval`` field."""
    out = {k: v for k, v in body.items() if k != "retrieval"}
    if not hits:
        return out
    context = "Context:\n" + "\n".join(f"[{h.dataset_id}] {h.text}" for h in hits)
    messages = out.get("messages")
    if isinstance(messages, list):
        users = [
            i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"
        ]
        if users and isinstance(messages[users[-1]].get("content"), str):
            last = messages[users[-1]]
            out["messages"] = [
                *messages[: users[-1]],
                {**last, "content": f"{context}\n\n{last['content']}"},
                *messages[users[-1] + 1 :],
            ]
        else:  # no plain-text user turn to prefix: the context comes first, as its own turn
            out["messages"] = [{"role": "user", "content": context}, *messages]
    elif isinstance(out.get("prompt"), str):
        out["prompt"] = f"{context}\n\n{out['prompt']}"
    return out
