"""The compiled training plan (fastnn/plan.py, csrc/plan.cpp) against the layer-by-layer path.

The plan calls the same kernels in the same order as the Python layers, so on the native backend
both must give bitwise-identical weights, optimizer state, losses and outputs; every layer, loss
and optimizer has a plan entry, and each is exercised here. The NumPy backend (always layer by
layer) is compared within rounding by tests/test_models.py and tests/test_course_models.py.
"""
import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import losses, optimizers, regularizers

RNG = np.random.default_rng(7)


def _no_plan(model):
    """Force the layer-by-layer path on this model (what every step did before the plan)."""
    model._training_plan = lambda: None
    model._inference_plan = lambda: None
    return model


def _train_pair(make, x, y, fit_kwargs, seed=3):
    """Train two identical models, one through the plan and one layer by layer."""
    results = []
    for use_plan in (True, False):
        fastnn.utils.set_random_seed(seed)
        model = make()
        if not use_plan:
            _no_plan(model)
        history = model.fit(x, y, verbose=0, **fit_kwargs)
        results.append((model, history.history))
    (a, ha), (b, hb) = results
    assert a._plan is not None and a._plan[1] is not None, "the plan was not used"
    return a, ha, b, hb


def _assert_same_state(a, b):
    for i, (wa, wb) in enumerate(zip(a.get_weights(), b.get_weights())):
        assert wa.dtype == wb.dtype
        assert np.array_equal(wa, wb), f"weight {i} differs by {np.abs(wa - wb).max()}"
    ia, va = a.optimizer.get_state()
    ib, vb = b.optimizer.get_state()
    assert ia == ib and len(va) == len(vb)
    for sa, sb in zip(va, vb):
        assert np.array_equal(sa, sb)
    for la, lb in zip(a.layers, b.layers):
        assert la.get_state() == lb.get_state()


def _data(n=48, features=12, classes=3, kind="sparse"):
    x = RNG.normal(size=(n, features)).astype(np.float32)
    labels = RNG.integers(0, classes, n)
    if kind == "sparse":
        return x, labels
    if kind == "onehot":
        return x, np.eye(classes, dtype=np.float32)[labels]
    if kind == "binary":
        return x, (RNG.random((n, classes)) < 0.5).astype(np.float32)
    if kind == "distribution":
        p = RNG.random((n, classes)).astype(np.float32) + 0.05
        return x, p / p.sum(1, keepdims=True)
    return x, RNG.normal(size=(n, classes)).astype(np.float32)


ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "softmax",
               "log_softmax"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_activations_match_layer_path(activation):
    x, y = _data(kind="regression")

    def make():
        m = fastnn.Sequential([L.Input((12,)), L.Dense(9, activation=activation), L.Dense(3)])
        m.compile(optimizer="adam", loss="mse", metrics=["mae"])
        return m
    a, ha, b, hb = _train_pair(make, x, y, dict(epochs=2, batch_size=10))
    assert ha == hb
    _assert_same_state(a, b)
    assert np.array_equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "elu", "softplus"])
def test_fused_epilogue_on_the_packed_path_matches_layer_path(activation):
    """A layer large enough for the packed GEMM (64 x 300 @ 300 x 600): the plan applies bias and
    activation in the GEMM's epilogue tile by tile, the layer path in separate passes; same bits."""
    x = RNG.normal(size=(128, 300)).astype(np.float32)
    y = RNG.normal(size=(128, 3)).astype(np.float32)

    def make():
        m = fastnn.Sequential([L.Input((300,)), L.Dense(600, activation=activation), L.Dense(3)])
        m.compile(optimizer="adam", loss="mse")
        return m
    a, ha, b, hb = _train_pair(make, x, y, dict(epochs=1, batch_size=64))
    assert ha == hb
    _assert_same_state(a, b)
    assert np.array_equal(a.predict(x), b.predict(x))


