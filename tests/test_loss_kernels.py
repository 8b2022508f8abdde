"""The loss kernels added for Keras parity -- mean_absolute_error, huber, log_cosh, hinge,
kl_divergence, and label smoothing in softmax_cross_entropy / sigmoid_binary_cross_entropy --
checked three ways: native (``fastnn._core``) against the NumPy twin (``fastnn.reference.losses``),
the twin against finite differences in float64 and against a textbook formula, and the native
kernel's independence from the thread count.

Tolerances, in units of the dtype's machine epsilon ``eps``: a per-element loss is a few roundings
(libm and NumPy's exp/log1p/tanh differ by a few ulps), summed in double on the native side and
pairwise in NumPy, so the mean agrees to ~8 eps relative plus ~8 eps of the largest term. Gradient
entries are one closed form each (clip, sign, tanh, -q/p) divided by N*C: 8 eps relative, plus
2 eps of max|grad| where a difference cancels (the residual d = pred - target).
"""
import numpy as np
import pytest

import fastnn
from fastnn import _core as C
from fastnn.reference import losses as RL

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SHAPES = [(1, 1), (1, 7), (7, 1), (17, 129), (300, 17)]  # 300 rows: the OpenMP path
NEW = ["mean_absolute_error", "huber", "log_cosh", "hinge", "kl_divergence"]
PARAMS = {"huber": [{}, {"delta": 0.3}, {"delta": 4.0}], "kl_divergence": [{}, {"epsilon": 1e-3}]}


def eps(dtype):
    return float(np.finfo(dtype).eps)


def rng(seed=0):
    return np.random.default_rng(seed)


def inputs(name, shape, dtype, seed=0):
    """(pred, target) in each kernel's domain, with values at and around its kinks."""
    r = rng(seed)
    if name == "hinge":
        pred = r.normal(size=shape) * 2
        target = r.choice([-1.0, 1.0], size=shape)
        k = min(3, pred.size - 1)
        pred.reshape(-1)[:k] = target.reshape(-1)[:k]  # margins of exactly 0 (the kink)
    elif name == "kl_divergence":
        pred = r.dirichlet(np.ones(shape[1]), size=shape[0])
        target = r.dirichlet(np.ones(shape[1]) * 0.5, size=shape[0])
        if shape[1] == 1:  # one class: a distribution is 1; take partial masses instead
            pred, target = r.uniform(0.05, 0.95, shape), r.uniform(0.05, 0.95, shape)
        if pred.size >= 4:
            target.reshape(-1)[:2] = 0.0  # clipped to epsilon
            pred.reshape(-1)[2:4] = [0.0, 1.0]  # clipped predictions: no gradient
    else:
        target = r.normal(size=shape) * 2
        pred = target + r.normal(size=shape) * 2
        k = min(2, pred.size - 1)
        pred.reshape(-1)[:k] = target.reshape(-1)[:k]  # residuals of exactly 0
    return np.ascontiguousarray(pred, dtype=dtype), np.ascontiguousarray(target, dtype=dtype)


def textbook(name, p, t, delta=1.0, epsilon=1e-7):
    """The per-sample Keras formulas, averaged over the batch, in float64 from scratch."""
    p, t = p.astype(np.float64), t.astype(np.float64)
    d = p - t
    per_sample = {
        "mean_absolute_error": lambda: np.mean(np.abs(d), axis=-1),
        "huber": lambda: np.mean(np.where(np.abs(d) <= delta, 0.5 * d ** 2,
                                          delta * np.abs(d) - 0.5 * delta ** 2), axis=-1),
        "log_cosh": lambda: np.mean(np.log(np.cosh(d)), axis=-1),
        "hinge": lambda: np.mean(np.maximum(1 - t * p, 0), axis=-1),
        "kl_divergence": lambda: np.sum(np.clip(t, epsilon, 1) * np.log(np.clip(t, epsilon, 1) /
                                                                          np.clip(p, epsilon, 1)), axis=-1),
    }[name]()
    return float(np.mean(per_sample))


def cases():
    for name in NEW:
        for params in PARAMS.get(name, [{}]):
            yield pytest.param(name, params, id=name + "".join(f"-{k}={v}" for k, v in params.items()))


