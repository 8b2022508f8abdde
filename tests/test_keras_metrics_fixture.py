"""fastnn's Keras-style Precision, Recall and AUC, and the "accuracy" compile string, against Keras
3's own results (tests/fixtures/keras_metrics.npz, written by tests/fixtures/make_keras_metrics.py
with Keras 3.15 on JAX)."""
import json
import os

import numpy as np
import pytest

from fastnn import losses, metrics

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "keras_metrics.npz"))
CASES = json.loads(str(FIXTURE["cases"]))
N = len(FIXTURE["weights"])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}-{c[2]}-{json.dumps(c[1])}" for c in CASES])
def test_matches_keras(i, weighted):
    name, kwargs, data = CASES[i]
    metric = getattr(metrics, name)(**kwargs)
    t, p, w = FIXTURE[f"{data}_true"], FIXTURE[f"{data}_pred"], FIXTURE["weights"]
    for part in np.array_split(np.arange(N), 3):  # Keras saw the same three batches
        metric.update_state(t[part], p[part], sample_weight=w[part] if weighted else None)
    expected = FIXTURE[f"case{i}_weighted" if weighted else f"case{i}"]
    # Keras counts in float32; fastnn in float64
    np.testing.assert_allclose(np.asarray(metric.result()), expected, rtol=2e-6, atol=1e-7)


def test_keras_auc_differs_from_the_exact_one():
    """The default AUC is Keras's Riemann sum; AUCScore is the exact area (scikit-learn's)."""
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference for AUCScore")
    t, p = FIXTURE["binary_true"][:, 0], FIXTURE["binary_pred"][:, 0]
    keras_like, exact = metrics.AUC(num_thresholds=7), metrics.AUCScore()
    keras_like.update_state(t, p)
    exact.update_state(t, p)
    assert exact.result() == pytest.approx(sk.roc_auc_score(t, p), abs=1e-12)
    assert abs(keras_like.result() - exact.result()) > 1e-3


@pytest.mark.parametrize("key, loss", [("bce3", losses.BinaryCrossentropy(name="my_bce")),
                                       ("bce1", losses.BinaryCrossentropy()),
                                       ("scce", losses.SparseCategoricalCrossentropy(name="labels")),
                                       ("cce", losses.CategoricalCrossentropy())])
def test_accuracy_string_resolves_as_keras(key, loss):
    """Keras 3 picks the accuracy from the shapes: one output column -> binary, integer labels ->
    sparse categorical, otherwise categorical (also for several sigmoid outputs). fastnn picks it
    from the loss's type, whatever its name."""
    pred, y = FIXTURE[f"acc_{key}_pred"], FIXTURE[f"acc_{key}_y"]
    metric = metrics.get("accuracy", loss, pred.shape[1:])
    metric.update_state(y, pred)
    assert metric.result() == pytest.approx(float(FIXTURE[f"acc_{key}"]), abs=1e-6)
