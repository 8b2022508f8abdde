"""Recorded programs (fastnn/program.py, csrc/program.cpp) against the eager path.

A program replays exactly the kernel calls the layers, losses and optimizers make when they run
eagerly, so on the native backend both must give bitwise-identical weights, optimizer state,
losses and outputs; every layer, loss and optimizer is exercised here. The NumPy backend (always
eager) is compared within rounding by tests/test_models.py and tests/test_course_models.py.
"""
import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import losses, optimizers, regularizers

RNG = np.random.default_rng(7)


def _no_plan(model):
    """Force the eager path on this model: no program is recorded."""
    model._program = lambda *args, **kwargs: None
    return model


def _train_program(model):
    return model._programs["train"][1]


def _train_pair(make, x, y, fit_kwargs, seed=3):
    """Train two identical models, one through its recorded program and one eagerly."""
    results = []
    for use_plan in (True, False):
        fastnn.utils.set_random_seed(seed)
        model = make()
        if not use_plan:
            _no_plan(model)
        history = model.fit(x, y, verbose=0, **fit_kwargs)
        results.append((model, history.history))
    (a, ha), (b, hb) = results
    assert _train_program(a) is not None, "the program was not used"
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


def test_train_on_batch_is_one_program_call_and_matches():
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
    a.train_on_batch(x[:8], y[:8])  # recorded again: b's forced eager path changed a setting
    calls = []
    compiled = _train_program(a)
    compiled._core = _Spy(compiled._core, calls)
    a.train_on_batch(x[:8], y[:8])
    assert calls == ["run", "view"]  # one native call; the outputs read for the metric


class _Spy:
    def __init__(self, core, calls):
        self._core, self._calls = core, calls

    def __getattr__(self, name):
        self._calls.append(name)
        return getattr(self._core, name)


def test_program_is_recorded_again_when_anything_it_was_recorded_from_changes():
    x, y = _data()
    fastnn.utils.set_random_seed(0)
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer=optimizers.SGD(momentum=0.9), loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    first = _train_program(m)
    m.fit(x, y, epochs=1, verbose=0)
    assert _train_program(m) is first             # reused while nothing changed
    m.optimizer.momentum = 0.5                     # any setting
    m.fit(x, y, epochs=1, verbose=0)
    assert _train_program(m) is not first
    m.layers[0].trainable = False                  # a frozen layer needs an optimizer for fewer weights
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = m.layers[0].get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert _train_program(m) is not None
    assert all(np.array_equal(u, v) for u, v in zip(before, m.layers[0].get_weights()))


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_steady_state_training_changes_no_setting(backend):
    """Nothing a step does counts as a configuration change, so a program is recorded once."""
    from fastnn import tracking
    x, y = _data(n=64)
    with fastnn.backend_scope(backend):
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.BatchNormalization(),
                               L.Dropout(0.1), L.GaussianNoise(0.1), L.PReLU(), L.LayerNormalization(),
                               L.Dense(3, "sigmoid")])
        m.compile(optimizer=optimizers.Adam(clipnorm=1.0), loss="categorical_crossentropy",
                  metrics=["accuracy"])
        m.fit(x, np.eye(3)[y], epochs=1, batch_size=16, verbose=0)
        count = tracking.count()
        m.fit(x, np.eye(3)[y], epochs=2, batch_size=16, verbose=0)
        m.predict(x)
        assert tracking.count() == count


def test_reloaded_model_continues_identically_through_the_program(tmp_path):
    x, y = _data()
    fastnn.utils.set_random_seed(2)
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dropout(0.2), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.fastnn")
    r = fastnn.load_model(tmp_path / "m.fastnn")
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    r.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    assert _train_program(r) is not None
    _assert_same_state(m, r)


def test_predicting_never_creates_optimizer_state():
    x, _ = _data()
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    out = m.predict(x)
    assert m.optimizer.variables() == [] and m.optimizer.iterations == 0
    assert m._programs["predict"][1] is not None
    assert np.array_equal(out, _no_plan(m).predict(x))


