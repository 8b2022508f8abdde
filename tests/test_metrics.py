"""Tests of ``fastnn.metrics``: the accuracy functions against NumPy formulas, stateful
accumulation over unequal batches (a ratio of totals, not a mean of ratios), how "accuracy"
resolves from the loss, and the figures fit/evaluate report.
"""
import numpy as np
import pytest

import fastnn
from fastnn import losses, metrics, optimizers
from fastnn.layers import Dense
from fastnn.utils import set_random_seed


def rng(seed=0):
    return np.random.default_rng(seed)


# -- the per-sample functions ------------------------------------------------------------------
def test_sparse_categorical_accuracy():
    p = rng(0).random((50, 4))
    y = rng(1).integers(0, 4, 50)
    got = metrics.sparse_categorical_accuracy(y, p)
    assert got.shape == (50,)
    np.testing.assert_array_equal(got, (np.argmax(p, axis=1) == y).astype(float))
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(y.reshape(-1, 1), p), got)
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(y.astype(np.float32), p), got)
    np.testing.assert_array_equal(
        metrics.sparse_categorical_accuracy([0, 1, 2], [[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0, 0, 1]]),
        [1.0, 0.0, 1.0])


def test_categorical_accuracy():
    p = rng(0).random((50, 4))
    y = np.eye(4)[rng(1).integers(0, 4, 50)]
    got = metrics.categorical_accuracy(y, p)
    np.testing.assert_array_equal(got, (np.argmax(p, axis=1) == np.argmax(y, axis=1)).astype(float))
    soft = np.array([[0.1, 0.7, 0.2]])
    np.testing.assert_array_equal(metrics.categorical_accuracy(soft, [[0.0, 0.6, 0.4]]), [1.0])


def test_binary_accuracy():
    p = rng(0).random((40, 3))
    y = rng(1).integers(0, 2, (40, 3)).astype(float)
    got = metrics.binary_accuracy(y, p)
    assert got.shape == (40,)
    np.testing.assert_allclose(got, np.mean((p > 0.5) == (y == 1), axis=1), rtol=0, atol=1e-15)
    # Keras's threshold is strict: exactly 0.5 counts as class 0
    np.testing.assert_array_equal(metrics.binary_accuracy([[0.0], [1.0]], [[0.5], [0.5]]), [1.0, 0.0])
    np.testing.assert_array_equal(metrics.binary_accuracy([[1.0]], [[0.3]], threshold=0.2), [1.0])
    # flat labels against column predictions
    np.testing.assert_array_equal(metrics.binary_accuracy(np.array([1.0, 0.0, 1.0]),
                                                          np.array([[0.9], [0.2], [0.1]])), [1, 1, 0])


# -- accumulation --------------------------------------------------------------------------
def test_stateful_accumulation_is_ratio_of_totals_not_mean_of_ratios():
    m = metrics.get("accuracy", losses.SparseCategoricalCrossentropy(), (3,))
    # batch 1: 1 sample, right (1/1);  batch 2: 4 samples, 1 right (1/4)
    m.update_state([0], [[0.9, 0.05, 0.05]])
    assert m.result() == 1.0
    m.update_state([0, 1, 2, 2], [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05],
                                  [0.9, 0.05, 0.05]])
    assert m.result() == pytest.approx(2 / 5, abs=1e-15)
    assert m.result() != pytest.approx((1 + 0.25) / 2)  # the mean of the two batch ratios
    m.reset_state()
    assert m.result() == 0.0 and m.count == 0


@pytest.mark.parametrize("sizes", [(3, 7), (1, 2, 17), (10, 10, 1), (20,)])
def test_accumulation_over_unequal_batches_equals_whole_data(sizes):
    p = rng(2).random((sum(sizes), 5))
    y = rng(3).integers(0, 5, sum(sizes))
    whole = np.mean(np.argmax(p, axis=1) == y)
    m = metrics.get("sparse_categorical_accuracy", None, (5,))
    lo = 0
    for s in sizes:
        m.update_state(y[lo:lo + s], p[lo:lo + s])
        lo += s
    assert m.result() == pytest.approx(whole, abs=1e-15)
    assert m.count == sum(sizes)


def test_binary_accuracy_accumulates_per_output():
    m = metrics.get("binary_accuracy", None, (2,))
    m.update_state(np.array([[1, 1]]), np.array([[0.9, 0.1]]))   # 1 of 2 outputs right
    m.update_state(np.array([[0, 0], [1, 0], [0, 1]]), np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]]))
    assert m.result() == pytest.approx((0.5 + 3) / 4, abs=1e-15)


