"""Layer 2B live: ``serving/endpoints``, what each endpoint of ``config/serving.yaml`` serves now.

Each endpoint of the serving configuration (`ServingResource`, typed by
`reasoning_plane.config.serving`) is probed exactly as the gateway probes it
(`serving.gateway.probe_endpoint`: ``GET /v1/models``; an answer makes its models loaded and its
telemetry observed now), and its freshness judged by the rule engine's own telemetry rule
(`rules.telemetry_problem`): fresh, stale (the probe took longer than the telemetry age limit)
or unreachable; an endpoint whose cluster or pool the fleet lacks is shown as not in the fleet.
An endpoint on a serving node is resolved first as the gateway resolves it
(`serving.gateway.resolve`: the URL its node agent last reported the model loaded at): with none,
it is shown as not loaded on its node, with the reason.
A runtime that reports its queue (vLLM's ``/metrics``) gives requests in flight and waiting; one
that does not shows them as unknown, never as zero. The gateway's decision records
(``plane.serving_decisions``) of the last hour give the requests each endpoint served, the
decode rate it achieved and, per model, the requests refused; the fleet gives each endpoint's
cluster, zone and price per GPU-hour.

The check beside it, ``models_served_compliantly``, fails when an endpoint is unreachable or on
no GPU pool of the fleet (named), or when a model of the file has no reachable endpoint on a
cluster its catalog record allows (`rules.governance_on`: the model's record is the data it may
serve; a model the catalog does not hold is the most restrictive, so it has none until
``serving/model_catalog`` wrote its record).
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx

from assets.model_catalog import MODEL_CATALOG_KEY
from assets.serving import SERVING_GROUP, ServingResource
from assets.tags import governance_tags
from data_plane import catalog_store
from reasoning_plane import rules, store
from reasoning_plane.config.serving import ServingConfig
from reasoning_plane.model import Fleet, TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import Endpoint
from resources.plane import PlaneResource
from serving.gateway import Live, probe_endpoint, resolve
from serving.runtimes.vllm import _metric as prometheus_value

ENDPOINTS_KEY = dg.AssetKey(["serving", "endpoints"])
CHECK_NAME = "models_served_compliantly"
WINDOW = timedelta(hours=1)
FRESH, STALE, UNREACHABLE = "fresh", "stale", "unreachable"
NOWHERE = "not loaded on its node"  # on a serving node, no fresh agent report gives it a URL
NOT_IN_FLEET = "not in fleet"  # the endpoint's cluster or pool is not the fleet's


@dataclass(frozen=True)
class Probed:
    """One endpoint as the probe found it."""

    live: Live
    answered: bool
    queue: tuple[int, int] | None  # (in flight, waiting) as the runtime reports; None: unknown


async def _queue(client: httpx.AsyncClient, e: Endpoint) -> tuple[int, int] | None:
    """(running, waiting) from a vLLM endpoint's ``/metrics`` over the models it serves; None
    when the runtime does not report them (llama.cpp's Python server, Ollama) or not now."""
    if e.runtime != "vllm":
        return None
    try:
        reply = await client.get(f"{e.url}/metrics", timeout=2.0)
    except httpx.HTTPError:
        return None
    if reply.status_code != 200:
        return None
    running = waiting = 0.0
    for model in sorted(e.models):
        r = prometheus_value(reply.text, "vllm:num_requests_running", model)
        w = prometheus_value(reply.text, "vllm:num_requests_waiting", model)
        if r is None or w is None:
            return None
        running, waiting = running + r, waiting + w
    return int(running), int(waiting)


async def _probe_all(endpoints: list[Endpoint]) -> dict[str, Probed]:
    """Every endpoint probed once, concurrently (one on a node without a URL is not)."""
    async with httpx.AsyncClient() as client:

        async def one(e: Endpoint) -> Probed:
            live = Live()
            answered = await probe_endpoint(client, e, live)
            return Probed(live, answered, await _queue(client, e) if answered else None)

        found = await asyncio.gather(*(one(e) for e in endpoints))
    return {e.endpoint_id: p for e, p in zip(endpoints, found, strict=True)}


def probe_endpoints(endpoints: list[Endpoint]) -> dict[str, Probed]:
    """Every endpoint probed once, concurrently, the way the gateway probes it (its URL
    resolved first when it is on a serving node: `serving.gateway.resolve`)."""
    return asyncio.run(_probe_all(endpoints))


def freshness(
    e: Endpoint, probed: Probed, now: datetime, policy: PlacementPolicy
) -> tuple[str, float | None]:
    """(fresh / stale / unreachable, telemetry age in s) by the engine's telemetry rule."""
    if not probed.answered or probed.live.observed_at is None:
        return UNREACHABLE, None
    sample = TelemetrySample(e.cluster, e.endpoint_id, e.slots, 0.0, probed.live.observed_at)
    age = max((now - probed.live.observed_at).total_seconds(), 0.0)
    problem = rules.telemetry_problem(e.cluster, e.endpoint_id, sample, now, policy)
    return (FRESH if problem is None else STALE), age


_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("endpoint", "string"),
        dg.TableColumn("models", "string"),
        dg.TableColumn("cluster", "string"),
        dg.TableColumn("zone", "string"),
        dg.TableColumn("runtime", "string"),
        dg.TableColumn(
            "status",
            "string",
            description="fresh, stale, unreachable, not in fleet or not loaded on its node",
        ),
        dg.TableColumn(
            "url",
            "string",
            description="where it answers (on a node: as its agent reports), or why nowhere",
        ),
        dg.TableColumn("loaded", "string", description="models the probe found loaded"),
        dg.TableColumn("in_flight", "string", description="as the runtime reports; - unknown"),
        dg.TableColumn("queue_depth", "string", description="as the runtime reports; - unknown"),
        dg.TableColumn("ttft_ms", "float", description="the probe's round trip (gateway seed)"),
        dg.TableColumn("tokens_per_s", "string", description="served in the last hour; - none"),
        dg.TableColumn("telemetry_age_s", "string"),
        dg.TableColumn("usd_per_gpu_hour", "float", description="the pool's price x its GPUs"),
        dg.TableColumn("served_1h", "int"),
    ]
)


