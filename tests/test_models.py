"""End-to-end tests of ``fastnn.Sequential``: learning, backend agreement, input validation,
Keras compatibility, the fused loss path, prediction, weights and callbacks.

Tolerances are stated where they are used. Tests that train on the real MNIST split (fixture
``mnist``) are the only slow ones (about a second each).
"""
import hashlib
import re

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers, losses, optimizers
from fastnn.layers import Activation, Dense, Flatten, Input
from fastnn.models import Sequential, load_model
from fastnn.utils import set_random_seed

from helpers import small_model

BACKENDS = ["native", "numpy"]


# -- helpers -----------------------------------------------------------------------------------
def mlp(hidden=16, inputs=784, outputs=10, seed=0, **compile_kw):
    """A compiled 784-hidden-10 ReLU/softmax model with sparse CE and accuracy."""
    set_random_seed(seed)
    model = fastnn.Sequential([Dense(hidden, activation="relu", input_shape=(inputs,)),
                               Dense(outputs, activation="softmax")])
    kw = dict(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kw.update(compile_kw)
    model.compile(**kw)
    return model


def small_data(n=20, features=784, classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, features), dtype=np.float32), rng.integers(0, classes, n)


def snapshot(model):
    """Everything a failed call must not change."""
    opt = model.optimizer
    return {
        "weights": model.get_weights(),
        "iterations": None if opt is None else opt.iterations,
        "slots": None if opt is None else [v.copy() for v in opt.variables()],
        "built": model.built,
        "n_weights": len(model.weights),
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["built"] == before["built"]
    assert after["n_weights"] == before["n_weights"]
    assert after["iterations"] == before["iterations"]
    assert len(after["weights"]) == len(before["weights"])
    for a, b in zip(after["weights"], before["weights"]):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), "weights changed by a call that raised"
    assert len(after["slots"] or []) == len(before["slots"] or [])
    for a, b in zip(after["slots"] or [], before["slots"] or []):
        assert a.tobytes() == b.tobytes(), "optimizer state changed by a call that raised"


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(str((a.shape, a.dtype.str, a.strides)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# -- logic gates: what a single layer can and cannot learn -------------------------------------
def _gate_model(hidden, seed, lr=0.05):
    set_random_seed(seed)
    stack = [Dense(hidden, activation="tanh", input_shape=(2,)), Dense(1, activation="sigmoid")] \
        if hidden else [Dense(1, activation="sigmoid", input_shape=(2,))]
    model = fastnn.Sequential(stack)
    model.compile(optimizer=optimizers.Adam(learning_rate=lr), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_layer_cannot_learn_xor(backend, seed):
    # XOR is not linearly separable: any threshold on w.x + b gets at most 3 of the 4 rows right,
    # so accuracy may never exceed 0.75 in any epoch, however long the training.
    fastnn.set_backend(backend)
    x, y = fastnn.datasets.logic_gate("xor")
    model = _gate_model(0, seed)
    history = model.fit(x, y, epochs=300, batch_size=4, verbose=0)
    assert len(history.history["accuracy"]) == 300
    assert max(history.history["accuracy"]) <= 0.75
    predicted = (model.predict(x) > 0.5).astype(np.float32)
    assert np.mean(predicted == y) <= 0.75
    assert model.evaluate(x, y, verbose=0)[1] <= 0.75


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_layer_mlp_learns_xor(backend, seed):
    fastnn.set_backend(backend)
    x, y = fastnn.datasets.logic_gate("xor")
    model = _gate_model(8, seed)
    history = model.fit(x, y, epochs=300, batch_size=4, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc == 1.0
    assert history.history["accuracy"][-1] == 1.0
    assert loss < 0.05
    np.testing.assert_array_equal((model.predict(x) > 0.5).astype(np.float32), y)


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_single_layer_learns_linearly_separable_gates(gate):
    x, y = fastnn.datasets.logic_gate(gate)
    model = _gate_model(0, seed=0, lr=0.1)
    model.fit(x, y, epochs=200, batch_size=4, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] == 1.0
    np.testing.assert_array_equal((model.predict(x) > 0.5).astype(np.float32), y)


# -- MNIST ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_mnist_mlp_reaches_94_percent_in_5_epochs(mnist, backend):
    fastnn.set_backend(backend)
    (x_train, y_train), (x_test, y_test) = mnist
    model = mlp(hidden=128, seed=0)
    history = model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0,
                        validation_data=(x_test, y_test))
    assert len(history.history["loss"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert acc >= 0.94, f"test accuracy {acc:.4f} after 5 epochs on {backend}"
    assert history.history["val_accuracy"][-1] == pytest.approx(acc, abs=1e-12)
    # evaluate's accuracy is exactly the argmax accuracy of predict on the same split
    probs = model.predict(x_test)
    assert probs.shape == (len(x_test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert acc == np.mean(np.argmax(probs, axis=1) == y_test)
    # and its loss is the mean negative log-probability of the true class
    nll = -np.mean(np.log(probs[np.arange(len(y_test)), y_test].astype(np.float64)))
    assert loss == pytest.approx(nll, rel=1e-4)


# -- the two backends train identically ----------------------------------------------------------
def _spiral_run(backend, config, epochs=6):
    fastnn.set_backend(backend)
    x, y = fastnn.datasets.make_spiral(n_per_class=40, n_classes=3, seed=0)
    set_random_seed(123)
    if config == "softmax_adam":
        model = fastnn.Sequential([Dense(16, activation="relu", input_shape=(2,)),
                                   Dense(16, activation="tanh"), Dense(3, activation="softmax")])
        model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    elif config == "sigmoid_nesterov":
        y = (y == 0).astype(np.float64)
        model = fastnn.Sequential([Dense(12, activation="elu", input_shape=(2,)),
                                   Dense(1, activation="sigmoid")])
        model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                      loss="binary_crossentropy", metrics=["accuracy"])
    else:  # mse with a leaky-relu hidden layer and plain SGD
        y = np.eye(3)[y]
        model = fastnn.Sequential([Dense(10, activation="leaky_relu", input_shape=(2,)),
                                   Dense(3)])
        model.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return np.array(history.history["loss"]), model.get_weights()


@pytest.mark.parametrize("config", ["softmax_adam", "sigmoid_nesterov", "mse_sgd"])
@pytest.mark.parametrize("floatx, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_backends_train_to_the_same_loss_curve(config, floatx, rtol):
    fastnn.set_floatx(floatx)
    loss_native, w_native = _spiral_run("native", config)
    loss_numpy, w_numpy = _spiral_run("numpy", config)
    assert np.all(np.isfinite(loss_native))
    assert loss_native[-1] < loss_native[0]  # it did learn something
    np.testing.assert_allclose(loss_native, loss_numpy, rtol=rtol)
    for a, b in zip(w_native, w_numpy):
        assert a.dtype == np.dtype(floatx)
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


# -- bad inputs raise clear errors and change nothing --------------------------------------------
def _trained_mlp():
    model = mlp()
    x, y = small_data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # optimizer now holds state
    assert model.optimizer.iterations == 3
    return model, x, y


def _bad_calls():
    x, y = small_data()
    rng = np.random.default_rng(5)
    x_nan = x.copy(); x_nan[3, 7] = np.nan
    x_inf = x.copy(); x_inf[0, 0] = -np.inf
    y_out = y.copy(); y_out[4] = 10
    y_neg = y.copy(); y_neg[2] = -1
    y_half = y.astype(np.float64); y_half[6] = 2.5
    y_nan = y.astype(np.float64); y_nan[1] = np.nan
    calls = {
        "features": (lambda m: m.fit(rng.random((20, 100)), y, verbose=0), ValueError,
                     [r"784", r"\(20, 100\)"]),
        "features_predict": (lambda m: m.predict(rng.random((20, 100))), ValueError,
                             [r"784", r"\(20, 100\)"]),
        "features_evaluate": (lambda m: m.evaluate(rng.random((20, 100)), y), ValueError,
                              [r"784", r"\(20, 100\)"]),
        "x_1d": (lambda m: m.fit(x[0], y[:1], verbose=0), ValueError, [r"\(784,\)"]),
        "x_1d_predict": (lambda m: m.predict(x[0]), ValueError, [r"\(784,\)"]),
        "x_3d": (lambda m: m.fit(x.reshape(20, 28, 28), y, verbose=0), ValueError,
                 [r"\(20, 28, 28\)"]),
        "x_3d_predict": (lambda m: m.predict(x.reshape(20, 28, 28)), ValueError, [r"\(20, 28, 28\)"]),
        "len_mismatch": (lambda m: m.fit(x, y[:19], verbose=0), ValueError, [r"20", r"19"]),
        "len_mismatch_eval": (lambda m: m.evaluate(x, y[:19]), ValueError, [r"20", r"19"]),
        "len_mismatch_tob": (lambda m: m.train_on_batch(x, y[:19]), ValueError, [r"20", r"19"]),
        "label_too_big": (lambda m: m.fit(x, y_out, verbose=0), ValueError,
                          [r"\b10\b", r"\[0, 10\)"]),
        "label_negative": (lambda m: m.fit(x, y_neg, verbose=0), ValueError, [r"-1", r"\[0, 10\)"]),
        "label_fraction": (lambda m: m.fit(x, y_half, verbose=0), ValueError, [r"2\.5", r"\[0, 10\)"]),
        "label_too_big_eval": (lambda m: m.evaluate(x, y_out), ValueError, [r"\b10\b", r"\[0, 10\)"]),
        "label_negative_tob": (lambda m: m.train_on_batch(x, y_neg), ValueError, [r"-1", r"\[0, 10\)"]),
        "x_nan_fit": (lambda m: m.fit(x_nan, y, verbose=0), ValueError, [r"NaN|nan"]),
        "x_nan_evaluate": (lambda m: m.evaluate(x_nan, y), ValueError, [r"NaN|nan"]),
        "x_nan_tob": (lambda m: m.train_on_batch(x_nan, y), ValueError, [r"NaN|nan"]),
        "x_inf_fit": (lambda m: m.fit(x_inf, y, verbose=0), ValueError, [r"inf"]),
        "y_nan_fit": (lambda m: m.fit(x, y_nan, verbose=0), ValueError, [r"nan"]),
        "y_nan_evaluate": (lambda m: m.evaluate(x, y_nan), ValueError, [r"nan"]),
        "y_nan_tob": (lambda m: m.train_on_batch(x, y_nan), ValueError, [r"nan"]),
        "val_nan": (lambda m: m.fit(x, y, verbose=0, validation_data=(x_nan, y)), ValueError,
                    [r"NaN|nan"]),
        "val_labels": (lambda m: m.fit(x, y, verbose=0, validation_data=(x, y_out)), ValueError,
                       [r"\[0, 10\)"]),
        # validation inputs with another feature count than x (an unbuilt model learns its input
        # shape from x, so this must be checked against x before training starts)
        "val_features": (lambda m: m.fit(x, y, verbose=0, validation_data=(x[:, :100], y)),
                         ValueError, [r"\b100\b"]),
        "val_not_pair": (lambda m: m.fit(x, y, verbose=0, validation_data=(x,)), ValueError,
                         [r"validation_data"]),
        "x_object": (lambda m: m.fit(x.astype(object), y, verbose=0), TypeError, [r"object"]),
        "x_complex": (lambda m: m.fit(x.astype(np.complex128), y, verbose=0), TypeError, [r"complex"]),
        "x_str": (lambda m: m.fit(x.astype(str), y, verbose=0), TypeError, [r"dtype"]),
        "x_complex_predict": (lambda m: m.predict(x.astype(np.complex64)), TypeError, [r"complex"]),
        "x_str_evaluate": (lambda m: m.evaluate(x.astype(str), y), TypeError, [r"dtype"]),
        "batch_0": (lambda m: m.fit(x, y, batch_size=0, verbose=0), ValueError, [r"batch_size"]),
        "batch_neg": (lambda m: m.fit(x, y, batch_size=-1, verbose=0), ValueError, [r"batch_size"]),
        "batch_float": (lambda m: m.fit(x, y, batch_size=2.5, verbose=0), ValueError, [r"batch_size"]),
        "batch_0_predict": (lambda m: m.predict(x, batch_size=0), ValueError, [r"batch_size"]),
        "batch_float_eval": (lambda m: m.evaluate(x, y, batch_size=2.5), ValueError, [r"batch_size"]),
        "empty_fit": (lambda m: m.fit(x[:0], y[:0], verbose=0), ValueError, [r"empty"]),
        "empty_tob": (lambda m: m.train_on_batch(x[:0], y[:0]), ValueError, [r"empty"]),
        "bad_callback": (lambda m: m.fit(x, y, verbose=0, callbacks=[print]), TypeError, [r"Callback"]),
        "bad_epochs": (lambda m: m.fit(x, y, epochs=-1, verbose=0), ValueError, [r"epochs"]),
    }
    return calls


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_and_leaves_trained_model_unchanged(name):
    call, exc, patterns = BAD_CALLS[name]
    model, _, _ = _trained_mlp()
    before = snapshot(model)
    with pytest.raises(exc) as info:
        call(model)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in message: {info.value}"
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", [n for n in sorted(BAD_CALLS)
                                  if not n.startswith(("features", "x_3d"))])
def test_bad_input_leaves_unbuilt_model_unbuilt(name):
    # No input shape declared: weights would be created from the first batch -- unless it is bad.
    call, exc, _ = BAD_CALLS[name]
    set_random_seed(0)
    model = fastnn.Sequential([Dense(16, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(exc):
        call(model)
    assert not model.built
    assert model.weights == [] and model.get_weights() == []
    assert model.optimizer.iterations == 0 and model.optimizer.variables() == []
    assert all(not layer.built for layer in model.layers)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_non_finite_regression_targets_raise_and_change_nothing(bad, method):
    set_random_seed(0)
    model = fastnn.Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model.fit(x, y, epochs=1, verbose=0)
    y_bad = y.copy()
    y_bad[5, 1] = bad
    before = snapshot(model)
    kwargs = {"verbose": 0} if method == "fit" else {}
    with pytest.raises(ValueError, match=r"y contains NaN or inf.*\(5, 1\)"):
        getattr(model, method)(x, y_bad, **kwargs)
    assert_unchanged(model, before)


def test_unbuilt_model_with_wrong_ndim_stays_unbuilt():
    model = fastnn.Sequential([Dense(4), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="Flatten"):
        model.fit(np.zeros((5, 2, 2)), np.zeros(5, int), verbose=0)
    assert not model.built and model.get_weights() == []


def test_fit_evaluate_train_before_compile_raise_runtime_error():
    set_random_seed(0)
    model = fastnn.Sequential([Dense(4, input_shape=(3,)), Dense(2, activation="softmax")])
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    before = snapshot(model)
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y),
                 lambda: model.train_on_batch(x, y)):
        with pytest.raises(RuntimeError, match="compile"):
            call()
    assert_unchanged(model, before)
    assert model.predict(x).shape == (4, 2)  # predict needs no compile


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(loss="no_such_loss"), "no_such_loss"),
    (dict(loss="mse", optimizer="rmsprop_typo"), "rmsprop_typo"),
    (dict(loss="mse", metrics=["f1_score_typo"]), "f1_score_typo"),
    (dict(loss="mse", metrics="f1_score_typo"), "f1_score_typo"),
    (dict(optimizer="sgd"), "loss"),
])
def test_compile_rejects_unknown_names_and_keeps_previous_settings(kwargs, pattern):
    model = mlp()
    opt, loss = model.optimizer, model.loss
    with pytest.raises(ValueError, match=pattern):
        model.compile(**kwargs)
    assert model.optimizer is opt and model.loss is loss


@pytest.mark.parametrize("make", [lambda: Dense(3, activation="swishy"),
                                  lambda: Activation("swishy"),
                                  lambda: Dense(3, activation="Relu7")])
def test_unknown_activation_name_raises(make):
    with pytest.raises(ValueError, match="unknown activation"):
        make()


def test_set_weights_with_a_wrong_shape_changes_nothing():
    model, _, _ = _trained_mlp()
    before = snapshot(model)
    good = model.get_weights()
    new = [np.full_like(w, 0.5) for w in good]
    new[-1] = np.zeros(9, np.float32)  # the last array is wrong: the first three must not be copied
    with pytest.raises(ValueError, match=r"\(10,\)"):
        model.set_weights(new)
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="4 weight arrays"):
        model.set_weights(new[:3])
    with pytest.raises(TypeError):
        model.set_weights([w.astype(str) for w in good])
    assert_unchanged(model, before)
    with pytest.raises(ValueError):
        model.layers[0].set_weights([good[0][:, :3], good[1]])
    assert_unchanged(model, before)


# -- user arrays are never modified -------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_user_arrays_are_not_modified(backend, shuffle):
    fastnn.set_backend(backend)
    x, y = small_data(n=37)
    xv, yv = small_data(n=9, seed=2)
    keep = digest(x, y, xv, yv)
    model = mlp()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=shuffle, validation_data=(xv, yv))
    model.train_on_batch(x, y)
    model.evaluate(x, y, batch_size=5)
    out = model.predict(x)
    out2 = model.predict(x, batch_size=3)
    model(x)
    assert digest(x, y, xv, yv) == keep
    # the returned predictions are fresh arrays, not views of the model's buffers
    before = out.copy()
    model.predict(xv)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(out, before)
    assert not np.shares_memory(out, out2)


def test_user_arrays_not_modified_with_flatten_and_float64_targets():
    rng = np.random.default_rng(0)
    x = rng.random((12, 4, 5))  # float64 images into a float32 model
    y = rng.random((12, 2))
    keep = digest(x, y)
    set_random_seed(0)
    model = fastnn.Sequential([Flatten(input_shape=(4, 5)), Dense(2, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    model.fit(x, y, batch_size=5, epochs=2, verbose=0, shuffle=False)
    model.predict(x)
    assert digest(x, y) == keep


# -- shapes at the edges -----------------------------------------------------------------------
def test_predict_on_empty_input_returns_empty_rows():
    model = mlp()
    out = model.predict(np.zeros((0, 784), np.float32))
    assert out.shape == (0, 10)
    assert out.dtype == np.float32
    model2 = fastnn.Sequential([Dense(3, input_shape=(5,)), Dense(2)])
    assert model2.predict(np.zeros((0, 5))).shape == (0, 2)


def test_fit_on_empty_input_raises():
    model = mlp()
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 784), np.float32), np.zeros(0, int), verbose=0)
    with pytest.raises(ValueError, match="empty"):
        model.evaluate(np.zeros((0, 784), np.float32), np.zeros(0, int))


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", None, dict(logs or {})))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch, dict(logs or {})))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("train_batch_end", batch, dict(logs or {})))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, dict(logs or {})))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs or {})))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", None, dict(logs or {})))

    def of(self, kind):
        return [e for e in self.events if e[0] == kind]


