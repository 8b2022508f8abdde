"""Property-based tests of the kernels (hypothesis): every kernel that both backends define, on
shapes that include 0- and 1-sized dimensions and on finite values of either float dtype.

Three kinds of property:

* native equals reference: ``fastnn._core`` against its NumPy twin ``fastnn.reference``, each
  within a tolerance derived from the dtype's machine epsilon ``eps`` and the magnitudes of the
  terms the result is made of (stated at each test), never a blanket relative tolerance;
* mathematical identities of one backend: softmax is invariant to adding a constant per row, layer
  normalization gives rows of mean 0 and variance 1, the first Adam step is learning_rate times
  the sign of the gradient;
* empty inputs: kernels either compute the empty (or all-zero) result the reference computes, or,
  where a mean over nothing is undefined, raise ValueError naming the shape.

Examples are drawn with ``derandomize=True`` and no example database: CI must be reproducible, so
every run tries the same examples (a failure in CI fails the same way on a laptop, and a green run
cannot turn red by chance on an unrelated change), and nothing is written into the checkout.
``FASTNN_PROPERTY_EXAMPLES=2000 pytest tests/test_properties.py`` draws that many random examples
per test instead, to search harder by hand.
"""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import _core as C
from fastnn import program
from fastnn import reference as R

_EXAMPLES = int(os.environ.get("FASTNN_PROPERTY_EXAMPLES", "0"))


def props(max_examples):
    """Settings of every test here: reproducible unless FASTNN_PROPERTY_EXAMPLES asks otherwise."""
    return settings(max_examples=_EXAMPLES or max_examples, derandomize=not _EXAMPLES,
                    database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Kernels that some property below compares between the backends; see the last test.
COVERED = set()


def covers(*names):
    COVERED.update(names)
    return lambda test: test


# ---------------------------------------------------------------------------------- strategies

DTYPES = st.sampled_from([np.float32, np.float64])
dim = st.integers(0, 9)        # 0 and 1 come up often: hypothesis favours the ends of a range
pos_dim = st.integers(1, 9)
any_shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)


def floats(dtype, lo, hi):
    """Finite floats of ``dtype`` in [lo, hi] (subnormals included); lo and hi must be exact."""
    return st.floats(lo, hi, width=8 * np.dtype(dtype).itemsize, allow_nan=False,
                     allow_infinity=False)


def arrays(dtype, shape, lo=-100.0, hi=100.0):
    return hnp.arrays(dtype, shape, elements=floats(dtype, lo, hi))


def scalar(dtype, lo, hi):
    """A Python float exactly representable in ``dtype`` (both backends then use the same value)."""
    return floats(dtype, lo, hi).map(float)


# ---------------------------------------------------------------------------------- tolerances

def eps(dtype):
    return float(np.finfo(dtype).eps)


EPS64 = eps(np.float64)


def assert_within(actual, expected, tol, what="result"):
    """|actual - expected| <= tol elementwise, with equal dtype and shape.

    ``tol`` (broadcast to the shape) gets a floor of the dtype's smallest normal number: a
    subnormal result has absolute, not relative, precision.
    """
    assert isinstance(actual, np.ndarray), f"{what}: {type(actual)}"
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    tol = np.broadcast_to(np.asarray(tol, np.float64) + np.finfo(expected.dtype).tiny, err.shape)
    bad = ~(err <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), err.shape)
        raise AssertionError(f"{what}: {bad.sum()} of {err.size} elements beyond tolerance; at {i}: "
                             f"native {actual[i]!r}, reference {expected[i]!r}, error {err[i]:.3g}, "
                             f"tolerance {tol[i]:.3g}")


def assert_scalar_within(actual, expected, tol, dtype, what):
    """|actual - expected| <= tol for a Python float result, with the same floor as above."""
    assert type(actual) is float, (what, type(actual))
    tol += float(np.finfo(dtype).tiny)
    assert abs(actual - expected) <= tol, f"{what}: native {actual!r}, reference {expected!r}, " \
                                          f"error {abs(actual - expected):.3g}, tolerance {tol:.3g}"


def f64(a):
    return np.asarray(a, np.float64)


# ================================================================================ GEMM and Dense
# Every entry of a product is a K-term dot product. Each side computes it with some order of
# additions, whose rounding error is at most K*eps*(|a|.|b|) (the classic bound gamma_K); alpha,
# beta*c and the bias add up to three more roundings. Two sides that each stay within that of the
# exact value differ by at most twice it: 2*(K+3)*eps*bound, bound = |alpha||op a||op b| + |beta c|.
# (A missing or doubled term, about |a||b|/K, is far beyond this for the K <= 9 drawn here.)

def gemm_tol(bound, inner, dtype):
    return 2 * (inner + 3) * eps(dtype) * bound


@covers("gemm")
@props(150)
@given(data=st.data())
def test_gemm_matches_reference(data):
    dtype = data.draw(DTYPES)
    m, n, k = data.draw(dim), data.draw(dim), data.draw(dim)
    trans_a, trans_b = data.draw(st.booleans()), data.draw(st.booleans())
    alpha = data.draw(scalar(dtype, -4.0, 4.0))
    beta = data.draw(st.sampled_from([0.0, 1.0, -0.5, 2.0]))
    a = data.draw(arrays(dtype, (k, m) if trans_a else (m, k)))
    b = data.draw(arrays(dtype, (n, k) if trans_b else (k, n)))
    c0 = data.draw(arrays(dtype, (m, n))) if beta else np.full((m, n), np.nan, dtype)
    before = (a.copy(), b.copy())
    c_nat, c_ref = c0.copy(), c0.copy()
    assert C.gemm(a, b, c_nat, alpha, beta, trans_a, trans_b) is c_nat
    R.gemm(a, b, c_ref, alpha, beta, trans_a, trans_b)
    assert np.array_equal(a, before[0]) and np.array_equal(b, before[1])
    opa, opb = (f64(a).T if trans_a else f64(a)), (f64(b).T if trans_b else f64(b))
    bound = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta:
        bound = bound + np.abs(beta * f64(c0))
    assert np.isfinite(c_nat).all()  # with beta == 0 the NaN in c must never be read
    assert_within(c_nat, c_ref, gemm_tol(bound, k, dtype), "c")


def dense_args(data, n=None):
    dtype = data.draw(DTYPES)
    n = data.draw(dim) if n is None else n
    k, m = data.draw(dim), data.draw(dim)
    x, w = data.draw(arrays(dtype, (n, k))), data.draw(arrays(dtype, (k, m)))
    b = data.draw(st.none() | arrays(dtype, (m,)))
    dy = data.draw(arrays(dtype, (n, m)))
    return dtype, x, w, b, dy


def check_dense(x, w, b, dy, need_dx, need_db, use_out):
    """dense_forward and dense_backward, native vs reference, with NaN-filled outputs if use_out:
    those must be overwritten, never read (an empty sum is 0, not NaN)."""
    dtype, (n, k), m = x.dtype, x.shape, w.shape[1]
    nan = lambda *shape: np.full(shape, np.nan, dtype) if use_out else None  # noqa: E731
    out = nan(n, m)
    y = C.dense_forward(x, w, b, out=out)
    assert out is None or y is out
    bound = np.abs(f64(x)) @ np.abs(f64(w)) + (0 if b is None else np.abs(f64(b)))
    assert_within(y, R.dense_forward(x, w, b), gemm_tol(bound, k + 1, dtype), "y")

    dx_o, dw_o, db_o = nan(n, k), nan(k, m), nan(m)
    dx, dw, db = C.dense_backward(dy, x, w, dx=dx_o, dw=dw_o, db=db_o, need_dx=need_dx,
                                  need_db=need_db)
    rdx, rdw, rdb = R.dense_backward(dy, x, w, need_dx=need_dx, need_db=need_db)
    assert_within(dw, rdw, gemm_tol(np.abs(f64(x)).T @ np.abs(f64(dy)), n, dtype), "dw")
    if need_dx:
        assert_within(dx, rdx, gemm_tol(np.abs(f64(dy)) @ np.abs(f64(w)).T, m, dtype), "dx")
    else:
        assert dx is None
    if need_db:
        assert_within(db, rdb, gemm_tol(np.abs(f64(dy)).sum(axis=0), n, dtype), "db")
    else:
        assert db is None
    return y, dx, dw, db


@covers("dense_forward", "dense_backward")
@props(150)
@given(data=st.data(), need_dx=st.booleans(), need_db=st.booleans(), use_out=st.booleans())
def test_dense_matches_reference(data, need_dx, need_db, use_out):
    _, x, w, b, dy = dense_args(data)
    check_dense(x, w, b, dy, need_dx, need_db, use_out)


@props(60)
@given(data=st.data(), use_out=st.booleans())
def test_dense_on_empty_batches_and_unit_dims(data, use_out):
    """A 0-row batch gives a (0, M) output, dw = 0 and db = 0 (sums over no rows); 0 features give
    y = b and an empty dw; 1-sized dims are ordinary products. All equal to the reference."""
    n = data.draw(st.sampled_from([0, 1]))
    dtype, x, w, b, dy = dense_args(data, n=n)
    y, dx, dw, db = check_dense(x, w, b, dy, True, True, use_out)
    k, m = w.shape
    assert y.shape == (n, m) and dx.shape == (n, k) and dw.shape == (k, m) and db.shape == (m,)
    if n == 0:
        assert not dw.any() and not db.any()  # exactly 0, never NaN from the NaN-filled outputs
    if k == 0:
        assert np.array_equal(y, np.broadcast_to(np.zeros(m, dtype) if b is None else b, (n, m)))


# ================================================================================ Activations
# Both sides evaluate the same closed form; libm and NumPy's SIMD exp/tanh/log1p/expm1 differ by a
# few ulps and the composite formulas add a few roundings: 16 eps relative. No forward formula
# cancels, so this holds however small the result (down to the smallest normal number).

