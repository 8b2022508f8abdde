"""L1/L2 weight penalties: the ``l1_l2_penalty`` kernel (native vs reference, vs finite
differences), the Keras API (``L1``, ``L2``, ``L1L2``, aliases, names, configs) and what a user sees:
the reported loss includes the penalty, its gradient reaches the weights, a large L2 shrinks them.
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import _core as C
from fastnn import optimizers, regularizers
from fastnn import reference as R
from fastnn.layers import Dense
from fastnn.utils import set_random_seed

DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]
BACKENDS = ["native", "numpy"]


# -- the kernel ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", [(1,), (7,), (33, 17), (300, 200)])   # the last crosses 2**15
@pytest.mark.parametrize("l1, l2", [(0.01, 0.0), (0.0, 0.3), (0.02, 0.05)])
def test_penalty_native_matches_reference(dtype, shape, l1, l2):
    r = np.random.default_rng(0)
    w = r.normal(size=shape).astype(dtype)
    w.flat[0] = 0.0   # sign(0) = 0
    g = r.normal(size=shape).astype(dtype)
    g_c, g_r = g.copy(), g.copy()
    p_c = C.l1_l2_penalty(w, l1, l2, g_c)
    p_r = R.l1_l2_penalty(w, l1, l2, g_r)
    # float64 sums of n terms in different orders: n * 2**-53 relative at worst
    assert p_c == pytest.approx(p_r, rel=w.size * 2**-53)
    exact = l1 * np.abs(w.astype(np.float64)).sum() + l2 * (w.astype(np.float64) ** 2).sum()
    assert p_c == pytest.approx(exact, rel=w.size * 2**-53)
    np.testing.assert_array_equal(g_c, g_r)   # same operations in the same order
    added = (g_c.astype(np.float64) - g) - (l1 * np.sign(w) + 2 * l2 * w.astype(np.float64))
    assert np.all(np.abs(added) <= 4 * np.finfo(dtype).eps * (np.abs(g) + l1 + 2 * l2 * np.abs(w)))
    assert C.l1_l2_penalty(w, l1, l2) == p_c   # without grad: only the value


def test_penalty_is_bitwise_independent_of_thread_count():
    w = np.random.default_rng(1).normal(size=300_001).astype(np.float32)
    values = []
    for threads in (1, 2, 3):
        fastnn.set_num_threads(threads)
        values.append(C.l1_l2_penalty(w, 0.01, 0.02))
    assert values[0] == values[1] == values[2]


def test_reference_penalty_gradient_matches_finite_differences():
    r = np.random.default_rng(2)
    w = r.choice([-1.0, 1.0], size=(4, 3)) * r.uniform(0.05, 2, size=(4, 3))   # away from |w| = 0
    grad = np.zeros_like(w)
    R.l1_l2_penalty(w, 0.03, 0.2, grad)
    h = 1e-6
    numeric = np.empty_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += h
        wm[i] -= h
        numeric[i] = (R.l1_l2_penalty(wp, 0.03, 0.2) - R.l1_l2_penalty(wm, 0.03, 0.2)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_kernel_rejects_negative_coefficients_and_bad_grad():
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="l1 and l2 must be >= 0"):
        C.l1_l2_penalty(w, -0.1, 0.0)
    with pytest.raises(ValueError, match=r"grad must have shape \(3,\)"):
        C.l1_l2_penalty(w, 0.1, 0.0, np.ones(4, np.float32))


# -- the API -------------------------------------------------------------------------------------
def test_keras_names_defaults_and_aliases():
    assert (regularizers.L1().l1, regularizers.L1().l2) == (0.01, 0.0)
    assert (regularizers.L2().l1, regularizers.L2().l2) == (0.0, 0.01)
    assert (regularizers.L1L2().l1, regularizers.L1L2().l2) == (0.0, 0.0)
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.l1_l2 is regularizers.L1L2
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert isinstance(regularizers.get("L1"), regularizers.L1)
    assert regularizers.get(None) is None
    reg = regularizers.L1L2(l1=0.1, l2=0.2)
    assert regularizers.get(reg) is reg
    back = regularizers.get(regularizers.serialize(reg))
    assert (type(back), back.l1, back.l2) == (regularizers.L1L2, 0.1, 0.2)
    w = np.array([1.0, -2.0, 0.5])
    assert reg(w) == pytest.approx(0.1 * 3.5 + 0.2 * 5.25, rel=1e-15)
    assert fastnn.regularizers is regularizers


@pytest.mark.parametrize("make, pattern", [
    (lambda: regularizers.L2(-0.1), r"l2 must be a non-negative finite number, got -0.1"),
    (lambda: regularizers.L1(math.inf), r"l1 must be a non-negative finite number, got inf"),
    (lambda: regularizers.L1L2(l1="a"), r"l1 must be"),
    (lambda: regularizers.get("l3"), r"unknown regularizer 'l3'"),
    (lambda: Dense(3, kernel_regularizer="dropout"), r"unknown regularizer"),
])
def test_bad_regularizers_raise(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_dense_config_round_trip_keeps_regularizers():
    model = fastnn.Sequential([Dense(3, kernel_regularizer=regularizers.L2(1e-3), bias_regularizer="l1",
                                     input_shape=(2,))])
    clone = fastnn.Sequential.from_config(model.get_config())
    layer = clone.layers[0]
    assert isinstance(layer.kernel_regularizer, regularizers.L2) and layer.kernel_regularizer.l2 == 1e-3
    assert isinstance(layer.bias_regularizer, regularizers.L1) and layer.bias_regularizer.l1 == 0.01


# -- in a model ----------------------------------------------------------------------------------
def _pair(reg, backend, seed=0):
    """The same model with and without kernel/bias regularizers, same weights, SGD."""
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    set_random_seed(seed)
    with_reg = fastnn.Sequential([Dense(5, activation="tanh", kernel_regularizer=reg, bias_regularizer=reg,
                                        bias_initializer="random_normal", input_shape=(3,)),
                                  Dense(2, activation="softmax", kernel_regularizer=reg)])
    without = fastnn.Sequential([Dense(5, activation="tanh", input_shape=(3,)), Dense(2, activation="softmax")])
    without.set_weights(with_reg.get_weights())
    for m in (with_reg, without):
        m.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    r = np.random.default_rng(seed)
    return with_reg, without, r.normal(size=(8, 3)), r.integers(0, 2, 8)


def _penalty(weights, l1, l2, which=(0, 1, 2)):
    return sum(l1 * np.abs(weights[i]).sum() + l2 * (weights[i] ** 2).sum() for i in which)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("l1, l2", [(0.0, 0.05), (0.02, 0.0), (0.01, 0.03)])
def test_reported_loss_includes_the_penalty_and_its_gradient_reaches_the_weights(backend, l1, l2):
    reg = regularizers.L1L2(l1, l2)
    with_reg, without, x, y = _pair(reg, backend)
    w0 = with_reg.get_weights()
    penalty = _penalty(w0, l1, l2)   # kernel 1, bias 1, kernel 2 (bias 2 has none)
    assert with_reg.evaluate(x, y) == pytest.approx(without.evaluate(x, y) + penalty, rel=1e-13)
    loss_reg, loss_plain = with_reg.train_on_batch(x, y), without.train_on_batch(x, y)
    assert loss_reg == pytest.approx(loss_plain + penalty, rel=1e-13)   # weights before the step
    # SGD: w1 = w0 - lr * (g_data + l1 sign(w0) + 2 l2 w0); the data gradients are the same
    for i, (a, b, w) in enumerate(zip(with_reg.get_weights(), without.get_weights(), w0)):
        extra = -0.1 * (l1 * np.sign(w) + 2 * l2 * w) if i != 3 else 0 * w
        np.testing.assert_allclose(a - b, extra, rtol=1e-9, atol=1e-13)
    # fit's history reports the same kind of loss (data + penalty, weights before each step)
    with_reg2, _, _, _ = _pair(reg, backend)
    history = with_reg2.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss_reg, rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_l2_shrinks_the_weight_norm(backend):
    def trained_norm(reg):
        fastnn.set_backend(backend)
        set_random_seed(1)
        x, y = fastnn.datasets.make_moons(n_samples=200, seed=0)
        model = fastnn.Sequential([Dense(32, activation="relu", kernel_regularizer=reg, input_shape=(2,)),
                                   Dense(1, activation="sigmoid", kernel_regularizer=reg)])
        model.compile(optimizers.Adam(0.02), "binary_crossentropy")
        model.fit(x, y.astype(np.float32), batch_size=32, epochs=30, verbose=0)
        return sum(np.linalg.norm(w) for w in model.get_weights()[::2])

    free, shrunk = trained_norm(None), trained_norm(regularizers.L2(1.0))
    assert shrunk < 0.2 * free, (free, shrunk)


def test_frozen_layer_adds_no_penalty():
    reg = regularizers.L2(0.5)
    with_reg, without, x, y = _pair(reg, "native")
    with_reg.layers[0].trainable = False
    penalty = _penalty(with_reg.get_weights(), 0.0, 0.5, which=(2,))
    assert with_reg.evaluate(x, y) == pytest.approx(without.evaluate(x, y) + penalty, rel=1e-13)