def test_batch_size_larger_than_data_is_one_full_batch():
    x, y = small_data(n=20)
    a, b = mlp(seed=3), mlp(seed=3)
    rec = Recorder()
    ha = a.fit(x, y, batch_size=1000, epochs=3, verbose=0, shuffle=False, callbacks=[rec])
    hb = b.fit(x, y, batch_size=20, epochs=3, verbose=0, shuffle=False)
    assert rec.params["steps"] == 1
    assert len(rec.of("batch_end")) == 3
    assert a.optimizer.iterations == 3
    assert ha.history["loss"] == hb.history["loss"]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # evaluate and predict too
    assert a.evaluate(x, y, batch_size=10**6) == pytest.approx(a.evaluate(x, y, batch_size=20), rel=1e-12)
    np.testing.assert_array_equal(a.predict(x, batch_size=10**6), a.predict(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden_activation", ["relu", "tanh", "sigmoid", "elu", "leaky_relu", None])
def test_predict_propagates_nan_in_x(backend, hidden_activation):
    fastnn.set_backend(backend)
    set_random_seed(0)
    model = fastnn.Sequential([Dense(16, activation=hidden_activation, input_shape=(784,)),
                               Dense(10, activation="softmax")])
    x, _ = small_data(n=6)
    x[2, 5] = np.nan
    out = model.predict(x)
    assert np.isnan(out[2]).all(), f"NaN input gave output {out[2]}"
    finite_rows = [0, 1, 3, 4, 5]
    assert np.isfinite(out[finite_rows]).all()
    np.testing.assert_allclose(out[finite_rows].sum(axis=1), 1.0, rtol=1e-5)
    clean = model.predict(x[finite_rows])
    np.testing.assert_allclose(out[finite_rows], clean, rtol=1e-6)


# -- Keras course examples, imports changed only ------------------------------------------------
def _course_model_a():
    return fastnn.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation='relu'),
        layers.Dense(10, activation='softmax'),
    ])