ELEMENTWISE = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "gelu",
               "gelu_tanh", "silu", "mish", "relu6", "hard_sigmoid", "hard_silu", "softsign",
               "exponential", "celu"]
ALPHA = {"leaky_relu": (0.0, 1.0), "elu": (0.0, 3.0), "celu": (0.25, 3.0)}


# exp(x) overflows float32 beyond 88; celu's exp(x / alpha) likewise for small alpha.
BOUNDS = {"exponential": (-80.0, 80.0), "celu": (-20.0, 100.0)}


def condition(name, x):
    """How much the function magnifies a relative rounding of its inner argument: the GELUs pass
    x^2 (erfc, exp(-x^2/2)) or 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) (sigmoid) through exp, whose
    relative error is the absolute error of its argument; 1 for the others."""
    x = f64(x)
    if name == "gelu":
        return 1 + x * x
    if name == "gelu_tanh":
        return 1 + np.abs(1.6 * (x + 0.044715 * x ** 3)) + x * x
    return 1.0


def act_args(data, name, dtype):
    if name not in ALPHA:
        return {}, 0.0
    alpha = data.draw(scalar(dtype, *ALPHA[name]))
    return {"alpha": alpha}, alpha


@covers(*(n + "_forward" for n in ELEMENTWISE + ["step"]))
@props(200)
@given(data=st.data(), name=st.sampled_from(ELEMENTWISE + ["step"]), dtype=DTYPES,
       shape=any_shape)
def test_activation_forward_matches_reference(data, name, dtype, shape):
    x = data.draw(arrays(dtype, shape, *BOUNDS.get(name, (-100.0, 100.0))))
    kw, _ = act_args(data, name, dtype)
    y = getattr(C, name + "_forward")(x, **kw)
    y_ref = getattr(R, name + "_forward")(x, **kw)
    assert y is not x
    assert_within(y, y_ref, 16 * eps(dtype) * np.abs(f64(y_ref)) * condition(name, x), name + "_forward")


# dx = dy * f'(x), where f' is computed from y on both sides and may subtract O(1) terms
# (1 - y*y for tanh, y*(1 - y) for sigmoid, y + alpha for elu): its absolute error is a few eps of
# those terms (at most 2 + alpha), times |dy|.
@covers(*(n + "_backward" for n in ELEMENTWISE))
@props(200)
@given(data=st.data(), name=st.sampled_from(ELEMENTWISE), dtype=DTYPES, shape=any_shape)
def test_activation_backward_matches_reference(data, name, dtype, shape):
    x, dy = data.draw(arrays(dtype, shape, *BOUNDS.get(name, (-100.0, 100.0)))), data.draw(arrays(dtype, shape))
    kw, alpha = act_args(data, name, dtype)
    y = getattr(R, name + "_forward")(x, **kw)  # the same y on both sides
    dx = getattr(C, name + "_backward")(dy, x, y, **kw)
    dx_ref = getattr(R, name + "_backward")(dy, x, y, **kw)
    tol = 16 * eps(dtype) * (np.abs(f64(dx_ref)) + (2 + alpha) * np.abs(f64(dy))) * condition(name, x)
    assert_within(dx, dx_ref, tol, name + "_backward")


# ================================================================================ Softmax
# Row-wise over C classes: x - max(x) is one IEEE subtraction on both sides (the same value), exp
# adds a few ulps, and the C-term sum of positive terms at most (C - 1) eps relative on each side:
# row_tol = (8 + 2C) eps relative for softmax. log_softmax = (x - max) - log(sum): the log turns the
# sum's relative error into an absolute one, plus the rounding of the difference.

def row_tol(dtype, c):
    return (8 + 2 * c) * eps(dtype)


@covers("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward")
@props(150)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim, log=st.booleans())
def test_softmax_matches_reference(data, dtype, n, c, log):
    name = "log_softmax" if log else "softmax"
    x, dy = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    t = row_tol(dtype, c)
    y = getattr(C, name + "_forward")(x)
    y_ref = getattr(R, name + "_forward")(x)
    tol = t * (1 + np.abs(f64(y_ref))) if log else t * np.abs(f64(y_ref))
    assert_within(y, y_ref, tol, name + "_forward")
    if not log:
        np.testing.assert_allclose(f64(y).sum(axis=1), 1.0, rtol=0, atol=t)

    dx = getattr(C, name + "_backward")(dy, x, y_ref)
    dx_ref = getattr(R, name + "_backward")(dy, x, y_ref)
    row_dy = np.abs(f64(dy)).sum(axis=1, keepdims=True)
    if log:   # dy - exp(y) * sum(dy): the sum's error scaled by exp(y), and the difference
        tol = t * (np.abs(f64(dy)) + np.exp(f64(y_ref)) * row_dy)
    else:     # y * (dy - sum(dy * y)), sum(y) = 1: the dot product's error is t * max|dy|
        tol = t * np.abs(f64(y_ref)) * (np.abs(f64(dy)) + np.abs(f64(dy)).max(axis=1,
                                                                           keepdims=True, initial=0))
    assert_within(dx, dx_ref, tol, name + "_backward")


@props(100)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=pos_dim, log=st.booleans())
def test_softmax_exactly_invariant_to_an_exact_row_shift(data, dtype, n, c, log):
    """x + s is exact for x on a grid of 1/64 in [-64, 64] and integer s in [-1000, 1000], and so is
    (x + s) - max(x + s) = x - max(x): the native result must then be bitwise the same."""
    name = "log_softmax_forward" if log else "softmax_forward"
    x = data.draw(hnp.arrays(dtype, (n, c), elements=st.integers(-4096, 4096).map(lambda i: i / 64)))
    s = data.draw(hnp.arrays(dtype, (n, 1), elements=st.integers(-1000, 1000)))
    xs = x + s
    assert np.array_equal(f64(xs) - f64(s), f64(x))  # the shift really was exact
    assert np.array_equal(getattr(C, name)(xs), getattr(C, name)(x))


@props(100)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=pos_dim)
def test_softmax_invariant_to_adding_a_constant_per_row(data, dtype, n, c):
    """softmax(x + s) = softmax(x) for any per-row constant s, up to rounding: x + s rounds each
    logit by up to eps/2 * |x + s|, which changes each probability by at most twice the largest
    such change, relatively; plus row_tol for computing each side."""
    x = data.draw(arrays(dtype, (n, c)))
    s = data.draw(arrays(dtype, (n, 1), -1000.0, 1000.0))
    xs = x + s
    y, ys = C.softmax_forward(x), C.softmax_forward(xs)
    shift_err = eps(dtype) * np.abs(f64(xs)).max(axis=1, keepdims=True)
    rel = 2 * row_tol(dtype, c) + 2 * shift_err
    # exp(rel) - 1 rather than rel: the logits may move by up to ~0.1 (float32, |x + s| ~ 1e3).
    assert_within(ys, y, np.expm1(rel) * np.abs(f64(y)), "softmax(x + s)")


