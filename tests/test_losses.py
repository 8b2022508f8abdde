"""Tests of ``fastnn.losses``: the public ``loss(y_true, y_pred)`` against hand-written NumPy
formulas (Keras clipping with EPSILON = 1e-7 for probabilities), the from-logits forms at extreme
logits, gradients against finite differences, target validation and lookup by name.
"""
import numpy as np
import pytest

import fastnn
from fastnn import losses

from helpers import small_model

BACKENDS = ["native", "numpy"]
EPS = 1e-7  # Keras backend epsilon
CLIP_ORDER_SLACK = EPS  # per class: see test_categorical_crossentropy_value_on_probabilities


def rng(seed=0):
    return np.random.default_rng(seed)


def clip(p):
    return np.clip(p, EPS, 1 - EPS)


def np_mse(y, p):
    return np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2)


def np_bce(y, p):
    p = clip(np.asarray(p, np.float64))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def np_cce(y, p):
    # Keras: normalise rows to sum to one, clip, then -sum(y log p)
    p = np.asarray(p, np.float64)
    p = clip(p / p.sum(axis=1, keepdims=True))
    return -np.mean(np.sum(y * np.log(p), axis=1))


def np_sparse_cce(labels, p):
    return np_cce(np.eye(p.shape[1])[labels], p)


def np_log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))


def np_bce_logits(y, z):
    z = np.asarray(z, np.float64)
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def probabilities(n, c, seed=0):
    return rng(seed).dirichlet(np.ones(c), size=n)


