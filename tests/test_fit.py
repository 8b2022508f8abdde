"""``fit`` with Keras's arguments: validation_split (the last fraction, before shuffling), class and
sample weights (each sample's loss scaled, sum(w_n l_n) / N), initial_epoch, verbose modes, a second
fit continuing, and every optimizer lowering the loss on MNIST."""
import contextlib
import io
import os
import signal

import numpy as np
import pytest

import fastnn
from fastnn import optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential

from helpers import BACKENDS, run_child, small_model


def _model(inputs=3, outputs=1, activation="sigmoid", seed=0, optimizer=None, loss="binary_crossentropy"):
    fastnn.utils.set_random_seed(seed)
    model = Sequential([Dense(outputs, activation=activation, input_shape=(inputs,))])
    model.compile(optimizer=optimizer or optimizers.SGD(learning_rate=0.1), loss=loss)
    return model


def _data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    return x, y


def test_validation_split_uses_exactly_the_last_fraction():
    x, y = _data(20)
    model = _model()
    hist = model.fit(x, y, epochs=1, batch_size=20, validation_split=0.25, shuffle=False, verbose=0)
    reference = _model()
    reference.fit(x[:15], y[:15], epochs=1, batch_size=20, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], reference.get_weights()[0])
    val = reference.evaluate(x[15:], y[15:], verbose=0)
    assert hist.history["val_loss"] == [pytest.approx(val, rel=1e-6)]
    # the validation rows are never trained on, even with shuffling
    shuffled = _model()
    shuffled.fit(x, y, epochs=1, batch_size=15, validation_split=0.25, verbose=0)
    np.testing.assert_allclose(shuffled.get_weights()[0], reference.get_weights()[0], rtol=1e-6)


@pytest.mark.parametrize("split", [0.99, 1.0, -0.1, "half"])
def test_bad_validation_split_leaves_model_unchanged(split):
    x, y = _data(20)
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=split, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_class_weight_scales_the_gradient():
    """One full-batch SGD step with class_weight {0: a, 1: b} moves the weights by exactly the
    step of the per-sample-weighted loss: grad = sum_n w_n dl_n / N (checked in float64 by hand)."""
    fastnn.set_floatx("float64")
    x, y = (a.astype(np.float64) for a in _data(12))
    model = _model()
    w0, b0 = model.get_weights()
    hist = model.fit(x, y, batch_size=12, epochs=1, shuffle=False, class_weight={0: 0.5, 1: 3.0}, verbose=0)
    wn = np.where(y == 1, 3.0, 0.5)
    p = 1 / (1 + np.exp(-(x @ w0 + b0)[:, 0]))
    dz = wn * (p - y) / len(y)                      # d(sum w_n l_n / N) / d logits
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w0[:, 0] - 0.1 * x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()[1], b0 - 0.1 * dz.sum(), rtol=1e-12)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert hist.history["loss"][0] == pytest.approx((wn * losses).sum() / len(y), rel=1e-12)


