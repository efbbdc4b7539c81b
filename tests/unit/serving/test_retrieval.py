"""The gateway's retrieval step: what a body may ask, and what the runtime is given."""

import pytest

from data_plane.vector_store import SearchHit
from serving.retrieval import (
    RetrievalAsk,
    RetrievalRequestError,
    context_datasets,
    retrieval_ask,
    with_context,
)


def _hit(dataset: str, text: str) -> SearchHit:
    return SearchHit("c", dataset, "r", text, "PII", "EU", "t", True, 0.9)


def test_a_body_without_retrieval_asks_for_none() -> None:
    assert retrieval_ask({"model": "m"}) is None
    assert retrieval_ask({"retrieval": {"query": "refund"}}) == RetrievalAsk("refund", 4)


@pytest.mark.parametrize(
    ("retrieval", "field"),
    [
        ("refund", "retrieval:"),
        ({"k": 2}, "retrieval.query"),
        ({"query": "  "}, "retrieval.query"),
        ({"query": "q", "k": 0}, "retrieval.k"),
        ({"query": "q", "k": 21}, "retrieval.k"),
        ({"query": "q", "k": True}, "retrieval.k"),
        ({"query": "q", "datasets": ["x"]}, "unknown field(s) datasets"),
    ],
)
def test_a_malformed_retrieval_is_refused_naming_the_field(retrieval, field) -> None:
    with pytest.raises(RetrievalRequestError, match=field.replace("(", r"\(").replace(")", r"\)")):
        retrieval_ask({"retrieval": retrieval})


def test_the_context_prefixes_the_last_user_turn_and_the_field_is_dropped() -> None:
    hits = [_hit("support_tickets", "refund to IBAN"), _hit("faq", "five days")]
    body = {
        "model": "m",
        "retrieval": {"query": "q"},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "Where is my refund?"},
        ],
    }
    out = with_context(body, hits)
    assert "retrieval" not in out and "retrieval" in body  # the caller's body is not changed
    assert out["messages"][:2] == body["messages"][:2]
    last = out["messages"][2]["content"]
    assert last.startswith("Context:\n[support_tickets] refund to IBAN\n[faq] five days")
    assert last.endswith("Where is my refund?")
    assert context_datasets(hits) == ("faq", "support_tickets")


def test_a_completion_prompt_gets_the_context_and_no_hits_change_nothing_else() -> None:
    out = with_context({"prompt": "Q?", "retrieval": {"query": "q"}}, [_hit("d", "t")])
    assert out == {"prompt": "Context:\n[d] t\n\nQ?"}
    assert with_context({"prompt": "Q?", "retrieval": {}}, []) == {"prompt": "Q?"}
