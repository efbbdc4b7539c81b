"""vLLM: one OpenAI-compatible server per model, started and stopped as a local process or as a
Kubernetes Deployment + Service, slept and woken through its sleep-mode endpoints.

The HTTP contract used here, checked against vLLM's source and docs (vllm-project/vllm, commit
09cb327f: ``vllm/entrypoints/serve/sleep/api_router.py`` and ``docs/features/sleep_mode.md``):

* ``POST /sleep?level=1``: level 1 offloads the weights to CPU memory and drops the KV cache
  (level 2 drops the weights too, so a wake would need them reloaded: not a sleep the planner
  can count on, hence refused here). It answers 200 with no body, and the source notes it may
  answer before the engine is asleep, so the adapter reads ``/is_sleeping`` until it says so.
* ``POST /wake_up`` (optional ``tags``; none wakes everything): 200 with no body.
* ``GET /is_sleeping``: ``{"is_sleeping": bool}``.
* The three are attached only when the server runs with ``VLLM_SERVER_DEV_MODE=1`` (the router's
  ``attach_router`` returns early otherwise), so without it they are 404; sleeping also needs
  ``--enable-sleep-mode``. Both are set by the backends below.
* ``GET /health`` (200 when the engine is up), ``GET /v1/models`` (the served model names, also
  answered while sleeping; completions answer 503 while sleeping).
* ``GET /metrics``: Prometheus text with ``vllm:num_requests_running`` and
  ``vllm:num_requests_waiting`` (`VllmAdapter.queue`).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from serving.runtimes.base import LOADED, SLEEPING, ModelSpec
from serving.runtimes.process import RuntimeStartError, ServerProcess, free_port

DEV_MODE_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
PORT = 8000  # vLLM's default, the container's port on Kubernetes
MANAGED_BY = "reasoning-plane"
MODEL_ANNOTATION = "reasoning-plane/model"  # the served name (not always a valid label value)
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


class SleepModeUnavailable(RuntimeError):
    """The server has no sleep-mode endpoints (started without ``VLLM_SERVER_DEV_MODE=1``)."""


class VllmBackend(Protocol):
    """Where vLLM servers run: local processes or Kubernetes Deployments."""

    def start(self, model: ModelSpec) -> str:
        """Start a server for ``model`` and return its base URL (it may still be loading)."""
        ...

    def stop(self, name: str) -> None:
        """Stop the server of the model named ``name`` (none running is not an error)."""
        ...

    def servers(self) -> dict[str, str]:
        """Model name -> base URL of each server this backend runs now."""
        ...


def server_args(model: ModelSpec, port: int) -> list[str]:
    """vLLM's arguments for ``model``: the served name requests use, the context and the
    concurrent sequences the planner counted memory for, sleep mode on."""
    return [
        "--model",
        model.source,
        "--served-model-name",
        model.name,
        "--port",
        str(port),
        "--max-model-len",
        str(model.context_tokens),
        "--max-num-seqs",
        str(model.parallel_slots),
        "--enable-sleep-mode",
        *model.args,
    ]


class LocalVllm:
    """vLLM servers as child processes of the node agent, each on a free loopback port.
    ``command`` is how vLLM is run (``vllm serve`` by default)."""

    def __init__(
        self,
        *,
        command: Sequence[str] = ("vllm", "serve"),
        host: str = "127.0.0.1",
        start_timeout_s: float = 900.0,  # weights from disk plus CUDA graph capture
        stop_grace_s: float = 30.0,
    ) -> None:
        self.command = list(command)
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self._servers: dict[str, tuple[ServerProcess, str]] = {}
        self._lock = threading.RLock()

    def start(self, model: ModelSpec) -> str:
        port = free_port(self.host)
        url = f"http://{self.host}:{port}"
        argv = [*self.command, *server_args(model, port), "--host", self.host]
        proc = ServerProcess(argv, env=DEV_MODE_ENV, what=f"vLLM server of {model.name}")
        proc.wait_ready(f"{url}/health", self.start_timeout_s)
        with self._lock:
            self._servers[model.name] = (proc, url)
        return url

    def stop(self, name: str) -> None:
        with self._lock:
            found = self._servers.pop(name, None)
        if found is not None:
            found[0].stop(self.stop_grace_s)

    def servers(self) -> dict[str, str]:
        with self._lock:
            for name, (proc, _) in list(self._servers.items()):
                if not proc.alive:  # crashed: cold
                    proc.stop(0)
                    del self._servers[name]
            return {name: url for name, (_, url) in self._servers.items()}

    def close(self) -> None:
        """Stop every server."""
        for name in list(self._servers):
            self.stop(name)


def object_name(model: str) -> str:
    """A DNS-1035 label for ``model``'s Deployment and Service: ``vllm-`` and the name's
    letters and digits, cut to fit 63 characters, and a hash of the full name, so two models
    differing only in punctuation or past the cut never share objects."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:45].strip("-")
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"vllm-{slug}-{digest}" if slug else f"vllm-{digest}"


