"""Tests of ``fastnn.utils.gradient_check`` (``fastnn/gradcheck.py``): every layer type, activation
and loss passes on both backends; a deliberately wrong backward is reported for the layer it
breaks; the model is bitwise unchanged afterwards; bad arguments raise before anything changes.

Thresholds. In float64 with epsilon = 1e-5 the relative errors of a right backward pass are 7e-12 to
1.1e-7 (measured over 25 seeds of the every-layer model on both backends), so "right" is < 1e-6. A
gradient scaled by 1.01 gives ||0.01 a|| / ||2.01 a|| = 5.0e-3 and a dropped one gives 1, so
"wrong" is > 1e-3: the two bands are three orders of magnitude apart.
"""
import numpy as np
import pytest

import fastnn
from fastnn import losses, optimizers
from fastnn.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, LayerNormalization,
                           LeakyReLU, ReLU, Softmax)
from fastnn.regularizers import L1, L1L2, L2
from fastnn.utils import gradient_check, set_random_seed

BACKENDS = ["native", "numpy"]
RIGHT = 1e-6       # a correct backward pass stays below this (float64)
WRONG = 1e-3       # a 1% mistake in one gradient lands above this
SCALED = 0.01 / 2.01  # the error of a gradient scaled by 1.01: ||0.01 a|| / (||a|| + ||1.01 a||)
ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "softmax",
               "log_softmax"]
RANDOM = "random_normal"  # nonzero biases and betas, so no gradient is checked at a special point


@pytest.fixture(autouse=True)
def _float64():
    fastnn.set_floatx("float64")  # conftest restores float32 afterwards


def every_layer_model(seed=0):
    """Flatten on (N, 4, 3), Dense with six activations, Activation, ReLU, LeakyReLU, batch and layer
    normalization, Dropout(0.3), L1/L2/L1L2 on kernels and biases, softmax output, cross-entropy.
    (Every activation also has a test of its own: hidden softmax layers in this deep a stack shrink
    the gradients of the first layers toward the check's rounding floor.)"""
    set_random_seed(seed)
    stack = [Flatten(input_shape=(4, 3)),
             Dense(10, activation="tanh", kernel_regularizer=L2(0.01), bias_regularizer=L1(0.01),
                   bias_initializer=RANDOM),
             BatchNormalization(),
             ReLU(),
             Dense(9, kernel_regularizer=L1L2(0.01, 0.01), bias_initializer=RANDOM),
             LeakyReLU(0.2),
             LayerNormalization(gamma_initializer=RANDOM, beta_initializer=RANDOM),
             Dropout(0.3, seed=7),
             Activation("elu")]
    stack += [Dense(8, activation=a, bias_initializer=RANDOM)
              for a in ["sigmoid", "relu", "selu", "softplus"]]
    stack.append(Dense(5, activation="softmax", bias_initializer=RANDOM))
    model = fastnn.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4, 3)), rng.integers(0, 5, n)


def weighted_layers(model):
    return [layer.name for layer in model.layers if layer.trainable_weights]


def assert_right(errors):
    """Every error small, and none exactly 0 (which would mean a gradient below the check's resolution
    and a vacuous pass)."""
    flat = {(layer, w): e for layer, by_weight in errors.items() for w, e in by_weight.items()}
    assert flat and all(0 < e < RIGHT for e in flat.values()), flat


