"""A small job importable by module path, so runs of it have a code origin (as deployed ones do)
and the real dagster-k8s launch code paths can be driven in tests."""

import dagster as dg

from resources.executor import placement_executor


@dg.op(tags={"reasoning-plane/step": "embed"})
def embed_on_gpu() -> None:
    """Stands in for a GPU step; never runs here (no Kubernetes in tests)."""


@dg.job(executor_def=placement_executor)
def placed_gpu_job() -> None:
    embed_on_gpu()
