"""Callbacks: hooks in Keras's order, History (and its plot), EarlyStopping (patience,
restore_best_weights with and without stopping, baseline, start_from_epoch), ReduceLROnPlateau,
LearningRateScheduler, TerminateOnNaN, CSVLogger, LambdaCallback, and EarlyStopping on MNIST.

EarlyStopping is driven by a scripted monitor value per epoch so each rule is checked exactly.
"""
import contextlib
import csv
import io
import math
import re

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential, load_model
from fastnn.utils import set_random_seed

from helpers import small_model


def _model(lr=0.1):
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="binary_crossentropy")
    return model


def _data(n=16):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.float32)


class Script(callbacks.Callback):
    """Writes a scripted ``score`` into each epoch's logs and records the weights after each epoch."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def _run(scores, epochs=None, **kwargs):
    model = _model()
    script = Script(scores)
    stop = callbacks.EarlyStopping(monitor="score", mode="min", **kwargs)
    hist = model.fit(*_data(), epochs=epochs or len(scores), batch_size=4, verbose=0,
                     callbacks=[script, stop])
    return model, script, stop, hist


def test_hooks_are_called_in_keras_order():
    calls = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch_begin {epoch}"),
        on_batch_begin=lambda batch, logs: calls.append(f"batch_begin {batch}"),
        on_train_batch_end=lambda batch, logs: calls.append(f"batch_end {batch} {'loss' in logs}"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: calls.append("train_end"))
    x, y = _data(8)
    _model().fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cb], validation_data=(x, y))
    assert calls == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 True",
                     "batch_begin 1", "batch_end 1 True", "epoch_end 0 ['loss', 'val_loss']",
                     "train_end"]
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_finish'"):
        callbacks.LambdaCallback(on_epoch_finish=print)


def test_history_records_each_epoch():
    model = _model()
    x, y = _data()
    hist = model.fit(x, y, epochs=3, batch_size=4, verbose=0, validation_split=0.25)
    assert hist.epoch == [0, 1, 2] and model.history is hist
    assert sorted(hist.history) == ["loss", "val_loss"] and len(hist.history["loss"]) == 3


def test_history_plot_writes_a_file(tmp_path):
    pytest.importorskip("matplotlib")
    model = _model()
    hist = model.fit(*_data(), epochs=2, batch_size=4, verbose=0, validation_split=0.25)
    path = tmp_path / "curves.png"
    hist.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no 'accuracy' in the history"):
        hist.plot(tmp_path / "x.png", keys=["accuracy"])


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    _, script, stop, hist = _run([5, 4, 4.5, 4.2, 4.1, 3, 2], patience=3)
    assert hist.epoch == [0, 1, 2, 3, 4] and stop.stopped_epoch == 4 and stop.best == 4
    _, _, stop, hist = _run([5, 6, 7], patience=0)
    assert hist.epoch == [0, 1]
    _, _, stop, hist = _run([5, 4.95, 4.9, 4.85], patience=1, min_delta=0.1)
    assert hist.epoch == [0, 1]  # 4.95 does not beat 5 by more than 0.1


def test_restore_best_weights_after_stopping_early():
    model, script, stop, hist = _run([5, 3, 4, 4, 4], patience=2, restore_best_weights=True)
    assert hist.epoch == [0, 1, 2, 3] and stop.best_epoch == 1
    for a, b in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(a, b)


def test_restore_best_weights_without_stopping_early():
    model, script, stop, hist = _run([5, 2, 4, 3], patience=10, restore_best_weights=True)
    assert hist.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 0
    for a, b in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(script.weights[1][0], script.weights[3][0])


def test_baseline_must_be_beaten_to_reset_patience():
    # Keras 3: improvements that do not beat the baseline 5 do not reset the patience count, so
    # the first epoch without improvement stops; without a baseline two such epochs are allowed
    _, _, stop, hist = _run([10, 9, 8, 8, 8, 8], patience=2, baseline=5)
    assert hist.epoch == [0, 1, 2, 3]
    _, _, stop, hist = _run([10, 9, 8, 8, 8, 8], patience=2)
    assert hist.epoch == [0, 1, 2, 3, 4]
    _, _, stop, hist = _run([10, 4, 3.9, 3.8, 3.7], patience=1, baseline=5)
    assert hist.epoch == [0, 1, 2, 3, 4]


def test_start_from_epoch_ignores_early_epochs():
    _, _, stop, hist = _run([1, 2, 3, 4, 5, 6], patience=1, start_from_epoch=3)
    assert hist.epoch == [0, 1, 2, 3, 4] and stop.best == 4


def test_early_stopping_warns_on_a_missing_monitor():
    model = _model()
    with pytest.warns(UserWarning, match="'val_loss', which is not in the logs"):
        model.fit(*_data(), epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_reduce_lr_on_plateau():
    model = _model(lr=0.1)
    script = Script([1.0, 0.5, 0.6, 0.7, 0.4, 0.8, 0.9])
    reduce = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=2, min_lr=0.03)
    hist = model.fit(*_data(), epochs=7, batch_size=4, verbose=0, callbacks=[script, reduce])
    # lr logged at each epoch end, before the reduction that epoch triggers
    assert hist.history["learning_rate"] == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert model.optimizer.learning_rate == 0.03  # 0.025 clamped to min_lr
    scheduled = Sequential([Dense(1, input_shape=(3,))])
    scheduled.compile(optimizer=optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 1, 0.9)), loss="mse")
    with pytest.raises(TypeError, match="ExponentialDecay schedule"):
        scheduled.fit(*_data(), epochs=1, verbose=0,
                      callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=0)])


def test_learning_rate_scheduler_sets_each_epochs_rate():
    model = _model(lr=0.1)
    seen = []
    spy = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    model.fit(*_data(), epochs=3, verbose=0, callbacks=[sched, spy])
    assert seen == [0.1, 0.05, 0.025]
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    hist = model.fit(*_data(), epochs=2, verbose=0, callbacks=[one_arg])
    assert hist.history["learning_rate"] == [0.01, 0.02]


def test_terminate_on_nan_names_epoch_and_batch():
    model = _model(lr=0.1)
    x, y = _data()
    poison = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: model.layers[0].kernel.fill(np.nan) if e == 1 else None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        hist = model.fit(x, y, epochs=5, batch_size=4, verbose=0,
                         callbacks=[poison, callbacks.TerminateOnNaN()])
    assert "Epoch 2, batch 0: invalid loss nan, terminating training" in out.getvalue()
    assert hist.epoch == [0, 1] and model.optimizer.iterations == 5


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    model = _model()
    model.fit(*_data(), epochs=2, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(path)])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "loss", "val_loss"] and [r[0] for r in rows[1:]] == ["0", "1"]
    model.fit(*_data(), epochs=1, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    assert len(list(csv.reader(open(path)))) == 4


def test_early_stopping_on_mnist_restores_best_weights(mnist):
    (x_train, y_train), _ = mnist
    x, y = x_train[:1500], y_train[:1500]
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    kept = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: kept.append(model.get_weights()))
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(x, y, epochs=30, batch_size=32, validation_split=0.3, verbose=0,
                     callbacks=[record, stop])
    val = hist.history["val_loss"]
    assert len(val) < 30 and stop.stopped_epoch == len(val) - 1  # it overfits and stops
    best = int(np.argmin(val))
    assert stop.best_epoch == best and len(val) == best + 3
    for a, b in zip(model.get_weights(), kept[best]):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(x[1050:], y[1050:], batch_size=450) == pytest.approx(val[best], rel=1e-5)


def _compiled(metrics):
    model = fastnn.Sequential([fastnn.Input(shape=(2,)), fastnn.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=metrics)
    return model


def _stopped_after(cb, model, values, key):
    cb.set_model(model)
    model.stop_training = False
    cb.on_train_begin()
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0, key: v})
        if model.stop_training:
            return epoch
    return None


@pytest.mark.parametrize("name", ["precision", "recall", "auc"])
def test_mode_auto_maximises_precision_recall_auc_as_keras(name):
    model = _compiled([name])
    rising = callbacks.EarlyStopping(monitor="val_" + name, patience=1)
    assert _stopped_after(rising, model, [0.5, 0.6, 0.7, 0.8], "val_" + name) is None
    falling = callbacks.EarlyStopping(monitor="val_" + name, patience=1)
    assert _stopped_after(falling, model, [0.8, 0.7, 0.6, 0.5], "val_" + name) == 1
    plateau = callbacks.ReduceLROnPlateau(monitor="val_" + name, patience=0, factor=0.5)
    model.compile(optimizer=fastnn.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=[name])
    _stopped_after(plateau, model, [0.5, 0.6], "val_" + name)
    assert model.optimizer.learning_rate == pytest.approx(0.1)  # rising: no reduction


def test_nan_first_value_becomes_best_and_nothing_improves_on_it_as_keras():
    # Keras 3.15 (MonitorCallback): best starts as None, so the first value -- NaN too -- is the best,
    # and every comparison with NaN is false: training stops once patience runs out.
    model = _compiled([])
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=2)
    assert _stopped_after(cb, model, [float("nan"), 0.5, 0.4, 0.3], "val_loss") == 2
    assert np.isnan(cb.best)


# -- GradientHealth and Sequential.compute_gradients ----------------------------------------------
def _deep(activation, depth=8, width=16, seed=0, **dense):
    fastnn.utils.set_random_seed(seed)
    layers = [Dense(width, activation=activation, input_shape=(10,), **dense)]
    layers += [Dense(width, activation=activation, **dense) for _ in range(depth - 1)]
    model = Sequential(layers + [Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy")
    return model


def _probe(n=64, seed=2, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(dtype)
    return x, (x[:, 0] + x[:, 1] > 0).astype(dtype)


@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_compute_gradients_matches_finite_differences_and_changes_nothing(backend):
    with fastnn.backend_scope(backend):
        fastnn.set_floatx("float64")  # conftest restores float32 afterwards
        fastnn.utils.set_random_seed(3)
        model = Sequential([Dense(4, activation="tanh", input_shape=(10,)),
                            fastnn.layers.BatchNormalization(), fastnn.layers.Dropout(0.3, seed=5),
                            Dense(1, activation="sigmoid")])
        model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy")
        x, y = _probe(32, dtype=np.float64)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        before = [w.copy() for w in model.weights]
        state = [layer.get_state() for layer in model.layers]
        iterations = model.optimizer.iterations
        grads = model.compute_gradients(x, y)
        assert [g.shape for g in grads] == [w.shape for w in model.trainable_weights]
        assert all(np.array_equal(a, b) for a, b in zip(before, model.weights))  # moving stats too
        assert [layer.get_state() for layer in model.layers] == state             # dropout's stream
        assert model.optimizer.iterations == iterations
        # central differences of the training-mode loss, with the same dropout mask (the random
        # stream restored before each evaluation) and the moving statistics put back
        kernel, eps = model.trainable_weights[0], 1e-6
        numeric = np.empty(6)
        for k in range(6):
            i, j = divmod(k, 4)
            saved = kernel[i, j]
            values = []
            for delta in (eps, -eps):
                kernel[i, j] = saved + delta
                moving = [w.copy() for w in model.non_trainable_weights]
                p = model(x, training=True)[:, 0]
                values.append(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
                for w, m in zip(model.non_trainable_weights, moving):
                    w[...] = m
                for layer, st in zip(model.layers, state):
                    layer.set_state(st)
            kernel[i, j] = saved
            numeric[k] = (values[0] - values[1]) / (2 * eps)
        np.testing.assert_allclose(grads[0].reshape(-1)[:6], numeric, rtol=1e-5, atol=1e-9)


def test_compute_gradients_leaves_training_as_it_was():
    x, y = _probe()
    a, b = _deep("relu", depth=3), _deep("relu", depth=3)
    a.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)  # the shuffle would use the
    b.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)  # global stream: a, b differ
    b.compute_gradients(x[:20], y[:20])
    a.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_gradient_health_deep_sigmoid_gradients_shrink_toward_the_input(backend):
    x, y = _probe()
    with fastnn.backend_scope(backend):
        model = _deep("sigmoid", depth=8)
        health = callbacks.GradientHealth(x, y, vanishing=1e-12)
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[health])
    names = [layer.name for layer in model.layers]
    for key in ("grad_norm", "update_ratio", "saturated_fraction"):
        for name in names:
            values = history.history[f"{name}/{key}"]
            assert len(values) == 2 and all(np.isfinite(values)), (name, key, values)
    first, last = (history.history[f"{n}/grad_norm"][-1] for n in (names[0], names[-2]))
    assert 0 < first < last / 100, (first, last)     # each sigmoid layer multiplies by <= 0.25
    assert all(0 < history.history[f"{n}/update_ratio"][-1] < 1 for n in names)


def test_gradient_health_relu_with_huge_negative_bias_is_dead():
    x, y = _probe()
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(16, activation="relu", input_shape=(10,), bias_initializer=
                              fastnn.initializers.Constant(-100.0)),
                        Dense(16, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy")
    health = callbacks.GradientHealth(x, y, vanishing=1e-12)
    health.set_model(model)
    dead = health.measure()
    assert dead[model.layers[0].name]["dead_fraction"] == 1.0
    assert dead[model.layers[0].name]["grad_norm"] == 0.0   # a dead layer gets no gradient
    alive = _deep("relu", depth=2)
    health.set_model(alive)
    assert health.measure()[alive.layers[0].name]["dead_fraction"] < 0.5


def test_gradient_health_saturated_sigmoid():
    x, y = _probe()
    model = _deep("sigmoid", depth=2, kernel_initializer=fastnn.initializers.RandomNormal(stddev=20.0))
    calm = _deep("sigmoid", depth=2)
    health = callbacks.GradientHealth(x, y)
    health.set_model(model)
    saturated = health.measure()[model.layers[0].name]["saturated_fraction"]
    health.set_model(calm)
    assert saturated > 0.8 and health.measure()[calm.layers[0].name]["saturated_fraction"] < 0.2


def test_gradient_health_warns_naming_the_layer():
    x, y = _probe()
    model = _deep("relu", depth=8, width=64,
                  kernel_initializer=fastnn.initializers.RandomNormal(stddev=3.0))
    with pytest.warns(UserWarning, match=rf"layer {model.layers[0].name} .*explode"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.GradientHealth(x, y, exploding=1e3)])
    model = _deep("sigmoid", depth=8)
    with pytest.warns(UserWarning, match=rf"layer {model.layers[0].name} .*vanish") as record:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.GradientHealth(x, y, vanishing=1e-5)])
    messages = [str(w.message) for w in record if "GradientHealth" in str(w.message)]
    assert not any(f"layer {model.layers[-1].name} " in m for m in messages)  # the last layer is fine
    assert len(messages) == len(set(messages))  # once per layer, not every epoch


def test_gradient_health_quiet_when_healthy():
    import warnings
    x, y = _probe()
    model = _deep("relu", depth=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.GradientHealth(x, y)])


@pytest.mark.parametrize("kwargs, words", [
    ({"vanishing": 0}, ["vanishing", "0"]),
    ({"exploding": -1.0}, ["exploding", "-1.0"]),
    ({"vanishing": 10.0, "exploding": 1.0}, ["vanishing < exploding"]),
    ({"saturation": 0.7}, ["saturation", "0.7"]),
])
def test_gradient_health_bad_arguments(kwargs, words):
    x, y = _probe()
    with pytest.raises(ValueError) as info:
        callbacks.GradientHealth(x, y, **kwargs)
    assert all(w in str(info.value) for w in words)


def test_gradient_health_probe_is_copied_and_checked():
    x, y = _probe()
    health = callbacks.GradientHealth(x, y)
    x[:] = 0
    assert not np.all(health.x == 0)
    with pytest.raises(ValueError, match="probe batch"):
        callbacks.GradientHealth(x[:5], y[:4])


# -- TerminateOnNaN's message; checkpoint and CSV logger files checked when fit starts ------------
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the numpy twin's MSE
def test_terminate_on_nan_names_the_epoch_and_batch_of_the_first_bad_loss(backend, capsys):
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


@pytest.mark.parametrize("name, match", [("m-{epoch}-{val_los:.2f}.fastnn", "names {val_los}"),
                                         ("m-{epoch.fastnn", "not a valid format"),
                                         ("m-{loss:d}.fastnn", "cannot be formatted"),
                                         ("m-{}.fastnn", "names {}")])
def test_bad_checkpoint_file_names_are_refused_before_training(tmp_path, name, match):
    model = small_model(metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    checkpoint = fastnn.callbacks.ModelCheckpoint(str(tmp_path / name))
    with pytest.raises(ValueError, match=match):
        model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, validation_split=0.25,
                  callbacks=[checkpoint])
    assert model.optimizer.iterations == 0 and model.optimizer._slots is None
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_file_names_with_log_keys_are_accepted(tmp_path):
    model = small_model(metrics=["accuracy"])
    name = "m-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}-{learning_rate:.0e}.fastnn"
    model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, validation_split=0.25,
              callbacks=[fastnn.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
                         fastnn.callbacks.ModelCheckpoint(str(tmp_path / name))])
    assert len(list(tmp_path.glob("m-0[12]-*.fastnn"))) == 2


def test_learning_rate_in_a_file_name_needs_a_callback_that_logs_it_first(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(np.ones((8, 4)), np.zeros(8), verbose=0,
                  callbacks=[fastnn.callbacks.ModelCheckpoint(str(tmp_path / "m-{learning_rate}.fastnn")),
                             fastnn.callbacks.LearningRateScheduler(lambda epoch, lr: lr)])


def test_checkpoint_creates_its_directory_as_keras(tmp_path):
    model = small_model()
    path = tmp_path / "new" / "deeper" / "m-{epoch}.fastnn"
    model.fit(np.ones((8, 4)), np.zeros(8), epochs=1, verbose=0,
              callbacks=[fastnn.callbacks.ModelCheckpoint(str(path), monitor="loss")])
    assert load_model(tmp_path / "new" / "deeper" / "m-1.fastnn").built


def test_checkpoint_under_a_file_and_csv_logger_in_a_missing_directory_fail_at_fit_start(tmp_path):
    (tmp_path / "plain").write_text("a file, not a directory")
    for cb, match in [(fastnn.callbacks.ModelCheckpoint(str(tmp_path / "plain" / "m.fastnn")), "cannot write"),
                      (fastnn.callbacks.CSVLogger(str(tmp_path / "missing" / "log.csv")), "does not exist")]:
        model = small_model()
        with pytest.raises(ValueError, match=match):
            model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, callbacks=[cb])
        assert model.optimizer.iterations == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_batch_hooks_reach_only_the_callbacks_that_override_them():
    class EpochOnly(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class BatchEnd(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = []

        def on_batch_end(self, batch, logs=None):  # the old name is called for on_train_batch_end
            self.steps.append((batch, round(logs["loss"], 6)))

    model = _model()
    quiet = callbacks.CallbackList([EpochOnly(), callbacks.History()], model, {})
    assert not quiet.wants("on_train_batch_end") and not quiet.wants("on_train_batch_begin")
    assert quiet.wants("on_epoch_end")
    seen = []
    by_instance = callbacks.Callback()
    by_instance.on_train_batch_end = lambda batch, logs: seen.append(batch)  # set on the instance
    assert callbacks.CallbackList([by_instance], model, {}).wants("on_train_batch_end")
    # The same fit with and without a batch hook: the same epoch logs, and the hook gets each step.
    x, y = _data()
    hooked = BatchEnd()
    first, second = _model(), _model()
    h1 = first.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[EpochOnly()])
    h2 = second.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[hooked])
    assert h1.history == h2.history
    assert [b for b, _ in hooked.steps] == [0, 1, 2, 3] * 2
    assert hooked.steps[-1][1] == round(h2.history["loss"][-1], 6)