LAYER_STACKS = {
    "activation_layers": lambda: [L.Input((12,)), L.Dense(8), L.Activation("tanh"), L.Dense(8),
                                  L.ReLU(), L.Dense(8), L.LeakyReLU(0.2), L.Dense(3), L.Softmax()],
    "relu_slope": lambda: [L.Input((12,)), L.Dense(8), L.ReLU(negative_slope=0.1), L.Dense(3, "softmax")],
    "flatten": lambda: [L.Input((4, 3)), L.Flatten(), L.Dense(6, "relu"), L.Dense(3, "softmax")],
    "batchnorm": lambda: [L.Input((12,)), L.Dense(8, use_bias=False), L.BatchNormalization(),
                          L.Activation("relu"), L.Dense(3, activation="softmax")],
    "batchnorm_no_scale_center": lambda: [L.Input((12,)), L.Dense(8), L.BatchNormalization(
        scale=False, center=False, momentum=0.5), L.Dense(3, activation="softmax")],
    "batchnorm_3d": lambda: [L.Input((4, 3)), L.BatchNormalization(), L.Flatten(), L.Dense(3, "softmax")],
    "frozen_batchnorm": lambda: [L.Input((12,)), L.Dense(8), L.BatchNormalization(trainable=False),
                                 L.Dense(3, activation="softmax")],
    "layernorm": lambda: [L.Input((12,)), L.Dense(8), L.LayerNormalization(), L.Dense(3, "softmax")],
    "layernorm_3d_no_center": lambda: [L.Input((4, 3)), L.LayerNormalization(center=False), L.Flatten(),
                                       L.Dense(3, "softmax")],
    "dropout": lambda: [L.Input((12,)), L.Dense(16, "relu"), L.Dropout(0.3), L.Dense(3, "softmax")],
    "dropout_first": lambda: [L.Input((12,)), L.Dropout(0.2, seed=5), L.Dense(3, "softmax")],
    "regularizers": lambda: [L.Input((12,)), L.Dense(8, "relu", kernel_regularizer=regularizers.L2(1e-3),
                                                     bias_regularizer=regularizers.L1(1e-3)),
                             L.Dense(3, "softmax", kernel_regularizer=regularizers.L1L2(1e-4, 1e-3))],
    "frozen_first_layer": lambda: [L.Input((12,)), L.Dense(8, "relu", trainable=False),
                                   L.Dense(3, "softmax")],
    "frozen_regularized": lambda: [L.Input((12,)), L.Dense(8, "relu", trainable=False,
                                                           kernel_regularizer="l2"), L.Dense(3, "softmax")],
}