def endpoint_rows(
    config: ServingConfig,
    fleet: Fleet,
    probed: dict[str, Probed],
    activity: list[tuple[str, str | None, str, int, int, float]],
    now: datetime,
    policy: PlacementPolicy,
    nowhere: dict[str, str] | None = None,
) -> list[dict[str, object]]:
    """One row per endpoint: what it serves, where, and what the probe and the log say
    (``config``'s endpoints as resolved; ``nowhere``: why one on a node has no URL)."""
    served: dict[str, int] = defaultdict(int)
    tokens: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    for _, endpoint, status, n, t, s in activity:
        if endpoint is not None and status == "placed":
            served[endpoint] += n
            tokens[endpoint] += t
            seconds[endpoint] += s
    rows = []
    for e in config.endpoints:
        cluster = fleet.get(e.cluster)
        pool = cluster.pool(e.gpu_type) if cluster else None
        p = probed[e.endpoint_id]
        status, age = freshness(e, p, now, policy)
        if pool is None:
            status = NOT_IN_FLEET
        elif e.node is not None and not e.url:
            status = NOWHERE
        queue = p.queue
        rate = tokens[e.endpoint_id] / seconds[e.endpoint_id] if seconds[e.endpoint_id] else None
        rows.append(
            {
                "endpoint": e.endpoint_id,
                "models": ", ".join(sorted(e.models)),
                "cluster": e.cluster,
                "zone": cluster.zone if cluster else "UNKNOWN",
                "runtime": e.runtime,
                "status": status,
                "url": e.url or (nowhere or {}).get(e.endpoint_id, "-"),
                "loaded": ", ".join(sorted(p.live.loaded)) if p.answered else "-",
                "in_flight": str(queue[0]) if queue else "-",
                "queue_depth": str(queue[1]) if queue else "-",
                "ttft_ms": round(p.live.ttft_ms, 1) if p.answered else 0.0,
                "tokens_per_s": f"{rate:.1f}" if rate is not None else "-",
                "telemetry_age_s": f"{age:.2f}" if age is not None else "-",
                "usd_per_gpu_hour": round(pool.price_per_hour * e.gpus, 4) if pool else 0.0,
                "served_1h": served[e.endpoint_id],
            }
        )
    return rows


def model_rows(
    config: ServingConfig,
    fleet: Fleet,
    rows: list[dict[str, object]],
    activity: list[tuple[str, str | None, str, int, int, float]],
    catalog: dict,
    policy: PlacementPolicy,
) -> list[dict[str, object]]:
    """Per model of the file: the reachable endpoints its catalog record allows, and the
    requests for it served and refused (rejected or deferred) in the last hour."""
    status = {str(r["endpoint"]): str(r["status"]) for r in rows}
    served: dict[str, int] = defaultdict(int)
    refused: dict[str, int] = defaultdict(int)
    for model, _, decided, n, _, _ in activity:
        (served if decided == "placed" else refused)[model] += n
    out = []
    for model in config.kinds:
        compliant, barred = [], []
        for e in config.endpoints:
            if model not in e.models or status[e.endpoint_id] in (UNREACHABLE, NOWHERE):
                continue
            cluster = fleet.get(e.cluster)
            if cluster is None or cluster.pool(e.gpu_type) is None:
                barred.append(e.endpoint_id)  # not a pool of the fleet: nothing is placed there
                continue
            residency, compliance = rules.governance_on([model], catalog, cluster, policy)
            (barred if residency or compliance else compliant).append(e.endpoint_id)
        record = catalog.get(model)
        out.append(
            {
                "model": model,
                "residency": record.data_residency if record else "no catalog record",
                "classification": record.classification if record else "-",
                "compliant_endpoints": ", ".join(compliant) or "none",
                "barred_endpoints": ", ".join(barred) or "-",
                "served_1h": served[model],
                "refused_1h": refused[model],
            }
        )
    return out