def test_unrecordable_parts_train_eagerly_with_the_same_results():
    class Scaled(L.Dense):  # a user subclass doing NumPy arithmetic: it cannot be recorded
        def forward(self, x, training=False, logits=False):
            return super().forward(x, training, logits) * 1.0

    x, y = _data()
    m = fastnn.Sequential([L.Input((12,)), Scaled(10, activation="relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    assert _train_program(m) is None and m.optimizer.iterations == 2
    # per-sample weights run eagerly: the loss kernels return mean losses only
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


def test_numpy_backend_never_records():
    x, y = _data()
    with fastnn.backend_scope("numpy"):
        m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, verbose=0)
        m.predict(x)
    assert m._programs == {}


def test_program_inputs_are_checked():
    x, y = _data()
    m = fastnn.Sequential([L.Input((12,)), L.Dense(10, "relu"), L.Dense(3, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.train_on_batch(x, y)
    with pytest.raises(ValueError, match="expects 2 inputs"):
        _train_program(m)._core.run(len(x), [x], [0.1, 2.0, 0.0], 3, [])


def test_executor_and_recorder_know_no_layer():
    """The executor dispatches on kernels and the recorder on the kernels' table: neither names a
    layer class, so a layer is added by writing its class alone."""
    import pathlib
    root = pathlib.Path(fastnn.__file__).parent
    sources = [root / "program.py", root / "native.py"]
    csrc = pathlib.Path(__file__).resolve().parents[1] / "csrc"
    sources += [csrc / "program.h", csrc / "program.cpp", csrc / "bind_program.cpp"]
    text = "\n".join(p.read_text() for p in sources)
    for cls in ("Dense", "BatchNormalization", "LayerNormalization", "Dropout", "PReLU",
                "GaussianNoise", "Flatten", "Softmax", "LeakyReLU"):
        assert cls not in text, f"{cls} is named in the executor or the recorder"


def test_every_kernel_of_the_executor_has_a_twin_with_its_parameters():
    import inspect
    from fastnn import _core, reference
    for name, params, _ in _core.program_kernels:
        twin = getattr(reference, name)
        assert list(inspect.signature(twin).parameters) == [p.split(":")[0] for p in params.split()], name


# -- a setting changed after training trains exactly like a model built with it -------------------
def _snapshot(model):
    return (model.get_weights(), model.optimizer.get_state(), [l.get_state() for l in model.layers])


def _restore(model, snap):
    weights, (iterations, variables), states = snap
    model.set_weights(weights)
    model.optimizer.set_state(model._params, iterations, variables)
    for layer, state in zip(model.layers, states):
        layer.set_state(state)


SETTING_CHANGES = {
    "dropout_rate": (lambda v: [L.Dense(8, "relu"), L.Dropout(v, seed=5), L.Dense(3)], 0.1, 0.6,
                     lambda m, v: setattr(m.layers[1], "rate", v), "mse"),
    "dense_activation": (lambda v: [L.Dense(8, v), L.Dense(3)], "relu", "tanh",
                         lambda m, v: setattr(m.layers[0], "activation", v), "mse"),
    "batchnorm_momentum": (lambda v: [L.Dense(8), L.BatchNormalization(momentum=v), L.Dense(3)], 0.99, 0.5,
                           lambda m, v: setattr(m.layers[1], "momentum", v), "mse"),
    "batchnorm_epsilon": (lambda v: [L.Dense(8), L.BatchNormalization(epsilon=v), L.Dense(3)], 1e-3, 0.5,
                          lambda m, v: setattr(m.layers[1], "epsilon", v), "mse"),
    "leaky_relu_slope": (lambda v: [L.Dense(8), L.LeakyReLU(v), L.Dense(3)], 0.3, 0.05,
                         lambda m, v: setattr(m.layers[1], "negative_slope", v), "mse"),
    "huber_delta": (lambda v: [L.Dense(8, "relu"), L.Dense(3)], 1.0, 0.05,
                    lambda m, v: setattr(m.loss, "delta", v), "huber"),
    "adam_beta_1": (lambda v: [L.Dense(8, "relu"), L.Dense(3)], 0.9, 0.5,
                    lambda m, v: setattr(m.optimizer, "beta_1", v), "mse"),
    "trainable_flag": (lambda v: [L.Dense(8, "relu", trainable=v), L.Dense(3)], True, False,
                       lambda m, v: setattr(m.layers[0], "trainable", v), "mse"),
}


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("case", sorted(SETTING_CHANGES))
def test_a_changed_setting_trains_like_a_model_built_with_it(case, backend):
    layers, old, new, change, loss = SETTING_CHANGES[case]
    x, y = _data(n=40, kind="regression")

    def make(value):
        m = fastnn.Sequential([L.Input((12,))] + layers(value))
        if case == "huber_delta":
            m.compile(optimizer="adam", loss=losses.Huber(value))
        else:
            m.compile(optimizer=optimizers.Adam(beta_1=value) if case == "adam_beta_1" else "adam",
                      loss=loss)
        return m

    with fastnn.backend_scope(backend):
        fastnn.utils.set_random_seed(4)
        changed = make(old)
        changed.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        before = changed.predict(x)  # a recorded prediction, which the change must not reuse
        snap = _snapshot(changed)
        change(changed, new)
        fastnn.utils.set_random_seed(4)
        built = make(new)
        built.build((12,))
        if case == "trainable_flag":  # the optimizer of a frozen layer holds fewer arrays
            built.layers[0].trainable = True
            _restore(built, snap)
            built.layers[0].trainable = False
            built.compile(optimizer="adam", loss=loss)
            changed.compile(optimizer="adam", loss=loss)
        else:
            _restore(built, snap)
        if case not in ("dropout_rate", "huber_delta", "adam_beta_1", "batchnorm_momentum",
                        "trainable_flag"):
            # settings that act in inference: the prediction follows them at once
            assert np.array_equal(changed.predict(x), built.predict(x))
            assert not np.array_equal(changed.predict(x), before)
        changed.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        built.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        assert np.array_equal(changed.predict(x), built.predict(x))
    for a, b in zip(changed.get_weights(), built.get_weights()):
        assert np.array_equal(a, b)
    def described(m):
        return [{k: v for k, v in l["config"].items() if k != "name"} for l in m.get_config()["layers"]]
    assert described(changed) == described(built)


def _evaluation_models():
    """Models whose evaluation covers the fused softmax loss, BatchNormalization and Dropout in
    inference mode, a plain loss on float targets, and a two-output graph with loss weights."""
    fastnn.utils.set_random_seed(4)
    bn = fastnn.Sequential([L.Input((12,)), L.Dense(16, "relu"), L.BatchNormalization(), L.Dropout(0.3),
                            L.Dense(3, "softmax")])
    bn.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(n=70)
    bn.fit(x, y, batch_size=16, epochs=1, verbose=0)  # moving statistics away from their start
    mse = fastnn.Sequential([L.Input((12,)), L.Dense(8, "tanh"), L.Dense(3)])
    mse.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    a = fastnn.keras.Input(shape=(12,), name="a")
    h = L.Dense(8, activation="relu")(a)
    graph = fastnn.keras.Model(a, {"reg": L.Dense(3, name="reg")(h),
                                   "cls": L.Dense(3, activation="softmax", name="cls")(h)})
    graph.compile(optimizer="sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 0.25, "cls": 2.0}, metrics={"cls": ["accuracy"]})
    xf, yf = _data(n=70, kind="onehot")
    return [(bn, x, y), (mse, xf, yf), (graph, x, {"reg": yf, "cls": y})]


def test_evaluate_and_inference_calls_run_the_recorded_programs_and_match_eager():
    for model, x, y in _evaluation_models():
        recorded = model.evaluate(x, y, batch_size=16, return_dict=True)
        batch = model.test_on_batch(x[:16], {k: v[:16] for k, v in y.items()} if isinstance(y, dict)
                                    else y[:16], return_dict=True)
        outputs = model(x[:16])
        assert model._programs["evaluate"][1] is not None, f"{model.name}: evaluate was not recorded"
        assert model._programs["predict"][1] is not None, f"{model.name}: model(x) was not recorded"
        calls = []
        compiled = model._programs["evaluate"][1]
        compiled._core = _Spy(compiled._core, calls)
        model.evaluate(x, y, batch_size=16)
        # one native run per batch of 16 (70 rows: 5 batches), plus the views of the outputs
        assert calls.count("run") == 5
        eager = _no_plan(model)
        assert eager.evaluate(x, y, batch_size=16, return_dict=True) == recorded  # bitwise
        ys = {k: v[:16] for k, v in y.items()} if isinstance(y, dict) else y[:16]
        assert eager.test_on_batch(x[:16], ys, return_dict=True) == batch
        expected = eager(x[:16])
        for got, want in ([(outputs[k], expected[k]) for k in outputs] if isinstance(outputs, dict)
                          else [(outputs, expected)]):
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_evaluate_recorded_agrees_with_the_numpy_backend_within_rounding():
    for model, x, y in _evaluation_models():
        native = model.evaluate(x, y, batch_size=16, return_dict=True)
        assert model._programs["evaluate"][1] is not None
        fastnn.set_backend("numpy")
        try:
            reference = model.evaluate(x, y, batch_size=16, return_dict=True)
        finally:
            fastnn.set_backend("native")
        assert list(native) == list(reference)
        for key in native:
            assert native[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), key


def test_evaluate_records_again_for_inputs_of_another_shape_and_weights_run_eagerly():
    model, x, y = _evaluation_models()[0]
    model.evaluate(x, y, batch_size=16)
    first = model._programs["evaluate"][1]
    assert first.inputs == [((12,), np.dtype(np.float32)), ((), np.dtype(np.int64))]
    weights = np.linspace(0.5, 1.5, len(x))
    calls = []
    first._core = _Spy(first._core, calls)
    weighted = model.evaluate(x, y, batch_size=16, sample_weight=weights)
    assert calls == []  # per-sample weights: the eager path
    assert weighted == _no_plan(model).evaluate(x, y, batch_size=16, sample_weight=weights)
