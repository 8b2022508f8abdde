"""Batch and layer normalization: native kernels vs the NumPy reference, the reference vs finite
differences, and the behaviour a user sees (moving statistics, inference formula, degenerate and
ill-conditioned inputs, the layers' weights and training rules).

Tolerances. Native and reference evaluate the same formulas in the same order, with float64
statistics rounded once to the input dtype, so they agree to a few ulps: ``ulps(n)`` allows
n * eps * (|expected| + scale), scale being the size of the terms that were added (|beta|,
|gamma * xhat|), and gradients are held to the size of the terms they are made of, because
dx = k * ((dy - mean dy) - xhat * mean(dy xhat)) may cancel. Finite differences follow
test_reference.py: central differences with h = 1e-6 in float64, rtol 1e-6 plus a rounding floor.
"""
import numpy as np
import pytest

import fastnn
from fastnn import _core as C
from fastnn import layers, ops, optimizers
from fastnn import reference as R
from fastnn.layers import Activation, BatchNormalization, Dense, LayerNormalization
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import blobs, classifier, raises_and_keeps

DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]
# odd shapes; (300, 200), (2000, 40) and (40, 1500) cross the OpenMP threshold (2**15 elements)
SHAPES = [(1, 1), (2, 1), (3, 7), (17, 5), (33, 129), (64, 65), (300, 200), (2000, 40), (40, 1500)]
BACKENDS = ["native", "numpy"]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_ulps(actual, expected, n, scale=0.0):
    """|actual - expected| <= n * eps * (|expected| + scale), elementwise; dtypes and shapes equal."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    tol = n * eps(expected.dtype) * (np.abs(expected) + scale)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert (err <= tol).all(), f"worst error {err.max():.3g}, tolerance there {tol.flat[np.argmax(err - tol)]:.3g}"


def bn_inputs(shape, dtype, seed=0):
    r = np.random.default_rng(seed)
    n, c = shape
    x = (r.normal(size=shape) * r.uniform(0.5, 3, c) + r.normal(size=c) * 2).astype(dtype)
    gamma = r.normal(size=c).astype(dtype)
    beta = r.normal(size=c).astype(dtype)
    mm = r.normal(size=c).astype(dtype)
    mv = r.uniform(0.5, 2, c).astype(dtype)
    dy = r.normal(size=shape).astype(dtype)
    return x, gamma, beta, mm, mv, dy


def numeric_grad(f, x, h=1e-6):
    """Central differences of the scalar f at x (float64); also returns max |f| seen."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    f_max = abs(f(x))
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        fp = f(x)
        flat[i] = saved - h
        fm = f(x)
        flat[i] = saved
        gflat[i] = (fp - fm) / (2 * h)
        f_max = max(f_max, abs(fp), abs(fm))
    return grad, f_max


def check_gradient(analytic, f, x):
    numeric, f_max = numeric_grad(f, x)
    scale = float(np.max(np.abs(numeric), initial=0.0))
    rounding = 4 * np.finfo(np.float64).eps * f_max / 1e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 * scale + rounding)