def _markdown(rows: list[dict[str, object]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = ["| " + " | ".join(str(r[c]).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join([head, *body])


@dg.asset(
    key=ENDPOINTS_KEY,
    group_name=SERVING_GROUP,
    deps=[MODEL_CATALOG_KEY],  # the check reads the models' catalog records
    description=(
        "Every endpoint of config/serving.yaml as the gateway sees it now: models, cluster and "
        "zone, runtime, loaded or not, queue, time to first token, decode rate, telemetry age "
        "(fresh, stale or unreachable), price per GPU-hour, and the requests served and "
        "refused in the last hour."
    ),
    kinds={"python", "postgres"},
    owners=["team:platform"],
    # The table names endpoints and models, no governed data; where it is kept is not declared.
    tags=governance_tags("UNKNOWN", "INTERNAL"),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=ENDPOINTS_KEY,
            description=(
                "Every endpoint answers its probe, and every model of config/serving.yaml has "
                "a reachable endpoint on a cluster its catalog record allows."
            ),
        )
    ],
)
def endpoints_asset(
    context: dg.AssetExecutionContext, serving: ServingResource, plane: PlaneResource
) -> dg.MaterializeResult:
    fleet = plane.fleet()
    policy = plane.policy()
    config = serving.config()  # an endpoint on no pool of the fleet is shown, and fails the check
    with plane.connect() as conn:
        # an endpoint on a serving node answers where its agent last reported it loaded
        endpoints, nowhere = resolve(
            config.endpoints, lambda: store.actual_state(conn), policy.max_telemetry_age_s
        )
        conn.commit()
    config = replace(config, endpoints=endpoints)
    probed = probe_endpoints(config.endpoints)
    now = datetime.now(UTC)
    with plane.connect() as conn:
        catalog = {e.dataset_id: e.record for e in catalog_store.list_entries(conn)}
        activity = store.serving_activity(conn, now - WINDOW, now)
    rows = endpoint_rows(config, fleet, probed, activity, now, policy, nowhere)
    models = model_rows(config, fleet, rows, activity, catalog, policy)
    unreachable = [str(r["endpoint"]) for r in rows if r["status"] == UNREACHABLE]
    stale = [str(r["endpoint"]) for r in rows if r["status"] == STALE]
    cold = [str(r["endpoint"]) for r in rows if r["status"] == NOWHERE]
    uncovered = [str(m["model"]) for m in models if m["compliant_endpoints"] == "none"]
    outside = [str(r["endpoint"]) for r in rows if r["status"] == NOT_IN_FLEET]
    problems = []
    if outside:
        problems.append(
            f"endpoints on no GPU pool of the fleet (PLANE_FLEET_FILE): {', '.join(outside)}"
        )
    if unreachable:
        problems.append(f"unreachable endpoints: {', '.join(unreachable)}")
    if uncovered:
        problems.append(
            "models with no reachable endpoint their catalog record allows: " + ", ".join(uncovered)
        )
    for problem in problems:
        context.log.warning(problem)
    check = dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not problems,
        description="; ".join(problems) or "every model has a reachable compliant endpoint",
        metadata={
            "unreachable": dg.MetadataValue.text(", ".join(unreachable) or "none"),
            "models_uncovered": dg.MetadataValue.text(", ".join(uncovered) or "none"),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "endpoints": dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=_SCHEMA),
            "models": dg.MetadataValue.md(
                _markdown(
                    models,
                    [
                        "model",
                        "residency",
                        "classification",
                        "compliant_endpoints",
                        "barred_endpoints",
                        "served_1h",
                        "refused_1h",
                    ],
                )
            ),
            "endpoints_fresh": sum(r["status"] == FRESH for r in rows),
            "endpoints_stale": len(stale),
            "endpoints_unreachable": len(unreachable),
            "endpoints_not_loaded_on_node": len(cold),
            "served_1h": sum(int(str(m["served_1h"])) for m in models),
            "refused_1h": sum(int(str(m["refused_1h"])) for m in models),
            "serving_file": dg.MetadataValue.path(str(serving.path)),
            "as_of": now.isoformat(),
        },
        check_results=[check],
    )
