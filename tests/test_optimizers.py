"""Tests of ``fastnn.optimizers``: SGD (plain, momentum, Nesterov) and Adam updates against the
Keras formulas written out by hand, on raw arrays and inside a tiny model; defaults; validation.

Keras formulas (keras.optimizers.SGD / Adam):
    SGD:      v = momentum * v - lr * g;  w += v                       (momentum > 0)
              w += momentum * v - lr * g                                (nesterov, after v update)
              w -= lr * g                                               (momentum == 0)
    Adam:     t = iterations + 1
              m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
              w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

BACKENDS = ["native", "numpy"]


class KerasSGD:
    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.lr, self.momentum, self.nesterov, self.v = lr, momentum, nesterov, None

    def step(self, w, g):
        if self.momentum == 0:
            return w - self.lr * g
        if self.v is None:
            self.v = [np.zeros_like(a) for a in w] if isinstance(w, list) else np.zeros_like(w)
        self.v = self.momentum * self.v - self.lr * g
        if self.nesterov:
            return w + self.momentum * self.v - self.lr * g
        return w + self.v


class KerasAdam:
    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, epsilon
        self.t, self.m, self.v = 0, None, None

    def step(self, w, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        lr_t = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        return w - lr_t * self.m / (np.sqrt(self.v) + self.eps)


# -- on raw arrays ---------------------------------------------------------------------------
def test_sgd_hand_numbers():
    w = np.array([1.0, -2.0])
    opt = optimizers.SGD(learning_rate=0.1)
    opt.apply([w], [np.array([0.5, -1.0])])
    np.testing.assert_allclose(w, [0.95, -1.9], rtol=1e-15)
    assert opt.iterations == 1


def test_sgd_momentum_hand_numbers():
    # g = 1 every step, lr 0.1, momentum 0.9: v = -0.1, -0.19, -0.271; w = -0.1, -0.29, -0.561
    w = np.zeros(1)
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    for expected in (-0.1, -0.29, -0.561):
        opt.apply([w], [np.ones(1)])
        assert w[0] == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(opt.variables()[0], [-0.271], rtol=1e-14)


def test_sgd_nesterov_hand_numbers():
    # v as above; w += 0.9 * v - 0.1: -0.19, then -0.19 + (-0.171 - 0.1) = -0.461,
    # then -0.461 + (-0.2439 - 0.1) = -0.8049
    w = np.zeros(1)
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    for expected in (-0.19, -0.461, -0.8049):
        opt.apply([w], [np.ones(1)])
        assert w[0] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_first_step_is_learning_rate_times_sign_of_gradient(backend):
    # t=1: m = 0.1 g, v = 0.001 g^2, lr_t = lr * sqrt(0.001) / 0.1 -> step = lr * g / (|g| + eps')
    fastnn.set_backend(backend)
    w = np.zeros(4)
    g = np.array([3.0, -0.5, 1e-3, -200.0])
    optimizers.Adam(learning_rate=0.01).apply([w], [g])
    eps_hat = 1e-7 / math.sqrt(0.001)
    np.testing.assert_allclose(w, -0.01 * g / (np.abs(g) + eps_hat), rtol=1e-12)
    np.testing.assert_allclose(w, -0.01 * np.sign(g), rtol=5e-3)  # ~lr * sign(g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("make, ref", [
    (lambda: optimizers.SGD(0.05), lambda: KerasSGD(0.05)),
    (lambda: optimizers.SGD(0.05, momentum=0.8), lambda: KerasSGD(0.05, 0.8)),
    (lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True), lambda: KerasSGD(0.05, 0.8, True)),
    (lambda: optimizers.Adam(), lambda: KerasAdam()),
    (lambda: optimizers.Adam(0.02, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
     lambda: KerasAdam(0.02, 0.5, 0.9, 1e-3)),
], ids=["sgd", "momentum", "nesterov", "adam", "adam_custom"])
def test_three_steps_on_arrays_match_formula(backend, dtype, rtol, make, ref):
    fastnn.set_backend(backend)
    rng = np.random.default_rng(0)
    w_init = [rng.normal(size=(5, 3)).astype(dtype), rng.normal(size=3).astype(dtype)]
    grads = [[rng.normal(size=w.shape).astype(dtype) for w in w_init] for _ in range(3)]
    opt = make()
    params = [w.copy() for w in w_init]
    refs = [ref() for _ in w_init]
    expected = [w.astype(np.float64) for w in w_init]
    for step, g in enumerate(grads, start=1):
        opt.apply(params, g)
        expected = [r.step(e, gi.astype(np.float64)) for r, e, gi in zip(refs, expected, g)]
        assert opt.iterations == step
        for p, e in zip(params, expected):
            assert p.dtype == dtype
            np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol)


def test_apply_gradients_keras_spelling():
    w = np.ones(3)
    opt = optimizers.SGD(0.5)
    opt.apply_gradients(zip([np.array([1.0, 2.0, 3.0])], [w]))
    np.testing.assert_allclose(w, [0.5, 0.0, -0.5])
    assert opt.iterations == 1


def test_optimizer_state_is_per_weight_and_refuses_other_shapes():
    opt = optimizers.Adam()
    assert opt.variables() == []
    a, b = np.zeros((2, 3)), np.zeros(3)
    opt.apply([a, b], [np.ones((2, 3)), np.ones(3)])
    assert [v.shape for v in opt.variables()] == [(2, 3), (2, 3), (3,), (3,)]
    snapshot = [v.copy() for v in opt.variables()], a.copy()
    with pytest.raises(ValueError, match="new optimizer"):
        opt.apply([np.zeros((4, 4))], [np.ones((4, 4))])
    assert opt.iterations == 1
    for v, s in zip(opt.variables(), snapshot[0]):
        np.testing.assert_array_equal(v, s)
    np.testing.assert_array_equal(a, snapshot[1])
    plain = optimizers.SGD()
    plain.apply([a], [np.ones((2, 3))])
    assert [v for v in plain.variables() if v is not None] == []


# -- inside a model ---------------------------------------------------------------------------
def _tiny(opt, dtype):
    fastnn.set_floatx(np.dtype(dtype).name)
    rng = np.random.default_rng(1)
    model = fastnn.Sequential([Dense(2, input_shape=(3,))])
    w0 = [rng.normal(size=(3, 2)), rng.normal(size=2)]
    model.set_weights(w0)
    model.compile(optimizer=opt, loss="mse")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    return model, [w.astype(dtype).astype(np.float64) for w in w0], x.astype(dtype), y.astype(dtype)


def _mse_grads(w, b, x, y):
    """d/dW, d/db of mean((x @ W + b - y)^2) over all N * outputs entries."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = 2 * (x @ w + b - y) / y.size
    return x.T @ d, d.sum(axis=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("make, ref", [
    (lambda: optimizers.SGD(0.1), lambda: KerasSGD(0.1)),
    (lambda: optimizers.SGD(0.1, momentum=0.9), lambda: KerasSGD(0.1, 0.9)),
    (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), lambda: KerasSGD(0.1, 0.9, True)),
    (lambda: optimizers.Adam(0.1), lambda: KerasAdam(0.1)),
    (lambda: optimizers.Adam(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-4),
     lambda: KerasAdam(0.05, 0.8, 0.99, 1e-4)),
], ids=["sgd", "momentum", "nesterov", "adam", "adam_custom"])
def test_model_updates_match_hand_computed_formula(backend, dtype, rtol, steps, make, ref):
    fastnn.set_backend(backend)
    opt = make()
    model, (w, b), x, y = _tiny(opt, dtype)
    rw, rb = ref(), ref()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
        assert loss == pytest.approx(np.mean((x.astype(np.float64) @ w + b - y) ** 2), rel=rtol)
        gw, gb = _mse_grads(w, b, x, y)
        w, b = rw.step(w, gw), rb.step(b, gb)
    assert opt.iterations == steps
    got_w, got_b = model.get_weights()
    np.testing.assert_allclose(got_w, w, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got_b, b, rtol=rtol, atol=rtol)