@pytest.mark.parametrize("name", ["softmax_forward", "log_softmax_forward"])
def test_softmax_of_rows_without_classes_raises_value_error(name, tmp_path):
    """Rows of 0 classes have no softmax: the reference raises ValueError (max of an empty row).
    The native call runs in a subprocess: the out-of-bounds read aborts a sanitizer build."""
    for shape in [(3, 0), (300, 0)]:  # 300 rows: the OpenMP path
        with pytest.raises(ValueError):
            getattr(R, name)(np.zeros(shape, np.float32))
    code = textwrap.dedent(f"""
        import numpy as np
        from fastnn import _core as C
        for shape in [(3, 0), (300, 0)]:
            for dtype in (np.float32, np.float64):
                try:
                    C.{name}(np.zeros(shape, dtype))
                except ValueError as exc:
                    print("ValueError:", exc)
                else:
                    print("no error for", shape)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"crashed ({proc.returncode}): {proc.stderr[-400:]}"
    assert "no error" not in proc.stdout, proc.stdout


# ================================================================================ Losses
# loss: the mean of per-element terms. Each term is a few roundings of quantities whose sizes are
# known (|z|, |z t|, log1p(.) <= 1, d**2, ...): 8 eps of their sum per term. The reference sums in
# the dtype (NumPy's pairwise summation, ~log2(count) + 16 eps relative to the sum of |terms|), the
# native side in float64: tol = (24 + log2(count)) eps * mean |term sizes|.
# gradient: one closed form per element divided by N or N*C; 8 eps relative, except that the
# cross-entropies subtract the target from a probability (p - t, p * mass - q): there the absolute
# error is a row_tol of the two terms' size (at most 2, or 2 + the row's target mass), divided by
# the same count.

LOSS_NAMES = ["sparse_softmax_cross_entropy", "softmax_cross_entropy",
              "sigmoid_binary_cross_entropy", "mean_squared_error", "mean_absolute_error", "huber",
              "log_cosh", "hinge", "kl_divergence"]


def loss_case(data, name, dtype, n, c):
    """(first, second, kwargs, loss term sizes, size of the gradient's cancelling terms, count)."""
    kw = {}
    if name == "sparse_softmax_cross_entropy":
        z = data.draw(arrays(dtype, (n, c), -50.0, 50.0))
        t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
        return z, t, kw, np.abs(f64(z)).max(axis=1) + math.log(c) + 1, 2.0, n
    if name in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy"):
        z = data.draw(arrays(dtype, (n, c), -50.0, 50.0))
        t = data.draw(arrays(dtype, (n, c), 0.0, 1.0))
        kw["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.1, 0.5]))
        if name == "softmax_cross_entropy":  # sum_c q * (|z| + max|z| + log C) per row
            size = (f64(t) + 1) * (np.abs(f64(z)) + np.abs(f64(z)).max(axis=1, keepdims=True)
                                   + math.log(c) + 1)
            return z, t, kw, size.sum(axis=1), f64(t).sum(axis=1, keepdims=True) + 2, n
        return z, t, kw, np.abs(f64(z)) * 2 + 1, 2.0, z.size
    if name == "hinge":
        p = data.draw(arrays(dtype, (n, c), -4.0, 4.0))
        t = data.draw(hnp.arrays(dtype, (n, c), elements=st.sampled_from([-1.0, 1.0])))
        return p, t, kw, 1 + np.abs(f64(p)), 0.0, p.size
    if name == "kl_divergence":
        p = data.draw(arrays(dtype, (n, c), 0.0, 1.5))  # > 1 and < epsilon: clipped, no gradient
        t = data.draw(arrays(dtype, (n, c), 0.0, 1.0))
        kw["epsilon"] = data.draw(st.sampled_from([1e-7, 1e-3]))
        q = np.clip(f64(t), kw["epsilon"], 1)
        size = q * (np.abs(np.log(q)) + np.abs(np.log(np.clip(f64(p), kw["epsilon"], 1))) + 1)
        return p, t, kw, size.sum(axis=1), 0.0, n
    p, t = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    if name == "huber":
        kw["delta"] = data.draw(scalar(dtype, 0.125, 8.0))
    d = np.abs(f64(p) - f64(t))
    size = {"mean_squared_error": d * d, "mean_absolute_error": d,
            "huber": d * kw.get("delta", 1.0) + 1, "log_cosh": d + 1}[name]
    return p, t, kw, size, 0.0, p.size


@covers(*LOSS_NAMES)
@props(300)
@given(data=st.data(), name=st.sampled_from(LOSS_NAMES), dtype=DTYPES, n=pos_dim, c=pos_dim,
       need_grad=st.booleans())
def test_loss_matches_reference(data, name, dtype, n, c, need_grad):
    a, t, kw, sizes, cancelling, count = loss_case(data, name, dtype, n, c)
    loss, g = getattr(C, name)(a, t, None, need_grad, **kw)
    loss_ref, g_ref = getattr(R, name)(a, t, None, need_grad, **kw)
    terms = np.size(sizes)
    tol = (24 + math.log2(terms)) * eps(dtype) * float(np.mean(sizes))
    assert_scalar_within(loss, loss_ref, tol, dtype, name)
    if not need_grad:
        assert g is None and g_ref is None
        return
    tol = 8 * eps(dtype) * np.abs(f64(g_ref)) + row_tol(dtype, c) * cancelling / count
    assert_within(g, g_ref, tol, name + " gradient")


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_losses_refuse_empty_batches_naming_the_shape(name, shape):
    """The mean over no elements is undefined: ValueError naming the shape, not NaN. (The reference
    is looser here: NaN with a RuntimeWarning, or an error from NumPy, depending on the loss.)"""
    a, t = np.zeros(shape), np.zeros(shape)
    if name == "sparse_softmax_cross_entropy":
        t = np.zeros(shape[0], np.int64)
    with pytest.raises(ValueError, match=rf"non-empty.*\({shape[0]}, {shape[1]}\)"):
        getattr(C, name)(a, t)


# ================================================================================ Normalization
# Statistics are float64 sums rounded once to the dtype: 1 ulp each, plus the difference between
# two orders of float64 summation, count * eps64 times the sum of the |terms|. y = gamma * (x - mean) * rstd + beta is four
# roundings in the dtype; a 1-ulp difference in mean moves (x - mean) by eps * |mean|, and one in
# rstd moves y by eps * |gamma xhat|.

def norm_tol(dtype, y_ref, x, mean, rstd, gamma, beta):
    g = 1.0 if gamma is None else np.abs(f64(gamma))
    b = 0.0 if beta is None else np.abs(f64(beta))
    return 8 * eps(dtype) * (np.abs(f64(y_ref)) + b +
                             g * np.abs(f64(rstd)) * (np.abs(f64(x) - f64(mean)) + np.abs(f64(mean))))


def stat_tol(dtype, ref, count, abs_terms):
    """A float64 sum of ``count`` terms whose |values| add up to ``abs_terms``, rounded to the
    dtype: 1 ulp of itself on each side plus each side's float64 summation error."""
    return 2 * eps(dtype) * np.abs(f64(ref)) + 2 * count * EPS64 * abs_terms


def affine(data, dtype, c):
    gamma = data.draw(st.none() | arrays(dtype, (c,), -4.0, 4.0))
    beta = data.draw(st.none() | arrays(dtype, (c,), -4.0, 4.0))
    return gamma, beta


@covers("layernorm_forward", "layernorm_backward")
@props(150)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim)
def test_layernorm_matches_reference(data, dtype, n, c):
    x, dy = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    gamma, beta = affine(data, dtype, c)
    epsilon = data.draw(st.sampled_from([1e-3, 1e-5]))
    y, mean, rstd = C.layernorm_forward(x, gamma, beta, epsilon)
    y_ref, mean_ref, rstd_ref = R.layernorm_forward(x, gamma, beta, epsilon)
    assert_within(mean, mean_ref, stat_tol(dtype, mean_ref, c, np.abs(f64(x)).mean(axis=1)), "mean")
    # rstd = (var + epsilon)^-1/2 moves by rstd * dvar / (2 (var + epsilon)), and var, a mean of
    # (x - mean)^2 in float64, is within C eps64 of the mean of (|x| + |mean|)^2.
    var_eps = f64(rstd_ref) ** -2
    sq = ((np.abs(f64(x)) + np.abs(f64(mean_ref))[:, None]) ** 2).mean(axis=1)
    assert_within(rstd, rstd_ref, stat_tol(dtype, rstd_ref, c, sq * f64(rstd_ref) / var_eps), "rstd")
    mean_b, rstd_b = mean_ref[:, None], rstd_ref[:, None]
    assert_within(y, y_ref, norm_tol(dtype, y_ref, x, mean_b, rstd_b, gamma, beta), "y")

    dx, dgamma, dbeta = C.layernorm_backward(dy, x, gamma, mean_ref, rstd_ref)
    dx_ref, dgamma_ref, dbeta_ref = R.layernorm_backward(dy, x, gamma, mean_ref, rstd_ref)
    # dx = rstd * ((g - mean g) - xhat * mean(g xhat)), g = gamma * dy: a few roundings of each
    # term, which may cancel; the two means are float64 sums rounded once.
    g = np.abs(f64(dy)) * (1.0 if gamma is None else np.abs(f64(gamma)))
    xhat = np.abs(f64(x) - f64(mean_b)) * f64(rstd_b)
    terms = g + g.mean(axis=1, keepdims=True) + xhat * (g * xhat).mean(axis=1, keepdims=True)
    assert_within(dx, dx_ref, (8 * eps(dtype) + 2 * c * EPS64) * f64(rstd_b) * terms, "dx")
    # dgamma, dbeta: float64 column sums of dy * xhat (xhat rounded in the dtype on both sides)
    # and of dy
    ady = np.abs(f64(dy))
    assert_within(dgamma, dgamma_ref, stat_tol(dtype, dgamma_ref, n, (ady * xhat).sum(axis=0)),
                  "dgamma")
    assert_within(dbeta, dbeta_ref, stat_tol(dtype, dbeta_ref, n, ady.sum(axis=0)), "dbeta")


@props(150)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=st.integers(2, 9))
def test_layernorm_rows_have_zero_mean_and_unit_variance(data, dtype, n, c):
    """Without gamma and beta, each output row has mean 0 and variance v / (v + epsilon), v being
    the row's variance: unit variance to within epsilon / v. Checked on the rows with
    v >= 100 epsilon (at least one per example), where that bias is at most 1%."""
    x = data.draw(arrays(dtype, (n, c)))
    epsilon = 1e-3
    y, mean, rstd = C.layernorm_forward(x, None, None, epsilon)
    v = f64(x).var(axis=1)
    rows = v >= 100 * epsilon
    assume(rows.any())
    y64 = f64(y)[rows]
    # mean: mean(x) was rounded to the dtype (eps * |mean| after scaling by rstd), each y[c] has ~3
    # roundings of |y|.
    ymax = np.abs(y64).max(axis=1)
    shift = eps(dtype) * np.abs(f64(mean))[rows] * f64(rstd)[rows]
    assert np.all(np.abs(y64.mean(axis=1)) <= 4 * eps(dtype) * ymax + shift), y64.mean(axis=1)
    # variance: each y within ~3 ulps and rstd within 1 ulp: 8 eps relative, plus the squared shift
    assert np.all(np.abs(y64.var(axis=1) - 1) <= epsilon / v[rows] + 8 * eps(dtype) + shift ** 2)
    # and exactly: v / (v + epsilon)
    np.testing.assert_allclose(y64.var(axis=1), v[rows] / (v[rows] + epsilon),
                               rtol=8 * eps(dtype) + 4 * float(np.max(shift ** 2, initial=0)))


@covers("batchnorm_forward", "batchnorm_inference", "batchnorm_backward")
@props(150)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=dim)
def test_batchnorm_matches_reference(data, dtype, n, c):
    x, dy = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    gamma, beta = affine(data, dtype, c)
    mm0 = data.draw(arrays(dtype, (c,), -10.0, 10.0))
    mv0 = data.draw(arrays(dtype, (c,), 0.0, 10.0))
    momentum = data.draw(st.sampled_from([0.0, 0.9, 0.99]))
    epsilon = 1e-3
    mm, mv, mm_r, mv_r = mm0.copy(), mv0.copy(), mm0.copy(), mv0.copy()
    y, mean, rstd = C.batchnorm_forward(x, gamma, beta, mm, mv, momentum, epsilon)
    y_ref, mean_ref, rstd_ref = R.batchnorm_forward(x, gamma, beta, mm_r, mv_r, momentum, epsilon)
    mean_tol = stat_tol(dtype, mean_ref, n, np.abs(f64(x)).mean(axis=0))
    assert_within(mean, mean_ref, mean_tol, "mean")
    var = f64(rstd_ref) ** -2 - epsilon  # as in the layer norm test above, by columns
    sq = ((np.abs(f64(x)) + np.abs(f64(mean_ref))) ** 2).mean(axis=0)
    assert_within(rstd, rstd_ref, stat_tol(dtype, rstd_ref, n, sq * f64(rstd_ref) / (var + epsilon)),
                  "rstd")
    assert_within(y, y_ref, norm_tol(dtype, y_ref, x, mean_ref, rstd_ref, gamma, beta), "y")
    # moving = momentum * moving + (1 - momentum) * stat: 3 roundings plus the stat's own error
    keep = momentum * np.abs(f64(mm0))
    assert_within(mm, mm_r, 4 * eps(dtype) * (keep + np.abs(f64(mean_ref))) + mean_tol,
                  "moving_mean")
    assert_within(mv, mv_r, 4 * eps(dtype) * (momentum * f64(mv0) + np.abs(var)) + 2 * n * EPS64
                  * sq, "moving_variance")

    y_inf = C.batchnorm_inference(x, gamma, beta, mm_r, mv_r, epsilon)
    y_inf_ref = R.batchnorm_inference(x, gamma, beta, mm_r, mv_r, epsilon)
    rs = 1 / np.sqrt(f64(mv_r) + epsilon)
    assert_within(y_inf, y_inf_ref, norm_tol(dtype, y_inf_ref, x, mm_r, rs, gamma, beta),
                  "inference y")

    dx, dgamma, dbeta = C.batchnorm_backward(dy, x, gamma, mean_ref, rstd_ref)
    dx_ref, dgamma_ref, dbeta_ref = R.batchnorm_backward(dy, x, gamma, mean_ref, rstd_ref)
    # dx = k * ((dy - mean dy) - xhat * mean(dy xhat)), k = gamma * rstd, the column form of the
    # layer norm gradient above.
    k = np.abs(f64(rstd_ref)) * (1.0 if gamma is None else np.abs(f64(gamma)))
    xhat = np.abs(f64(x) - f64(mean_ref)) * np.abs(f64(rstd_ref))
    ady = np.abs(f64(dy))
    terms = ady + ady.mean(axis=0) + xhat * (ady * xhat).mean(axis=0)
    assert_within(dx, dx_ref, (8 * eps(dtype) + 2 * n * EPS64) * k * terms, "dx")
    assert_within(dgamma, dgamma_ref, stat_tol(dtype, dgamma_ref, n, (ady * xhat).sum(axis=0)),
                  "dgamma")
    assert_within(dbeta, dbeta_ref, stat_tol(dtype, dbeta_ref, n, ady.sum(axis=0)), "dbeta")