def _course_model_b():
    return fastnn.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128),
        layers.Activation('relu'),
        layers.Dense(10),
        layers.Activation('softmax'),
    ])


def _param_column(out):
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) \((\w+)\)\s+\(None, ([\d, ]+)\)\s+([\d,]+)\s*$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4).replace(",", "")))
    return rows


@pytest.mark.parametrize("make, n_layers", [(_course_model_a, 3), (_course_model_b, 5)])
def test_keras_course_example_summary(make, n_layers, capsys):
    model = make()
    model.summary()
    out = capsys.readouterr().out
    rows = _param_column(out)
    assert len(rows) == n_layers, out
    params = [p for _, _, p in rows.values()]
    assert sorted(p for p in params if p) == [1290, 100480]
    assert sum(params) == 101770
    assert "100,480" in out and "1,290" in out
    assert re.search(r"Total params: 101,770\b", out)
    assert re.search(r"Trainable params: 101,770\b", out)
    assert re.search(r"Non-trainable params: 0\b", out)
    shapes = [s for _, s, _ in rows.values()]
    assert shapes[0] == "784" and shapes[-1] == "10"
    assert model.count_params() == 101770
    # print_fn receives the same lines
    lines = []
    model.summary(print_fn=lines.append)
    assert "\n".join(lines).strip() == out.strip()


