"""Reliability (issue 7, "Bad inputs and faults"): one test, or a small group, per numbered item.

Each test name starts with the item number (``test_07_...`` proves item 7). Where another test
file already proves part of an item, the docstring names it and the test here covers what it
leaves out (the numpy backend, other entry points, the exact result). Everything runs on both
backends where the item concerns numerics or the Python API; process-level items (12, 15, 17's
killed save) run in subprocesses with timeouts so that a hang fails the test instead of the run.

The documented result for infinite logits (item 2), on both backends: a row with k logits at +inf
has softmax 1/k on each of them and 0 elsewhere (the limit as those logits grow together), its
log-softmax is -log(k) there and -inf elsewhere, and the cross-entropies take the same limit
(finite gradients, loss 0 or log(k) when the target sits on the +inf logits, +inf otherwise); a row
of only -inf has no distribution and gives NaN, like a NaN logit.
"""
import gc
import hashlib
import json
import math
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, losses, ops, optimizers
from fastnn.layers import BatchNormalization, Dense, Dropout, Flatten
from fastnn.models import Sequential, load_model
from fastnn.saving import ModelFileError
from fastnn.utils import set_random_seed

BACKENDS = ["native", "numpy"]
SUBPROCESS_TIMEOUT = 120  # seconds; a child that hangs is killed and the test fails


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test on each backend (conftest restores the previous one afterwards)."""
    fastnn.set_backend(request.param)
    return request.param


def _kernels(name):
    """The kernel module of backend ``name``."""
    return fastnn.backend._core if name == "native" else fastnn.reference


# -- shared helpers ------------------------------------------------------------------------------
def classifier(seed=0, features=4, hidden=8, classes=3, optimizer=None, norm=False, dropout=False,
               metrics=("accuracy",)):
    """A small compiled ReLU/softmax classifier (optionally with batch norm and dropout)."""
    set_random_seed(seed)
    stack = [Dense(hidden, activation="relu", input_shape=(features,))]
    if norm:
        stack.append(BatchNormalization())
    if dropout:
        stack.append(Dropout(0.25, seed=3))
    stack.append(Dense(classes, activation="softmax"))
    model = Sequential(stack)
    model.compile(optimizer=optimizer or optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def blobs(n=24, features=4, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


def model_state(model):
    """Everything a failed call must leave bitwise unchanged (item 13): the bytes of every weight
    (moving statistics included), the optimizer's iterations and slot variables from
    ``optimizer.get_state()``, the model, layer, optimizer and loss configurations, the layers'
    extra state (dropout's random stream) and whether the model is built."""
    opt = model.optimizer
    iterations, slots = opt.get_state() if opt is not None else (None, [])
    as_bytes = lambda arrays: [(a.dtype.str, a.shape, a.tobytes()) for a in arrays]  # noqa: E731
    as_json = lambda value: json.dumps(value, sort_keys=True, default=repr)  # noqa: E731
    return {
        "built": model.built,
        "weights": as_bytes(model.weights),
        "iterations": iterations,
        "slots": as_bytes(slots),
        "model_config": as_json(model.get_config()),
        "optimizer": None if opt is None else (type(opt).__name__, as_json(opt.get_config())),
        "loss": None if model.loss is None else (type(model.loss).__name__,
                                                 as_json(model.loss.get_config())),
        "layer_states": as_json([layer.get_state() for layer in model.layers]),
        "trainable": [layer.trainable for layer in model.layers],
    }


NUMERIC_STATE = ("weights", "iterations", "slots", "layer_states")


def numeric_state(model):
    """The part of ``model_state`` that two equally trained models share (not names)."""
    state = model_state(model)
    return {key: state[key] for key in NUMERIC_STATE}


def assert_state_unchanged(model, before, what="a call that raised"):
    after = model_state(model)
    for key in before:
        assert after[key] == before[key], f"{what} changed the model's {key}"


def raises_and_keeps(model, exc, call, *patterns):
    """``call(model)`` raises ``exc`` whose message matches every regex in ``patterns``, and the
    model is bitwise what it was before."""
    before = model_state(model)
    with pytest.raises(exc) as info:
        call(model)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in message: {info.value}"
    assert_state_unchanged(model, before)
    return info.value


def array_digest(a):
    """Hash of an array's bytes, dtype, shape, strides and flags (item 8: never modified)."""
    h = hashlib.sha256()
    h.update(repr((a.dtype.str, a.shape, a.strides, a.flags.c_contiguous, a.flags.f_contiguous,
                   a.flags.writeable, a.flags.aligned, a.flags.owndata)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def weights_equal(m1, m2):
    return all(same_bits(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))


class KernelSpy:
    """Records every kernel the model asks the active backend for (item 4: "before any kernel
    runs"). Installed on ``backend.kernels`` and on the losses' own lookup."""

    def __init__(self, monkeypatch):
        self.calls = []
        real_kernels, real_loss_kernels = fastnn.backend.kernels, losses._kernels
        spy = self

        class Proxy:
            def __init__(self, module):
                self._module = module

            def __getattr__(self, name):
                spy.calls.append(name)
                return getattr(self._module, name)

        monkeypatch.setattr(fastnn.backend, "kernels", lambda: Proxy(real_kernels()))
        monkeypatch.setattr(losses, "_kernels", lambda: Proxy(real_loss_kernels()))


def run_python(code, *args, timeout=SUBPROCESS_TIMEOUT):
    """Run ``code`` with ``args`` in a fresh interpreter (the installed fastnn, not the source
    tree); returns the CompletedProcess. A child still running after ``timeout`` s fails the test."""
    env = {**os.environ, "PYTHONPATH": ""}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                              capture_output=True,
                              text=True, env=env, cwd="/", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child process hung (killed after {timeout} s); stderr: {exc.stderr!r}")


# ================================================================================================
# 1. Huge finite logits into softmax / cross-entropy: finite, rows sum to 1
# ================================================================================================
HUGE_ROWS = [[1000.0, 0.0], [-1000.0, -1001.0], [1e30, -1e30], [-1e30, 1e30], [1e30, 1e30],
             [-1e30, -1e30], [0.0, 1e30]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_01_huge_logits_give_exact_finite_softmax_and_cross_entropy(backend, dtype):
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


# ================================================================================================
# 2. +inf logits and rows of -inf: one documented result, the same on both backends
# ================================================================================================
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
def test_02_infinite_logits_softmax_and_log_softmax_documented_result(case, dtype):
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
def test_02_infinite_logits_cross_entropy_documented_result(case, dtype):
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
def test_02_binary_cross_entropy_at_infinite_logits(backend, dtype):
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
def test_02_model_with_infinite_logits_does_not_crash_or_hang(backend):
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


# ================================================================================================
# 3. sigmoid / tanh at +-89, +-100, +-1e4 in float32: no NaN, finite gradients
# ================================================================================================
SATURATING = np.array([89, -89, 100, -100, 1e4, -1e4], np.float32)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_03_sigmoid_tanh_saturate_without_nan(backend, name, dtype):
    """Forward equals the float64 value (rounded; sigmoid(-89) is a float32 subnormal), the
    derivative is finite, in [0, 1/4] or [0, 1], and exactly 0 where the output is exactly +-1."""
    k = _kernels(backend)
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


def test_03_training_through_saturated_units_stays_finite(backend):
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


# ================================================================================================
# 4. Labels equal to the class count, negative or non-integer: ValueError before any kernel runs
# ================================================================================================
LABEL_CASES = {
    "equal_to_class_count": (np.array([0, 1, 3, 2]), r"\b3\b"),
    "huge": (np.array([0, 1, 2**40, 2]), str(2**40)),
    "negative": (np.array([0, -1, 1, 2]), r"-1"),
    "fraction": (np.array([0.0, 1.5, 1.0, 2.0]), r"1\.5"),
    "nan": (np.array([0.0, np.nan, 1.0, 2.0]), r"nan"),
    "uint8_too_big": (np.array([0, 1, 2, 200], np.uint8), r"200"),
    "float_too_big": (np.array([0.0, 1.0, 3.0, 2.0]), r"3\.0"),
}


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "validation"])
@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_04_bad_labels_raise_naming_label_and_range_before_any_kernel(backend, case, method,
                                                                      monkeypatch):
    labels, shown = LABEL_CASES[case]
    model = classifier(features=2, hidden=4, classes=3)
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # optimizer state exists
    calls = {
        "fit": lambda m: m.fit(x, labels, epochs=1, verbose=0),
        "evaluate": lambda m: m.evaluate(x, labels),
        "train_on_batch": lambda m: m.train_on_batch(x, labels),
        "validation": lambda m: m.fit(x, np.array([0, 1, 2, 0]), verbose=0, validation_data=(x, labels)),
    }
    spy = KernelSpy(monkeypatch)
    raises_and_keeps(model, ValueError, calls[method], shown, r"\[0, 3\)")
    assert spy.calls == [], f"kernels ran before the labels were rejected: {spy.calls}"
    model.evaluate(x, np.array([0, 1, 2, 0]))
    assert spy.calls, "the spy must see the kernels of a valid call"


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0, 2**40]])
def test_04_kernel_level_labels_out_of_range_on_both_backends(labels):
    """ops.sparse_softmax_cross_entropy itself: the native binding checks every label; the loss
    object checks before the numpy twin would index out of bounds (or wrap a negative label)."""
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ops.sparse_softmax_cross_entropy(z, np.array(labels))
    for name in BACKENDS:
        with fastnn.backend_scope(name), pytest.raises(ValueError, match=r"\[0, 3\)"):
            losses.SparseCategoricalCrossentropy()(np.array(labels), np.full((2, 3), 1 / 3, np.float32))


