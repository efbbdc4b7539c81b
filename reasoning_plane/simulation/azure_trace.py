"""A scenario from the Azure LLM inference trace 2023 (conversation service): real arrivals.

``data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv`` (CC BY 4.0; Patel et al.,
"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024; see the README
beside it) has one row per LLM inference request: ``TIMESTAMP``, ``ContextTokens`` (prompt) and
``GeneratedTokens`` (output); 19,366 requests over about an hour, no prompt text.

Each row becomes one workload request (``TraceMapping`` holds every number of the mapping):

* arrival: seconds after the first row's timestamp;
* duration on the reference GPU (an A100): ``context / prefill_tokens_per_s + generated /
  decode_tokens_per_s``. The throughputs are a GPU's aggregate throughput in a continuously
  batched server (defaults 5,000 prompt and 1,500 output tokens per second, an assumption for a
  mid-sized model), so the duration is the request's share of one GPU, not its wall latency; a
  pool's ``speed`` divides it as for any request;
* GPUs and memory by context size (the KV cache grows with it): up to ``small_context`` (2,048)
  tokens 1 GPU of ``small_memory_gb`` (16 GB, fits an L4), up to ``large_context`` (8,192) 1 GPU of
  ``medium_memory_gb`` (40 GB), beyond that 2 GPUs of ``large_memory_gb`` (80 GB);
* data: prompt and output at ``bytes_per_token`` (4) bytes a token;
* team and dataset: drawn with the seed from ``TEAMS`` (their shares and their own datasets), so
  residency, compliance, quota and budget rules apply as on the generated day; the trace itself
  says nothing about them;
* SLO ``latency_slo_ms`` (250 ms, an interactive service) and priority ``priority`` (300).

The fleet, catalog, quotas and budgets are those of ``generated_scenario`` (public list prices).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from reasoning_plane.model import WorkloadRequest
from reasoning_plane.simulation.generators import (
    TEAMS,
    generate_catalog,
    generate_fleet,
    team_budgets,
    team_quotas,
)
from reasoning_plane.simulation.scenario import Scenario, TimedRequest

AZURE_TRACE = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "azure-llm-inference-2023"
    / "AzureLLMInferenceTrace_conv.csv"
)
_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class TraceMapping:
    """The numbers that turn a trace row into a workload request (module docstring)."""

    prefill_tokens_per_s: float = 5000.0
    decode_tokens_per_s: float = 1500.0
    small_context: int = 2048
    large_context: int = 8192
    small_memory_gb: float = 16.0
    medium_memory_gb: float = 40.0
    large_memory_gb: float = 80.0
    bytes_per_token: float = 4.0
    latency_slo_ms: float | None = 250.0
    priority: int = 300


def _timestamp(text: str, where: str) -> datetime:
    """``2023-11-16 18:15:46.6805900``: seven fractional digits, more than ``fromisoformat``."""
    whole, _, fraction = text.strip().partition(".")
    try:
        return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}")
    except ValueError:
        raise ValueError(f"{where}: TIMESTAMP: not a timestamp: {text!r}") from None


def read_trace(
    path: Path | str = AZURE_TRACE, limit: int | None = None
) -> list[tuple[float, int, int]]:
    """(arrival seconds after the first row, context tokens, generated tokens) per row."""
    path = Path(path)
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header: missing column {missing[0]}")
        first: datetime | None = None
        for i, raw in enumerate(reader):
            if limit is not None and i >= limit:
                break
            where = f"{path}: row {i + 2}"
            at = _timestamp(raw["TIMESTAMP"], where)
            first = first or at
            try:
                context, generated = int(raw["ContextTokens"]), int(raw["GeneratedTokens"])
            except ValueError:
                raise ValueError(
                    f"{where}: ContextTokens/GeneratedTokens: not whole numbers"
                ) from None
            if context < 0 or generated < 0:
                raise ValueError(f"{where}: ContextTokens/GeneratedTokens: negative")
            rows.append(((at - first).total_seconds(), context, generated))
    return rows


def trace_requests(
    rows: list[tuple[float, int, int]], seed: int = 0, mapping: TraceMapping = TraceMapping()
) -> list[TimedRequest]:
    """The workload requests of ``rows`` (``read_trace``), deterministic for a seed."""
    rng = np.random.default_rng([seed, 4])
    shares = np.array([t[1] for t in TEAMS])
    teams = rng.choice(len(TEAMS), size=len(rows), p=shares / shares.sum())
    picks = rng.uniform(size=len(rows))
    out = []
    for i, ((arrival, context, generated), t) in enumerate(zip(rows, teams, strict=True)):
        team, _, datasets, _ = TEAMS[t]
        dataset = datasets[int(picks[i] * len(datasets))]
        if context <= mapping.small_context:
            gpus, memory = 1, mapping.small_memory_gb
        elif context <= mapping.large_context:
            gpus, memory = 1, mapping.medium_memory_gb
        else:
            gpus, memory = 2, mapping.large_memory_gb
        duration = context / mapping.prefill_tokens_per_s + generated / mapping.decode_tokens_per_s
        request = WorkloadRequest(
            request_id=f"azure-conv-{i:05d}",
            workload=f"inference/{dataset}",
            team=team,
            datasets=(dataset,),
            gpu_count=gpus,
            gpu_memory_gb=memory,
            estimated_duration_s=max(round(duration, 4), 0.001),
            data_gb=(context + generated) * mapping.bytes_per_token / 1e9,
            latency_slo_ms=mapping.latency_slo_ms,
            priority=mapping.priority,
        )
        out.append(TimedRequest(round(arrival, 3), request))
    return out


def azure_scenario(
    seed: int = 0,
    limit: int | None = None,
    n_clusters: int = 6,
    path: Path | str = AZURE_TRACE,
    mapping: TraceMapping = TraceMapping(),
) -> Scenario:
    """The Azure conversation trace (its first ``limit`` rows) on the generated, publicly priced
    fleet, with the generated day's catalog, quotas and budget rule."""
    trace = trace_requests(read_trace(path, limit), seed, mapping)
    fleet = generate_fleet(seed, n_clusters)
    catalog = generate_catalog(seed)
    quotas = team_quotas()
    last = max((tr.arrival_s for tr in trace), default=0.0)
    return Scenario(
        name=f"azure-llm-conv-2023(requests={len(trace)}, clusters={n_clusters})",
        fleet=fleet,
        trace=tuple(trace),
        catalog=catalog,
        quotas=quotas,
        budgets=team_budgets(fleet, quotas, catalog, trace),
        hours=max(last, 1.0) / 3600.0,
        unit="1,000 LLM inference requests",
    )