@pytest.mark.parametrize("make", [_course_model_a, _course_model_b])
def test_keras_course_example_compiles_and_fits(make):
    set_random_seed(0)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (64, 28, 28)).astype(np.uint8) / 255.0
    train_labels = rng.integers(0, 10, 64).astype(np.uint8)
    model = make()
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    history = model.fit(train_images, train_labels, epochs=3, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert len(history.history["loss"]) == 3
    assert all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    test_loss, test_acc = model.evaluate(train_images, train_labels, verbose=0)
    assert np.isfinite(test_loss) and 0 <= test_acc <= 1
    predictions = model.predict(train_images[:5])
    assert predictions.shape == (5, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)


def test_course_examples_a_and_b_compute_the_same_function():
    a, b = _course_model_a(), _course_model_b()
    b.set_weights(a.get_weights())
    x = np.random.default_rng(1).random((7, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    for m in (a, b):
        m.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    y = np.arange(7) % 10
    la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
    assert la == pytest.approx(lb, rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


# -- the fused softmax/sigmoid + cross-entropy path ---------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_softmax_cross_entropy_stays_finite_for_huge_inputs(backend):
    fastnn.set_backend(backend)
    x, y = small_data(n=64, features=20)
    x = x * 1e4
    model = mlp(hidden=32, inputs=20)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])), history.history
    assert np.all(np.isfinite(model.get_weights()[0]))
    loss = model.evaluate(x, y)[0]
    assert np.isfinite(loss)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_fused_path_equals_explicit_from_logits_model(backend, kind):
    # a saturating output layer: logits of order 1e3..1e4, far past where probabilities clip
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6)) * 1e4
    if kind == "softmax":
        y = rng.integers(0, 4, 30)
        fused_loss, logits_loss, units = ("sparse_categorical_crossentropy",
                                          losses.SparseCategoricalCrossentropy(from_logits=True), 4)
    else:
        y = rng.integers(0, 2, (30, 1)).astype(np.float64)
        fused_loss, logits_loss, units = ("binary_crossentropy",
                                          losses.BinaryCrossentropy(from_logits=True), 1)
    set_random_seed(7)
    fused = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(6,)),
                               Dense(units, activation=kind)])
    plain = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(6,)), Dense(units)])
    plain.set_weights([w * 200 for w in fused.get_weights()])
    fused.set_weights(plain.get_weights())
    fused.compile(optimizer=optimizers.SGD(1e-4), loss=fused_loss)
    plain.compile(optimizer=optimizers.SGD(1e-4), loss=logits_loss)
    lf, lp = fused.evaluate(x, y), plain.evaluate(x, y)
    assert np.isfinite(lf)
    assert lf > 20, "logits this large must give a loss beyond the clipped -log(1e-7) ~ 16.1"
    assert lf == pytest.approx(lp, rel=1e-12)
    # the same training step too
    for _ in range(3):
        assert fused.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(x, y), rel=1e-12)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # and the fused model's outputs are activation(logits)
    z = plain.predict(x)
    expected = np_softmax(z) if kind == "softmax" else 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    np.testing.assert_allclose(fused.predict(x), expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_crossentropy_one_hot_equals_sparse_labels(backend):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    x, y = small_data(n=25, features=12, classes=5)
    onehot = np.eye(5)[y]
    sparse = mlp(hidden=8, inputs=12, outputs=5, seed=4, optimizer=optimizers.Adam(0.01))
    cat = mlp(hidden=8, inputs=12, outputs=5, seed=4, optimizer=optimizers.Adam(0.01),
              loss="categorical_crossentropy")
    np.testing.assert_array_equal(sparse.get_weights()[0], cat.get_weights()[0])
    ls, lc = sparse.evaluate(x, y), cat.evaluate(x, onehot)
    assert ls[0] == pytest.approx(lc[0], rel=1e-12)
    assert ls[1] == lc[1]
    hs = sparse.fit(x, y, batch_size=5, epochs=3, verbose=0, shuffle=False)
    hc = cat.fit(x, onehot, batch_size=5, epochs=3, verbose=0, shuffle=False)
    np.testing.assert_allclose(hs.history["loss"], hc.history["loss"], rtol=1e-10)
    assert hs.history["accuracy"] == hc.history["accuracy"]
    for a, b in zip(sparse.get_weights(), cat.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sparse_labels_accept_float_integers_and_column_shape():
    x, y = small_data(n=10, features=6, classes=3)
    model = mlp(hidden=4, inputs=6, outputs=3)
    ref = model.evaluate(x, y)
    assert model.evaluate(x, y.astype(np.float32)) == ref
    assert model.evaluate(x, y.reshape(-1, 1)) == ref
    assert model.evaluate(x, list(y)) == ref


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_with_flat_targets_does_not_broadcast(backend):
    fastnn.set_backend(backend)
    fastnn.set_floatx("float64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    set_random_seed(0)
    model = fastnn.Sequential([Dense(1, input_shape=(3,))])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    pred = model.predict(x)
    assert pred.shape == (9, 1)
    expected = np.mean((pred[:, 0] - y) ** 2)
    broadcast = np.mean((pred - y) ** 2)  # the (9, 9) mistake
    assert not np.isclose(expected, broadcast)
    assert model.evaluate(x, y) == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(x, y.reshape(-1, 1)) == pytest.approx(expected, rel=1e-12)
    # the gradient too: one SGD step from flat targets equals one from column targets
    twin = fastnn.Sequential([Dense(1, input_shape=(3,))])
    twin.set_weights(model.get_weights())
    twin.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, y)
    twin.train_on_batch(x, y.reshape(-1, 1))
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError):
        model.evaluate(x, rng.normal(size=(9, 2)))


# -- predict ----------------------------------------------------------------------------------
def _reference_forward(weights, x):
    w1, b1, w2, b2 = [w.astype(np.float64) for w in weights]
    h = np.maximum(x.astype(np.float64) @ w1 + b1, 0)
    return np_softmax(h @ w2 + b2)


def test_predict_is_bitwise_independent_of_batch_size_on_native():
    fastnn.set_backend("native")
    model = mlp(hidden=64)
    x, _ = small_data(n=103)
    full = model.predict(x)
    for batch_size in (1, 7, None, 32, 103, 500):
        out = model.predict(x, batch_size=batch_size)
        assert out.tobytes() == full.tobytes(), f"batch_size={batch_size}"
    assert model(x).tobytes() == full.tobytes()
    assert model.predict_on_batch(x).tobytes() == full.tobytes()
    rows = np.concatenate([model.predict(x[i:i + 1]) for i in range(len(x))])
    assert rows.tobytes() == full.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_predict_matches_layer_by_layer_numpy_formula(backend, batch_size):
    fastnn.set_backend(backend)
    model = mlp(hidden=64)
    x, _ = small_data(n=50)
    expected = _reference_forward(model.get_weights(), x)
    out = model.predict(x, batch_size=batch_size)
    assert out.dtype == np.float32 and out.shape == (50, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-7)
    # predict in batches is the direct call on each batch (NumPy's BLAS may round a row differently
    # depending on how many rows share the product, so compare batch by batch, bit for bit)
    step = batch_size or len(x)  # None: up to 4096 rows at once
    direct = np.concatenate([model(x[i:i + step]) for i in range(0, len(x), step)])
    assert direct.tobytes() == out.tobytes()


def test_predict_float64_matches_formula_tightly():
    fastnn.set_floatx("float64")
    model = mlp(hidden=64)
    x, _ = small_data(n=30)
    np.testing.assert_allclose(model.predict(x, batch_size=7), _reference_forward(model.get_weights(), x),
                               rtol=1e-12, atol=1e-15)


# -- weights ----------------------------------------------------------------------------------
def test_get_weights_returns_copies():
    model = mlp()
    x, _ = small_data(n=5)
    before = model.predict(x)
    weights = model.get_weights()
    for w in weights:
        w[...] = 123.0
    np.testing.assert_array_equal(model.predict(x), before)
    assert not any(np.shares_memory(a, b) for a in model.get_weights() for b in model.weights)


def test_set_weights_round_trip():
    a, b = mlp(seed=1), mlp(seed=2)
    x, _ = small_data(n=8)
    assert not np.array_equal(a.predict(x), b.predict(x))
    b.set_weights(a.get_weights())
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    # float64 / list input is converted into the model's arrays, which keep their dtype
    b.set_weights([w.astype(np.float64).tolist() for w in a.get_weights()])
    assert all(w.dtype == np.float32 for w in b.weights)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_random_seed_makes_training_repeatable(backend):
    fastnn.set_backend(backend)
    x, y = small_data(n=40)

    def run():
        model = mlp(seed=42)
        initial = model.get_weights()
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # shuffled
        return initial, history.history, model.get_weights()

    i1, h1, w1 = run()
    i2, h2, w2 = run()
    for a, b in zip(i1 + w1, i2 + w2):
        assert a.tobytes() == b.tobytes()
    assert h1 == h2
    set_random_seed(43)
    other = mlp(seed=43).get_weights()
    assert not np.array_equal(other[0], i1[0])
    with pytest.raises(ValueError):
        set_random_seed(-1)


def test_dense_without_bias_has_no_bias_and_trains():
    set_random_seed(0)
    model = fastnn.Sequential([Dense(8, activation="tanh", use_bias=False, input_shape=(2,)),
                               Dense(1, activation="sigmoid", use_bias=False)])
    assert [w.shape for w in model.get_weights()] == [(2, 8), (8, 1)]
    assert model.count_params() == 24
    assert model.layers[0].bias is None
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    x, y = fastnn.datasets.make_moons(n_samples=60, seed=0)
    y = y.astype(np.float32)
    x = x - x.mean(axis=0)  # no bias: centre the data so a boundary through the origin can work
    initial = model.get_weights()
    history = model.fit(x, y, epochs=60, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert not np.array_equal(initial[0], model.get_weights()[0])
    assert len(model.get_weights()) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_trainable_layer_is_frozen_during_fit(backend):
    fastnn.set_backend(backend)
    set_random_seed(0)
    frozen = Dense(16, activation="relu", input_shape=(784,), trainable=False)
    model = fastnn.Sequential([frozen, Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    x, y = small_data(n=40)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.train_on_batch(x, y)
    after = model.get_weights()
    assert after[0].tobytes() == before[0].tobytes()
    assert after[1].tobytes() == before[1].tobytes()
    assert not np.array_equal(after[2], before[2])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Trainable params: 170" in text and "Non-trainable params: 12,560" in text


# -- callbacks, history and verbosity ---------------------------------------------------------
def test_callback_sees_hooks_with_loss_and_accuracy():
    x, y = small_data(n=20)
    model = mlp()
    rec = Recorder()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[rec])
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert rec.model is model
    assert rec.params["epochs"] == 2 and rec.params["steps"] == 3
    assert [e[1] for e in rec.of("epoch_end")] == [0, 1]
    assert [e[1] for e in rec.of("train_batch_end")] == [0, 1, 2, 0, 1, 2]
    assert [e[1] for e in rec.of("batch_end")] == [0, 1, 2, 0, 1, 2]
    for _, _, logs in rec.of("train_batch_end") + rec.of("epoch_end"):
        assert {"loss", "accuracy"} <= set(logs)
        assert np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1
    # the order within an epoch
    first_epoch = kinds[kinds.index("epoch_begin"):kinds.index("epoch_end") + 1]
    assert first_epoch.count("train_batch_end") == 3


def test_stop_training_in_on_epoch_end_stops_after_that_epoch():
    class StopAt(callbacks.Callback):
        def __init__(self, epoch):
            super().__init__()
            self.epoch = epoch
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(epoch)
            if epoch == self.epoch:
                self.model.stop_training = True

    x, y = small_data(n=16)
    model = mlp()
    stop = StopAt(1)
    history = model.fit(x, y, batch_size=8, epochs=10, verbose=0, callbacks=[stop])
    assert stop.seen == [0, 1]
    assert len(history.history["loss"]) == 2
    assert history.epoch == [0, 1]
    assert model.optimizer.iterations == 4
    # a new fit starts again (stop_training is reset)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


def test_stop_training_in_on_batch_end_stops_that_epoch_early():
    class StopNow(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    x, y = small_data(n=40)
    model = mlp()
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[StopNow()])
    assert model.optimizer.iterations == 1
    assert len(history.history["loss"]) == 1


def test_history_keys_and_lengths():
    x, y = small_data(n=24)
    xv, yv = small_data(n=10, seed=9)
    model = mlp()
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, validation_data=(xv, yv))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert model.history is history
    val_loss, val_acc = model.evaluate(xv, yv)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == val_acc
    h2 = mlp().fit(x, y, epochs=2, verbose=0)
    assert set(h2.history) == {"loss", "accuracy"}
    assert all(len(v) == 2 for v in h2.history.values())
    h3 = mlp(metrics=None).fit(x, y, epochs=1, verbose=0)
    assert set(h3.history) == {"loss"}


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    # 10 samples in batches of 4, 4, 2: the epoch loss weights each batch by its size
    x, y = small_data(n=10)
    model = mlp(optimizer=optimizers.SGD(1e-30))  # weights effectively frozen
    batch_losses = []

    class Grab(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_losses.append(logs["loss"])

    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[Grab()])
    per = [model.evaluate(x[a:b], y[a:b]) for a, b in ((0, 4), (4, 8), (8, 10))]
    expected = (4 * per[0][0] + 4 * per[1][0] + 2 * per[2][0]) / 10
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert batch_losses[-1] == history.history["loss"][0]
    assert history.history["accuracy"][0] == pytest.approx(model.evaluate(x, y)[1], abs=1e-12)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_output(verbose, capsys):
    x, y = small_data(n=16)
    model = mlp()
    model.fit(x, y, batch_size=8, epochs=3, verbose=verbose)
    out = capsys.readouterr().out
    if verbose == 0:
        assert out == ""
    else:
        for e in (1, 2, 3):
            assert f"Epoch {e}/3" in out
        assert "loss" in out and "accuracy" in out
    model.evaluate(x, y)  # evaluate and predict default to silence
    model.predict(x)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [3, -1, "loud", True])
def test_bad_verbose_raises(verbose):
    model, x, y = _trained_mlp()
    before = snapshot(model)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=verbose)
    assert_unchanged(model, before)