class KubernetesVllm:
    """vLLM servers as one Deployment and one ClusterIP Service per model in ``namespace``,
    applied through the Kubernetes Python client (``apps`` an ``AppsV1Api``, ``core`` a
    ``CoreV1Api``). Weights come from ``models_claim`` (a PersistentVolumeClaim mounted as the
    Hugging Face cache) with the hub offline: a model that is not there fails to start instead
    of being downloaded at run time."""

    def __init__(
        self,
        apps: Any,
        core: Any,
        *,
        namespace: str,
        image: str = "vllm/vllm-openai:v0.11.0",
        gpus: int = 1,
        models_claim: str | None = None,
        node_selector: Mapping[str, str] | None = None,
        service_url: Callable[[str, str], str] | None = None,
    ) -> None:
        if gpus < 1:
            raise ValueError(f"gpus: must be at least 1, got {gpus}")
        self.apps = apps
        self.core = core
        self.namespace = namespace
        self.image = image
        self.gpus = gpus
        self.models_claim = models_claim
        self.node_selector = dict(node_selector or {})
        # (object name, namespace) -> base URL; the cluster DNS name by default
        self.service_url = service_url or (
            lambda name, ns: f"http://{name}.{ns}.svc.cluster.local:{PORT}"
        )

    def labels(self, model: ModelSpec | str) -> dict[str, str]:
        name = model.name if isinstance(model, ModelSpec) else model
        return {
            "app.kubernetes.io/name": "vllm",
            "app.kubernetes.io/instance": object_name(name),
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

    def deployment(self, model: ModelSpec) -> dict[str, Any]:
        """The Deployment serving ``model``: one replica (``Recreate``: a rolling update would
        need a second set of GPUs), the GPUs as limits, ready when ``/health`` answers."""
        name = object_name(model.name)
        labels = self.labels(model)
        probe = {"httpGet": {"path": "/health", "port": "http"}}
        mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]  # NCCL across tensor-parallel GPUs
        volumes: list[dict[str, Any]] = [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
        ]
        if self.models_claim:
            mounts.append({"name": "models", "mountPath": "/root/.cache/huggingface"})
            volumes.append(
                {
                    "name": "models",
                    "persistentVolumeClaim": {"claimName": self.models_claim, "readOnly": True},
                }
            )
        pod: dict[str, Any] = {
            "containers": [
                {
                    "name": "vllm",
                    "image": self.image,
                    "args": server_args(model, PORT),
                    "env": [
                        {"name": k, "value": v}
                        for k, v in {**DEV_MODE_ENV, "HF_HUB_OFFLINE": "1"}.items()
                    ],
                    "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                    "resources": {
                        "limits": {GPU_RESOURCE: str(self.gpus)},
                        "requests": {GPU_RESOURCE: str(self.gpus)},
                    },
                    # loading weights takes minutes: the startup probe allows 15, then the
                    # readiness probe takes the pod out of its Service when it stops answering
                    "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 90},
                    "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
                    "volumeMounts": mounts,
                }
            ],
            "tolerations": [GPU_TOLERATION],
            "volumes": volumes,
        }
        if self.node_selector:
            pod["nodeSelector"] = self.node_selector
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {MODEL_ANNOTATION: model.name},
            },
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }

    def service(self, model: ModelSpec) -> dict[str, Any]:
        """The ClusterIP Service in front of the model's pod."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": object_name(model.name),
                "namespace": self.namespace,
                "labels": self.labels(model),
                "annotations": {MODEL_ANNOTATION: model.name},
            },
            "spec": {
                "type": "ClusterIP",
                "selector": self.labels(model),
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        }

    def start(self, model: ModelSpec) -> str:
        """Create the Deployment and Service, or replace them when they exist (409)."""
        from kubernetes.client.exceptions import ApiException

        name = object_name(model.name)
        body = self.deployment(model)
        try:
            self.apps.create_namespaced_deployment(self.namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise
            self.apps.replace_namespaced_deployment(name, self.namespace, body)
        try:
            self.core.create_namespaced_service(self.namespace, self.service(model))
        except ApiException as e:
            if e.status != 409:  # the Service exists: its selector is the same
                raise
        return self.service_url(name, self.namespace)

    def stop(self, name: str) -> None:
        """Delete the model's Deployment (its pod goes, and the GPUs with it) and Service."""
        from kubernetes.client.exceptions import ApiException

        obj = object_name(name)
        for delete in (self.apps.delete_namespaced_deployment, self.core.delete_namespaced_service):
            try:
                delete(obj, self.namespace)
            except ApiException as e:
                if e.status != 404:
                    raise

    def servers(self) -> dict[str, str]:
        """The Deployments this plane made in ``namespace`` (by label), by served model name."""
        from kubernetes.client import ApiClient

        found = self.apps.list_namespaced_deployment(
            self.namespace,
            label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/name=vllm",
        )
        items = ApiClient().sanitize_for_serialization(found).get("items") or []
        servers = {}
        for item in items:
            meta = item.get("metadata") or {}
            model = (meta.get("annotations") or {}).get(MODEL_ANNOTATION)
            if model and meta.get("name") == object_name(model):
                servers[model] = self.service_url(meta["name"], self.namespace)
        return servers


