"""Tests of ``fastnn.metrics``: the Keras per-sample functions against NumPy formulas, stateful
accumulation over unequal batches (a ratio of totals, not a mean of ratios) for every metric
object, how names resolve from the loss, and the figures fit/evaluate report.
(Parity with scikit-learn is in test_metrics_sklearn.py.)
"""
import warnings

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
    (losses.BinaryCrossentropy(), (3,), metrics.categorical_accuracy),  # Keras 3 (tf.keras 2: binary)
    (losses.BinaryCrossentropy(name="bce"), (1,), metrics.binary_accuracy),
    (losses.SparseCategoricalCrossentropy(name="custom"), (4,), metrics.sparse_categorical_accuracy),
    (losses.SparseCategoricalCrossentropy(), (1,), metrics.binary_accuracy),  # one column first, as Keras
    (losses.MeanSquaredError(), (1,), metrics.binary_accuracy),
    (losses.MeanSquaredError(), (4,), metrics.categorical_accuracy),
])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_resolves_like_keras(loss, shape, fn, name):
    m = metrics.get(name, loss, shape)
    assert m.fn is fn
    assert m.name == name


def test_metric_lookup_errors():
    for bad in ("f2", "precisions", "", 3, None, metrics.PrecisionScore):
        with pytest.raises(ValueError, match="metric"):
            metrics.get(bad, losses.MeanSquaredError(), (1,))
    with pytest.raises(ValueError, match="average='binary'.*10 outputs"):
        metrics.get(metrics.PrecisionScore(), losses.SparseCategoricalCrossentropy(), (10,))
    multi_label = metrics.get("precision_score", losses.BinaryCrossentropy(), (3,))
    with pytest.raises(ValueError, match="multi-label"):
        multi_label.update_state(np.array([[1.0, 1.0, 0.0]]), np.array([[0.9, 0.8, 0.1]]))
    with pytest.raises(ValueError, match="average"):
        metrics.RecallScore(average=None)
    with pytest.raises(ValueError, match="zero_division"):
        metrics.F1Score(zero_division=0.5)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUCScore(curve="DET")


def test_get_clones_instances_with_an_empty_state():
    m = metrics.MeanMetricWrapper(metrics.binary_accuracy, "mine", threshold=0.3)
    m.update_state([[1.0]], [[0.4]])
    got = metrics.get(m, None, (1,))
    assert got is not m and type(got) is type(m)
    assert (got.name, got.fn, got.kwargs, got.count) == ("mine", metrics.binary_accuracy, {"threshold": 0.3}, 0)
    assert m.count == 1  # the user's instance is untouched


