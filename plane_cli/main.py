"""``plane``: the command line of Reasoning Plane.

    plane catalog                 summary of the governance catalog (datasets, rows, PII, ...)
    plane catalog show DATASET    one catalog record in the operator JSON shape
    plane search QUERY [--on-behalf-of USER] [--region EU] [-k 5] [--json]
                                  governed retrieval over the regional vector stores, as the
                                  principal of the API key in PLANE_API_KEY
    plane place --fleet F --quotas Q --catalog C --requests R [--budgets B] [--telemetry T]
                [--policy P] [--now ISO-8601] [--json]
                                  what-if placement; exit 0 all placed, 3 some request has no
                                  feasible cluster (every reason printed), 2 bad input
    plane explain RUN_OR_DECISION_ID
                                  the logged decision of a run: every candidate (over 40: the
                                  chosen, the cheapest others, rejections counted per rule)
    plane replay [--fleet F] [--policy P] [--since ISO-8601] [--json]
                                  re-run logged decisions under a changed fleet or policy
    plane request --requests R    queue workload requests for the placement sensor, as the
                                  principal of the API key in PLANE_API_KEY (Cedar decides
                                  whether it may request each workload)
    plane keys issue --principal NAME | revoke KEY_ID | list
                                  API keys: a key stands for a principal of principals.yaml; it
                                  is shown once and stored hashed
    plane run [--select SEL | --job main_job]
                                  place the selected assets with the reasoning plane and run what
                                  is placed on this machine, in dependency order; a table says
                                  what ran, what was rejected and why (exit 1 when a run failed)
    plane simulate [--trace seed-like|generated] [--requests N] [--seed S]
                   [--policies naive,greedy,plane,hindsight] [--json]
                                  replay a seeded trace through placement policies: cost per
                                  1,000 requests and violations of each
    plane agent --cluster NAME [--node N] [--interval 1] [--gpu-type T] [--max-clock-skew 5]
                [--gateway URL --token-file F] [--once | --check]
                                  push this node's NVML telemetry to plane.telemetry (through
                                  the telemetry gateway with the pod's token, on Kubernetes)
    plane node-agent --node NAME [--nodes F] [--interval 2] [--retry 30] [--once]
                                  a serving node's agent: holds its runtime adapters, applies
                                  the residency plan's desired state, reports what they hold
    plane gpus [--json]           this machine's GPUs as NVML reports them
    plane db-url                  the PostgreSQL URL in use (password redacted)
    plane db migrate              as an administrator: create or update every schema, the
                                  service roles and their grants (data_plane.roles)
    plane telemetry-gateway --cluster C [--listen HOST:PORT] [--kubeconfig F]
                            [--tls-cert F --tls-key F]
                                  receive the cluster's agents' telemetry; each push is stored
                                  only for the node its pod-bound service-account token names
    plane db agent-role --cluster C [--node N]
                                  as an administrator: the login role of one node's telemetry
                                  and serving agents, or of a cluster's agent DaemonSet (it may
                                  write the samples of that node, or that cluster's nodes, and
                                  a node's role that node's residency rows, only)
    plane verify-log [--log decisions|ledger|snapshots|access|catalog|grants|serving]
                     [--expect-head LOG=POS:HASH] [--no-anchor]
                                  recompute the hash chains of the append-only logs, against
                                  the latest anchor of their heads (PLANE_ANCHOR_DIR) and the
                                  current catalog against its history; exit 6 when tampered

Exit codes: 0 success, 2 bad input, 3 no feasible cluster, 4 not found, 5 database unavailable,
6 a log was tampered with, 7 no valid credential.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import psycopg

from data_plane import catalog_store
from data_plane.catalog import CatalogEntry
from data_plane.credentials import AuthenticationError
from data_plane.vector_store import VectorStoreError
from observability.logs import configure as configure_logs
from observability.logs import reporter
from plane_cli.metrics import add_parser as _metrics_commands
from plane_cli.node_agent import add_parser as _node_agent_commands
from plane_cli.node_agent import agent_url
from plane_cli.serve import add_parser as _serve_commands
from resources.database import database_url, redact, redact_url

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NO_FEASIBLE = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 5
EXIT_TAMPERED = 6
EXIT_UNAUTHENTICATED = 7

# The append-only logs with a hash chain (data_plane/hash_chain.py).
CHAINED_LOGS = {
    "decisions": "plane.decisions",
    "ledger": "plane.ledger",
    "snapshots": "plane.snapshots",
    "access": "governance.access_log",
    "catalog": "governance.catalog_history",  # and the current entries against it
    "grants": "governance.read_grants_log",  # and the current read grants against it
    "serving": "plane.serving_decisions",  # the gateway's decision records
}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def catalog_summary(entries: Sequence[CatalogEntry]) -> str:
    rows = []
    for e in entries:
        r = e.record
        rows.append(
            [
                e.dataset_id,
                "-" if e.row_count is None else e.row_count,
                "-" if e.quarantined_rows is None else e.quarantined_rows,
                r.classification,
                r.data_residency,
                r.retention_policy,
                "yes" if r.gdpr_compliant else "no",
                ", ".join(sorted(e.pii_columns)) or "-",
            ]
        )
    table = format_table(
        [
            "dataset",
            "rows",
            "quarantined",
            "classification",
            "residency",
            "retention",
            "gdpr",
            "pii columns",
        ],
        rows,
    )
    total_rows = sum(e.row_count or 0 for e in entries)
    total_q = sum(e.quarantined_rows or 0 for e in entries)
    return f"{table}\n\n{len(entries)} datasets, {total_rows} rows, {total_q} quarantined rows."


def _catalog(args: argparse.Namespace) -> int:
    with psycopg.connect(database_url(role="plane")) as conn:
        catalog_store.ensure_schema(conn)
        if args.dataset:
            entry = catalog_store.get_entry(conn, args.dataset)
            if entry is None:
                print(f"plane: no catalog entry for {args.dataset!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            print(entry.record.to_json(indent=2))
            return EXIT_OK
        entries = catalog_store.list_entries(conn)
    if args.json:
        print(json.dumps([e.record.to_dict() for e in entries], indent=2))
    elif not entries:
        print("The governance catalog is empty: run the main job first (see README).")
    else:
        print(catalog_summary(entries))
    return EXIT_OK


def _caller() -> str:
    """The principal of the API key in ``PLANE_API_KEY`` (`data_plane.credentials`)."""
    import os

    from data_plane import credentials

    with psycopg.connect(database_url(role="plane")) as conn:
        name = credentials.authenticate(conn, os.environ.get(credentials.API_KEY_ENV))
        conn.commit()
    return name


def _principals():
    import os
    from pathlib import Path

    from data_plane.access import load_principals
    from resources.database import project_root

    raw = Path(os.environ.get("PLANE_PRINCIPALS_FILE") or "config/principals.yaml").expanduser()
    return load_principals(raw if raw.is_absolute() else project_root() / raw)


def _keys(args: argparse.Namespace) -> int:
    from data_plane import credentials

    with psycopg.connect(database_url()) as conn:
        if args.keys_command == "issue":
            if args.principal not in _principals():
                print(
                    f"plane: unknown principal {args.principal!r} (see config/principals.yaml)",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            key_id, token = credentials.issue(conn, args.principal)
            conn.commit()
            print(f"key {key_id} for {args.principal} (shown once; store it as a secret):")
            print(token)
        elif args.keys_command == "revoke":
            if not credentials.revoke(conn, args.key_id):
                print(f"plane: no active key {args.key_id!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            conn.commit()
            print(f"key {args.key_id} revoked")
        else:
            rows = [
                [k, p, f"{c:%Y-%m-%d %H:%M}", f"{r:%Y-%m-%d %H:%M}" if r else "-"]
                for k, p, c, r in credentials.keys(conn)
            ]
            print(format_table(["key", "principal", "issued", "revoked"], rows))
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    import os

    from data_plane import credentials
    from resources.vectors import open_retriever  # loads the model only for this command

    caller = _caller()  # before anything is loaded or read
    # as rp_reader: the stores' search function checks the key and the read grants again
    retriever = open_retriever(credential=os.environ[credentials.API_KEY_ENV])
    try:
        principal = retriever.principal(caller)
        for_user = retriever.principal(args.on_behalf_of) if args.on_behalf_of else None
    except LookupError as exc:
        print(f"plane: {exc} (see config/principals.yaml)", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        hits = retriever.search(
            args.query, principal, k=args.k, region=args.region, on_behalf_of=for_user
        )
    except VectorStoreError as exc:
        print(
            f"plane: {exc}\nplane: run the main job first (bash scripts/main.sh)", file=sys.stderr
        )
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps([hit.__dict__ for hit in hits], indent=2))
        return EXIT_OK
    region = args.region or (for_user or principal).home_region
    acting = f" for {for_user.name}" if for_user else ""
    print(f"{len(hits)} results for {principal.name}{acting} served in {region}:")
    rows = [
        [
            f"{h.score:.3f}",
            h.dataset_id,
            h.row_ref,
            h.residency,
            h.classification,
            "yes" if h.pii else "no",
            h.text[:70],
        ]
        for h in hits
    ]
    print(format_table(["score", "dataset", "row", "residency", "class", "pii", "text"], rows))
    return EXIT_OK


def _parse_now(value: str | None):
    from datetime import UTC, datetime

    if not value:
        return datetime.now(UTC)
    try:
        now = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--now: not an ISO-8601 time: {value!r}") from None
    if now.tzinfo is None:
        raise ValueError("--now: give a timezone, e.g. 2026-11-25T12:00:02Z")
    return now


def _place(args: argparse.Namespace) -> int:
    from reasoning_plane import inputs
    from reasoning_plane.batch import place_batch
    from reasoning_plane.explain import explain, to_dict
    from reasoning_plane.model import PLACED, Snapshot
    from reasoning_plane.policy import PlacementPolicy, load_policy

    snapshot = Snapshot(
        fleet=inputs.load_fleet(args.fleet),
        quotas=inputs.load_quotas(args.quotas),
        budgets=inputs.load_budgets(args.budgets) if args.budgets else {},
        usage={},
        telemetry=inputs.load_telemetry(args.telemetry) if args.telemetry else {},
        catalog=inputs.load_catalog_records(args.catalog),
        now=_parse_now(args.now),
    )
    policy = load_policy(args.policy) if args.policy else PlacementPolicy()
    decisions = place_batch(inputs.load_requests(args.requests), snapshot, policy)
    if args.json:
        print(json.dumps([to_dict(d) for d in decisions], indent=2))
    else:
        print("\n\n".join(explain(d) for d in decisions))
    return EXIT_OK if all(d.status == PLACED for d in decisions) else EXIT_NO_FEASIBLE


def _explain(args: argparse.Namespace) -> int:
    from reasoning_plane import store
    from reasoning_plane.serving.records import explain_record
    from serving.records import logged as served

    with psycopg.connect(database_url(role="plane")) as conn:
        store.ensure_schema(conn)
        logged = store.decision_for(conn, args.id)
        request = served(conn, args.id) if logged is None else None
    if request is not None:  # a gateway request (its request or decision id)
        print(json.dumps(request, indent=2, default=str) if args.json else explain_record(request))
        return EXIT_OK
    if logged is None:
        print(
            f"plane: no decision for run, decision or serving request id {args.id!r}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    print(json.dumps(logged.payload, indent=2) if args.json else logged.explanation)
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from reasoning_plane import store
    from reasoning_plane.inputs import load_fleet
    from reasoning_plane.policy import PlacementPolicy, load_policy
    from reasoning_plane.replay import replay
    from resources.plane import PlaneResource
    from resources.postgres import PostgresResource

    policy = load_policy(args.policy) if args.policy else PlacementPolicy()
    fleet = (
        load_fleet(args.fleet) if args.fleet else PlaneResource(postgres=PostgresResource()).fleet()
    )
    since = _parse_now(args.since) if args.since else None
    with psycopg.connect(database_url(role="plane")) as conn:
        store.ensure_schema(conn)
        logged = store.decisions(conn, since=since)
    rows = replay([d.payload for d in logged], fleet, policy)
    changed = [r for r in rows if r.changed]
    delta = sum(r.cost_after - r.cost_before for r in rows)
    if args.json:
        print(
            json.dumps(
                {
                    "replayed": len(rows),
                    "changed": [r.__dict__ for r in changed],
                    "cost_delta_usd": round(delta, 6),
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(
        f"replayed {len(rows)} decisions under policy {policy.version()}: "
        f"{len(changed)} would differ; cost delta ${delta:+,.2f}"
    )
    if changed:
        print(
            format_table(
                ["decision", "request", "before", "after", "cost before", "cost after"],
                [
                    [
                        r.decision_id,
                        r.request_id,
                        r.before,
                        r.after,
                        f"{r.cost_before:.2f}",
                        f"{r.cost_after:.2f}",
                    ]
                    for r in changed
                ],
            )
        )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import dagster as dg

    from plane_cli.run import FAILED, run_placed, summary_table
    from resources.plane import PlaneResource
    from resources.postgres import PostgresResource
    from stack_defs.definitions import defs

    graph = defs.resolve_asset_graph()
    if args.select:
        keys = dg.AssetSelection.from_coercible(args.select).resolve(graph)
    else:
        keys = defs.resolve_job_def(args.job).asset_layer.selected_asset_keys
    if not keys:
        raise ValueError(f"--select {args.select!r}: selects no asset")
    import os

    home = os.environ.get("DAGSTER_HOME")
    with dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral() as instance:
        outcomes = run_placed(
            defs,
            keys,
            instance=instance,
            plane=PlaneResource(postgres=PostgresResource()),
        )
    print()
    print(summary_table(outcomes))
    return 1 if any(o.status == FAILED for o in outcomes) else EXIT_OK


def _request(args: argparse.Namespace) -> int:
    from reasoning_plane import store
    from reasoning_plane.explain import request_to_dict
    from reasoning_plane.inputs import load_requests

    caller = _caller()
    requests = load_requests(args.requests)
    with psycopg.connect(database_url(role="plane")) as conn:
        store.ensure_schema(conn)
        for r in requests:
            payload = {**request_to_dict(r), "requested_by": caller}
            added = store.add_request(conn, r.request_id, payload)
            print(f"{r.request_id}: {'queued' if added else 'already queued'}")
        conn.commit()
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    from reasoning_plane import simulation

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in simulation.POLICIES]
    if not policies or unknown:
        raise ValueError(
            f"--policies: unknown policy {unknown[0] if unknown else '(none)'!r}; "
            f"choose from {','.join(simulation.POLICIES)}"
        )
    if args.requests is not None and args.requests < 1:
        raise ValueError("--requests must be at least 1")
    if args.trace == "seed-like":
        scenario = simulation.seed_like_scenario(args.seed, n_batches=args.requests or 96)
    else:
        scenario = simulation.generated_scenario(args.seed, n_requests=args.requests or 2000)
    results = simulation.compare(scenario, policies, args.seed)
    gaps = simulation.summary(results)
    if args.json:
        print(
            json.dumps(
                {
                    "scenario": scenario.name,
                    "unit": scenario.unit,
                    "results": {name: r.to_dict() for name, r in results.items()},
                    "summary": gaps,
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(f"{scenario.name}: {len(scenario.trace)} workload requests, cost per {scenario.unit}")
    rows = [
        [
            name,
            r.placed,
            r.deferred,
            r.expired,
            r.rejected,
            f"{r.total_cost_usd:,.2f}",
            f"{r.cost_per_1000_usd:,.2f}",
            r.residency_violations,
            r.compliance_violations,
            r.slo_misses,
            r.quota_violations,
            r.budget_overruns,
            r.capacity_overbooked,
            f"{r.decide_s:.2f}",
        ]
        for name, r in results.items()
    ]
    headers = ["policy", "placed", "deferred", "expired", "rejected", "cost $", "$ per 1,000"]
    headers += ["residency", "compliance", "slo miss", "quota", "budget", "overbooked"]
    print(format_table([*headers, "decide s"], rows))
    pools = list(next(iter(results.values())).utilisation)
    print("\nmean utilisation per pool (trace jobs and background work):")
    print(
        format_table(
            ["pool", *results],
            [[pool, *(f"{r.utilisation[pool]:.0%}" for r in results.values())] for pool in pools],
        )
    )
    if gaps["plane_vs_naive"] is not None:
        print(f"plane vs naive: {gaps['plane_vs_naive']:.1%} lower cost per 1,000")
    if gaps["plane_vs_hindsight"] is not None:
        bound = gaps["plane_vs_lower_bound"]
        print(
            f"plane vs hindsight: {gaps['plane_vs_hindsight']:+.1%}"
            + (f" (vs its proven lower bound: {bound:+.1%})" if bound is not None else "")
        )
    if "hindsight" in results:
        print(results["hindsight"].notes)
    return EXIT_OK


def _agent(args: argparse.Namespace) -> int:
    import os
    import socket

    from reasoning_plane.agent import GATEWAY_ENV, TOKEN_FILE_ENV, gateway_push, run_agent

    if args.check:  # liveness: NVML readable, and the gateway (or the database) reachable
        return _agent_check(args)
    cluster = (args.cluster or "").strip()
    if not cluster:
        raise ValueError("--cluster: name the cluster of this node, as in the fleet file")
    node = (args.node or os.environ.get("NODE_NAME") or socket.gethostname()).strip()
    pools = _agent_pools(cluster)
    if args.interval <= 0:
        raise ValueError("--interval must be a positive number of seconds")
    gateway_url = args.gateway or os.environ.get(GATEWAY_ENV)
    token_file = args.token_file or os.environ.get(TOKEN_FILE_ENV)
    if bool(gateway_url) != bool(token_file):
        raise ValueError("--gateway and --token-file go together (the pod's projected token)")
    push = gateway_push(gateway_url, token_file) if gateway_url else None
    url = None if push else agent_url(cluster, node)
    if args.max_clock_skew is not None and not args.max_clock_skew >= 0:
        raise ValueError("--max-clock-skew must be a number of seconds >= 0")
    connect = (lambda: psycopg.connect(url, connect_timeout=5)) if url else None
    if args.once:
        return _agent_once(args, connect, push, cluster, node, pools)
    run_agent(
        connect,
        cluster,
        push=push,
        interval_s=args.interval,
        gpu_type=args.gpu_type,
        max_clock_skew_s=args.max_clock_skew,
        node=node,
        pools=pools,
        log=reporter("plane.agent"),
    )
    return EXIT_OK


def _agent_check(args: argparse.Namespace) -> int:
    """``plane agent --check``: NVML readable, and the gateway (or the database) reachable."""
    import os

    from reasoning_plane.agent import GATEWAY_ENV, TOKEN_FILE_ENV
    from reasoning_plane.gpu_telemetry import read_gpus

    report = read_gpus()
    gateway_url = args.gateway or os.environ.get(GATEWAY_ENV)
    if gateway_url:
        import urllib.request

        urllib.request.urlopen(gateway_url.rstrip("/") + "/healthz", timeout=5).close()
        token_file = args.token_file or os.environ.get(TOKEN_FILE_ENV) or ""
        if not os.access(token_file, os.R_OK):
            raise ValueError(f"the service-account token {token_file!r} is not readable")
    else:
        with psycopg.connect(database_url(role="plane"), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    print(f"{'ok' if report.available else 'no GPU'}: {report.reason}")
    return EXIT_OK if report.available else EXIT_NOT_FOUND


def _agent_pools(cluster: str):
    """The pools of ``cluster`` in the fleet file (None without one: then only ``local``)."""
    import os

    from reasoning_plane.agent import pools_of
    from reasoning_plane.inputs import load_fleet

    fleet_file = os.environ.get("PLANE_FLEET_FILE")
    if fleet_file:
        fleet = load_fleet(fleet_file)
        if fleet.get(cluster) is None:
            names = ", ".join(c.name for c in fleet.clusters)
            raise ValueError(
                f"--cluster {cluster!r} is not a cluster of the fleet file {fleet_file} ({names})"
            )
        source = fleet.get(cluster).telemetry
        if source is not None:
            raise ValueError(
                f"--cluster {cluster!r} takes its telemetry from Prometheus ({source.url}) in "
                f"the fleet file {fleet_file}: the plane does not read its agents' samples; "
                "run no agent there, or set its telemetry source to agent"
            )
        return pools_of(fleet, cluster)
    if cluster != "local":
        raise ValueError(
            f"--cluster {cluster!r}: no fleet file (PLANE_FLEET_FILE) says such a cluster "
            "exists; without one the fleet is this machine alone (--cluster local)"
        )
    return None


def _agent_once(args: argparse.Namespace, connect, push, cluster: str, node: str, pools) -> int:
    """``plane agent --once``: read the GPUs, print and push one round of samples."""
    from reasoning_plane.agent import run_agent, samples_from_report
    from reasoning_plane.gpu_telemetry import read_gpus

    report = read_gpus()
    for s in samples_from_report(cluster, report, args.gpu_type, node=node, pools=pools):
        print(
            f"{s.cluster}/{s.gpu_type} on {node}: {s.free_gpus} free, utilisation "
            f"{s.utilisation:.0%}, {s.free_memory_gb:.1f} GB free per GPU"
        )
    stats = run_agent(
        connect,
        cluster,
        push=push,
        iterations=1,
        gpu_type=args.gpu_type,
        reader=lambda: report,
        max_clock_skew_s=args.max_clock_skew,
        node=node,
        pools=pools,
    )
    refused = f", refused {stats.refused} from the future" if stats.refused else ""
    print(f"pushed {stats.samples} samples{refused} ({report.reason})")
    return EXIT_OK


def _gateway(args: argparse.Namespace) -> int:
    """``plane telemetry-gateway``: agents of this cluster push here with their pod's token."""
    import os

    from reasoning_plane.inputs import load_fleet
    from reasoning_plane.telemetry_gateway import Gateway, kubernetes_review, serve

    fleet_file = os.environ.get("PLANE_FLEET_FILE")
    if fleet_file and load_fleet(fleet_file).get(args.cluster) is None:
        raise ValueError(f"--cluster {args.cluster!r} is not a cluster of {fleet_file}")
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {args.listen!r}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    url = agent_url(args.cluster, None)
    gateway = Gateway(
        cluster=args.cluster,
        review=kubernetes_review(args.kubeconfig),
        connect=lambda: psycopg.connect(url, connect_timeout=5),
        max_clock_skew_s=args.max_clock_skew,
    )
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = serve(gateway, host or "0.0.0.0", int(port), tls=tls)
    print(f"telemetry gateway for {args.cluster} on {args.listen}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


def _db(args: argparse.Namespace) -> int:
    """``plane db migrate`` / ``plane db agent-role``: an administrator's set-up (the admin URL:
    PLANE_ADMIN_DATABASE_URL, else PLANE_DATABASE_URL, else the embedded server)."""
    import os

    from data_plane import roles

    url = os.environ.get(roles.ADMIN_URL_ENV) or database_url()
    with psycopg.connect(url) as admin:
        if args.db_command == "agent-role":
            from reasoning_plane import store

            store.ensure_schema(admin)
            role = store.ensure_agent_role(admin, args.cluster, args.node)
            admin.commit()
            scope = args.node or "every node"
            print(f"{role}: may write the samples of {args.cluster}/{scope} only")
            if args.node:
                print(f"  and, as {args.node}'s serving node agent, its residency rows only")
            print("give it a password (ALTER ROLE ... PASSWORD) and the node agent its URL")
            return EXIT_OK
        from plane_cli.migrate import migrate

        done = migrate(admin, _vector_stores())
        from resources.vectors import sync_read_grants

        grants = sync_read_grants(admin)
        admin.commit()
        print(f"{grants} read grants decided by the Cedar policies over the catalog")
    rows = [[unit, version, applied] for unit, version, applied in done]
    print(format_table(["schema", "version", "steps applied"], rows))
    return EXIT_OK


def _vector_stores():
    from data_plane.retrieval import load_store_config
    from resources.database import project_root

    return list(load_store_config(project_root() / "config" / "vector_stores.yaml").values())


def _gpus(args: argparse.Namespace) -> int:
    from reasoning_plane.gpu_telemetry import read_gpus

    report = read_gpus()
    if args.json:
        gpus = [
            {
                "index": g.index,
                "name": g.name,
                "memory_total_gb": g.memory_total_gb,
                "memory_used_gb": g.memory_used_gb,
                "utilisation": g.utilisation,
                "processes": [p.pid for p in g.processes],
            }
            for g in report.gpus
        ]
        print(
            json.dumps(
                {
                    "available": report.available,
                    "reason": report.reason,
                    "observed_at": report.observed_at.isoformat(),
                    "driver": report.driver_version,
                    "gpus": gpus,
                },
                indent=2,
            )
        )
        return EXIT_OK
    if not report.available:
        print(f"no GPU: {report.reason}; the local cluster has 0 GPUs")
        return EXIT_OK
    print(
        format_table(
            ["gpu", "name", "memory used / total GB", "utilisation", "processes"],
            [
                [
                    g.index,
                    g.name,
                    f"{g.memory_used_gb:.1f} / {g.memory_total_gb:.1f}",
                    f"{g.utilisation:.0%}",
                    len(g.processes),
                ]
                for g in report.gpus
            ],
        )
    )
    return EXIT_OK


def _verify_log(args: argparse.Namespace) -> int:
    from data_plane import anchors, catalog_store
    from data_plane.hash_chain import is_chained, verify_chain

    names = args.log or list(CHAINED_LOGS)
    anchor = None if args.no_anchor else anchors.latest()
    anchored = (anchor or {}).get("heads", {})
    heads: dict[str, str] = {}
    for item in args.expect_head or []:
        log, sep, head = item.partition("=")
        if not sep or log not in CHAINED_LOGS:
            raise ValueError(
                f"--expect-head must be LOG=POS:HASH with LOG one of {list(CHAINED_LOGS)}"
            )
        heads[log] = head
    rows, tampered = [], False
    with psycopg.connect(database_url(role="plane")) as conn:
        for name in names:
            table = CHAINED_LOGS[name]
            if not is_chained(conn, table):
                rows.append([name, "-", "-", "not created yet", "", "-"])
                continue
            expect = heads.get(name) or anchored.get(table)
            report = verify_chain(conn, table, expect_head=expect)
            problems = list(report.problems)
            if name == "catalog":
                problems += catalog_store.drift(conn)
            tampered = tampered or bool(problems)
            rows.append(
                [
                    name,
                    report.chained,
                    report.unchained,
                    "ok" if not problems else "TAMPERED",
                    report.head,
                    (expect or "-").split(":")[0],
                ]
            )
            for problem in problems:
                print(f"plane: {problem}", file=sys.stderr)
    print(
        format_table(
            ["log", "rows", "before chain", "verdict", "head (record it)", "anchored head"], rows
        )
    )
    if anchor is not None and not args.no_anchor:
        print(f"checked against the anchor written at {anchor.get('written_at')}")
    return EXIT_TAMPERED if tampered else EXIT_OK


def _db_url(_: argparse.Namespace) -> int:
    print(redact_url(database_url()))
    return EXIT_OK


def _data_commands(sub) -> None:
    """``plane`` sub-commands: the governance catalog and governed retrieval."""

    cat = sub.add_parser("catalog", help="show the governance catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command")
    show = cat_sub.add_parser("show", help="one dataset's record as JSON")
    show.add_argument("dataset")
    cat.add_argument("--json", action="store_true", help="all records as a JSON list")
    cat.set_defaults(func=_catalog, dataset=None)

    search = sub.add_parser("search", help="governed retrieval (Layer 1B)")
    search.add_argument("query")
    search.add_argument(
        "--on-behalf-of", help="the user an agent acts for (gets what both may read)"
    )
    search.add_argument("--region", help="region the answer is served in (default: home region)")
    search.add_argument("-k", type=int, default=5, help="number of results (1-1000)")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=_search)