CASES = list(cases())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name, params", CASES)
def test_native_matches_reference(name, params, shape, dtype):
    p, t = inputs(name, shape, dtype)
    before = (p.copy(), t.copy())
    out = np.full(shape, np.nan, dtype)
    loss, g = getattr(C, name)(pred=p, target=t, dpred=out, need_grad=True, **params)
    loss_ref, g_ref = getattr(RL, name)(pred=p, target=t, dpred=None, need_grad=True, **params)
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(t, before[1])
    assert type(loss) is float and g is out and g.dtype == dtype
    terms = np.max(np.abs(p.astype(np.float64) - t)) + 1
    if name == "kl_divergence":
        terms = -np.log(params.get("epsilon", 1e-7)) + 1
    assert loss == pytest.approx(loss_ref, rel=8 * eps(dtype), abs=8 * eps(dtype) * terms)
    scale = float(np.max(np.abs(g_ref)))
    np.testing.assert_allclose(g, g_ref, rtol=8 * eps(dtype), atol=2 * eps(dtype) * scale)
    loss_only, none = getattr(C, name)(p, t, None, False, **params)
    assert none is None and loss_only == loss


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 9)], ids=str)
@pytest.mark.parametrize("name, params", CASES)
def test_reference_matches_textbook_and_finite_differences(name, params, shape):
    p, t = inputs(name, shape, np.float64, seed=1)
    f = getattr(RL, name)
    loss, g = f(p, t, **params)
    assert loss == pytest.approx(textbook(name, p, t, **params), rel=1e-12, abs=1e-15)
    # central differences away from the kinks (|d| = delta, d = 0, margin 0, the clip bounds)
    h = 1e-6
    numeric = np.empty_like(p)
    for i in np.ndindex(p.shape):
        hi, lo = p.copy(), p.copy()
        hi[i] += h
        lo[i] -= h
        numeric[i] = (f(hi, t, need_grad=False, **params)[0] - f(lo, t, need_grad=False, **params)[0]) / (2 * h)
    d = p - t
    smooth = np.ones(p.shape, bool)
    if name in ("mean_absolute_error", "huber"):
        smooth &= np.abs(d) > 2 * h
        smooth &= np.abs(np.abs(d) - params.get("delta", 1.0)) > 2 * h
    if name == "hinge":
        smooth &= np.abs(1 - t * p) > 2 * h
    if name == "kl_divergence":
        e = params.get("epsilon", 1e-7)
        smooth &= (np.abs(p - e) > 2 * h) & (np.abs(p - 1) > 2 * h)
    assert smooth.sum() >= p.size - 4
    # central differences of a loss of order 1 carry ~1e-16 / h = 1e-10 of rounding
    np.testing.assert_allclose(g[smooth], numeric[smooth], rtol=1e-6, atol=1e-9)


def test_subgradients_at_the_kinks():
    t = np.array([[1.0, -1.0, 2.0, 0.5]])
    p = t.copy()  # every residual is exactly zero
    for name in ("mean_absolute_error", "huber"):
        for mod in (C, RL):
            assert getattr(mod, name)(p, t)[1].tolist() == [[0.0] * 4]
    for mod in (C, RL):  # |d| == delta is the quadratic branch, whose slope there is +-delta
        _, g = mod.huber(t + [[0.5, -0.5, 0.5, -0.5]], t, delta=0.5)
        np.testing.assert_array_equal(g, [[0.125, -0.125, 0.125, -0.125]])
        # margin exactly 0 (t * p == 1): the flat side, gradient 0
        _, g = mod.hinge(np.array([[1.0, -1.0, 0.5]]), np.array([[1.0, -1.0, 1.0]]))
        np.testing.assert_array_equal(g, [[0.0, 0.0, -1 / 3]])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_extreme_inputs_stay_finite(dtype):
    big = 1e30 if dtype == np.float32 else 1e300
    p = np.array([[big, -big, 0.0], [3.0, -big, big]], dtype)
    t = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, -big / 2]], dtype)
    for name in ("mean_absolute_error", "huber", "log_cosh"):
        loss, g = getattr(C, name)(p, t)
        loss_ref, g_ref = getattr(RL, name)(p, t)
        assert np.isfinite(loss) and np.isfinite(g).all(), name
        assert loss == pytest.approx(loss_ref, rel=8 * eps(dtype)), name
    # log(cosh(d)) ~ |d| - log 2 far out: no overflow of cosh
    loss, g = C.log_cosh(np.array([[1e4]], dtype), np.zeros((1, 1), dtype))
    assert loss == pytest.approx(1e4 - np.log(2), rel=4 * eps(dtype))
    assert g[0, 0] == 1.0
    # KL: probabilities of exactly 0 and 1 in both arguments are clipped, not NaN
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype)
    loss, g = C.kl_divergence(q[::-1].copy(), q)
    assert np.isfinite(loss) and np.isfinite(g).all()
    assert loss == pytest.approx(-np.log(np.float64(dtype(1e-7))), rel=1e-6)


