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


def test_integer_labels_stand_for_their_one_hot_rows():
    """fastnn's one extension: labels (N,) with an (N, C) output are one-hot encoded first."""
    t, p = FIXTURE["multiclass_true"], FIXTURE["multiclass_pred"]
    for make in (metrics.Precision, lambda: metrics.Recall(top_k=2), metrics.AUC):
        onehot, sparse = make(), make()
        onehot.update_state(t, p)
        sparse.update_state(t.argmax(1), p)
        assert sparse.result() == onehot.result()
    with pytest.raises(ValueError, match="class labels in 0..2"):
        metrics.Precision().update_state([0, 3], p[:2])


def test_bad_arguments_are_refused():
    for bad in ({"thresholds": 1.5}, {"thresholds": []}, {"top_k": 0}, {"class_id": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            metrics.Precision(**bad)
    for bad in ({"curve": "DET"}, {"summation_method": "simpson"}, {"num_thresholds": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            metrics.AUC(**bad)
    m = metrics.AUC(multi_label=True, num_labels=3)
    with pytest.raises(ValueError, match="3 labels"):
        m.update_state(np.zeros((2, 2)), np.zeros((2, 2)))
    assert (m.true_positives == 0).all()  # refused before any count changed
    with pytest.raises(ValueError, match="class_id"):
        metrics.Recall(class_id=5).update_state(np.zeros((2, 3)), np.zeros((2, 3)))


def test_configs_rebuild_the_metric():
    for m in (metrics.Precision(thresholds=[0.2, 0.6], top_k=2, class_id=1, name="p"),
              metrics.AUC(num_thresholds=50, curve="PR", multi_label=True, label_weights=[1, 2, 3],
                          from_logits=True, name="a")):
        config = m.get_config()
        assert type(m)(**config).get_config() == config