# ================================================================================================
# 5. Wrong feature count, 0-d / 1-d / 3-d x, len(x) != len(y): ValueError naming both shapes
# ================================================================================================
SHAPE_CASES = {
    "features": (lambda x: x[:, :3], [r"\b4 features\b|\(N, 4\)|\(None, 4\)", r"\(6, 3\)"]),
    "one_d": (lambda x: x[0], [r"\(N, 4\)", r"\(4,\)"]),
    "three_d": (lambda x: x.reshape(6, 2, 2), [r"\(None, 4\)", r"\(6, 2, 2\)"]),
    "zero_d": (lambda x: np.float32(1.0), [r"\(N, 4\)", r"shape \(\)"]),
}
SHAPE_METHODS = {
    "fit": lambda m, x, y: m.fit(x, y, verbose=0),
    "evaluate": lambda m, x, y: m.evaluate(x, y),
    "predict": lambda m, x, y: m.predict(x),
    "train_on_batch": lambda m, x, y: m.train_on_batch(x, y),
    "call": lambda m, x, y: m(x),
}


@pytest.mark.parametrize("method", sorted(SHAPE_METHODS))
@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_05_wrong_input_shapes_name_expected_and_received(backend, case, method):
    make, patterns = SHAPE_CASES[case]
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    raises_and_keeps(model, ValueError, lambda m: SHAPE_METHODS[method](m, make(x), y), *patterns)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
@pytest.mark.parametrize("n_y", [5, 7, 0])
def test_05_len_x_differs_from_len_y(backend, method, n_y):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    y_bad = np.resize(y, n_y)
    raises_and_keeps(model, ValueError, lambda m: SHAPE_METHODS[method](m, x, y_bad),
                     r"\b6 inputs\b", rf"\({n_y},\)")


