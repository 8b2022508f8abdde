"""The native kernels (``fastnn._core``) against their NumPy twins (``fastnn.reference``).

The reference is the ground truth (it is itself checked against finite differences in
test_reference.py), so every native kernel must reproduce it to within rounding.  Tolerances are
stated in units of the dtype's machine epsilon ``eps`` and justified where they are defined:

* elementwise kernels: a few ulps (both sides evaluate the same formula; libm and NumPy's SIMD
  transcendental functions each round to within ~1-4 ulps),
* row-wise kernels (softmax, losses): the sum over C classes adds ~sqrt(C) ulps of rounding,
* GEMM-based kernels: the classic dot-product bound ``|fl(a.b) - a.b| <= gamma_K |a|.|b|``,
  with gamma_K = K*eps in the worst case and ~sqrt(K)*eps for random data; we allow
  ``4*sqrt(K)*eps*(|op(a)| @ |op(b)|)`` per element (plus the beta*c term), which a single
  missing or doubled k-term (~(|a||b|)/K) would exceed by orders of magnitude.

Shapes are deliberately odd (1, 7, 17, 129, ...) and a few are large enough to cross the GEMM
blocking (KC=256 deep, MC=96 rows, NG=256 columns, NR=8/4 wide, NC=4096) and the OpenMP
thresholds (M*N*K >= 2**17 for GEMM, 256 rows for row-wise kernels, 2**15 elements elementwise).
"""
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import _core as C
from fastnn import reference as R

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(shape, dtype, seed=0, scale=1.0):
    return np.asarray(rng(seed).standard_normal(shape) * scale).astype(dtype)


def snapshot(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after_arrays):
    for b, a in zip(before, after_arrays):
        if b is not None:
            assert np.array_equal(a, b, equal_nan=True), "an input array was modified"


def assert_close(actual, expected, rtol, atol_rel):
    """allclose with atol = atol_rel * max|expected| (the scale of the result), dtype/shape equal.

    A floor of the smallest normal number is always allowed: subnormal results (e.g. softmax
    probabilities of e^-100) carry absolute, not relative, precision.
    """
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected), initial=0.0))
    atol = atol_rel * scale + float(np.finfo(expected.dtype).tiny)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# Elementwise: both sides evaluate the same closed form; libm vs NumPy's (SIMD) exp/tanh/log1p
# differ by a few ulps and the composite formulas (sigmoid, softplus, selu) add a few roundings.
# 16 ulps, purely relative: none of these formulas cancels (tanh'/sigmoid' are computed from the
# same y on both sides), so even tiny outputs must agree to a few ulps of themselves.
def elem_tol(dtype):
    return 16 * eps(dtype), 0.0


# Row-wise over C classes: per-element exp/log (few ulps) plus a length-C sum whose rounding grows
# ~sqrt(C) ulps for random data (native sums sequentially, NumPy pairwise).
def row_tol(dtype, n_classes):
    return (8 + 2 * np.sqrt(n_classes)) * eps(dtype)


def assert_gemm_close(actual, expected, bound, inner, dtype):
    """|actual - expected| <= 4*sqrt(K+1)*eps*bound elementwise (see module docstring).

    ``bound`` is the float64 sum of absolute values of the terms (|alpha||op a||op b| + |beta c|).
    """
    assert actual.dtype == np.dtype(dtype) and actual.shape == expected.shape
    tol = 4 * np.sqrt(inner + 1) * eps(dtype) * bound + np.finfo(dtype).tiny
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = ~(err <= tol)
    assert not bad.any(), (f"{bad.sum()} elements beyond tolerance; worst err {err.max():.3g} "
                           f"vs tol {tol[np.unravel_index(np.argmax(err - tol), tol.shape)]:.3g}")


def test_native_and_reference_define_the_same_kernels():
    ref = {n for n in R.__all__ if not n.startswith("SELU")}
    native = {n for n in dir(fastnn.native.kernels) if not n.startswith("_")}
    assert ref <= native, f"kernels without a native twin: {sorted(ref - native)}"
    suffixes = ("_forward", "_backward", "_update", "_entropy", "_error")
    kernel_like = {n for n in native if n == "gemm" or n.endswith(suffixes)}
    extra = sorted(kernel_like - ref)
    assert not extra, f"native kernels without a reference twin: {extra}"
    assert not hasattr(C, "step_backward") and not hasattr(R, "step_backward")


# GEMM instruction-set variants (e.g. 'generic', 'avx2') when the build offers a choice; every
# GEMM-based test runs on each of them. [None] = a build without run-time dispatch.
GEMM_VARIANTS = list(C.available_cpu_capabilities()) if hasattr(C, "available_cpu_capabilities") \
    else [None]


@pytest.fixture(params=GEMM_VARIANTS, ids=lambda v: v or "default")
def gemm_variant(request):
    if request.param is None:
        yield None
        return
    previous = C.cpu_capability()
    C.set_cpu_capability(request.param)
    assert C.cpu_capability() == request.param
    try:
        yield request.param
    finally:
        C.set_cpu_capability(previous)


# ============================================================================ GEMM

GEMM_SHAPES = [  # (M, N, K)
    (1, 1, 1), (1, 7, 17), (7, 1, 129), (17, 129, 7), (129, 17, 1),
    (97, 257, 259),   # one partial MC tile past 96, NG group past 256, two KC blocks
    (300, 513, 257),  # 4 MC tiles, 3 NG groups, 2 KC blocks, odd N vs NR; parallel
    (300, 129, 513),  # 3 KC blocks (K = 2*256 + 1)
    (3, 4100, 5),     # crosses the NC = 4096 column chunk
]
ALPHA_BETA = [(1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.75, -1.5), (0.0, 0.5)]


def gemm_operands(M, N, K, trans_a, trans_b, dtype, seed=0):
    a = randn((K, M) if trans_a else (M, K), dtype, seed)
    b = randn((N, K) if trans_b else (K, N), dtype, seed + 1)
    c = randn((M, N), dtype, seed + 2)
    return a, b, c


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("M,N,K", [(300, 130, 300), (64, 100, 64), (50, 33, 700)])
def test_gemm_rows_do_not_depend_on_the_batch(M, N, K, dtype, gemm_variant):
    """NN products take the packed path when large and the in-place (direct) path when small or
    few-rowed; every row comes out bitwise the same whichever path computes it, so a sample's
    prediction does not depend on the batch it arrives in."""
    a, b, _ = gemm_operands(M, N, K, False, False, dtype, seed=7)
    whole = C.gemm(a, b, np.empty((M, N), dtype))
    for lo, hi in [(0, 1), (1, 3), (3, 8), (8, 14), (M - 5, M), (0, M // 2)]:
        part = C.gemm(np.ascontiguousarray(a[lo:hi]), b, np.empty((hi - lo, N), dtype))
        assert np.array_equal(part, whole[lo:hi]), f"rows {lo}:{hi} differ from the full product"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)], ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