@pytest.mark.parametrize("name, loss, shape, cls, average", [
    ("precision", losses.BinaryCrossentropy(), (1,), metrics.Precision, None),
    ("recall", losses.SparseCategoricalCrossentropy(), (10,), metrics.Recall, None),
    ("precision_score", losses.BinaryCrossentropy(), (1,), metrics.PrecisionScore, "binary"),
    ("recall_score", losses.SparseCategoricalCrossentropy(), (2,), metrics.RecallScore, "binary"),
    ("f1_score", losses.SparseCategoricalCrossentropy(), (10,), metrics.F1Score, "macro"),
    ("F1", losses.CategoricalCrossentropy(), (3,), metrics.F1Score, "macro"),
    ("auc", losses.BinaryCrossentropy(), (1,), metrics.AUC, None),
    ("roc_auc", losses.BinaryCrossentropy(), (1,), metrics.AUCScore, "macro"),
    ("mae", losses.MeanSquaredError(), (4,), metrics.MeanAbsoluteError, None),
    ("rmse", losses.MeanSquaredError(), (1,), metrics.RootMeanSquaredError, None),
    ("r2_score", losses.MeanSquaredError(), (1,), metrics.R2Score, None),
    ("log_loss", losses.SparseCategoricalCrossentropy(), (3,), metrics.LogLoss, None),
    ("cosine_similarity", losses.MeanSquaredError(), (3,), metrics.CosineSimilarity, None),
    ("top_k_categorical_accuracy", losses.CategoricalCrossentropy(), (9,),
     metrics.TopKCategoricalAccuracy, None),
])
def test_names_resolve_to_metric_objects(name, loss, shape, cls, average):
    m = metrics.get(name, loss, shape)
    assert type(m) is cls and m.name == name
    assert getattr(m, "average", None) == average


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
    yb = rng(8).integers(0, 2, (11, 1)).astype(np.float32)
    binary = _model(loss="binary_crossentropy", outputs=1)
    _, acc = binary.evaluate(x, yb, batch_size=4)
    assert acc == pytest.approx(np.mean((binary.predict(x) > 0.5) == (yb == 1)), abs=1e-15)
    # several sigmoid outputs: Keras 3's "accuracy" compares argmaxes; "binary_accuracy" counts elements
    yb = rng(8).integers(0, 2, (11, 3)).astype(np.float32)
    multi = _model(loss="binary_crossentropy", outputs=3, metric_names=("accuracy", "binary_accuracy"))
    _, acc, bin_acc = multi.evaluate(x, yb, batch_size=4)
    assert acc == pytest.approx(np.mean(multi.predict(x).argmax(1) == yb.argmax(1)), abs=1e-15)
    assert bin_acc == pytest.approx(np.mean((multi.predict(x) > 0.5) == (yb == 1)), abs=1e-15)


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


# -- every metric object: many ragged batches equal the metric on the concatenated data ---------
sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency: "
                         "pip install '.[test]'")
from sklearn.metrics.pairwise import cosine_similarity as sk_pairwise_cosine  # noqa: E402

N = 240


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_data(seed=30):
    y = rng(seed).integers(0, 4, N)
    p = softmax_rows(rng(seed + 1).normal(size=(N, 4)) + 1.5 * np.eye(4)[y])
    return y, p


def onehot_data():
    y, p = multiclass_data(32)
    return np.eye(4)[y], p


def binary_data():
    y = rng(34).integers(0, 2, (N, 1)).astype(np.float64)
    p = 1 / (1 + np.exp(-(rng(35).normal(size=(N, 1)) + 2 * y - 1)))
    p[:5] = np.round(p[:5], 1)  # some ties
    return y, p