@pytest.mark.parametrize("stack", sorted(LAYER_STACKS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_stacks_match_layer_path(stack, dtype):
    n = 50  # 50 = 4 * 12 + 2: a short last batch
    shape = (4, 3) if stack in ("flatten", "batchnorm_3d", "layernorm_3d_no_center") else (12,)
    x = RNG.normal(size=(n,) + shape).astype(dtype)
    y = RNG.integers(0, 3, n)

    def make():
        with _floatx(dtype):
            m = fastnn.Sequential(LAYER_STACKS[stack]())
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
    a, ha, b, hb = _train_pair(make, x, y, dict(epochs=3, batch_size=12))
    assert a.get_weights()[0].dtype == np.dtype(dtype)
    assert ha == hb
    _assert_same_state(a, b)
    assert np.array_equal(a.predict(x), b.predict(x))
    assert np.array_equal(a.evaluate(x, y), b.evaluate(x, y))


class _floatx:
    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        self.old = fastnn.backend.floatx()
        fastnn.backend.set_floatx(self.dtype)

    def __exit__(self, *exc):
        fastnn.backend.set_floatx(self.old)


# (loss, data kind, output layers): every loss kernel, reading logits (fused or from_logits),
# probabilities (no fusable last activation) or predictions.
LOSSES = {
    "sparse_fused": ("sparse_categorical_crossentropy", "sparse", lambda: [L.Dense(3, "softmax")]),
    "sparse_from_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", lambda: [L.Dense(3)]),
    "sparse_probabilities": ("sparse_categorical_crossentropy", "sparse",
                             lambda: [L.Dense(3, "softmax"), L.Dropout(0.0)]),
    "cce_fused_smoothing": (losses.CategoricalCrossentropy(label_smoothing=0.1), "onehot",
                            lambda: [L.Dense(3), L.Softmax()]),
    "cce_from_logits": (losses.CategoricalCrossentropy(from_logits=True), "onehot", lambda: [L.Dense(3)]),
    "cce_probabilities": ("categorical_crossentropy", "onehot", lambda: [L.Dense(3, "sigmoid")]),
    "bce_fused": (losses.BinaryCrossentropy(label_smoothing=0.2), "binary", lambda: [L.Dense(3, "sigmoid")]),
    "bce_from_logits": (losses.BinaryCrossentropy(from_logits=True), "binary", lambda: [L.Dense(3)]),
    "bce_probabilities": ("binary_crossentropy", "binary", lambda: [L.Dense(3, "softmax")]),
    "mse": ("mse", "regression", lambda: [L.Dense(3)]),
    "mae": ("mae", "regression", lambda: [L.Dense(3, "tanh")]),
    "huber": (losses.Huber(delta=0.5), "regression", lambda: [L.Dense(3)]),
    "log_cosh": ("log_cosh", "regression", lambda: [L.Dense(3)]),
    "hinge": ("hinge", "binary", lambda: [L.Dense(3, "tanh")]),
    "kld": ("kl_divergence", "distribution", lambda: [L.Dense(3, "softmax")]),
}


@pytest.mark.parametrize("case", sorted(LOSSES))
def test_every_loss_matches_layer_path(case):
    loss, kind, head = LOSSES[case]
    x, y = _data(kind=kind)

    def make():
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu")] + head())
        m.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss=loss,
                  metrics=["accuracy" if kind == "sparse" else "mse"])
        return m
    a, ha, b, hb = _train_pair(make, x, y, dict(epochs=3, batch_size=16))
    assert np.isfinite(ha["loss"]).all()
    if case.endswith("probabilities"):
        # log(p) comes from the C library in the plan and from NumPy's own log on the layer
        # path: the same formula, results within a few float32 ulps rather than bitwise.
        for key in ha:
            np.testing.assert_allclose(ha[key], hb[key], rtol=1e-6)
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
        return
    assert ha == hb
    _assert_same_state(a, b)


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "sgd_momentum": lambda: optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov_decay": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adagrad": lambda: optimizers.Adagrad(0.05),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop_centered_momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adam": lambda: optimizers.Adam(0.01),
    "adam_amsgrad_clipnorm": lambda: optimizers.Adam(0.01, amsgrad=True, clipnorm=0.1),
    "adamw_clipvalue": lambda: optimizers.AdamW(0.01, clipvalue=0.01),
    "adam_global_clipnorm": lambda: optimizers.Adam(0.01, global_clipnorm=0.05),
    "adam_schedule": lambda: optimizers.Adam(optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_matches_layer_path(name):
    x, y = _data()

    def make():
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
        m.compile(optimizer=OPTIMIZERS[name](), loss="sparse_categorical_crossentropy")
        return m
    a, ha, b, hb = _train_pair(make, x, y, dict(epochs=3, batch_size=8))
    assert ha == hb
    _assert_same_state(a, b)


def test_train_on_batch_is_one_plan_call_and_matches():
    x, y = _data()
    models = []
    for use_plan in (True, False):
        fastnn.utils.set_random_seed(1)
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dropout(0.25), L.Dense(3, "softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if not use_plan:
            _no_plan(m)
        values = [m.train_on_batch(x[i:i + 8], y[i:i + 8]) for i in range(0, 48, 8)]
        models.append((m, values))
    (a, va), (b, vb) = models
    assert va == vb
    _assert_same_state(a, b)
    calls = []
    core = a._plan[1]._core
    a._plan[1]._core = _Spy(core, calls)
    a.train_on_batch(x[:8], y[:8])
    assert calls == ["train_step", "outputs"]  # one step call; outputs read for the metric


class _Spy:
    def __init__(self, core, calls):
        self._core, self._calls = core, calls

    def __getattr__(self, name):
        self._calls.append(name)
        return getattr(self._core, name)


def test_plan_is_rebuilt_when_what_it_copied_changes():
    x, y = _data()
    fastnn.utils.set_random_seed(0)
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer=optimizers.SGD(momentum=0.9), loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    first = m._plan[1]
    m.fit(x, y, epochs=1, verbose=0)
    assert m._plan[1] is first                     # reused while nothing changed
    m.optimizer.momentum = 0.5                     # a setting the plan copied
    m.fit(x, y, epochs=1, verbose=0)
    assert m._plan[1] is not first
    m.layers[0].trainable = False                  # a frozen layer needs an optimizer for fewer weights
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert m._plan is None
    before = m.layers[0].get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert m._plan[1] is not None
    assert all(np.array_equal(u, v) for u, v in zip(before, m.layers[0].get_weights()))


def test_reloaded_model_continues_identically_through_the_plan(tmp_path):
    x, y = _data()
    fastnn.utils.set_random_seed(2)
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dropout(0.2), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.fastnn")
    r = fastnn.load_model(tmp_path / "m.fastnn")
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    r.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    assert r._plan[1] is not None
    _assert_same_state(m, r)


def test_predicting_never_creates_optimizer_state():
    x, _ = _data()
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    out = m.predict(x)
    assert m.optimizer.variables() == [] and m.optimizer.iterations == 0
    assert m._predict_plan[0] is not None
    assert np.array_equal(out, _no_plan(m).predict(x))


def test_uncovered_parts_train_layer_by_layer_with_the_same_results():
    class Scaled(L.Dense):  # a user subclass: the plan cannot know what it computes
        def forward(self, x, training=False, logits=False):
            return super().forward(x, training, logits) * 1.0

    x, y = _data()
    m = fastnn.Sequential([L.Input((12,)), Scaled(10, activation="relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    assert m._plan == (m._plan[0], None)
    # per-sample weights take the layer path: the plan's kernels return mean losses only
    fastnn.utils.set_random_seed(0)
    a = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    a.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    a.fit(x, y, sample_weight=np.ones(len(x)), epochs=1, verbose=0, shuffle=False)
    fastnn.utils.set_random_seed(0)
    b = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    b.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    b.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_numpy_backend_never_uses_the_plan():
    x, y = _data()
    with fastnn.backend_scope("numpy"):
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, verbose=0)
        m.predict(x)
    assert m._plan is None and m._predict_plan is None


def test_buffers_stop_growing_in_steady_state():
    x, y = _data(n=64)
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.BatchNormalization(), L.Dropout(0.1),
                           L.Dense(3, "softmax")])
    m.compile(optimizer=optimizers.Adam(clipnorm=1.0), loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    core = m._plan[1]._core
    assert core.capacity == 16
    m.fit(x, y, epochs=3, batch_size=16, verbose=0)
    m.train_on_batch(x[:5], y[:5])
    assert m._plan[1]._core is core and core.capacity == 16


def test_plan_rejects_malformed_calls_without_crashing():
    x, y = _data()
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.train_on_batch(x, y)
    core = m._plan[1]._core
    with pytest.raises(ValueError, match="12 values per sample"):
        core.train_step(x[:, :5].copy(), y, 0.1, 2)
    with pytest.raises(TypeError, match="int64"):
        core.train_step(x, y.astype(np.int32), 0.1, 2)
    with pytest.raises(TypeError, match="float32"):
        core.train_step(x.astype(np.float64), y, 0.1, 2)
    with pytest.raises(ValueError, match="step"):
        core.train_step(x, y, 0.1, 0)
    with pytest.raises(ValueError, match="out must hold"):
        core.predict(x, np.empty((len(x), 2), np.float32))
