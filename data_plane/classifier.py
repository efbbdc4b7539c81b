"""A small topic classifier over sentence embeddings (the seed's "tag 200K video segments").

Logistic regression on the 384-d embeddings: cheap to train on a CPU, cheap to apply, and good
enough to tag segments by topic. Training holds out a stratified share of the labelled rows and
reports accuracy and macro-F1 on it. The artifact is the pickled estimator; its SHA-256 is kept
beside it and checked before it is ever loaded again.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ACCURACY = 0.80  # documented threshold of the accuracy check on the held-out split


@dataclass(frozen=True)
class TrainedClassifier:
    estimator: Any
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    fingerprint: str  # hash of training data and hyper-parameters: same inputs, same version

    def predict(self, vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Labels and their probabilities for each row of ``vectors``."""
        if len(vectors) == 0:
            return [], np.empty(0)
        proba = self.estimator.predict_proba(vectors)
        best = proba.argmax(axis=1)
        classes = self.estimator.classes_
        return [str(classes[i]) for i in best], proba[np.arange(len(best)), best]


def fingerprint(row_hashes: Sequence[str], labels: Sequence[str], params: dict[str, Any]) -> str:
    digest = hashlib.sha256(repr(sorted(params.items())).encode())
    for row, label in sorted(zip(row_hashes, labels, strict=True)):
        digest.update(f"{row}\x1f{label}\n".encode())
    return digest.hexdigest()


def train(
    vectors: np.ndarray,
    labels: Sequence[str],
    row_hashes: Sequence[str],
    *,
    holdout_share: float = 0.2,
    seed: int = 7,
    c: float = 4.0,
) -> TrainedClassifier:
    """Fit on a stratified split and evaluate on the held-out part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.model_selection import train_test_split

    if len(vectors) != len(labels) or len(labels) != len(row_hashes):
        raise ValueError("vectors, labels and row_hashes must have the same length")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"need at least two labels to train, got {classes}")
    if not 0 < holdout_share < 1:
        raise ValueError("holdout_share must be between 0 and 1")
    x_train, x_test, y_train, y_test = train_test_split(
        vectors, list(labels), test_size=holdout_share, random_state=seed, stratify=list(labels)
    )
    params = {"model": "logistic_regression", "C": c, "holdout_share": holdout_share, "seed": seed}
    estimator = LogisticRegression(C=c, max_iter=2000)
    estimator.fit(x_train, y_train)
    predicted = estimator.predict(x_test)
    report = classification_report(y_test, predicted, output_dict=True, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro")),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "per_class_f1": {k: float(v["f1-score"]) for k, v in report.items() if k in classes},
        "params": params,
    }
    return TrainedClassifier(
        estimator=estimator,
        labels=tuple(classes),
        metrics=metrics,
        fingerprint=fingerprint(row_hashes, labels, params),
    )


def dump(model: TrainedClassifier) -> tuple[bytes, str]:
    """The artifact bytes and their SHA-256."""
    buffer = io.BytesIO()
    pickle.dump(
        {
            "estimator": model.estimator,
            "labels": model.labels,
            "metrics": model.metrics,
            "fingerprint": model.fingerprint,
        },
        buffer,
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def load(data: bytes, expected_sha256: str) -> TrainedClassifier:
    """Load an artifact from the registry, refusing bytes whose hash does not match."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"model artifact hash mismatch: registry says {expected_sha256[:12]}, bytes are "
            f"{actual[:12]}; refusing to load it"
        )
    obj = pickle.loads(data)
    return TrainedClassifier(
        obj["estimator"], tuple(obj["labels"]), obj["metrics"], obj["fingerprint"]
    )