def regression_data():
    y = rng(36).normal(size=(N, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, 1e3]
    return y, y + rng(37).normal(size=(N, 3))


def labels_of(p):
    return (p[:, 0] > 0.5).astype(int) if p.shape[1] == 1 else np.argmax(p, axis=1)


STATEFUL = {  # name: (make the metric, data, the metric of all the data at once)
    "Accuracy": (metrics.Accuracy, multiclass_data,
                 lambda y, p, w: sk.accuracy_score(y, labels_of(p), sample_weight=w)),
    "Accuracy binary column": (metrics.Accuracy, binary_data,
                               lambda y, p, w: sk.accuracy_score(y[:, 0], labels_of(p), sample_weight=w)),
    "BinaryAccuracy": (lambda: metrics.BinaryAccuracy(threshold=0.4), binary_data,
                       lambda y, p, w: np.average((p[:, 0] > 0.4) == (y[:, 0] > 0.4), weights=w)),
    "CategoricalAccuracy": (metrics.CategoricalAccuracy, onehot_data,
                            lambda y, p, w: sk.accuracy_score(y.argmax(1), p.argmax(1), sample_weight=w)),
    "SparseCategoricalAccuracy": (metrics.SparseCategoricalAccuracy, multiclass_data,
                                  lambda y, p, w: sk.accuracy_score(y, p.argmax(1), sample_weight=w)),
    "TopKCategoricalAccuracy": (lambda: metrics.TopKCategoricalAccuracy(k=2), onehot_data,
                                lambda y, p, w: sk.top_k_accuracy_score(y.argmax(1), p, k=2, sample_weight=w)),
    "SparseTopKCategoricalAccuracy": (lambda: metrics.SparseTopKCategoricalAccuracy(k=3), multiclass_data,
                                      lambda y, p, w: sk.top_k_accuracy_score(y, p, k=3, sample_weight=w)),
    "CosineSimilarity": (metrics.CosineSimilarity, regression_data,
                         lambda y, p, w: np.average(np.diag(sk_pairwise_cosine(y, p)), weights=w)),
    "LogLoss": (metrics.LogLoss, multiclass_data,
                lambda y, p, w: sk.log_loss(y, p, sample_weight=w, labels=[0, 1, 2, 3])),
    "LogLoss binary": (metrics.LogLoss, binary_data,
                       lambda y, p, w: sk.log_loss(y[:, 0], p[:, 0], sample_weight=w)),
    "LogLoss one-hot": (metrics.LogLoss, onehot_data,
                        lambda y, p, w: sk.log_loss(y.argmax(1), p, sample_weight=w)),
    "AUC": (metrics.AUCScore, binary_data, lambda y, p, w: sk.roc_auc_score(y[:, 0], p[:, 0], sample_weight=w)),
    "AUC PR": (lambda: metrics.AUCScore(curve="PR"), binary_data,
               lambda y, p, w: sk.average_precision_score(y[:, 0], p[:, 0], sample_weight=w)),
    "AUC ovr": (metrics.AUCScore, multiclass_data,
                lambda y, p, w: sk.roc_auc_score(y, p, multi_class="ovr", sample_weight=w)),
    "AUC ovr weighted": (lambda: metrics.AUCScore(average="weighted"), multiclass_data,
                         lambda y, p, w: sk.roc_auc_score(y, p, multi_class="ovr", average="weighted",
                                                          sample_weight=w)),
    "AUC PR multiclass": (lambda: metrics.AUCScore(curve="PR"), multiclass_data,
                          lambda y, p, w: sk.average_precision_score(y, p, sample_weight=w)),
    "MeanAbsoluteError": (metrics.MeanAbsoluteError, regression_data,
                          lambda y, p, w: sk.mean_absolute_error(y, p, sample_weight=w)),
    "MeanSquaredError": (metrics.MeanSquaredError, regression_data,
                         lambda y, p, w: sk.mean_squared_error(y, p, sample_weight=w)),
    "RootMeanSquaredError": (metrics.RootMeanSquaredError, regression_data,
                             lambda y, p, w: sk.root_mean_squared_error(y, p, sample_weight=w)),
    "MeanSquaredError weights": (lambda: metrics.MeanSquaredError(multioutput=[1, 2, 3]), regression_data,
                                 lambda y, p, w: sk.mean_squared_error(y, p, sample_weight=w,
                                                                       multioutput=[1, 2, 3])),
    "R2Score": (metrics.R2Score, regression_data, lambda y, p, w: sk.r2_score(y, p, sample_weight=w)),
    "R2Score variance_weighted": (lambda: metrics.R2Score(multioutput="variance_weighted"), regression_data,
                                  lambda y, p, w: sk.r2_score(y, p, sample_weight=w,
                                                              multioutput="variance_weighted")),
}
for _average in ("micro", "macro", "weighted"):
    for _cls, _fn in ((metrics.PrecisionScore, sk.precision_score), (metrics.RecallScore, sk.recall_score),
                      (metrics.F1Score, sk.f1_score)):
        STATEFUL[f"{_cls.__name__} {_average}"] = (
            lambda c=_cls, a=_average: c(average=a), multiclass_data,
            lambda y, p, w, f=_fn, a=_average: f(y, p.argmax(1), average=a, sample_weight=w,
                                                 zero_division=0.0))
for _cls, _fn in ((metrics.PrecisionScore, sk.precision_score), (metrics.RecallScore, sk.recall_score),
                  (metrics.F1Score, sk.f1_score)):
    STATEFUL[f"{_cls.__name__} binary"] = (
        _cls, binary_data, lambda y, p, w, f=_fn: f(y[:, 0], labels_of(p), sample_weight=w))
STATEFUL["FBetaScore weighted"] = (
    lambda: metrics.FBetaScore(beta=2.0, average="weighted"), multiclass_data,
    lambda y, p, w: sk.fbeta_score(y, p.argmax(1), beta=2.0, average="weighted", sample_weight=w))


def ragged_batches(n, seed):
    """Batch boundaries with sizes from 1 to 40, single-sample batches included."""
    sizes = [1, 1]
    r = rng(seed)
    while sum(sizes) < n:
        sizes.append(int(min(r.integers(1, 41), n - sum(sizes))))
    return np.cumsum([0] + sizes)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_metric_over_many_batches_equals_metric_of_all_data(name, weighted):
    make, data, whole = STATEFUL[name]
    y, p = data()
    w = rng(38).uniform(0, 2, N) if weighted else None
    m = make()
    edges = ragged_batches(N, 39)
    assert len(edges) > 10
    # like models.py: every batch's targets and outputs in reused buffers
    y_buffer, p_buffer = np.empty_like(y), np.empty_like(p)
    for lo, hi in zip(edges[:-1], edges[1:]):
        yb, pb = y_buffer[:hi - lo], p_buffer[:hi - lo]
        yb[...], pb[...] = y[lo:hi], p[lo:hi]
        m.update_state(yb, pb, sample_weight=None if w is None else w[lo:hi])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = whole(y, p, w)
    scale = max(1.0, abs(expected))
    assert isinstance(m.result(), float)
    assert m.result() == pytest.approx(expected, rel=0, abs=1e-10 * scale)
    m.reset_state()
    m.update_state(y, p, sample_weight=w)  # one batch: the same figure
    assert m.result() == pytest.approx(expected, rel=0, abs=1e-10 * scale)


def test_r2_accumulation_is_stable_for_targets_far_from_zero():
    y = 1e8 + rng(40).normal(size=(N, 1))
    p = y + 0.5 * rng(41).normal(size=(N, 1))
    m = metrics.R2Score()
    for lo in range(0, N, 7):
        m.update_state(y[lo:lo + 7], p[lo:lo + 7])
    # the naive sum(y^2) - N*mean^2 would lose all 16 digits here
    assert m.result() == pytest.approx(sk.r2_score(y, p), rel=0, abs=1e-7)
    assert 0.5 < m.result() < 0.9


def test_metric_objects_before_any_data_and_undefined_auc():
    for make in (metrics.Accuracy, metrics.PrecisionScore, metrics.LogLoss, metrics.MeanSquaredError):
        assert make().result() == 0.0
    assert np.isnan(metrics.R2Score().result())
    auc = metrics.AUCScore()
    assert np.isnan(auc.result())
    auc.update_state(np.ones((3, 1)), np.array([[0.2], [0.7], [0.9]]))  # one class so far
    assert np.isnan(auc.result())
    auc.update_state(np.zeros((1, 1)), np.array([[0.5]]))
    assert auc.result() == pytest.approx(2 / 3, abs=1e-15)
    multi = metrics.AUCScore()
    multi.update_state([0, 1, 1], softmax_rows(rng(42).normal(size=(3, 3))))  # class 2 not seen yet
    assert np.isnan(multi.result())


def test_precision_object_learns_new_labels_between_batches():
    m = metrics.PrecisionScore(average="macro")
    m.update_state([0, 0], [0, 0])
    m.update_state([2, 1, 2], [2, 2, 1])
    m.update_state([5], [1])
    assert m.classes.tolist() == [0, 1, 2, 5]
    expected = sk.precision_score([0, 0, 2, 1, 2, 5], [0, 0, 2, 2, 1, 1], average="macro",
                                  zero_division=0.0)
    assert m.result() == pytest.approx(expected, abs=1e-15)
    binary = metrics.PrecisionScore()
    binary.update_state([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="multiclass.*average='binary'"):
        binary.result()
