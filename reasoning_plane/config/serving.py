"""The serving configuration (``config/serving.yaml``): what `plane serve`'s gateway serves.

* ``endpoints``: each runtime (llama.cpp, vLLM, Ollama, the sentence-transformers embedding
  server) on a GPU pool of a cluster of the fleet, the models it serves, the GPUs it holds, the
  requests it serves at once (slots), its cold-start time and (vLLM) its wake-up time; at a
  fixed ``url`` (with ``cluster`` and ``gpu_type``), or on a serving ``node`` of
  ``config/serving_nodes.yaml``, whose entry says its cluster and pool and whose agent reports
  its URL (`serving.gateway.resolve`);
* ``models``: every model the gateway serves, its kind (``chat``, ``completion``,
  ``embedding``: which API paths may ask for it) and the equivalents a request for it may be
  answered by (the operator's choice, e.g. a quantised build of the same weights);
  and its ``catalog`` facts: the governance catalog record the ``models/serving_catalog`` asset
  writes for it (owner team, classification, residency of the data it may serve, licence), which
  Cedar's ``use_model`` reads. Anything not declared is the most restrictive (UNKNOWN): a model
  without a declared residency or classification is written, and refused to everyone;
* ``teams``: per team its priority (shedding keeps a share of slots for high priority) and its
  default time-to-first-token SLO (when a request sends no ``x-slo-ttft-ms``);
* ``high_priority_share``, ``probe_interval_s``, ``listen`` (host, port);
* ``key_cache_s``: how long the gateway trusts an API key it checked against the database
  (`serving.keys`): a revoked key keeps working at most this long (0: every request is checked).

Read through `data_plane.files` and validated by the models here, so a mistake is one
``<file>: <field>: <problem>`` error. `load_serving` also checks the file against the fleet: an
endpoint on a cluster or pool the fleet lacks is refused, naming the endpoint's field (the same
check `reasoning_plane.serving.endpoints.model_fleet` would otherwise make at the first request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationInfo, model_validator

from data_plane.classification import CLASSIFICATIONS, UNKNOWN
from data_plane.config import (
    DNS_LABEL,
    ConfigModel,
    Namespace,
    Share,
    fail,
    integer,
    name,
    number,
    one_of,
    text,
    validate,
)
from data_plane.config import Zone as ZoneName
from data_plane.files import read_document
from reasoning_plane.config.plane import MAX_LATENCY_MS, ClusterName, GpuType
from reasoning_plane.model import Fleet
from reasoning_plane.serving.endpoints import RUNTIMES, Endpoint

MODEL_KINDS = ("chat", "completion", "embedding")
# which API paths may ask for a model of each kind
PATHS_OF_KIND = {
    "chat": ("/v1/chat/completions", "/v1/completions"),
    "completion": ("/v1/completions",),
    "embedding": ("/v1/embeddings",),
}
MAX_SLOTS = 100_000
MAX_GPUS = 4096
MAX_KEY_CACHE_S = 300.0  # a revoked key works at most this long, whatever the file says

ModelName = name(
    r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}",
    "a model name of letters, digits and . _ : / - (at most 128 characters)",
)
EndpointId = name(DNS_LABEL, "a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)")
Url = name(r"https?://[^\s/?#]+(/[^\s?#]*)?", "an http:// or https:// URL without query")
Host = name(r"[A-Za-z0-9.:_-]{1,253}", "a host name or IP address to listen on")


@dataclass(frozen=True)
class NodeFacts:
    """What the serving nodes file says of a node that an endpoint may name (its one owner)."""

    cluster: str
    gpu_type: str | None  # the GPU pool of its cluster; None: the nodes file does not say
    runtimes: frozenset[str]
    # (model, runtime) -> (cold load s, wake s or None): the models' entries of the nodes file
    loads: Mapping[tuple[str, str], tuple[float, float | None]] = field(default_factory=dict)


# runtimes whose node agent starts one server per model (a URL per model): an endpoint on a
# node serves one model of theirs; Ollama serves every model it loaded at its one URL
ONE_SERVER_PER_MODEL = ("llama.cpp", "vllm", "sentence-transformers")


class EndpointModel(ConfigModel):
    """An endpoint at a fixed ``url`` on a pool (``cluster``, ``gpu_type``), or on a serving
    ``node`` of the nodes file, whose URL the node agent reports (``plane.residency_actual``) and
    whose cluster and pool are the node's: exactly one of ``url`` and ``node``."""

    id: EndpointId
    cluster: ClusterName | None = None
    gpu_type: GpuType | None = None
    runtime: one_of(RUNTIMES)  # type: ignore[valid-type]
    url: Url | None = None
    node: EndpointId | None = None  # a node of config/serving_nodes.yaml (nodes[].name)
    models: Annotated[list[ModelName], Field(min_length=1)]
    gpus: integer(minimum=1, maximum=MAX_GPUS) = 1  # type: ignore[valid-type]
    slots: integer(minimum=1, maximum=MAX_SLOTS) = 1  # type: ignore[valid-type]
    load_ms: number(maximum=MAX_LATENCY_MS) = 2000.0  # type: ignore[valid-type]
    # waking a sleeping model (vLLM sleep mode); unset: as long as a cold load
    wake_ms: number(maximum=MAX_LATENCY_MS) | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _where(self) -> EndpointModel:
        if (self.url is None) == (self.node is None):
            fail(
                "exactly one of url and node is required (a fixed URL, or a serving node "
                "whose agent reports it)",
                ("url",) if self.url is None else ("node",),
            )
        if self.node is not None:
            for key in ("cluster", "gpu_type"):
                if getattr(self, key) is not None:
                    fail(
                        f"an endpoint on node {self.node!r} has the node's {key} (the serving "
                        "nodes file says it): leave it out here",
                        (key,),
                    )
            for key in ("load_ms", "wake_ms"):
                if key in self.model_fields_set:
                    fail(
                        f"an endpoint on node {self.node!r} loads and wakes its models as the "
                        "serving nodes file says (cold_load_s, wake_s of each model): leave it "
                        "out here",
                        (key,),
                    )
            if self.runtime in ONE_SERVER_PER_MODEL and len(self.models) != 1:
                fail(
                    f"the node agent runs one {self.runtime} server per model: an endpoint "
                    "on a node serves one model",
                    ("models",),
                )
        else:
            for key in ("cluster", "gpu_type"):
                if getattr(self, key) is None:
                    fail("required with url", (key,))
        if self.wake_ms is not None and self.runtime != "vllm":
            fail(f"{self.runtime} has no sleep mode (only vllm)", ("wake_ms",))
        return self

    def build(self, node: NodeFacts | None = None) -> Endpoint:
        cluster = node.cluster if node is not None else self.cluster
        gpu_type = node.gpu_type if node is not None else self.gpu_type
        assert cluster is not None and gpu_type is not None  # checked with the file
        load_ms, wake_ms = self.load_ms, self.wake_ms
        if node is not None:  # the nodes file's times (checked with the file: every model has one)
            times = [node.loads[(m, self.runtime)] for m in sorted(self.models)]
            load_ms = max(t[0] for t in times) * 1000.0
            wakes = [t[1] for t in times if t[1] is not None]
            wake_ms = max(wakes) * 1000.0 if wakes else None
        return Endpoint(
            endpoint_id=self.id,
            cluster=cluster,
            gpu_type=gpu_type,
            runtime=self.runtime,
            url=self.url.rstrip("/") if self.url else "",
            models=frozenset(self.models),
            gpus=self.gpus,
            slots=self.slots,
            load_ms=load_ms,
            node=self.node,
            wake_ms=wake_ms,
        )