def test_sample_weight_equals_class_weight_and_zero_weight_ignores_samples():
    x, y = _data(16)
    a, b = _model(), _model()
    a.fit(x, y, batch_size=16, shuffle=False, class_weight={0: 2.0, 1: 0.25}, verbose=0)
    b.fit(x, y, batch_size=16, shuffle=False, sample_weight=np.where(y == 1, 0.25, 2.0), verbose=0)
    np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0], rtol=1e-6)
    # weight 0 on the second half == training on the first half with weights 1 and loss * 1/2
    c, d = _model(optimizer=optimizers.SGD(0.2)), _model(optimizer=optimizers.SGD(0.1))
    c.fit(x, y, batch_size=16, shuffle=False, sample_weight=np.r_[np.ones(8), np.zeros(8)], verbose=0)
    d.fit(x[:8], y[:8], batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(c.get_weights()[0], d.get_weights()[0], rtol=1e-5)


def test_class_weight_on_sparse_softmax_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    plain = _model(outputs=3, activation="softmax", loss="sparse_categorical_crossentropy")
    ones = _model(outputs=3, activation="softmax", loss="sparse_categorical_crossentropy")
    plain.fit(x, y, batch_size=10, shuffle=False, verbose=0)
    ones.fit(x, y, batch_size=10, shuffle=False, class_weight={0: 1, 1: 1, 2: 1}, verbose=0)
    np.testing.assert_allclose(plain.get_weights()[0], ones.get_weights()[0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"no weight for class\(es\) \[2\]"):
        ones.fit(x, y, class_weight={0: 1, 1: 1}, verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sample_weight=np.ones(5)), r"sample_weight must have shape \(20,\)"),
    (dict(sample_weight=-np.ones(20)), "finite and non-negative"),
    (dict(class_weight=[1, 2]), "class_weight must be a dict"),
    (dict(initial_epoch=-1), "initial_epoch must be a non-negative integer"),
])
def test_bad_weights_raise_before_training(kwargs, match):
    x, y = _data(20)
    model = _model()
    before = model.get_weights()
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(x, y, verbose=0, **kwargs)
    np.testing.assert_array_equal(before[0], model.get_weights()[0])


def test_initial_epoch_and_continued_fit():
    x, y = _data(20)
    once = _model()
    once.fit(x, y, epochs=4, batch_size=5, shuffle=False, verbose=0)
    twice = _model()
    twice.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    hist = twice.fit(x, y, epochs=4, initial_epoch=2, batch_size=5, shuffle=False, verbose=0)
    assert hist.epoch == [2, 3]
    assert twice.optimizer.iterations == 16
    np.testing.assert_array_equal(once.get_weights()[0], twice.get_weights()[0])


