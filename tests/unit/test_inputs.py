"""Strict loaders of the reasoning plane's input files: the seed scenario, bad inputs, fuzzing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.errors import InputFileError
from reasoning_plane.inputs import (
    MAX_FILE_BYTES,
    load_budgets,
    load_catalog_records,
    load_fleet,
    load_quotas,
    load_requests,
    load_telemetry,
)
from reasoning_plane.model import Toleration
from tests.strategies import json_like

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "seed_scenario"

Loader = Callable[[Path | str], Any]


# ------------------------------------------------------------------------------------------------
# The seed scenario's files
# ------------------------------------------------------------------------------------------------


def test_fleet_example() -> None:
    fleet = load_fleet(EXAMPLES / "fleet.yaml")
    assert [c.name for c in fleet.clusters] == ["us-east-a100", "eu-fra-a10", "eu-par-h100"]
    us = fleet.get("us-east-a100")
    assert us is not None
    assert (us.zone, us.region, us.location) == ("US", "us-east-1", "Ashburn")
    assert us.certifications == frozenset({"SOC2", "ISO27001"})
    assert "GDPR" not in us.certifications
    assert us.egress_per_gb == 0.08
    assert us.latency_ms == {"US": 5.0, "EU": 95.0}
    assert us.kube_context == "us-prod"
    a100 = us.pool("A100-80GB")
    assert a100 is not None
    assert (a100.memory_gb, a100.total, a100.price_per_hour, a100.speed) == (80, 32, 3.67, 1.0)
    assert a100.inference_latency_ms == 18
    assert a100.node_labels == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert a100.tolerations == (Toleration("nvidia.com/gpu", "Exists", None, "NoSchedule"),)
    assert isinstance(a100.total, int)

    fra = fleet.get("eu-fra-a10")
    assert fra is not None
    assert fra.certifications == frozenset({"GDPR", "ISO27001", "SOC2"})
    assert (fra.cpu_price_per_hour, fra.cpu_slots) == (0.4, 8)
    assert fra.node_labels == {"topology.kubernetes.io/region": "eu-central-1"}
    a10 = fra.pool("A10")
    assert a10 is not None
    assert (a10.memory_gb, a10.total, a10.price_per_hour, a10.speed) == (24, 16, 1.10, 0.45)
    assert fra.namespace("financial-ml") == "financial-ml"  # default template {team}
    assert fra.service_account == "dagster-run"

    par = fleet.get("eu-par-h100")
    assert par is not None
    h100 = par.pool("H100-80GB")
    assert h100 is not None
    assert (h100.total, h100.price_per_hour, h100.speed, h100.inference_latency_ms) == (
        8,
        6.98,
        1.9,
        12,
    )
    assert par.kube_context == "eu-prod-2"
    assert (par.cpu_slots, par.local, par.accepts_unknown_residency) == (0, False, False)


def test_quotas_example() -> None:
    quotas = load_quotas(EXAMPLES / "quotas.yaml")
    assert {t: q.gpus for t, q in quotas.items()} == {
        "financial-ml": 16,
        "customer-support": 4,
        "media-ml": 8,
        "commerce-analytics": 8,
    }
    assert quotas["financial-ml"].team == "financial-ml"
    assert quotas["financial-ml"].source == f"{EXAMPLES / 'quotas.yaml'}#ml-team-financial-models"


def test_budgets_example() -> None:
    budgets = load_budgets(EXAMPLES / "budgets.yaml")
    assert {t: (b.limit_usd, b.period) for t, b in budgets.items()} == {
        "financial-ml": (5000.0, "monthly"),
        "customer-support": (800.0, "monthly"),
        "media-ml": (2000.0, "monthly"),
        "commerce-analytics": (1500.0, "monthly"),
    }


def test_requests_example() -> None:
    first, second = load_requests(EXAMPLES / "requests.yaml")
    assert first.request_id == "eu-orders-copilot-inference"
    assert first.workload == "inference/customer_orders_eu"
    assert first.team == "financial-ml"
    assert first.datasets == ("customer_orders_eu",)
    assert (first.gpu_count, first.gpu_memory_gb, first.estimated_duration_s) == (1, 16, 3600)
    assert (first.data_gb, first.latency_slo_ms, first.priority) == (50, 250, 500)
    assert (first.gpu_optional, first.recurring, first.current_cluster) == (False, False, None)
    assert second.request_id == "transcript-tagging"
    assert second.team == "media-ml"
    assert second.datasets == ("conference_transcripts",)
    assert (second.gpu_count, second.estimated_duration_s, second.data_gb) == (2, 7200, 200)
    assert second.latency_slo_ms is None
    assert second.priority == 100


def test_catalog_example() -> None:
    records = load_catalog_records(EXAMPLES / "catalog.json")
    assert set(records) == {
        "customer_orders_eu",
        "customer_orders_us",
        "conference_transcripts",
        "support_tickets",
    }
    eu = records["customer_orders_eu"]
    assert eu.to_dict() == {
        "dataset_id": "customer_orders_eu",
        "classification": "PII",
        "data_residency": "EU",
        "retention_policy": "7_years",
        "storage_endpoints": ["s3://eu-central-1/customer-data"],
        "compliance_tags": {"gdpr_compliant": True, "data_classification": "Level_3"},
        "lineage": {"source_system": "SAP_ERP", "last_updated": "2024-10-29T08:00:00Z"},
    }
    us = records["customer_orders_us"]
    assert (us.classification, us.data_residency, us.gdpr_compliant) == ("PII", "US", False)
    assert us.source_system == "SALESFORCE_COMMERCE"
    talks = records["conference_transcripts"]
    assert (talks.classification, talks.data_classification) == ("PUBLIC", "Level_0")
    assert talks.storage_endpoints == ("gs://us-central1/media-transcripts",)
    tickets = records["support_tickets"]
    assert (tickets.data_residency, tickets.gdpr_compliant, tickets.source_system) == (
        "EU",
        True,
        "ZENDESK",
    )


def test_telemetry_example() -> None:
    samples = load_telemetry(EXAMPLES / "telemetry.yaml")
    assert {k: s.free_gpus for k, s in samples.items()} == {
        ("us-east-a100", "A100-80GB"): 24,
        ("eu-fra-a10", "A10"): 12,
        ("eu-par-h100", "H100-80GB"): 4,
    }
    for sample in samples.values():
        assert 0.55 <= sample.utilisation <= 0.7
        assert sample.observed_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_catalog_records_as_wrapped_json_and_jsonl(tmp_path: Path) -> None:
    records = json.loads((EXAMPLES / "catalog.json").read_text())
    wrapped = tmp_path / "catalog.json"
    wrapped.write_text(json.dumps({"records": records}))
    lines = tmp_path / "catalog.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    expected = load_catalog_records(EXAMPLES / "catalog.json")
    assert load_catalog_records(wrapped) == expected
    assert load_catalog_records(lines) == expected


def test_fleet_as_json_and_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    cluster = {
        "name": "local",
        "zone": "EU",
        "region": "local",
        "egress_per_gb": 0,
        "latency_ms": {"EU": 1},
        "namespace_template": "ml-{team}",
        "service_account": "runner",
        "image": "registry.example.com/reasoning-plane:0.1.0",
        "accepts_unknown_residency": True,
        "local": True,
        "kube_context": None,
        "pools": [],
    }
    path.write_text(json.dumps({"clusters": [cluster]}))
    (local,) = load_fleet(path).clusters
    assert local.pools == ()
    assert local.namespace("media-ml") == "ml-media-ml"
    assert (local.local, local.accepts_unknown_residency, local.kube_context) == (True, True, None)
    assert local.location == ""
    assert local.certifications == frozenset()


# ------------------------------------------------------------------------------------------------
# Quota semantics
# ------------------------------------------------------------------------------------------------


def _quota(name: str, namespace: str, gpus: Any = None, **hard: Any) -> str:
    if gpus is not None:
        hard["requests.nvidia.com/gpu"] = gpus
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hard": hard},
        }
    )


def test_several_quotas_in_a_namespace_take_the_smallest(tmp_path: Path) -> None:
    path = tmp_path / "quotas.yaml"
    path.write_text(
        "---\n".join(
            [
                _quota("team-wide", "financial-ml", "16"),
                _quota("gpu-cap", "financial-ml", 6),
                _quota("cpu-only", "financial-ml", **{"requests.cpu": "64"}),
                _quota("big", "financial-ml", "32"),
                _quota("gpu-quota", "media-ml", "8"),
                _quota("cpu-only", "commerce-analytics", **{"requests.cpu": "8"}),
            ]
        )
        + "---\n"
    )
    quotas = load_quotas(path)
    assert quotas["financial-ml"].gpus == 6
    assert quotas["financial-ml"].source == f"{path}#gpu-cap"
    assert quotas["media-ml"].gpus == 8
    assert "commerce-analytics" not in quotas  # no GPU key: contributes nothing


def test_other_kinds_and_empty_documents_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "quotas.yaml"
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": "financial-ml"},
        "spec": {"limits": [{"type": "Container", "default": {"nvidia.com/gpu": "500m"}}]},
    }
    path.write_text(
        "---\n"
        + yaml.safe_dump(limit_range)
        + "---\n"
        + _quota("gpu-quota", "financial-ml", "16")
        + "---\n---\n"
    )
    assert {t: q.gpus for t, q in load_quotas(path).items()} == {"financial-ml": 16}


def test_single_document_and_list_of_quotas(tmp_path: Path) -> None:
    single = tmp_path / "single.yaml"
    single.write_text(_quota("gpu-quota", "media-ml", 8))
    assert load_quotas(single)["media-ml"].gpus == 8

    items = [yaml.safe_load(_quota("q1", "media-ml", "8")), yaml.safe_load(_quota("q2", "a", "2"))]
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    assert {t: q.gpus for t, q in load_quotas(listed).items()} == {"media-ml": 8, "a": 2}
    as_json = tmp_path / "list.json"
    as_json.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert {t: q.gpus for t, q in load_quotas(as_json).items()} == {"media-ml": 8, "a": 2}
    assert load_quotas(as_json)["a"].source == f"{as_json}#q2"


def test_quota_as_kubectl_prints_it_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "quota.yaml"
    doc = yaml.safe_load(_quota("gpu-quota", "media-ml", "8"))
    doc["metadata"].update(uid="abc", resourceVersion="1", labels={"team": "media"})
    doc["status"] = {
        "hard": {"requests.nvidia.com/gpu": "8"},
        "used": {"requests.nvidia.com/gpu": "2"},
    }
    path.write_text(yaml.safe_dump(doc))
    assert load_quotas(path)["media-ml"].gpus == 8


# ------------------------------------------------------------------------------------------------
# Telemetry semantics
# ------------------------------------------------------------------------------------------------


def test_newest_telemetry_sample_wins(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text(
        "samples:\n"
        "  - {cluster: c, gpu_type: A10, free_gpus: 1, utilisation: 0.9,"
        " observed_at: '2026-11-25T12:00:00Z'}\n"
        "  - {cluster: c, gpu_type: A10, free_gpus: 5, utilisation: 0.2,"
        " observed_at: '2026-11-25T13:00:00+01:00'}\n"  # same instant as 12:00Z: later line wins
        "  - {cluster: c, gpu_type: A10, free_gpus: 7, utilisation: 0.1,"
        " observed_at: '2026-11-25T11:59:00Z'}\n"  # older: ignored
        "  - {cluster: c, gpu_type: H100, free_gpus: 2, utilisation: 0.5,"
        " observed_at: 2026-11-25T12:00:00Z, free_memory_gb: 40}\n"
    )
    samples = load_telemetry(path)
    assert samples["c", "A10"].free_gpus == 5
    assert samples["c", "A10"].observed_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert samples["c", "H100"].free_memory_gb == 40
    assert samples["c", "H100"].free_memory_per_gpu_gb is None  # every free GPU counts


def test_telemetry_may_give_each_gpus_free_memory(tmp_path) -> None:
    path = tmp_path / "telemetry.yaml"
    path.write_text(
        "samples:\n"
        "  - {cluster: c, gpu_type: A10, free_gpus: 2, utilisation: 0.5,"
        " observed_at: '2026-11-25T12:00:00Z', free_memory_per_gpu_gb: [4, 24.0]}\n"
    )
    assert load_telemetry(path)["c", "A10"].free_memory_per_gpu_gb == (4.0, 24.0)
    path.write_text(
        "samples:\n"
        "  - {cluster: c, gpu_type: A10, free_gpus: 2, utilisation: 0.5,"
        " observed_at: '2026-11-25T12:00:00Z', free_memory_per_gpu_gb: [4, -1]}\n"
    )
    with pytest.raises(InputFileError, match=r"free_memory_per_gpu_gb\[1\]"):
        load_telemetry(path)


# ------------------------------------------------------------------------------------------------
# Bad inputs: each names the file and the field
# ------------------------------------------------------------------------------------------------


def _cluster(**over: Any) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": "eu-fra-a10",
        "zone": "EU",
        "region": "eu-central-1",
        "egress_per_gb": 0.02,
        "latency_ms": {"EU": 8},
        "pools": [_pool()],
    }
    cluster.update(over)
    return {k: v for k, v in cluster.items() if v is not _DROP}


def _pool(**over: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {"gpu_type": "A10", "memory_gb": 24, "total": 16, "price_per_hour": 1.1}
    pool.update(over)
    return {k: v for k, v in pool.items() if v is not _DROP}


_DROP = object()


def _fleet(*clusters: dict[str, Any]) -> str:
    return yaml.safe_dump({"clusters": list(clusters)})


def _request(**over: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "request_id": "r1",
        "workload": "inference/customer_orders_eu",
        "team": "financial-ml",
        "datasets": ["customer_orders_eu"],
        "gpu_count": 1,
        "gpu_memory_gb": 16,
        "estimated_duration_s": 3600,
    }
    request.update(over)
    return {k: v for k, v in request.items() if v is not _DROP}


def _requests(*requests: dict[str, Any]) -> str:
    return yaml.safe_dump({"requests": list(requests)})


def _sample(**over: Any) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "cluster": "eu-fra-a10",
        "gpu_type": "A10",
        "free_gpus": 3,
        "utilisation": 0.5,
        "observed_at": "2026-11-25T12:00:00Z",
    }
    sample.update(over)
    return sample


def _samples(*samples: dict[str, Any]) -> str:
    return yaml.safe_dump({"samples": list(samples)})


def _budgets(*budgets: dict[str, Any]) -> str:
    return yaml.safe_dump({"budgets": list(budgets)})


_RECORD = json.loads((EXAMPLES / "catalog.json").read_text())[0]

GPU = '.spec.hard["requests.nvidia.com/gpu"]'
Q0 = "documents[0] (gpu-quota)"

BAD: list[tuple[str, Loader, str, str | bytes, str]] = [
    # ---- fleet
    ("fleet-unknown-top", load_fleet, "f.yaml", "clusters: []\nextra: 1\n", "(top level)"),
    ("fleet-no-clusters", load_fleet, "f.yaml", "clusters: []\n", "clusters"),
    ("fleet-top-list", load_fleet, "f.yaml", "- a\n- b\n", "(top level)"),
    ("fleet-empty", load_fleet, "f.yaml", "", "(file)"),
    ("fleet-only-comments", load_fleet, "f.yaml", "# nothing\n", "(file)"),
    ("fleet-malformed-yaml", load_fleet, "f.yaml", "clusters: [\n  - name: x\n", "line"),
    ("fleet-malformed-json", load_fleet, "f.json", '{"clusters": [}', "line 1"),
    ("fleet-non-utf8", load_fleet, "f.yaml", b"clusters:\n  - name: \xff\xfe\n", "byte 20"),
    ("fleet-suffix", load_fleet, "f.toml", "clusters = []", "(file)"),
    (
        "fleet-unknown-cluster-key",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(gpus=3)),
        "clusters[0] (eu-fra-a10).gpus",
    ),
    (
        "fleet-unknown-pool-key",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(count=3)])),
        "clusters[0] (eu-fra-a10).pools[0].count",
    ),
    (
        "fleet-unknown-toleration-key",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(tolerations=[{"key": "k", "tolerationSeconds": 5}])])),
        "pools[0].tolerations[0].tolerationSeconds",
    ),
    (
        "fleet-duplicate-cluster",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(), _cluster(zone="US")),
        "clusters[1] (eu-fra-a10).name",
    ),
    (
        "fleet-duplicate-gpu-type",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(), _pool()])),
        "clusters[0] (eu-fra-a10).pools[1].gpu_type",
    ),
    (
        "fleet-negative-total",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(total=-2)])),
        "pools[0].total",
    ),
    (
        "fleet-float-total",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(total=2.5)])),
        "pools[0].total",
    ),
    (
        "fleet-bool-price",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(price_per_hour=True)])),
        "pools[0].price_per_hour",
    ),
    (
        "fleet-text-memory",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(memory_gb="24")])),
        "pools[0].memory_gb",
    ),
    (
        "fleet-zero-memory",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(memory_gb=0)])),
        "pools[0].memory_gb",
    ),
    (
        "fleet-nan-egress",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(egress_per_gb=float("nan"))),
        "clusters[0] (eu-fra-a10).egress_per_gb",
    ),
    (
        "fleet-inf-latency",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(latency_ms={"EU": float("inf")})),
        "latency_ms.EU",
    ),
    (
        "fleet-huge-total",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(total=10**30)])),
        "pools[0].total",
    ),
    ("fleet-zone-lower", load_fleet, "f.yaml", _fleet(_cluster(zone="eu")), "zone"),
    ("fleet-zone-unknown", load_fleet, "f.yaml", _fleet(_cluster(zone="UNKNOWN")), "zone"),
    (
        "fleet-bad-name",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(name="EU_Fra")),
        "clusters[0] (EU_Fra).name",
    ),
    ("fleet-missing-zone", load_fleet, "f.yaml", _fleet(_cluster(zone=_DROP)), ".zone"),
    ("fleet-missing-pools", load_fleet, "f.yaml", _fleet(_cluster(pools=_DROP)), ".pools"),
    (
        "fleet-bad-cert",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(certifications=["gdpr"])),
        "certifications[0]",
    ),
    (
        "fleet-bad-template",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(namespace_template="{team}-{zone}")),
        "namespace_template",
    ),
    (
        "fleet-bad-label-value",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(node_labels={"gpu": True})),
        "node_labels.gpu",
    ),
    (
        "fleet-equal-without-value",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(tolerations=[{"key": "k", "operator": "Equal"}])])),
        "tolerations[0].value",
    ),
    (
        "fleet-bad-effect",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(pools=[_pool(tolerations=[{"key": "k", "effect": "Never"}])])),
        "tolerations[0].effect",
    ),
    ("fleet-bool-local", load_fleet, "f.yaml", _fleet(_cluster(local="yes")), ".local"),
    (
        "fleet-two-local",
        load_fleet,
        "f.yaml",
        _fleet(_cluster(local=True), _cluster(name="b", local=True)),
        "clusters[1] (b).local",
    ),
    (
        "fleet-duplicate-yaml-key",
        load_fleet,
        "f.yaml",
        "clusters:\n  - name: a\n    name: b\n",
        "line 3",
    ),
    ("fleet-json-nan", load_fleet, "f.json", '{"clusters": [NaN]}', "(syntax)"),
    (
        "fleet-json-duplicate-key",
        load_fleet,
        "f.json",
        '{"clusters": [], "clusters": []}',
        "(syntax)",
    ),
    # PyYAML raises KeyError / AttributeError for these (found by the fuzz tests)
    ("fleet-yaml-bad-bool-tag", load_fleet, "f.yaml", "clusters: !!bool x\n", "(syntax)"),
    ("fleet-yaml-bad-time-tag", load_fleet, "f.yaml", "clusters: !!timestamp x\n", "(syntax)"),
    ("fleet-yaml-map-tag-on-text", load_fleet, "f.yaml", "clusters: !!map x\n", "line 1"),
    (
        "fleet-yaml-python-tag",
        load_fleet,
        "f.yaml",
        "clusters: !!python/name:os.system\n",
        "line 1",
    ),
    # ---- quotas
    ("quota-milli", load_quotas, "q.yaml", _quota("gpu-quota", "a", "500m"), Q0 + GPU),
    ("quota-binary-unit", load_quotas, "q.yaml", _quota("gpu-quota", "a", "2Gi"), Q0 + GPU),
    ("quota-fraction", load_quotas, "q.yaml", _quota("gpu-quota", "a", "1.5"), Q0 + GPU),
    ("quota-float", load_quotas, "q.yaml", _quota("gpu-quota", "a", 1.5), Q0 + GPU),
    ("quota-negative-text", load_quotas, "q.yaml", _quota("gpu-quota", "a", "-1"), Q0 + GPU),
    ("quota-negative-int", load_quotas, "q.yaml", _quota("gpu-quota", "a", -1), Q0 + GPU),
    ("quota-words", load_quotas, "q.yaml", _quota("gpu-quota", "a", "16 GPUs"), Q0 + GPU),
    ("quota-bool", load_quotas, "q.yaml", _quota("gpu-quota", "a", True), Q0 + GPU),
    ("quota-huge", load_quotas, "q.yaml", _quota("gpu-quota", "a", "9" * 5000), Q0 + GPU),
    (
        "quota-second-doc",
        load_quotas,
        "q.yaml",
        _quota("ok", "a", "1") + "---\n" + _quota("gpu-quota", "a", "2Gi"),
        "documents[1] (gpu-quota)" + GPU,
    ),
    (
        "quota-api-version",
        load_quotas,
        "q.yaml",
        _quota("gpu-quota", "a", "1").replace("apiVersion: v1", "apiVersion: v2"),
        Q0 + ".apiVersion",
    ),
    (
        "quota-no-namespace",
        load_quotas,
        "q.yaml",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\n",
        "documents[0] (q).metadata.namespace",
    ),
    (
        "quota-bad-namespace",
        load_quotas,
        "q.yaml",
        _quota("gpu-quota", "Financial_ML", "1"),
        Q0 + ".metadata.namespace",
    ),
    (
        "quota-unknown-top-key",
        load_quotas,
        "q.yaml",
        _quota("gpu-quota", "a", "1") + "specs: {}\n",
        Q0 + ".specs",
    ),
    ("quota-no-kind", load_quotas, "q.yaml", "apiVersion: v1\n", "documents[0].kind"),
    ("quota-not-mapping", load_quotas, "q.yaml", "- 1\n", "documents[0]"),
    ("quota-empty", load_quotas, "q.yaml", "---\n---\n", "(file)"),
    (
        "quota-twice",
        load_quotas,
        "q.yaml",
        _quota("gpu-quota", "a", "1") + "---\n" + _quota("gpu-quota", "a", "2"),
        "documents[1] (gpu-quota).metadata.name",
    ),
    (
        "quota-nested-list",
        load_quotas,
        "q.yaml",
        "kind: List\nitems: [{kind: List, items: []}]\n",
        "documents[0].items[0].kind",
    ),
    ("quota-non-utf8", load_quotas, "q.yaml", b"kind: \xc3\x28\n", "byte 6"),
    # ---- budgets
    (
        "budget-duplicate",
        load_budgets,
        "b.yaml",
        _budgets({"team": "a", "limit_usd": 1}, {"team": "a", "limit_usd": 2}),
        "budgets[1] (a).team",
    ),
    (
        "budget-negative",
        load_budgets,
        "b.yaml",
        _budgets({"team": "a", "limit_usd": -5}),
        "budgets[0] (a).limit_usd",
    ),
    (
        "budget-bool",
        load_budgets,
        "b.yaml",
        _budgets({"team": "a", "limit_usd": False}),
        "budgets[0] (a).limit_usd",
    ),
    (
        "budget-period",
        load_budgets,
        "b.yaml",
        _budgets({"team": "a", "limit_usd": 5, "period": "yearly"}),
        "budgets[0] (a).period",
    ),
    (
        "budget-unknown-key",
        load_budgets,
        "b.yaml",
        _budgets({"team": "a", "limit_usd": 5, "currency": "EUR"}),
        "budgets[0] (a).currency",
    ),
    ("budget-top", load_budgets, "b.yaml", "budget: []\n", "(top level)"),
    ("budget-malformed", load_budgets, "b.yaml", "budgets: [{team: a\n", "line"),
    # ---- requests
    (
        "request-negative-gpus",
        load_requests,
        "r.yaml",
        _requests(_request(gpu_count=-1)),
        "requests[0] (r1).gpu_count",
    ),
    (
        "request-huge-gpus",
        load_requests,
        "r.yaml",
        _requests(_request(gpu_count=100_000)),
        "requests[0] (r1).gpu_count",
    ),
    (
        "request-float-gpus",
        load_requests,
        "r.yaml",
        _requests(_request(gpu_count=1.5)),
        "requests[0] (r1).gpu_count",
    ),
    (
        "request-bool-gpus",
        load_requests,
        "r.yaml",
        _requests(_request(gpu_count=True)),
        "requests[0] (r1).gpu_count",
    ),
    (
        "request-huge-duration",
        load_requests,
        "r.yaml",
        _requests(_request(estimated_duration_s=31 * 86400)),
        ".estimated_duration_s",
    ),
    (
        "request-zero-duration",
        load_requests,
        "r.yaml",
        _requests(_request(estimated_duration_s=0)),
        ".estimated_duration_s",
    ),
    (
        "request-huge-data",
        load_requests,
        "r.yaml",
        _requests(_request(data_gb=1e12)),
        "requests[0] (r1).data_gb",
    ),
    (
        "request-duplicate-id",
        load_requests,
        "r.yaml",
        _requests(_request(), _request()),
        "requests[1] (r1).request_id",
    ),
    (
        "request-unknown-key",
        load_requests,
        "r.yaml",
        _requests(_request(gpus=1)),
        "requests[0] (r1).gpus",
    ),
    (
        "request-no-datasets",
        load_requests,
        "r.yaml",
        _requests(_request(datasets=[])),
        "requests[0] (r1).datasets",
    ),
    (
        "request-bad-team",
        load_requests,
        "r.yaml",
        _requests(_request(team="Financial ML")),
        "requests[0] (r1).team",
    ),
    (
        "request-priority",
        load_requests,
        "r.yaml",
        _requests(_request(priority=1001)),
        "requests[0] (r1).priority",
    ),
    (
        "request-naive-moved",
        load_requests,
        "r.yaml",
        _requests(_request(last_moved_at="2026-11-25T12:00:00")),
        "requests[0] (r1).last_moved_at",
    ),
    (
        "request-slo-zero",
        load_requests,
        "r.yaml",
        _requests(_request(latency_slo_ms=0)),
        "requests[0] (r1).latency_slo_ms",
    ),
    (
        "request-missing-memory",
        load_requests,
        "r.yaml",
        _requests(_request(gpu_memory_gb=_DROP)),
        "requests[0] (r1).gpu_memory_gb",
    ),
    (
        "request-bad-id",
        load_requests,
        "r.yaml",
        _requests(_request(request_id="has space")),
        "requests[0] (has space).request_id",
    ),
    # ---- catalog records
    ("catalog-malformed", load_catalog_records, "c.json", "[{", "line 1"),
    ("catalog-yaml", load_catalog_records, "c.yaml", "records: []", "(file)"),
    (
        "catalog-unknown-key",
        load_catalog_records,
        "c.json",
        json.dumps([{**_RECORD, "owner": "x"}]),
        "records[0].owner",
    ),
    (
        "catalog-missing-lineage",
        load_catalog_records,
        "c.json",
        json.dumps({"records": [{k: v for k, v in _RECORD.items() if k != "lineage"}]}),
        "records[0].lineage",
    ),
    (
        "catalog-bad-gdpr",
        load_catalog_records,
        "c.json",
        json.dumps([_RECORD, {**_RECORD, "compliance_tags": {"gdpr_compliant": "yes"}}]),
        "records[1].compliance_tags.gdpr_compliant",
    ),
    (
        "catalog-duplicate",
        load_catalog_records,
        "c.json",
        json.dumps([_RECORD, _RECORD]),
        "records[1].dataset_id",
    ),
    (
        "catalog-jsonl-bad-line",
        load_catalog_records,
        "c.jsonl",
        json.dumps(_RECORD) + "\n{oops\n",
        "line 2",
    ),
    (
        "catalog-jsonl-duplicate",
        load_catalog_records,
        "c.jsonl",
        json.dumps(_RECORD) + "\n\n" + json.dumps(_RECORD) + "\n",
        "records[1] (line 3).dataset_id",
    ),
    ("catalog-top", load_catalog_records, "c.json", '{"items": []}', "(top level)"),
    ("catalog-scalar", load_catalog_records, "c.json", "42", "(top level)"),
    ("catalog-deep", load_catalog_records, "c.json", "[" * 100_000 + "]" * 100_000, "(syntax)"),
    # ---- telemetry
    (
        "telemetry-naive",
        load_telemetry,
        "t.yaml",
        _samples(_sample(observed_at="2026-11-25T12:00:00")),
        "samples[0].observed_at",
    ),
    (
        "telemetry-naive-yaml-timestamp",
        load_telemetry,
        "t.yaml",
        _samples(_sample()).replace("'2026-11-25T12:00:00Z'", "2026-11-25 12:00:00"),
        "samples[0].observed_at",
    ),
    (
        "telemetry-date-only",
        load_telemetry,
        "t.yaml",
        _samples(_sample()).replace("'2026-11-25T12:00:00Z'", "2026-11-25"),
        "samples[0].observed_at",
    ),
    (
        "telemetry-not-a-time",
        load_telemetry,
        "t.yaml",
        _samples(_sample(observed_at="yesterday")),
        "samples[0].observed_at",
    ),
    (
        "telemetry-utilisation",
        load_telemetry,
        "t.yaml",
        _samples(_sample(utilisation=1.5)),
        "samples[0].utilisation",
    ),
    (
        "telemetry-negative-free",
        load_telemetry,
        "t.yaml",
        _samples(_sample(free_gpus=-1)),
        "samples[0].free_gpus",
    ),
    (
        "telemetry-bool-free",
        load_telemetry,
        "t.yaml",
        _samples(_sample(free_gpus=True)),
        "samples[0].free_gpus",
    ),
    (
        "telemetry-unknown-key",
        load_telemetry,
        "t.yaml",
        _samples(_sample(temperature=70)),
        "samples[0].temperature",
    ),
    (
        "telemetry-bad-date",
        load_telemetry,
        "t.yaml",
        "samples: [{observed_at: 2026-13-45}]\n",
        "(syntax)",
    ),
    ("telemetry-non-utf8", load_telemetry, "t.yaml", b"\x80samples: []\n", "byte 0"),
]


@pytest.mark.parametrize(
    ("loader", "name", "content", "field"),
    [
        pytest.param(loader, name, content, field, id=case)
        for case, loader, name, content, field in BAD
    ],
)
def test_bad_input_names_file_and_field(
    tmp_path: Path, loader: Loader, name: str, content: str | bytes, field: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        loader(path)
    error = caught.value
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: ")
    assert field in error.field, f"{error.field!r} does not name {field!r}: {error}"
    assert error.problem


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("500m", "whole GPUs"),
        ("2Gi", "unit"),
        ("1.5", "fractions"),
        ("-1", "negative"),
        ("16 GPUs", "whole GPUs"),
    ],
)
def test_quota_messages_say_what_is_wrong(tmp_path: Path, value: str, words: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(_quota("ml-team-financial-models", "financial-ml", value))
    with pytest.raises(InputFileError, match=words) as caught:
        load_quotas(path)
    assert "documents[0] (ml-team-financial-models)" in str(caught.value)


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        load_fleet(tmp_path / "nope.yaml")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(InputFileError, match="cannot be read"):
        load_fleet(folder)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\nclusters: []\n")
    with pytest.raises(InputFileError, match="10 MB"):
        load_fleet(big)


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"budgets": [{"team": "a", "limit_usd": 1}]}).encode()
    )
    assert load_budgets(path)["a"].limit_usd == 1


def test_negative_gpu_count_message(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(_requests(_request(gpu_count=-2)))
    with pytest.raises(InputFileError, match="must not be negative"):
        load_requests(path)


# ------------------------------------------------------------------------------------------------
# Fuzzing: any file either loads or raises InputFileError
# ------------------------------------------------------------------------------------------------

LOADERS: list[tuple[Loader, str]] = [
    (load_fleet, "fleet.yaml"),
    (load_quotas, "quotas.yaml"),
    (load_budgets, "budgets.yaml"),
    (load_requests, "requests.yaml"),
    (load_catalog_records, "catalog.json"),
    (load_telemetry, "telemetry.yaml"),
]
LOADER_IDS = [loader.__name__ for loader, _ in LOADERS]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_WORDS = st.sampled_from(
    [
        "clusters", "pools", "budgets", "requests", "samples", "records", "kind", "List",
        "ResourceQuota", "apiVersion", "v1", "metadata", "name", "namespace", "spec", "hard",
        "items", "requests.nvidia.com/gpu", "16", "500m", "2Gi", "-1", "team", "zone", "EU",
        "gpu_type", "total", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00", "dataset_id",
        "compliance_tags", "lineage", "{team}", "Exists", "Equal", "a", "",
    ]
)  # fmt: skip
JSON_LIKE = json_like(
    _WORDS, int_bound=10**20, keys=_WORDS | st.text(max_size=8), max_keys=5, max_leaves=25
)
_YAML_TOKENS = st.sampled_from(
    [
        ":", ": ", "- ", "[", "]", "{", "}", ", ", "\n", "\n  ", "\n    ", "---\n", "...\n",
        "# c", "&a ", "*a", "<<: ", "? ", "'", '"', "|\n  ", ">\n  ", "%YAML 1.1\n", "~",
        "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ",
        "!!map ", "!!seq ", "!!set ", "!!omap ", "!!pairs ", "!!merge ", "!!value ", "!x ",
        "!!python/object:os.system ", "x", "16", "-1", "1.5", ".nan", ".inf", "0x1F", "1_000",
        "1:30", "yes", "2026-11-25", "2026-13-45", "2026-11-25T12:00:00Z", "\t", "\u00e9",
    ]
)  # fmt: skip
_YAMLISH = st.lists(_YAML_TOKENS | _WORDS, max_size=40).map("".join) | st.text(
    alphabet=st.sampled_from(list(":-[]{}\n #&*!|>'\"%@`,?019aZ._\t~")), max_size=80
)


def _fuzz_path(tmp_path: Path, name: str, suffix: str | None = None) -> Path:
    path = tmp_path / name
    return path.with_suffix(suffix) if suffix else path


def _must_load_or_refuse(loader: Loader, path: Path) -> None:
    try:
        loader(path)
    except InputFileError as exc:
        assert exc.path == str(path)
        assert str(exc).startswith(str(path))


def _dump(value: Any, suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(value)
    return yaml.safe_dump(value)


@pytest.mark.parametrize(("loader", "name"), LOADERS, ids=LOADER_IDS)
@FUZZ
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_fuzz_arbitrary_bytes(tmp_path: Path, loader: Loader, name: str, data: bytes) -> None:
    path = _fuzz_path(tmp_path, name)
    path.write_bytes(data)
    _must_load_or_refuse(loader, path)


@pytest.mark.parametrize(("loader", "name"), LOADERS, ids=LOADER_IDS)
@FUZZ
@given(text=_YAMLISH, jsonl=st.booleans())
def test_fuzz_yaml_like_text(
    tmp_path: Path, loader: Loader, name: str, text: str, jsonl: bool
) -> None:
    path = _fuzz_path(
        tmp_path, name, ".jsonl" if jsonl and loader is load_catalog_records else None
    )
    path.write_text(text, encoding="utf-8")
    _must_load_or_refuse(loader, path)


@pytest.mark.parametrize(("loader", "name"), LOADERS, ids=LOADER_IDS)
@FUZZ
@given(value=JSON_LIKE, as_json=st.booleans())
def test_fuzz_json_like_structures(
    tmp_path: Path, loader: Loader, name: str, value: Any, as_json: bool
) -> None:
    suffix = ".json" if as_json or loader is load_catalog_records else ".yaml"
    path = _fuzz_path(tmp_path, name, suffix)
    path.write_text(_dump(value, suffix), encoding="utf-8")
    _must_load_or_refuse(loader, path)


def _example(name: str) -> list[Any]:
    """The example file's documents (a list: one for most files, several for quotas)."""
    text = (EXAMPLES / name).read_text()
    if name.endswith(".json"):
        return [json.loads(text)]
    return list(yaml.safe_load_all(text))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any, key: str) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][key] = value
    elif isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return doc


@pytest.mark.parametrize(("loader", "name"), LOADERS, ids=LOADER_IDS)
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_examples(tmp_path: Path, loader: Loader, name: str, data: Any) -> None:
    docs = _example(name)
    mutated = list(docs)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        index = data.draw(st.integers(0, len(mutated) - 1), label="document")
        path = data.draw(st.sampled_from(_paths(mutated[index])), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
        value = data.draw(JSON_LIKE, label="value")
        key = data.draw(_WORDS | st.text(max_size=8), label="key")
        mutated[index] = _mutate(mutated[index], path, action, value, key)
    as_json = data.draw(st.booleans(), label="as_json") and len(mutated) == 1
    if loader is load_catalog_records or as_json:
        target = _fuzz_path(tmp_path, name, ".json")
        target.write_text(json.dumps(mutated[0]), encoding="utf-8")
    else:
        target = _fuzz_path(tmp_path, name)
        target.write_text(yaml.safe_dump_all(mutated), encoding="utf-8")
    _must_load_or_refuse(loader, target)