class CatalogFactsModel(ConfigModel):
    """A served model's governance facts (its catalog record); absent is UNKNOWN."""

    owner_team: Namespace | None = None
    classification: one_of(CLASSIFICATIONS[:-1]) | None = None  # type: ignore[valid-type]
    residency: ZoneName | None = None  # type: ignore[valid-type]
    licence: text(max_len=128) | None = None  # type: ignore[valid-type]


class ServedModel(ConfigModel):
    name: ModelName
    kind: one_of(MODEL_KINDS) = "chat"  # type: ignore[valid-type]
    equivalents: list[ModelName] | None = None
    catalog: CatalogFactsModel | None = None

    def facts(self) -> ModelFacts:
        c = self.catalog or CatalogFactsModel()
        return ModelFacts(
            name=self.name,
            owner_team=c.owner_team or "",
            classification=c.classification or UNKNOWN,
            residency=c.residency or UNKNOWN,
            licence=c.licence or UNKNOWN,
        )


class TeamModel(ConfigModel):
    team: Namespace
    priority: integer(maximum=1000) = 100  # type: ignore[valid-type]
    slo_ttft_ms: number(positive=True, maximum=MAX_LATENCY_MS) | None = None  # type: ignore[valid-type]


class ListenModel(ConfigModel):
    host: Host = "127.0.0.1"
    port: integer(minimum=1, maximum=65535) = 8000  # type: ignore[valid-type]