def test_statistics_over_nothing_raise_value_error_naming_the_shape():
    """Batch norm's batch statistics need a row, layer norm's a feature (the reference would give
    NaN statistics, and batch norm would write NaN into the moving averages)."""
    z = np.zeros((0, 3))
    mm, mv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=r"at least one row.*\(0, 3\)"):
        C.batchnorm_forward(z, None, None, mm, mv, 0.9, 1e-3)
    assert np.all(mm == 0) and np.all(mv == 1)
    with pytest.raises(ValueError, match=r"at least one feature.*\(3, 0\)"):
        C.layernorm_forward(np.zeros((3, 0)), None, None, 1e-3)


# ================================================================================ Dropout
# The mask is a pure function of (seed, counter, index) computed with integer arithmetic on both
# sides, and y = x * mask is one multiplication: everything is bitwise equal.

@covers("dropout_forward", "dropout_backward")
@props(100)
@given(data=st.data(), dtype=DTYPES, shape=any_shape,
       rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]) | st.floats(0.0, 0.99),
       seed=st.integers(0, 2**64 - 1), counter=st.integers(0, 2**64 - 1))
def test_dropout_matches_reference_bitwise(data, dtype, shape, rate, seed, counter):
    x, dy = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    y, mask = C.dropout_forward(x, rate, seed, counter)
    y_ref, mask_ref = R.dropout_forward(x, rate, seed, counter)
    assert mask.dtype == dtype and np.array_equal(mask, mask_ref)
    assert y.dtype == dtype and np.array_equal(y, y_ref)
    assert np.all((mask == 0) | (mask == np.asarray(1 / (1 - rate), dtype)))
    assert np.array_equal(C.dropout_backward(dy, mask), R.dropout_backward(dy, mask_ref))


# ================================================================================ Optimizers
# In-place updates of a few roundings per element: each state array and the parameter within
# 8 eps of the sizes of the terms that were added (|param| + |step| and the like).

def state(data, dtype, shape, lo=-10.0, hi=10.0):
    return data.draw(arrays(dtype, shape, lo, hi))


@covers("sgd_update", "weight_decay_update")
@props(100)
@given(data=st.data(), dtype=DTYPES, shape=any_shape,
       momentum=st.sampled_from([0.0, 0.5, 0.9]), nesterov=st.booleans())
def test_sgd_and_weight_decay_match_reference(data, dtype, shape, momentum, nesterov):
    p, g = state(data, dtype, shape), state(data, dtype, shape)
    vel = state(data, dtype, shape) if momentum else None
    lr = data.draw(scalar(dtype, 0.0, 1.0))
    p_n, p_r = p.copy(), p.copy()
    v_n, v_r = (None, None) if vel is None else (vel.copy(), vel.copy())
    assert C.sgd_update(p_n, g, v_n, lr, momentum, nesterov) is None
    R.sgd_update(p_r, g, v_r, lr, momentum, nesterov)
    step = lr * np.abs(f64(g)) + (0 if vel is None else momentum * np.abs(f64(vel)))
    if vel is not None:
        assert_within(v_n, v_r, 4 * eps(dtype) * step, "velocity")
        step = step + momentum * step
    assert_within(p_n, p_r, 8 * eps(dtype) * (np.abs(f64(p)) + step), "param")

    wd = data.draw(scalar(dtype, 0.0, 0.5))
    assert C.weight_decay_update(p_n, lr, wd) is None
    R.weight_decay_update(p_r, lr, wd)
    assert_within(p_n, p_r, 12 * eps(dtype) * (np.abs(f64(p)) + step), "param after decay")


@covers("adam_update")
@props(100)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, amsgrad=st.booleans(),
       step=st.integers(1, 1000), b1=st.sampled_from([0.0, 0.5, 0.9]),
       b2=st.sampled_from([0.9, 0.999]), epsilon=st.sampled_from([1e-7, 1e-3]))
def test_adam_matches_reference(data, dtype, shape, amsgrad, step, b1, b2, epsilon):
    p, g, m = state(data, dtype, shape), state(data, dtype, shape), state(data, dtype, shape)
    v = state(data, dtype, shape, 0.0, 100.0)
    v_hat = state(data, dtype, shape, 0.0, 100.0) if amsgrad else None
    lr = data.draw(scalar(dtype, 0.0, 1.0))
    ours = [a if a is None else a.copy() for a in (p, m, v, v_hat)]
    theirs = [a if a is None else a.copy() for a in (p, m, v, v_hat)]
    assert C.adam_update(ours[0], g, ours[1], ours[2], lr, b1, b2, epsilon, step, ours[3]) is None
    R.adam_update(theirs[0], g, theirs[1], theirs[2], lr, b1, b2, epsilon, step, theirs[3])
    assert_within(ours[1], theirs[1], 4 * eps(dtype) * (np.abs(f64(m)) + np.abs(f64(g))), "m")
    assert_within(ours[2], theirs[2], 4 * eps(dtype) * (f64(v) + f64(g) ** 2), "v")
    if amsgrad:
        assert_within(ours[3], theirs[3], 4 * eps(dtype) * (f64(v) + f64(g) ** 2), "v_hat")
    # the step lr_t * m / (sqrt(v) + eps): ~6 roundings of it (m and v are ulps off already)
    denom = np.sqrt(f64(theirs[3] if amsgrad else theirs[2])) + epsilon
    lr_t = lr * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
    size = lr_t * np.abs(f64(theirs[1])) / denom
    assert_within(ours[0], theirs[0], 8 * eps(dtype) * (np.abs(f64(p)) + size), "param")


@props(150)
@given(data=st.data(), dtype=DTYPES, shape=any_shape,
       lr=st.sampled_from([1e-4, 1e-3, 0.01, 0.5]), b1=st.sampled_from([0.0, 0.9]),
       b2=st.sampled_from([0.9, 0.999]), epsilon=st.sampled_from([1e-7, 1e-4]))
def test_first_adam_step_is_learning_rate_times_sign_of_gradient(data, dtype, shape, lr, b1, b2,
                                                                  epsilon):
    """At step 1, m = (1-b1) g, v = (1-b2) g**2 and lr_1 = lr sqrt(1-b2) / (1-b1), so the step is
    exactly -lr * sign(g) * |g| / (|g| + e'), with e' = epsilon / sqrt(1 - b2): learning_rate times
    the sign of the gradient, short by the fraction e' / (|g| + e'). For |g| >= 1000 e' (gradients
    not tiny relative to epsilon) that is under 0.1% of lr; a zero gradient does not move."""
    g = data.draw(arrays(dtype, shape, -1e4, 1e4))
    p0 = data.draw(arrays(dtype, shape, -1.0, 1.0))
    p, m, v = p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)
    C.adam_update(p, g, m, v, lr, b1, b2, epsilon, 1)
    delta = f64(p) - f64(p0)
    e_hat = epsilon / math.sqrt(1 - b2)
    ag = np.abs(f64(g))
    # g**2 may underflow in float32 for |g| < ~1e-19, and then v = 0: the step is then
    # lr * (1-b1) g sqrt(1-b2) / ((1-b1) epsilon), also inside the bound below.
    rounding = 8 * eps(dtype) * (np.abs(f64(p0)) + lr)
    assert np.all(np.abs(delta + lr * np.sign(f64(g))) <= lr * e_hat / (ag + e_hat) + rounding)
    big = ag >= 1000 * e_hat
    assert np.all(np.abs(np.abs(delta[big]) - lr) <= 1e-3 * lr + rounding[big])
    assert np.all(delta[ag == 0] == 0)


