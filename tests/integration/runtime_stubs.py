"""Loopback servers implementing the documented HTTP contracts of runtimes that cannot run here
(no GPU for vLLM, no Ollama binary), for the adapters' tests. They keep the state the contract
implies (sleeping, loaded, pulled) so a test sees what the adapter really did to them.

vLLM (vllm-project/vllm ``vllm/entrypoints/serve/sleep/api_router.py``, ``docs/features/
sleep_mode.md``): ``POST /sleep?level=``, ``POST /wake_up``, ``GET /is_sleeping`` exist only with
``VLLM_SERVER_DEV_MODE=1`` (404 otherwise, FastAPI's ``{"detail": "Not Found"}``); ``/sleep``
may answer before the engine is asleep (the source's FIXME), which the stub reproduces by
falling asleep a moment after answering; completions answer 503 while sleeping; ``/health``,
``/v1/models``, ``/metrics``.

Ollama (ollama/ollama ``docs/api.md``): ``POST /api/generate`` without a prompt loads the model
(``done_reason: "load"``) or, with ``keep_alive: 0``, unloads it (``done_reason: "unload"``);
a model not pulled is 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``;
``GET /api/ps`` lists loaded models, ``GET /api/tags`` pulled ones; names without a tag mean
``:latest``.

Run as a program, ``python runtime_stubs.py vllm --model M --served-model-name N --port P ...``
stands in for ``vllm serve`` (same arguments, same environment variable), so the adapter's
local-process backend is tested on its real code path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ASLEEP_AFTER_S = 0.3  # /sleep answers first, the engine is asleep this much later


class VllmState:
    """One vLLM server: its model, dev mode, sleep mode, and what the stub records."""

    def __init__(
        self,
        model: str,
        served: str | None = None,
        *,
        dev_mode: bool = True,
        sleep_mode: bool = True,
    ) -> None:
        self.model = model
        self.served = served or model
        self.dev_mode = dev_mode
        self.sleep_mode = sleep_mode
        self.sleeping = False
        self.running = 0
        self.waiting = 0
        self.calls: list[str] = []


class OllamaState:
    """One Ollama server: what is pulled, what is loaded, and the requests it got."""

    def __init__(self, pulled: list[str]) -> None:
        self.pulled = {_tag(t) for t in pulled}
        self.loaded: dict[str, int] = {}  # tag -> num_ctx it was loaded with
        self.requests: list[dict] = []


def _tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class _Handler(BaseHTTPRequestHandler):
    state: object

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: object | None = None, text: str | None = None) -> None:
        data = (
            text.encode()
            if text is not None
            else b""
            if body is None
            else json.dumps(body).encode()
        )
        self.send_response(code)
        self.send_header("content-type", "text/plain" if text is not None else "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")


class _VllmHandler(_Handler):
    state: VllmState

    def do_GET(self) -> None:
        s, path = self.state, urlsplit(self.path).path
        s.calls.append(f"GET {path}")
        if path == "/health":
            self._send(200)
        elif path == "/v1/models":
            model = {"id": s.served, "object": "model", "owned_by": "vllm", "root": s.model}
            self._send(200, {"object": "list", "data": [model]})
        elif path == "/is_sleeping" and s.dev_mode:
            self._send(200, {"is_sleeping": s.sleeping})
        elif path == "/metrics":
            label = f'{{engine="0",model_name="{s.served}"}}'
            self._send(
                200,
                text=(
                    "# HELP vllm:num_requests_running Number of requests in model execution.\n"
                    "# TYPE vllm:num_requests_running gauge\n"
                    f"vllm:num_requests_running{label} {float(s.running)}\n"
                    "# TYPE vllm:num_requests_waiting gauge\n"
                    f"vllm:num_requests_waiting{label} {float(s.waiting)}\n"
                ),
            )
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        s, url = self.state, urlsplit(self.path)
        s.calls.append(f"POST {url.path}{'?' + url.query if url.query else ''}")
        if url.path in ("/sleep", "/wake_up") and not s.dev_mode:
            self._send(404, {"detail": "Not Found"})
        elif url.path == "/sleep":
            level = int(parse_qs(url.query).get("level", ["1"])[0])
            if not s.sleep_mode or level not in (1, 2):
                self._send(500, {"error": "Sleep mode is not enabled"})
                return
            threading.Timer(ASLEEP_AFTER_S, setattr, (s, "sleeping", True)).start()
            self._send(200)
        elif url.path == "/wake_up":
            s.sleeping = False
            self._send(200)
        elif url.path in ("/v1/chat/completions", "/v1/completions"):
            body = self._body()
            if s.sleeping:
                self._send(503, {"error": "The model is sleeping"})
            elif body.get("model") != s.served:
                self._send(
                    404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
                )
            else:
                message = {"role": "assistant", "content": "ok"}
                self._send(200, {"object": "chat.completion", "choices": [{"message": message}]})
        else:
            self._send(404, {"detail": "Not Found"})


class _OllamaHandler(_Handler):
    state: OllamaState

    def _models(self, tags: object) -> list[dict]:
        return [{"name": t, "model": t, "size": 1, "digest": "0" * 64} for t in sorted(tags)]

    def do_GET(self) -> None:
        s, path = self.state, urlsplit(self.path).path
        if path == "/":
            self._send(200, text="Ollama is running")
        elif path == "/api/tags":
            self._send(200, {"models": self._models(s.pulled)})
        elif path == "/api/ps":
            models = self._models(s.loaded)
            for m in models:
                m.update(size_vram=1, expires_at="2318-01-01T00:00:00Z")
            self._send(200, {"models": models})
        else:
            self._send(404, text="404 page not found")

    def do_POST(self) -> None:
        s, path = self.state, urlsplit(self.path).path
        if path != "/api/generate":
            self._send(404, text="404 page not found")
            return
        body = self._body()
        s.requests.append(body)
        name = body.get("model")
        if not name:
            self._send(400, {"error": "model is required"})
            return
        tag = _tag(name)
        if tag not in s.pulled:
            self._send(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        keep_alive = body.get("keep_alive")
        reply = {"model": name, "created_at": datetime.now(UTC).isoformat(), "response": ""}
        if keep_alive == 0 or keep_alive == "0":
            s.loaded.pop(tag, None)
            self._send(200, {**reply, "done": True, "done_reason": "unload"})
        elif body.get("prompt"):
            self._send(400, {"error": "the stub generates nothing"})
        else:
            s.loaded[tag] = int((body.get("options") or {}).get("num_ctx", 2048))
            self._send(200, {**reply, "done": True, "done_reason": "load"})


@contextmanager
def serve(state: VllmState | OllamaState) -> Iterator[str]:
    """Serve ``state``'s contract on a free loopback port in a thread; yields the base URL."""
    base = _VllmHandler if isinstance(state, VllmState) else _OllamaHandler
    handler = type("Handler", (base,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str]) -> None:
    """``vllm`` stand-in: the arguments of ``vllm serve`` that the adapter passes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--max-num-seqs", type=int)
    parser.add_argument("--enable-sleep-mode", action="store_true")
    parser.add_argument("--fail", action="store_true")  # a server that dies while loading
    args = parser.parse_args(argv)
    if args.fail:
        print(f"OSError: {args.model} does not appear to have a file named config.json")
        sys.exit(1)
    state = VllmState(
        args.model,
        args.served_model_name,
        dev_mode=os.environ.get("VLLM_SERVER_DEV_MODE") == "1",
        sleep_mode=args.enable_sleep_mode,
    )
    handler = type("Handler", (_VllmHandler,), {"state": state})
    ThreadingHTTPServer((args.host, args.port), handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
