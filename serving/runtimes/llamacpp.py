"""llama.cpp: one ``python -m llama_cpp.server`` process per model, owned by the node agent.

llama.cpp has no sleep mode: a model asked to sleep is stopped (cold), and the adapter says so
with ``supports_sleep = False`` so the planner does not count on a cheap wake. What it holds is
read from its live processes, so a server that crashed is cold at the next `states` call, not
loaded on the strength of having been started once.

Options (checked against ``python -m llama_cpp.server --help`` of llama-cpp-python 0.3.36):
``--model``, ``--model_alias`` (the name ``/v1/models`` reports and requests use), ``--n_ctx``,
``--host``, ``--port``, ``--chat_format``. This server has no ``--n_parallel``: it serves one
request at a time, so `ModelSpec.parallel_slots` above 1 is refused rather than silently
ignored (the endpoint's slots would otherwise promise concurrency that is not there).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from serving.runtimes.base import LOADED, ModelSpec
from serving.runtimes.process import ServerProcess, free_port

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


class LlamaCppAdapter:
    """The llama.cpp servers of one node, one process per loaded model."""

    runtime = "llama.cpp"
    supports_sleep = False

    def __init__(
        self,
        *,
        python: str = sys.executable,
        host: str = "127.0.0.1",
        start_timeout_s: float = 120.0,
        stop_grace_s: float = 10.0,
        threads: int | None = None,
    ) -> None:
        self.python = python
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.threads = threads
        self._servers: dict[str, tuple[ServerProcess, str]] = {}  # name -> (process, url)
        self._lock = threading.RLock()

    def argv(self, model: ModelSpec, port: int) -> list[str]:
        """The server's command line for ``model`` on ``port``."""
        argv = [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            model.source,
            "--model_alias",
            model.name,
            "--n_ctx",
            str(model.context_tokens),
            "--host",
            self.host,
            "--port",
            str(port),
        ]
        if self.threads is not None:
            argv += ["--n_threads", str(self.threads)]
        return argv + list(model.args)

    def states(self) -> dict[str, str]:
        """The models whose server process is alive; a crashed one is forgotten (cold)."""
        with self._lock:
            for name, (proc, _) in list(self._servers.items()):
                if not proc.alive:
                    log.warning(
                        "llama.cpp server of %s exited with code %s; its output ends with: %s",
                        name,
                        proc.proc.returncode,
                        proc.output_tail(500),
                    )
                    proc.stop(0)
                    del self._servers[name]
            return {name: LOADED for name in self._servers}

    def url(self, model: str) -> str | None:
        """The server's base URL (it answers ``/v1/...``) while its process is alive."""
        return self._servers[model][1] if model in self.states() else None

    def load(self, model: ModelSpec) -> None:
        """Start the model's server and return once ``/v1/models`` answers; a model already
        loaded is left as it is. Raises `ValueError` for a source that is not a GGUF file and
        `RuntimeStartError` (with the server's output) when the server dies or times out."""
        _check(model)
        with self._lock:
            if model.name in self.states():
                return
            port = free_port(self.host)
            url = f"http://{self.host}:{port}"
            proc = ServerProcess(
                self.argv(model, port),
                # OpenMP's spinning waiters would keep idle cores busy between requests
                env={"OMP_WAIT_POLICY": "PASSIVE"},
                what=f"llama.cpp server of {model.name}",
            )
            proc.wait_ready(f"{url}/v1/models", self.start_timeout_s)
            self._servers[model.name] = (proc, url)

    def sleep(self, model: str) -> None:
        """llama.cpp cannot sleep: the model is stopped (cold)."""
        self.unload(model)

    def unload(self, model: str) -> None:
        """Stop the model's server (SIGTERM, SIGKILL after the grace period); unknown is a
        no-op, since cold is what was asked."""
        with self._lock:
            found = self._servers.pop(model, None)
        if found is not None:
            found[0].stop(self.stop_grace_s)

    def close(self) -> None:
        """Stop every server (the agent exiting must not leave orphans holding memory)."""
        for name in list(self._servers):
            self.unload(name)


def _check(model: ModelSpec) -> None:
    """A clear error before a process is started for a file that cannot be served."""
    path = Path(model.source)
    if not path.is_file():
        raise ValueError(f"model {model.name}: source: no GGUF file at {model.source}")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ValueError(
                f"model {model.name}: source: {model.source} is not a GGUF file "
                "(it does not start with the GGUF magic)"
            )
    if model.parallel_slots != 1:
        raise ValueError(
            f"model {model.name}: parallel_slots: llama-cpp-python's server serves one request "
            f"at a time, got {model.parallel_slots}"
        )
    if model.context_tokens < 1:
        raise ValueError(f"model {model.name}: context_tokens: must be at least 1")