def test_05_unbuilt_model_keeps_unbuilt_after_a_shape_error(backend):
    """A model without an input shape learns it from the first batch, unless that batch is bad."""
    set_random_seed(0)
    model = Sequential([Dense(3), Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    x, y = blobs(n=6)
    raises_and_keeps(model, ValueError, lambda m: m.fit(x[0], y, verbose=0), r"\(4,\)")
    # no input shape to compare with: the first layer names what it needs and what it got
    raises_and_keeps(model, ValueError, lambda m: m.fit(x.reshape(6, 2, 2), y, verbose=0),
                     r"\(batch, features\)", r"\(None, 2, 2\)")
    raises_and_keeps(model, ValueError, lambda m: m.fit(x, y[:5], verbose=0), r"\b6\b", r"\(5,\)")
    assert not model.built


# ================================================================================================
# 6. Predictions (N, 1) against targets (N,): never a silent (N, N) broadcast
# ================================================================================================
REGRESSION_LOSSES = {
    "mse": lambda d: d * d,
    "mae": np.abs,
    "huber": lambda d: np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5),
    "log_cosh": lambda d: np.log(np.cosh(d)),
}


@pytest.mark.parametrize("name", sorted(REGRESSION_LOSSES))
def test_06_column_predictions_against_flat_targets_give_the_per_sample_mean(backend, name):
    """The loss object, evaluate, train_on_batch and the compiled metrics all equal
    mean_n f(pred_n - y_n); the broadcast mean over all (N, N) pairs is a different number here
    (checked, so the test can tell them apart). test_losses / test_models prove MSE on one path."""
    per_element = REGRESSION_LOSSES[name]
    y = np.array([0.5, -1.0, 2.0, 4.0, 0.0], np.float32)
    pred = np.array([[1.0], [0.0], [2.5], [1.0], [-0.5]], np.float32)
    want = float(np.mean(per_element(pred[:, 0].astype(np.float64) - y)))
    broadcast = float(np.mean(per_element(pred.astype(np.float64) - y)))
    assert abs(broadcast - want) > 0.1
    loss = losses.get(name)
    assert loss(y, pred) == pytest.approx(want, rel=1e-6)
    assert loss(y[:, None], pred[:, 0]) == pytest.approx(want, rel=1e-6)

    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss=name, metrics=["mse", "mae"])
    x = np.random.default_rng(3).normal(size=(5, 2)).astype(np.float32)
    out = model.predict(x)[:, 0].astype(np.float64)
    want_model = float(np.mean(per_element(out - y)))
    logs = model.evaluate(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(want_model, rel=1e-5)
    assert logs["mse"] == pytest.approx(np.mean((out - y) ** 2), rel=1e-5)
    assert logs["mae"] == pytest.approx(np.mean(np.abs(out - y)), rel=1e-5)
    first = model.train_on_batch(x, y)
    assert (first[0] if isinstance(first, list) else first) == pytest.approx(want_model, rel=1e-5)


def test_06_targets_that_do_not_match_the_output_raise(backend):
    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((5, 2), np.float32)
    raises_and_keeps(model, ValueError, lambda m: m.fit(x, np.zeros((5, 2)), verbose=0),
                     r"\(N, 1\)", r"\(5, 2\)")
    raises_and_keeps(model, ValueError, lambda m: m.evaluate(x, np.zeros((1, 5))), r"\b5\b", r"\(1, 5\)")
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        losses.MeanSquaredError()(np.zeros((5, 2)), np.zeros((5, 1)))
    assert fastnn.metrics.mean_squared_error(np.arange(3.0), np.arange(3.0)[:, None] + 1) == 1.0


# ================================================================================================
# 7. float64, int and bool inputs give the float32 results; object, string, complex: TypeError
# ================================================================================================
def _x_variants(x_small_ints):
    """Arrays holding the same values in other dtypes (values 0..3 are exact in every dtype)."""
    return {
        "float64": x_small_ints.astype(np.float64),
        "float16": x_small_ints.astype(np.float16),
        "int64": x_small_ints.astype(np.int64),
        "int8": x_small_ints.astype(np.int8),
        "uint8": x_small_ints.astype(np.uint8),
        "bool": (x_small_ints > 1),
        "list": x_small_ints.astype(int).tolist(),
    }


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "int8", "uint8", "bool", "list"])
def test_07_float64_int_bool_inputs_match_float32(backend, dtype):
    """Same predictions, evaluation and trained weights as the float32 array of the same values:
    bitwise, since the model converts once at the boundary. Labels as int32/uint8/float64 too."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, size=(12, 4)).astype(np.float32)
    variant = _x_variants(base)[dtype]
    as32 = (base > 1).astype(np.float32) if dtype == "bool" else base
    y = rng.integers(0, 3, 12)
    results = []
    for x, labels in ((as32, y), (variant, y.astype(np.int32)), (variant, y.astype(np.float64)),
                      (variant, y.astype(np.uint8))):
        model = classifier()
        set_random_seed(5)
        history = model.fit(x, labels, batch_size=4, epochs=2, verbose=0)
        results.append((model.predict(x), model.evaluate(x, labels), history.history["loss"],
                        model.get_weights()))
    for other in results[1:]:
        assert same_bits(other[0], results[0][0])
        assert other[1] == results[0][1] and other[2] == results[0][2]
        assert all(same_bits(a, b) for a, b in zip(other[3], results[0][3]))
    assert results[0][0].dtype == np.float32


def test_07_float64_ops_inputs_keep_float64_and_match_float32_within_tolerance(backend):
    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(7, 5))
    for fn in (ops.softmax, ops.log_softmax, ops.tanh, ops.sigmoid):
        y64, y32 = fn(x64), fn(x64.astype(np.float32))
        assert y64.dtype == np.float64 and y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(ops.softmax(x64.astype(int)), ops.softmax(x64.astype(int).astype(np.float32)))


BAD_DTYPES = {
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "complex64": lambda a: a.astype(np.complex64),
    "complex128": lambda a: a.astype(np.complex128),
    "datetime": lambda a: a.astype(np.int64).astype("datetime64[s]"),
    "list_of_str": lambda a: [["a"] * a.shape[1]] * len(a) if a.ndim == 2 else ["a"] * len(a),
}


@pytest.mark.parametrize("what", ["x", "y"])
@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
def test_07_object_string_complex_inputs_raise_type_error(backend, kind, what):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    bad = BAD_DTYPES[kind](x if what == "x" else y)
    calls = [lambda m: m.fit(bad, y, verbose=0), lambda m: m.evaluate(bad, y), lambda m: m.predict(bad),
             lambda m: m.train_on_batch(bad, y), lambda m: m(bad)] if what == "x" else \
        [lambda m: m.fit(x, bad, verbose=0), lambda m: m.evaluate(x, bad), lambda m: m.train_on_batch(x, bad)]
    for call in calls:
        raises_and_keeps(model, TypeError, call, r"dtype|array-like|numeric")
    with pytest.raises(TypeError):
        ops.softmax(BAD_DTYPES[kind](x))


# ================================================================================================
# 8. Awkward memory layouts give the contiguous results; user arrays are never modified
# ================================================================================================
def _layout(name, a):
    """(awkward view, C-contiguous copy with the same values) for the 2-D array ``a``."""
    if name == "transposed":
        view = np.ascontiguousarray(a.T).T
    elif name == "fortran":
        view = np.asfortranarray(a)
    elif name == "strided_columns":
        wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
        wide[:, ::2] = a
        view = wide[:, ::2]
    elif name == "strided_rows":
        tall = np.zeros((2 * a.shape[0], a.shape[1]), a.dtype)
        tall[1::2] = a
        view = tall[1::2]
    elif name == "reversed":
        view = a[::-1].copy()[::-1]
    elif name == "broadcast":
        view = np.broadcast_to(a[2], a.shape)
    elif name == "read_only":
        view = a.copy()
        view.flags.writeable = False
    elif name == "big_endian":
        view = a.astype(a.dtype.newbyteorder(">"))
    elif name == "misaligned":
        raw = bytearray(a.nbytes + 1)
        view = np.frombuffer(raw, a.dtype, count=a.size, offset=1).reshape(a.shape)
        view[...] = a
    else:
        raise AssertionError(name)
    return view, np.ascontiguousarray(view, dtype=view.dtype.newbyteorder("="))


LAYOUTS = ["transposed", "fortran", "strided_columns", "strided_rows", "reversed", "broadcast",
           "read_only", "big_endian", "misaligned"]


def _label_layout(name, y):
    if name in ("transposed", "fortran", "strided_columns"):
        return y
    view, _ = _layout(name, y[:, None])
    return view[:, 0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_08_awkward_layouts_match_contiguous_and_are_never_modified(backend, layout):
    """predict, evaluate, train_on_batch, fit (with shuffling and validation data), model(x) and
    the ops give bitwise the results of a contiguous copy, and every input hashes the same after
    the calls (bytes, strides and flags). test_ops covers the ops on other layouts."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 4)).astype(np.float32)
    x, x_copy = _layout(layout, base)
    y_base = rng.integers(0, 3, 10)
    y = _label_layout(layout, y_base)
    y_copy = np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("="))
    digests = [array_digest(a) for a in (x, y, x_copy, y_copy)]

    def run(xx, yy):
        model = classifier()
        out = [model.predict(xx), model(xx), model.evaluate(xx, yy), model.train_on_batch(xx, yy)]
        set_random_seed(9)
        hist = model.fit(xx, yy, batch_size=3, epochs=2, verbose=0, validation_data=(xx, yy))
        out += [hist.history, model.get_weights(), model.predict(xx, batch_size=4)]
        out += [ops.softmax(xx), ops.log_softmax(xx), ops.matmul(xx, xx.T),
                ops.dense_forward(xx, np.ones((4, 2), np.float32)),
                ops.sparse_softmax_cross_entropy(xx[:, :3], yy),
                ops.mean_squared_error(xx, xx[::-1] if layout != "broadcast" else xx)]
        return out

    awkward, contiguous = run(x, y), run(x_copy, y_copy)
    for a, b in zip(awkward, contiguous):
        if isinstance(a, np.ndarray):
            assert same_bits(a, b)
        elif isinstance(a, (list, tuple)) and a and isinstance(a[0], np.ndarray):
            assert all(same_bits(u, v) for u, v in zip(a, b))
        elif isinstance(a, tuple):  # (loss, grad)
            assert a[0] == b[0] and same_bits(a[1], b[1])
        else:
            assert a == b
    assert [array_digest(a) for a in (x, y, x_copy, y_copy)] == digests