# -- "accuracy" resolves from the loss -----------------------------------------------------------
@pytest.mark.parametrize("loss, shape, fn", [
    (losses.SparseCategoricalCrossentropy(), (10,), metrics.sparse_categorical_accuracy),
    (losses.CategoricalCrossentropy(), (10,), metrics.categorical_accuracy),
    (losses.BinaryCrossentropy(), (1,), metrics.binary_accuracy),
    (losses.BinaryCrossentropy(), (3,), metrics.binary_accuracy),
    (losses.MeanSquaredError(), (1,), metrics.binary_accuracy),
    (losses.MeanSquaredError(), (4,), metrics.categorical_accuracy),
])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_resolves_like_keras(loss, shape, fn, name):
    m = metrics.get(name, loss, shape)
    assert m.fn is fn
    assert m.name == name


def test_metric_lookup_errors():
    for bad in ("f1", "precision", "", 3, None):
        with pytest.raises(ValueError, match="metric"):
            metrics.get(bad, losses.MeanSquaredError(), (1,))
    m = metrics.Metric(metrics.binary_accuracy, "mine")
    assert metrics.get(m, None, (1,)) is m


# -- inside fit and evaluate -----------------------------------------------------------------
def _model(loss="sparse_categorical_crossentropy", outputs=3, metric_names=("accuracy",)):
    set_random_seed(0)
    model = fastnn.Sequential([Dense(6, activation="tanh", input_shape=(4,)),
                               Dense(outputs, activation="sigmoid" if loss == "binary_crossentropy"
                                     else "softmax")])
    model.compile(optimizer=optimizers.SGD(0.1), loss=loss, metrics=list(metric_names))
    return model


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7, 10, 64])
def test_evaluate_accuracy_is_whole_data_accuracy_for_any_batch_size(batch_size):
    x = rng(4).normal(size=(10, 4)).astype(np.float32)
    y = rng(5).integers(0, 3, 10)
    model = _model()
    expected = np.mean(np.argmax(model.predict(x), axis=1) == y)
    loss, acc = model.evaluate(x, y, batch_size=batch_size)
    assert acc == pytest.approx(expected, abs=1e-15)
    loss_full = model.evaluate(x, y, batch_size=10)[0]
    assert loss == pytest.approx(loss_full, rel=1e-6)  # weighted by batch size, not mean of batches
    probs = model.predict(x).astype(np.float64)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(10), y])), rel=1e-5)


def test_evaluate_return_forms():
    x = rng(4).normal(size=(10, 4)).astype(np.float32)
    y = rng(5).integers(0, 3, 10)
    model = _model(metric_names=("accuracy", "sparse_categorical_accuracy"))
    values = model.evaluate(x, y)
    assert isinstance(values, list) and len(values) == 3
    assert values[1] == values[2]
    logs = model.evaluate(x, y, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "sparse_categorical_accuracy"]
    assert list(logs.values()) == values
    bare = _model(metric_names=())
    assert isinstance(bare.evaluate(x, y), float)


def test_categorical_and_binary_accuracy_in_evaluate():
    x = rng(6).normal(size=(11, 4)).astype(np.float32)
    labels = rng(7).integers(0, 3, 11)
    cat = _model(loss="categorical_crossentropy")
    _, acc = cat.evaluate(x, np.eye(3)[labels], batch_size=4)
    assert acc == pytest.approx(np.mean(np.argmax(cat.predict(x), axis=1) == labels), abs=1e-15)
    yb = rng(8).integers(0, 2, (11, 2)).astype(np.float32)
    binary = _model(loss="binary_crossentropy", outputs=2)
    _, acc = binary.evaluate(x, yb, batch_size=4)
    assert acc == pytest.approx(np.mean((binary.predict(x) > 0.5) == (yb == 1)), abs=1e-15)


def test_train_on_batch_reports_metrics_of_the_pre_update_outputs():
    x = rng(4).normal(size=(10, 4)).astype(np.float32)
    y = rng(5).integers(0, 3, 10)
    model = _model()
    before_loss, before_acc = model.evaluate(x, y, batch_size=10)
    loss, acc = model.train_on_batch(x, y)
    assert loss == pytest.approx(before_loss, rel=1e-6)
    assert acc == before_acc


def test_fit_epoch_accuracy_counts_every_sample_once_with_a_ragged_last_batch():
    # lr tiny: the weights do not move, so the epoch accuracy must equal evaluate's
    x = rng(9).normal(size=(23, 4)).astype(np.float32)
    y = rng(10).integers(0, 3, 23)
    set_random_seed(0)
    model = fastnn.Sequential([Dense(6, activation="tanh", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(1e-30), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=5, epochs=2, verbose=0)  # batches 5,5,5,5,3
    _, acc = model.evaluate(x, y)
    assert history.history["accuracy"] == [pytest.approx(acc, abs=1e-15)] * 2