def test_compile_with_a_used_optimizer_on_another_model_raises_and_keeps_weights():
    opt = optimizers.Adam()
    model, _, x, y = _tiny(opt, np.float64)
    model.train_on_batch(x, y)
    other = fastnn.Sequential([Dense(5, input_shape=(3,))])
    other.compile(optimizer=opt, loss="mse")
    before = other.get_weights()
    with pytest.raises(ValueError, match="new optimizer"):
        other.train_on_batch(x, np.zeros((4, 5)))
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert opt.iterations == 1


# -- defaults, names, validation ---------------------------------------------------------------
def test_keras_defaults_and_names():
    sgd = optimizers.get("sgd")
    assert isinstance(sgd, optimizers.SGD)
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    adam = optimizers.get("Adam")
    assert isinstance(adam, optimizers.Adam)
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert adam.iterations == 0
    mine = optimizers.SGD(0.3)
    assert optimizers.get(mine) is mine
    assert optimizers.get("sgd") is not optimizers.get("sgd")  # a fresh optimizer each time
    assert adam.get_config() == {"name": "Adam", "learning_rate": 0.001, "beta_1": 0.9,
                                 "beta_2": 0.999, "epsilon": 1e-7}


@pytest.mark.parametrize("name", ["adabelief", "sophia", "", None, 0.1])  # nadam, lion exist now
def test_unknown_optimizer_raises(name):
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get(name)


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(learning_rate=0),
    lambda: optimizers.SGD(learning_rate=-0.1),
    lambda: optimizers.SGD(learning_rate=float("nan")),
    lambda: optimizers.SGD(learning_rate=float("inf")),
    lambda: optimizers.SGD(learning_rate="0.1"),
    lambda: optimizers.SGD(learning_rate=True),
    lambda: optimizers.SGD(momentum=-0.1),
    lambda: optimizers.SGD(momentum=1.0),
    lambda: optimizers.SGD(momentum=1.5),
    lambda: optimizers.SGD(momentum=float("nan")),
    lambda: optimizers.Adam(learning_rate=0),
    lambda: optimizers.Adam(learning_rate=-1e-3),
    lambda: optimizers.Adam(beta_1=1.0),
    lambda: optimizers.Adam(beta_1=-0.1),
    lambda: optimizers.Adam(beta_2=1.0),
    lambda: optimizers.Adam(beta_2=2),
    lambda: optimizers.Adam(epsilon=0),
    lambda: optimizers.Adam(epsilon=-1e-7),
    lambda: optimizers.Adam(epsilon=float("nan")),
])
def test_invalid_hyperparameters_raise(make):
    with pytest.raises(ValueError):
        make()