# -- a right backward passes ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_layer_type_passes(monkeypatch, backend):
    fastnn.set_backend(backend)
    model = every_layer_model()
    x, y = data()
    dropout = next(layer for layer in model.layers if isinstance(layer, Dropout))
    dropped = []  # which units Dropout zeroed in each training pass of the check
    true_forward = dropout.forward

    def forward(h, training=False, logits=False):
        out = true_forward(h, training=training, logits=logits)
        if training:
            dropped.append((np.asarray(out) == 0).tobytes())
        return out
    monkeypatch.setattr(dropout, "forward", forward)
    errors = gradient_check(model, x, y, per_weight=True, max_params_per_weight=None)
    assert list(errors) == weighted_layers(model)
    assert_right(errors)
    assert {name: set(by_weight) for name, by_weight in errors.items()} == {
        layer.name: ({"gamma", "beta"} if "normalization" in layer.name else {"kernel", "bias"})
        for layer in model.layers if layer.trainable_weights}
    # the check ran with units dropped, and with one frozen mask: the same units at every pass
    assert len(dropped) == 1 + 2 * sum(w.size for w in model.trainable_weights)
    assert len(set(dropped)) == 1
    mask = np.frombuffer(dropped[0], dtype=bool)
    assert 0 < mask.mean() < 1
    summary = gradient_check(model, x, y, max_params_per_weight=None)
    assert summary == {name: max(by_weight.values()) for name, by_weight in errors.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_dense_activation_passes(backend, activation):
    fastnn.set_backend(backend)
    set_random_seed(1)
    model = fastnn.Sequential([Dense(6, activation=activation, input_shape=(5,), bias_initializer=RANDOM),
                               Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    assert_right(gradient_check(model, rng.normal(size=(12, 5)), rng.integers(0, 3, 12), per_weight=True))


OPTION_CASES = {  # layer options and 3-D inputs (statistics over N and 4, normalized over 3)
    "batch_norm_3d": lambda: [BatchNormalization(input_shape=(4, 3), gamma_initializer=RANDOM,
                                                 beta_initializer=RANDOM), Flatten()],
    "layer_norm_3d": lambda: [LayerNormalization(input_shape=(4, 3), gamma_initializer=RANDOM,
                                                 beta_initializer=RANDOM), Flatten()],
    "dropout_3d": lambda: [Dropout(0.5, input_shape=(4, 3)), Flatten(), Dense(5, activation="tanh")],
    "batch_norm_without_gamma": lambda: [Flatten(input_shape=(4, 3)), Dense(5, activation="tanh"),
                                         BatchNormalization(scale=False)],
    "layer_norm_without_beta": lambda: [Flatten(input_shape=(4, 3)), Dense(5, activation="tanh"),
                                        LayerNormalization(center=False)],
    "dense_without_bias": lambda: [Flatten(input_shape=(4, 3)), Dense(5, activation="elu", use_bias=False)],
    "relu_with_slope": lambda: [Flatten(input_shape=(4, 3)), Dense(5, bias_initializer=RANDOM),
                                ReLU(negative_slope=0.1)],
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_layer_options_and_3d_inputs_pass(backend, case):
    fastnn.set_backend(backend)
    set_random_seed(8)
    model = fastnn.Sequential(OPTION_CASES[case]() + [Dense(5, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    assert_right(gradient_check(model, *data(10, seed=8), per_weight=True))


def _loss_cases(rng, n):
    """(loss, last layers, targets): every loss class, fused and on probabilities where both exist."""
    normal, unit = rng.normal(size=(n, 3)), rng.random((n, 3))
    soft, labels = rng.dirichlet(np.ones(3), size=n), rng.integers(0, 3, n)
    return {
        "mse": ("mse", [Dense(3)], normal),
        "mae": ("mae", [Dense(3)], normal),
        "huber": (losses.Huber(delta=0.5), [Dense(3)], 2 * normal),  # both sides of |d| = delta
        "log_cosh": ("log_cosh", [Dense(3)], 2 * normal),
        "hinge": ("hinge", [Dense(3, activation="tanh")], (unit > 0.5).astype(float)),
        "kl_divergence": ("kl_divergence", [Dense(3, activation="softmax")], soft),
        "binary_fused": (losses.BinaryCrossentropy(label_smoothing=0.1),
                         [Dense(3, activation="sigmoid")], unit),
        "binary_probabilities": ("binary_crossentropy", [Dense(3, activation="sigmoid"),
                                                         Activation("linear")], unit),
        "binary_from_logits": (losses.BinaryCrossentropy(from_logits=True), [Dense(3)], unit),
        "categorical_fused": (losses.CategoricalCrossentropy(label_smoothing=0.1),
                              [Dense(3, activation="softmax")], soft),
        "categorical_probabilities": ("categorical_crossentropy", [Dense(3, activation="softmax"),
                                                                   Activation("linear")], soft),
        "categorical_from_logits": (losses.CategoricalCrossentropy(from_logits=True), [Dense(3)], soft),
        "sparse_softmax_layer": ("sparse_categorical_crossentropy", [Dense(3), Softmax()], labels),
        "sparse_from_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), [Dense(3)], labels),
        "mape": ("mape", [Dense(3)], normal + 3),
        "msle": ("msle", [Dense(3, activation="softplus")], 2 * unit),
        "poisson": ("poisson", [Dense(3, activation="softplus")], rng.integers(0, 4, (n, 3)).astype(float)),
        "squared_hinge": ("squared_hinge", [Dense(3, activation="tanh")], (unit > 0.5).astype(float)),
        "cosine": (losses.CosineSimilarity(), [Dense(3)], normal),
        "categorical_hinge": ("categorical_hinge", [Dense(3)], np.eye(3)[labels]),
        "binary_focal_fused": (losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.5,
                                                              label_smoothing=0.1),
                               [Dense(3, activation="sigmoid")], unit),
        "binary_focal_probabilities": (losses.BinaryFocalCrossentropy(),
                                       [Dense(3, activation="sigmoid"), Activation("linear")], unit),
        "categorical_focal_fused": (losses.CategoricalFocalCrossentropy(label_smoothing=0.1),
                                    [Dense(3, activation="softmax")], np.eye(3)[labels]),
        "categorical_focal_probabilities": (losses.CategoricalFocalCrossentropy(gamma=3.0),
                                            [Dense(3, activation="softmax"), Activation("linear")],
                                            np.eye(3)[labels]),
        "mse_sum": (losses.MeanSquaredError(reduction="sum"), [Dense(3)], normal),
    }


LOSS_CASES = list(_loss_cases(np.random.default_rng(0), 1))


def test_loss_cases_cover_every_loss_class():
    covered = {type(losses.get(loss)) for loss, _, _ in _loss_cases(np.random.default_rng(0), 1).values()}
    every = {cls for cls in vars(losses).values() if isinstance(cls, type) and issubclass(cls, losses.Loss)
             and cls is not losses.Loss and not cls.__name__.startswith("_")}
    assert covered == every


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LOSS_CASES)
def test_each_loss_passes(backend, case):
    fastnn.set_backend(backend)
    rng = np.random.default_rng(3)
    loss, last, y = _loss_cases(rng, 10)[case]
    set_random_seed(3)
    model = fastnn.Sequential([Dense(5, activation="tanh", input_shape=(4,), bias_initializer=RANDOM)] + last)
    model.compile(loss=loss)
    assert_right(gradient_check(model, rng.normal(size=(10, 4)), y, per_weight=True))


# -- a wrong backward is caught, in the layer that is wrong -----------------------------------------
def _break(monkeypatch, layer, damage):
    """Replace ``layer.backward`` by the true one followed by ``damage(layer, dx)``."""
    true_backward = layer.backward

    def broken(dy, need_dx=True, logits=False):
        return damage(layer, true_backward(dy, need_dx=need_dx, logits=logits))
    monkeypatch.setattr(layer, "backward", broken)


def _scale_first_grad(layer, dx):
    layer.grads[0] *= 1.01
    return dx


def _drop_second_grad(layer, dx):
    layer.grads[1][...] = 0
    return dx


# (layer index in every_layer_model, damage, broken weight, its error); these weights have no
# regularizer, so the damaged gradient is all of the analytic one and the error is exact
BREAKAGES = {
    "dense_kernel_scaled": (9, _scale_first_grad, "kernel", SCALED),
    "dense_bias_dropped": (4, _drop_second_grad, "bias", 1.0),
    "batch_norm_gamma_scaled": (2, _scale_first_grad, "gamma", SCALED),
    "layer_norm_beta_dropped": (6, _drop_second_grad, "beta", 1.0),
    "softmax_output_kernel_scaled": (-1, _scale_first_grad, "kernel", SCALED),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_weight_gradient_is_reported_for_exactly_that_layer(monkeypatch, backend, breakage):
    fastnn.set_backend(backend)
    index, damage, weight, expected = BREAKAGES[breakage]
    model = every_layer_model()
    broken = model.layers[index]
    _break(monkeypatch, broken, damage)
    errors = gradient_check(model, *data(), per_weight=True)
    assert errors[broken.name][weight] == pytest.approx(expected, rel=1e-3)
    assert errors[broken.name][weight] > WRONG
    others = {(name, w): e for name, by_weight in errors.items() for w, e in by_weight.items()
              if (name, w) != (broken.name, weight)}
    assert all(e < RIGHT for e in others.values()), others


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_broken_weightless_layer_shows_in_the_layers_before_it(monkeypatch, backend):
    fastnn.set_backend(backend)
    model = every_layer_model()
    leaky = model.layers[5]
    assert isinstance(leaky, LeakyReLU)
    # the classic slip: backward passes dy through, forgetting the slope 0.2 of negative inputs
    monkeypatch.setattr(leaky, "backward", lambda dy, need_dx=True, logits=False: dy)
    errors = gradient_check(model, *data())
    before, after = weighted_layers(model)[:3], weighted_layers(model)[3:]  # dense, bn, dense_1 | ...
    assert all(errors[name] > WRONG for name in before), errors
    assert all(errors[name] < RIGHT for name in after), errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_weight_with_zero_true_gradient_reads_zero_unless_backward_invents_one(monkeypatch, backend):
    # BatchNormalization subtracts the batch mean, so the bias of the Dense feeding it has gradient
    # exactly 0: both sides are rounding noise, below the check's resolution, and the error is 0.
    fastnn.set_backend(backend)
    set_random_seed(4)
    model = fastnn.Sequential([Dense(6, input_shape=(4,), bias_initializer=RANDOM), BatchNormalization(),
                               Activation("tanh"), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 4)), rng.integers(0, 3, 16)
    errors = gradient_check(model, x, y, per_weight=True)
    assert errors[model.layers[0].name]["bias"] == 0.0
    assert 0 < errors[model.layers[0].name]["kernel"] < RIGHT

    def invent_bias_gradient(layer, dx):
        layer.grads[1] += 1e-3
        return dx
    _break(monkeypatch, model.layers[0], invent_bias_gradient)
    assert gradient_check(model, x, y, per_weight=True)[model.layers[0].name]["bias"] == \
        pytest.approx(1.0, abs=1e-6)


# -- the model is left exactly as it was ------------------------------------------------------------
def _fingerprint(model):
    iterations, variables = model.optimizer.get_state()
    return {"weights": [w.tobytes() for w in model.get_weights()],
            "grads": [g.tobytes() for layer in model.layers for g in layer.grads],
            "states": [layer.get_state() for layer in model.layers],
            "optimizer": (iterations, [v.tobytes() for v in variables]),
            "fastnn rng": fastnn.utils.rng().bit_generator.state}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_model_is_bitwise_unchanged(backend):
    fastnn.set_backend(backend)
    x, y = data()
    model, twin = every_layer_model(), every_layer_model()
    for m in (model, twin):  # Adam state, moved moving statistics, dropout steps > 0, fresh grads
        m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    before = _fingerprint(model)
    assert before["states"][7]["step"] == 4 and before["optimizer"][0] == 4
    gradient_check(model, x, y, max_params_per_weight=None)
    assert _fingerprint(model) == before
    # and it trains on exactly as the twin that was never checked
    model.train_on_batch(x, y)
    twin.train_on_batch(x, y)
    assert [w.tobytes() for w in model.get_weights()] == [w.tobytes() for w in twin.get_weights()]
    assert [layer.get_state() for layer in model.layers] == [layer.get_state() for layer in twin.layers]


def test_frozen_layers_are_not_checked_and_run_as_in_fit():
    set_random_seed(5)
    frozen_bn = BatchNormalization(trainable=False)  # inference mode, as in fit
    frozen_dense = Dense(6, activation="tanh", trainable=False)
    model = fastnn.Sequential([Dense(6, activation="tanh", input_shape=(4,), bias_initializer=RANDOM),
                               frozen_bn, frozen_dense, Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    errors = gradient_check(model, rng.normal(size=(8, 4)), rng.integers(0, 3, 8), per_weight=True)
    assert list(errors) == [model.layers[0].name, model.layers[3].name]
    assert_right(errors)


# -- cost -------------------------------------------------------------------------------------------
def test_max_params_per_weight_caps_the_forward_passes(monkeypatch):
    model = every_layer_model()
    x, y = data()
    calls = []  # the checker's only ways in: one compute_gradients, then compute_loss per evaluation
    for method in ("compute_gradients", "compute_loss"):
        true_method = getattr(model, method)
        monkeypatch.setattr(model, method, lambda *args, _true=true_method, _name=method, **kwargs:
                            calls.append(_name) or _true(*args, **kwargs))
    first = gradient_check(model, x, y, max_params_per_weight=3, per_weight=True)
    sizes = [w.size for w in model.trainable_weights]
    assert calls[0] == "compute_gradients" and set(calls[1:]) == {"compute_loss"}
    assert len(calls) == 1 + 2 * sum(min(size, 3) for size in sizes)  # one analytic pass + 2 per entry
    assert gradient_check(model, x, y, max_params_per_weight=3, per_weight=True) == first  # seeded
    assert gradient_check(model, x, y, max_params_per_weight=3, per_weight=True, seed=1) != first
    calls.clear()
    gradient_check(model, x, y, max_params_per_weight=None)
    assert len(calls) == 1 + 2 * sum(sizes)


def test_a_mnist_sized_layer_is_checked_quickly():
    set_random_seed(6)
    model = fastnn.Sequential([Dense(128, activation="relu", input_shape=(784,), bias_initializer=RANDOM),
                               Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(6)
    errors = gradient_check(model, rng.random((8, 784)), rng.integers(0, 10, 8), per_weight=True)
    assert_right(errors)  # 100 of the 100,352 kernel entries: 621 forward passes in all


def test_the_float32_rebuild_in_the_docstring_works():
    fastnn.set_floatx("float32")
    set_random_seed(7)
    model32 = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(4,)),
                                 Dense(3, activation="softmax")])
    model32.compile(loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(7).normal(size=(16, 4)), np.arange(16) % 3
    with pytest.raises(ValueError, match=r"needs a float64 model.*fastnn\.set_floatx\('float64'\)"):
        gradient_check(model32, x, y)
    fastnn.set_floatx("float64")
    model64 = fastnn.Sequential.from_config(model32.get_config())
    model64.compile(loss=model32.loss)
    model64.set_weights(model32.get_weights())
    assert max(gradient_check(model64, x, y).values()) < RIGHT


# -- bad arguments ----------------------------------------------------------------------------------
def _uncompiled():
    return fastnn.Sequential([Dense(3, input_shape=(4,))])


def _unbuilt():
    model = fastnn.Sequential([Dense(3)])
    model.compile(loss="mse")
    return model


def _float32():
    fastnn.set_floatx("float32")
    model = fastnn.Sequential([Dense(3, input_shape=(4,))])
    model.compile(loss="mse")
    fastnn.set_floatx("float64")
    return model


def _step():
    model = fastnn.Sequential([Dense(3, activation="step", input_shape=(4,))])
    model.compile(loss="mse")
    return model


def _same_names():
    model = fastnn.Sequential([Dense(3, input_shape=(4,), name="hidden"), Dense(3, name="hidden")])
    model.compile(loss="mse")
    return model


BAD_MODELS = {
    "not a model": (lambda: Dense(3), TypeError, r"expects a fastnn model \(Sequential or Model\), got Dense"),
    "two layers of one name": (_same_names, ValueError, r"more than one layer named 'hidden'"),
    "uncompiled": (_uncompiled, ValueError, r"needs a compiled model.*call model\.compile\(loss=\.\.\.\)"),
    "unbuilt": (_unbuilt, ValueError, r"needs a built model"),
    "float32": (_float32, ValueError, r"needs a float64 model, got \S+ with float32 weights"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_a_model_that_cannot_be_checked_raises(case):
    make, error, message = BAD_MODELS[case]
    with pytest.raises(error, match=message):
        gradient_check(make(), np.zeros((4, 4)), np.zeros((4, 3)))


x_ok, y_ok = data()
BAD_CALLS = {
    "wrong input shape": ({"x": np.zeros((16, 4, 4))}, ValueError,
                          r"expects inputs of shape \(None, 4, 3\), got array of shape \(16, 4, 4\)"),
    "1-d x": ({"x": np.zeros(12)}, ValueError, r"expects a batch of inputs"),
    "y too short": ({"y": y_ok[:5]}, ValueError, r"same number of samples: got 16 inputs"),
    "label out of range": ({"y": np.full(16, 5)}, ValueError, r"labels must be integers in \[0, 5\)"),
    "NaN in x": ({"x": np.where(np.arange(12).reshape(4, 3) == 7, np.nan, x_ok)}, ValueError,
                 r"x contains NaN or inf"),
    "string x": ({"x": np.full((16, 4, 3), "a")}, TypeError, r"real numeric array"),
    "one sample with batch norm": ({"x": x_ok[:1], "y": y_ok[:1]}, ValueError, r"needs at least 2 samples"),
    "epsilon 0": ({"epsilon": 0}, ValueError, r"epsilon must be a positive number, got 0"),
    "epsilon NaN": ({"epsilon": float("nan")}, ValueError, r"epsilon must be a positive number"),
    "epsilon string": ({"epsilon": "1e-5"}, ValueError, r"epsilon must be a positive number"),
    "cap 0": ({"max_params_per_weight": 0}, ValueError,
              r"max_params_per_weight must be a positive integer or None, got 0"),
    "cap float": ({"max_params_per_weight": 2.5}, ValueError, r"max_params_per_weight must be"),
    "cap bool": ({"max_params_per_weight": True}, ValueError, r"max_params_per_weight must be"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_arguments_raise_and_change_nothing(case):
    model = every_layer_model()
    model.fit(x_ok, y_ok, batch_size=8, verbose=0)
    kwargs, error, message = BAD_CALLS[case]
    kwargs = {"x": x_ok, "y": y_ok, **kwargs}
    before = _fingerprint(model)
    with pytest.raises(error, match=message):
        gradient_check(model, **kwargs)
    assert _fingerprint(model) == before


def test_a_step_activation_has_no_gradient_to_check():
    with pytest.raises(ValueError, match=r"'step' activation, which has no gradient"):
        gradient_check(_step(), np.zeros((4, 4)), np.zeros((4, 3)))


# -- the public seam the checker uses: Model.compute_gradients / compute_loss ------------------------
def _sequential():
    model = every_layer_model()  # BatchNormalization, Dropout, LayerNormalization, penalties
    return (model, *data())


def _functional():
    set_random_seed(11)
    a, b = fastnn.keras.Input(shape=(3,), name="a"), fastnn.keras.Input(shape=(3,), name="b")
    shared = Dense(4, activation="tanh", kernel_regularizer=L2(0.01), name="shared")
    ha, hb = shared(a), shared(b)  # one layer called twice: its gradient is the sum of both calls
    merged = fastnn.layers.Concatenate()([fastnn.layers.Add()([ha, hb]),
                                          fastnn.layers.Multiply()([ha, hb])])
    h = BatchNormalization()(Dropout(0.3, seed=3)(merged))
    model = fastnn.keras.Model([a, b], Dense(3, activation="softmax", name="out")(h))
    rng = np.random.default_rng(11)
    return model, [rng.normal(size=(8, 3)), rng.normal(size=(8, 3))], rng.integers(0, 3, 8)


def _recurrent(cls):
    def make():
        set_random_seed(12)
        model = fastnn.Sequential([fastnn.layers.Input(shape=(5, 3)), cls(4, return_sequences=True),
                                   Dropout(0.2, seed=4), cls(3, kernel_regularizer=L2(0.01)),
                                   Dense(2, activation="softmax")])
        rng = np.random.default_rng(12)
        return model, rng.normal(size=(6, 5, 3)), rng.integers(0, 2, 6)
    return make


SEAM_MODELS = {"sequential": _sequential, "functional": _functional,
               "simple_rnn": _recurrent(fastnn.layers.SimpleRNN), "lstm": _recurrent(fastnn.layers.LSTM),
               "gru": _recurrent(fastnn.layers.GRU)}


def _trained(kind, optimizer="adam"):
    """A compiled model of ``kind`` after one epoch, so that it has optimizer state, moved moving
    statistics, advanced random streams and gradient arrays from its last step."""
    model, x, y = SEAM_MODELS[kind]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return model, x, y


def _model_fingerprint(model):
    return {**_fingerprint(model), "tracking": fastnn.tracking.count(),
            "moving": [w.tobytes() for w in model.non_trainable_weights]}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(SEAM_MODELS))
def test_compute_gradients_is_the_gradient_a_training_step_applies(backend, kind):
    # SGD with learning rate 1 and no momentum updates w to w - g, exactly rounded once: the weights
    # after train_on_batch are bitwise w - g for the very g that step computed (on the native backend
    # a recorded program), and train_on_batch reports the same loss, penalties included.
    with fastnn.backend_scope(backend):
        model, x, y = _trained(kind, optimizers.SGD(learning_rate=1.0))
        loss, grads = model.compute_gradients(x, y, return_loss=True)
        assert isinstance(loss, float) and [g.shape for g in grads] == [w.shape for w in
                                                                         model.trainable_weights]
        assert all(np.array_equal(a, b) for a, b in zip(model.compute_gradients(x, y), grads))
        assert model.compute_loss(x, y) == loss  # the same forward pass, without the backward one
        before = [w.copy() for w in model.trainable_weights]
        assert model.train_on_batch(x, y) == loss
        for w0, g, w1 in zip(before, grads, model.trainable_weights):
            assert np.array_equal(w0 - g, w1)
        assert any(np.any(g != 0) for g in grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(SEAM_MODELS))
def test_compute_gradients_matches_the_engine_path_the_checker_used(backend, kind):
    # Before the seam the checker called the engine's private steps itself; the seam's values are
    # those, bit for bit (loss with the penalties, every gradient array).
    with fastnn.backend_scope(backend):
        model, x, y = _trained(kind)
        loss, grads = model.compute_gradients(x, y, return_loss=True)
        xs, ys = model._prepare_xy(x, y)
        value, dout, _ = model._loss_and_outputs(xs, ys, training=True)
        model._backward(dout, logits=model._fused())
        expected = float(value) + float(model._regularization_loss(add_grads=True))
        assert loss == expected
        assert all(np.array_equal(g, e) for g, e in zip(grads, model._grads))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(SEAM_MODELS))
def test_the_seam_leaves_the_model_exactly_as_it_was(backend, kind):
    with fastnn.backend_scope(backend):
        model, x, y = _trained(kind)
        twin, _, _ = _trained(kind)
        before = _model_fingerprint(model)
        assert any(state for state in before["states"])  # a Dropout stream that has moved
        model.compute_gradients(x, y)
        model.compute_gradients(x, y, return_loss=True)
        model.compute_loss(x, y)
        model.compute_loss(x, y, training=False)
        assert _model_fingerprint(model) == before
        # and it trains on as the twin that was never inspected (same masks, same moving statistics)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        twin.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        assert [w.tobytes() for w in model.get_weights()] == [w.tobytes() for w in twin.get_weights()]
        assert [layer.get_state() for layer in model.layers] == [layer.get_state() for layer in twin.layers]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compute_loss_in_training_mode_holds_its_dropout_mask_and_inference_mode_is_evaluate(backend):
    with fastnn.backend_scope(backend):
        model, x, y = _trained("sequential")
        training = model.compute_loss(x, y)
        assert model.compute_loss(x, y) == training  # the same mask each time
        inference = model.compute_loss(x, y, training=False)
        assert inference != training  # Dropout and the batch statistics make a difference
        assert inference == pytest.approx(model.evaluate(x, y, batch_size=len(y)), rel=1e-13)
        # one more step of training moves the Dropout stream: a new mask, a new training loss
        weights = model.get_weights()
        model.train_on_batch(x, y)
        model.set_weights(weights)  # the weights (and moving statistics) put back, not the stream
        assert model.compute_loss(x, y, training=False) == inference
        assert model.compute_loss(x, y) != training


@pytest.mark.parametrize("backend", BACKENDS)
def test_compute_gradients_weights_samples_as_fit_does(backend):
    with fastnn.backend_scope(backend):
        model, x, y = _trained("sequential", optimizers.SGD(learning_rate=1.0))
        weights = np.linspace(0.5, 2.0, len(y))
        loss, grads = model.compute_gradients(x, y, weights, return_loss=True)
        assert loss == model.compute_loss(x, y, sample_weight=weights)
        assert loss != model.compute_loss(x, y)
        before = [w.copy() for w in model.trainable_weights]
        assert model.train_on_batch(x, y, sample_weight=weights) == loss
        for w0, g, w1 in zip(before, grads, model.trainable_weights):
            assert np.array_equal(w0 - g, w1)


def test_concurrent_calls_are_serialised_by_the_seam():
    # the layers reuse their buffers between calls: without the model's lock, calls from two
    # threads would mix their passes' intermediate arrays (the native kernels release the GIL)
    import threading
    model, x, y = _trained("lstm")
    reference = model.compute_gradients(x, y, return_loss=True)
    results, errors = [], []

    def work():
        try:
            for _ in range(15):
                results.append(model.compute_gradients(x, y, return_loss=True))
                results.append((model.compute_loss(x, y), reference[1]))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 90
    for loss, grads in results:
        assert loss == reference[0]
        assert all(np.array_equal(g, r) for g, r in zip(grads, reference[1]))


def test_dtype_and_weight_names_are_public():
    model = fastnn.Sequential([Dense(3), BatchNormalization()])
    assert model.dtype is None  # fixed when built
    model.build((None, 4))
    assert model.dtype == np.float64 and model.dtype == model.layers[0].dtype
    assert [layer.weight_names for layer in model.layers] == [
        ["kernel", "bias"], ["gamma", "beta", "moving_mean", "moving_variance"]]
    assert all(len(layer.weight_names) == len(layer.weights) for layer in model.layers)
    lstm = fastnn.layers.LSTM(2)
    lstm.build((5, 3))
    assert lstm.weight_names == ["kernel", "recurrent_kernel", "bias"]
    fastnn.set_floatx("float32")
    assert fastnn.Sequential([Dense(3, input_shape=(4,))]).dtype == np.float32


SEAM_BAD_CALLS = {
    "wrong input shape": (lambda m: m.compute_gradients(np.zeros((16, 4, 4)), y_ok), ValueError,
                          r"expects inputs of shape \(None, 4, 3\), got array of shape \(16, 4, 4\)"),
    "y too short": (lambda m: m.compute_loss(x_ok, y_ok[:5]), ValueError,
                    r"same number of samples: got 16 inputs"),
    "label out of range": (lambda m: m.compute_gradients(x_ok, np.full(16, 5)), ValueError,
                           r"labels must be integers in \[0, 5\)"),
    "NaN in x": (lambda m: m.compute_loss(np.full((16, 4, 3), np.nan), y_ok), ValueError,
                 r"x contains NaN or inf"),
    "string x": (lambda m: m.compute_gradients(np.full((16, 4, 3), "a"), y_ok), TypeError,
                 r"real numeric array"),
    "one sample with batch norm": (lambda m: m.compute_gradients(x_ok[:1], y_ok[:1]), ValueError,
                                   r"needs at least 2 samples"),
    "one sample, training loss": (lambda m: m.compute_loss(x_ok[:1], y_ok[:1]), ValueError,
                                  r"needs at least 2 samples"),
    "bad sample weights": (lambda m: m.compute_gradients(x_ok, y_ok, np.ones(3)), ValueError,
                           r"sample_weight"),
    "training not a bool": (lambda m: m.compute_loss(x_ok, y_ok, training="yes"), TypeError,
                            r"training must be True or False, got 'yes'"),
    "return_loss not a bool": (lambda m: m.compute_gradients(x_ok, y_ok, return_loss=1), TypeError,
                               r"return_loss must be True or False, got 1"),
    "Keras's y_pred": (lambda m: m.compute_loss(x_ok, y_ok, y_ok), TypeError, r"positional argument"),
}


@pytest.mark.parametrize("case", list(SEAM_BAD_CALLS))
def test_the_seam_refuses_bad_calls_and_changes_nothing(case):
    call, error, message = SEAM_BAD_CALLS[case]
    model, _, _ = _trained("sequential")
    before = _model_fingerprint(model)
    with pytest.raises(error, match=message):
        call(model)
    assert _model_fingerprint(model) == before


def test_the_seam_needs_a_compiled_model_and_a_gradient():
    model = fastnn.Sequential([Dense(3, input_shape=(4,))])
    for call in (model.compute_gradients, model.compute_loss):
        with pytest.raises(RuntimeError, match=r"must be compiled"):
            call(np.zeros((4, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"'step' activation, which has no gradient"):
        _step().compute_gradients(np.zeros((4, 4)), np.zeros((4, 3)))
    assert _step().compute_loss(np.zeros((4, 4)), np.zeros((4, 3)), training=False) == 0.0