# -- values of the public call ----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_mse_value(backend, dtype, rtol):
    fastnn.set_backend(backend)
    y, p = rng(0).normal(size=(13, 3)), rng(1).normal(size=(13, 3))
    got = losses.MeanSquaredError()(y.astype(dtype), p.astype(dtype))
    assert got == pytest.approx(np_mse(y.astype(dtype), p.astype(dtype)), rel=rtol)
    assert losses.get("mse")(y, p) == pytest.approx(np_mse(y, p), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_flat_targets_against_column_predictions_do_not_broadcast(backend):
    fastnn.set_backend(backend)
    y, p = rng(0).normal(size=10), rng(1).normal(size=(10, 1))
    expected = np.mean((p[:, 0] - y) ** 2)
    assert expected != pytest.approx(np.mean((p - y) ** 2), rel=1e-3)  # the (10, 10) broadcast
    loss = losses.MeanSquaredError()
    assert loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert loss(y, p[:, 0]) == pytest.approx(expected, rel=1e-12)
    assert loss(y[:, None], p) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        loss(y[:9], p)
    with pytest.raises(ValueError):
        loss(rng(2).normal(size=(10, 2)), p)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_binary_crossentropy_value_on_probabilities(backend, dtype, rtol):
    fastnn.set_backend(backend)
    y = rng(0).integers(0, 2, (12, 2)).astype(np.float64)
    y[0] = [0.3, 0.8]  # soft targets are allowed
    p = rng(1).random((12, 2))
    got = losses.BinaryCrossentropy()(y.astype(dtype), p.astype(dtype))
    assert got == pytest.approx(np_bce(y, p.astype(dtype).astype(np.float64)), rel=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_crossentropy_clips_probabilities_at_epsilon(backend):
    fastnn.set_backend(backend)
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.0], [1.0], [1.0], [0.0]])  # two certain mistakes, two certain hits
    expected = 2 * -np.log(EPS) / 4  # -log(1e-7) = 16.118 per mistake, -log(1 - 1e-7) ~ 1e-7 per hit
    assert losses.BinaryCrossentropy()(y, p) == pytest.approx(expected, rel=1e-6)
    assert losses.BinaryCrossentropy()(y, p) == pytest.approx(np_bce(y, p), rel=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_categorical_crossentropy_value_on_probabilities(backend, dtype, rtol):
    fastnn.set_backend(backend)
    p = probabilities(9, 4)
    p[0] = [1.0, 0.0, 0.0, 0.0]  # clipped entries
    p[1] = [0.0, 0.0, 0.0, 1.0]
    y = np.eye(4)[[0, 2, 1, 3, 0, 1, 2, 3, 0]]
    y[2] = [0.1, 0.6, 0.2, 0.1]  # soft targets
    got = losses.CategoricalCrossentropy()(y.astype(dtype), p.astype(dtype))
    # Keras normalises then clips; clipping then normalising (as Keras's TF sparse path does)
    # moves a clipped row by at most (classes - 1) * EPSILON: allow that much per sample.
    assert got == pytest.approx(np_cce(y, p.astype(dtype)), rel=rtol, abs=CLIP_ORDER_SLACK * 4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_sparse_categorical_crossentropy_value_on_probabilities(backend, dtype, rtol):
    fastnn.set_backend(backend)
    p = probabilities(10, 3, seed=2)
    p[0] = [0.0, 1.0, 0.0]  # label 2 below: clipped to 1e-7
    labels = np.array([2, 0, 1, 2, 1, 0, 0, 2, 1, 1])
    got = losses.SparseCategoricalCrossentropy()(labels, p.astype(dtype))
    assert got == pytest.approx(np_sparse_cce(labels, p.astype(dtype)), rel=rtol, abs=CLIP_ORDER_SLACK * 3)
    assert got > -np.log(EPS) / 10  # the certain mistake alone contributes 16.1 / 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_equals_categorical_with_one_hot(backend):
    fastnn.set_backend(backend)
    p = probabilities(20, 5, seed=3)
    labels = rng(4).integers(0, 5, 20)
    sparse = losses.SparseCategoricalCrossentropy()(labels, p)
    cat = losses.CategoricalCrossentropy()(np.eye(5)[labels], p)
    assert sparse == pytest.approx(cat, rel=1e-12)
    z = rng(5).normal(size=(20, 5)) * 10
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z)
    cat = losses.CategoricalCrossentropy(from_logits=True)(np.eye(5)[labels], z)
    assert sparse == pytest.approx(cat, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_logits_values(backend):
    fastnn.set_backend(backend)
    z = rng(0).normal(size=(8, 4)) * 5
    labels = rng(1).integers(0, 4, 8)
    onehot = np.eye(4)[labels]
    expected = -np.mean(np_log_softmax(z)[np.arange(8), labels])
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z) == pytest.approx(expected, rel=1e-12)
    assert losses.CategoricalCrossentropy(from_logits=True)(onehot, z) == pytest.approx(expected, rel=1e-12)
    yb = rng(2).integers(0, 2, (8, 4)).astype(np.float64)
    assert losses.BinaryCrossentropy(from_logits=True)(yb, z) == pytest.approx(np_bce_logits(yb, z), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_logits_exact_at_huge_logits(backend, dtype):
    # no clipping, no overflow: the loss of a confident mistake is the logit gap itself
    fastnn.set_backend(backend)
    z = np.array([[1e4, 0.0, -1e4], [0.0, 3e4, 0.0]], dtype=dtype)
    labels = np.array([1, 1])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z)
    assert np.isfinite(loss)
    assert loss == pytest.approx(1e4 / 2, rel=1e-6)
    zb = np.array([[1e4], [-1e4], [1e4]], dtype=dtype)
    yb = np.array([[0.0], [1.0], [1.0]], dtype=dtype)
    assert losses.BinaryCrossentropy(from_logits=True)(yb, zb) == pytest.approx(2e4 / 3, rel=1e-6)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy"])
def test_probability_path_equals_logits_path_away_from_clipping(name):
    fastnn.set_floatx("float64")
    z = rng(0).normal(size=(6, 3))
    if name == "binary_crossentropy":
        y = rng(1).integers(0, 2, (6, 3)).astype(np.float64)
        p = 1 / (1 + np.exp(-z))
    else:
        y = rng(1).integers(0, 3, 6)
        if name == "categorical_crossentropy":
            y = np.eye(3)[y]
        p = np.exp(np_log_softmax(z))
    probs = losses.get(name)(y, p)
    logits = type(losses.get(name))(from_logits=True)(y, z)
    assert probs == pytest.approx(logits, rel=1e-10)


# -- gradients -----------------------------------------------------------------------------------
CASES = {
    "mse": (lambda: losses.MeanSquaredError(), lambda r: r.normal(size=(5, 3)), lambda r: r.normal(size=(5, 3))),
    "bce": (lambda: losses.BinaryCrossentropy(), lambda r: r.integers(0, 2, (5, 3)).astype(float),
            lambda r: r.uniform(0.05, 0.95, (5, 3))),
    "bce_logits": (lambda: losses.BinaryCrossentropy(from_logits=True), lambda r: r.random((5, 3)),
                   lambda r: r.normal(size=(5, 3)) * 3),
    "cce": (lambda: losses.CategoricalCrossentropy(), lambda r: r.dirichlet(np.ones(3), 5),
            lambda r: r.dirichlet(np.ones(3) * 3, 5)),
    "cce_logits": (lambda: losses.CategoricalCrossentropy(from_logits=True),
                   lambda r: r.dirichlet(np.ones(3), 5), lambda r: r.normal(size=(5, 3)) * 3),
    "sparse": (lambda: losses.SparseCategoricalCrossentropy(), lambda r: r.integers(0, 3, 5),
               lambda r: r.dirichlet(np.ones(3) * 3, 5)),
    "sparse_logits": (lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
                      lambda r: r.integers(0, 3, 5), lambda r: r.normal(size=(5, 3)) * 3),
    "cce_smoothed": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.2),
                     lambda r: np.eye(3)[r.integers(0, 3, 5)], lambda r: r.dirichlet(np.ones(3) * 3, 5)),
    "cce_logits_smoothed": (lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                            lambda r: np.eye(3)[r.integers(0, 3, 5)], lambda r: r.normal(size=(5, 3)) * 3),
    "bce_smoothed": (lambda: losses.BinaryCrossentropy(label_smoothing=0.3),
                     lambda r: r.integers(0, 2, (5, 3)).astype(float), lambda r: r.uniform(0.05, 0.95, (5, 3))),
    "bce_logits_smoothed": (lambda: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.3),
                            lambda r: r.integers(0, 2, (5, 3)).astype(float), lambda r: r.normal(size=(5, 3)) * 3),
    # residuals kept away from the kinks (0, +-delta) so central differences are exact enough
    "mae": (lambda: losses.MeanAbsoluteError(), lambda r: r.normal(size=(5, 3)),
            lambda r: r.choice([-1, 1], (5, 3)) * r.uniform(0.1, 2, (5, 3))),
    "huber": (lambda: losses.Huber(delta=0.7), lambda r: np.zeros((5, 3)),
              lambda r: r.choice([-1, 1], (5, 3)) * r.choice([0.3, 1.5], (5, 3))),
    "log_cosh": (lambda: losses.LogCosh(), lambda r: r.normal(size=(5, 3)), lambda r: r.normal(size=(5, 3)) * 3),
    "hinge": (lambda: losses.Hinge(), lambda r: r.integers(0, 2, (5, 3)),
              lambda r: r.choice([-1, 1], (5, 3)) * r.choice([0.4, 1.6], (5, 3))),
    "kld": (lambda: losses.KLDivergence(), lambda r: r.dirichlet(np.ones(3), 5),
            lambda r: r.dirichlet(np.ones(3) * 3, 5)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_grad_matches_finite_differences(backend, case):
    fastnn.set_backend(backend)
    make, make_y, make_p = CASES[case]
    r = rng(7)
    loss, y, pred = make(), make_y(r), make_p(r)
    targets = loss.prepare_targets(y, len(pred), pred.shape[1:], np.float64)
    value, grad = loss.value_and_grad(targets, np.ascontiguousarray(pred))
    assert value == pytest.approx(loss(y, pred), rel=1e-12)
    eps = 1e-6
    numeric = np.zeros_like(pred)
    for i in np.ndindex(pred.shape):
        hi, lo = pred.copy(), pred.copy()
        hi[i] += eps
        lo[i] -= eps
        numeric[i] = (loss(y, hi) - loss(y, lo)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_public_call_does_not_modify_inputs():
    y, p = rng(0).integers(0, 3, 6), probabilities(6, 3)
    p[0] = [1.0, 0.0, 0.0]
    y_copy, p_copy = y.copy(), p.copy()
    losses.SparseCategoricalCrossentropy()(y, p)
    losses.CategoricalCrossentropy()(np.eye(3)[y], p)
    losses.BinaryCrossentropy()(np.eye(3)[y], p)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(p, p_copy)


# -- target validation -------------------------------------------------------------------------
@pytest.mark.parametrize("labels, pattern", [
    ([0, 1, 3], r"got 3 at index 2"),
    ([0, -1, 2], r"got -1 at index 1"),
    ([0.0, 1.5, 2.0], r"got 1\.5 at index 1"),
    ([0.0, np.nan, 2.0], r"got nan at index 1"),
])
def test_sparse_labels_validated(labels, pattern):
    p = probabilities(3, 3)
    with pytest.raises(ValueError, match=pattern) as info:
        losses.SparseCategoricalCrossentropy()(np.array(labels), p)
    assert "[0, 3)" in str(info.value)


def test_other_target_errors():
    p = probabilities(4, 3)
    with pytest.raises(ValueError, match="same number of samples"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 1, 2]), p)
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        losses.SparseCategoricalCrossentropy()(np.eye(3)[[0, 1, 2, 0]], p)  # one-hot given to sparse
    with pytest.raises(ValueError, match="one-hot"):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2, 0]), p)  # labels given to one-hot loss
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.BinaryCrossentropy()(np.array([[0.0], [2.0], [1.0], [0.0]]), p[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        losses.MeanSquaredError()(np.array([[0.0], [np.nan], [1.0], [0.0]]), p[:, :1])
    with pytest.raises(TypeError):
        losses.MeanSquaredError()(np.array([["a"], ["b"], ["c"], ["d"]]), p[:, :1])
    with pytest.raises(TypeError):
        losses.MeanSquaredError()(np.zeros((4, 1)), np.array([["a"], ["b"], ["c"], ["d"]]))


# -- lookup -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [
    ("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("MSE", losses.MeanSquaredError), ("MeanSquaredError", losses.MeanSquaredError),
    ("mae", losses.MeanAbsoluteError), ("mean_absolute_error", losses.MeanAbsoluteError),
    ("huber", losses.Huber), ("huber_loss", losses.Huber), ("Huber", losses.Huber),
    ("log_cosh", losses.LogCosh), ("logcosh", losses.LogCosh), ("hinge", losses.Hinge),
    ("kld", losses.KLDivergence), ("kl_divergence", losses.KLDivergence),
    ("kullback_leibler_divergence", losses.KLDivergence), ("KLDivergence", losses.KLDivergence),
    ("BinaryCrossentropy", losses.BinaryCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    assert loss.from_logits is False


def test_get_passes_instances_and_rejects_unknown():
    instance = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert losses.get(instance) is instance
    for bad in ("triplet_hard", "crossentropy", "", None, 3, losses.MeanSquaredError):
        with pytest.raises(ValueError, match="unknown loss"):
            losses.get(bad)


def test_get_config():
    # Keras 3.15's get_config: name and reduction beside each loss's own arguments
    red = "sum_over_batch_size"
    assert losses.BinaryCrossentropy(from_logits=True).get_config() == {
        "name": "binary_crossentropy", "reduction": red, "from_logits": True, "label_smoothing": 0.0}
    assert losses.MeanSquaredError().get_config() == {"name": "mean_squared_error", "reduction": red}
    assert losses.Huber(2).get_config() == {"name": "huber_loss", "reduction": red, "delta": 2.0}
    assert losses.EPSILON == 1e-7
    for loss in (losses.CategoricalCrossentropy(True, 0.25), losses.Huber(0.5), losses.Hinge(),
                 losses.LogCosh(), losses.KLDivergence(), losses.MeanAbsoluteError()):
        config = loss.get_config()
        config.pop("name")
        assert type(loss)(**config).get_config() == loss.get_config()


# -- the losses added for Keras parity: values of the public call ----------------------------
def keras_formula(name, y, p, delta=1.0):
    """Keras's per-sample definitions (mean over the last axis, or sum for KLD), then the batch mean."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    d = p - y
    per_sample = {
        "mae": lambda: np.mean(np.abs(d), axis=-1),
        "huber": lambda: np.mean(np.where(np.abs(d) <= delta, 0.5 * d ** 2,
                                          delta * np.abs(d) - 0.5 * delta ** 2), axis=-1),
        "log_cosh": lambda: np.mean(d + np.logaddexp(0, -2 * d) - np.log(2), axis=-1),
        "hinge": lambda: np.mean(np.maximum(1 - np.where(np.isin(y, [0, 1]).all(), 2 * y - 1, y) * p, 0),
                                 axis=-1),
        "kld": lambda: np.sum(np.clip(y, EPS, 1) * np.log(np.clip(y, EPS, 1) / np.clip(p, EPS, 1)), axis=-1),
    }[name]()
    return float(np.mean(per_sample))


NEW_LOSSES = {
    "mae": (losses.MeanAbsoluteError, lambda r: r.normal(size=(11, 3)), lambda r: r.normal(size=(11, 3))),
    "huber": (lambda: losses.Huber(delta=0.8), lambda r: r.normal(size=(11, 3)),
              lambda r: r.normal(size=(11, 3)) * 2),
    "log_cosh": (losses.LogCosh, lambda r: r.normal(size=(11, 3)), lambda r: r.normal(size=(11, 3)) * 4),
    "hinge": (losses.Hinge, lambda r: r.choice([-1.0, 1.0], (11, 3)), lambda r: r.normal(size=(11, 3))),
    "hinge01": (losses.Hinge, lambda r: r.integers(0, 2, (11, 3)), lambda r: r.normal(size=(11, 3))),
    "kld": (losses.KLDivergence, lambda r: r.dirichlet(np.ones(3), 11), lambda r: r.dirichlet(np.ones(3), 11)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("case", sorted(NEW_LOSSES))
def test_new_loss_values_follow_keras_formulas(backend, dtype, rtol, case):
    fastnn.set_backend(backend)
    make, make_y, make_p = NEW_LOSSES[case]
    y, p = make_y(rng(1)), make_p(rng(2)).astype(dtype)
    loss = make()
    expected = keras_formula(case.rstrip("01"), y, p, getattr(loss, "delta", 1.0))
    assert loss(y, p) == pytest.approx(expected, rel=rtol, abs=rtol)
    assert losses.get(loss.name)(y, p) == pytest.approx(keras_formula(case.rstrip("01"), y, p), rel=rtol, abs=rtol)


def test_hinge_labels_and_kld_targets_validated():
    p = rng(0).normal(size=(4, 1))
    with pytest.raises(ValueError, match=r"labels -1 and 1 \(or 0 and 1\)"):
        losses.Hinge()(np.array([0.0, 1.0, 2.0, 1.0]), p)
    with pytest.raises(ValueError, match=r"labels -1 and 1"):
        losses.Hinge()(np.array([0.0, 1.0, -1.0, 1.0]), p)  # 0 and -1 mixed
    prepared = losses.Hinge().prepare_targets(np.array([0, 1, 1, 0]), 4, (1,), np.float32)
    assert prepared.dtype == np.float32 and prepared[:, 0].tolist() == [-1, 1, 1, -1]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.KLDivergence()(np.array([[0.5, 1.5]]), np.array([[0.5, 0.5]]))
    for bad in (0, -1.0, np.inf, np.nan, "1", True):
        with pytest.raises(ValueError, match="delta"):
            losses.Huber(bad)
    for bad in (-0.1, 1.5, np.nan, "0.1", None):
        with pytest.raises(ValueError, match="label_smoothing"):
            losses.CategoricalCrossentropy(label_smoothing=bad)
        with pytest.raises(ValueError, match="label_smoothing"):
            losses.BinaryCrossentropy(label_smoothing=bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_label_smoothing_equals_keras_smoothed_targets(backend):
    fastnn.set_backend(backend)
    p = probabilities(7, 4, seed=3)
    y = np.eye(4)[rng(4).integers(0, 4, 7)]
    s = 0.1
    cce = losses.CategoricalCrossentropy(label_smoothing=s)
    assert cce(y, p) == pytest.approx(np_cce(y * (1 - s) + s / 4, p), rel=1e-10)
    z = rng(5).normal(size=(7, 4)) * 3
    expected = -np.mean(np.sum((y * (1 - s) + s / 4) * np_log_softmax(z), axis=1))
    assert losses.CategoricalCrossentropy(True, s)(y, z) == pytest.approx(expected, rel=1e-12)
    yb = rng(6).integers(0, 2, (7, 2)).astype(float)
    pb = rng(7).uniform(0.01, 0.99, (7, 2))
    bce = losses.BinaryCrossentropy(label_smoothing=0.3)
    assert bce(yb, pb) == pytest.approx(np_bce(yb * 0.7 + 0.15, pb), rel=1e-10)
    assert losses.BinaryCrossentropy(True, 0.3)(yb, z[:, :2]) == pytest.approx(
        np_bce_logits(yb * 0.7 + 0.15, z[:, :2]), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_true_class_200_below_the_top_logit(backend, dtype):
    # the stability requirement, through the public losses on both backends
    fastnn.set_backend(backend)
    z = np.zeros((2, 5), dtype)
    z[:, 0] = 100.0
    z[:, 3] = -100.0
    labels = np.array([3, 3])
    for loss, y in ((losses.SparseCategoricalCrossentropy(from_logits=True), labels),
                    (losses.CategoricalCrossentropy(from_logits=True), np.eye(5, dtype=dtype)[labels])):
        targets = loss.prepare_targets(y, 2, (5,), dtype)
        value, grad = loss.value_and_grad(targets, z)
        assert value == pytest.approx(200.0, rel=1e-6)
        assert np.isfinite(grad).all()
        np.testing.assert_allclose(grad[:, 3], -0.5, rtol=1e-6)  # (softmax - 1) / N
        np.testing.assert_allclose(grad[:, 0], 0.5, rtol=1e-6)
    zb = np.array([[-200.0], [200.0]], dtype)
    value, grad = losses.BinaryCrossentropy(from_logits=True).value_and_grad(
        np.array([[1.0], [0.0]], dtype), zb)
    assert value == pytest.approx(200.0, rel=1e-6) and np.isfinite(grad).all()
    np.testing.assert_allclose(grad[:, 0], [-0.5, 0.5], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(), losses.CategoricalCrossentropy(),
                                  losses.SparseCategoricalCrossentropy(), losses.KLDivergence(),
                                  losses.CategoricalCrossentropy(label_smoothing=0.1),
                                  losses.BinaryCrossentropy(label_smoothing=0.1)], ids=lambda l: l.name)
def test_probabilities_of_exactly_zero_and_one(backend, loss):
    fastnn.set_backend(backend)
    p = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 1, 1])  # one certain hit, one certain miss, one certain hit
    y = labels if loss.name.startswith("sparse") else np.eye(3)[labels]
    targets = loss.prepare_targets(y, 3, (3,), np.float64)
    value, grad = loss.value_and_grad(targets, p)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert 0 < value < 17  # a certain miss costs about -log(EPSILON) = 16.1, then averaged


@pytest.mark.parametrize("name", ["mae", "huber", "log_cosh"])
def test_regression_losses_train_the_same_on_both_backends(name):
    from fastnn.layers import Dense
    from fastnn.utils import set_random_seed
    fastnn.set_floatx("float64")
    x = rng(8).normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng(9).normal(size=(64, 1))
    histories = []
    for backend in BACKENDS:
        fastnn.set_backend(backend)
        set_random_seed(3)
        model = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(3,)), Dense(1)])
        model.compile(optimizer=fastnn.optimizers.Adam(0.02), loss=name, metrics=["mae"])
        histories.append(model.fit(x, y, batch_size=16, epochs=15, verbose=0).history)
    native, numpy_ = histories
    np.testing.assert_allclose(native["loss"], numpy_["loss"], rtol=1e-9)
    assert native["loss"][-1] < 0.5 * native["loss"][0]  # it learns
    assert native["mae"][-1] < 0.5 * native["mae"][0]


@pytest.mark.parametrize("backend", ["numpy", "native"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_losses_stay_finite_for_extreme_inputs(backend, dtype):
    big = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 30.0]], dtype)
    onehot = np.array([[0, 1, 0], [1, 0, 0]], dtype)  # targets on the far wrong side
    cases = [
        (losses.BinaryFocalCrossentropy(from_logits=True), onehot, big),
        (losses.CategoricalFocalCrossentropy(from_logits=True), onehot, big),
        (losses.CategoricalFocalCrossentropy(from_logits=True, gamma=0.5), onehot, big),
        (losses.CosineSimilarity(), onehot, np.array([[1e30, 0, 0], [0, 0, 0]], dtype)),
        (losses.CosineSimilarity(), np.array([[1e-30, 0, 0], [1, 1, 1]], dtype), np.array([[3e37, 3e37, 0], [1e-30, 0, 0]], dtype)),
        (losses.CategoricalHinge(), onehot, big),
    ]
    with fastnn.backend_scope(backend):
        for loss, y, p in cases:
            value, grad = loss.value_and_grad(y, p, None, True)
            assert np.isfinite(value), (loss.name, value)
            assert np.isfinite(grad).all(), (loss.name, grad)
    # the exact limits: focal BCE at z = -1e4 with target 1 is 1e4 per element (f = 1); cosine of
    # a zero row is 0 and of parallel rows -1 whatever their scale
    bf, _ = losses.BinaryFocalCrossentropy(from_logits=True, gamma=2.0).value_and_grad(
        np.array([[1.0]], dtype), np.array([[-1e4]], dtype), None, False)
    assert bf == pytest.approx(1e4, rel=1e-6)
    cs, _ = losses.CosineSimilarity().value_and_grad(np.array([[1.0, 2.0]], dtype),
                                                    np.array([[1e30, 2e30]], dtype), None, False)
    assert cs == pytest.approx(-1.0, rel=1e-6)


# -- ignore_class: against Keras 3 (tests/fixtures/make_keras_ignore_class.py) -------------------
IGNORE = np.load(__import__("os").path.join(__import__("os").path.dirname(__file__), "fixtures",
                                            "keras_ignore_class.npz"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ignore", [2, -1])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_ignore_class_value_and_gradient_match_keras(backend, ignore, reduction, from_logits, weighted):
    fastnn.set_backend(backend)
    key = f"{ignore}_{reduction}_{int(from_logits)}_{int(weighted)}"
    x = IGNORE["logits" if from_logits else "probs"]
    labels, w = IGNORE[f"labels_{ignore}"], IGNORE["weights"]
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore, reduction=reduction)
    y = loss.prepare_targets(labels, len(x), x.shape[1:], x.dtype)
    value, grad = loss.value_and_grad(y, x.copy())
    grad = grad.copy()
    if weighted:
        value = loss.weighted_value(y, x, w, grad=grad)
    called = loss(labels, x, sample_weight=w if weighted else None)
    assert value == pytest.approx(float(IGNORE[f"value_{key}"]), rel=2e-6)
    assert float(called) == pytest.approx(float(IGNORE[f"value_{key}"]), rel=2e-6)
    np.testing.assert_allclose(grad, IGNORE[f"grad_{key}"], rtol=2e-5, atol=1e-7)
    assert (grad[labels == ignore] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ignore_class_edge_cases(backend):
    fastnn.set_backend(backend)
    z = IGNORE["logits"][:3]
    every = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    assert every(np.full(3, -1), z) == float(IGNORE["all_ignored_-1"]) == 0.0
    value, grad = every.value_and_grad(np.full(3, -1, np.int64), z.copy())
    assert value == 0.0 and (grad == 0).all()
    none_ignored = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=7)
    plain = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert none_ignored([0, 1, 3], z) == pytest.approx(plain([0, 1, 3], z), rel=1e-7)
    per_sample = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction=None)
    values = per_sample([0, 1, 3], z)
    assert values[1] == 0 and values[0] == pytest.approx(plain([0], z[:1]), rel=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 4\) or ignore_class=-1.*got 5"):
        every([0, 5, -1], z)
    with pytest.raises(ValueError, match=r"\[0, 4\).*got -1"):
        plain([0, -1, 1], z)
    with pytest.raises(TypeError, match="ignore_class"):
        losses.SparseCategoricalCrossentropy(ignore_class=1.5)
    config = losses.SparseCategoricalCrossentropy(ignore_class=-1, name="masked").get_config()
    assert config["ignore_class"] == -1
    assert losses.SparseCategoricalCrossentropy.from_config(config).ignore_class == -1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_metric", [False, True])
def test_ignore_class_training_matches_keras(backend, with_metric):
    """fit (the recorded one-call step on native), then evaluate, against Keras's history and
    weights; with and without a metric (the metric counts ignored rows as wrong, as Keras)."""
    fastnn.set_backend(backend)
    x, y, kernel = IGNORE["fit_x"], IGNORE["fit_y"], IGNORE["fit_kernel"]
    model = fastnn.Sequential([fastnn.layers.Dense(4, activation="softmax", input_shape=(5,))])
    model.compile(optimizer=fastnn.optimizers.SGD(0.5),
                  loss=losses.SparseCategoricalCrossentropy(ignore_class=-1),
                  metrics=["accuracy"] if with_metric else None)
    model.set_weights([kernel, np.zeros(4, np.float32)])
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], IGNORE[f"fit_loss_{int(with_metric)}"], rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[0], IGNORE[f"fit_kernel_after_{int(with_metric)}"],
                               rtol=1e-4, atol=1e-6)
    got = np.array(model.evaluate(x, y, batch_size=8), ndmin=1)
    np.testing.assert_allclose(got, IGNORE[f"evaluate_{int(with_metric)}"], rtol=1e-5)


def test_get_refuses_a_python_function_saying_why():
    def my_loss(y_true, y_pred):
        return (y_true - y_pred) ** 2
    with pytest.raises(TypeError, match="'my_loss' is a Python function.*fastnn.losses"):
        losses.get(my_loss)


# -- categorical cross-entropy targets ------------------------------------------------------------
@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_categorical_cross_entropy_targets_outside_0_1_are_refused(backend, bad):
    from fastnn import losses
    y = np.array([[bad, 1 - bad], [0.0, 1.0]], np.float32)
    p = np.array([[0.3, 0.7], [0.5, 0.5]], np.float32)
    for loss in (losses.CategoricalCrossentropy(), losses.CategoricalCrossentropy(from_logits=True)):
        with pytest.raises(ValueError, match=r"categorical_crossentropy expects .*targets in \[0, 1\]"):
            loss(y, p)
    model = small_model(features=2, units=2, loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        model.fit(np.ones((2, 2)), y, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels, bad", [([0, 2, -1, 1], -1), ([0, 3, 1, 1], 3),
                                          ([0, 1, np.iinfo(np.int64).min, 2], np.iinfo(np.int64).min),
                                          ([0, 1, 2, np.iinfo(np.int64).max], np.iinfo(np.int64).max)])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "int32", "column"])
def test_sparse_labels_out_of_range_are_refused_in_every_layout(labels, bad, layout):
    """Integer labels outside [0, classes) are refused by value and index whatever their dtype
    and layout (int64 C-contiguous labels take a one-comparison fast path)."""
    loss = losses.SparseCategoricalCrossentropy()
    y = np.array(labels, dtype=np.int64)
    if layout == "strided":
        y = np.repeat(y, 2)[::2]
    elif layout == "int32":
        if not np.iinfo(np.int32).min <= bad <= np.iinfo(np.int32).max:
            pytest.skip("the label does not fit int32")
        y = y.astype(np.int32)
    elif layout == "column":
        y = y[:, None]
    with pytest.raises(ValueError, match=rf"labels must be integers in \[0, 3\).*got {bad} at index"):
        loss.prepare_targets(y, 4, (3,), np.float32)
    good = np.array([0, 2, 1, 2], dtype=np.int64)
    assert loss.prepare_targets(good, 4, (3,), np.float32).tolist() == [0, 2, 1, 2]


def test_unaligned_int64_labels_come_back_aligned():
    """The kernels load whole int64 labels: labels at an odd address are copied, not passed on."""
    raw = np.zeros(4 * 8 + 1, dtype=np.uint8)
    y = raw[1:].view(np.int64)
    y[:] = [0, 2, 1, 2]
    assert not y.flags.aligned
    out = losses.SparseCategoricalCrossentropy().prepare_targets(y, 4, (3,), np.float32)
    assert out.flags.aligned and out.flags.c_contiguous and out.tolist() == [0, 2, 1, 2]
