"""Small builders for decision-core tests: the seed scenario as plain objects."""

from datetime import UTC, datetime, timedelta

from data_plane.catalog import CatalogRecord
from reasoning_plane.model import (
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def record(dataset: str, classification: str, residency: str, gdpr: bool = False) -> CatalogRecord:
    return CatalogRecord(
        dataset_id=dataset,
        classification=classification,
        data_residency=residency,
        retention_policy="7_years",
        storage_endpoints=("s3://x",),
        gdpr_compliant=gdpr,
        data_classification="Level_3",
        source_system="SAP_ERP",
        last_updated="2024-10-29T08:00:00Z",
    )


CATALOG = {
    "customer_orders_eu": record("customer_orders_eu", "PII", "EU", gdpr=True),
    "customer_orders_us": record("customer_orders_us", "PII", "US"),
    "conference_transcripts": record("conference_transcripts", "PUBLIC", "US"),
    "mystery": record("mystery", "PII", "UNKNOWN"),
    "eu_us_mix": record("eu_us_mix", "PII", "EU+US"),
}


def fleet() -> Fleet:
    return Fleet(
        clusters=(
            Cluster(
                name="us-east-a100",
                zone="US",
                region="us-east-1",
                location="Ashburn",
                certifications=frozenset({"SOC2", "ISO27001"}),
                pools=(
                    GpuPool(
                        "A100-80GB",
                        80,
                        32,
                        3.67,
                        speed=1.0,
                        inference_latency_ms=18,
                        node_labels={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                    ),
                ),
                egress_per_gb=0.08,
                latency_ms={"US": 5, "EU": 95},
                kube_context="us-prod",
            ),
            Cluster(
                name="eu-fra-a10",
                zone="EU",
                region="eu-central-1",
                location="Frankfurt",
                certifications=frozenset({"GDPR", "ISO27001", "SOC2"}),
                pools=(GpuPool("A10", 24, 16, 1.10, speed=0.45, inference_latency_ms=45),),
                egress_per_gb=0.02,
                latency_ms={"EU": 8, "US": 95},
                kube_context="eu-prod",
                cpu_price_per_hour=0.4,
                cpu_slots=8,
            ),
        )
    )


def telemetry(age_s: float = 1.0, util: float = 0.6, a100_free: int = 24, a10_free: int = 12):
    at = NOW - timedelta(seconds=age_s)
    return {
        ("us-east-a100", "A100-80GB"): TelemetrySample(
            "us-east-a100", "A100-80GB", a100_free, util, at
        ),
        ("eu-fra-a10", "A10"): TelemetrySample("eu-fra-a10", "A10", a10_free, util, at),
    }


def snapshot(**kw) -> Snapshot:
    base = dict(
        fleet=fleet(),
        quotas={t: TeamQuota(t, 16, "quotas.yaml#q") for t in ("financial-ml", "media-ml")},
        budgets={t: Budget(t, 5000.0) for t in ("financial-ml", "media-ml")},
        usage={},
        telemetry=telemetry(),
        catalog=CATALOG,
        now=NOW,
    )
    base.update(kw)
    return Snapshot(**base)


def request(rid: str = "r1", **kw) -> WorkloadRequest:
    base = dict(
        request_id=rid,
        workload="inference/customer_orders_eu",
        team="financial-ml",
        datasets=("customer_orders_eu",),
        gpu_count=1,
        gpu_memory_gb=16,
        estimated_duration_s=3600,
        data_gb=50,
        latency_slo_ms=250,
        priority=100,
    )
    base.update(kw)
    return WorkloadRequest(**base)


__all__ = ["NOW", "TeamUsage", "request", "snapshot", "telemetry"]
