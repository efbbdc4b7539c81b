"""The vLLM adapter against loopback servers implementing vLLM's documented contract
(`tests/integration/runtime_stubs.py`): started as a local process through the real
process backend, slept and woken, refused sleep without dev mode; and on Kubernetes, the
rendered Deployment and Service validated against the Kubernetes schemas and the client calls
recorded by a fake API object (there is no API server here)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from kubernetes.client.exceptions import ApiException

from serving.runtimes import adapter_for
from serving.runtimes.base import LOADED, SLEEPING, ModelSpec, RuntimeAdapter
from serving.runtimes.process import RuntimeStartError
from serving.runtimes.vllm import (
    GPU_RESOURCE,
    KubernetesVllm,
    LocalVllm,
    SleepModeUnavailable,
    VllmAdapter,
    object_name,
)
from tests.integration.runtime_stubs import VllmState, serve

STUB = [sys.executable, str(Path(__file__).with_name("runtime_stubs.py"))]
K8S_VERSION = "1.37"  # as tests/integration/test_deploy_manifests.py
SPEC = ModelSpec("qwen3-8b", "Qwen/Qwen3-8B", context_tokens=8192, parallel_slots=16)


@pytest.fixture
def local() -> Iterator[VllmAdapter]:
    backend = LocalVllm(command=STUB, start_timeout_s=30, stop_grace_s=5)
    yield VllmAdapter(backend, ready_timeout_s=30, sleep_timeout_s=10)
    backend.close()


def test_the_factory_gives_a_vllm_adapter_that_keeps_the_interface() -> None:
    a = adapter_for("vllm", ready_timeout_s=1)
    assert isinstance(a, VllmAdapter) and isinstance(a, RuntimeAdapter)
    assert a.supports_sleep and isinstance(a.backend, LocalVllm)


def test_an_unknown_runtime_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"runtime: must be one of llama.cpp, vllm, ollama, got 'tgi'"
    ):
        adapter_for("tgi")


def test_local_server_loads_sleeps_wakes_and_stops(local: VllmAdapter) -> None:
    assert local.states() == {} and local.url("qwen3-8b") is None
    local.load(SPEC)
    assert local.states() == {"qwen3-8b": LOADED}
    url = local.url("qwen3-8b")
    assert url is not None
    # the server was started with the served name, the context and slots, in dev mode
    proc = local.backend._servers["qwen3-8b"][0]
    assert proc.argv[len(STUB) :][:10] == [
        "--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen3-8b", "--port",
        url.rsplit(":", 1)[1], "--max-model-len", "8192", "--max-num-seqs", "16",
    ]  # fmt: skip
    assert "--enable-sleep-mode" in proc.argv
    ask = {"model": "qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=ask).status_code == 200

    local.sleep("qwen3-8b")  # the stub falls asleep after answering: the adapter waits
    assert local.states() == {"qwen3-8b": SLEEPING}
    assert local.url("qwen3-8b") is None  # sleeping answers 503: no URL to route to
    assert httpx.post(f"{url}/v1/chat/completions", json=ask).status_code == 503

    local.load(SPEC)  # from sleeping: woken, the same process
    assert local.backend._servers["qwen3-8b"][0] is proc
    assert local.states() == {"qwen3-8b": LOADED}
    assert httpx.post(f"{url}/v1/chat/completions", json=ask).status_code == 200

    local.unload("qwen3-8b")
    assert local.states() == {} and not proc.alive


def test_a_crashed_local_server_is_cold(local: VllmAdapter) -> None:
    local.load(SPEC)
    proc = local.backend._servers["qwen3-8b"][0]
    proc.proc.kill()
    proc.proc.wait()
    assert local.states() == {}
    with pytest.raises(ValueError, match="model 'qwen3-8b' has no server"):
        local.sleep("qwen3-8b")


def test_a_server_dying_while_loading_reports_its_output(local: VllmAdapter) -> None:
    bad = ModelSpec("missing", "/models/missing", args=("--fail",))
    with pytest.raises(RuntimeStartError, match=r"(?s)exited with code 1 .*config\.json"):
        local.load(bad)
    assert local.states() == {}


def test_sleep_without_dev_mode_is_a_clear_error_and_nothing_changes() -> None:
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b", dev_mode=False)
    with serve(state) as url:
        adapter = VllmAdapter(_Fixed({"qwen3-8b": url}), sleep_timeout_s=2)
        assert adapter.states() == {"qwen3-8b": LOADED}  # /is_sleeping 404: /health says up
        with pytest.raises(SleepModeUnavailable, match="VLLM_SERVER_DEV_MODE=1"):
            adapter.sleep("qwen3-8b")
        assert not state.sleeping and adapter.states() == {"qwen3-8b": LOADED}


def test_sleep_without_sleep_mode_is_an_error_with_the_servers_answer() -> None:
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b", sleep_mode=False)
    with serve(state) as url:
        adapter = VllmAdapter(_Fixed({"qwen3-8b": url}), sleep_timeout_s=2)
        with pytest.raises(RuntimeError, match=r"answered 500: .*Sleep mode is not enabled"):
            adapter.sleep("qwen3-8b")


def test_a_server_serving_another_name_is_never_taken_as_loaded() -> None:
    state = VllmState("Qwen/Qwen3-8B", "someone-else")
    with serve(state) as url:
        adapter = VllmAdapter(_Fixed({}, start_url=url), ready_timeout_s=0.5)
        with pytest.raises(RuntimeStartError, match=r"not serving it .*\['someone-else'\]"):
            adapter.load(SPEC)


def test_a_server_still_starting_is_waited_for_not_started_again() -> None:
    with serve(VllmState("Qwen/Qwen3-8B", "qwen3-8b")) as url:
        backend = _Fixed({"qwen3-8b": url})  # start_url None: a second start would fail
        VllmAdapter(backend, ready_timeout_s=5).load(SPEC)  # up already: nothing to do
    # the same server, gone quiet (a pod loading its weights): waited for, then an error
    with pytest.raises(RuntimeStartError, match=r"not serving it within 0\.3 s"):
        VllmAdapter(backend, ready_timeout_s=0.3).load(SPEC)
    assert backend.servers() == {"qwen3-8b": url}


def test_queue_counts_come_from_the_metrics_and_unknown_is_none() -> None:
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b")
    state.running, state.waiting = 3, 7
    with serve(state) as url:
        adapter = VllmAdapter(_Fixed({"qwen3-8b": url}))
        assert adapter.queue("qwen3-8b") == (3, 7)
        assert adapter.queue("other") is None
    assert adapter.queue("qwen3-8b") is None  # the server is gone: unknown, not zero


class _Fixed:
    """A backend whose servers were started elsewhere (the stub in this test)."""

    def __init__(self, servers: dict[str, str], start_url: str | None = None) -> None:
        self._servers = dict(servers)
        self.start_url = start_url

    def start(self, model: ModelSpec) -> str:
        assert self.start_url is not None
        self._servers[model.name] = self.start_url
        return self.start_url

    def stop(self, name: str) -> None:
        self._servers.pop(name, None)

    def servers(self) -> dict[str, str]:
        return dict(self._servers)


# -- Kubernetes ------------------------------------------------------------------------------


class FakeKube:
    """Records the AppsV1Api / CoreV1Api calls and keeps the objects, answering 409 and 404 as
    the API server does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (kind, namespace, body["metadata"]["name"])
        self.calls.append(("create", kind, key[2]))
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = body
        return body

    def _delete(self, kind: str, name: str, namespace: str) -> None:
        self.calls.append(("delete", kind, name))
        if self.objects.pop((kind, namespace, name), None) is None:
            raise ApiException(status=404, reason="NotFound")

    def create_namespaced_deployment(self, namespace: str, body: dict[str, Any]) -> dict:
        return self._create("Deployment", namespace, body)

    def replace_namespaced_deployment(self, name: str, namespace: str, body: dict) -> dict:
        self.calls.append(("replace", "Deployment", name))
        self.objects[("Deployment", namespace, name)] = body
        return body

    def create_namespaced_service(self, namespace: str, body: dict[str, Any]) -> dict:
        return self._create("Service", namespace, body)

    def delete_namespaced_deployment(self, name: str, namespace: str) -> None:
        self._delete("Deployment", name, namespace)

    def delete_namespaced_service(self, name: str, namespace: str) -> None:
        self._delete("Service", name, namespace)

    def list_namespaced_deployment(self, namespace: str, label_selector: str) -> dict:
        wanted = dict(pair.split("=") for pair in label_selector.split(","))
        items = [
            body
            for (kind, ns, _), body in self.objects.items()
            if kind == "Deployment"
            and ns == namespace
            and wanted.items() <= body["metadata"]["labels"].items()
        ]
        return {"items": items}