def test_08_sample_weights_and_targets_are_not_modified(backend):
    """Regression targets, sample weights, class weights and validation triples come back
    untouched after fit / evaluate (the loss path scales gradients in place: never the user's)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    y = rng.normal(size=(9, 2)).astype(np.float32)
    w = rng.random(9).astype(np.float32)
    w.flags.writeable = True
    keep = [array_digest(a) for a in (x, y, w)]
    set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0, validation_data=(x, y, w))
    model.evaluate(x, y, sample_weight=w)
    assert [array_digest(a) for a in (x, y, w)] == keep
    labels = rng.integers(0, 3, 9)
    keep_labels = array_digest(labels)
    classifier(features=3).fit(x, labels, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, verbose=0)
    assert array_digest(labels) == keep_labels


def test_08_kernels_reject_misaligned_arrays_and_the_api_aligns_them():
    """A C-contiguous view at an odd byte offset would make the kernels load misaligned floats
    (undefined behaviour, caught by the sanitizer job): the bindings refuse it with a clear error,
    and the public functions hand the kernels an aligned copy instead."""
    from fastnn import _core as C

    def misaligned(a):
        view = np.frombuffer(b"\0" + a.tobytes(), a.dtype, a.size, offset=1).reshape(a.shape)
        assert not view.flags.aligned and view.flags.c_contiguous
        return view
    x = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)
    labels = np.array([3, 1, 0], np.int64)
    logits = np.eye(3, 4, dtype=np.float32)
    with pytest.raises(ValueError, match="aligned"):
        C.relu_forward(misaligned(x))
    with pytest.raises(ValueError, match="aligned"):
        C.sparse_softmax_cross_entropy(logits, misaligned(labels), None, True)
    np.testing.assert_array_equal(fastnn.ops.relu(misaligned(x)), np.maximum(x, 0))
    assert fastnn.ops.sparse_softmax_cross_entropy(logits, misaligned(labels))[0] == \
        fastnn.ops.sparse_softmax_cross_entropy(logits, labels)[0]


def test_09_finite_check_names_the_first_bad_value_in_a_later_block():
    """The check runs block by block (no mask as large as the data): a NaN or inf past the first
    block is still found, and the first one is named with its index."""
    x = np.zeros((3, fastnn.utils.FINITE_CHECK_BLOCK), np.float32)
    x[2, 5], x[2, 7] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at index \(2, 5\): inf\)"):
        fastnn.utils.check_finite(x, "x")
    fastnn.utils.check_finite(np.zeros((3, fastnn.utils.FINITE_CHECK_BLOCK + 1)), "x")  # no error


# ================================================================================================
# 9. NaN / inf passed to fit: ValueError; a loss turning NaN: TerminateOnNaN names epoch and batch;
#    predict propagates NaN
# ================================================================================================
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "y", "validation_x", "sample_weight"])
def test_09_non_finite_training_inputs_raise(backend, bad, where):
    """test_models covers x/y NaN on the native backend; here every non-finite value, the
    validation data and the sample weights, both backends, with the full state check."""
    set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model.fit(x, y, verbose=0)
    xb, yb, w = x.copy(), y.copy(), np.ones(8)
    {"x": xb, "y": yb, "validation_x": xb, "sample_weight": w}[where].flat[5] = bad
    call = {
        "x": lambda m: m.fit(xb, y, verbose=0),
        "y": lambda m: m.fit(x, yb, verbose=0),
        "validation_x": lambda m: m.fit(x, y, verbose=0, validation_data=(xb, y)),
        "sample_weight": lambda m: m.fit(x, y, verbose=0, sample_weight=w),
    }[where]
    raises_and_keeps(model, ValueError, call, r"NaN|nan|inf|finite")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the numpy twin's MSE
def test_09_loss_turning_nan_stops_with_a_message_naming_epoch_and_batch(backend, capsys):
    """SGD with a learning rate of 1e18 makes a linear model overflow within a few batches: the
    TerminateOnNaN message names the epoch and batch of the first non-finite loss, and no batch
    runs after it. Both backends stop at the same place."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32)) * 10
    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(4,))])
    model.compile(optimizer=optimizers.SGD(1e18), loss="mse")
    seen = []
    record = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
        (epoch_of[0], batch, logs["loss"])))
    epoch_of = [0]
    track = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epoch_of.__setitem__(0, epoch))
    model.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0,
              callbacks=[track, record, callbacks.TerminateOnNaN()])
    bad = [(e, b) for e, b, loss in seen if not math.isfinite(loss)]
    assert bad, "the learning rate did not make the loss diverge"
    epoch, batch = bad[0]
    assert (seen[-1][0], seen[-1][1]) == (epoch, batch), "training went on after the NaN batch"
    out = capsys.readouterr().out
    assert re.search(rf"Epoch {epoch + 1}, batch {batch}: invalid loss (nan|inf)", out), out
    assert model.stop_training


