"""Tests of the layers in ``fastnn.layers``: forward values against NumPy formulas on both backends,
back-propagated gradients against finite differences, construction, shapes and configuration.
"""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import activations, layers, optimizers
from fastnn.layers import Activation, Dense, Flatten, Input, LeakyReLU, ReLU, Softmax
from fastnn.utils import set_random_seed

BACKENDS = ["native", "numpy"]
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


FORMULAS = {
    "linear": lambda z: z,
    "step": lambda z: (z > 0).astype(z.dtype),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.2 * z),   # Keras activation="leaky_relu" slope 0.2
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "softmax": _softmax,
    "log_softmax": lambda z: np.log(_softmax(z)),
}
ELEMENTWISE = [a for a in FORMULAS if a not in ("softmax", "log_softmax")]


# -- forward values -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", sorted(FORMULAS))
def test_dense_forward_matches_formula_float64(backend, activation):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    rng = np.random.default_rng(0)
    layer = Dense(7, activation=activation, bias_initializer="random_normal")
    x = rng.normal(size=(11, 5)) * 2
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (5, 7) and bias.shape == (7,)
    assert y.shape == (11, 7) and y.dtype == np.float64
    np.testing.assert_allclose(y, FORMULAS[activation](x @ kernel + bias), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", sorted(FORMULAS))
def test_activation_layer_backends_agree_float32(activation):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(64, 33)) * 4).astype(np.float32)
    out = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            out[backend] = Activation(activation)(x)
    assert out["native"].dtype == np.float32
    np.testing.assert_allclose(out["native"], out["numpy"], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(out["native"], FORMULAS[activation](x.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", [a for a in ELEMENTWISE if a != "step"])
def test_activation_propagates_nan(backend, activation):
    # max(NaN, 0) is NaN in NumPy; a NaN must not come out of an activation as a finite number
    fastnn.set_backend(backend)
    x = np.array([[np.nan, -1.0, 0.5], [2.0, np.nan, -3.0]], dtype=np.float32)
    y = Activation(activation)(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softmax", "log_softmax", "softplus", "elu",
                                        "selu"])
def test_activations_finite_for_extreme_inputs(backend, activation):
    fastnn.set_backend(backend)
    x = np.array([[1e4, -1e4, 0.0], [-1e30, 1e30, 1.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = Activation(activation)(x)
    if activation in ("softplus", "elu", "selu", "log_softmax"):
        assert not np.isnan(y).any()
    else:
        assert np.isfinite(y).all(), y
    if activation == "softmax":
        np.testing.assert_allclose(y, [[1, 0, 0], [0, 1, 0]], atol=1e-7)


def test_relu_and_leaky_relu_layers():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(ReLU()(x), [[0, 0, 0, 0.5, 3]])
    np.testing.assert_allclose(ReLU(negative_slope=0.1)(x), [[-0.2, -0.05, 0, 0.5, 3]], rtol=1e-6)
    leaky = LeakyReLU()
    assert leaky.negative_slope == pytest.approx(0.3)
    np.testing.assert_allclose(leaky(x), [[-0.6, -0.15, 0, 0.5, 3]], rtol=1e-6)
    np.testing.assert_allclose(LeakyReLU(alpha=0.01)(x), [[-0.02, -0.005, 0, 0.5, 3]], rtol=1e-6)
    np.testing.assert_allclose(LeakyReLU(negative_slope=0.2)(x), [[-0.4, -0.1, 0, 0.5, 3]], rtol=1e-6)
    with pytest.raises(ValueError, match="negative_slope"):
        ReLU(negative_slope=-0.1)


def test_softmax_layer():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float64)
    y = Softmax()(x)
    np.testing.assert_allclose(y, _softmax(x), rtol=1e-7)
    np.testing.assert_allclose(Softmax(axis=1)(x), y)
    with pytest.raises(ValueError, match="axis"):
        Softmax(axis=0)
    with pytest.raises(ValueError):
        fastnn.Sequential([Softmax(input_shape=(3, 4))])  # row-wise needs (batch, features)


def test_flatten_layer():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    f = Flatten()
    assert f.compute_output_shape((3, 4)) == (12,)
    np.testing.assert_array_equal(f(x), x.reshape(2, 12))
    assert f.count_params() == 0 and f.get_weights() == []
    model = fastnn.Sequential([Flatten(input_shape=(3, 4)), Dense(2)])
    assert model.output_shape == (None, 2)
    assert model.layers[0].compute_output_shape((3, 4)) == (12,)


# -- gradients through the whole stack against finite differences ------------------------------
def _loss_at(model, x, y):
    return model.evaluate(x, y, batch_size=len(x))


def _check_gradients(model, x, y):
    """SGD(lr=1) takes w -> w - g, so one train_on_batch exposes the gradient g exactly (float64).
    Compare it with central differences of the loss (eps 1e-6: truncation ~1e-12, rounding ~1e-10)."""
    w0 = model.get_weights()
    model.train_on_batch(x, y)
    analytic = [a - b for a, b in zip(w0, model.get_weights())]
    model.set_weights(w0)
    eps = 1e-6
    for k, w in enumerate(w0):
        numeric = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            for sign in (1, -1):
                trial = [a.copy() for a in w0]
                trial[k][i] += sign * eps
                model.set_weights(trial)
                numeric[i] += sign * _loss_at(model, x, y) / (2 * eps)
        model.set_weights(w0)
        scale = max(np.max(np.abs(numeric)), 1e-3)
        np.testing.assert_allclose(analytic[k], numeric, rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=f"weight array {k}")


HIDDEN = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "softmax",
          "log_softmax"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_backprop_gradients_match_finite_differences(backend, hidden):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    set_random_seed(0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, 6)
    model = fastnn.Sequential([Dense(5, activation=hidden, input_shape=(3,),
                                     bias_initializer="random_normal"),
                               Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    _check_gradients(model, x, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["softmax_cce", "sigmoid_bce", "linear_mse", "sigmoid_mse",
                                  "tanh_bce_probabilities", "activation_layers", "no_bias"])
def test_backprop_gradients_for_each_loss(backend, case):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    set_random_seed(1)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 4))
    hidden = Dense(5, activation="tanh", input_shape=(4,), bias_initializer="random_normal")
    if case == "softmax_cce":
        stack, loss = [hidden, Dense(3, activation="softmax")], "categorical_crossentropy"
        y = rng.dirichlet(np.ones(3), size=7)  # soft targets
    elif case == "sigmoid_bce":
        stack, loss = [hidden, Dense(2, activation="sigmoid")], "binary_crossentropy"
        y = rng.random((7, 2))
    elif case == "linear_mse":
        stack, loss = [hidden, Dense(2)], "mse"
        y = rng.normal(size=(7, 2))
    elif case == "sigmoid_mse":
        stack, loss = [hidden, Dense(2, activation="sigmoid")], "mse"
        y = rng.random((7, 2))
    elif case == "tanh_bce_probabilities":
        # not the fused pair: the loss works on (clipped) probabilities 0.5 + 0.4*tanh
        stack = [hidden, Dense(1, activation="sigmoid"), Activation("linear")]
        loss = "binary_crossentropy"
        y = rng.integers(0, 2, (7, 1)).astype(np.float64)
    elif case == "activation_layers":
        stack = [Dense(5, input_shape=(4,)), Activation("elu"), Dense(3), Softmax()]
        loss = "sparse_categorical_crossentropy"
        y = rng.integers(0, 3, 7)
    else:
        stack = [Dense(5, activation="tanh", input_shape=(4,), use_bias=False),
                 Dense(3, activation="softmax", use_bias=False)]
        loss = "sparse_categorical_crossentropy"
        y = rng.integers(0, 3, 7)
    model = fastnn.Sequential(stack)
    model.compile(optimizer=optimizers.SGD(1.0), loss=loss)
    _check_gradients(model, x, y)


# -- construction, shapes, configuration ----------------------------------------------------------
def test_dense_weights_follow_keras_layout_and_defaults():
    set_random_seed(0)
    layer = Dense(300)
    layer.build((400,))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (400, 300) and bias.shape == (300,)
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(bias, 0)
    limit = np.sqrt(6 / 700)  # glorot_uniform is the Keras default kernel initializer
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.99 * limit
    assert layer.count_params() == 400 * 300 + 300
    assert layer.weights[0] is layer.kernel and layer.weights[1] is layer.bias


def test_dense_without_bias():
    layer = Dense(4, use_bias=False, input_dim=3)
    model = fastnn.Sequential([layer])
    assert layer.bias is None
    assert [w.shape for w in model.get_weights()] == [(3, 4)]
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), x @ layer.get_weights()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", [0, -1, 2.5, True, "8", None])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ValueError, match="units"):
        Dense(units)


@pytest.mark.parametrize("shape", [(0,), (-3,), ("a",), ()])
def test_bad_input_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="input_shape"):
        Dense(3, input_shape=shape)


def test_dense_applies_to_the_last_axis_and_a_forgotten_flatten_is_named():
    # Keras: Dense on (batch, steps, features) is the same Dense at every step
    model = fastnn.Sequential([Dense(3, input_shape=(28, 28))])
    assert model.output_shape == (None, 28, 3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="Flatten"):  # image-style labels, one per sample
        model.fit(np.zeros((2, 28, 28)), np.zeros(2, int), verbose=0)
    layer = Dense(3)
    with pytest.raises(ValueError, match="Flatten"):
        layer(np.zeros((2, 4, 28, 28)))
    assert not layer.built


def test_layer_call_builds_validates_and_returns_fresh_arrays():
    set_random_seed(0)
    layer = Dense(4, activation="relu")
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    y1 = layer(x1)
    assert layer.built and layer.input_shape == (5,)
    keep = y1.copy()
    y2 = layer(x2)
    np.testing.assert_array_equal(y1, keep)  # not overwritten by the next call
    assert not np.shares_memory(y1, y2)
    with pytest.raises(ValueError, match=r"\(None, 5\)"):
        layer(rng.normal(size=(3, 6)))
    with pytest.raises(ValueError):
        layer(rng.normal(size=5))


def test_layer_set_weights_validates_everything_first():
    layer = Dense(3, input_dim=2)
    layer.build((2,))
    before = layer.get_weights()
    with pytest.raises(ValueError, match="bias"):
        layer.set_weights([np.ones((2, 3)), np.ones(4)])
    with pytest.raises(ValueError, match="2 weight arrays"):
        layer.set_weights([np.ones((2, 3))])
    for a, b in zip(layer.get_weights(), before):
        assert a.tobytes() == b.tobytes()
    layer.set_weights([np.ones((2, 3)), np.arange(3)])
    np.testing.assert_array_equal(layer.get_weights()[1], [0, 1, 2])


def test_same_layer_twice_and_non_layers_are_rejected():
    d = Dense(3)
    model = fastnn.Sequential([d])
    with pytest.raises(ValueError, match="already"):
        model.add(d)
    with pytest.raises(TypeError):
        model.add("dense")
    assert len(model.layers) == 1


def test_adding_a_mismatched_built_layer_raises_without_adding_it():
    a = Dense(4, input_dim=3)
    fastnn.Sequential([a])
    model = fastnn.Sequential([Dense(5, input_dim=2)])
    with pytest.raises(ValueError, match="built for inputs"):
        model.add(a)
    assert len(model.layers) == 1


def test_input_layer():
    model = fastnn.Sequential([Input(shape=(6,)), Dense(2)])
    assert model.built and model.input_shape == (None, 6)
    assert model.layers[0].get_weights()[0].shape == (6, 2)
    with pytest.raises(ValueError):
        Input(shape=(0,))


def test_config_round_trip_rebuilds_the_same_architecture():
    model = fastnn.Sequential([Flatten(input_shape=(4, 5)), Dense(8, activation="relu", use_bias=False),
                               LeakyReLU(0.2), Dense(6, kernel_initializer="he_normal"),
                               ReLU(negative_slope=0.05), Dense(3), Activation("tanh"), Softmax()])
    config = model.get_config()
    clone = fastnn.Sequential.from_config(config)
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.input_shape == model.input_shape and clone.output_shape == model.output_shape
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    assert clone.layers[2].negative_slope == pytest.approx(0.2)
    assert clone.layers[4].negative_slope == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown layer"):
        layers.get({"class_name": "Conv2D", "config": {}})


# -- PReLU and GaussianNoise: layers added by their class alone ------------------------------------
def _prelu_noise_model(dtype="float32", alpha="random_normal"):
    fastnn.set_floatx(dtype)
    model = fastnn.Sequential([Input((6,)), Dense(8), layers.PReLU(alpha_initializer=alpha),
                               layers.GaussianNoise(0.3, seed=11), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_prelu_forward_is_the_formula_and_starts_as_relu():
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    layer = layers.PReLU()
    np.testing.assert_array_equal(layer(x), np.maximum(x, 0))  # Keras: alpha starts at zero
    layer.alpha[:] = [0.1, 0.2, 0.3, 0.4]
    np.testing.assert_array_equal(layer(x), np.where(x > 0, x, layer.alpha * x))
    assert [w.shape for w in layer.get_weights()] == [(4,)] and layer.count_params() == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_noise_only_in_training_with_the_requested_spread(backend):
    fastnn.set_backend(backend)
    x = np.zeros((400, 50), np.float32)
    layer = layers.GaussianNoise(0.5, seed=3)
    np.testing.assert_array_equal(layer(x), x)  # inference: the identity
    first, second = layer(x, training=True), layer(x, training=True)
    assert not np.array_equal(first, second)     # a new draw every training call
    assert abs(first.mean()) < 0.01 and abs(first.std() - 0.5) < 0.01
    again = layers.GaussianNoise(0.5, seed=3)
    np.testing.assert_array_equal(again(x, training=True), first)  # seeded: repeatable


def test_prelu_and_noise_train_alike_on_both_backends_and_through_the_program():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    runs = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            set_random_seed(5)
            model = _prelu_noise_model()
            history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
            runs[backend] = (model, history.history["loss"])
    native, numpy_ = runs["native"], runs["numpy"]
    assert native[0]._programs["train"][1] is not None  # one native call per step
    np.testing.assert_allclose(native[1], numpy_[1], rtol=1e-5)
    for a, b in zip(native[0].get_weights(), numpy_[0].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.array_equal(native[0].layers[1].alpha, np.zeros(8))  # the slopes were learned


def test_prelu_and_noise_pass_the_gradient_check():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 6))
    y = rng.integers(0, 3, 12)
    set_random_seed(0)
    model = _prelu_noise_model("float64")
    errors = fastnn.utils.gradient_check(model, x, y)
    prelu = [k for k in errors if k.startswith("p_re_lu")]
    assert prelu and all(errors[k] < 1e-6 for k in errors), errors


def test_prelu_and_noise_save_load_and_continue_identically(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 6)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    set_random_seed(1)
    model = _prelu_noise_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = fastnn.load_model(tmp_path / "m.fastnn")
    assert [type(l).__name__ for l in loaded.layers] == ["Dense", "PReLU", "GaussianNoise", "Dense"]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- constructor values that would break later ----------------------------------------------------
@pytest.mark.parametrize("make", [lambda: layers.LeakyReLU(float("nan")), lambda: layers.ReLU(negative_slope=float("nan")),
                                  lambda: Dense(2, activation={"name": "bogus"}),
                                  lambda: activations.Activation("elu", float("inf"))])
def test_constructor_values_that_break_later_are_refused(make):
    with pytest.raises(ValueError):
        make()