# -- batch norm kernels: native vs reference ------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batchnorm_forward_native_matches_reference(dtype, shape, affine):
    x, gamma, beta, mm, mv, _ = bn_inputs(shape, dtype)
    if not affine:
        gamma = beta = None
    mm_c, mv_c, mm_r, mv_r = mm.copy(), mv.copy(), mm.copy(), mv.copy()
    x_before = x.copy()
    y, mean, rstd = C.batchnorm_forward(x, gamma, beta, mm_c, mv_c, 0.9, 1e-3)
    y_r, mean_r, rstd_r = R.batchnorm_forward(x, gamma, beta, mm_r, mv_r, 0.9, 1e-3)
    np.testing.assert_array_equal(x, x_before)
    assert_ulps(mean, mean_r, 1)   # both round the same float64 mean once
    assert_ulps(rstd, rstd_r, 1)
    assert_ulps(mm_c, mm_r, 4)
    assert_ulps(mv_c, mv_r, 4)
    scale = np.abs(beta) if affine else 0.0
    assert_ulps(y, y_r, 8, scale + np.abs(y_r))


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_inference_native_matches_reference(dtype, shape):
    x, gamma, beta, mm, mv, _ = bn_inputs(shape, dtype)
    y = C.batchnorm_inference(x, gamma, beta, mm, mv, 1e-3)
    assert_ulps(y, R.batchnorm_inference(x, gamma, beta, mm, mv, 1e-3), 8, np.abs(beta))
    out = np.empty_like(x)
    assert C.batchnorm_inference(x, None, None, mm, mv, 1e-3, out=out) is out
    assert_ulps(out, R.batchnorm_inference(x, None, None, mm, mv, 1e-3), 8)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batchnorm_backward_native_matches_reference(dtype, shape, affine):
    x, gamma, beta, mm, mv, dy = bn_inputs(shape, dtype)
    gamma = gamma if affine else None
    _, mean, rstd = R.batchnorm_forward(x, gamma, None, mm, mv, 0.9, 1e-3)
    dx, dg, db = C.batchnorm_backward(dy, x, gamma, mean, rstd)
    dx_r, dg_r, db_r = R.batchnorm_backward(dy, x, gamma, mean, rstd)
    k = np.abs(rstd if gamma is None else gamma * rstd)
    xhat = np.abs((x - mean) * rstd)
    # dx = k * ((dy - a) - xhat * b): rounding is relative to the terms, not to the (cancelling) sum
    assert_ulps(dx, dx_r, 8, k * (np.abs(dy) + np.abs(dy).mean(0) + xhat * np.abs(dy * xhat).mean(0)))
    assert_ulps(dg, dg_r, 1)   # float64 sums rounded once on both sides
    assert_ulps(db, db_r, 1)
    # the need_ flags skip outputs; given buffers are overwritten
    buf = np.full_like(dg, np.nan)
    none_dx, dg2, none_db = C.batchnorm_backward(dy, x, gamma, mean, rstd, dgamma=buf, need_dx=False,
                                                 need_dbeta=False)
    assert none_dx is None and none_db is None and dg2 is buf
    np.testing.assert_array_equal(buf, dg)


