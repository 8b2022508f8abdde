"""Numerics at the edges, on both backends: huge and infinite logits into softmax, log-softmax and
the cross-entropies; sigmoid and tanh saturated; activations and Dense at the float32 limits (IEEE
results, subnormals kept: importing fastnn never switches on flush-to-zero); NaN in one input row
stays in that row.

The documented result for infinite logits, on both backends: a row with k logits at +inf has
softmax 1/k on each of them and 0 elsewhere (the limit as those logits grow together), its
log-softmax is -log(k) there and -inf elsewhere, and the cross-entropies take the same limit
(finite gradients, loss 0 or log(k) when the target sits on the +inf logits, +inf otherwise); a row
of only -inf has no distribution and gives NaN, like a NaN logit.
"""
import json
import math

import numpy as np
import pytest

import fastnn
from fastnn import ops, optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import BACKENDS, blobs, classifier, kernels_of, run_python, same_bits


HUGE_ROWS = [[1000.0, 0.0], [-1000.0, -1001.0], [1e30, -1e30], [-1e30, 1e30], [1e30, 1e30],
             [-1e30, -1e30], [0.0, 1e30]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_exact_finite_softmax_and_cross_entropy(backend, dtype):
    """Softmax rows sum to 1 and equal the float64 value of the shifted formula; log-softmax, the
    sparse and dense cross-entropies and their gradients are finite and exact, both backends.
    (test_kernels/test_loss_kernels check finiteness on the native kernels; this pins the values.)"""
    z = np.array(HUGE_ROWS, dtype)
    z64 = z.astype(np.float64)
    shifted = z64 - z64.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    want_log = shifted - lse
    want = np.exp(want_log)
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)

    probs = ops.softmax(z)
    assert probs.dtype == dtype and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(probs, want, **tol)
    log_probs = ops.log_softmax(z)
    assert np.isfinite(log_probs).all()
    np.testing.assert_allclose(log_probs, want_log, **tol)

    n = len(z)
    for label in (0, 1):
        labels = np.full(n, label)
        loss, grad = ops.sparse_softmax_cross_entropy(z, labels)
        assert math.isfinite(loss) and np.isfinite(grad).all()
        assert loss == pytest.approx(-want_log[:, label].mean(), rel=tol["rtol"])
        onehot = np.eye(2, dtype=dtype)[labels]
        np.testing.assert_allclose(grad, (want - onehot) / n, rtol=tol["rtol"], atol=1e-300)
        dense_loss, dense_grad = ops.softmax_cross_entropy(z, onehot)
        assert dense_loss == pytest.approx(loss, rel=tol["rtol"])
        np.testing.assert_allclose(dense_grad, grad, rtol=tol["rtol"], atol=1e-300)


INF = np.inf


# row, expected softmax (None: a NaN row), expected log-softmax
INF_CASES = {
    "one_pos_inf": ([INF, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -INF, -INF]),
    "two_pos_inf": ([INF, -3.0, INF, 0.0], [0.5, 0.0, 0.5, 0.0],
                    [-math.log(2), -INF, -math.log(2), -INF]),
    "pos_and_neg_inf": ([-INF, INF, 5.0], [0.0, 1.0, 0.0], [-INF, 0.0, -INF]),
    "all_pos_inf": ([INF, INF], [0.5, 0.5], [-math.log(2), -math.log(2)]),
    "neg_inf_beside_finite": ([-INF, 0.0, 0.0], [0.0, 0.5, 0.5], [-INF, -math.log(2), -math.log(2)]),
    "all_neg_inf": ([-INF, -INF, -INF], None, None),
    "nan_beside_pos_inf": ([INF, np.nan, 0.0], None, None),
}


def _check_row(got, want, dtype):
    if want is None:
        assert np.isnan(got).all(), f"expected a NaN row, got {got}"
    else:
        np.testing.assert_allclose(got, np.array(want, dtype), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(INF_CASES))