def test_09_predict_propagates_nan_row_by_row(backend):
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


# ================================================================================================
# 10. Empty x; bad batch sizes; batch size larger than the data
# ================================================================================================
@pytest.mark.parametrize("features", [(4,), (2, 2)])  # (2, 2): through Flatten
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_10_predict_on_empty_input_returns_zero_rows(backend, features, dtype):
    fastnn.set_floatx(dtype)
    set_random_seed(0)
    stack = ([Flatten(input_shape=features)] if len(features) > 1 else []) + \
        [Dense(5, activation="relu", input_shape=(4,) if len(features) == 1 else None), Dense(3)]
    model = Sequential(stack)
    for batch_size in (None, 1, 7):
        out = model.predict(np.zeros((0,) + features), batch_size=batch_size)
        assert out.shape == (0, 3) and out.dtype == np.dtype(dtype)
    assert model(np.zeros((0,) + features)).shape == (0, 3)


def test_10_empty_training_and_evaluation_data_raise(backend):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    for call in (lambda m: m.fit(x[:0], y[:0], verbose=0), lambda m: m.evaluate(x[:0], y[:0]),
                 lambda m: m.train_on_batch(x[:0], y[:0]),
                 lambda m: m.fit(x, y, verbose=0, validation_data=(x[:0], y[:0]))):
        raises_and_keeps(model, ValueError, call, r"empty", r"\(0, 4\)")


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True, np.float64(4.0), 1j])
def test_10_bad_batch_sizes_raise(backend, batch_size):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    for call in (lambda m: m.fit(x, y, batch_size=batch_size, verbose=0),
                 lambda m: m.evaluate(x, y, batch_size=batch_size),
                 lambda m: m.predict(x, batch_size=batch_size)):
        raises_and_keeps(model, ValueError, call, r"batch_size", re.escape(repr(batch_size)))


def test_10_batch_size_larger_than_the_data_is_one_batch(backend):
    """test_models proves this for fit on the native backend; here both backends, numpy integer
    batch sizes, and evaluate/predict agreeing with a single batch."""
    x, y = blobs(n=10)
    one, many = classifier(), classifier()
    set_random_seed(1)
    h1 = one.fit(x, y, batch_size=np.int64(10**6), epochs=2, verbose=0)
    set_random_seed(1)
    h2 = many.fit(x, y, batch_size=10, epochs=2, verbose=0)
    assert one.optimizer.iterations == 2 and h1.history == h2.history and weights_equal(one, many)
    assert one.evaluate(x, y, batch_size=10**6) == one.evaluate(x, y, batch_size=10)
    assert same_bits(one.predict(x, batch_size=10**6), one.predict(x, batch_size=10))


# ================================================================================================
# 11. Batch norm: one training sample raises; a constant feature gives no NaN
# ================================================================================================
def test_11_batch_norm_training_on_one_sample_raises(backend):
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
def test_11_constant_features_give_no_nan(backend, constant):
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


# ================================================================================================
# 12. Float32 limits: IEEE results; importing fastnn leaves flush-to-zero off
# ================================================================================================
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus", "elu", "selu", "leaky_relu",
                                  "linear"])
def test_12_activations_at_float32_limits_are_ieee(backend, name):
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
def test_12_dense_at_float32_limits_is_ieee(backend):
    """Sums that reach FLT_MAX overflow to +-inf, sums that stay below do not, inf - inf is NaN,
    and products in the subnormal range are kept (no flush to zero)."""
    k = _kernels(backend)
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


def test_12_importing_fastnn_keeps_subnormals():
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


