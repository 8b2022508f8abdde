"""Callbacks: hooks in Keras's order, History (and its plot), EarlyStopping (patience,
restore_best_weights with and without stopping, baseline, start_from_epoch), ReduceLROnPlateau,
LearningRateScheduler, TerminateOnNaN, CSVLogger, LambdaCallback, and EarlyStopping on MNIST.

EarlyStopping is driven by a scripted monitor value per epoch so each rule is checked exactly.
"""
import contextlib
import csv
import io

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential


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