def test_infinite_logits_softmax_and_log_softmax_documented_result(case, dtype):
    """Each row alone and inside a batch of finite rows (so the native row loop and the numpy
    vectorised form both meet it, with 300 rows to enter the parallel path): the documented
    limit, or NaN for an all -inf row, identical rows elsewhere, and both backends agree."""
    row, want_p, want_log = INF_CASES[case]
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(300, len(row))).astype(dtype)
    batch[137] = row
    results = {}
    for name in BACKENDS:
        with fastnn.backend_scope(name):
            probs, log_probs = ops.softmax(batch), ops.log_softmax(batch)
            alone = ops.softmax(np.array([row], dtype)), ops.log_softmax(np.array([row], dtype))
        _check_row(probs[137], want_p, dtype)
        _check_row(log_probs[137], want_log, dtype)
        _check_row(alone[0][0], want_p, dtype)
        _check_row(alone[1][0], want_log, dtype)
        finite = np.delete(np.arange(300), 137)
        assert np.isfinite(probs[finite]).all() and np.isfinite(log_probs[finite]).all()
        results[name] = probs, log_probs
    for a, b in zip(results["native"], results["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(INF_CASES))
def test_infinite_logits_cross_entropy_documented_result(case, dtype):
    """Sparse and dense softmax cross-entropy on an infinite row: loss -log_softmax[label] from the
    documented limit (0 or log k on a +inf logit, +inf elsewhere), gradient (softmax - onehot)/N,
    finite except on the NaN rows; a target of 0 on a -inf logit counts 0 (0 log 0 = 0)."""
    row, want_p, want_log = INF_CASES[case]
    z = np.array([row], dtype)
    c = len(row)
    for label in range(c):
        onehot = np.eye(c, dtype=dtype)[[label]]
        got = {}
        for name in BACKENDS:
            with fastnn.backend_scope(name):
                got[name] = (ops.sparse_softmax_cross_entropy(z, np.array([label])),
                             ops.softmax_cross_entropy(z, onehot))
        for name, ((loss, grad), (dense_loss, dense_grad)) in got.items():
            if want_p is None:
                assert math.isnan(loss) and math.isnan(dense_loss), name
                assert np.isnan(grad).all() and np.isnan(dense_grad).all(), name
                continue
            want_loss = -want_log[label]
            assert loss == pytest.approx(want_loss, rel=1e-6, abs=1e-12), (name, label)
            assert dense_loss == pytest.approx(want_loss, rel=1e-6, abs=1e-12), (name, label)
            want_grad = np.array(want_p, dtype) - onehot[0]
            np.testing.assert_allclose(grad[0], want_grad, rtol=1e-6, atol=0)
            np.testing.assert_allclose(dense_grad[0], want_grad, rtol=1e-6, atol=0)
            assert np.isfinite(grad).all() and np.isfinite(dense_grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_at_infinite_logits(backend, dtype):
    """sigmoid cross-entropy at z = +-inf: 0 when the target agrees exactly, +inf otherwise,
    never NaN; the gradient sigmoid(z) - t is finite."""
    z = np.array([[INF, INF, -INF, -INF, INF]], dtype)
    t = np.array([[1, 0, 0, 1, 0.5]], dtype)
    want = [0.0, INF, 0.0, INF, INF]
    for i in range(z.shape[1]):
        loss, grad = ops.sigmoid_binary_cross_entropy(z[:, i:i + 1], t[:, i:i + 1])
        assert loss == want[i], (i, loss)
        assert grad[0, 0] == (1.0 if z[0, i] > 0 else 0.0) - t[0, i]
    loss, grad = ops.sigmoid_binary_cross_entropy(z[:, :1], t[:, :1])
    assert loss == 0.0 and np.isfinite(grad).all()
    loss, grad = ops.sigmoid_binary_cross_entropy(z, t)
    assert loss == INF and np.isfinite(grad).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy's matmul: inf
def test_model_with_infinite_logits_does_not_crash_or_hang(backend):
    """A model whose weights make a logit +inf: predict gives the documented one-hot row,
    evaluate a finite or infinite loss (never an exception), on both backends."""
    model = classifier(features=2, hidden=2, classes=3, metrics=())
    w = [np.zeros_like(a) for a in model.get_weights()]
    w[0][0, 0] = 1.0                     # hidden unit 0 = relu(x0)
    w[2][0, 1] = np.float32(3e38)        # logit 1 = 3e38 * hidden 0 -> +inf for x0 >= 2
    model.set_weights(w)
    x = np.array([[4.0, 0.0], [0.0, 1.0]], np.float32)
    probs = model.predict(x)
    np.testing.assert_array_equal(probs[0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(probs[1], 1 / 3, rtol=1e-6)
    assert model.evaluate(x, np.array([1, 0])) == pytest.approx(math.log(3) / 2, rel=1e-6)
    assert model.evaluate(x, np.array([0, 0])) == INF


SATURATING = np.array([89, -89, 100, -100, 1e4, -1e4], np.float32)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_tanh_saturate_without_nan(backend, name, dtype):
    """Forward equals the float64 value (rounded; sigmoid(-89) is a float32 subnormal), the
    derivative is finite, in [0, 1/4] or [0, 1], and exactly 0 where the output is exactly +-1."""
    k = kernels_of(backend)
    x = SATURATING.astype(dtype)
    y = getattr(ops, name)(x)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):  # exp(1e4) = inf gives the right limit 0
        want = 1 / (1 + np.exp(-x64)) if name == "sigmoid" else np.tanh(x64)
    assert y.dtype == dtype and not np.isnan(y).any()
    np.testing.assert_allclose(y, want.astype(dtype), rtol=1e-6, atol=np.finfo(dtype).smallest_subnormal)
    dx = getattr(k, name + "_backward")(np.ones_like(x), x, y)
    assert np.isfinite(dx).all() and (dx >= 0).all() and (dx <= (0.25 if name == "sigmoid" else 1)).all()
    assert (dx[np.abs(y) == 1] == 0).all()


def test_training_through_saturated_units_stays_finite(backend):
    """A sigmoid-output model (fused binary cross-entropy) and a tanh hidden layer driven to
    pre-activations of about 1e4: train_on_batch gives a finite loss and finite weights."""
    set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy")
    w = model.get_weights()
    model.set_weights([np.full_like(w[0], 100.0), w[1], np.full_like(w[2], 2500.0), w[3]])
    x = np.array([[100.0, 1, 1], [-100, -1, -1], [89, 0, 0], [-89, 0, 0]], np.float32)
    y = np.array([0, 1, 1, 0])
    for _ in range(3):
        loss = model.train_on_batch(x, y)
        assert math.isfinite(loss)
    assert all(np.isfinite(a).all() for a in model.get_weights())
    assert not np.isnan(model.predict(x)).any()


def test_predict_propagates_nan_row_by_row(backend):
    """A NaN in one input row makes that output row NaN and leaves the other rows bitwise as
    without it (test_models checks each hidden activation; here softmax and batch norm)."""
    model = classifier(norm=True)
    x, y = blobs(n=16)
    model.fit(x, y, batch_size=8, verbose=0)
    clean = model.predict(x)
    x_nan = x.copy()
    x_nan[5, 2] = np.nan
    out = model.predict(x_nan)
    assert np.isnan(out[5]).all()
    keep = np.arange(16) != 5
    assert same_bits(out[keep], clean[keep])


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus", "elu", "selu", "leaky_relu",
                                  "linear"])
def test_activations_at_float32_limits_are_ieee(backend, name):
    """At +-1e38 and +-3e38 (near FLT_MAX) and at subnormals: the value of the float64 formula
    rounded to float32 (so 3e38 * SELU_SCALE overflows to inf as IEEE says), and subnormal
    inputs stay subnormal where the function is the identity near 0."""
    tiny = np.finfo(np.float32).smallest_subnormal
    x = np.array([1e38, -1e38, 3e38, -3e38, tiny, -tiny, 1e-40, -1e-40, 0.0], np.float32)
    x64 = x.astype(np.float64)
    formulas = {
        "relu": lambda v: np.maximum(v, 0),
        "sigmoid": lambda v: 0.5 * (1 + np.tanh(v / 2)),
        "tanh": np.tanh,
        "softplus": lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v))),
        "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0))),
        "selu": lambda v: np.float32(fastnn.reference.activations.SELU_SCALE) * np.where(
            v > 0, v, fastnn.reference.activations.SELU_ALPHA * np.expm1(np.minimum(v, 0))),
        "leaky_relu": lambda v: np.where(v > 0, v, np.float32(0.3) * v),
        "linear": lambda v: v,
    }
    with np.errstate(over="ignore"):
        want = formulas[name](x64).astype(np.float32)
    got = getattr(ops, name)(x)
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)
    assert (np.isinf(got) == np.isinf(want)).all()
    if name in ("relu", "linear", "leaky_relu", "elu", "selu", "tanh"):
        positive_tiny = (x > 0) & (x < 1e-37)
        assert (got[positive_tiny] != 0).all(), "a subnormal was flushed to zero"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy's matmul: inf