# ================================================================================================
# 13. After a failed call: weights, optimizer state, iterations and configuration bitwise unchanged
# ================================================================================================
def _failing_calls():
    """(name, call, exception) for one bad call of each kind in items 4-11 and 17."""
    x, y = blobs(n=12)
    x_nan = x.copy()
    x_nan[3, 1] = np.nan
    return [
        ("label_out_of_range", lambda m: m.fit(x, np.full(12, 3), verbose=0), ValueError),
        ("label_fraction", lambda m: m.train_on_batch(x, y + 0.5), ValueError),
        ("features", lambda m: m.fit(x[:, :3], y, verbose=0), ValueError),
        ("x_3d", lambda m: m.train_on_batch(x.reshape(12, 2, 2), y), ValueError),
        ("len_mismatch", lambda m: m.fit(x, y[:11], verbose=0), ValueError),
        ("x_object", lambda m: m.fit(x.astype(object), y, verbose=0), TypeError),
        ("y_complex", lambda m: m.train_on_batch(x, y.astype(complex)), TypeError),
        ("x_nan", lambda m: m.fit(x_nan, y, verbose=0), ValueError),
        ("empty", lambda m: m.fit(x[:0], y[:0], verbose=0), ValueError),
        ("batch_size", lambda m: m.fit(x, y, batch_size=0, verbose=0), ValueError),
        ("one_sample_bn", lambda m: m.train_on_batch(x[:1], y[:1]), ValueError),
        ("bad_validation", lambda m: m.fit(x, y, verbose=0, validation_data=(x_nan, y)), ValueError),
        ("bad_class_weight", lambda m: m.fit(x, y, verbose=0, class_weight={0: 1.0}), ValueError),
        ("bad_sample_weight", lambda m: m.fit(x, y, verbose=0, sample_weight=-np.ones(12)), ValueError),
        ("bad_epochs", lambda m: m.fit(x, y, epochs=1.5, verbose=0), ValueError),
        ("bad_compile", lambda m: m.compile(optimizer="adam", loss="no_such_loss"), ValueError),
        ("set_weights_shape", lambda m: m.set_weights([w[..., :1] for w in m.get_weights()]), ValueError),
        ("load_weights_missing", lambda m: m.load_weights("/nonexistent/dir/w.fnn"), OSError),
    ]


@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
], ids=["adam-amsgrad", "sgd-nesterov", "rmsprop-centered"])
def test_13_every_failed_call_leaves_the_model_bitwise_unchanged(backend, make_optimizer):
    """A trained model with batch norm (moving statistics), dropout (a random stream) and an
    optimizer with slots: after each failing call, ``model_state`` -- weights, get_state()
    (iterations and every slot), configs, layer states -- is bitwise what it was; and the model
    then trains exactly like an untouched twin that never saw the bad calls."""
    x, y = blobs(n=12)
    model = classifier(optimizer=make_optimizer(), norm=True, dropout=True)
    twin = classifier(optimizer=make_optimizer(), norm=True, dropout=True)
    for m in (model, twin):
        set_random_seed(4)
        m.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert model.optimizer.get_state()[0] == 6
    for name, call, exc in _failing_calls():
        before = model_state(model)
        with pytest.raises(exc):
            call(model)
        assert_state_unchanged(model, before, what=name)
    assert numeric_state(model) == numeric_state(twin)
    for m in (model, twin):
        set_random_seed(8)
        m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert numeric_state(model) == numeric_state(twin)


# ================================================================================================
# 14. Threads: concurrent predict is bitwise serial; concurrent fit is a serialisation
# ================================================================================================
def _start_together(targets):
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SUBPROCESS_TIMEOUT)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def test_14_eight_threads_predicting_on_one_model_match_serial(backend):
    """Each thread predicts its own inputs 5 times (batch sizes 1..64, through predict and
    model(x)); every result equals the serial prediction bit for bit."""
    fastnn.set_num_threads(2)
    model = classifier(features=32, hidden=64, classes=10)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(n, 32)).astype(np.float32) for n in (1, 3, 8, 17, 33, 64, 300, 5)]
    # (the numpy backend's sums may depend on the batch size, so each call is compared with the
    # serial call of the same batch size)
    calls = [lambda x: model.predict(x), lambda x: model.predict(x, batch_size=7), lambda x: model(x)]
    serial = [[call(x) for call in calls] for x in inputs]
    results = [[] for _ in inputs]

    def worker(i):
        def run():
            for _ in range(5):
                results[i].append([call(inputs[i]) for call in calls])
        return run

    _start_together([worker(i) for i in range(8)])
    for want, got in zip(serial, results):
        assert len(got) == 5
        assert all(same_bits(g, w) for rep in got for g, w in zip(rep, want))


def test_14_concurrent_fit_on_one_model_is_a_serialisation(backend):
    """Two threads fit the same model on different data at once. Calls on one model hold its lock,
    so the outcome must equal running the two fits one after the other, in one order or the
    other: weights, optimizer state and each thread's History match that serial run exactly (the
    two orders give different weights, checked, so the test can tell). A third thread predicting
    meanwhile sees the weights before or after a whole fit, never a mixture."""
    xa, ya = blobs(n=40, seed=1)
    xb, yb = blobs(n=40, seed=2)

    def fit(model, x, y):
        return model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]

    def serial(order):
        model = classifier()
        set_random_seed(11)
        losses_ = {}
        for key in order:
            losses_[key] = fit(model, *(xa, ya) if key == "a" else (xb, yb))
        return model, losses_

    ab, ab_losses = serial("ab")
    ba, ba_losses = serial("ba")
    assert not weights_equal(ab, ba)
    start = classifier()
    states = [start.predict(xa)] + [m.predict(xa) for m in (ab, ba)]
    for _ in range(3):
        model = classifier()
        set_random_seed(11)
        got, seen = {}, []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(model.predict(xa))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            _start_together([lambda: got.__setitem__("a", fit(model, xa, ya)),
                             lambda: got.__setitem__("b", fit(model, xb, yb))])
        finally:
            stop.set()
            watcher.join()
        if weights_equal(model, ab):
            assert got == ab_losses and numeric_state(model) == numeric_state(ab)
        else:
            assert weights_equal(model, ba), "concurrent fits gave neither serial result"
            assert got == ba_losses and numeric_state(model) == numeric_state(ba)
        middle = serial("a")[0].predict(xa), serial("b")[0].predict(xa)
        allowed = states + list(middle)
        assert all(any(same_bits(p, s) for s in allowed) for p in seen)