class VllmAdapter:
    """The vLLM servers of one node (local) or one namespace (Kubernetes)."""

    runtime = "vllm"
    supports_sleep = True

    def __init__(
        self,
        backend: VllmBackend | None = None,
        *,
        ready_timeout_s: float = 900.0,
        sleep_timeout_s: float = 120.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.backend = backend if backend is not None else LocalVllm()
        self.ready_timeout_s = ready_timeout_s
        self.sleep_timeout_s = sleep_timeout_s
        self.client = client or httpx.Client(timeout=30.0)

    def _sleeping(self, url: str) -> bool | None:
        """``/is_sleeping``; None when the server does not answer it (down, or no dev mode)."""
        try:
            reply = self.client.get(f"{url}/is_sleeping", timeout=2.0)
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        return bool(reply.json().get("is_sleeping"))

    def _healthy(self, url: str) -> bool:
        try:
            return self.client.get(f"{url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def states(self) -> dict[str, str]:
        """Each server that answers: sleeping or loaded as it says; one that does not answer is
        left out (cold), so a dead pod or process is never counted as holding its model."""
        found = {}
        for name, url in self.backend.servers().items():
            sleeping = self._sleeping(url)
            if sleeping is None:
                if self._healthy(url):
                    found[name] = LOADED
            else:
                found[name] = SLEEPING if sleeping else LOADED
        return found

    def url(self, model: str) -> str | None:
        """The server's base URL when ``model`` is loaded (not sleeping: it would answer 503)."""
        url = self.backend.servers().get(model)
        if url is None or self.states().get(model) != LOADED:
            return None
        return url

    def load(self, model: ModelSpec) -> None:
        """Wake a sleeping server, or start one, and wait until it serves ``model``. A server
        that is there but not answering yet (a pod still loading its weights) is waited for,
        never started a second time: that would throw away minutes of loading."""
        url = self.backend.servers().get(model.name)
        if url is None:
            url = self.backend.start(model)
        elif self._sleeping(url):
            self._post(url, "/wake_up", model.name)
            self._await_sleeping(url, model.name, False)
        self._await_served(url, model.name)

    def sleep(self, model: str) -> None:
        """``POST /sleep?level=1`` and wait until ``/is_sleeping`` says so."""
        url = self._url_of(model)
        self._post(url, "/sleep?level=1", model)
        self._await_sleeping(url, model, True)

    def unload(self, model: str) -> None:
        """Stop the model's server (process or Deployment)."""
        self.backend.stop(model)

    def queue(self, model: str) -> tuple[int, int] | None:
        """(requests running, requests waiting) from the server's ``/metrics``; None when it
        does not answer or does not say (unknown is not zero)."""
        url = self.backend.servers().get(model)
        if url is None:
            return None
        try:
            reply = self.client.get(f"{url}/metrics", timeout=2.0)
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        running = _metric(reply.text, "vllm:num_requests_running", model)
        waiting = _metric(reply.text, "vllm:num_requests_waiting", model)
        if running is None or waiting is None:
            return None
        return int(running), int(waiting)

    def _url_of(self, model: str) -> str:
        url = self.backend.servers().get(model)
        if url is None:
            raise ValueError(f"vllm: model {model!r} has no server (it is cold)")
        return url

    def _post(self, url: str, path: str, model: str) -> None:
        try:
            reply = self.client.post(f"{url}{path}")
        except httpx.HTTPError as e:
            raise RuntimeError(f"vllm server of {model} at {url}: POST {path}: {e}") from e
        if reply.status_code == 404:
            raise SleepModeUnavailable(
                f"vllm server of {model} at {url}: POST {path} is 404: the server runs without "
                "VLLM_SERVER_DEV_MODE=1, so it has no sleep-mode endpoints"
            )
        if reply.status_code != 200:
            raise RuntimeError(
                f"vllm server of {model} at {url}: POST {path} answered {reply.status_code}: "
                f"{reply.text[:500]}"
            )

    def _await_sleeping(self, url: str, model: str, want: bool) -> None:
        deadline = time.monotonic() + self.sleep_timeout_s
        while time.monotonic() < deadline:
            if self._sleeping(url) is want:
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"vllm server of {model} at {url}: /is_sleeping did not become {str(want).lower()} "
            f"within {self.sleep_timeout_s:g} s"
        )

    def _await_served(self, url: str, model: str) -> None:
        """Until ``/health`` answers and ``/v1/models`` lists ``model`` (a server started
        with another served name would take requests for a model it does not have)."""
        deadline = time.monotonic() + self.ready_timeout_s
        listed: list[str] = []
        while time.monotonic() < deadline:
            try:
                if self.client.get(f"{url}/health", timeout=2.0).status_code == 200:
                    data = self.client.get(f"{url}/v1/models", timeout=2.0).json()
                    listed = [m.get("id") for m in data.get("data", [])]
                    if model in listed:
                        return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeStartError(
            f"vllm server of {model} at {url}: not serving it within {self.ready_timeout_s:g} s "
            f"(/v1/models lists {listed})"
        )


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def _metric(text: str, name: str, model: str) -> float | None:
    """The value of ``name`` for ``model`` in Prometheus text (summed over its other labels);
    a sample without a ``model_name`` label counts as this server's."""
    total = None
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = m.group(2) or ""
        if "model_name=" in labels and f'model_name="{model}"' not in labels:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        total = (total or 0.0) + value
    return total