def test_gemm_matches_reference(M, N, K, alpha, beta, trans_a, trans_b, dtype, gemm_variant):
    a, b, c0 = gemm_operands(M, N, K, trans_a, trans_b, dtype)
    if beta == 0:
        c0[...] = np.nan  # beta == 0: c must not be read (BLAS rule), so NaN must not propagate
    before = snapshot(a, b)
    c_nat, c_ref = c0.copy(), c0.copy()
    res = C.gemm(a, b, c_nat, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    R.gemm(a, b, c_ref, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    assert res is c_nat
    assert_unchanged(before, [a, b])
    assert np.isfinite(c_nat).all()
    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    bound = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta != 0:
        bound += np.abs(beta * c0.astype(np.float64))
    assert_gemm_close(c_nat, c_ref, bound, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gemm_empty_inner_dimension(dtype, gemm_variant):
    a, b = np.zeros((3, 0), dtype), np.zeros((0, 4), dtype)
    c = np.full((3, 4), np.nan, dtype)
    assert C.gemm(a, b, c) is c
    assert np.array_equal(c, np.zeros((3, 4), dtype))
    c = np.full((3, 4), 3.0, dtype)
    C.gemm(a, b, c, beta=2.0)
    assert np.array_equal(c, np.full((3, 4), 6.0, dtype))


# ============================================================================ Dense

DENSE_SHAPES = [(1, 1, 1), (7, 17, 1), (1, 129, 7), (17, 7, 129), (300, 257, 129)]  # (N, K, M)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("use_out", [False, True], ids=["new", "out"])
@pytest.mark.parametrize("N,K,M", DENSE_SHAPES)
def test_dense_forward_matches_reference(N, K, M, use_out, with_bias, dtype, gemm_variant):
    x, w = randn((N, K), dtype, 1), randn((K, M), dtype, 2)
    b = randn((M,), dtype, 3) if with_bias else None
    before = snapshot(x, w, b)
    out = np.full((N, M), np.nan, dtype) if use_out else None  # must be overwritten, not read
    y = C.dense_forward(x, w, b=b, out=out)
    y_ref = R.dense_forward(x, w, b=b)
    if use_out:
        assert y is out
    assert_unchanged(before, [x, w, b])
    bound = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
    if with_bias:
        bound += np.abs(b.astype(np.float64))
    assert_gemm_close(y, y_ref, bound, K + 1, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("need_dx,need_db", [(True, True), (True, False), (False, True),
                                             (False, False)])
@pytest.mark.parametrize("use_out", [False, True], ids=["new", "out"])
@pytest.mark.parametrize("N,K,M", DENSE_SHAPES)
def test_dense_backward_matches_reference(N, K, M, use_out, need_dx, need_db, dtype,
                                          gemm_variant):
    dy, x, w = randn((N, M), dtype, 1), randn((N, K), dtype, 2), randn((K, M), dtype, 3)
    before = snapshot(dy, x, w)
    if use_out:  # NaN-filled: outputs must be overwritten, never accumulated into
        dx_o, dw_o, db_o = (np.full(s, np.nan, dtype) for s in [(N, K), (K, M), (M,)])
    else:
        dx_o = dw_o = db_o = None
    dx, dw, db = C.dense_backward(dy, x, w, dx=dx_o, dw=dw_o, db=db_o, need_dx=need_dx,
                                  need_db=need_db)
    rdx, rdw, rdb = R.dense_backward(dy, x, w, need_dx=need_dx, need_db=need_db)
    assert_unchanged(before, [dy, x, w])
    f64 = lambda a: np.abs(a.astype(np.float64))  # noqa: E731
    assert_gemm_close(dw, rdw, f64(x).T @ f64(dy), N, dtype)
    if use_out:
        assert dw is dw_o
    if need_dx:
        assert_gemm_close(dx, rdx, f64(dy) @ f64(w).T, M, dtype)
        if use_out:
            assert dx is dx_o
    else:
        assert dx is None and rdx is None
        if use_out:  # not wanted: the given array is left alone
            assert np.isnan(dx_o).all()
    if need_db:
        assert_gemm_close(db, rdb, f64(dy).sum(axis=0), N, dtype)
        if use_out:
            assert db is db_o
    else:
        assert db is None and rdb is None
        if use_out:
            assert np.isnan(db_o).all()


# ============================================================================ Activations

ELEMENTWISE = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus"]
WITH_ALPHA = {"leaky_relu": 0.3, "elu": 1.0}
ELEM_SHAPES = [(1,), (7,), (17, 129), (3, 5, 7), (), (0, 4), (300, 129)]  # last: > 2**15, parallel


def act_input(shape, dtype, seed=0):
    x = randn(shape, dtype, seed, scale=3.0)
    flat = x.reshape(-1)
    if flat.size >= 3:  # the kink at 0 must follow the x > 0 convention on both sides
        flat[0], flat[1], flat[2] = 0.0, -0.0, 1e-3
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", ELEM_SHAPES, ids=str)
@pytest.mark.parametrize("name", ELEMENTWISE + ["step"])
def test_activation_forward_matches_reference(name, shape, dtype):
    x = act_input(shape, dtype)
    before = snapshot(x)
    y = getattr(C, name + "_forward")(x)
    y_ref = getattr(R, name + "_forward")(x)
    assert_unchanged(before, [x])
    assert y is not x
    assert_close(y, y_ref, *elem_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", ELEM_SHAPES, ids=str)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_matches_reference(name, shape, dtype):
    x = act_input(shape, dtype)
    y = getattr(R, name + "_forward")(x)  # the same y for both sides
    dy = randn(shape, dtype, 7)
    before = snapshot(dy, x, y)
    out = np.full(shape, np.nan, dtype)
    dx = getattr(C, name + "_backward")(dy, x, y, out=out)
    dx_ref = getattr(R, name + "_backward")(dy, x, y)
    assert dx is out
    assert_unchanged(before, [dy, x, y])
    assert_close(dx, dx_ref, *elem_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0, 2.5])
@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_activation_alpha_matches_reference(name, alpha, dtype):
    x = act_input((17, 129), dtype)
    dy = randn((17, 129), dtype, 3)
    y = getattr(C, name + "_forward")(x, alpha)
    y_ref = getattr(R, name + "_forward")(x, alpha)
    assert_close(y, y_ref, *elem_tol(dtype))
    y_kw = getattr(C, name + "_forward")(x, alpha=alpha)
    assert np.array_equal(y, y_kw)
    dx = getattr(C, name + "_backward")(dy, x, y_ref, alpha=alpha)
    dx_ref = getattr(R, name + "_backward")(dy, x, y_ref, alpha=alpha)
    assert_close(dx, dx_ref, *elem_tol(dtype))
    # The alpha actually matters: the negative part scales with it.
    neg = x < -0.5
    if name == "leaky_relu":
        np.testing.assert_allclose(y[neg], alpha * x[neg], rtol=eps(dtype))


@pytest.mark.parametrize("name,default", sorted(WITH_ALPHA.items()))
def test_activation_default_alpha_matches_reference(name, default):
    x = act_input((7, 17), np.float64)
    y_def = getattr(C, name + "_forward")(x)
    y_explicit = getattr(C, name + "_forward")(x, default)
    assert np.array_equal(y_def, y_explicit)
    assert_close(y_def, getattr(R, name + "_forward")(x), *elem_tol(np.float64))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ELEMENTWISE + ["step"])
def test_activation_forward_in_place(name, dtype):
    x = act_input((17, 129), dtype)
    expected = getattr(R, name + "_forward")(x.copy())
    y = getattr(C, name + "_forward")(x, out=x)
    assert y is x
    assert_close(x, expected, *elem_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ELEMENTWISE + ["step"])
def test_activation_forward_out_is_overwritten(name, dtype):
    x = act_input((7, 17), dtype)
    out = np.full((7, 17), np.nan, dtype)
    y = getattr(C, name + "_forward")(x, out=out)
    assert y is out
    assert_close(out, getattr(R, name + "_forward")(x), *elem_tol(dtype))


def test_step_forward_values():
    x = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0], np.float32)
    assert np.array_equal(C.step_forward(x), np.array([0, 0, 0, 1, 1], np.float32))


# ============================================================================ Softmax

ROW_SHAPES = [(1, 1), (1, 7), (7, 1), (17, 129), (300, 17), (5, 513)]  # (300, *): parallel rows


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward_backward_match_reference(name, shape, dtype):
    x = randn(shape, dtype, 1, scale=4.0)
    dy = randn(shape, dtype, 2)
    before = snapshot(x, dy)
    out = np.full(shape, np.nan, dtype)
    y = getattr(C, name + "_forward")(x, out=out)
    y_ref = getattr(R, name + "_forward")(x)
    assert y is out
    t = row_tol(dtype, shape[1])
    # softmax: every probability is exp(.)/sum, relatively accurate however small -> relative only.
    # log_softmax: (x - max) - lse has absolute error ~ulps of |x - max| -> atol scaled to max|y|.
    assert_close(y, y_ref, t, 0.0 if name == "softmax" else t)
    out = np.full(shape, np.nan, dtype)
    dx = getattr(C, name + "_backward")(dy, x, y_ref, out=out)
    dx_ref = getattr(R, name + "_backward")(dy, x, y_ref)
    assert dx is out
    # dy - sum(dy*y) (or dy - exp(y)*sum(dy)) cancels: absolute error ~ulps of the largest term.
    assert_close(dx, dx_ref, t, t)
    assert_unchanged(before, [x, dy])
    fresh = getattr(C, name + "_forward")(x)
    assert np.array_equal(fresh, y)


# ============================================================================ Losses

LOSS_SHAPES = [(1, 1), (1, 7), (7, 1), (17, 129), (300, 17), (5, 513)]


def loss_inputs(name, shape, dtype, seed=0):
    r = rng(seed)
    N, Cn = shape
    z = (r.standard_normal(shape) * 3).astype(dtype)
    if name == "sparse_softmax_cross_entropy":
        t = r.integers(0, Cn, size=N).astype(np.int64)
    elif name == "softmax_cross_entropy":
        t = r.random(shape)
        t = t / t.sum(axis=1, keepdims=True) * r.uniform(0.9, 1.1, size=(N, 1))  # not normalised
        t = t.astype(dtype)
    elif name == "sigmoid_binary_cross_entropy":
        t = r.random(shape).astype(dtype)
        t[r.random(shape) < 0.3] = 1.0
    else:
        t = r.standard_normal(shape).astype(dtype)
    return z, t


LOSSES = ["sparse_softmax_cross_entropy", "softmax_cross_entropy", "sigmoid_binary_cross_entropy",
          "mean_squared_error"]


def call_loss(mod, name, z, t, grad=None, need_grad=True):
    """Calls with keywords, which also checks that both modules use the same argument names."""
    f = getattr(mod, name)
    if name == "mean_squared_error":
        return f(pred=z, target=t, dpred=grad, need_grad=need_grad)
    if name == "sparse_softmax_cross_entropy":
        return f(logits=z, labels=t, dlogits=grad, need_grad=need_grad)
    return f(logits=z, targets=t, dlogits=grad, need_grad=need_grad)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
@pytest.mark.parametrize("use_out", [False, True], ids=["new", "out"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_reference(name, use_out, shape, dtype):
    z, t = loss_inputs(name, shape, dtype)
    before = snapshot(z, t)
    out = np.full(shape, np.nan, dtype) if use_out else None
    loss, g = call_loss(C, name, z, t, out)
    loss_ref, g_ref = call_loss(R, name, z, t)
    assert_unchanged(before, [z, t])
    assert type(loss) is float
    rtol = row_tol(dtype, shape[1])
    # Each row's loss is off by ~ulps of the terms it is made of (|z| up to ~4 sigma = 12, and
    # |t| for MSE); the mean keeps that absolute error.
    term_scale = float(np.max(np.abs(z))) + np.log(shape[1]) + 1
    if name == "mean_squared_error":
        term_scale = float(np.max((z - t.astype(z.dtype)) ** 2)) + 1
    assert loss == pytest.approx(loss_ref, rel=rtol, abs=rtol * term_scale)
    if use_out:
        assert g is out
    # Gradient entries are (p - t)/N: relative accuracy except where p - t cancels (the true class,
    # MSE residuals near 0), whose absolute error is ~ulps of 1/N, i.e. of max|g|: 2 ulps of it.
    assert_close(g, g_ref, rtol, 2 * eps(dtype) if name != "mean_squared_error" else 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_need_grad_false_returns_none(name, dtype):
    z, t = loss_inputs(name, (17, 7), dtype)
    sentinel = np.full((17, 7), 5.0, dtype)
    loss, g = call_loss(C, name, z, t, sentinel, need_grad=False)
    assert g is None
    assert np.all(sentinel == 5.0)  # the gradient buffer was not touched
    loss_with, _ = call_loss(C, name, z, t)
    assert loss == loss_with
    loss_ref, g_ref = call_loss(R, name, z, t, need_grad=False)
    assert g_ref is None
    assert loss == pytest.approx(loss_ref, rel=1e-5 if dtype == np.float32 else 1e-12)


# ============================================================================ Optimizers

OPT_SHAPES = [(1,), (7,), (17, 129), (3, 5, 7), (300, 129)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", OPT_SHAPES, ids=str)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True)], ids=["plain", "mom", "nest", "nest.5"])
def test_sgd_update_matches_reference_over_three_steps(momentum, nesterov, shape, dtype):
    lr = 0.05
    p_nat, p_ref = randn(shape, dtype, 1), randn(shape, dtype, 1)
    v_nat = np.zeros(shape, dtype) if momentum else None
    v_ref = np.zeros(shape, dtype) if momentum else None
    # Same few-roundings formula on both sides: 4 ulps of the result's scale per step.
    tol = 4 * eps(dtype)
    for step in range(3):
        g = randn(shape, dtype, 10 + step)
        g_before = g.copy()
        assert C.sgd_update(p_nat, g, v_nat, lr, momentum=momentum, nesterov=nesterov) is None
        R.sgd_update(p_ref, g, v_ref, lr, momentum=momentum, nesterov=nesterov)
        assert np.array_equal(g, g_before)
        assert_close(p_nat, p_ref, tol * (step + 1), tol * (step + 1))
        if momentum:
            assert_close(v_nat, v_ref, tol * (step + 1), tol * (step + 1))
    assert not np.array_equal(p_nat, randn(shape, dtype, 1))  # it moved


def test_sgd_plain_leaves_velocity_untouched():
    p, g = np.ones(5), np.ones(5)
    vel = np.full(5, 7.0)
    C.sgd_update(p, g, vel, 0.1)
    assert np.all(vel == 7.0)
    np.testing.assert_allclose(p, 0.9, rtol=1e-15)
    C.sgd_update(p, g, None, 0.1)  # velocity may be None when momentum == 0
    np.testing.assert_allclose(p, 0.8, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", OPT_SHAPES, ids=str)
@pytest.mark.parametrize("hyper", [(1e-3, 0.9, 0.999, 1e-7), (0.1, 0.5, 0.8, 1e-3)],
                         ids=["keras", "odd"])
def test_adam_update_matches_reference_over_three_steps(hyper, shape, dtype):
    lr, b1, b2, e = hyper
    p_nat, p_ref = randn(shape, dtype, 1), randn(shape, dtype, 1)
    m_nat, m_ref, v_nat, v_ref = (np.zeros(shape, dtype) for _ in range(4))
    tol = 8 * eps(dtype)  # m, v: 3 roundings; param: lr_t*m/(sqrt(v)+eps) ~6 roundings per step
    for step in range(1, 4):
        g = randn(shape, dtype, 10 + step)
        if g.size > 2:
            g.reshape(-1)[0] = 0.0  # zero gradient: v stays 0, the epsilon guards the division
        g_before = g.copy()
        assert C.adam_update(p_nat, g, m_nat, v_nat, lr, b1, b2, e, step) is None
        R.adam_update(p_ref, g, m_ref, v_ref, lr, b1, b2, e, step)
        assert np.array_equal(g, g_before)
        assert_close(m_nat, m_ref, tol * step, tol * step)
        assert_close(v_nat, v_ref, tol * step, tol * step)
        assert_close(p_nat, p_ref, tol * step, tol * step)
        assert np.isfinite(p_nat).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_weight_penalty_gives_the_same_bits_on_every_variant_and_matches_the_reference(dtype):
    """l1_l2_penalty runs in the optimizer's instruction-set variants, block by block: on every
    variant the same gradient bits (those of the reference's elementwise formula) and the same
    value (summed in double over fixed blocks), for sizes around the block and vector widths."""
    previous = C.cpu_capability()
    try:
        for n in (1, 7, 17, 4095, 4096, 4097, 70_001):
            w = randn((n,), dtype, 3)
            if n > 4:
                w[:4] = [0.0, -0.0, np.nan, -np.inf]  # sign(0) = 0; NaN and infinities propagate
            g0 = randn((n,), dtype, 4)
            results = []
            for variant in GEMM_VARIANTS if GEMM_VARIANTS != [None] else [previous]:
                C.set_cpu_capability(variant)
                g = g0.copy()
                value = C.l1_l2_penalty(w, 0.01, 0.02, g)
                results.append((variant, value, g, C.l1_l2_penalty(w, 0.01, 0.02)))
            g_ref = g0.copy()
            R.l1_l2_penalty(w, 0.01, 0.02, g_ref)
            for variant, value, g, alone in results:
                assert np.array_equal(g, g_ref, equal_nan=True), f"{variant}, n={n}: gradient"
                assert alone == value or (np.isnan(alone) and np.isnan(value))
                first = results[0][1]
                assert value == first or (np.isnan(value) and np.isnan(first)), f"{variant}, n={n}"
            if n <= 4:
                ref = R.l1_l2_penalty(w, 0.01, 0.02)
                assert abs(results[0][1] - ref) <= 1e-12 * abs(ref)
    finally:
        C.set_cpu_capability(previous)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_optimizer_updates_give_the_same_bits_on_every_variant(dtype):
    """The updates are built without fused multiply-add in every instruction-set variant, so each
    one rounds exactly as the generic code: bitwise the same parameters and state."""
    n = 70_001  # parallel, and a ragged tail for every vector width
    updates = {
        "sgd": lambda p, s, g: C.sgd_update(p, g, s[0], 0.05, momentum=0.9, nesterov=True),
        "adam": lambda p, s, g: C.adam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-7, 3),
        "amsgrad": lambda p, s, g: C.adam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-7, 3, s[2]),
        "adagrad": lambda p, s, g: C.adagrad_update(p, g, s[0], 0.1, 1e-7),
        "rmsprop": lambda p, s, g: C.rmsprop_update(p, g, s[0], s[1], s[2], 0.01, 0.9, 0.5, 1e-7),
    }
    previous = C.cpu_capability()
    try:
        for name, update in updates.items():
            results = {}
            for variant in GEMM_VARIANTS if GEMM_VARIANTS != [None] else [previous]:
                C.set_cpu_capability(variant)
                p = randn((n,), dtype, 1)
                state = [np.abs(randn((n,), dtype, 2)) * 0.1, np.zeros(n, dtype), np.zeros(n, dtype)]
                for step in range(3):
                    update(p, state, randn((n,), dtype, 10 + step))
                results[variant] = [p] + state
            first = next(iter(results.values()))
            assert all(np.isfinite(a).all() for a in first), name
            for variant, arrays in results.items():
                for a, b in zip(arrays, first):
                    assert np.array_equal(a, b), f"{name}: {variant} differs from the first variant"
    finally:
        C.set_cpu_capability(previous)


# ============================================================================ Threads

def _run_with_threads(n, f):
    fastnn.set_num_threads(n)
    assert fastnn.get_num_threads() == n
    return f()


def _bitwise_equal(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_bitwise_equal(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    if isinstance(a, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.skipif(not C.openmp, reason="built without OpenMP (FASTNN_NO_OPENMP): single-threaded")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_thread_count_does_not_change_results(dtype, gemm_variant):
    a, b, c = gemm_operands(300, 513, 257, False, False, dtype)
    at, bt, _ = gemm_operands(300, 513, 257, True, True, dtype)
    dy, x, w = randn((300, 129), dtype, 4), randn((300, 257), dtype, 5), randn((257, 129), dtype, 6)
    cases = {
        "gemm NN": lambda: C.gemm(a, b, c.copy(), 1.5, 0.5),
        "gemm TT": lambda: C.gemm(at, bt, c.copy(), 1.0, 0.0, True, True),
        "dense_forward": lambda: C.dense_forward(x, w, dy[0].copy()),
        "dense_backward": lambda: C.dense_backward(dy, x, w),  # db: N*M >= 2**15, 3 column chunks
        "softmax": lambda: C.softmax_forward(x),
    }
    for name in LOSSES:
        z, t = loss_inputs(name, (1000, 17), dtype, seed=3)  # >= 256 rows: the parallel path
        cases[name] = lambda z=z, t=t, name=name: call_loss(C, name, z, t)
    for name, f in cases.items():
        one = _run_with_threads(1, f)
        two = _run_with_threads(2, f)
        one_again = _run_with_threads(1, f)
        assert _bitwise_equal(one, two), f"{name}: 1 and 2 threads differ"
        assert _bitwise_equal(one, one_again), f"{name}: not deterministic"


def test_gemm_releases_gil_and_is_correct_from_two_threads(gemm_variant):
    """Two Python threads run large GEMMs at once (the binding releases the GIL); both correct."""
    results, errors = {}, []
    shapes = {0: (300, 513, 257, np.float32), 1: (257, 300, 513, np.float64)}

    def work(i):
        try:
            M, N, K, dt = shapes[i]
            a, b, _ = gemm_operands(M, N, K, False, False, dt, seed=10 * i)
            outs = []
            for _ in range(4):
                c = np.full((M, N), np.nan, dt)
                outs.append(C.gemm(a, b, c))
            results[i] = (a, b, outs)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in shapes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (a, b, outs) in results.items():
        dt = shapes[i][3]
        ref = a.astype(np.float64) @ b.astype(np.float64)
        bound = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
        for c in outs:
            assert_gemm_close(c, ref.astype(dt), bound, a.shape[1], dt)
            assert np.array_equal(c, outs[0])


# ============================================================================ Extreme inputs

EXTREME_ROWS = [[1000.0, 0.0], [-1000.0, -1001.0], [1e30, -1e30], [-1e30, 1e30], [1e30, 1e30],
                [-1e30, -1e30]]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_extreme_logits_finite(dtype):
    x = np.array(EXTREME_ROWS, dtype)
    y = C.softmax_forward(x)
    ly = C.log_softmax_forward(x)
    assert np.isfinite(y).all() and np.isfinite(ly).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=2 * eps(dtype))
    # Exact values in float64 (the float32 inputs are exactly representable there too):
    # [1000, 0] -> [1, 0], [-1000, -1001] -> [1/(1+e^-1), ...], [1e30, 1e30] -> [0.5, 0.5].
    xd = x.astype(np.float64)
    shifted = xd - xd.max(axis=1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=4 * eps(dtype), atol=0)
    expected_log = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(ly, expected_log, rtol=4 * eps(dtype), atol=4 * eps(dtype))
    dy = np.ones_like(x)
    assert np.isfinite(C.softmax_backward(dy, x, y)).all()
    assert np.isfinite(C.log_softmax_backward(dy, x, ly)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_extreme_logits_finite(dtype):
    z = np.array(EXTREME_ROWS, dtype)
    labels = np.array([1, 1, 1, 0, 0, 1], np.int64)
    loss, g = C.sparse_softmax_cross_entropy(z, labels)
    # Per-row loss = lse - z[label]: 1000, log(1+e)-... ; computed exactly in float64 here.
    zd = z.astype(np.float64)
    mx = zd.max(axis=1)
    lse = mx + np.log(np.exp(zd - mx[:, None]).sum(axis=1))
    expected = np.mean(lse - zd[np.arange(6), labels])
    assert np.isfinite(loss) and np.isfinite(g).all()
    assert loss == pytest.approx(expected, rel=4 * eps(dtype))
    onehot = np.eye(2, dtype=dtype)[labels]
    loss2, g2 = C.softmax_cross_entropy(z, onehot)
    assert np.isfinite(loss2) and np.isfinite(g2).all()
    assert loss2 == pytest.approx(expected, rel=4 * eps(dtype))
    # targets 0/1 on +-1e30 logits: losses 0 or 1e30-ish, gradient +-1/(N*C) or 0.
    loss3, g3 = C.sigmoid_binary_cross_entropy(z, onehot)
    assert np.isfinite(loss3) and np.isfinite(g3).all()
    loss3_ref, g3_ref = R.sigmoid_binary_cross_entropy(z, onehot)
    assert loss3 == pytest.approx(loss3_ref, rel=4 * eps(dtype))
    assert_close(g3, g3_ref, *elem_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n_classes", [2, 10, 129])
def test_sparse_ce_true_class_200_below_top(dtype, n_classes):
    z = randn((3, n_classes), dtype, 1)
    labels = np.array([1, 0, n_classes - 1], np.int64) % n_classes
    rows = np.arange(3)
    z[rows, labels] = -100.0
    top = (labels + 1) % n_classes
    z[rows, top] = 100.0  # the true class is exactly 200 below the top logit
    loss, g = C.sparse_softmax_cross_entropy(z, labels)
    assert np.isfinite(g).all()
    # loss per row = 200 + log(1 + sum of others e^(z-100)) = 200 + O(C * e^-95)
    assert loss == pytest.approx(200.0, rel=4 * eps(dtype))
    np.testing.assert_allclose(g[rows, labels], -1 / 3, rtol=4 * eps(dtype))
    np.testing.assert_allclose(g[rows, top], 1 / 3, rtol=4 * eps(dtype))
    loss2, g2 = C.softmax_cross_entropy(z, np.eye(n_classes, dtype=dtype)[labels])
    assert loss2 == pytest.approx(200.0, rel=4 * eps(dtype)) and np.isfinite(g2).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "elu", "selu"])
def test_saturating_activations_extreme_inputs(name, dtype):
    x = np.array([89, -89, 100, -100, 1e4, -1e4, 1e30, -1e30], dtype)
    y = getattr(C, name + "_forward")(x)
    assert np.isfinite(y).all(), y
    dx = getattr(C, name + "_backward")(np.ones_like(x), x, y)
    assert np.isfinite(dx).all(), dx
    assert_close(y, getattr(R, name + "_forward")(x), *elem_tol(dtype))
    big, small = x > 50, x < -50
    if name == "sigmoid":
        assert np.all(y[big] == 1) and np.all((y[small] >= 0) & (y[small] < 1e-38))
        assert np.all(dx >= 0) and np.all(dx < 1e-38)
    elif name == "tanh":
        assert np.all(y[big] == 1) and np.all(y[small] == -1) and np.all(dx == 0)
    elif name == "softplus":
        assert np.array_equal(y[big], x[big]) and np.all((y[small] >= 0) & (y[small] < 1e-38))
        assert np.all(dx[big] == 1) and np.all(dx[small] < 1e-38)


# ============================================================================ Binding validation

def test_mixed_dtypes_raise_type_error():
    f32, f64 = np.ones((3, 4), np.float32), np.ones((3, 4), np.float64)
    c = np.full((3, 3), 7.0, np.float32)
    with pytest.raises(TypeError, match="dtype"):
        C.gemm(f32, f64, c, trans_b=True)
    assert np.all(c == 7.0)
    with pytest.raises(TypeError, match="dtype"):
        C.gemm(f32, f32.copy(), c.astype(np.float64), trans_b=True)
    with pytest.raises(TypeError, match="dtype.*float64|float64.*dtype|float32.*float64"):
        C.dense_forward(f32, np.ones((4, 2), np.float64))
    with pytest.raises(TypeError, match="dtype"):
        C.dense_forward(f32, np.ones((4, 2), np.float32), b=np.ones(2, np.float64))
    out = np.full((3, 4), 7.0, np.float64)
    with pytest.raises(TypeError, match="dtype"):
        C.relu_forward(f32, out=out)
    assert np.all(out == 7.0)
    with pytest.raises(TypeError, match="dtype"):
        C.tanh_backward(f32, f64, f32)
    with pytest.raises(TypeError, match="dtype"):
        C.softmax_backward(f32, f32, f64)
    with pytest.raises(TypeError, match="dtype"):
        C.mean_squared_error(f32, f64)
    with pytest.raises(TypeError, match="dtype"):
        C.softmax_cross_entropy(f64, f32)
    p = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="dtype"):
        C.adam_update(p, np.ones(4, np.float32), np.zeros(4, np.float64), np.zeros(4, np.float32),
                      0.1, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(TypeError, match="dtype"):
        C.sgd_update(p, np.ones(4, np.float64), None, 0.1)
    assert np.all(p == 1.0)


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.complex64, np.complex128, np.float16, bool])
def test_non_float_arrays_raise_type_error(bad):
    x = np.ones((3, 4), bad)
    with pytest.raises(TypeError, match="dtype"):
        C.relu_forward(x)
    with pytest.raises(TypeError, match="dtype"):
        C.softmax_forward(x)
    with pytest.raises(TypeError, match="dtype"):
        C.gemm(x, x.T.copy(), np.zeros((3, 3), np.float64))
    with pytest.raises(TypeError, match="dtype"):
        C.mean_squared_error(x, x)


def test_labels_must_be_int64():
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="int64"):
        C.sparse_softmax_cross_entropy(z, np.array([0, 1], np.int32))
    with pytest.raises(TypeError, match="int64"):
        C.sparse_softmax_cross_entropy(z, np.array([0.0, 1.0]))


def test_labels_of_any_int64_dtype_object_accepted():
    """BUG: the binding compares dtype objects by identity. On Linux np.longlong is int64 (equal
    dtypes, same size/kind) but a different descriptor object, so it is rejected with the
    self-contradictory message 'labels must be an int64 array, got dtype int64'."""
    z = randn((2, 3), np.float64)
    labels = np.array([0, 2], dtype=np.longlong)
    assert labels.dtype == np.int64
    loss, g = C.sparse_softmax_cross_entropy(z, labels)
    loss_ref, g_ref = R.sparse_softmax_cross_entropy(z, labels)
    assert loss == pytest.approx(loss_ref, rel=1e-12)


def test_float_arrays_with_equal_but_not_identical_dtype_accepted():
    """BUG: an array whose dtype is float32 but is not NumPy's cached descriptor object (an
    unpickled array, e.g. from multiprocessing/joblib) is rejected: 'x must be a float32 or
    float64 array, got dtype float32'."""
    import pickle
    x = pickle.loads(pickle.dumps(randn((3, 4), np.float32)))
    assert x.dtype == np.float32
    y = C.relu_forward(x)
    assert np.array_equal(y, R.relu_forward(x))


@pytest.mark.parametrize("view", ["every_other_column", "transpose"])
def test_non_contiguous_inputs_raise_value_error(view):
    base = randn((6, 6), np.float64)
    x = base[:, ::2] if view == "every_other_column" else base.T
    assert not x.flags.c_contiguous
    with pytest.raises(ValueError, match="C-contiguous"):
        C.relu_forward(x)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.softmax_forward(x)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.sigmoid_backward(np.ascontiguousarray(x), x, np.ascontiguousarray(x))
    c = np.full((x.shape[0], x.shape[0]), 7.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.gemm(x, np.ascontiguousarray(x.T), c)
    assert np.all(c == 7.0)
    w = np.ones((x.shape[1], 2))
    with pytest.raises(ValueError, match="C-contiguous"):
        C.dense_forward(x, w)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.dense_backward(np.ones((x.shape[0], 2)), x, w)
    with pytest.raises(ValueError, match="C-contiguous"):
        C.mean_squared_error(x, np.ascontiguousarray(x))
    with pytest.raises(ValueError, match="C-contiguous"):
        C.sparse_softmax_cross_entropy(np.ascontiguousarray(x), np.arange(12, dtype=np.int64)[::4])
    p = np.ascontiguousarray(x)
    p0 = p.copy()
    with pytest.raises(ValueError, match="C-contiguous"):
        C.sgd_update(p, x, None, 0.1)
    assert np.array_equal(p, p0)
    # A non-contiguous out is rejected too (and left untouched).
    out_base = np.full((6, 6), 7.0)
    out = out_base[:, ::2] if view == "every_other_column" else out_base.T
    with pytest.raises(ValueError, match="C-contiguous"):
        C.relu_forward(np.ascontiguousarray(x), out=out)
    assert np.all(out_base == 7.0)


def test_gemm_inner_dimension_mismatch_names_shapes():
    a, b = np.ones((3, 4)), np.ones((5, 2))
    c = np.full((3, 2), 7.0)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        C.gemm(a, b, c)
    assert np.all(c == 7.0)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(2, 5\)"):
        C.gemm(a, b, np.zeros((4, 5)), trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match=r"c must have shape \(3, 5\), got \(3, 2\)"):
        C.gemm(a, np.ones((4, 5)), c)
    assert np.all(c == 7.0)
    with pytest.raises(ValueError, match="2-D"):
        C.gemm(np.ones(4), np.ones((4, 2)), c)


def test_dense_shape_errors_name_expected_and_received():
    x = np.ones((5, 3))
    with pytest.raises(ValueError, match=r"w must have shape \(3, units\).*\(5, 3\).*got \(4, 2\)"):
        C.dense_forward(x, np.ones((4, 2)))
    out = np.full((2, 5), 7.0)
    with pytest.raises(ValueError, match=r"out must have shape \(5, 2\), got \(2, 5\)"):
        C.dense_forward(x, np.ones((3, 2)), out=out)
    assert np.all(out == 7.0)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\), got \(3,\)"):
        C.dense_forward(x, np.ones((3, 2)), b=np.ones(3))
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2\), got \(4, 2\)"):
        C.dense_backward(np.ones((4, 2)), x, np.ones((3, 2)))
    # A bad dx after a good dw: no kernel ran, so dw is still untouched.
    dw = np.full((3, 2), 7.0)
    with pytest.raises(ValueError, match=r"dx must have shape \(5, 3\), got \(3, 5\)"):
        C.dense_backward(np.ones((5, 2)), x, np.ones((3, 2)), dx=np.zeros((3, 5)), dw=dw)
    assert np.all(dw == 7.0)
    with pytest.raises(ValueError, match=r"db must have shape \(2,\), got \(3,\)"):
        C.dense_backward(np.ones((5, 2)), x, np.ones((3, 2)), dw=dw, db=np.zeros(3))
    assert np.all(dw == 7.0)


def test_float32_sigmoid_accuracy_and_position_independence(gemm_variant):
    """float32 sigmoid runs on whole vectors with its own exponential: within 3 ulp of the float64
    result for normal outputs, within one smallest subnormal below them, exact 0/1/NaN at the
    extremes; and a value's result does not depend on where it sits in the array (the last few
    values go through the same vector code, zero-padded)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-120, 120, 200_000), rng.uniform(-6, 6, 200_000),
                        [0.0, -0.0, 1e-45, 88.7, -88.7, -103.9, -104.5, 200, -200]]).astype(np.float32)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    y = C.sigmoid_forward(x).astype(np.float64)
    normal = exact > np.finfo(np.float32).tiny
    ulps = np.abs(y[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulps.max() <= 3.0, f"max error {ulps.max():.2f} ulp"
    smallest = np.float64(np.finfo(np.float32).smallest_subnormal)
    assert np.abs(y[~normal] - exact[~normal]).max() <= smallest
    special = C.sigmoid_forward(np.array([np.inf, -np.inf, np.nan, 1e30, -1e30], np.float32))
    assert special[0] == 1 and special[1] == 0 and np.isnan(special[2])
    assert special[3] == 1 and special[4] == 0
    for start in range(0, 40):  # every alignment and tail length of one vector
        part = C.sigmoid_forward(np.ascontiguousarray(x[start:start + 37]))
        assert np.array_equal(part, C.sigmoid_forward(x)[start:start + 37])


def test_activation_and_softmax_shape_errors():
    x = np.ones((3, 4))
    out = np.full((4, 3), 7.0)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 4\), got \(4, 3\)"):
        C.sigmoid_forward(x, out=out)
    assert np.all(out == 7.0)
    with pytest.raises(ValueError, match=r"y must have shape \(3, 4\), got \(4, 3\)"):
        C.tanh_backward(x, x, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(3, 4\), got \(12,\)"):
        C.relu_backward(x, np.ones(12), x)
    with pytest.raises(ValueError, match="2-D"):
        C.softmax_forward(np.ones(4))
    with pytest.raises(ValueError, match="2-D"):
        C.log_softmax_forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 4\), got \(3, 5\)"):
        C.softmax_forward(x, out=np.zeros((3, 5)))
    with pytest.raises(TypeError, match="numpy.ndarray or None"):
        C.relu_forward(x, out=[0.0] * 12)


def test_loss_shape_errors():
    z = np.ones((4, 3))
    g = np.full((4, 3), 7.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), got \(3,\)"):
        C.sparse_softmax_cross_entropy(z, np.zeros(3, np.int64), g)
    assert np.all(g == 7.0)
    with pytest.raises(ValueError, match=r"targets must have shape \(4, 3\), got \(3, 4\)"):
        C.softmax_cross_entropy(z, np.ones((3, 4)), g)
    with pytest.raises(ValueError, match=r"targets must have shape \(4, 3\), got \(4, 2\)"):
        C.mean_squared_error(z, np.ones((4, 2)), g)
    with pytest.raises(ValueError, match=r"dlogits must have shape \(4, 3\), got \(3, 4\)"):
        C.sigmoid_binary_cross_entropy(z, z.copy(), np.zeros((3, 4)))
    assert np.all(g == 7.0)


@pytest.mark.parametrize("label", [3, -1, 2**40])
def test_labels_out_of_range_name_label_and_range(label):
    z = np.ones((4, 3))
    g = np.full((4, 3), 7.0)
    labels = np.array([0, 1, label, 2], np.int64)
    with pytest.raises(ValueError, match=rf"\[0, 3\).*{label}"):
        C.sparse_softmax_cross_entropy(z, labels, g)
    assert np.all(g == 7.0)


def test_read_only_outputs_raise_value_error():
    x = np.ones((3, 4))
    out = np.full((3, 4), 7.0)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        C.relu_forward(x, out=out)
    with pytest.raises(ValueError, match="writeable"):
        C.gemm(x, x.T.copy(), _read_only(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="writeable"):
        C.dense_forward(x, np.ones((4, 4)), out=out)
    with pytest.raises(ValueError, match="writeable"):
        C.softmax_forward(x, out=out)
    with pytest.raises(ValueError, match="writeable"):
        C.mean_squared_error(x, x, out)
    p = _read_only(np.ones(4))
    with pytest.raises(ValueError, match="writeable"):
        C.sgd_update(p, np.ones(4), None, 0.1)
    m = _read_only(np.zeros(4))
    q = np.ones(4)
    with pytest.raises(ValueError, match="writeable"):
        C.adam_update(q, np.ones(4), m, np.zeros(4), 0.1, 0.9, 0.999, 1e-7, 1)
    assert np.all(q == 1.0) and np.all(out == 7.0)


def _read_only(a):
    a.flags.writeable = False
    return a


def test_read_only_inputs_are_accepted():
    x = _read_only(randn((7, 17), np.float32))
    w = _read_only(randn((17, 3), np.float32))
    assert np.array_equal(C.relu_forward(x), R.relu_forward(x))
    C.dense_forward(x, w)


@pytest.mark.parametrize("step", [0, -1])
def test_adam_step_must_be_positive(step):
    p, g, m, v = np.ones(5), np.ones(5), np.full(5, 0.5), np.full(5, 0.25)
    with pytest.raises(ValueError, match=rf"step must be >= 1.*got {step}"):
        C.adam_update(p, g, m, v, 0.1, 0.9, 0.999, 1e-7, step)
    assert np.all(p == 1.0) and np.all(m == 0.5) and np.all(v == 0.25)


def test_optimizer_state_shape_errors():
    p = np.ones(5)
    with pytest.raises(ValueError, match=r"velocity must have shape \(5,\), got \(4,\)"):
        C.sgd_update(p, np.ones(5), np.zeros(4), 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="velocity is required"):
        C.sgd_update(p, np.ones(5), None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grad must have shape \(5,\), got \(5, 1\)"):
        C.sgd_update(p, np.ones((5, 1)), None, 0.1)
    with pytest.raises(ValueError, match=r"v must have shape \(5,\), got \(6,\)"):
        C.adam_update(p, np.ones(5), np.zeros(5), np.zeros(6), 0.1, 0.9, 0.999, 1e-7, 1)
    assert np.all(p == 1.0)


def test_sgd_velocity_that_is_not_an_array_raises_type_error(tmp_path):
    """BUG: sgd_update casts ``velocity`` to an array without checking it is one, so a list reads
    garbage as its dtype and the process segfaults (exit code 139). Run in a subprocess so the
    crash cannot take pytest down."""
    code = textwrap.dedent("""
        import numpy as np
        from fastnn import _core as C
        p = np.ones(3)
        try:
            C.sgd_update(p, np.ones(3), [0.0, 0.0, 0.0], 0.1, 0.9)
        except TypeError as exc:
            print("TypeError:", exc)
        else:
            print("no error")
        print("p unchanged:", bool((p == 1).all()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"crashed with exit code {proc.returncode}: {proc.stderr[-500:]}"
    assert "TypeError: velocity" in proc.stdout, proc.stdout
    assert "p unchanged: True" in proc.stdout


# ============================================================================ Properties

dims = st.integers(min_value=1, max_value=40)
# database=None: write nothing into the repository (.hypothesis/); examples are random each run.
PROP = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(n=dims, k=dims, m=dims, bias=st.booleans(), dtype_i=st.integers(0, 1),
       seed=st.integers(0, 2**31 - 1))
def test_property_dense_forward_matches_reference(n, k, m, bias, dtype_i, seed):
    dtype = DTYPES[dtype_i]
    x, w = randn((n, k), dtype, seed), randn((k, m), dtype, seed + 1)
    b = randn((m,), dtype, seed + 2) if bias else None
    y = C.dense_forward(x, w, b)
    bound = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
    if bias:
        bound += np.abs(b)
    assert_gemm_close(y, R.dense_forward(x, w, b), bound, k + 1, dtype)


@PROP
@given(n=dims, c=st.integers(1, 300), dtype_i=st.integers(0, 1),
       scale=st.sampled_from([0.1, 3, 50]), seed=st.integers(0, 2**31 - 1))
def test_property_softmax_matches_reference(n, c, dtype_i, scale, seed):
    dtype = DTYPES[dtype_i]
    x = randn((n, c), dtype, seed, scale)
    y = C.softmax_forward(x)
    assert_close(y, R.softmax_forward(x), row_tol(dtype, c), 0.0)
    np.testing.assert_allclose(y.sum(axis=1, dtype=np.float64), 1.0, rtol=0,
                               atol=(4 + 2 * np.sqrt(c)) * eps(dtype))


@PROP
@given(n=dims, c=st.integers(1, 64), dtype_i=st.integers(0, 1),
       shift=st.lists(st.floats(-100, 100, allow_nan=False), min_size=40, max_size=40),
       seed=st.integers(0, 2**31 - 1))
def test_property_softmax_invariant_to_row_constant(n, c, dtype_i, shift, seed):
    dtype = DTYPES[dtype_i]
    x = randn((n, c), dtype, seed, 3.0)
    s = np.array(shift[:n], dtype)[:, None]
    xs = (x + s).astype(dtype)
    # x + s is rounded to the dtype: each logit moves by up to eps*|x+s| (~eps*103), which changes
    # each probability by the same relative amount (d softmax_i / softmax_i <= 2 max|dx|).
    t = (8 + 2 * np.sqrt(c)) * eps(dtype) + 4 * eps(dtype) * float(np.max(np.abs(xs)))
    np.testing.assert_allclose(C.softmax_forward(xs), C.softmax_forward(x), rtol=t, atol=t)


@PROP
@given(g=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3)),
                  min_size=1, max_size=50),
       lr=st.sampled_from([1e-3, 0.01, 0.5]), dtype_i=st.integers(0, 1))
def test_property_first_adam_step_is_lr_times_sign(g, lr, dtype_i):
    dtype = DTYPES[dtype_i]
    grad = np.array(g, dtype)
    p0 = np.linspace(-1, 1, grad.size).astype(dtype)
    p, m, v = p0.copy(), np.zeros_like(grad), np.zeros_like(grad)
    b1, b2, e = 0.9, 0.999, 1e-7
    C.adam_update(p, grad, m, v, lr, b1, b2, e, 1)
    delta = p.astype(np.float64) - p0
    # Step 1 exactly: delta = -lr * g / (|g| + e/sqrt(1-b2)), i.e. -lr*sign(g) up to the relative
    # deviation e' / (|g| + e') with e' = e/sqrt(1-b2) ~ 3.2e-6, plus the rounding of p (ulps of 1).
    e_hat = e / np.sqrt(1 - b2)
    gd = np.abs(grad.astype(np.float64))
    allowed = lr * e_hat / (gd + e_hat) + 8 * eps(dtype) * (1 + lr)
    assert np.all(np.abs(delta + lr * np.sign(grad)) <= allowed)
    assert np.all(delta[grad == 0] == 0)
