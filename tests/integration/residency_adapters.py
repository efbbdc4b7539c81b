"""A llama.cpp runtime adapter over real processes, for the residency tests: one
``python -m llama_cpp.server`` per loaded model on loopback (llama.cpp has no sleep: a model asked
to sleep is stopped). The node's memory is enforced as a real node would: a load that would take
more than ``budget_gb`` beside what is running fails, so a plan applied in the wrong order
(load before unload) fails here as it would run out of memory there."""

from __future__ import annotations

import os
import subprocess

from serving.runtimes.base import LOADED, ModelSpec
from tests.loopback import LLAMA_ENV, free_port, llama_server_argv, wait_until_answering


class LlamaCppProcessAdapter:
    runtime = "llama.cpp"
    supports_sleep = False

    def __init__(self, budget_gb: float, model_gb: float, start_timeout_s: float = 60.0) -> None:
        self.budget_gb = budget_gb
        self.model_gb = model_gb
        self.start_timeout_s = start_timeout_s
        self.procs: dict[str, tuple[subprocess.Popen, int]] = {}
        self.calls: list[str] = []

    def states(self) -> dict[str, str]:
        return {m: LOADED for m, (p, _) in self.procs.items() if p.poll() is None}

    def url(self, model: str) -> str | None:
        found = self.procs.get(model)
        return f"http://127.0.0.1:{found[1]}/v1" if found and found[0].poll() is None else None

    def load(self, model: ModelSpec) -> None:
        self.calls.append(f"load {model.name}")
        if model.name in self.states():
            return
        if (len(self.states()) + 1) * self.model_gb > self.budget_gb:
            raise MemoryError(f"{model.name}: would exceed the node's {self.budget_gb} GB")
        port = free_port()
        extra = ("--model_alias", model.name, *model.args)
        proc = subprocess.Popen(
            llama_server_argv(model.source, port, n_ctx=model.context_tokens, extra=extra),
            env={**os.environ, **LLAMA_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs[model.name] = (proc, port)
        url = f"http://127.0.0.1:{port}/v1/models"
        try:
            wait_until_answering(url, self.start_timeout_s, alive=lambda: proc.poll() is None)
        except RuntimeError:
            raise RuntimeError(
                f"{model.name}: llama.cpp server exited with {proc.returncode}"
            ) from None
        except TimeoutError:
            self.unload(model.name)
            raise TimeoutError(
                f"{model.name}: not answering after {self.start_timeout_s} s"
            ) from None

    def sleep(self, model: str) -> None:
        self.unload(model)

    def unload(self, model: str) -> None:
        self.calls.append(f"unload {model}")
        found = self.procs.pop(model, None)
        if found is not None:
            found[0].terminate()
            found[0].wait(10)

    def close(self) -> None:
        for model in list(self.procs):
            self.unload(model)
