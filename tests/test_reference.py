"""Tests of the NumPy reference kernels (fastnn.reference) on their own.

Gradients are checked against central finite differences in float64:

    df/dx_i ~ (f(x + eps*e_i) - f(x - eps*e_i)) / (2*eps),   eps = 1e-6

whose error is O(eps**2) from truncation (~1e-12) plus rounding: each
evaluation of f is off by a few ulps of |f|, which the division by 2*eps
amplifies to ~ 2.2e-16 * |f| / eps.  The tolerance is therefore rtol 1e-6
plus an atol of 1e-8 times the gradient's scale plus that rounding floor.
That is tight enough to catch a wrong constant or a missing term;
``test_gradient_check_detects_small_error`` proves that it can fail.
"""

import warnings

import numpy as np
import pytest

from fastnn import reference as R

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8  # relative to the largest gradient entry

DTYPES = [np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


ROUNDING_ULPS = 4  # ulps of error allowed in one evaluation of f


def numeric_grad(f, x, eps=EPS):
    """Central finite-difference gradient of the scalar ``f(x)``.

    Returns the gradient and max |f| seen (which sets the rounding floor).
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    f_max = abs(f(x))
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f(x)
        flat[i] = saved - eps
        f_minus = f(x)
        flat[i] = saved
        flat_grad[i] = (f_plus - f_minus) / (2 * eps)
        f_max = max(f_max, abs(f_plus), abs(f_minus))
    return grad, f_max


def assert_grad_close(analytic, numeric, f_max):
    scale = float(np.max(np.abs(numeric), initial=0.0))
    rounding = ROUNDING_ULPS * np.finfo(np.float64).eps * f_max / EPS
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL * scale + rounding)


def check_gradient(analytic, f, x):
    """Assert ``analytic`` is the gradient of the scalar ``f`` at ``x``."""
    numeric, f_max = numeric_grad(f, x)
    assert_grad_close(analytic, numeric, f_max)


def away_from_zero(r, shape, low=0.05, high=3.0):
    """Samples with |x| >= low, so eps never straddles a kink at 0."""
    return r.choice([-1.0, 1.0], size=shape) * r.uniform(low, high, size=shape)


def unchanged(*arrays):
    """Snapshot arrays; calling the result asserts none was modified."""
    copies = [a.copy() for a in arrays]

    def check():
        for a, c in zip(arrays, copies):
            np.testing.assert_array_equal(a, c)

    return check


# ------------------------------------------------------------ the checker

def test_gradient_check_detects_small_error():
    x = rng().normal(size=(7, 17))
    numeric, f_max = numeric_grad(lambda z: np.sum(np.sin(z)), x)
    assert_grad_close(np.cos(x), numeric, f_max)
    with pytest.raises(AssertionError):
        assert_grad_close(np.cos(x) * (1 + 1e-5), numeric, f_max)
    with pytest.raises(AssertionError):
        assert_grad_close(np.cos(x) + 1e-6, numeric, f_max)


# ------------------------------------------------------------------- gemm

GEMM_SHAPES = [(1, 1, 1), (7, 17, 3), (129, 7, 17), (17, 129, 1)]


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,k,n", GEMM_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_matches_formula(trans_a, trans_b, m, k, n, dtype):
    r = rng(1)
    a = r.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = r.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c = r.normal(size=(m, n)).astype(dtype)
    alpha, beta = 0.7, -1.3
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    expected = alpha * (op_a.astype(np.float64) @ op_b) + beta * c.astype(np.float64)
    check = unchanged(a, b)
    result = R.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    check()
    assert result is c
    assert c.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_beta_zero_ignores_nan_in_c(trans_a, trans_b):
    r = rng(2)
    m, k, n = 7, 17, 3
    a = r.normal(size=(k, m) if trans_a else (m, k))
    b = r.normal(size=(n, k) if trans_b else (k, n))
    c = np.full((m, n), np.nan)
    result = R.gemm(a, b, c, alpha=2.0, beta=0.0, trans_a=trans_a, trans_b=trans_b)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    assert result is c
    np.testing.assert_allclose(c, 2.0 * op_a @ op_b, rtol=1e-12)


def test_gemm_defaults_are_plain_product():
    r = rng(3)
    a, b = r.normal(size=(7, 17)), r.normal(size=(17, 3))
    c = np.full((7, 3), np.nan)
    np.testing.assert_allclose(R.gemm(a, b, c), a @ b, rtol=1e-12)


# ------------------------------------------------------------------ dense

DENSE_SHAPES = [(1, 1, 1), (7, 17, 3), (17, 7, 129), (129, 3, 1)]


@pytest.mark.parametrize("n,k,m", DENSE_SHAPES)
def test_dense_forward_matches_formula(n, k, m):
    r = rng(4)
    x, w, b = r.normal(size=(n, k)), r.normal(size=(k, m)), r.normal(size=m)
    np.testing.assert_allclose(R.dense_forward(x, w, b), x @ w + b, rtol=1e-12)
    np.testing.assert_allclose(R.dense_forward(x, w), x @ w, rtol=1e-12)


@pytest.mark.parametrize("n,k,m", DENSE_SHAPES)
def test_dense_backward_finite_differences(n, k, m):
    r = rng(5)
    x, w, b = r.normal(size=(n, k)), r.normal(size=(k, m)), r.normal(size=m)
    dy = r.normal(size=(n, m))  # L = sum(dy * y) has dL/dy = dy

    dx, dw, db = R.dense_backward(dy, x, w)
    check_gradient(dx, lambda z: np.sum(dy * R.dense_forward(z, w, b)), x)
    check_gradient(dw, lambda z: np.sum(dy * R.dense_forward(x, z, b)), w)
    check_gradient(db, lambda z: np.sum(dy * R.dense_forward(x, w, z)), b)


def test_dense_backward_need_flags():
    r = rng(6)
    x, w, dy = r.normal(size=(7, 17)), r.normal(size=(17, 3)), r.normal(size=(7, 3))
    dx, dw, db = R.dense_backward(dy, x, w, need_dx=False, need_db=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dw, x.T @ dy, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_out_honoured_and_inputs_untouched(dtype):
    r = rng(7)
    x = r.normal(size=(7, 17)).astype(dtype)
    w = r.normal(size=(17, 3)).astype(dtype)
    b = r.normal(size=3).astype(dtype)
    dy = r.normal(size=(7, 3)).astype(dtype)
    check = unchanged(x, w, b, dy)

    y = np.full((7, 3), np.nan, dtype=dtype)
    assert R.dense_forward(x, w, b, out=y) is y
    np.testing.assert_array_equal(y, R.dense_forward(x, w, b))
    assert R.dense_forward(x, w, b).dtype == dtype

    dx = np.full((7, 17), np.nan, dtype=dtype)
    dw = np.full((17, 3), np.nan, dtype=dtype)
    db = np.full(3, np.nan, dtype=dtype)
    got = R.dense_backward(dy, x, w, dx=dx, dw=dw, db=db)
    assert got[0] is dx and got[1] is dw and got[2] is db
    for got_array, fresh in zip(got, R.dense_backward(dy, x, w)):
        assert fresh.dtype == dtype
        np.testing.assert_array_equal(got_array, fresh)
    check()


# ------------------------------------------------------------ activations

# (name, keyword arguments, has a kink at 0)
ELEMENTWISE = [
    ("linear", {}, False),
    ("sigmoid", {}, False),
    ("tanh", {}, False),
    ("relu", {}, True),
    ("leaky_relu", {}, True),
    ("leaky_relu", {"alpha": 0.1}, True),
    ("elu", {}, True),
    ("elu", {"alpha": 0.5}, True),
    ("selu", {}, True),
    ("softplus", {}, False),
]
ELEMENTWISE_IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw, _ in ELEMENTWISE]
SHAPES = [(1,), (7,), (17, 3), (129,), (3, 7, 17)]


def forward(name):
    return getattr(R, name + "_forward")


def backward(name):
    return getattr(R, name + "_backward")


@pytest.mark.parametrize("name,kw,kinked", ELEMENTWISE, ids=ELEMENTWISE_IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_elementwise_backward_finite_differences(name, kw, kinked, shape):
    r = rng(8)
    x = away_from_zero(r, shape) if kinked else r.uniform(-5, 5, size=shape)
    dy = r.normal(size=shape)
    f = forward(name)
    y = f(x, **kw)
    dx = backward(name)(dy, x, y, **kw)
    # f acts elementwise, so shifting every element at once still gives
    # each element's own central difference.
    numeric = dy * (f(x + EPS, **kw) - f(x - EPS, **kw)) / (2 * EPS)
    assert_grad_close(dx, numeric, f_max=np.max(np.abs(dy * y)))


def _naive(name, x, alpha=None):
    """Textbook formulas, valid for moderate x."""
    return {
        "linear": lambda: x,
        "sigmoid": lambda: 1 / (1 + np.exp(-x)),
        "tanh": lambda: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
        "relu": lambda: np.where(x > 0, x, 0.0),
        "leaky_relu": lambda: np.where(x > 0, x, alpha * x),
        "elu": lambda: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
        "selu": lambda: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
        "softplus": lambda: np.log(1 + np.exp(x)),
    }[name]()


@pytest.mark.parametrize("name,kw,kinked", ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_elementwise_forward_matches_textbook(name, kw, kinked):
    x = np.linspace(-6, 6, 129)
    default_alpha = {"leaky_relu": 0.3, "elu": 1.0}.get(name)
    expected = _naive(name, x, kw.get("alpha", default_alpha))
    np.testing.assert_allclose(forward(name)(x, **kw), expected, rtol=1e-12, atol=1e-15)


def test_activation_defaults_and_constants():
    assert R.leaky_relu_forward(np.array([-1.0]))[0] == pytest.approx(-0.3)
    assert R.elu_forward(np.array([-1.0]))[0] == pytest.approx(np.expm1(-1.0))
    assert R.SELU_ALPHA == pytest.approx(1.6732632423543772, rel=1e-15)
    assert R.SELU_SCALE == pytest.approx(1.0507009873554805, rel=1e-15)


def test_derivative_at_zero_uses_the_negative_branch():
    # The spec writes every kink as "x > 0", so x == 0 takes the other side.
    x, dy = np.zeros(1), np.ones(1)
    expected = {
        "relu": 0.0,
        "leaky_relu": 0.3,
        "elu": 1.0,
        "selu": R.SELU_SCALE * R.SELU_ALPHA,
    }
    for name, value in expected.items():
        got = backward(name)(dy, x, forward(name)(x))
        assert got[0] == pytest.approx(value, rel=1e-15), name


def test_step_forward():
    x = np.array([-2.0, -1e-30, 0.0, 1e-30, 3.0], dtype=np.float32)
    y = R.step_forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1])
    assert not hasattr(R, "step_backward")


EXTREME = [-1e30, -1e4, -100.0, -88.5, -1.0, 0.0, 1.0, 88.5, 100.0, 1e4, 1e30]


def strict_numerics():
    """Turn overflow / invalid / divide-by-zero into errors.

    Underflow is left at NumPy's default (ignored): exp(-1e4) rounding to 0
    is the correct answer, not a failure.
    """
    return np.errstate(over="raise", invalid="raise", divide="raise")


@pytest.mark.parametrize("name,kw,kinked", ELEMENTWISE, ids=ELEMENTWISE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_finite_at_extremes_without_warnings(name, kw, kinked, dtype):
    x = np.array(EXTREME, dtype=dtype)
    dy = np.ones_like(x)
    with warnings.catch_warnings(), strict_numerics():
        warnings.simplefilter("error")
        y = forward(name)(x, **kw)
        dx = backward(name)(dy, x, y, **kw)
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_cleanly(dtype):
    x = np.array([-1e4, 1e4], dtype=dtype)
    with warnings.catch_warnings(), strict_numerics():
        warnings.simplefilter("error")
        y = R.sigmoid_forward(x)
        sp = R.softplus_forward(x)
    np.testing.assert_array_equal(y, [0.0, 1.0])
    np.testing.assert_array_equal(sp, [0.0, 1e4])


@pytest.mark.parametrize("name,kw,kinked", ELEMENTWISE, ids=ELEMENTWISE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_out_honoured_and_inputs_untouched(name, kw, kinked, dtype):
    r = rng(9)
    x = away_from_zero(r, (7, 17)).astype(dtype)
    dy = r.normal(size=(7, 17)).astype(dtype)
    f, df = forward(name), backward(name)
    check = unchanged(x, dy)
    fresh_y = f(x, **kw)
    fresh_dx = df(dy, x, fresh_y, **kw)
    assert fresh_y.dtype == dtype and fresh_dx.dtype == dtype
    assert fresh_y is not x and fresh_dx is not dy

    y = np.full_like(x, np.nan)
    assert f(x, **kw, out=y) is y
    np.testing.assert_array_equal(y, fresh_y)
    dx = np.full_like(x, np.nan)
    assert df(dy, x, y, **kw, out=dx) is dx
    np.testing.assert_array_equal(dx, fresh_dx)
    check()

    in_place = x.copy()
    assert f(in_place, **kw, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, fresh_y)


def test_float32_agrees_with_float64():
    x = rng(10).uniform(-5, 5, size=129)
    for name, kw, _ in ELEMENTWISE:
        y64 = forward(name)(x, **kw)
        y32 = forward(name)(x.astype(np.float32), **kw)
        np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6, err_msg=name)


# -------------------------------------------------------- row-wise softmax

ROW_SHAPES = [(1, 1), (1, 7), (7, 17), (17, 129), (3, 2)]
ROWWISE = ["softmax", "log_softmax"]


@pytest.mark.parametrize("name", ROWWISE)
@pytest.mark.parametrize("shape", ROW_SHAPES)
def test_rowwise_backward_finite_differences(name, shape):
    r = rng(11)
    x = r.normal(scale=3.0, size=shape)
    dy = r.normal(size=shape)
    f = forward(name)
    dx = backward(name)(dy, x, f(x))
    check_gradient(dx, lambda z: np.sum(dy * f(z)), x)


@pytest.mark.parametrize("shape", ROW_SHAPES)
def test_softmax_matches_textbook(shape):
    x = rng(12).normal(size=shape)
    naive = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(R.softmax_forward(x), naive, rtol=1e-12)
    np.testing.assert_allclose(R.log_softmax_forward(x), np.log(naive), rtol=1e-12, atol=1e-14)


STABILITY_ROWS = [[1000.0, 0.0], [-1000.0, -1001.0], [1e30, -1e30], [-1e30, 1e30], [1e30, 1e30]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_logits(dtype):
    x = np.array(STABILITY_ROWS, dtype=dtype)
    with warnings.catch_warnings(), strict_numerics():
        warnings.simplefilter("error")
        y = R.softmax_forward(x)
        log_y = R.log_softmax_forward(x)
    assert y.dtype == dtype and log_y.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(log_y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    expected = np.array([[1, 0], [1 / (1 + np.exp(-1)), 1 / (1 + np.e)], [1, 0], [0, 1], [0.5, 0.5]])
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(log_y[0], [0.0, -1000.0], rtol=1e-6)
    np.testing.assert_allclose(log_y[2], [0.0, -2e30], rtol=1e-6)


@pytest.mark.parametrize("name", ROWWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rowwise_out_honoured_and_inputs_untouched(name, dtype):
    r = rng(13)
    x = r.normal(size=(7, 17)).astype(dtype)
    dy = r.normal(size=(7, 17)).astype(dtype)
    f, df = forward(name), backward(name)
    check = unchanged(x, dy)
    fresh_y = f(x)
    fresh_dx = df(dy, x, fresh_y)
    assert fresh_y.dtype == dtype and fresh_dx.dtype == dtype
    y = np.full_like(x, np.nan)
    assert f(x, out=y) is y
    np.testing.assert_array_equal(y, fresh_y)
    dx = np.full_like(x, np.nan)
    assert df(dy, x, y, out=dx) is dx
    np.testing.assert_array_equal(dx, fresh_dx)
    check()
    in_place = x.copy()
    assert f(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, fresh_y)


# ----------------------------------------------------------------- losses

def make_loss_inputs(name, shape, r, dtype=np.float64):
    """(first argument, second argument) for each loss."""
    n, c = shape
    logits = r.normal(scale=2.0, size=shape).astype(dtype)
    if name == "sparse_softmax_cross_entropy":
        return logits, r.integers(0, c, size=n).astype(np.int64)
    if name == "softmax_cross_entropy":
        # deliberately not normalised, to exercise the sum_c targets term
        return logits, r.uniform(0, 1, size=shape).astype(dtype)
    if name == "sigmoid_binary_cross_entropy":
        return logits, r.uniform(0, 1, size=shape).astype(dtype)
    return logits, r.normal(size=shape).astype(dtype)


def naive_loss(name, z, t):
    if name == "sparse_softmax_cross_entropy":
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return np.mean(-np.log(p[np.arange(len(t)), t]))
    if name == "softmax_cross_entropy":
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return np.mean(-(t * np.log(p)).sum(axis=1))
    if name == "sigmoid_binary_cross_entropy":
        s = 1 / (1 + np.exp(-z))
        return np.mean(-t * np.log(s) - (1 - t) * np.log(1 - s))
    return np.mean((z - t) ** 2)


LOSSES = [
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "mean_squared_error",
]
LOSS_SHAPES = [(1, 1), (1, 7), (7, 3), (17, 129), (129, 2)]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
def test_loss_gradient_finite_differences(name, shape):
    z, t = make_loss_inputs(name, shape, rng(14))
    loss_fn = getattr(R, name)
    loss, grad = loss_fn(z, t)
    assert isinstance(loss, float)
    check_gradient(grad, lambda zz: loss_fn(zz, t, need_grad=False)[0], z)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
def test_loss_value_matches_textbook(name, shape):
    z, t = make_loss_inputs(name, shape, rng(15))
    loss, _ = getattr(R, name)(z, t)
    assert loss == pytest.approx(naive_loss(name, z, t), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_out_honoured_and_inputs_untouched(name, dtype):
    z, t = make_loss_inputs(name, (7, 17), rng(16), dtype)
    loss_fn = getattr(R, name)
    check = unchanged(z, t)
    loss, fresh = loss_fn(z, t)
    assert fresh.dtype == dtype
    out = np.full_like(z, np.nan)
    loss_out, grad = loss_fn(z, t, out)
    assert grad is out
    assert loss_out == loss
    np.testing.assert_array_equal(out, fresh)
    loss_only, none = loss_fn(z, t, need_grad=False)
    assert none is None and loss_only == loss
    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_logits_200_apart(dtype):
    logits = np.array([[200.0, 0.0], [0.0, 200.0]], dtype=dtype)
    labels = np.array([1, 0], dtype=np.int64)
    onehot = np.eye(2, dtype=dtype)[labels]
    expected_grad = np.array([[1.0, -1.0], [-1.0, 1.0]]) / 2
    for loss, grad in [
        R.sparse_softmax_cross_entropy(logits, labels),
        R.softmax_cross_entropy(logits, onehot),
    ]:
        assert loss == pytest.approx(200.0, rel=1e-6)
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)

    # each element is confidently wrong by 200: loss 200, gradient +-1 / 2
    z = np.array([[200.0, -200.0]], dtype=dtype)
    loss, grad = R.sigmoid_binary_cross_entropy(z, np.array([[0.0, 1.0]], dtype=dtype))
    assert loss == pytest.approx(200.0, rel=1e-6)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, [[0.5, -0.5]], rtol=1e-6)


@pytest.mark.parametrize("name", LOSSES[:3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_logit_losses_finite_at_1e30(name, dtype):
    logits = np.array([[1e30, -1e30], [-1e30, 1e30], [1e30, 1e30]], dtype=dtype)
    labels = np.array([1, 1, 0], dtype=np.int64)
    second = labels if name == "sparse_softmax_cross_entropy" else np.eye(2, dtype=dtype)[labels]
    with warnings.catch_warnings(), strict_numerics():
        warnings.simplefilter("error")
        loss, grad = getattr(R, name)(logits, second)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert grad.dtype == dtype


# -------------------------------------------------------------- optimizers

@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("shape", [(1,), (7, 17), (129,)])
def test_sgd_momentum_three_steps(nesterov, shape):
    r = rng(17)
    lr, mu = 0.05, 0.9
    param = r.normal(size=shape)
    velocity = np.zeros(shape)
    grads = [r.normal(size=shape) for _ in range(3)]
    p, v = param.copy(), velocity.copy()
    for g in grads:
        check = unchanged(g)
        assert R.sgd_update(param, g, velocity, lr, momentum=mu, nesterov=nesterov) is None
        check()
        v = mu * v - lr * g
        p = p + (mu * v - lr * g if nesterov else v)
        np.testing.assert_allclose(velocity, v, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(param, p, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_plain(dtype):
    r = rng(18)
    param = r.normal(size=(7, 17)).astype(dtype)
    grad = r.normal(size=(7, 17)).astype(dtype)
    expected = param - dtype(0.1) * grad
    R.sgd_update(param, grad, None, 0.1)
    assert param.dtype == dtype
    np.testing.assert_allclose(param, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_first_step_is_learning_rate_times_sign(dtype):
    r = rng(19)
    lr = 1e-3
    grad = (r.choice([-1.0, 1.0], size=129) * r.uniform(0.1, 10, size=129)).astype(dtype)
    param = r.normal(size=129).astype(dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    before = param.copy()
    R.adam_update(param, grad, m, v, lr, 0.9, 0.999, 1e-7, 1)
    assert param.dtype == dtype
    moved = before.astype(np.float64) - param
    # exact value is lr * g / (|g| + eps / sqrt(1 - beta_2)), within 3e-5 of lr
    np.testing.assert_allclose(moved, lr * np.sign(grad), rtol=1e-4 if dtype == np.float64 else 2e-3)
    np.testing.assert_allclose(m, 0.1 * grad, rtol=1e-6)
    np.testing.assert_allclose(v, 0.001 * grad.astype(np.float64) ** 2, rtol=1e-6)


def test_adam_equals_paper_form_with_epsilon_hat():
    """Keras' folded form == Algorithm 1 with eps = eps_hat / sqrt(1 - beta_2**t)."""
    r = rng(20)
    lr, b1, b2, eps_hat = 0.01, 0.9, 0.999, 1e-3  # large eps so it matters
    param = r.normal(size=(7, 17))
    m, v = np.zeros_like(param), np.zeros_like(param)
    p_ref, m_ref, v_ref = param.copy(), m.copy(), v.copy()
    for t in range(1, 5):
        g = r.normal(scale=1e-3, size=param.shape)
        R.adam_update(param, g, m, v, lr, b1, b2, eps_hat, t)
        m_ref = b1 * m_ref + (1 - b1) * g
        v_ref = b2 * v_ref + (1 - b2) * g * g
        m_hat = m_ref / (1 - b1**t)
        v_hat = v_ref / (1 - b2**t)
        eps = eps_hat / np.sqrt(1 - b2**t)
        p_ref = p_ref - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(param, p_ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(m, m_ref, rtol=1e-12)
        np.testing.assert_allclose(v, v_ref, rtol=1e-12)