# -- the step activation ------------------------------------------------------------------------
def test_step_activation_predicts_but_cannot_be_trained():
    set_random_seed(0)
    model = fastnn.Sequential([Dense(1, activation="step", input_shape=(2,))])
    model.set_weights([np.array([[1.0], [1.0]]), np.array([-1.5])])  # the AND perceptron
    x, y = fastnn.datasets.logic_gate("and")
    np.testing.assert_array_equal(model.predict(x), y)
    assert model(x).tobytes() == model.predict(x).tobytes()
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    assert model.evaluate(x, y)[1] == 1.0
    before = snapshot(model)
    with pytest.raises(ValueError, match="step"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="step"):
        model.train_on_batch(x, y)
    assert_unchanged(model, before)


def test_step_in_a_hidden_layer_also_refuses_to_train():
    model = fastnn.Sequential([Dense(4, input_shape=(2,)), Activation("step"), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    x, y = fastnn.datasets.logic_gate("or")
    assert set(np.unique(fastnn.Sequential(model.layers[:2]).predict(x))) <= {0.0, 1.0}
    before = snapshot(model)
    with pytest.raises(ValueError, match="step"):
        model.fit(x, y, verbose=0)
    assert_unchanged(model, before)


# -- structure -------------------------------------------------------------------------------
def test_input_layer_and_build_routes_give_the_same_shapes():
    a = fastnn.Sequential([Input(shape=(784,)), Dense(32, activation="relu"), Dense(10)])
    b = fastnn.Sequential([Dense(32, activation="relu", input_dim=784), Dense(10)])
    c = fastnn.Sequential([Dense(32, activation="relu"), Dense(10)])
    assert not c.built and c.input_shape is None
    c.build((None, 784))
    for m in (a, b, c):
        assert m.built and m.input_shape == (None, 784) and m.output_shape == (None, 10)
        assert [w.shape for w in m.get_weights()] == [(784, 32), (32,), (32, 10), (10,)]
    with pytest.raises(ValueError):
        c.build((None, 100))
    with pytest.raises(ValueError, match="first"):
        fastnn.Sequential([Dense(3), Input(shape=(2,))])
    with pytest.raises(ValueError, match="Flatten"):
        fastnn.Sequential([Dense(3, input_shape=(2, 4, 4))])


def test_unbuilt_model_builds_on_first_fit_and_summary_before_raises():
    model = fastnn.Sequential([Dense(5, activation="relu"), Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="built"):
        model.summary()
    model.compile(loss="sparse_categorical_crossentropy")
    x, y = small_data(n=6, features=4, classes=3)
    model.fit(x, y, verbose=0)
    assert model.built and model.input_shape == (None, 4)
    assert [w.shape for w in model.get_weights()] == [(4, 5), (5,), (5, 3), (3,)]


def test_backend_scope_restores_and_models_switch_backend():
    model = mlp()
    x, _ = small_data(n=5)
    native = model.predict(x)
    with fastnn.backend_scope("numpy"):
        assert fastnn.get_backend() == "numpy"
        numpy_out = model.predict(x)
    assert fastnn.get_backend() == "native"
    np.testing.assert_allclose(native, numpy_out, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError):
        fastnn.set_backend("cuda")
    assert fastnn.get_backend() == "native"


# -- models with BatchNormalization and Dropout: a failed call changes nothing --------------------
def _trained_bn_dropout_model():
    set_random_seed(0)
    model = fastnn.Sequential([Dense(16, use_bias=False, input_shape=(784,)), layers.BatchNormalization(),
                               Activation("relu"), layers.Dropout(0.3), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = small_data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return model


@pytest.mark.parametrize("name", ["features", "len_mismatch_tob", "label_too_big", "x_nan_tob",
                                  "val_labels", "batch_0", "bad_callback", "empty_tob", "y_nan_fit"])
def test_bad_input_leaves_bn_and_dropout_state_unchanged(name):
    call, exc, _ = BAD_CALLS[name]
    model = _trained_bn_dropout_model()
    before = snapshot(model)
    step = model.layers[3].step
    moving = [w.copy() for w in model.non_trainable_weights]
    with pytest.raises(exc):
        call(model)
    assert_unchanged(model, before)
    assert model.layers[3].step == step
    for a, b in zip(model.non_trainable_weights, moving):
        assert a.tobytes() == b.tobytes()


# -- build failures roll back; set_weights refuses values the model cannot hold -------------------
@pytest.mark.parametrize("shape", [(None, -3), (None, 2.5), (None, 0), "abc"])
def test_bad_build_shapes_are_refused_and_change_nothing(shape):
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError):
        model.build(shape)
    assert not model.built and model.input_shape is None and not model.layers[0].built
    model.build((None, 2))
    assert model.predict(np.ones((1, 2)), verbose=0).shape == (1, 3)


def test_memory_error_in_build_rolls_back(tmp_path):
    model = Sequential([Dense(4), Dense(10**12)])  # 4 TB of bias: MemoryError after layer 1 built
    model.compile(loss="mse")
    with pytest.raises(MemoryError):
        model.build((None, 2))
    assert not any(l.built for l in model.layers) and model.input_shape is None
    model.layers[1].units = 3
    model.build((None, 2))
    model.save(tmp_path / "m.fastnn")
    assert load_model(tmp_path / "m.fastnn").predict(np.ones((1, 2)), verbose=0).shape == (1, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_set_weights_refuses_nan_inf_and_overflow(bad):
    model = small_model()
    weights = model.get_weights()
    new = [w.astype(np.float64) for w in weights]
    new[0][0, 0] = bad
    with pytest.raises(ValueError):
        model.set_weights(new)
    with pytest.raises(ValueError):
        model.layers[0].set_weights(new[:2])
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