@pytest.mark.parametrize("shape", [(300, 200), (2000, 40), (40, 1500), (5000, 7)])
def test_batchnorm_is_bitwise_independent_of_thread_count(shape):
    x, gamma, beta, mm, mv, dy = bn_inputs(shape, np.float32)
    results = []
    for threads in (1, 2, 3):
        fastnn.set_num_threads(threads)
        mm_t, mv_t = mm.copy(), mv.copy()
        y, mean, rstd = C.batchnorm_forward(x, gamma, beta, mm_t, mv_t, 0.99, 1e-3)
        grads = C.batchnorm_backward(dy, x, gamma, mean, rstd)
        results.append([y, mean, rstd, mm_t, mv_t, *grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()


def test_batchnorm_bindings_reject_bad_arguments():
    x, gamma, beta, mm, mv, dy = bn_inputs((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"moving_mean must have shape \(3,\), got \(4,\)"):
        C.batchnorm_forward(x, gamma, beta, np.zeros(4, np.float32), mv, 0.9, 1e-3)
    with pytest.raises(TypeError, match="gamma must have the same dtype"):
        C.batchnorm_forward(x, gamma.astype(np.float64), beta, mm, mv, 0.9, 1e-3)
    with pytest.raises(ValueError, match="momentum"):
        C.batchnorm_forward(x, gamma, beta, mm, mv, 1.5, 1e-3)
    with pytest.raises(ValueError, match="read-only"):
        ro = mv.copy()
        ro.flags.writeable = False
        C.batchnorm_forward(x, gamma, beta, mm, ro, 0.9, 1e-3)
    with pytest.raises(ValueError, match=r"rstd must have shape \(3,\)"):
        C.batchnorm_backward(dy, x, gamma, mm, np.ones(4, np.float32))


# -- batch norm reference vs finite differences (training mode) -----------------------------------
@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (9, 2)])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batchnorm_reference_gradients_match_finite_differences(shape, affine):
    x, gamma, beta, mm, mv, w = bn_inputs(shape, np.float64, seed=3)
    if not affine:
        gamma = beta = None

    def loss(x_=x, g_=gamma, b_=beta):
        y, _, _ = R.batchnorm_forward(x_, g_, b_, mm.copy(), mv.copy(), 0.99, 1e-3)
        return float(np.sum(w * y))

    _, mean, rstd = R.batchnorm_forward(x, gamma, beta, mm.copy(), mv.copy(), 0.99, 1e-3)
    dx, dg, db = R.batchnorm_backward(w, x, gamma, mean, rstd)
    check_gradient(dx, lambda v: loss(x_=v), x)
    if affine:
        check_gradient(dg, lambda v: loss(g_=v), gamma)
        check_gradient(db, lambda v: loss(b_=v), beta)
    # the gradient through the batch statistics matters: the naive dy * gamma * rstd is wrong
    naive = w * (rstd if gamma is None else gamma * rstd)
    assert np.abs(naive - dx).max() > 1e-3 * np.abs(dx).max()


# -- batch norm behaviour -------------------------------------------------------------------------
def test_moving_statistics_converge_to_the_data_statistics():
    # 8 features with different means and spreads; 800 random batches of 256 at momentum 0.99.
    # The moving mean is then an average over ~200 batches: its standard error is
    # sigma * sqrt((1 - m) / (1 + m) / 256) = 0.0044 sigma. The moving variance tracks the expected
    # *biased* batch variance (N-1)/N sigma^2, with relative standard error
    # sqrt(2 / 256 * (1 - m) / (1 + m)) = 0.0063. Both get 5 standard errors, plus what is left of
    # the initial offset (moving mean 0, moving variance 1) after 800 steps: 0.99**800 = 3.2e-4.
    r = np.random.default_rng(0)
    mu, sigma = r.uniform(-5, 5, 8), r.uniform(0.5, 4, 8)
    data = (r.normal(size=(20000, 8)) * sigma + mu).astype(np.float32)
    mu_data, var_data = data.mean(0, dtype=np.float64), data.var(0, dtype=np.float64)
    layer = BatchNormalization()
    steps = 800
    for _ in range(steps):
        layer(data[r.integers(0, len(data), 256)], training=True)
    gamma, beta, moving_mean, moving_var = layer.get_weights()
    np.testing.assert_array_equal(gamma, 1)   # a forward pass never changes the trainable weights
    np.testing.assert_array_equal(beta, 0)
    left = 0.99 ** steps
    target_var = var_data * 255 / 256
    assert np.all(np.abs(moving_mean - mu_data) <= 5 * 0.0044 * np.sqrt(var_data) + left * np.abs(mu_data))
    assert np.all(np.abs(moving_var - target_var) <= 5 * 0.0063 * target_var + left * np.abs(1 - target_var))


def test_one_training_step_updates_moving_statistics_by_the_keras_formula():
    fastnn.set_floatx("float64")
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(16, 5))
    layer = BatchNormalization(momentum=0.8, moving_mean_initializer="ones",
                               moving_variance_initializer=fastnn.initializers.Constant(2.0))
    layer(x, training=True)
    _, _, mm, mv = layer.get_weights()
    np.testing.assert_allclose(mm, 0.8 * 1.0 + 0.2 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(mv, 0.8 * 2.0 + 0.2 * x.var(0), rtol=1e-14)  # biased variance
    # inference does not touch them
    layer(x, training=False)
    np.testing.assert_array_equal(layer.get_weights()[2], mm)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_output_is_the_formula_with_moving_statistics(backend):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    r = np.random.default_rng(2)
    layer = BatchNormalization(epsilon=0.01)
    layer.build((6,))
    gamma, beta, mm, mv = r.normal(size=6), r.normal(size=6), r.normal(size=6), r.uniform(0.1, 3, 6)
    layer.set_weights([gamma, beta, mm, mv])
    x = r.normal(size=(9, 6)) * 4
    expected = gamma * (x - mm) / np.sqrt(mv + 0.01) + beta
    np.testing.assert_allclose(layer(x), expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    # and a training-mode call uses the batch's statistics instead
    train = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 0.01) + beta
    np.testing.assert_allclose(layer(x, training=True), train, rtol=1e-13, atol=1e-13 * np.abs(train).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [5.0, 0.1, -3e4])
def test_constant_feature_gives_beta_and_no_nan(backend, value):
    fastnn.set_backend(backend)
    r = np.random.default_rng(3)
    x = r.normal(size=(32, 4)).astype(np.float32)
    x[:, 2] = value
    layer = BatchNormalization(beta_initializer=fastnn.initializers.Constant(0.75))
    y = layer(x, training=True)
    np.testing.assert_array_equal(y[:, 2], np.float32(0.75))   # (x - mean) is exactly 0
    assert np.isfinite(y).all()
    dx = layer.backward(r.normal(size=x.shape).astype(np.float32))
    assert np.isfinite(dx).all() and np.isfinite(layer.grads[0]).all()
    assert np.isfinite(layer.get_weights()[3]).all()


def test_large_mean_small_spread_float32_matches_float64_reference():
    # x = 1e4 + 1e-2 * noise in float32. The one-pass formula E[x^2] - E[x]^2 fails here: E[x^2]
    # ~ 1e8 has a float32 rounding step of 8, the variance is 1e-4 (checked below). Two passes with
    # float64 sums give the variance and 1/sqrt(var + eps) to float32 rounding; the output is then
    # limited only by storing the mean in float32 (half an ulp of 1e4 = 4.9e-4, i.e. ~5% of one
    # standard deviation), which the tolerance states explicitly.
    r = np.random.default_rng(4)
    x = (1e4 + 1e-2 * r.normal(size=(256, 64))).astype(np.float32)
    gamma, beta = r.normal(size=64).astype(np.float32), r.normal(size=64).astype(np.float32)
    naive = (x.astype(np.float32) ** 2).mean(0) - x.mean(0) ** 2
    true_var = x.astype(np.float64).var(0)
    assert np.abs(naive - true_var).max() > 100 * true_var.max()   # the shortcut is useless here
    eps_bn = 1e-6
    x64 = x.astype(np.float64)
    for kernels in (C, R):
        mm, mv = np.zeros(64, np.float32), np.ones(64, np.float32)
        y, mean, rstd = kernels.batchnorm_forward(x, gamma, beta, mm, mv, 0.0, eps_bn)
        mm64, mv64 = np.zeros(64), np.ones(64)
        y64, mean64, rstd64 = R.batchnorm_forward(x64, gamma.astype(np.float64), beta.astype(np.float64),
                                                  mm64, mv64, 0.0, eps_bn)
        assert np.all(np.abs(mean - mean64) <= np.spacing(np.float32(1e4)) / 2)
        np.testing.assert_allclose(rstd, rstd64, rtol=2 * eps(np.float32))
        np.testing.assert_allclose(mv, mv64, rtol=2 * eps(np.float32))   # momentum 0: the batch variance
        mean_shift = np.abs(mean.astype(np.float64) - mean64) * rstd64 * np.abs(gamma)
        err = np.abs(y - y64)
        assert np.all(err <= mean_shift + 8 * eps(np.float32) * (np.abs(y64) + np.abs(beta))), err.max()
        dy = r.normal(size=x.shape).astype(np.float32)
        dx, dg, db = kernels.batchnorm_backward(dy, x, gamma, mean, rstd)
        assert np.isfinite(dx).all() and np.isfinite(dg).all()


# -- layer norm kernels ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_layernorm_native_matches_reference(dtype, shape, affine):
    x, gamma, beta, _, _, dy = bn_inputs(shape, dtype)
    if not affine:
        gamma = beta = None
    y, mean, rstd = C.layernorm_forward(x, gamma, beta, 1e-3)
    y_r, mean_r, rstd_r = R.layernorm_forward(x, gamma, beta, 1e-3)
    # The row sums run in another order (NumPy sums a row pairwise, C++ in sequence): the float64
    # sums then differ by ~sqrt(C) ulps of their terms (invisible once rounded to float32), and the
    # output inherits that through the mean and rstd.
    n = 8 + 2 * np.sqrt(shape[1])
    assert_ulps(mean, mean_r, n, np.abs(x).max(1))
    assert_ulps(rstd, rstd_r, n)
    terms = rstd_r[:, None] * np.abs(x).max(1, keepdims=True) * (np.abs(gamma) if affine else 1.0)
    assert_ulps(y, y_r, 2 * n, terms + (np.abs(beta) if affine else 0.0) + np.abs(y_r))
    dx, dg, db = C.layernorm_backward(dy, x, gamma, mean_r, rstd_r)
    dx_r, dg_r, db_r = R.layernorm_backward(dy, x, gamma, mean_r, rstd_r)
    g = np.abs(dy if gamma is None else dy * gamma)
    xhat = np.abs((x - mean_r[:, None]) * rstd_r[:, None])
    terms = rstd_r[:, None] * (g + g.mean(1, keepdims=True) + xhat * (g * xhat).mean(1, keepdims=True))
    assert_ulps(dx, dx_r, 2 * n, terms)
    assert_ulps(dg, dg_r, 1)
    assert_ulps(db, db_r, 1)


def test_layernorm_is_bitwise_independent_of_thread_count():
    x, gamma, beta, _, _, dy = bn_inputs((700, 300), np.float32)
    results = []
    for threads in (1, 2, 3):
        fastnn.set_num_threads(threads)
        y, mean, rstd = C.layernorm_forward(x, gamma, beta, 1e-3)
        results.append([y, mean, rstd, *C.layernorm_backward(dy, x, gamma, mean, rstd)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape", [(3, 2), (4, 5), (1, 6)])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_layernorm_reference_gradients_match_finite_differences(shape, affine):
    x, gamma, beta, _, _, w = bn_inputs(shape, np.float64, seed=5)
    if not affine:
        gamma = beta = None

    def loss(x_=x, g_=gamma, b_=beta):
        return float(np.sum(w * R.layernorm_forward(x_, g_, b_, 1e-3)[0]))

    _, mean, rstd = R.layernorm_forward(x, gamma, beta, 1e-3)
    dx, dg, db = R.layernorm_backward(w, x, gamma, mean, rstd)
    check_gradient(dx, lambda v: loss(x_=v), x)
    if affine:
        check_gradient(dg, lambda v: loss(g_=v), gamma)
        check_gradient(db, lambda v: loss(b_=v), beta)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_layernorm_rows_have_mean_0_and_variance_1(backend, dtype):
    # Before gamma/beta (their initial values 1 and 0): each row has mean 0 and variance
    # var / (var + eps), which is 1 - 4e-5 here with eps 1e-3 and var ~ 25; the float32 tolerance
    # covers ~sqrt(C) roundings of each of the 37 terms.
    fastnn.set_backend(backend)
    fastnn.set_floatx(np.dtype(dtype).name)
    x = np.random.default_rng(6).normal(3, 5, size=(64, 37)).astype(dtype)
    y = LayerNormalization()(x).astype(np.float64)
    var_x = x.astype(np.float64).var(1)
    tol = 64 * eps(dtype)
    np.testing.assert_allclose(y.mean(1), 0, atol=tol)
    np.testing.assert_allclose(y.var(1), var_x / (var_x + 1e-3), rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layernorm_epsilon_1_is_exactly_the_written_formula(backend):
    # eps = 1.0 is large enough that putting it anywhere else (added to the std, or left out)
    # would be off by tens of percent; the formula as written is met to float64 rounding.
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    x = np.random.default_rng(7).normal(0, 0.8, size=(10, 9))
    layer = LayerNormalization(epsilon=1.0)
    y = layer(x)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1.0)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)
    wrong = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1.0)
    assert np.abs(wrong - expected).max() > 0.1 * np.abs(expected).max()


def test_layernorm_is_the_same_in_training_and_inference_and_any_batch():
    x = np.random.default_rng(8).normal(size=(12, 10)).astype(np.float32)
    layer = LayerNormalization()
    full = layer(x)
    np.testing.assert_array_equal(layer(x, training=True), full)
    np.testing.assert_array_equal(layer(x[3:4]), full[3:4])   # one sample is fine


# -- the layers ----------------------------------------------------------------------------------
def test_batchnorm_weights_are_in_keras_order_with_moving_statistics_non_trainable():
    layer = BatchNormalization()
    fastnn.Sequential([Dense(512, input_shape=(8,)), layer])
    assert [n for n, _, _ in layer._weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert layer.count_params() == 2048
    assert [w.shape for w in layer.trainable_weights] == [(512,), (512,)]
    assert layer.trainable_weights[0] is layer.gamma and layer.trainable_weights[1] is layer.beta
    assert layer.non_trainable_weights[0] is layer.moving_mean
    assert len(layer.grads) == 2
    g, b, mm, mv = layer.get_weights()
    np.testing.assert_array_equal(g, 1)
    np.testing.assert_array_equal(b, 0)
    np.testing.assert_array_equal(mm, 0)
    np.testing.assert_array_equal(mv, 1)


@pytest.mark.parametrize("center, scale, names", [
    (True, True, ["gamma", "beta"]), (False, True, ["gamma"]), (True, False, ["beta"]), (False, False, []),
])
def test_center_and_scale_choose_the_trainable_weights(center, scale, names):
    x = np.random.default_rng(0).normal(size=(6, 5))
    for cls, axis in ((BatchNormalization, 0), (LayerNormalization, 1)):
        fastnn.set_floatx("float64")
        layer = cls(center=center, scale=scale, gamma_initializer=fastnn.initializers.Constant(2.0),
                    beta_initializer=fastnn.initializers.Constant(0.5))
        layer.build((5,))
        assert [n for n, _, t in layer._weights if t] == names
        assert len(layer.grads) == len(names)
        xhat = (x - x.mean(axis, keepdims=True)) / np.sqrt(x.var(axis, keepdims=True) + 1e-3)
        expected = (2.0 if scale else 1.0) * xhat + (0.5 if center else 0.0)
        np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-13, atol=1e-13)


def test_summary_counts_trainable_and_non_trainable_like_keras(capsys):
    model = fastnn.Sequential([Dense(512, use_bias=False, input_shape=(784,)), BatchNormalization(),
                               Activation("relu"), Dense(10), LayerNormalization()])
    model.summary()
    out = capsys.readouterr().out
    rows = [(line.split()[1], line.split()[-1]) for line in out.splitlines() if "(None, " in line]
    assert rows == [("(Dense)", "401,408"), ("(BatchNormalization)", "2,048"), ("(Activation)", "0"),
                    ("(Dense)", "5,130"), ("(LayerNormalization)", "20")]
    total = 401408 + 2048 + 5130 + 20
    assert f"Total params: {total:,}" in out
    assert f"Trainable params: {total - 1024:,}" in out
    assert "Non-trainable params: 1,024" in out
    assert sum(w.size for w in model.non_trainable_weights) == 1024


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_batch_of_one_raises_and_changes_nothing(backend):
    fastnn.set_backend(backend)
    set_random_seed(0)
    model = fastnn.Sequential([Dense(6, use_bias=False, input_shape=(4,)), BatchNormalization(),
                               Activation("relu"), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    before = [w.copy() for w in model.get_weights()] + [v.copy() for v in model.optimizer.variables()]
    iterations = model.optimizer.iterations
    bn = model.layers[1]
    calls = [lambda: model.train_on_batch(x[:1], y[:1]), lambda: model(x[:1], training=True),
             lambda: bn(np.ones((1, 6), np.float32), training=True),
             lambda: model.fit(x, y, batch_size=1, verbose=0), lambda: model.fit(x[:1], y[:1], verbose=0)]
    for call in calls:
        with pytest.raises(ValueError, match=r"batch_normalization.*BatchNormalization.* at least 2 samples"):
            call()
    after = model.get_weights() + model.optimizer.variables()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(after, before))
    assert model.optimizer.iterations == iterations
    # inference on one sample is fine
    assert model.predict(x[:1]).shape == (1, 3)
    assert np.isfinite(model.evaluate(x[:1], y[:1]))


def test_fit_merges_a_last_batch_of_one_into_the_previous_batch():
    class Sizes(fastnn.callbacks.Callback):
        def __init__(self):
            self.sizes = []

        def on_train_batch_begin(self, batch, logs=None):
            self.sizes.append(batch)

    set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(65, 4)).astype(np.float32)
    y = np.arange(65) % 2
    model = fastnn.Sequential([Dense(3, input_shape=(4,)), BatchNormalization(), Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert model.optimizer.iterations == 4   # 32 + 33 per epoch, not 32 + 32 + 1
    assert len(history.history["loss"]) == 2
    # a frozen BatchNormalization runs in inference mode and has no minimum
    frozen = fastnn.Sequential([Dense(3, input_shape=(4,)), BatchNormalization(trainable=False),
                                Dense(2, activation="softmax")])
    frozen.compile("sgd", "sparse_categorical_crossentropy")
    frozen.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert frozen.optimizer.iterations == 3
    # without batch norm nothing is merged
    plain = fastnn.Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    plain.compile("sgd", "sparse_categorical_crossentropy")
    plain.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert plain.optimizer.iterations == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_batchnorm_runs_in_inference_mode_and_keeps_its_statistics(backend):
    fastnn.set_backend(backend)
    set_random_seed(0)
    r = np.random.default_rng(2)
    x = r.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    bn = BatchNormalization(trainable=False)
    model = fastnn.Sequential([Dense(5, input_shape=(5,)), bn, Dense(2, activation="softmax")])
    bn.set_weights([r.normal(size=5), r.normal(size=5), r.normal(size=5), r.uniform(1, 2, 5)])
    frozen = bn.get_weights()
    k0 = model.layers[0].get_weights()[0].copy()
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(bn.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    assert np.abs(model.layers[0].get_weights()[0] - k0).max() > 1e-4   # gradient flowed through it
    assert len(model.trainable_weights) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_never_updates_moving_statistics(backend):
    # momentum=1.0 keeps the moving statistics where they are; any optimizer step on them would
    # show. gamma and beta, trainable, do move.
    fastnn.set_backend(backend)
    set_random_seed(1)
    x = np.random.default_rng(3).normal(size=(64, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    bn = BatchNormalization(momentum=1.0)
    model = fastnn.Sequential([Dense(4, input_shape=(4,)), bn, Dense(2, activation="softmax")])
    model.compile(optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    g, b, mm, mv = bn.get_weights()
    np.testing.assert_array_equal(mm, 0)
    np.testing.assert_array_equal(mv, 1)
    assert np.abs(g - 1).max() > 1e-3 and np.abs(b).max() > 1e-3


@pytest.mark.parametrize("kind", ["bn", "ln"])
def test_backends_train_norm_models_to_the_same_weights(kind):
    # float64 on both backends: the kernels agree to rounding, so 3 epochs stay within 1e-9.
    def run(backend):
        fastnn.set_backend(backend)
        fastnn.set_floatx("float64")
        set_random_seed(5)
        x, y = fastnn.datasets.make_spiral(n_per_class=30, n_classes=3, seed=0)
        norm = BatchNormalization() if kind == "bn" else LayerNormalization()
        model = fastnn.Sequential([Dense(16, use_bias=False, input_shape=(2,)), norm, Activation("relu"),
                                   Dense(3, activation="softmax")])
        model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        return history.history["loss"], model.get_weights(), model.predict(x)

    native, numpy_ = run("native"), run("numpy")
    np.testing.assert_allclose(native[0], numpy_[0], rtol=1e-9)
    for a, b in zip(native[1] + [native[2]], numpy_[1] + [numpy_[2]]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())


def test_norm_layers_accept_higher_rank_inputs_on_the_last_axis():
    x = np.random.default_rng(4).normal(size=(6, 3, 5)).astype(np.float32)
    bn = BatchNormalization()
    y = bn(x, training=True)
    flat = x.reshape(-1, 5)
    np.testing.assert_allclose(y.reshape(-1, 5), (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-3),
                               rtol=1e-5, atol=1e-5)
    ln = LayerNormalization()
    np.testing.assert_allclose(ln(x), (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"axis must be -1 or 2 .* got axis=1"):
        BatchNormalization(axis=1)(x)


@pytest.mark.parametrize("make, pattern", [
    (lambda: BatchNormalization(momentum=1.5), r"momentum must be in \[0, 1\], got 1.5"),
    (lambda: BatchNormalization(epsilon=0), r"epsilon must be a positive number, got 0"),
    (lambda: LayerNormalization(epsilon=-1e-3), r"epsilon must be a positive number"),
    (lambda: BatchNormalization(axis="last"), r"axis must be an integer"),
])
def test_norm_layer_arguments_are_validated(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_norm_layers_round_trip_through_config():
    model = fastnn.Sequential([Dense(4, use_bias=False, input_shape=(3,)),
                               BatchNormalization(momentum=0.9, epsilon=1e-4, center=False, trainable=False),
                               LayerNormalization(epsilon=0.5, scale=False)])
    clone = fastnn.Sequential.from_config(model.get_config())
    a, b = model.layers[1], clone.layers[1]
    assert (b.momentum, b.epsilon, b.center, b.scale, b.trainable) == (0.9, 1e-4, False, True, False)
    c = clone.layers[2]
    assert (c.epsilon, c.center, c.scale) == (0.5, True, False)
    assert isinstance(a, layers.BatchNormalization)
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


# -- batch norm on one sample and on constant features; settings refused by the kernels -----------
def test_batch_norm_training_on_one_sample_raises_on_every_entry_point(backend):
    """test_norm covers train_on_batch; here every training entry point, and inference on one
    sample still works."""
    model = classifier(norm=True)
    x, y = blobs(n=8)
    model.fit(x, y, batch_size=4, verbose=0)
    for call in (lambda m: m.train_on_batch(x[:1], y[:1]), lambda m: m.fit(x[:1], y[:1], verbose=0),
                 lambda m: m(x[:1], training=True)):
        raises_and_keeps(model, ValueError, call, r"at least 2 samples", r"batch of 1")
    assert np.isfinite(model.predict(x[:1])).all()


@pytest.mark.parametrize("constant", [0.0, 0.1, 5.0, 1e4])
def test_batch_norm_of_constant_features_gives_no_nan(backend, constant):
    """A feature equal in the whole batch has variance 0: the normalised value is about 0 (the
    epsilon keeps it finite), and training, its gradients and inference stay finite."""
    set_random_seed(0)
    bn = Sequential([BatchNormalization(input_shape=(3,))])
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    x[:, 1] = constant
    out = bn(x, training=True)
    assert np.isfinite(out).all() and np.abs(out[:, 1]).max() < 1e-2
    model = classifier(features=3, norm=True)
    y = np.arange(16) % 3
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    model.train_on_batch(np.full((4, 3), constant, np.float32), y[:4])  # every feature constant
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.predict(x)).all()
    assert np.isfinite(model(x, training=True)).all()


@pytest.mark.parametrize("eps", [-1.0, 0.0])
def test_layer_norm_epsilon_must_be_positive(backend, eps):
    with pytest.raises(ValueError, match="epsilon"):
        ops.layer_norm(np.ones((2, 3), np.float32), epsilon=eps)


def test_batch_norm_negative_moving_variance_is_refused(backend):
    one = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="moving_variance"):
        ops.batch_norm(np.ones((2, 3), np.float32), one, one * 0, one * 0, -one)
