"""Keras programs that run with only their imports changed, and the Keras names behind them:
``import fastnn as keras`` / ``import fastnn as tf`` / ``fastnn.keras``; model methods; the layers,
activations, constraints, optimizers and schedules Keras programs reach for, on both backends,
through the recorded native step, the gradient check and a save/load round trip."""
import importlib
import json
import math

import numpy as np
import pytest

import fastnn
from fastnn import reference as R
from fastnn.utils import gradient_check

BACKENDS = ["native", "numpy"]


def _data(n=64, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, np.minimum(y, classes - 1)


# ------------------------------------------------------------------------------ the import surface
def test_every_keras_module_imports_as_a_real_module():
    names = ["layers", "models", "optimizers", "losses", "metrics", "callbacks", "initializers",
             "regularizers", "constraints", "activations", "utils", "datasets", "ops", "random",
             "backend", "optimizers.schedules"]
    for name in names:
        module = importlib.import_module("fastnn.keras." + name)
        assert module.__name__ == "fastnn.keras." + name
    from fastnn.keras.layers import Dense
    from fastnn.keras.models import Sequential
    from fastnn.keras.optimizers.schedules import ExponentialDecay
    assert Dense is fastnn.layers.Dense and Sequential is fastnn.Sequential
    assert ExponentialDecay is fastnn.schedules.ExponentialDecay
    import fastnn.keras as keras
    assert keras.layers.Dense is Dense and keras.Sequential is Sequential
    from fastnn.keras import backend, utils
    assert callable(backend.clear_session) and callable(utils.to_categorical)
    with pytest.raises(NotImplementedError, match="dense"):
        keras.layers.Conv2D
    with pytest.raises(AttributeError):
        keras.layers.NoSuchLayer


def test_import_fastnn_as_tf_spells_tf_keras():
    import fastnn as tf
    assert tf.keras.layers.Dense is fastnn.layers.Dense
    assert tf.keras.optimizers.Adam is fastnn.optimizers.Adam
    tf.random.set_seed(3)
    a = tf.random.normal((2, 3))
    tf.random.set_seed(3)
    b = tf.random.normal((2, 3))
    assert a.dtype == np.float32 and a.shape == (2, 3) and np.array_equal(a, b)


def test_keras_random_draws_repeatably():
    import fastnn as keras
    u = keras.random.uniform((1000,), minval=2, maxval=3, seed=1)
    assert u.dtype == np.float32 and 2 <= u.min() and u.max() < 3
    assert np.array_equal(u, keras.random.uniform((1000,), minval=2, maxval=3, seed=1))
    n = keras.random.normal((4000,), mean=1.0, stddev=2.0, seed=2, dtype="float64")
    assert n.dtype == np.float64 and abs(n.mean() - 1) < 0.15 and abs(n.std() - 2) < 0.15
    t = keras.random.truncated_normal((1000,), seed=0)
    assert np.abs(t).max() <= 2
    keras.utils.set_random_seed(5)
    first = keras.random.normal((3,))
    keras.utils.set_random_seed(5)
    assert np.array_equal(first, keras.random.normal((3,)))
    with pytest.raises(ValueError, match="minval < maxval"):
        keras.random.uniform((2,), 1, 1)


def test_mlp_program_runs_with_only_the_import_changed(capsys):
    import fastnn as keras
    from fastnn.keras import layers

    x, y = _data(200)
    model = keras.Sequential([
        keras.Input(shape=(4,)),
        layers.Dense(16, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, validation_split=0.2, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] and acc > 0.8
    assert model.predict(x[:5], verbose=0).shape == (5, 3)


# ------------------------------------------------------------------------------ model methods
def _compiled(seed=0, **kw):
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([fastnn.Input(shape=(4,)), fastnn.layers.Dense(8, activation="relu", name="hidden"),
                               fastnn.layers.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer=kw.get("optimizer", "adam"), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_get_layer_pop_and_shapes():
    model = _compiled()
    assert model.get_layer("hidden") is model.layers[0] and model.get_layer(index=-1).name == "out"
    with pytest.raises(ValueError, match="no layer named"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="exactly one"):
        model.get_layer()
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    assert model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    assert model.metrics_names == ["loss", "accuracy"]
    popped = model.pop()
    assert popped.name == "out" and model.output_shape == (None, 8) and len(model.layers) == 1
    model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()


def test_json_config_and_clone_round_trip():
    model = _compiled()
    text = model.to_json()
    assert json.loads(text)["class_name"] == "Sequential"
    again = fastnn.models.model_from_json(text)
    assert [type(l) for l in again.layers] == [type(l) for l in model.layers]
    assert again.get_config() == model.get_config()
    assert fastnn.Sequential.from_config(model.get_config()).get_config() == model.get_config()
    clone = fastnn.models.clone_model(model)
    assert clone.get_config() == model.get_config()
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])  # new weights
    with pytest.raises(ValueError, match="model_from_json"):
        fastnn.models.model_from_json('{"class_name": "Functional"}')


@pytest.mark.parametrize("backend", BACKENDS)
def test_on_batch_methods(backend):
    fastnn.set_backend(backend)
    x, y = _data(32)
    model = _compiled()
    before = model.test_on_batch(x, y)
    assert before == pytest.approx(model.evaluate(x, y, batch_size=32))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    weighted = _compiled()
    w_logs = weighted.train_on_batch(x, y, class_weight={0: 1.0, 1: 1.0, 2: 1.0}, return_dict=True)
    assert w_logs["loss"] == pytest.approx(logs["loss"], rel=1e-5)
    zero = _compiled()
    kept = zero.get_weights()
    zero.train_on_batch(x, y, sample_weight=np.zeros(32))
    # a zero-weighted batch gives zero gradients; Adam's step from zero moments is then zero
    assert all(np.array_equal(a, b) for a, b in zip(kept, zero.get_weights()))
    assert np.array_equal(model.predict_on_batch(x), model.predict(x))


def test_model_trainable_false_freezes_every_layer():
    x, y = _data(32)
    model = _compiled()
    model.trainable = False
    assert not model.trainable and not any(l.trainable for l in model.layers)
    before = model.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.trainable_weights == []


def test_fit_steps_validation_freq_and_batch_size():
    x, y = _data(64)
    model = _compiled()
    model.fit(x, y, epochs=3, batch_size=8, steps_per_epoch=2, verbose=0)
    assert model.optimizer.iterations == 6
    history = model.fit(x, y, epochs=4, batch_size=8, validation_data=(x[:16], y[:16]),
                        validation_freq=2, validation_batch_size=5, verbose=0)
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="validation_freq"):
        model.fit(x, y, validation_freq=0, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(x, y, steps_per_epoch=0, verbose=0)


def test_evaluate_and_predict_call_callbacks():
    seen = []

    class Spy(fastnn.callbacks.Callback):
        def on_test_begin(self, logs=None): seen.append("test_begin")
        def on_test_batch_end(self, batch, logs=None): seen.append(("test", batch, sorted(logs)))
        def on_test_end(self, logs=None): seen.append("test_end")
        def on_predict_begin(self, logs=None): seen.append("predict_begin")
        def on_predict_batch_end(self, batch, logs=None): seen.append(("predict", batch, logs["outputs"].shape))
        def on_predict_end(self, logs=None): seen.append("predict_end")

    x, y = _data(20)
    model = _compiled()
    model.evaluate(x, y, batch_size=10, callbacks=[Spy()], verbose="auto")
    out = model.predict(x, batch_size=16, callbacks=[Spy()], verbose="auto")
    assert out.shape == (20, 3) and np.array_equal(out, model.predict(x))
    assert seen == ["test_begin", ("test", 0, ["accuracy", "loss"]), ("test", 1, ["accuracy", "loss"]),
                    "test_end", "predict_begin", ("predict", 0, (16, 3)), ("predict", 1, (4, 3)),
                    "predict_end"]


# ------------------------------------------------------------------------------ activations
NEW_ACTIVATIONS = ["gelu", "silu", "swish", "mish", "relu6", "hard_sigmoid", "hard_silu", "softsign",
                   "exponential", "celu"]


def test_activation_functions_match_their_formulas():
    x = np.linspace(-5, 5, 101)
    acts = fastnn.activations
    erf = np.vectorize(math.erf)
    sig = 1 / (1 + np.exp(-x))
    expected = {
        "gelu": 0.5 * x * (1 + erf(x / np.sqrt(2))), "silu": x * sig, "swish": x * sig,
        "mish": x * np.tanh(np.log1p(np.exp(x))), "relu6": np.clip(x, 0, 6),
        "hard_sigmoid": np.clip(x / 6 + 0.5, 0, 1), "hard_silu": x * np.clip(x / 6 + 0.5, 0, 1),
        "softsign": x / (1 + np.abs(x)), "exponential": np.exp(x),
        "celu": np.where(x > 0, x, np.expm1(x)),
    }
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            for name, want in expected.items():
                np.testing.assert_allclose(getattr(acts, name)(x), want, rtol=1e-12, atol=1e-15, err_msg=name)
            approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
            np.testing.assert_allclose(acts.gelu(x, approximate=True), approx, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(acts.relu(x, max_value=2.0, threshold=1.0, negative_slope=0.5),
                                       np.where(x > 1, np.clip(x, 0, 2), 0) - 0.5 * np.maximum(1 - x, 0))
            np.testing.assert_allclose(acts.leaky_relu(x), np.where(x > 0, x, 0.2 * x))


def test_gelu_keeps_its_tail():
    """Far in the negative tail 1 + erf(x/sqrt 2) cancels to nothing in float32; erfc does not."""
    x = np.array([-6.0, -8.0], np.float32)
    want = x.astype(np.float64) * 0.5 * np.vectorize(math.erfc)(-x.astype(np.float64) / np.sqrt(2))
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            np.testing.assert_allclose(fastnn.activations.gelu(x), want, rtol=1e-5)


def test_activation_by_callable_and_alias():
    from fastnn.layers import Dense
    assert Dense(2, activation=fastnn.activations.gelu).activation.name == "gelu"
    assert Dense(2, activation="swish").activation.name == "silu"
    with pytest.raises(ValueError, match="callable"):
        Dense(2, activation=lambda v: v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_new_activations_pass_the_gradient_check(backend, activation):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    fastnn.utils.set_random_seed(1)
    model = fastnn.Sequential([fastnn.layers.Dense(5, activation=activation, input_shape=(4,),
                                                   kernel_initializer="random_normal", bias_initializer="random_normal"),
                               fastnn.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    x, y = _data(12)
    errors = gradient_check(model, x.astype(np.float64) * 0.5, y, per_weight=True)
    assert all(0 < e < 1e-6 for by in errors.values() for e in by.values()), errors


# ------------------------------------------------------------------------------ layers
def _layer_models():
    L = fastnn.layers
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(9).normal(3.0, 2.0, size=(50, 4)))
    return {
        "normalization": [norm, L.Dense(6, activation="tanh")],
        "normalization_invert": [L.Dense(4, activation="tanh"),
                                 L.Normalization(mean=[0.5, 0, 1, 2], variance=[1, 4, 2, 0.5], invert=True)],
        "rescaling": [L.Dense(5, activation="tanh"), L.Rescaling(0.5, offset=0.25)],
        "identity_elu": [L.Dense(5), L.Identity(), L.ELU(0.7)],
        "relu_options": [L.Dense(6, bias_initializer="random_normal"),
                         L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2)],
        "gaussian_dropout": [L.Dense(6, activation="tanh"), L.GaussianDropout(0.3, seed=4)],
        "alpha_dropout": [L.Dense(6, activation="selu"), L.AlphaDropout(0.2, seed=5)],
        "activity": [L.Dense(6, activation="tanh", activity_regularizer=fastnn.regularizers.L2(0.01)),
                     L.ActivityRegularization(l1=0.01)],
        "constraints": [L.Dense(6, activation="tanh", kernel_constraint=fastnn.constraints.MaxNorm(0.5),
                                bias_constraint=fastnn.constraints.NonNeg())],
    }


def _stack(key, seed=0):
    fastnn.utils.set_random_seed(seed)
    layers = _layer_models()[key]
    model = fastnn.Sequential([fastnn.Input(shape=(4,))] + layers + [fastnn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("key", sorted(_layer_models()))
def test_layers_train_alike_on_both_backends_and_in_the_recorded_step(key):
    x, y = _data(48)
    trained = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            model = _stack(key)
            model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
            trained[backend] = model
            if backend == "native":
                assert model._programs["train"][1] is not None  # the one-call recorded step ran
    for a, b in zip(trained["native"].get_weights(), trained["numpy"].get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", sorted(k for k in _layer_models() if k != "constraints"))
def test_layers_pass_the_gradient_check(backend, key):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    model = _stack(key)
    x, y = _data(12)
    errors = gradient_check(model, x.astype(np.float64), y, per_weight=True)
    assert all(0 < e < 1e-6 for by in errors.values() for e in by.values()), errors


@pytest.mark.parametrize("key", sorted(_layer_models()))
def test_layers_save_and_load(tmp_path, key):
    x, y = _data(32)
    model = _stack(key)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    again = fastnn.load_model(tmp_path / "m.fnn")
    assert np.array_equal(again.predict(x), model.predict(x))
    assert again.get_config() == model.get_config()


def test_normalization_adapt_and_invert():
    data = np.random.default_rng(0).normal(5.0, 3.0, size=(200, 2))
    norm = fastnn.layers.Normalization()
    norm.adapt(data)
    out = norm(data)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    inv = fastnn.layers.Normalization(mean=norm.mean, variance=norm.variance, invert=True)
    np.testing.assert_allclose(inv(out), data, rtol=1e-5)
    with pytest.raises(ValueError, match="both"):
        fastnn.layers.Normalization(mean=[0.0])


def test_constraints_hold_after_training():
    x, y = _data(64)
    model = _stack("constraints")
    model.fit(x, y, epochs=5, verbose=0)
    kernel, bias = model.layers[0].get_weights()
    assert np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=0)).max() <= 0.5 + 1e-6
    assert bias.min() >= 0
    c = fastnn.constraints
    w = np.array([[3.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(c.UnitNorm()(w)[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(c.MinMaxNorm(1.0, 2.0)(w)[:, 0], [1.2, 1.6], rtol=1e-6)
    np.testing.assert_array_equal(c.NonNeg()(np.array([-1.0, 2.0])), [0.0, 2.0])


def test_dropout_noise_shape():
    assert fastnn.layers.Dropout(0.5, noise_shape=(None, 4)).compute_output_shape((4,)) == (4,)
    with pytest.raises(ValueError, match="noise_shape"):
        fastnn.Sequential([fastnn.Input(shape=(3, 4)), fastnn.layers.Dropout(0.5, noise_shape=(None, 1, 4))])


# ------------------------------------------------------------------------------ optimizers, schedules
@pytest.mark.parametrize("name", ["nadam", "adamax", "adadelta", "lion"])
def test_keras_optimizers_train_alike_on_both_backends(tmp_path, name):
    x, y = _data(48)
    trained = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            model = _compiled(optimizer=fastnn.optimizers.get(name))
            model.optimizer.learning_rate = 0.01
            model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
            trained[backend] = model
    for a, b in zip(trained["native"].get_weights(), trained["numpy"].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    model = trained["native"]
    model.save(tmp_path / "o.fnn")
    again = fastnn.load_model(tmp_path / "o.fnn")
    model.fit(x, y, epochs=1, shuffle=False, verbose=0)
    again.fit(x, y, epochs=1, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


def test_nadam_first_steps_follow_the_formula():
    """Two Nadam steps on one weight, by hand from Keras 3's update rule."""
    p, g = np.array([1.0]), np.array([0.5])
    opt = fastnn.optimizers.Nadam(learning_rate=0.1)
    want, m, v, prod = 1.0, 0.0, 0.0, 1.0
    for t in (1, 2):
        opt.apply([p], [g])
        u_t, u_t1 = 0.9 * (1 - 0.5 * 0.96 ** t), 0.9 * (1 - 0.5 * 0.96 ** (t + 1))
        prod *= u_t
        m, v = 0.9 * m + 0.1 * 0.5, 0.999 * v + 0.001 * 0.25
        m_hat = u_t1 * m / (1 - prod * u_t1) + (1 - u_t) * 0.5 / (1 - prod)
        want -= 0.1 * m_hat / (math.sqrt(v / (1 - 0.999 ** t)) + 1e-7)
        assert p[0] == pytest.approx(want, rel=1e-12)


def test_lion_moves_each_weight_by_the_learning_rate():
    p, g = np.array([1.0, 2.0, 3.0]), np.array([0.3, -2.0, 0.0])
    fastnn.optimizers.Lion(learning_rate=0.01).apply([p], [g])
    np.testing.assert_allclose(p, [0.99, 2.01, 3.0])


def test_new_schedules():
    s = fastnn.schedules
    poly = s.PolynomialDecay(1.0, 10, end_learning_rate=0.1, power=2.0)
    assert poly(0) == 1.0 and poly(5) == pytest.approx(0.9 * 0.25 + 0.1) and poly(20) == pytest.approx(0.1)
    cyc = s.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(1 - 15 / 20)
    restarts = s.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert restarts(0) == 1.0 and restarts(5) == pytest.approx(0.5)
    assert restarts(10) == pytest.approx(0.5)  # the second period starts at m_mul
    assert restarts(20) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    flat = s.CosineDecayRestarts(1.0, 4, t_mul=1.0)
    assert flat(4) == pytest.approx(1.0) and flat(6) == pytest.approx(0.5)
    assert s.deserialize(s.serialize(restarts)).get_config() == restarts.get_config()


# ------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("name", ["mape", "msle", "poisson", "squared_hinge"])
def test_keras_losses_train_on_both_backends_and_save(tmp_path, name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    if name == "squared_hinge":
        y = (x[:, :1] > 0).astype(np.float32)
        act = "tanh"
    else:
        y = np.exp(0.5 * x[:, :1]).astype(np.float32) + 1  # positive targets away from 0
        act = "softplus"
    trained = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            fastnn.utils.set_random_seed(0)
            model = fastnn.Sequential([fastnn.Input(shape=(3,)), fastnn.layers.Dense(8, activation="tanh"),
                                       fastnn.layers.Dense(1, activation=act)])
            model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss=name)
            history = model.fit(x, y, epochs=15, batch_size=16, shuffle=False, verbose=0)
            assert history.history["loss"][-1] < history.history["loss"][0]
            trained[backend] = model
    for a, b in zip(trained["native"].get_weights(), trained["numpy"].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    model = trained["native"]
    model.save(tmp_path / "l.fnn")
    again = fastnn.load_model(tmp_path / "l.fnn")
    assert type(again.loss) is type(model.loss)
    assert again.evaluate(x, y) == model.evaluate(x, y)


def test_keras_loss_formulas():
    p = np.array([[1.0, 3.0]])
    t = np.array([[2.0, 3.0]])
    L = fastnn.losses
    assert L.get("mape").value_and_grad(t, p, None, False)[0] == pytest.approx(25.0)
    want = np.mean((np.log1p(p) - np.log1p(t)) ** 2)
    assert L.get("msle").value_and_grad(t, p, None, False)[0] == pytest.approx(want)
    assert L.get("poisson").value_and_grad(t, p, None, False)[0] == pytest.approx(np.mean(p - t * np.log(p + 1e-7)))
    s = np.array([[0.5, -2.0]])
    assert L.get("squared_hinge").value_and_grad(np.array([[1.0, -1.0]]), s, None, False)[0] == pytest.approx(0.125)


# ------------------------------------------------------------------------------ Keras behaviour (measured on Keras 3.15)
def test_leaky_relu_activation_slope_is_0_2_and_layer_keeps_0_3():
    x = np.array([[-1.0]], np.float32)
    dense = fastnn.layers.Dense(1, activation="leaky_relu", kernel_initializer="ones", bias_initializer="zeros")
    np.testing.assert_allclose(dense(x), [[-0.2]])  # Keras 3.15: -0.2
    np.testing.assert_allclose(fastnn.layers.LeakyReLU()(x), [[-0.3]])  # Keras 3.15: -0.3


def test_compile_default_optimizer_is_rmsprop():
    model = fastnn.Sequential([fastnn.Input(shape=(2,)), fastnn.layers.Dense(1)])
    model.compile(loss="mse")
    assert type(model.optimizer).__name__ == "RMSprop"


def test_class_weight_weights_training_rows_only_not_validation_split():
    x = np.ones((10, 2), np.float32)
    y = np.array([0, 1] * 5, np.float32)
    model = fastnn.Sequential([fastnn.Input(shape=(2,)),
                               fastnn.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros")])
    model.compile(optimizer=fastnn.optimizers.SGD(1e-30), loss="binary_crossentropy")
    h = model.fit(x, y, validation_split=0.4, class_weight={0: 1.0, 1: 5.0}, epochs=1, verbose=0, shuffle=False)
    # Keras 3.15: val_loss log(2) = 0.6931 (unweighted), loss 3 log(2) = 2.0794 (rows 0-5 weighted 1,5,...)
    assert h.history["val_loss"][0] == pytest.approx(np.log(2), rel=1e-6)
    assert h.history["loss"][0] == pytest.approx(3 * np.log(2), rel=1e-6)


def test_class_weight_with_sample_weight_is_refused_as_keras():
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1], np.float32)
    model = fastnn.Sequential([fastnn.Input(shape=(2,)), fastnn.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="class_weight and sample_weight"):
        model.fit(x, y, class_weight={0: 1, 1: 2}, sample_weight=np.ones(4), epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss", [
    lambda: fastnn.losses.CosineSimilarity(name="cos"),
    lambda: fastnn.losses.CategoricalHinge(reduction="sum"),
    lambda: fastnn.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=1.5),
    lambda: fastnn.losses.CategoricalFocalCrossentropy(alpha=0.5, label_smoothing=0.1, reduction="sum"),
    lambda: fastnn.losses.MeanSquaredError(reduction="mean_with_sample_weight"),
])
def test_new_losses_train_alike_on_both_backends_and_save_their_settings(tmp_path, loss):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(48, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.argmax(x, axis=1)]
    act = "sigmoid" if isinstance(loss(), fastnn.losses.BinaryFocalCrossentropy) else "softmax"
    trained = {}
    for backend in BACKENDS:
        with fastnn.backend_scope(backend):
            fastnn.utils.set_random_seed(0)
            model = fastnn.Sequential([fastnn.Input(shape=(3,)), fastnn.layers.Dense(8, activation="tanh"),
                                       fastnn.layers.Dense(3, activation=act)])
            model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss=loss())
            history = model.fit(x, y, epochs=8, batch_size=16, shuffle=False, verbose=0)
            assert history.history["loss"][-1] < history.history["loss"][0]
            trained[backend] = model
    for a, b in zip(trained["native"].get_weights(), trained["numpy"].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    model = trained["native"]
    model.save(tmp_path / "l.fnn")
    again = fastnn.load_model(tmp_path / "l.fnn")
    assert again.loss.get_config() == model.loss.get_config()
    assert again.evaluate(x, y) == model.evaluate(x, y)


def test_reduction_none_is_refused_for_training_and_gives_per_sample_losses():
    loss = fastnn.losses.MeanSquaredError(reduction=None)
    per = loss(np.zeros((3, 2)), np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(per, [1.0, 2.0, 0.0])
    model = fastnn.Sequential([fastnn.Input(shape=(2,)), fastnn.layers.Dense(1)])
    model.compile(loss=loss)
    with pytest.raises(ValueError, match="one loss per sample"):
        model.fit(np.ones((4, 2), np.float32), np.ones(4, np.float32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        fastnn.losses.MeanSquaredError(reduction="average")