@covers("adagrad_update", "rmsprop_update")
@props(100)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, centered=st.booleans(),
       momentum=st.sampled_from([None, 0.0, 0.9]), rho=st.sampled_from([0.5, 0.9]),
       epsilon=st.sampled_from([1e-7, 1e-3]))
def test_adagrad_and_rmsprop_match_reference(data, dtype, shape, centered, momentum, rho, epsilon):
    p, g = state(data, dtype, shape), state(data, dtype, shape)
    acc = state(data, dtype, shape, 0.0, 100.0)
    lr = data.draw(scalar(dtype, 0.0, 1.0))
    p_n, p_r, acc_n, acc_r = p.copy(), p.copy(), acc.copy(), acc.copy()
    assert C.adagrad_update(p_n, g, acc_n, lr, epsilon) is None
    R.adagrad_update(p_r, g, acc_r, lr, epsilon)
    new_acc = f64(acc) + f64(g) ** 2
    assert_within(acc_n, acc_r, 2 * eps(dtype) * new_acc, "accumulator")
    size = lr * np.abs(f64(g)) / np.sqrt(new_acc + epsilon)
    assert_within(p_n, p_r, 8 * eps(dtype) * (np.abs(f64(p)) + size), "adagrad param")

    # RMSprop state as it can arise: velocity >= average_grad**2 (a mean of squares is at least
    # the square of the mean), so the centered denominator stays positive.
    avg = state(data, dtype, shape, -3.0, 3.0) if centered else None
    vel = state(data, dtype, shape, 0.0, 100.0)
    if centered:
        vel = np.asarray(vel + avg * avg, dtype)  # 0-d arrays: keep an array
    mom = None if momentum is None else state(data, dtype, shape)
    ours = [a if a is None else a.copy() for a in (p, vel, avg, mom)]
    theirs = [a if a is None else a.copy() for a in (p, vel, avg, mom)]
    mu = momentum or 0.0
    assert C.rmsprop_update(ours[0], g, ours[1], ours[2], ours[3], lr, rho, mu, epsilon) is None
    R.rmsprop_update(theirs[0], g, theirs[1], theirs[2], theirs[3], lr, rho, mu, epsilon)
    new_vel = rho * f64(vel) + (1 - rho) * f64(g) ** 2
    # 3 roundings on each side, and the factor 1 - rho is rounded differently (the native kernel
    # subtracts in the dtype, the reference rounds the float64 difference): 1.3 eps of that term
    assert_within(ours[1], theirs[1], 6 * eps(dtype) * new_vel, "velocity")
    denom = new_vel + epsilon
    if centered:
        new_avg = rho * f64(avg) + (1 - rho) * f64(g)
        assert_within(ours[2], theirs[2], 4 * eps(dtype) * (np.abs(f64(avg)) + np.abs(f64(g))),
                      "average_grad")
        denom = np.maximum(new_vel - new_avg ** 2 + epsilon, epsilon)
    # velocity - average**2 may cancel: its error, a few eps of velocity, relative to what is left
    rel = 8 * eps(dtype) * (1 + new_vel / denom)
    size = lr * np.abs(f64(g)) / np.sqrt(denom)
    if mom is not None:
        size = size + mu * np.abs(f64(mom))
        assert_within(ours[3], theirs[3], rel * size, "momentum_velocity")
    assert_within(ours[0], theirs[0], 8 * eps(dtype) * np.abs(f64(p)) + rel * size, "param")


@covers("sum_squares", "clip_gradient", "l1_l2_penalty")
@props(100)
@given(data=st.data(), dtype=DTYPES, shape=any_shape)
def test_gradient_transforms_match_reference(data, dtype, shape):
    x = state(data, dtype, shape, -100.0, 100.0)
    # squares of the dtype are exact in float64: only the order of a float64 sum differs
    total = float((f64(x) ** 2).sum())
    assert_scalar_within(C.sum_squares(x), R.sum_squares(x), 2 * x.size * EPS64 * total,
                         np.float64, "sum_squares")

    scale = data.draw(scalar(dtype, 0.0, 2.0))
    clipvalue = data.draw(st.just(math.inf) | scalar(dtype, 0.0, 50.0))
    out = C.clip_gradient(x, scale, clipvalue)
    ref = R.clip_gradient(x, scale, clipvalue)
    assert_within(out, ref, 2 * eps(dtype) * np.abs(f64(ref)), "clip_gradient")
    assert np.all(np.abs(f64(out)) <= clipvalue)

    w, g = state(data, dtype, shape), state(data, dtype, shape)
    l1, l2 = data.draw(scalar(dtype, 0.0, 1.0)), data.draw(scalar(dtype, 0.0, 1.0))
    g_n, g_r = g.copy(), g.copy()
    pen = C.l1_l2_penalty(w, l1, l2, g_n)
    pen_ref = R.l1_l2_penalty(w, l1, l2, g_r)
    aw = np.abs(f64(w))
    assert_scalar_within(pen, pen_ref, 4 * (w.size + 2) * EPS64 * float(l1 * aw.sum() +
                                                                        l2 * (aw ** 2).sum()),
                         np.float64, "penalty")
    assert_within(g_n, g_r, 4 * eps(dtype) * (np.abs(f64(g)) + l1 + 2 * l2 * aw), "grad")


# ================================================================================ Coverage

# ================================================================================ Program kernels
# Kernels of the program executor's table (csrc/program.cpp). Those without a binding of their
# own run natively as one-instruction programs (fastnn.program.run_once); the ones that have one
# are also run through the executor here, so its dispatch is compared with the twin too.

NK = fastnn.native.kernels


@covers("dense_act_forward", "act_forward", "act_backward")
@props(80)
@given(data=st.data(), dtype=DTYPES, n=dim, k=pos_dim, m=pos_dim,
       name=st.sampled_from(["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax"]))
def test_activation_by_name_and_fused_dense_match_reference(data, dtype, n, k, m, name):
    x, w = data.draw(arrays(dtype, (n, k), -3, 3)), data.draw(arrays(dtype, (k, m), -3, 3))
    b, dy = data.draw(arrays(dtype, (m,), -3, 3)), data.draw(arrays(dtype, (n, m), -3, 3))
    alpha = 0.2 if name == "leaky_relu" else 1.0 if name == "elu" else 0.0
    z_ref = R.dense_forward(x, w, b)
    y_ref = R.act_forward(z_ref, name, alpha)
    bound = (np.abs(f64(x)) @ np.abs(f64(w)) + np.abs(f64(b))) * 4 + 1
    for run in (NK.dense_act_forward, lambda *a, **kw: program.run_once("dense_act_forward", *a, **kw)):
        z = np.empty((n, m), dtype)
        y = run(x, w, b, name, alpha, z=z, out=np.empty((n, m), dtype))
        assert_within(z, z_ref, gemm_tol(bound, k, dtype), "z")
        assert_within(y, y_ref, gemm_tol(bound, k, dtype) * 4 + 8 * eps(dtype) * np.abs(f64(y_ref)), "y")
    y = y_ref
    dx_ref = R.act_backward(dy, z_ref, y, name, alpha)
    for run in (NK.act_backward, lambda *a: program.run_once("act_backward", *a)):
        assert_within(run(dy, z_ref, y, name, alpha), dx_ref,
                      16 * eps(dtype) * (np.abs(f64(dy)) * (1 + np.abs(f64(y))) + np.abs(f64(dx_ref))),
                      "act_backward")
    assert_within(program.run_once("act_forward", z_ref, name, alpha), y_ref,
                  8 * eps(dtype) * (np.abs(f64(y_ref)) + 1e-30), "act_forward")


@covers("prelu_forward", "prelu_backward")
@props(80)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim, need_dx=st.booleans())
def test_prelu_matches_reference(data, dtype, n, c, need_dx):
    x, dy = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    alpha = data.draw(arrays(dtype, (c,), -2, 2))
    assert np.array_equal(NK.prelu_forward(x, alpha), R.prelu_forward(x, alpha))  # one product
    dx, da = NK.prelu_backward(dy, x, alpha, need_dx=need_dx)
    dx_ref, da_ref = R.prelu_backward(dy, x, alpha, need_dx=need_dx)
    assert (dx is None) == (dx_ref is None) == (not need_dx)
    if need_dx:
        assert np.array_equal(dx, dx_ref)
    # float64 sums of exact products: only their order differs
    bound = (np.abs(f64(dy)) * np.abs(f64(x))).sum(axis=0)
    assert_within(da, da_ref, 2 * (n + 1) * EPS64 * bound + eps(dtype) * np.abs(f64(da_ref)), "dalpha")


@covers("batchnorm_frozen_backward")
@props(60)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim, scaled=st.booleans())
def test_frozen_batchnorm_backward_matches_reference(data, dtype, n, c, scaled):
    dy = data.draw(arrays(dtype, (n, c)))
    gamma = data.draw(arrays(dtype, (c,), -3, 3)) if scaled else None
    var = data.draw(arrays(dtype, (c,), 0, 10))
    out = NK.batchnorm_frozen_backward(dy, gamma, var, 1e-3, scale=np.empty(c, dtype))
    assert np.array_equal(out, R.batchnorm_frozen_backward(dy, gamma, var, 1e-3))


