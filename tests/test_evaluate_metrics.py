"""Metrics through the model: ``model.evaluate`` on the MNIST split reports what
``fastnn.metrics`` computes on ``model.predict``, for names and instances in ``compile``, and
``fit`` keeps training and validation counts apart.
"""
import numpy as np
import pytest

import fastnn
from fastnn import metrics
from fastnn.layers import Dense
from fastnn.utils import set_random_seed

BACKENDS = ["native", "numpy"]


def mnist_model(x_train, y_train, metric_list):
    """784-32-10 after one epoch, then compiled with ``metric_list`` (fit shows no metrics: the
    exact AUC would be recomputed over all samples seen after every batch)."""
    set_random_seed(0)
    model = fastnn.Sequential([Dense(32, activation="relu", input_shape=(784,)),
                               Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=metric_list)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_accuracy_equals_metrics_accuracy_on_predict(mnist, backend):
    fastnn.set_backend(backend)
    (x_train, y_train), (x_test, y_test) = mnist
    model = mnist_model(x_train, y_train, ["accuracy"])
    loss, acc = model.evaluate(x_test, y_test, batch_size=50)
    probs = model.predict(x_test)
    assert acc == metrics.accuracy(y_test, probs)  # the same samples counted: exactly equal
    assert acc == metrics.accuracy_score(y_test, np.argmax(probs, axis=1))
    assert 0.8 < acc < 1.0  # trained, and on real data
    assert loss == pytest.approx(metrics.log_loss(y_test, probs, labels=np.arange(10)), rel=1e-5)


def test_every_compiled_metric_equals_the_function_on_predict(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    recall = metrics.RecallScore(average="weighted")
    model = mnist_model(x_train, y_train, ["accuracy", "precision_score", "f1_score", "roc_auc",
                                           "sparse_top_k_categorical_accuracy", "log_loss", recall,
                                           "precision", "auc"])
    logs = model.evaluate(x_test, y_test, batch_size=37, return_dict=True)  # ragged batches
    probs = model.predict(x_test)
    labels = np.argmax(probs, axis=1)
    onehot = np.eye(10)[y_test]
    keras_auc = metrics.AUC()
    keras_auc.update_state(onehot, probs)
    expected = {
        "accuracy": metrics.accuracy_score(y_test, labels),
        "precision_score": metrics.precision_score(y_test, labels, average="macro", zero_division=0.0),
        "f1_score": metrics.f1_score(y_test, labels, average="macro", zero_division=0.0),
        "roc_auc": metrics.roc_auc_score(y_test, probs.astype(np.float64) / probs.sum(1, keepdims=True),
                                         multi_class="ovr"),
        "sparse_top_k_categorical_accuracy": np.mean(metrics.sparse_top_k_categorical_accuracy(y_test, probs)),
        "log_loss": metrics.log_loss(y_test, probs, labels=np.arange(10)),
        "recall": metrics.recall_score(y_test, labels, average="weighted", zero_division=0.0),
        # Keras's Precision and AUC: every (sample, class) element is one binary decision
        "precision": ((probs > 0.5) & (onehot == 1)).sum() / (probs > 0.5).sum(),
        "auc": keras_auc.result(),
    }
    assert list(logs) == ["loss"] + list(expected)
    for name, value in expected.items():
        tol = 1e-6 if name == "roc_auc" else 1e-10  # AUC: the rows renormalised for the check above
        assert logs[name] == pytest.approx(value, rel=0, abs=tol), name
    assert 0.9 < logs["roc_auc"] <= 1.0 and 0.9 < logs["auc"] <= 1.0 and logs["sparse_top_k_categorical_accuracy"] > logs["accuracy"]
    assert recall.sums[0].size == 0  # the user's instance is never written to


def test_fit_keeps_training_and_validation_counts_apart():
    x = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    x_val, y_val = x[:40] * 1.5, y[:40]
    set_random_seed(0)
    model = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(4,)),
                               Dense(1, activation="sigmoid")])
    precision = metrics.Precision()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[precision, "auc", "recall"])
    history = model.fit(x[40:], y[40:], batch_size=16, epochs=3, verbose=0,
                        validation_data=(x_val, y_val)).history
    p_val = model.predict(x_val)
    assert history["val_precision"][-1] == pytest.approx(
        metrics.precision_score(y_val, p_val, zero_division=0.0), abs=1e-12)
    assert history["val_recall"][-1] == pytest.approx(metrics.recall_score(y_val, p_val), abs=1e-12)
    keras_auc = metrics.AUC()  # Keras's 200-threshold AUC, near the exact one
    keras_auc.update_state(y_val, p_val)
    assert history["val_auc"][-1] == pytest.approx(keras_auc.result(), abs=1e-12)
    assert keras_auc.result() == pytest.approx(metrics.roc_auc_score(y_val, p_val), abs=0.01)
    logs = model.evaluate(x_val, y_val, return_dict=True)
    assert logs["precision"] == history["val_precision"][-1]
    assert logs["auc"] == history["val_auc"][-1]