def test_verbose_modes():
    x, y = _data(20)
    model = _model()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.fit(x, y, epochs=2, batch_size=5, verbose=2)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert "loss:" in lines[1] and "[" not in lines[1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # not a terminal: only the finished bar is printed
        model.fit(x, y, epochs=1, batch_size=5, verbose="auto")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("4/4 [====") and "loss:" in lines[1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.fit(x, y, epochs=1, verbose=0)
        model.evaluate(x, y, batch_size=7, verbose=0)
        model.predict(x, batch_size=7, verbose=0)
    assert out.getvalue() == ""


def test_progbar_on_a_terminal_shows_eta():
    stream = io.StringIO()
    bar = fastnn.utils.Progbar(4, stream=stream, interactive=True)
    bar.update(1, [("loss", 0.5)])
    bar.update(4, [("loss", 0.25)], finalize=True)
    text = stream.getvalue()
    assert "ETA:" in text and text.startswith("\r1/4 [") and text.endswith("loss: 0.2500\n")


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_every_optimizer_lowers_mnist_loss(mnist, name):
    (x_train, y_train), _ = mnist
    x, y = x_train[:1000], y_train[:1000]
    lr = {"SGD": 0.1, "Adagrad": 0.05}.get(name, 0.002)
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(32, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
    model.compile(optimizer=getattr(optimizers, name)(learning_rate=lr), loss="sparse_categorical_crossentropy")
    start = model.evaluate(x, y, batch_size=1000)
    hist = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert hist.history["loss"][1] < hist.history["loss"][0]
    assert model.evaluate(x, y, batch_size=1000) < 0.6 * start


def test_sample_weight_with_mse_on_several_outputs():
    """Not fused (linear output, MSE over 2 outputs): loss = sum_n w_n mean_d (p - y)^2 / N."""
    fastnn.set_floatx("float64")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    sw = rng.uniform(0, 2, 10)
    model = _model(outputs=2, activation="linear", loss="mse")
    w0, b0 = model.get_weights()
    hist = model.fit(x, y, batch_size=10, shuffle=False, sample_weight=sw, verbose=0)
    r = x @ w0 + b0 - y
    assert hist.history["loss"][0] == pytest.approx((sw * (r ** 2).mean(axis=1)).sum() / 10, rel=1e-12)
    dz = sw[:, None] * 2 * r / 20
    np.testing.assert_allclose(model.get_weights()[0], w0 - 0.1 * x.T @ dz, rtol=1e-12)


def test_weighted_validation_and_evaluate():
    x, y = _data(20)
    sw = np.linspace(0.0, 2.0, 20)
    model = _model()
    hist = model.fit(x, y, epochs=1, batch_size=5, shuffle=False, sample_weight=sw,
                     validation_split=0.25, verbose=0)
    # the held-out rows keep their own weights
    val = model.evaluate(x[15:], y[15:], sample_weight=sw[15:], batch_size=2)
    assert hist.history["val_loss"] == [pytest.approx(val, rel=1e-6)]
    hist = model.fit(x[:15], y[:15], epochs=1, verbose=0, validation_data=(x[15:], y[15:], sw[15:]))
    assert hist.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[15:], y[15:], sample_weight=sw[15:]), rel=1e-6)
    plain = model.evaluate(x, y)
    assert model.evaluate(x, y, sample_weight=np.full(20, 2.0)) == pytest.approx(2 * plain, rel=1e-6)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple .* of length 4"):
        model.fit(x, y, validation_data=(x, y, sw, sw), verbose=0)


def test_progress_bar_shows_a_metric_with_several_values(capsys):
    # Precision with a list of thresholds has one value per threshold: the bar shows each.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = fastnn.Sequential([fastnn.keras.Input(shape=(3,)), fastnn.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[fastnn.metrics.Precision(thresholds=[0.3, 0.7])])
    history = model.fit(x, y, epochs=1, verbose=1)
    shown = capsys.readouterr().out
    values = np.ravel(history.history["precision"][-1])
    assert values.shape == (2,)
    assert "precision: [" + " ".join(f"{v:.4f}" for v in values) + "]" in shown


# -- Ctrl-C lands between steps; arguments fit refuses --------------------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_sigint_during_fit_leaves_a_whole_number_of_steps(backend_name):
    code = f"""
        import os, signal, threading, numpy as np, fastnn
        from fastnn import layers, models
        fastnn.set_backend({backend_name!r})
        m = models.Sequential([layers.Dense(64, activation="relu", input_shape=(32,)), layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        x = np.random.rand(512, 32).astype(np.float32); y = np.random.rand(512, 2).astype(np.float32)
        m.train_on_batch(x[:8], y[:8])
        count = [0]
        class Count(fastnn.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                count[0] += 1
                if count[0] == 20:
                    threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            m.fit(x, y, epochs=1000, batch_size=8, verbose=0, callbacks=[Count()])
        except KeyboardInterrupt:
            pass
        # each applied step moved the weights and counted once
        print(m.optimizer.iterations - 1 == count[0] or m.optimizer.iterations - 1 == count[0] + 1,
              m.optimizer.iterations)
    """
    result = run_child(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("True"), result.stdout


def test_sigint_during_a_step_is_held_until_the_step_ends():
    # deterministic form: the interrupt is held during a step and raised at the boundary
    from fastnn.models import _DeferredInterrupt
    with pytest.raises(KeyboardInterrupt):
        with _DeferredInterrupt() as held:
            os.kill(os.getpid(), signal.SIGINT)
            held_after_signal = held.pending
    assert held_after_signal


def test_fit_shuffle_must_be_a_bool():
    model = small_model()
    with pytest.raises(ValueError, match="shuffle"):
        model.fit(np.ones((4, 4)), np.zeros(4), shuffle="False", verbose=0)


@pytest.mark.parametrize("key", [0.7, "a", None])
def test_class_weight_keys_must_be_integers(key):
    model = small_model()
    with pytest.raises(ValueError, match="class_weight keys"):
        model.fit(np.ones((4, 4)), np.zeros(4), class_weight={key: 1.0, 0: 1.0}, verbose=0)