def _placement_commands(sub) -> None:
    """``plane`` sub-commands: what-if placement, explanations, replay, queued requests."""
    place = sub.add_parser("place", help="what-if placement from files (Layer 2C)")
    place.add_argument("--fleet", required=True)
    place.add_argument("--quotas", required=True, help="ResourceQuota manifests (YAML)")
    place.add_argument("--catalog", required=True, help="governance records (JSON)")
    place.add_argument("--requests", required=True)
    place.add_argument("--budgets")
    place.add_argument("--telemetry")
    place.add_argument("--policy")
    place.add_argument("--now", help="decision time (default: now)")
    place.add_argument("--json", action="store_true")
    place.set_defaults(func=_place)

    exp = sub.add_parser(
        "explain", help="the logged decision of a run, decision or gateway request id"
    )
    exp.add_argument("id")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=_explain)

    rep = sub.add_parser("replay", help="logged decisions under a changed fleet or policy")
    rep.add_argument("--fleet")
    rep.add_argument("--policy")
    rep.add_argument("--since")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=_replay)

    req = sub.add_parser("request", help="queue explicit workload requests")
    req.add_argument("--requests", required=True)
    req.set_defaults(func=_request)


def _key_commands(sub) -> None:
    """``plane`` sub-commands: API keys."""
    keys = sub.add_parser("keys", help="API keys of principals (shown once, stored hashed)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    issue = keys_sub.add_parser("issue", help="a new key for a principal of principals.yaml")
    issue.add_argument("--principal", required=True)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys_sub.add_parser("list", help="every key's id, principal and dates (never the key)")
    keys.set_defaults(func=_keys)


def _run_commands(sub) -> None:
    """``plane`` sub-commands: placed runs on this machine and the simulator."""
    run = sub.add_parser("run", help="place assets with the plane and run them on this machine")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--select", help="asset selection, e.g. 'embeddings/support_tickets'")
    which.add_argument("--job", default="main_job", help="an asset job (default main_job)")
    run.set_defaults(func=_run)

    sim = sub.add_parser("simulate", help="replay a seeded trace through placement policies")
    sim.add_argument("--trace", choices=["seed-like", "generated"], default="seed-like")
    sim.add_argument(
        "--requests",
        type=int,
        help="seed-like: times each request of examples/seed_scenario/requests.yaml recurs "
        "(default 96); generated: workload requests (default 2000)",
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--policies", default="naive,greedy,plane,hindsight")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=_simulate)


def _telemetry_commands(sub) -> None:
    """``plane`` sub-commands: GPU telemetry: the node agent, the gateway, this machine's GPUs."""
    agent = sub.add_parser("agent", help="push this node's GPU telemetry every interval")
    agent.add_argument("--cluster", default="local", help="cluster name as in the fleet file")
    agent.add_argument("--node", help="this node's name (default: NODE_NAME, else the hostname)")
    agent.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    agent.add_argument("--gpu-type", help="pool name in the fleet file (default: NVML's name)")
    agent.add_argument(
        "--max-clock-skew",
        type=float,
        help="refuse samples stamped more than this many seconds ahead of the database's clock "
        "(default: the placement policy's default max_clock_skew_s, 5)",
    )
    agent.add_argument(
        "--gateway",
        help="push through this telemetry gateway (URL) instead of the database "
        "(default: PLANE_TELEMETRY_GATEWAY)",
    )
    agent.add_argument(
        "--token-file",
        help="the pod's projected service-account token, for the gateway "
        "(default: PLANE_TELEMETRY_TOKEN_FILE)",
    )
    mode = agent.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one sample, printed, then exit")
    mode.add_argument("--check", action="store_true", help="liveness check: NVML and database")
    agent.set_defaults(func=_agent)

    gateway = sub.add_parser(
        "telemetry-gateway", help="receive agents' telemetry, each checked to be its own node's"
    )
    gateway.add_argument("--cluster", required=True, help="the cluster served (fleet name)")
    gateway.add_argument("--listen", default="0.0.0.0:8090", help="HOST:PORT")
    gateway.add_argument("--kubeconfig", help="API server for TokenReview (default: in-cluster)")
    gateway.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    gateway.add_argument("--tls-key", help="and this key (PEM)")
    gateway.add_argument("--max-clock-skew", type=float, help="as for plane agent")
    gateway.set_defaults(func=_gateway)

    gpus = sub.add_parser("gpus", help="this machine's GPUs (NVML)")
    gpus.add_argument("--json", action="store_true")
    gpus.set_defaults(func=_gpus)


def _database_commands(sub) -> None:
    """``plane`` sub-commands: the database URL, the administrator's set-up, the logs' chains."""
    db = sub.add_parser("db-url", help="the PostgreSQL URL in use (password redacted)")
    db.set_defaults(func=_db_url)
    dbadmin = sub.add_parser("db", help="administrator set-up: schemas, roles, grants")
    db_sub = dbadmin.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="create or update every schema, role and grant")
    agent_role = db_sub.add_parser("agent-role", help="a node agent's own login role")
    agent_role.add_argument("--cluster", required=True)
    agent_role.add_argument(
        "--node", help="the node (default: any node of the cluster, for an agent DaemonSet)"
    )
    dbadmin.set_defaults(func=_db)

    ver = sub.add_parser("verify-log", help="check the hash chains of the append-only logs")
    ver.add_argument("--log", action="append", choices=list(CHAINED_LOGS), help="default: all")
    ver.add_argument(
        "--expect-head",
        action="append",
        metavar="LOG=POS:HASH",
        help="a head printed earlier: that row must still have that hash (instead of the anchor)",
    )
    ver.add_argument(
        "--no-anchor", action="store_true", help="do not check against the latest anchor"
    )
    ver.set_defaults(func=_verify_log)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plane", description="Reasoning Plane command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _data_commands,
        _placement_commands,
        _key_commands,
        _run_commands,
        _telemetry_commands,
        _database_commands,
        _serve_commands,
        _metrics_commands,
        _node_agent_commands,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logs()  # PLANE_LOG_FORMAT, PLANE_LOG_LEVEL
        return int(args.func(args))
    except ValueError as exc:  # bad input files and arguments: say what and where
        print(f"plane: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except psycopg.DataError as exc:  # e.g. a NUL byte in a dataset name: refused, not a crash
        print(f"plane: invalid value: {redact(str(exc).strip())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AuthenticationError as exc:
        print(f"plane: {exc}", file=sys.stderr)
        return EXIT_UNAUTHENTICATED
    except psycopg.OperationalError as exc:  # database down or restarting: say so, no traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(
            f"plane: the database is unavailable ({redact(first)}); nothing was read or "
            "written, try again when it is back",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