@covers("dropout_step", "normal_noise_step")
@props(60)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, seed=st.integers(0, 2**64 - 1),
       counter=st.integers(0, 2**64 - 2), stddev=st.sampled_from([0.0, 0.5, 3.0]))
def test_random_steps_match_reference_and_advance_their_stream(data, dtype, shape, seed, counter, stddev):
    x = data.draw(arrays(dtype, shape))
    streams = [np.array([seed, counter], np.uint64) for _ in range(4)]
    y, mask = NK.dropout_step(x, 0.3, streams[0])
    y_ref, mask_ref = R.dropout_step(x, 0.3, streams[1])
    assert np.array_equal(y, y_ref) and np.array_equal(mask, mask_ref)
    noisy = NK.normal_noise_step(x, stddev, streams[2])
    noisy_ref = R.normal_noise_step(x, stddev, streams[3])
    # the integers are exact; log and cos of the C library and of NumPy agree to float64 rounding
    assert_within(noisy, noisy_ref, eps(dtype) * (np.abs(f64(x)) + 40 * stddev) + 64 * EPS64 * stddev,
                  "noise")
    for stream in streams:
        assert stream[0] == seed and stream[1] == counter + 1


@covers("probabilities_to_logits", "probabilities_grad")
@props(80)
@given(data=st.data(), dtype=DTYPES, shape=st.tuples(dim, pos_dim), binary=st.booleans())
def test_probability_path_matches_reference(data, dtype, shape, binary):
    p = data.draw(arrays(dtype, shape, 0.0, 1.0))
    dz = data.draw(arrays(dtype, shape, -1.0, 1.0))
    z, z_ref = NK.probabilities_to_logits(p, 1e-7, binary), R.probabilities_to_logits(p, 1e-7, binary)
    assert_within(z, z_ref, 4 * eps(dtype) * (np.abs(f64(z_ref)) + 1), "logits")
    g, g_ref = NK.probabilities_grad(dz, p, 1e-7, binary), R.probabilities_grad(dz, p, 1e-7, binary)
    assert_within(g, g_ref, 4 * eps(dtype) * np.abs(f64(g_ref)), "grad")
    assert np.all(g[(p <= dtype(1e-7)) | (p >= dtype(1 - 1e-7))] == 0)


@covers("scalar_add", "scalar_sqrt", "norm_scale", "global_norm_scale")
@props(60)
@given(a=st.floats(allow_nan=True), b=st.floats(0, 1e300), clip=st.floats(1e-3, 1e3))
def test_scalar_helpers_of_the_executor_match_reference(a, b, clip):
    def same(u, v):
        return (math.isnan(u) and math.isnan(v)) or u == v
    for name, args in (("scalar_add", (a, b)), ("scalar_sqrt", (b,)), ("norm_scale", (a, clip)),
                       ("global_norm_scale", (a, clip)), ("norm_scale", (b, clip))):
        assert same(_executor_scalar(name, *args), getattr(R, name)(*args)), name


def _executor_scalar(name, *args):
    """A scalar kernel run by the executor (run_once needs an array, so record directly)."""
    result = program.record(np.float64, lambda: [getattr(program.active(), name)(*args)], [], 0)
    return result.run(0, [], [])[0]


# ============================================================================ recurrent cells
# Each step adds a product over F + U terms to a state that earlier rounding already perturbed,
# and backpropagation through time walks the same chain back, so the error bound grows with the
# number of steps: tol = 16 * T * (F + U + 4) * eps * (1 + |reference|), the reference computed
# in float64 from the same (dtype-rounded) inputs. Activations are smooth (no kink near which
# the two backends could fall on different sides).
_CELLS = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _recurrent_case(data, dtype, cell, n, t, f, u, reset_after):
    k = _CELLS[cell]
    draw = lambda shape, lo=-1.0, hi=1.0: data.draw(arrays(dtype, shape, lo, hi))
    bias_shape = (2, 3 * u) if cell == "gru" and reset_after else (k * u,)
    return dict(x=draw((n, t, f), -2.0, 2.0), kernel=draw((f, k * u)), recurrent_kernel=draw((u, k * u)),
                bias=draw(bias_shape) if data.draw(st.booleans()) else None,
                h0=draw((n, u)) if data.draw(st.booleans()) else None,
                c0=draw((n, u)) if cell == "lstm" and data.draw(st.booleans()) else None)


def _run_cell(kernels, cell, case, acts, reverse, sequences, reset_after, dtype):
    """Forward and backward of one cell on one backend, every buffer given; all results."""
    x, W, R_, b, h0, c0 = (case[k] for k in ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0"))
    n, t, _ = x.shape
    u = R_.shape[0]
    k = _CELLS[cell]
    e = lambda *shape: np.zeros(shape, dtype)
    hseq, hlast = e(n, t, u), e(n, u)
    dy = np.cos(np.arange(n * t * u if sequences else n * u, dtype=np.float64)).astype(dtype)
    dy = dy.reshape((n, t, u) if sequences else (n, u))
    grads = dict(dx=e(*x.shape), dkernel=e(*W.shape), drecurrent=e(*R_.shape),
                 dbias=None if b is None else e(*b.shape), dh0=e(n, u), need_dx=True)
    a = dict(activation=acts[0], alpha=0.0)
    ra = dict(recurrent_activation=acts[1], recurrent_alpha=0.0)
    if cell == "simple_rnn":
        cache = dict(z=e(n, t, u))
        kernels.simple_rnn_forward(x, W, R_, b, h0, reverse=reverse, hseq=hseq, hlast=hlast, **a, **cache)
        kernels.simple_rnn_backward(dy, x, W, R_, h0, cache["z"], hseq, reverse=reverse,
                                    sequences=sequences, dz=e(n, t, u), hprev=e(n, t, u), **a, **grads)
    elif cell == "lstm":
        cache = dict(z=e(n, t, 4 * u), gates=e(n, t, 4 * u), cseq=e(n, t, u), tc=e(n, t, u))
        kernels.lstm_forward(x, W, R_, b, h0, c0, reverse=reverse, hseq=hseq, hlast=hlast, **a, **ra,
                             **cache)
        grads["dc0"] = e(n, u)
        kernels.lstm_backward(dy, x, W, R_, h0, c0, *cache.values(), hseq, reverse=reverse,
                              sequences=sequences, dz=e(n, t, 4 * u), hprev=e(n, t, u), **a, **ra,
                              **grads)
    else:
        cache = dict(zx=e(n, t, 3 * u), zr=e(n, t, 3 * u), gates=e(n, t, 3 * u))
        kernels.gru_forward(x, W, R_, b, h0, reset_after=reset_after, reverse=reverse, hseq=hseq,
                            hlast=hlast, **a, **ra, **cache)
        kernels.gru_backward(dy, x, W, R_, h0, *cache.values(), hseq, reset_after=reset_after,
                             reverse=reverse, sequences=sequences, dax=e(n, t, 3 * u),
                             dar=e(n, t, 3 * u), hprev=e(n, t, u), work=e(n, u), **a, **ra, **grads)
    grads.pop("need_dx")
    return {"hseq": hseq, "hlast": hlast, **cache, **{k: v for k, v in grads.items() if v is not None}}


@covers("simple_rnn_forward", "simple_rnn_backward", "lstm_forward", "lstm_backward",
        "gru_forward", "gru_backward")
@props(60)
@given(data=st.data(), dtype=DTYPES, cell=st.sampled_from(sorted(_CELLS)), n=st.integers(0, 4),
       t=st.integers(1, 5), f=st.integers(1, 4), u=st.integers(1, 4), reverse=st.booleans(),
       sequences=st.booleans(), reset_after=st.booleans(),
       acts=st.sampled_from([("tanh", "sigmoid"), ("sigmoid", "tanh"), ("linear", "sigmoid"),
                             ("softplus", "sigmoid")]))
def test_recurrent_cells_match_reference(data, dtype, cell, n, t, f, u, reverse, sequences,
                                         reset_after, acts):
    case = _recurrent_case(data, dtype, cell, n, t, f, u, reset_after)
    native = _run_cell(NK, cell, case, acts, reverse, sequences, reset_after, dtype)
    case64 = {k: None if v is None else f64(v) for k, v in case.items()}
    ref = _run_cell(R, cell, case64, acts, reverse, sequences, reset_after, np.float64)
    assert native.keys() == ref.keys()
    for name in native:
        tol = 16 * t * (f + u + 4) * eps(dtype) * (1 + np.abs(ref[name]))
        assert_within(native[name], ref[name].astype(dtype), tol, f"{cell} {name}")


@covers("sequence_dropout_step", "sequence_dropout_backward")
@props(40)
@given(data=st.data(), dtype=DTYPES, n=dim, t=pos_dim, f=pos_dim, seed=st.integers(0, 2**64 - 1),
       rate=st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_sequence_dropout_matches_reference(data, dtype, n, t, f, seed, rate):
    x = data.draw(arrays(dtype, (n, t, f)))
    dy = data.draw(arrays(dtype, (n, t, f)))
    outs = []
    for kernels in (NK, R):
        stream = np.array([seed, 3], np.uint64)
        out, mask = np.zeros_like(x), np.zeros((n, f), dtype)
        kernels.sequence_dropout_step(x, rate, stream, out=out, mask=mask)
        dx = np.zeros_like(x)
        kernels.sequence_dropout_backward(dy, mask, out=dx)
        assert stream[1] == 4
        outs.append((out, mask, dx))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)  # the same generator, one product per element: exact
    # one mask per sequence: every step of a sample drops the same features
    assert np.array_equal(outs[0][0] == 0, np.broadcast_to((outs[0][1] == 0)[:, None, :], x.shape) | (x == 0))


@covers("embedding_forward", "embedding_backward")
@props(60)
@given(data=st.data(), dtype=DTYPES, n=dim, t=pos_dim, v=pos_dim, d=pos_dim)
def test_embedding_matches_reference(data, dtype, n, t, v, d):
    tokens = data.draw(hnp.arrays(np.int64, (n, t), elements=st.integers(0, v - 1))).astype(dtype)
    table = data.draw(arrays(dtype, (v, d)))
    dy = data.draw(arrays(dtype, (n, t, d)))
    out, out_ref = np.zeros((n, t, d), dtype), np.zeros((n, t, d), dtype)
    NK.embedding_forward(tokens, table, out=out)
    R.embedding_forward(tokens, table, out=out_ref)
    assert np.array_equal(out, out_ref)  # a copy: exact
    g, g_ref = np.zeros((v, d), dtype), np.zeros((v, d), dtype)
    NK.embedding_backward(dy, tokens, g)
    R.embedding_backward(dy, tokens, g_ref)
    assert np.array_equal(g, g_ref)  # the same additions in the same (n, t) order
    for bad in (-1.0, float(v), 0.5):
        if n and t:
            wrong = tokens.copy()
            wrong.flat[0] = bad
            with pytest.raises(ValueError, match="tokens"):
                NK.embedding_forward(wrong, table, out=out)


def test_every_kernel_of_both_backends_has_a_property():
    shared = {n for n in R.__all__ if not n.startswith("SELU")} & set(dir(NK))
    assert shared == {n for n in R.__all__ if not n.startswith("SELU")}
    assert COVERED == shared, (f"without a property: {sorted(shared - COVERED)}; "
                               f"not a kernel: {sorted(COVERED - shared)}")


# ================================================================================ Keras's further kernels
# Elementwise kernels, one or two roundings of the same formula on each side (exact comparisons
# decide the branches, so both sides take the same one): 4 eps relative to the terms.

@covers("relu_clip_forward", "relu_clip_backward")
@props(80)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, slope=st.sampled_from([0.0, 0.1, 0.3]),
       max_value=st.sampled_from([math.inf, 6.0, 0.5]), threshold=st.sampled_from([0.0, 0.5, -1.0]))
