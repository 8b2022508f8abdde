"""The optimizer family: SGD (momentum, Nesterov), Adagrad, RMSprop (momentum, centered), Adam
(AMSGrad), AdamW and ``weight_decay=`` on each, checked three ways for several steps in float32 and
float64: the native kernel against its NumPy twin, both against the Keras 3 formulas written out
here by hand in float64, and the optimizer state (``get_state``/``set_state``) resuming exactly.

Keras 3 (keras/src/optimizers/*.py), per step, lr at ``iterations`` before the step:
    weight decay:  w -= w * wd * lr                                   (before the update)
    Adagrad:       acc += g^2;  w -= lr * g / sqrt(acc + eps)          (acc starts at 0.1)
    RMSprop:       v = rho v + (1-rho) g^2; [avg = rho avg + (1-rho) g; den = v - avg^2 + eps]
                   inc = lr g / sqrt(den);  [mom = momentum mom + inc; w -= mom]  else w -= inc
    Adam/AMSGrad:  m, v as Adam; vhat = max(vhat, v); w -= lr_t m / (sqrt(vhat) + eps)
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import optimizers
from fastnn.optimizers import schedules

STEPS = 5
TOL = {np.float32: dict(rtol=2e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}


def textbook(name, cfg, w, grads):
    """The weights after each gradient in ``grads`` under the Keras formulas, in float64."""
    w = w.astype(np.float64).copy()
    lr0 = cfg.get("learning_rate", 0.001)
    wd = cfg.get("weight_decay") or 0.0
    state = {}
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        lr = lr0(t - 1) if callable(lr0) else lr0
        w = w - w * wd * lr
        if name == "SGD":
            mu = cfg.get("momentum", 0.0)
            if mu == 0:
                w = w - lr * g
            else:
                v = mu * state.get("v", 0) - lr * g
                state["v"] = v
                w = w + (mu * v - lr * g if cfg.get("nesterov") else v)
        elif name == "Adagrad":
            acc = state.get("acc", np.full_like(w, cfg.get("initial_accumulator_value", 0.1))) + g * g
            state["acc"] = acc
            w = w - lr * g / np.sqrt(acc + cfg.get("epsilon", 1e-7))
        elif name == "RMSprop":
            rho, mu, eps = cfg.get("rho", 0.9), cfg.get("momentum", 0.0), cfg.get("epsilon", 1e-7)
            v = rho * state.get("v", 0) + (1 - rho) * g * g
            state["v"] = v
            den = v + eps
            if cfg.get("centered"):
                avg = rho * state.get("avg", 0) + (1 - rho) * g
                state["avg"] = avg
                den = v - avg * avg + eps
            inc = lr * g / np.sqrt(den)
            if mu:
                state["mom"] = mu * state.get("mom", 0) + inc
                w = w - state["mom"]
            else:
                w = w - inc
        else:  # Adam, AdamW
            b1, b2, eps = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999), cfg.get("epsilon", 1e-7)
            m = b1 * state.get("m", 0) + (1 - b1) * g
            v = b2 * state.get("v", 0) + (1 - b2) * g * g
            state["m"], state["v"] = m, v
            if cfg.get("amsgrad"):
                v = state["vhat"] = np.maximum(state.get("vhat", 0), v)
            lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            w = w - lr_t * m / (np.sqrt(v) + eps)
        out.append(w.copy())
    return out


CASES = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(learning_rate=0.1, momentum=0.5, weight_decay=0.01)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Adagrad", dict(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=1e-4, weight_decay=0.1)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.9)),
    ("RMSprop", dict(learning_rate=0.01, centered=True)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True, weight_decay=0.05)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.02)),
    ("AdamW", dict(learning_rate=0.01)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.1, amsgrad=True)),
]


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(7, 5)).astype(dtype)
    # shrinking gradients make AMSGrad's max(vhat, v) keep an old value (otherwise it equals Adam)
    grads = [(rng.normal(size=(7, 5)) * 0.5 ** t).astype(dtype) for t in range(STEPS)]
    return w0, grads


def _run(name, cfg, w0, grads, backend_name):
    fastnn.set_backend(backend_name)
    opt = getattr(optimizers, name)(**cfg)
    w = w0.copy()
    trace = []
    for g in grads:
        opt.apply([w], [g])
        trace.append(w.copy())
    return opt, trace


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cfg", CASES, ids=[f"{n}-{'-'.join(c)}" for n, c in CASES])
def test_update_matches_reference_and_textbook(name, cfg, dtype):
    w0, grads = _problem(dtype)
    _, native = _run(name, cfg, w0, grads, "native")
    _, ref = _run(name, cfg, w0, grads, "numpy")
    expected = textbook("Adam" if name == "AdamW" else name,
                        {"weight_decay": 0.004, **cfg} if name == "AdamW" else cfg, w0, grads)
    for t in range(STEPS):
        assert native[t].dtype == dtype
        np.testing.assert_allclose(native[t], ref[t], **TOL[dtype], err_msg=f"step {t + 1}")
        np.testing.assert_allclose(ref[t], expected[t], **TOL[dtype], err_msg=f"step {t + 1}")
    assert not np.allclose(native[-1], w0)  # the weights did move


def test_amsgrad_differs_from_adam():
    w0, grads = _problem(np.float64)
    _, adam = _run("Adam", dict(learning_rate=0.01), w0, grads, "native")
    _, ams = _run("Adam", dict(learning_rate=0.01, amsgrad=True), w0, grads, "native")
    assert np.abs(adam[-1] - ams[-1]).max() > 1e-6  # float64: far above rounding


def test_weight_decay_shrinks_weights_with_zero_gradient():
    w = np.array([2.0, -4.0])
    opt = optimizers.SGD(learning_rate=0.5, weight_decay=0.1)
    opt.apply([w], [np.zeros(2)])
    np.testing.assert_array_equal(w, [2.0 - 2.0 * 0.1 * 0.5, -4.0 + 4.0 * 0.1 * 0.5])


def test_schedule_sets_each_steps_learning_rate():
    lr = schedules.PiecewiseConstantDecay([1, 2], [0.5, 0.25, 0.125])
    opt = optimizers.SGD(learning_rate=lr)
    w = np.zeros(1)
    seen = []
    for _ in range(4):
        seen.append(opt.learning_rate)
        opt.apply([w], [np.ones(1)])
    assert seen == [0.5, 0.5, 0.25, 0.125]
    np.testing.assert_array_equal(w, [-(0.5 + 0.5 + 0.25 + 0.125)])
    w0, grads = _problem(np.float64)
    sched = schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    _, got = _run("Adam", dict(learning_rate=sched), w0, grads, "native")
    want = textbook("Adam", dict(learning_rate=sched), w0, grads)
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-13)


@pytest.mark.parametrize("name,cfg", CASES, ids=[f"{n}-{'-'.join(c)}" for n, c in CASES])
def test_state_resumes_exactly(name, cfg):
    w0, grads = _problem(np.float32, seed=1)
    _, full = _run(name, cfg, w0, grads, "native")
    first = getattr(optimizers, name)(**cfg)
    w = w0.copy()
    for g in grads[:2]:
        first.apply([w], [g])
    iterations, variables = first.get_state()
    resumed = optimizers.get(optimizers.serialize(first))
    resumed.set_state([w], iterations, variables)
    for g in grads[2:]:
        resumed.apply([w], [g])
    np.testing.assert_array_equal(w, full[-1])
    assert resumed.iterations == STEPS


def test_set_state_checks_before_changing():
    opt = optimizers.Adam()
    w = np.zeros((2, 3), np.float32)
    opt.apply([w], [np.ones((2, 3), np.float32)])
    before = [v.copy() for v in opt.variables()]
    with pytest.raises(ValueError, match=r"state array 1 must have shape \(2, 3\)"):
        opt.set_state([w], 7, [np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)])
    with pytest.raises(ValueError, match="has 2 arrays, got 1"):
        opt.set_state([w], 7, [np.zeros((2, 3), np.float32)])
    assert opt.iterations == 1
    for a, b in zip(before, opt.variables()):
        np.testing.assert_array_equal(a, b)


def test_keras_defaults_and_names():
    assert optimizers.get("rmsprop").get_config() == {
        "name": "RMSprop", "learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
        "centered": False}
    assert optimizers.get("adagrad").get_config() == {
        "name": "Adagrad", "learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7}
    adamw = optimizers.get("adamw")
    assert isinstance(adamw, optimizers.AdamW) and adamw.weight_decay == 0.004
    lr = schedules.CosineDecay(0.1, 10)
    cfg = optimizers.serialize(optimizers.RMSprop(learning_rate=lr, centered=True, clipnorm=1.0))
    back = optimizers.deserialize(cfg)
    assert isinstance(back.learning_rate_schedule, schedules.CosineDecay)
    assert optimizers.serialize(back) == cfg


@pytest.mark.parametrize("bad,match", [
    (dict(rho=1.0), "rho must be a number in"),
    (dict(momentum=-0.1), "momentum must be a number in"),
    (dict(epsilon=0), "epsilon must be a positive number"),
    (dict(weight_decay=-1), "weight_decay must be None or a non-negative number"),
    (dict(learning_rate="fast"), "learning_rate must be a positive number"),
])
def test_bad_arguments_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        optimizers.RMSprop(**bad)


def test_native_kernels_check_their_arguments():
    core = fastnn.backend._core
    w = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="momentum_velocity is required"):
        core.rmsprop_update(w, w.copy(), w.copy(), None, None, 0.1, 0.9, 0.5, 1e-7)
    with pytest.raises(ValueError, match=r"v_hat must have shape \(3,\)"):
        core.adam_update(w, w.copy(), w.copy(), w.copy(), 0.1, 0.9, 0.999, 1e-7, 1, np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="accumulator must have the same dtype"):
        core.adagrad_update(w, w.copy(), np.zeros(3), 0.1, 1e-7)


def test_a_bad_schedule_value_changes_nothing():
    class Broken(schedules.LearningRateSchedule):
        def __call__(self, step):
            return float("nan")

        def get_config(self):
            return {}
    opt = optimizers.Adam(learning_rate=Broken())
    w = np.ones(3)
    with pytest.raises(ValueError, match="schedule gave nan at step 0"):
        opt.apply([w], [np.ones(3)])
    assert opt.iterations == 0 and opt.variables() == [] and (w == 1).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_path_matches_reference(threads):
    """Above the OpenMP threshold (2**15 elements) the kernels split the loop; results must not change."""
    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(2)
    n = 70_001
    p0, g = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    core, ref = fastnn.backend._core, fastnn.reference
    calls = [
        lambda k, p, s: k.adagrad_update(p, g, s[0], 0.1, 1e-7),
        lambda k, p, s: k.rmsprop_update(p, g, s[0], s[1], s[2], 0.01, 0.9, 0.5, 1e-7),
        lambda k, p, s: k.adam_update(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-7, 3, s[2]),
        lambda k, p, s: k.weight_decay_update(p, 0.1, 0.004),
    ]
    for call in calls:
        out = []
        for k in (core, ref):
            p = p0.copy()
            state = [np.full(n, 0.1, np.float32) for _ in range(3)]
            call(k, p, state)
            call(k, p, state)
            out.append((p, state))
        np.testing.assert_allclose(out[0][0], out[1][0], rtol=2e-6, atol=1e-7)
        for a, b in zip(out[0][1], out[1][1]):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
