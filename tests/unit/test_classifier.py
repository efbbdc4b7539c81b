import numpy as np
import pytest

from data_plane import classifier


def _data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 16))
    labels = [f"t{i % 3}" for i in range(n)]
    x = np.stack([centers[i % 3] + 0.3 * rng.normal(size=16) for i in range(n)])
    return x, labels, [f"h{i}" for i in range(n)]


def test_train_evaluate_and_roundtrip() -> None:
    x, y, h = _data()
    model = classifier.train(x, y, h)
    assert model.metrics["accuracy"] > 0.95
    assert model.metrics["n_test"] == 60
    data, sha = classifier.dump(model)
    loaded = classifier.load(data, sha)
    assert loaded.predict(x[:5])[0] == model.predict(x[:5])[0]
    assert classifier.train(x, y, h).fingerprint == model.fingerprint  # same data, same version
    assert classifier.train(x, [*y[:-1], "t0"], h).fingerprint != model.fingerprint


def test_tampered_artifact_is_refused() -> None:
    x, y, h = _data()
    data, sha = classifier.dump(classifier.train(x, y, h))
    with pytest.raises(ValueError, match="hash mismatch"):
        classifier.load(data[:-1] + b"\x00", sha)


def test_bad_training_input() -> None:
    x, y, h = _data()
    with pytest.raises(ValueError, match="two labels"):
        classifier.train(x, ["a"] * len(y), h)
    with pytest.raises(ValueError, match="same length"):
        classifier.train(x, y[:-1], h)