# ================================================================================================
# 15. fork after parallel kernels; fastnn beside scikit-learn / torch in one process
# ================================================================================================
_FORK_POOL = """
    import multiprocessing as mp, numpy as np, fastnn
    from fastnn.layers import Dense
    fastnn.set_num_threads(2)
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([Dense(256, activation="relu", input_shape=(300,)), Dense(10, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(2048, 300)).astype(np.float32)
    want = model.predict(x)                      # parallel GEMM and softmax in the parent
    def child(lo):
        return model.predict(x[lo:lo + 512])
    with mp.get_context("fork").Pool(2) as pool:
        parts = pool.map_async(child, range(0, 2048, 512)).get(timeout=100)
    got = np.concatenate(parts)
    assert got.tobytes() == want.tobytes(), "children predicted differently"
    assert fastnn.get_num_threads() == 2
    print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_15_fork_pool_after_parallel_kernels_finishes():
    """A multiprocessing fork pool started after the parent ran 2-thread kernels: the children
    predict (bitwise as the parent) and the pool finishes. test_runtime's
    test_fork_after_parallel_kernels_does_not_hang covers a bare os.fork and every kernel family."""
    out = run_python(_FORK_POOL)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


_WITH_OTHER = """
    import json, sys
    import numpy as np
    first, second = sys.argv[1:3] if len(sys.argv) > 2 else ("{first}", "{second}")
    mods = {{}}
    for name in (first, second):
        mods[name] = __import__(name)
    import fastnn
    fastnn.set_num_threads(2)
    a = np.random.default_rng(0).normal(size=(400, 400)).astype(np.float32)
    c = fastnn.ops.matmul(a, a)
    ok_fastnn = bool(np.allclose(c, a.astype(np.float64) @ a, rtol=1e-4, atol=1e-2))
    other = "{other}"
    if other == "sklearn":
        from sklearn.cluster import KMeans           # OpenMP (its own bundled libgomp)
        from sklearn.ensemble import HistGradientBoostingClassifier
        x = np.random.default_rng(1).normal(size=(2000, 5))
        labels = KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(x)
        score = HistGradientBoostingClassifier(max_iter=5).fit(x, labels).score(x, labels)
        ok_other = len(set(labels.tolist())) == 3 and score > 0.9
    else:
        import torch
        t = torch.from_numpy(a)
        ok_other = bool(np.allclose((t @ t).numpy(), c, rtol=1e-4, atol=1e-2))
    c2 = fastnn.ops.matmul(a, a)                        # fastnn again after the other runtime ran
    print(json.dumps({{"fastnn": ok_fastnn and c2.tobytes() == c.tobytes(), "other": bool(ok_other)}}))
"""


@pytest.mark.parametrize("other", ["sklearn", "torch"])
@pytest.mark.parametrize("fastnn_first", [True, False], ids=["fastnn_first", "other_first"])
def test_15_fastnn_beside_sklearn_or_torch_in_one_process(other, fastnn_first):
    """Both import orders, then a 2-thread fastnn GEMM, the other library's OpenMP work, and
    fastnn again: correct results, exit code 0, no OpenMP duplicate-runtime message."""
    module = "sklearn" if other == "sklearn" else "torch"
    import importlib.util
    if importlib.util.find_spec(module) is None:
        pip_name = "scikit-learn" if other == "sklearn" else "torch"
        pytest.skip(f"{module} is not installed: pip install {pip_name} to run this check")
    first, second = ("fastnn", module) if fastnn_first else (module, "fastnn")
    out = run_python(_WITH_OTHER.format(first=first, second=second, other=other))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"fastnn": True, "other": True}
    assert "OMP: Error" not in out.stderr and "already initialized" not in out.stderr


# ================================================================================================
# 16. 10,000 train_on_batch and predict calls: flat resident memory, input refcounts unchanged
# ================================================================================================
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


RSS_BOUND = 2 * 1024 * 1024


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="resident memory read from /proc (Linux)")
def test_16_repeated_calls_keep_memory_and_refcounts_flat(backend):
    """After 500 warm-up calls of each, 10,000 train_on_batch and 10,000 predict calls on a
    4-16-3 model grow the resident set by less than 2 MiB (measured: 0-8 KiB on both backends;
    a leak of one 16x3 float32 array per call would be 1.9 MiB), and the reference counts of
    the input arrays are what they were before the calls."""
    model = classifier(hidden=16, metrics=())
    x, y = blobs(n=16)
    refs = sys.getrefcount(x), sys.getrefcount(y)
    for _ in range(500):
        model.train_on_batch(x, y)
        model.predict(x)
    gc.collect()
    start = _rss_bytes()
    for _ in range(10_000):
        model.train_on_batch(x, y)
    for _ in range(10_000):
        model.predict(x)
    gc.collect()
    growth = _rss_bytes() - start
    assert growth < RSS_BOUND, f"resident memory grew by {growth / 1024:.0f} KiB"
    assert model.optimizer.iterations == 10_500
    # no reference to the inputs survives the calls
    assert sys.getrefcount(x) == refs[0] and sys.getrefcount(y) == refs[1]


def test_16_input_refcounts_unchanged_after_calls(backend):
    """After predict, evaluate, train_on_batch and fit return, the model holds no reference to
    the caller's arrays: sys.getrefcount of x and y is what it was before the calls."""
    model = classifier(hidden=16, metrics=())
    x, y = blobs(n=16)
    refs = sys.getrefcount(x), sys.getrefcount(y)
    for call in (lambda: model.predict(x), lambda: model.evaluate(x, y), lambda: model(x),
                 lambda: model.train_on_batch(x, y), lambda: model.fit(x, y, verbose=0)):
        call()
        gc.collect()
        assert (sys.getrefcount(x), sys.getrefcount(y)) == refs


# ================================================================================================
# 17. Bad model files raise a clear error and leave the model untouched; a killed save is harmless
# ================================================================================================
_PREFIX = struct.Struct("<8sIQ")


def _split_file(data):
    magic, version, length = _PREFIX.unpack_from(data)
    header = json.loads(data[_PREFIX.size:_PREFIX.size + length])
    return magic, version, header, data[_PREFIX.size + length:-32]


def _join_file(magic, version, header, payload):
    """A file in the documented layout with a correct checksum (so only the content is wrong)."""
    raw = json.dumps(header).encode()
    body = _PREFIX.pack(magic, version, len(raw)) + raw + payload
    return body + hashlib.sha256(body).digest()