def test_relu_clip_matches_reference(data, dtype, shape, slope, max_value, threshold):
    x, dy = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    y, y_ref = NK.relu_clip_forward(x, slope, max_value, threshold), R.relu_clip_forward(x, slope, max_value, threshold)
    assert_within(y, y_ref, 4 * eps(dtype) * (np.abs(f64(x)) + abs(threshold)), "relu_clip_forward")
    dx = NK.relu_clip_backward(dy, x, slope, max_value, threshold)
    assert_within(dx, R.relu_clip_backward(dy, x, slope, max_value, threshold),
                  4 * eps(dtype) * np.abs(f64(dy)), "relu_clip_backward")


@covers("affine_forward", "affine_backward", "normalize_forward", "normalize_backward")
@props(80)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim, invert=st.booleans())
def test_affine_and_normalize_match_reference(data, dtype, n, c, invert):
    x, dy = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
    scale, offset = data.draw(arrays(dtype, (c,), -3, 3)), data.draw(arrays(dtype, (c,), -3, 3))
    variance = data.draw(arrays(dtype, (c,), 0, 9))
    size = np.abs(f64(x)) * np.abs(f64(scale)) + np.abs(f64(offset))
    assert_within(NK.affine_forward(x, scale, offset), R.affine_forward(x, scale, offset),
                  4 * eps(dtype) * size, "affine_forward")
    assert_within(NK.affine_backward(dy, scale), R.affine_backward(dy, scale), 0.0, "affine_backward")
    y = NK.normalize_forward(x, offset, variance, 1e-7, invert)
    y_ref = R.normalize_forward(x, offset, variance, 1e-7, invert)
    s = np.maximum(np.sqrt(f64(variance)), 1e-7)
    size = np.abs(f64(x)) * s + np.abs(f64(offset)) if invert else (np.abs(f64(x)) + np.abs(f64(offset))) / s
    assert_within(y, y_ref, 8 * eps(dtype) * size, "normalize_forward")
    dx, dx_ref = NK.normalize_backward(dy, variance, 1e-7, invert), R.normalize_backward(dy, variance, 1e-7, invert)
    size = np.abs(f64(dy)) * s if invert else np.abs(f64(dy)) / s
    assert_within(dx, dx_ref, 8 * eps(dtype) * size, "normalize_backward")


@covers("gaussian_dropout_step", "alpha_dropout_step")
@props(60)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, rate=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
       seed=st.integers(0, 2 ** 64 - 1), step=st.integers(0, 2 ** 64 - 2))
def test_noise_dropouts_match_reference(data, dtype, shape, rate, seed, step):
    """The same numbers on both sides (the integers bit for bit, log/cos to float64 rounding), and
    the stream advances by one on both."""
    x = data.draw(arrays(dtype, shape))
    stddev = math.sqrt(rate / (1 - rate))
    for name, arg in (("gaussian_dropout_step", stddev), ("alpha_dropout_step", rate)):
        s_n, s_r = np.array([seed, step], np.uint64), np.array([seed, step], np.uint64)
        y, mask = getattr(NK, name)(x, arg, s_n)
        y_ref, mask_ref = getattr(R, name)(x, arg, s_r)
        assert np.array_equal(s_n, s_r) and int(s_n[1]) == step + 1
        assert_within(mask, mask_ref, 4 * eps(dtype) * np.abs(f64(mask_ref)) + 1e-12, name + " mask")
        assert_within(y, y_ref, 4 * eps(dtype) * (np.abs(f64(x)) + 2) * (np.abs(f64(mask_ref)) + 2), name)


@covers("nadam_update", "adamax_update", "adadelta_update", "lion_update")
@props(80)
@given(data=st.data(), dtype=DTYPES, shape=any_shape, step=st.integers(1, 1000),
       b1=st.sampled_from([0.0, 0.5, 0.9]), b2=st.sampled_from([0.9, 0.999]))
def test_keras_optimizers_match_reference(data, dtype, shape, step, b1, b2):
    """The twins and the kernels compute the same expressions in the dtype with the same float64
    coefficients: a few roundings of each term apart."""
    p, g, m = state(data, dtype, shape), state(data, dtype, shape), state(data, dtype, shape)
    v = state(data, dtype, shape, 0.0, 100.0)
    lr = data.draw(scalar(dtype, 0.0, 1.0))
    tol = lambda *terms: 16 * eps(dtype) * sum(np.abs(f64(t)) for t in terms)  # noqa: E731

    ours, theirs = [p.copy(), m.copy(), v.copy(), np.ones(1, dtype)], [p.copy(), m.copy(), v.copy(), np.ones(1, dtype)]
    assert NK.nadam_update(ours[0], g, ours[1], ours[2], ours[3], lr, b1, b2, 1e-7, step) is None
    R.nadam_update(theirs[0], g, theirs[1], theirs[2], theirs[3], lr, b1, b2, 1e-7, step)
    assert_within(ours[1], theirs[1], tol(m, g), "nadam m")
    assert_within(ours[2], theirs[2], tol(v, g * g.astype(np.float64)), "nadam v")
    assert_within(ours[3], theirs[3], 0.0, "nadam u_product")
    # the step lr * (c_m m + c_g g) / (sqrt(c_v v) + eps), each factor a few roundings off
    u_t, u_t1 = b1 * (1 - 0.5 * 0.96 ** step), b1 * (1 - 0.5 * 0.96 ** (step + 1))
    prod = float(theirs[3][0])
    c_m, c_g, c_v = u_t1 / (1 - prod * u_t1), (1 - u_t) / (1 - prod), 1 / (1 - b2 ** step)
    size = lr * (c_m * np.abs(f64(theirs[1])) + c_g * np.abs(f64(g))) / (np.sqrt(c_v * f64(theirs[2])) + 1e-7)
    assert_within(ours[0], theirs[0], 32 * eps(dtype) * (np.abs(f64(p)) + size), "nadam param")

    ours, theirs = [p.copy(), m.copy(), v.copy()], [p.copy(), m.copy(), v.copy()]
    assert NK.adamax_update(ours[0], g, ours[1], ours[2], lr, b1, b2, 1e-7, step) is None
    R.adamax_update(theirs[0], g, theirs[1], theirs[2], lr, b1, b2, 1e-7, step)
    assert_within(ours[1], theirs[1], tol(m, g), "adamax m")
    assert_within(ours[2], theirs[2], 0.0, "adamax u")  # one product and a maximum: exact
    size = lr / (1 - b1 ** step) * np.abs(f64(theirs[1])) / (f64(theirs[2]) + 1e-7)
    assert_within(ours[0], theirs[0], 16 * eps(dtype) * (np.abs(f64(p)) + size), "adamax param")

    ours, theirs = [p.copy(), v.copy(), v[::-1].copy() if v.ndim else v.copy()], None
    theirs = [a.copy() for a in ours]
    assert NK.adadelta_update(ours[0], g, ours[1], ours[2], lr, b2, 1e-7) is None
    R.adadelta_update(theirs[0], g, theirs[1], theirs[2], lr, b2, 1e-7)
    assert_within(ours[1], theirs[1], tol(v, f64(g) ** 2), "adadelta accumulated_grad")
    assert_within(ours[2], theirs[2], 16 * eps(dtype) * (np.abs(f64(theirs[2])) + 1e-30), "adadelta accumulated_delta")
    assert_within(ours[0], theirs[0], 16 * eps(dtype) * (np.abs(f64(p)) + np.abs(f64(theirs[0] - p)) + 1e-30),
                  "adadelta param")

    ours, theirs = [p.copy(), m.copy()], [p.copy(), m.copy()]
    assert NK.lion_update(ours[0], g, ours[1], lr, b1, b2) is None
    R.lion_update(theirs[0], g, theirs[1], lr, b1, b2)
    assert_within(ours[1], theirs[1], tol(m, g), "lion m")
    assert_within(ours[0], theirs[0], 4 * eps(dtype) * (np.abs(f64(p)) + lr), "lion param")


