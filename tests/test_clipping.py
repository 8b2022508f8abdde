"""Gradient clipping with Keras's optimizer arguments ``clipnorm``, ``global_clipnorm`` and
``clipvalue``: the kernels (``sum_squares`` with a fixed-order reduction, ``clip_gradient``) against
the reference, and the optimizer's behaviour against the Keras formulas written out by hand:

    clipnorm=c:         g <- g * c / max(||g||, c)                          (each gradient)
    global_clipnorm=c:  g <- g * c / max(sqrt(sum_i ||g_i||^2), c)          (all together)
    clipvalue=v:        g <- clip(g, -v, v)                                 (elementwise)
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import _core as C
from fastnn import optimizers
from fastnn import reference as R
from fastnn.layers import Dense
from fastnn.utils import set_random_seed

DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]
BACKENDS = ["native", "numpy"]


# -- kernels -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("n", [1, 7, 4097, 100_003])
def test_sum_squares_native_matches_reference(dtype, n):
    x = np.random.default_rng(0).normal(size=n).astype(dtype) * 3
    exact = math.fsum(float(v) ** 2 for v in x.astype(np.float64))
    # float64 sums of n positive terms: relative error below n * 2**-53 in any order
    assert C.sum_squares(x) == pytest.approx(exact, rel=n * 2**-53)
    assert R.sum_squares(x) == pytest.approx(exact, rel=n * 2**-53)
    assert C.sum_squares(x.reshape(1, n)) == C.sum_squares(x)


def test_sum_squares_is_bitwise_independent_of_thread_count():
    x = np.random.default_rng(1).normal(size=1_000_003).astype(np.float32)
    values = []
    for threads in (1, 2, 3):
        fastnn.set_num_threads(threads)
        values.append(C.sum_squares(x))
    assert values[0] == values[1] == values[2]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("scale, clipvalue", [(1.0, 0.5), (0.3, math.inf), (0.3, 0.2), (1.0, math.inf)])
def test_clip_gradient_native_matches_reference(dtype, scale, clipvalue):
    g = np.random.default_rng(2).normal(size=(50, 701)).astype(dtype)
    g[0, :3] = [np.nan, np.inf, -np.inf]
    g_before = g.copy()
    out = C.clip_gradient(g, scale, clipvalue)
    np.testing.assert_array_equal(out, R.clip_gradient(g, scale, clipvalue))
    np.testing.assert_array_equal(g, g_before)
    assert np.isnan(out[0, 0])   # NaN is never clipped into a number
    assert np.abs(out[np.isfinite(out)]).max() <= clipvalue
    in_place = g.copy()
    assert C.clip_gradient(in_place, scale, clipvalue, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, out)


def test_clip_gradient_rejects_negative_clipvalue():
    with pytest.raises(ValueError, match="clipvalue must be >= 0"):
        C.clip_gradient(np.ones(3), 1.0, -1.0)


# -- the optimizer -------------------------------------------------------------------------------
def _grads(seed=0):
    r = np.random.default_rng(seed)
    ws = [r.normal(size=(30, 20)), r.normal(size=20), r.normal(size=(20, 3))]
    gs = [r.normal(size=w.shape) * s for w, s in zip(ws, (1.0, 0.01, 5.0))]   # norms ~24, 0.04, 39
    return ws, gs


@pytest.mark.parametrize("backend", BACKENDS)
def test_clipnorm_scales_each_long_gradient_to_the_limit(backend):
    fastnn.set_backend(backend)
    ws, gs = _grads()
    gs_before = [g.copy() for g in gs]
    before = [w.copy() for w in ws]
    opt = optimizers.SGD(learning_rate=0.1, clipnorm=1.0)
    opt.apply(ws, gs)
    for w, w0, g in zip(ws, before, gs_before):
        norm = np.linalg.norm(g)
        expected = w0 - 0.1 * g * 1.0 / max(norm, 1.0)
        np.testing.assert_allclose(w, expected, rtol=1e-14, atol=1e-15)
        assert np.linalg.norm(w - w0) <= 0.1 * 1.0 * (1 + 1e-12)   # the update is bounded
    assert np.linalg.norm(ws[1] - before[1]) == pytest.approx(0.1 * np.linalg.norm(gs[1]), rel=1e-12)
    for g, g0 in zip(gs, gs_before):   # the caller's gradients are not modified
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_clipnorm_scales_all_gradients_together(backend):
    fastnn.set_backend(backend)
    ws, gs = _grads()
    before = [w.copy() for w in ws]
    total = math.sqrt(sum((g ** 2).sum() for g in gs))
    optimizers.SGD(learning_rate=0.5, global_clipnorm=2.0).apply(ws, gs)
    for w, w0, g in zip(ws, before, gs):
        np.testing.assert_allclose(w, w0 - 0.5 * g * 2.0 / total, rtol=1e-14, atol=1e-15)
    step = math.sqrt(sum(((w - w0) ** 2).sum() for w, w0 in zip(ws, before)))
    assert step == pytest.approx(0.5 * 2.0, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clipvalue_clips_each_element(backend):
    fastnn.set_backend(backend)
    ws, gs = _grads()
    before = [w.copy() for w in ws]
    optimizers.SGD(learning_rate=0.1, clipvalue=0.5).apply(ws, gs)
    for w, w0, g in zip(ws, before, gs):
        np.testing.assert_array_equal(w, w0 - 0.1 * np.clip(g, -0.5, 0.5))


@pytest.mark.parametrize("kw", [{"clipnorm": 0.3}, {"global_clipnorm": 0.3}, {"clipvalue": 0.01}])
def test_adam_sees_the_clipped_gradients(kw):
    ws, gs = _grads(1)
    ws2 = [w.copy() for w in ws]
    if "clipnorm" in kw:
        clipped = [g * 0.3 / max(np.linalg.norm(g), 0.3) for g in gs]
    elif "global_clipnorm" in kw:
        total = math.sqrt(sum((g ** 2).sum() for g in gs))
        clipped = [g * 0.3 / max(total, 0.3) for g in gs]
    else:
        clipped = [np.clip(g, -0.01, 0.01) for g in gs]
    a, b = optimizers.Adam(0.01, **kw), optimizers.Adam(0.01)
    for _ in range(3):
        a.apply(ws, gs)
        b.apply(ws2, clipped)
    for u, v in zip(ws, ws2):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)
    for u, v in zip(a.variables(), b.variables()):   # the moments saw the clipped gradients
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-18)


def test_non_finite_norms_follow_keras():
    w = [np.zeros(3), np.zeros(2)]
    g = [np.array([1.0, np.inf, 2.0]), np.array([3.0, 4.0])]
    optimizers.SGD(1.0, global_clipnorm=1.0).apply(w, g)
    assert np.isnan(w[0]).all() and np.isnan(w[1]).all()   # Keras: a non-finite global norm -> NaN
    w = [np.zeros(3), np.zeros(2)]
    optimizers.SGD(1.0, clipnorm=1.0).apply(w, g)
    assert np.isnan(w[0][1]) and w[0][0] == 0 and w[0][2] == 0   # g * c / inf: 0, inf entry NaN
    np.testing.assert_allclose(w[1], [-0.6, -0.8], rtol=1e-15)


@pytest.mark.parametrize("kw, pattern", [
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, r"only one of clipnorm, clipvalue and global_clipnorm"),
    ({"clipnorm": 1.0, "clipvalue": 0.5}, r"clipnorm=1.0, clipvalue=0.5"),
    ({"clipnorm": 0.0}, r"clipnorm must be a positive number, got 0.0"),
    ({"clipvalue": -1}, r"clipvalue must be a positive number, got -1"),
    ({"global_clipnorm": math.nan}, r"global_clipnorm must be a positive number"),
])
def test_bad_clipping_arguments_raise(kw, pattern):
    for cls in (optimizers.SGD, optimizers.Adam):
        with pytest.raises(ValueError, match=pattern):
            cls(**kw)


def test_clipping_config():
    cfg = optimizers.Adam(clipnorm=1.5).get_config()
    assert cfg["clipnorm"] == 1.5 and "clipvalue" not in cfg
    assert "clipnorm" not in optimizers.SGD().get_config()


@pytest.mark.parametrize("kw", [{"clipnorm": 0.05}, {"global_clipnorm": 0.05}, {"clipvalue": 1e-3}])
def test_fit_with_clipping_agrees_across_backends_and_bounds_each_step(kw):
    def run(backend):
        fastnn.set_backend(backend)
        fastnn.set_floatx("float64")
        set_random_seed(2)
        x, y = fastnn.datasets.make_spiral(n_per_class=20, n_classes=3, seed=1)
        model = fastnn.Sequential([Dense(16, activation="relu", input_shape=(2,)), Dense(3, activation="softmax")])
        model.compile(optimizers.SGD(1.0, **kw), "sparse_categorical_crossentropy")
        steps = []
        for _ in range(4):
            before = model.get_weights()
            model.fit(x, y, batch_size=60, epochs=1, verbose=0)
            steps.append([a - b for a, b in zip(model.get_weights(), before)])
        return steps

    native, numpy_ = run("native"), run("numpy")
    for sn, sp in zip(native, numpy_):
        for a, b in zip(sn, sp):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
        if "clipnorm" in kw:
            assert max(np.linalg.norm(d) for d in sn) <= 0.05 * (1 + 1e-12)
        elif "global_clipnorm" in kw:
            assert math.sqrt(sum((d ** 2).sum() for d in sn)) <= 0.05 * (1 + 1e-12)
        else:
            assert max(np.abs(d).max() for d in sn) <= 1e-3 * (1 + 1e-12)
