"""Ollama: one server per node that loads and unloads models on request.

The contract used, from Ollama's API documentation (ollama/ollama ``docs/api.md``, commit
01e52d24: "Generate a completion" (load / unload a model), "List Running Models", "List Local
Models", "Model names"):

* ``POST /api/generate`` with ``{"model": m}`` and no prompt loads ``m``; ``keep_alive`` says
  how long it stays (a negative number: until told otherwise), ``keep_alive: 0`` unloads it
  (``done_reason: "unload"``). ``options.num_ctx`` is the context it is loaded with.
* ``GET /api/ps``: the loaded models; ``GET /api/tags``: the pulled ones.
* A name without a tag means ``:latest``.

Ollama has no sleep: sleeping is unloading (``supports_sleep = False``). A model that is not
pulled is an error before anything is sent: the plane never makes a node download weights at
request or plan time (`ollama pull` is an operator's deliberate step). Requests reach Ollama's
OpenAI-compatible API (``/v1/...``) with the Ollama tag as ``model``, so an endpoint's model
name should be the tag (`ModelSpec.name == ModelSpec.source`); the adapter reports loaded
models by the name they were loaded under.
"""

from __future__ import annotations

import httpx

from serving.runtimes.base import LOADED, ModelSpec

KEEP_LOADED = -1  # Ollama: a negative keep_alive keeps the model until it is unloaded


def tag(name: str) -> str:
    """Ollama's full name for ``name`` (``llama3.2`` is ``llama3.2:latest``)."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class OllamaAdapter:
    """The Ollama server of one node."""

    runtime = "ollama"
    supports_sleep = False

    def __init__(
        self,
        url: str = "http://127.0.0.1:11434",
        *,
        load_timeout_s: float = 600.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.load_timeout_s = load_timeout_s
        self.client = client or httpx.Client(timeout=10.0)
        self._names: dict[str, str] = {}  # Ollama tag -> the name it was loaded under

    def _list(self, path: str) -> list[str]:
        reply = self.client.get(f"{self.base}{path}")
        reply.raise_for_status()
        return [tag(m.get("model") or m["name"]) for m in reply.json().get("models") or []]

    def states(self) -> dict[str, str]:
        """What ``/api/ps`` lists, by the name each was loaded under; an Ollama that does not
        answer holds nothing that can be served (cold), never what it held last."""
        try:
            loaded = self._list("/api/ps")
        except (httpx.HTTPError, ValueError, KeyError):
            return {}
        return {self._names.get(t, t): LOADED for t in loaded}

    def url(self, model: str) -> str | None:
        """Ollama's base URL (its OpenAI API is under ``/v1``) while ``model`` is loaded."""
        return self.base if model in self.states() else None

    def pulled(self) -> list[str]:
        """The models pulled on this node (``/api/tags``)."""
        return self._list("/api/tags")

    def load(self, model: ModelSpec) -> None:
        """Load ``model.source`` to stay (``keep_alive: -1``) with the context the planner
        counted; an error naming the model when it is not pulled or Ollama refuses."""
        wanted = tag(model.source)
        pulled = self.pulled()
        if wanted not in pulled:
            raise ValueError(
                f"model {model.name}: source: {model.source!r} is not pulled on the Ollama at "
                f"{self.base} (pulled: {', '.join(pulled) or 'none'}); the plane does not "
                f"download models at run time: run `ollama pull {model.source}` on the node"
            )
        body = {
            "model": model.source,
            "keep_alive": KEEP_LOADED,
            "stream": False,
            "options": {"num_ctx": model.context_tokens},
        }
        reply = self.client.post(
            f"{self.base}/api/generate", json=body, timeout=self.load_timeout_s
        )
        if reply.status_code != 200:
            raise RuntimeError(
                f"model {model.name}: Ollama at {self.base} refused to load {model.source!r}: "
                f"{reply.status_code} {_error(reply)}"
            )
        self._names[wanted] = model.name
        if model.name not in self.states():
            raise RuntimeError(
                f"model {model.name}: Ollama at {self.base} answered the load of "
                f"{model.source!r} but /api/ps does not list it"
            )

    def sleep(self, model: str) -> None:
        """Ollama cannot sleep: the model is unloaded (cold)."""
        self.unload(model)

    def unload(self, model: str) -> None:
        """``keep_alive: 0``; a model that is not loaded (or not even pulled) is cold already."""
        source = next((t for t, n in self._names.items() if n == model), model)
        if tag(source) not in self._list("/api/ps"):
            return
        body = {"model": source, "keep_alive": 0, "stream": False}
        reply = self.client.post(f"{self.base}/api/generate", json=body)
        if reply.status_code != 200:
            raise RuntimeError(
                f"model {model}: Ollama at {self.base} refused to unload {source!r}: "
                f"{reply.status_code} {_error(reply)}"
            )


def _error(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("error", reply.text[:300]))
    except ValueError:
        return reply.text[:300]