def _unique(values: list[Any], where: str, key: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            fail(f"duplicate {value!r}", (where, i, key))
        seen.add(value)


class ServingFile(ConfigModel):
    """The gateway's endpoints, models, team defaults and listen address."""

    labels: ClassVar[Mapping[str, str]] = {"endpoints": "id", "models": "name", "teams": "team"}
    endpoints: Annotated[list[EndpointModel], Field(min_length=1)]
    models: Annotated[list[ServedModel], Field(min_length=1)]
    teams: list[TeamModel] | None = None
    high_priority_share: Share = 0.25  # type: ignore[valid-type]
    probe_interval_s: number(positive=True, maximum=3600.0) = 2.0  # type: ignore[valid-type]
    listen: ListenModel | None = None
    key_cache_s: number(maximum=MAX_KEY_CACHE_S) = 5.0  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ServingFile:
        _unique([e.id for e in self.endpoints], "endpoints", "id")
        _unique([m.name for m in self.models], "models", "name")
        _unique([t.team for t in self.teams or ()], "teams", "team")
        kinds = {m.name: m.kind for m in self.models}
        for i, m in enumerate(self.models):
            for j, other in enumerate(m.equivalents or ()):
                at = ("models", i, "equivalents", j)
                if other == m.name:
                    fail("a model is not its own equivalent", at)
                if other not in kinds:
                    fail(f"{other!r} is not a model of this file (models)", at)
                if kinds[other] != m.kind:
                    fail(f"{other!r} is of kind {kinds[other]}, {m.name!r} of kind {m.kind}", at)
        for i, e in enumerate(self.endpoints):
            for j, model in enumerate(e.models):
                if model not in kinds:
                    fail(
                        f"{model!r} is not a model of this file (models)",
                        ("endpoints", i, "models", j),
                    )
        nodes = (info.context or {}).get("nodes")
        nodes_file = (info.context or {}).get("nodes_file") or "the serving nodes file"
        for i, e in enumerate(self.endpoints):
            if e.node is None:
                continue
            if not isinstance(nodes, Mapping):
                fail(
                    f"no serving nodes file was given to find node {e.node!r} in",
                    ("endpoints", i, "node"),
                )
            node = nodes.get(e.node)
            if node is None:
                fail(
                    f"{e.node!r} is not a node of {nodes_file} {sorted(nodes)}",
                    ("endpoints", i, "node"),
                )
            if e.runtime not in node.runtimes:
                fail(
                    f"node {e.node!r} runs {sorted(node.runtimes)} ({nodes_file})",
                    ("endpoints", i, "runtime"),
                )
            if node.gpu_type is None:
                fail(
                    f"node {e.node!r} names no gpu_type (its GPU pool) in {nodes_file}",
                    ("endpoints", i, "node"),
                )
            for m in sorted(e.models):
                if (m, e.runtime) not in node.loads:
                    fail(
                        f"{m!r} is not a {e.runtime} model of {nodes_file} (its node agent "
                        "could never load it)",
                        ("endpoints", i, "models"),
                    )
        fleet = (info.context or {}).get("fleet")
        if isinstance(fleet, Fleet):
            for i, e in enumerate(self.endpoints):
                where, (cluster_name, gpu_type) = "", (e.cluster, e.gpu_type)
                if e.node is not None:
                    node = nodes[e.node]
                    where = f" (node {e.node} of {nodes_file})"
                    cluster_name, gpu_type = node.cluster, node.gpu_type
                at = ("endpoints", i, "node") if e.node is not None else ("endpoints", i)
                cluster = fleet.get(cluster_name)
                if cluster is None:
                    known = sorted(c.name for c in fleet.clusters)
                    fail(
                        f"{cluster_name!r}{where} is not a cluster of the fleet {known}",
                        at if e.node is not None else (*at, "cluster"),
                    )
                if cluster.pool(gpu_type) is None:
                    pools = sorted(p.gpu_type for p in cluster.pools)
                    fail(
                        f"{gpu_type!r}{where} is not a GPU pool of cluster {cluster_name} {pools}",
                        at if e.node is not None else (*at, "gpu_type"),
                    )
        return self

    def build(self, nodes: Mapping[str, NodeFacts] | None = None) -> ServingConfig:
        listen = self.listen or ListenModel()
        return ServingConfig(
            endpoints=[e.build(nodes[e.node] if e.node else None) for e in self.endpoints],
            kinds={m.name: m.kind for m in self.models},
            equivalents={m.name: tuple(m.equivalents or ()) for m in self.models},
            catalog={m.name: m.facts() for m in self.models},
            priorities={t.team: t.priority for t in self.teams or ()},
            slo_ttft_ms={t.team: t.slo_ttft_ms for t in self.teams or () if t.slo_ttft_ms},
            high_priority_share=self.high_priority_share,
            probe_interval_s=self.probe_interval_s,
            key_cache_s=self.key_cache_s,
            host=listen.host,
            port=listen.port,
        )


@dataclass(frozen=True)
class ModelFacts:
    """A served model's governance facts as declared (UNKNOWN where not: fail closed)."""

    name: str
    owner_team: str  # "" when not declared: no team owns it
    classification: str
    residency: str
    licence: str


@dataclass(frozen=True)
class ServingConfig:
    """The serving configuration as the gateway uses it (plain data)."""

    endpoints: list[Endpoint]
    kinds: Mapping[str, str]  # model -> chat / completion / embedding
    equivalents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    catalog: Mapping[str, ModelFacts] = field(default_factory=dict)  # model -> declared facts
    priorities: Mapping[str, int] = field(default_factory=dict)
    slo_ttft_ms: Mapping[str, float] = field(default_factory=dict)
    high_priority_share: float = 0.25
    probe_interval_s: float = 2.0
    key_cache_s: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8000


def node_facts(nodes_file: Path | str) -> dict[str, NodeFacts]:
    """The nodes of a serving nodes file (``config/serving_nodes.yaml``) as endpoints use them:
    cluster, GPU pool, runtimes (the file checked by `load_planner_config`)."""
    from reasoning_plane.serving.planner_config import load_planner_config

    raw = load_planner_config(nodes_file).raw
    loads = {(m.name, m.runtime): (m.cold_load_s, m.wake_s) for m in raw.models}
    return {
        n.name: NodeFacts(n.cluster, n.gpu_type, frozenset(n.runtimes), loads) for n in raw.nodes
    }


def _names_a_node(doc: Any) -> bool:
    endpoints = doc.get("endpoints") if isinstance(doc, dict) else None
    return isinstance(endpoints, list) and any(
        isinstance(e, dict) and e.get("node") is not None for e in endpoints
    )


def load_serving(
    path: Path | str, fleet: Fleet | None = None, nodes_file: Path | str | None = None
) -> ServingConfig:
    """The serving configuration of ``path``; with ``fleet``, every endpoint must be on a pool
    of it (``<file>: endpoints[0] (id).cluster: ...`` otherwise). An endpoint naming a serving
    ``node`` takes its cluster and pool from ``nodes_file`` (read only when one does)."""
    path = Path(path)
    doc = read_document(path)
    context: dict[str, Any] = {}
    if fleet is not None:
        context["fleet"] = fleet
    nodes = None
    if nodes_file is not None and _names_a_node(doc):
        nodes = node_facts(nodes_file)
        context["nodes"], context["nodes_file"] = nodes, str(nodes_file)
    return validate(ServingFile, doc, path, context=context or None).build(nodes)


__all__ = [
    "MODEL_KINDS",
    "PATHS_OF_KIND",
    "ModelFacts",
    "NodeFacts",
    "ServingConfig",
    "ServingFile",
    "load_serving",
    "node_facts",
]