# ---------------------------------------------------------------------------- label smoothing
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_label_smoothing_native_matches_reference(name, smoothing, dtype):
    r = rng(3)
    z = (r.normal(size=(300, 7)) * 3).astype(dtype)
    t = np.eye(7, dtype=dtype)[r.integers(0, 7, 300)]
    loss, g = getattr(C, name)(logits=z, targets=t, label_smoothing=smoothing)
    loss_ref, g_ref = getattr(RL, name)(logits=z, targets=t, label_smoothing=smoothing)
    tol = (8 + 2 * np.sqrt(7)) * eps(dtype)
    assert loss == pytest.approx(loss_ref, rel=tol, abs=tol * 12)
    np.testing.assert_allclose(g, g_ref, rtol=tol, atol=2 * eps(dtype) * np.max(np.abs(g_ref)))


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_label_smoothing_is_keras_target_smoothing(name):
    r = rng(4)
    z = r.normal(size=(6, 5)) * 2
    t = np.eye(5)[r.integers(0, 5, 6)]
    s = 0.2
    shifted = t * (1 - s) + (s / 5 if name == "softmax_cross_entropy" else s / 2)
    for mod in (C, RL):
        f = getattr(mod, name)
        smoothed, g = f(z, t, label_smoothing=s)
        plain, g_plain = f(z, shifted)
        assert smoothed == pytest.approx(plain, rel=1e-14)
        np.testing.assert_allclose(g, g_plain, rtol=1e-14, atol=1e-17)
        assert smoothed > f(z, t)[0] - 1.0  # smoothing moves the loss: not the unsmoothed value
        assert abs(smoothed - f(z, t)[0]) > 1e-3


def test_label_smoothing_gradient_finite_differences():
    r = rng(5)
    z = r.normal(size=(4, 3)) * 2
    t = np.eye(3)[r.integers(0, 3, 4)]
    for name in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy"):
        f = getattr(RL, name)
        _, g = f(z, t, label_smoothing=0.3)
        numeric = np.empty_like(z)
        for i in np.ndindex(z.shape):
            hi, lo = z.copy(), z.copy()
            hi[i] += 1e-6
            lo[i] -= 1e-6
            numeric[i] = (f(hi, t, label_smoothing=0.3)[0] - f(lo, t, label_smoothing=0.3)[0]) / 2e-6
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------------------- threads, arguments
@pytest.mark.skipif(not C.openmp, reason="built without OpenMP (FASTNN_NO_OPENMP): single-threaded")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_thread_count_does_not_change_results(dtype):
    calls = {name: (lambda name=name: getattr(C, name)(*inputs(name, (1000, 17), dtype, 6)))
             for name in NEW}
    z, t = inputs("mean_absolute_error", (1000, 17), dtype, 7)
    calls["softmax_cross_entropy smoothed"] = lambda: C.softmax_cross_entropy(z, np.abs(t), label_smoothing=0.1)
    for name, call in calls.items():
        results = []
        for threads in (1, 2, 1):
            fastnn.set_num_threads(threads)
            loss, g = call()
            results.append((np.float64(loss).tobytes(), g.tobytes()))
        assert results[0] == results[1] == results[2], f"{name}: results depend on the thread count"


def test_binding_argument_checks():
    p = np.zeros((2, 3))
    with pytest.raises(ValueError, match="delta must be a positive"):
        C.huber(p, p, delta=0.0)
    with pytest.raises(ValueError, match="epsilon must be a positive"):
        C.kl_divergence(p, p, epsilon=-1.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        C.softmax_cross_entropy(p, p, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        C.sigmoid_binary_cross_entropy(p, p, label_smoothing=float("nan"))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        C.mean_absolute_error(p, np.zeros((3, 2)))
    with pytest.raises(TypeError, match="dtype"):
        C.hinge(p, p.astype(np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        C.log_cosh(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="dpred"):
        C.mean_absolute_error(p, p, np.zeros((2, 2)))


def test_same_names_and_signatures_as_the_reference():
    import inspect
    for name in NEW + ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error"]:
        ref = list(inspect.signature(getattr(RL, name)).parameters)
        native = [a.split(":")[0].strip() for a in
                  getattr(C, name).__doc__.split("(", 1)[1].split(")")[0].split(",")]
        assert native == ref, name