# ================================================================================ merges (functional API)
# One or two roundings of the same formula in the same precision on each side: identical bits.

@covers("merge_forward", "merge_backward", "scalar_mul")
@props(80)
@given(data=st.data(), dtype=DTYPES, n=dim, c=pos_dim, op=st.sampled_from([0, 1, 2, 3, 4]),
       scale=st.sampled_from([1.0, 0.5, 1.0 / 3.0]))
def test_merge_matches_reference(data, dtype, n, c, op, scale):
    a, b, dy = (data.draw(arrays(dtype, (n, c))) for _ in range(3))
    if data.draw(st.booleans()):
        b[: n // 2] = a[: n // 2]  # ties: maximum and minimum send the gradient to the first input
    assert_within(NK.merge_forward(a, b, op, scale), R.merge_forward(a, b, op, scale), 0.0, "merge_forward")
    for got, want, what in zip(NK.merge_backward(dy, a, b, op, scale), R.merge_backward(dy, a, b, op, scale),
                               ("da", "db")):
        assert_within(got, want, 0.0, f"merge_backward {what}")
    assert NK.scalar_mul(0.1, 3.0) == R.scalar_mul(0.1, 3.0) == 0.1 * 3.0


@covers("concat_forward", "take_columns")
@props(60)
@given(data=st.data(), dtype=DTYPES, n=dim, ca=pos_dim, cb=pos_dim)
def test_concat_and_take_columns_match_reference(data, dtype, n, ca, cb):
    a, b = data.draw(arrays(dtype, (n, ca))), data.draw(arrays(dtype, (n, cb)))
    y = NK.concat_forward(a, b, np.empty((n, ca + cb), dtype))
    assert_within(y, R.concat_forward(a, b), 0.0, "concat_forward")
    assert_within(NK.take_columns(y, ca, np.empty((n, cb), dtype)), b, 0.0, "take_columns")
    assert_within(R.take_columns(y, 0, np.empty((n, ca), dtype)), a, 0.0, "take_columns twin")


@covers("mean_absolute_percentage_error", "mean_squared_logarithmic_error", "poisson", "squared_hinge")
@props(120)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=pos_dim, need_grad=st.booleans(),
       name=st.sampled_from(["mean_absolute_percentage_error", "mean_squared_logarithmic_error",
                             "poisson", "squared_hinge"]))
def test_keras_pointwise_losses_match_reference(data, dtype, n, c, need_grad, name):
    """Each element's loss and derivative is the same short formula on both sides (a few
    roundings, log1p/log a few ulps), and the mean sums N*C float64 terms: the tolerance of the
    other pointwise losses, relative to the sizes of the terms."""
    kw = {} if name == "squared_hinge" else {"epsilon": 1e-7}
    if name == "squared_hinge":
        p = data.draw(arrays(dtype, (n, c), -4.0, 4.0))
        t = data.draw(hnp.arrays(dtype, (n, c), elements=st.sampled_from([-1.0, 1.0])))
        size = (1 + np.abs(f64(p))) ** 2
    elif name == "poisson":
        p, t = data.draw(arrays(dtype, (n, c), 0.0, 50.0)), data.draw(arrays(dtype, (n, c), 0.0, 50.0))
        size = f64(p) + f64(t) * (np.abs(np.log(f64(p) + 1e-7)) + 1)
    elif name == "mean_squared_logarithmic_error":
        p, t = data.draw(arrays(dtype, (n, c), -1.0, 100.0)), data.draw(arrays(dtype, (n, c), -1.0, 100.0))
        size = (np.log1p(np.maximum(f64(p), 0)) + np.log1p(np.maximum(f64(t), 0)) + 1) ** 2
    else:
        p, t = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
        size = 100 * (np.abs(f64(p)) + np.abs(f64(t))) / np.maximum(np.abs(f64(t)), 1e-7)
    loss, g = getattr(NK, name)(p, t, None, need_grad, **kw)
    loss_ref, g_ref = getattr(R, name)(p, t, None, need_grad, **kw)
    tol = (24 + math.log2(p.size)) * eps(dtype) * float(np.mean(size))
    assert_scalar_within(loss, loss_ref, tol, dtype, name)
    if not need_grad:
        assert g is None and g_ref is None
        return
    assert_within(g, g_ref, 8 * eps(dtype) * (np.abs(f64(g_ref)) + np.sqrt(size) / p.size), name + " gradient")


@covers("cosine_similarity", "categorical_hinge", "binary_focal_cross_entropy",
        "categorical_focal_cross_entropy", "scale_by_rows")
@props(120)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=st.integers(2, 6), need_grad=st.booleans(),
       from_logits=st.booleans(), gamma=st.sampled_from([0.0, 0.5, 2.0, 3.0]),
       name=st.sampled_from(["cosine_similarity", "categorical_hinge", "binary_focal_cross_entropy",
                             "categorical_focal_cross_entropy", "scale_by_rows"]))
def test_keras_row_losses_match_reference(data, dtype, n, c, need_grad, from_logits, gamma, name):
    """The same formulas on both sides, in float64 inside both (the native kernels accumulate
    in double): agreement to a few roundings of the terms."""
    kw = {}
    if name == "cosine_similarity":
        p, t = data.draw(arrays(dtype, (n, c))), data.draw(arrays(dtype, (n, c)))
        kw = {"epsilon": 1e-7}
    elif name == "categorical_hinge":
        p = data.draw(arrays(dtype, (n, c), -4.0, 4.0))
        t = np.eye(c, dtype=dtype)[data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))]
    elif name == "binary_focal_cross_entropy":
        p = data.draw(arrays(dtype, (n, c), -20.0, 20.0) if from_logits else arrays(dtype, (n, c), 0.0, 1.0))
        t = data.draw(arrays(dtype, (n, c), 0.0, 1.0))
        kw = {"from_logits": from_logits, "gamma": gamma, "alpha": 0.3, "apply_class_balancing": True,
              "label_smoothing": 0.1, "epsilon": 1e-7}
    elif name == "categorical_focal_cross_entropy":
        p = data.draw(arrays(dtype, (n, c), -20.0, 20.0) if from_logits else arrays(dtype, (n, c), 0.0625, 1.0))
        t = np.eye(c, dtype=dtype)[data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))]
        kw = {"from_logits": from_logits, "gamma": gamma, "alpha": 0.25, "label_smoothing": 0.05,
              "epsilon": 1e-7}
    else:
        g = data.draw(arrays(dtype, (n, c)))
        ours, theirs = g.copy(), g.copy()
        v = NK.scale_by_rows(1.5, g, ours if need_grad else None)
        assert v == R.scale_by_rows(1.5, g, theirs if need_grad else None) == 1.5 * n
        if need_grad:
            np.testing.assert_array_equal(ours, theirs)
        return
    loss, grad = getattr(NK, name)(p, t, None, need_grad, **kw)
    loss_ref, grad_ref = getattr(R, name)(p, t, None, need_grad, **kw)
    tol = 64 * eps(dtype) * (1 + abs(loss_ref)) * (1 + gamma)
    assert_scalar_within(loss, loss_ref, tol, dtype, name)
    if not need_grad:
        assert grad is None and grad_ref is None
        return
    assert_within(grad, grad_ref, 64 * eps(dtype) * (np.abs(f64(grad_ref)) + np.abs(f64(grad_ref)).max() + 1e-30),
                  name + " gradient")


@covers("sparse_softmax_cross_entropy_ignore")
@props(120)
@given(data=st.data(), dtype=DTYPES, n=pos_dim, c=st.integers(2, 6), need_grad=st.booleans(),
       total=st.booleans(), ignore=st.sampled_from(["-1", "first", "last", "outside"]))
def test_sparse_cross_entropy_with_ignore_class_matches_reference(data, dtype, n, c, need_grad, total, ignore):
    """Rows labelled ignore_class (inside or outside [0, C)) drop out of the sum and its count,
    their gradient rows are 0; the rest is sparse_softmax_cross_entropy's arithmetic, so the
    same tolerance over the kept rows."""
    ignore_class = {"-1": -1, "first": 0, "last": c - 1, "outside": c + 3}[ignore]
    z = data.draw(arrays(dtype, (n, c), -50.0, 50.0))
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.sampled_from(list(range(c)) + [ignore_class])))
    loss, g = NK.sparse_softmax_cross_entropy_ignore(z, t, None, need_grad, ignore_class, total)
    loss_ref, g_ref = R.sparse_softmax_cross_entropy_ignore(z, t, None, need_grad, ignore_class, total)
    keep = t != ignore_class
    count = max(int(keep.sum()), 1)
    size = np.where(keep, np.abs(f64(z)).max(axis=1) + math.log(c) + 1, 0.0)
    tol = (24 + math.log2(z.size)) * eps(dtype) * float(size.sum()) / (1 if total else count)
    assert_scalar_within(loss, loss_ref, tol, dtype, "sparse_softmax_cross_entropy_ignore")
    if not keep.any():
        assert loss == loss_ref == 0.0
    if not need_grad:
        assert g is None and g_ref is None
        return
    assert (g[~keep] == 0).all() and (g_ref[~keep] == 0).all()
    scale = 1.0 if total else 1.0 / count
    assert_within(g, g_ref, 8 * eps(dtype) * (np.abs(f64(g_ref)) + 2.0 * scale), "ignore_class gradient")