def test_dense_at_float32_limits_is_ieee(backend):
    """Sums that reach FLT_MAX overflow to +-inf, sums that stay below do not, inf - inf is NaN,
    and products in the subnormal range are kept (no flush to zero)."""
    k = kernels_of(backend)
    x = np.array([[1e38, 1e38], [3e38, 3e38], [3e38, -3e38], [1e-38, 0.0], [-3e38, -3e38]], np.float32)
    w = np.array([[1.0, 1e-3], [1.0, 0.0]], np.float32)
    got = k.dense_forward(x, w, None)
    with np.errstate(over="ignore", invalid="ignore"):
        want = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    assert np.isposinf(got[1, 0]) and np.isneginf(got[4, 0])
    assert got[0, 0] == np.float32(2e38)
    assert got[3, 1] != 0 and got[3, 1] == pytest.approx(1e-41, rel=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


_FTZ_PROBE = """
    import json, numpy as np
    def probe():
        tiny = np.float32(1e-45)
        return [float(tiny * np.float32(1)), float(np.float32(1e-38) / np.float32(1e3)),
                float(np.float64(1e-310) * 1.0), float(np.float32(2e-38) - np.float32(1.5e-38))]
    report = {"before": probe()}
    import fastnn
    report["after_import"] = probe()
    fastnn.set_num_threads(2)
    k = fastnn.backend._core
    x = np.full((300, 300), 1e-38, np.float32)         # parallel GEMM: products of 1e-41
    w = np.eye(300, dtype=np.float32) * np.float32(1e-3)
    report["gemm"] = float(np.abs(k.dense_forward(x, w, None)).min())
    sub = np.full(1 << 17, 1e-40, np.float32)            # parallel elementwise on subnormal inputs
    report["tanh"] = float(np.abs(k.tanh_forward(sub)).min())
    report["relu"] = float(np.abs(k.relu_forward(sub)).min())
    logits = np.zeros((1000, 2), np.float32); logits[:, 0] = 100.0  # softmax tail exp(-100) ~ 4e-44
    report["softmax_tail"] = float(k.softmax_forward(logits)[:, 1].min())
    report["after_kernels"] = probe()
    import threading
    seen = []
    t = threading.Thread(target=lambda: seen.append(probe())); t.start(); t.join()
    report["new_thread"] = seen[0]
    print(json.dumps(report))
"""


def test_importing_fastnn_keeps_subnormals():
    """In a fresh process: subnormal arithmetic before and after ``import fastnn``, after native
    kernels ran on 2 OpenMP threads (whose results must themselves keep subnormals) and in a new
    Python thread. Flush-to-zero or denormals-are-zero would turn these into 0."""
    out = run_python(_FTZ_PROBE)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    expected = [1.401298464324817e-45, float(np.float32(1e-38) / np.float32(1e3)), 1e-310,
                float(np.float32(2e-38) - np.float32(1.5e-38))]
    for key in ("before", "after_import", "after_kernels", "new_thread"):
        assert report[key] == expected, f"{key}: {report[key]}"
    assert report["gemm"] == pytest.approx(1e-41, rel=1e-3)
    assert report["tanh"] == pytest.approx(1e-40, rel=1e-3) and report["relu"] == pytest.approx(1e-40, rel=1e-3)
    assert report["softmax_tail"] == pytest.approx(math.exp(-100), rel=1e-2)