class _Exploit:
    """Unpickling this would create the marker file: proof that the loader never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _corrupt(kind, data, marker):
    magic, version, header, payload = _split_file(data)
    if kind == "truncated_half":
        return data[:len(data) // 2]
    if kind == "truncated_header":
        return data[:_PREFIX.size + 3]
    if kind == "bit_flip_payload":
        flipped = bytearray(data)
        flipped[len(data) - 40] ^= 0x10
        return bytes(flipped)
    if kind == "wrong_version":
        return _join_file(magic, 99, header, payload)
    if kind == "pickle_file":
        return pickle.dumps(_Exploit(marker))
    if kind == "pickle_payload":
        blob = pickle.dumps(_Exploit(marker))
        header["arrays"][0].update(dtype="object", length=len(blob), offset=len(payload))
        return _join_file(magic, version, header, payload + blob)
    if kind == "wrong_shape":
        shape = header["arrays"][0]["shape"]
        header["arrays"][0]["shape"] = shape[::-1]  # same byte count, transposed kernel
        return _join_file(magic, version, header, payload)
    if kind == "unknown_layer":
        header["model_config"]["layers"][1]["class_name"] = "Conv9D"
        return _join_file(magic, version, header, payload)
    if kind == "layer_config_garbage":
        header["model_config"]["layers"][1]["config"]["units"] = "many"
        return _join_file(magic, version, header, payload)
    if kind == "array_past_payload":
        header["arrays"][-1]["offset"] = len(payload)
        return _join_file(magic, version, header, payload)
    if kind == "header_not_json":
        raw = b"{not json"
        body = _PREFIX.pack(magic, version, len(raw)) + raw + payload
        return body + hashlib.sha256(body).digest()
    raise AssertionError(kind)


BAD_FILES = {  # kind: message pattern, whether load_weights must also refuse it
    "truncated_half": ("truncated|corrupted", True),
    "truncated_header": ("truncated", True),
    "bit_flip_payload": ("corrupted", True),
    "wrong_version": ("format version 99", True),
    "pickle_file": ("not a fastnn model file", True),
    "pickle_payload": ("malformed", True),
    "wrong_shape": (r"shape \(8, 4\).*expects \(4, 8\)", True),
    "unknown_layer": ("Conv9D", False),       # weights-only loading ignores the architecture
    "layer_config_garbage": ("cannot rebuild", False),
    "array_past_payload": ("malformed|does not fit", True),
    "header_not_json": ("malformed", True),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_17_bad_model_files_raise_a_clear_error_and_touch_nothing(backend, kind, tmp_path):
    """test_saving covers truncation at many offsets, every flipped bit and version 2; here every
    kind of damage named in the issue, through load_model and load_weights, with the full state
    check of the model loaded into, and proof that a pickle inside is never unpickled."""
    model = classifier(norm=True, dropout=True)
    x, y = blobs(n=12)
    model.fit(x, y, batch_size=4, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    marker = tmp_path / "unpickled"
    pattern, weights_too = BAD_FILES[kind]
    path.write_bytes(_corrupt(kind, path.read_bytes(), marker))
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_model(path)
    assert isinstance(info.value, ValueError) and "model.fnn" in str(info.value)
    target = classifier(norm=True, dropout=True)
    target.fit(x, y, batch_size=4, verbose=0)
    if weights_too:
        raises_and_keeps(target, ModelFileError, lambda m: m.load_weights(path), pattern)
    assert not marker.exists(), "the loader ran code from the file"
    assert np.isfinite(target.predict(x)).all()


_KILLED_SAVE = """
    import os, signal, sys
    import numpy as np, fastnn
    from fastnn import saving
    path = sys.argv[1]
    model = fastnn.load_model(path)
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    model.fit(x, np.arange(12) % 3, verbose=0)        # new weights, so the new file would differ
    half = os.path.getsize(path) // 2
    real_fdopen = os.fdopen

    class DiesHalfway:
        def __init__(self, f):
            self.f, self.written = f, 0
        def write(self, data):
            room = half - self.written
            if len(data) >= room:
                self.f.write(data[:room]); self.f.flush(); os.fsync(self.f.fileno())
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            self.written += self.f.write(data)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()

    saving.os.fdopen = lambda fd, mode="r", *a, **k: DiesHalfway(real_fdopen(fd, mode, *a, **k))
    model.save(path)
    print("survived", flush=True)
"""


def test_17_process_killed_during_save_leaves_the_previous_file_loadable(tmp_path):
    """A child loads the model, trains, and is SIGKILLed after writing half of the new file: the
    target still holds the previous file byte for byte, which loads and predicts as before (the
    half-written temporary file is left beside it, never renamed over the target)."""
    model = classifier(norm=True)
    x, y = blobs(n=12)
    model.fit(x, y, batch_size=4, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    old = path.read_bytes()
    out = run_python(_KILLED_SAVE, path)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.strip() == "dying"
    assert path.read_bytes() == old
    leftovers = [p for p in tmp_path.iterdir() if p.name != "model.fnn"]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == len(old) // 2
    assert same_bits(load_model(path).predict(x), model.predict(x))


# ================================================================================================
# 18. Same seed: bitwise-identical weights on 1 and 2 threads and on reruns
# ================================================================================================
def _train_for_determinism(threads):
    fastnn.set_num_threads(threads)
    x, y = fastnn.datasets.make_spiral(n_per_class=200, n_classes=3, seed=0)
    set_random_seed(42)
    model = Sequential([Dense(64, activation="relu", input_shape=(2,)), BatchNormalization(),
                        Dropout(0.2, seed=7), Dense(64, activation="tanh"),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=300, epochs=4, verbose=0, validation_split=0.25)
    return model, history.history, model.predict(x)


def test_18_same_seed_gives_bitwise_identical_training_on_1_and_2_threads_and_reruns(backend):
    """600 spiral points, batches of 300 rows (past the row-parallel thresholds of the softmax,
    loss and norm kernels), batch norm, dropout, gradient clipping, Adam: the weights, optimizer
    state, history and predictions are bitwise equal on 1 thread, 2 threads, and a rerun."""
    runs = [_train_for_determinism(t) for t in (1, 2, 2, 1)]
    ref_model, ref_history, ref_pred = runs[0]
    for model, history, pred in runs[1:]:
        assert model_state(model)["weights"] == model_state(ref_model)["weights"]
        assert model_state(model)["slots"] == model_state(ref_model)["slots"]
        assert history == ref_history
        assert same_bits(pred, ref_pred)