def test_valid_edge_hyperparameters_accepted():
    optimizers.SGD(learning_rate=1e-12, momentum=0.0)
    optimizers.SGD(momentum=0.999999, nesterov=True)
    optimizers.Adam(beta_1=0.0, beta_2=0.0, epsilon=1e-12)
    optimizers.SGD(learning_rate=np.float32(0.1))
    optimizers.Adam(learning_rate=1)


# -- apply checks every gradient first; state grown when a setting needs more ---------------------
@pytest.mark.parametrize("grads", [lambda g: [g[0]], lambda g: g + [g[0]],
                                   lambda g: [g[0], np.ones((7,), np.float32)],
                                   lambda g: [g[0], np.array(["a", "b"])],
                                   lambda g: [g[0], np.full(2, 1e39)]])
def test_apply_checks_all_gradients_before_changing_anything(backend, grads):
    # (NaN and inf gradients are applied, as Keras does: test_clipping shows what clipping makes of them)
    params = [np.ones((3, 2), np.float32), np.ones(2, np.float32)]
    g = [np.full((3, 2), 0.5, np.float32), np.full(2, 0.5, np.float32)]
    opt = optimizers.Adam()
    with pytest.raises((ValueError, TypeError)):
        opt.apply(params, grads(g))
    assert opt.iterations == 0 and opt.variables() == []
    assert all((p == 1).all() for p in params)


def test_apply_accepts_float64_and_fortran_gradients_on_both_backends(backend):
    params = [np.ones((3, 2), np.float32)]
    opt = optimizers.SGD(0.1)
    opt.apply(params, [np.asfortranarray(np.full((3, 2), 1.0))])
    np.testing.assert_allclose(params[0], 0.9, rtol=1e-6)


def test_momentum_set_after_the_state_exists_grows_the_state(backend):
    make = lambda m: optimizers.SGD(0.1, momentum=m)  # SGD's only state is the velocity
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)

    def model_with(opt, weights=None):
        set_random_seed(0)
        m = Sequential([Dense(3, input_shape=(4,))])
        m.compile(optimizer=opt, loss="mse")
        if weights is not None:
            m.set_weights(weights)
        return m

    switched = model_with(make(0.0))
    switched.train_on_batch(x, y)
    after_one = switched.get_weights()
    switched.optimizer.momentum = 0.9  # the state was made without momentum
    for _ in range(3):
        switched.train_on_batch(x, y)
    # the same three steps from a fresh state made with momentum: velocity starts at zero
    fresh = model_with(make(0.9), after_one)
    plain = model_with(make(0.0), after_one)
    for _ in range(3):
        fresh.train_on_batch(x, y)
        plain.train_on_batch(x, y)
    for a, b, c in zip(switched.get_weights(), fresh.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)  # momentum took effect


def test_rmsprop_momentum_turned_on_later_trains_with_a_velocity(backend):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    set_random_seed(0)
    model = Sequential([Dense(3, input_shape=(4,))])
    model.compile(optimizer=optimizers.RMSprop(0.01), loss="mse")
    model.train_on_batch(x, y)
    assert model.optimizer._slots[0][2] is None  # no momentum velocity yet
    model.optimizer.momentum = 0.5
    model.train_on_batch(x, y)
    velocity = model.optimizer._slots[0][2]
    assert velocity is not None and velocity.shape == model.get_weights()[0].shape and np.any(velocity != 0)
    assert model.optimizer.iterations == 2