def _kube(fake: FakeKube, **kw: Any) -> KubernetesVllm:
    return KubernetesVllm(fake, fake, namespace="financial-ml", **kw)


def test_rendered_deployment_and_service_validate_strictly_against_the_schema() -> None:
    k = _kube(FakeKube(), gpus=2, models_claim="hf-cache", node_selector={"pool": "h100"})
    deployment, service = k.deployment(SPEC), k.service(SPEC)
    kubernetes_validate.validate(deployment, desired_version=K8S_VERSION, strict=True)
    kubernetes_validate.validate(service, desired_version=K8S_VERSION, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {GPU_RESOURCE: "2"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "VLLM_SERVER_DEV_MODE", "value": "1"} in container["env"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]  # never downloads
    assert container["args"][:4] == ["--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen3-8b"]
    assert "--enable-sleep-mode" in container["args"]
    assert pod["nodeSelector"] == {"pool": "h100"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_misspelt_field_in_the_rendering_would_be_caught() -> None:
    deployment = _kube(FakeKube()).deployment(SPEC)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, desired_version=K8S_VERSION, strict=True)


def test_object_names_are_dns_labels_and_never_shared() -> None:
    names = {object_name(m) for m in ("Qwen/Qwen3-8B", "qwen3-8b", "qwen3_8b", "x" * 300, "///")}
    assert len(names) == 5
    for name in names:
        assert len(name) <= 63 and name[0].isalpha() and name[-1].isalnum()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


def test_kubernetes_load_sleep_wake_unload_through_the_client_api() -> None:
    fake = FakeKube()
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b")
    with serve(state) as url:
        # the plane reaches the Service at the stub (in a cluster: its DNS name)
        adapter = VllmAdapter(
            _kube(fake, service_url=lambda name, ns: url), ready_timeout_s=5, sleep_timeout_s=5
        )
        assert adapter.states() == {}
        adapter.load(SPEC)
        name = object_name("qwen3-8b")
        assert fake.calls == [("create", "Deployment", name), ("create", "Service", name)]
        assert adapter.states() == {"qwen3-8b": LOADED}
        assert adapter.url("qwen3-8b") == url

        adapter.sleep("qwen3-8b")
        assert adapter.states() == {"qwen3-8b": SLEEPING}
        assert "POST /sleep?level=1" in state.calls
        adapter.load(SPEC)  # woken, no second Deployment
        assert adapter.states() == {"qwen3-8b": LOADED}
        assert [c for c in fake.calls if c[0] == "create"] == [
            ("create", "Deployment", name),
            ("create", "Service", name),
        ]

        adapter.unload("qwen3-8b")
        assert fake.objects == {} and adapter.states() == {}
        adapter.unload("qwen3-8b")  # cold already: the 404s are not errors


def test_kubernetes_start_replaces_an_existing_deployment() -> None:
    fake = FakeKube()
    k = _kube(fake, service_url=lambda name, ns: f"http://{name}.{ns}")
    k.start(SPEC)
    assert k.start(SPEC) == f"http://{object_name('qwen3-8b')}.financial-ml"
    assert ("replace", "Deployment", object_name("qwen3-8b")) in fake.calls
    assert k.servers() == {"qwen3-8b": f"http://{object_name('qwen3-8b')}.financial-ml"}


def test_kubernetes_errors_other_than_conflict_are_raised() -> None:
    class Forbidden(FakeKube):
        def create_namespaced_deployment(self, namespace: str, body: dict) -> dict:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException, match="Forbidden"):
        _kube(Forbidden()).start(SPEC)


def test_default_service_url_is_the_cluster_dns_name() -> None:
    fake = FakeKube()
    assert _kube(fake).start(SPEC) == (
        f"http://{object_name('qwen3-8b')}.financial-ml.svc.cluster.local:8000"
    )


def test_gpus_must_be_positive() -> None:
    with pytest.raises(ValueError, match="gpus: must be at least 1, got 0"):
        _kube(FakeKube(), gpus=0)
