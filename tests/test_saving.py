"""Model files: save/load round trips give bitwise-identical predictions and identical continued
training; writes are atomic (a crash mid-save leaves the old file); truncated, bit-flipped,
wrong-version and mismatched files raise ModelFileError and leave the model untouched; no pickle."""
import os
import struct

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optimizers, saving
from fastnn.layers import BatchNormalization, Dense, Dropout
from fastnn.models import Sequential, load_model
from fastnn.saving import ModelFileError


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def _model(optimizer=None, dtype=None):
    fastnn.utils.set_random_seed(0)
    if dtype:
        fastnn.set_floatx(dtype)
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)), BatchNormalization(),
                        Dense(3, activation="softmax")], name="net")
    model.compile(optimizer=optimizer or optimizers.Adam(0.01, amsgrad=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make_opt", [
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 3, 0.5), momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, weight_decay=0.01),
    lambda: optimizers.Adagrad(0.05),
], ids=["adam-amsgrad", "sgd-schedule", "rmsprop", "adagrad"])
def test_round_trip_predicts_and_trains_identically(tmp_path, dtype, make_opt):
    x, y = _data()
    model = _model(make_opt(), dtype)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    loaded = load_model(path)
    assert loaded.name == "net" and [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    _same(loaded.get_weights(), model.get_weights())
    _same([loaded.predict(x)], [model.predict(x)])
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    _same(loaded.optimizer.variables(), model.optimizer.variables())
    fastnn.utils.set_random_seed(5)
    h1 = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    fastnn.utils.set_random_seed(5)
    h2 = loaded.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert h1.history == h2.history
    _same(loaded.get_weights(), model.get_weights())


def test_without_optimizer_state_starts_fresh(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn", include_optimizer=False)
    loaded = load_model(tmp_path / "m.fnn")
    assert isinstance(loaded.optimizer, optimizers.Adam) and loaded.optimizer.amsgrad
    assert loaded.optimizer.iterations == 0 and loaded.optimizer.variables() == []
    uncompiled = load_model(tmp_path / "m.fnn", compile=False)
    assert uncompiled.optimizer is None
    _same([uncompiled.predict(x)], [model.predict(x)])


def test_save_and_load_weights(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.fnn")
    other = _model()
    other.load_weights(tmp_path / "w.fnn")
    _same(other.get_weights(), model.get_weights())
    with pytest.raises(ModelFileError, match="holds only weights"):
        load_model(tmp_path / "w.fnn")
    wider = Sequential([Dense(9, input_shape=(6,)), BatchNormalization(), Dense(3)])
    before = wider.get_weights()
    with pytest.raises(ModelFileError, match=r"weight 0 has shape \(6, 8\), the model expects \(6, 9\)"):
        wider.load_weights(tmp_path / "w.fnn")
    _same(wider.get_weights(), before)


def test_crash_during_save_leaves_the_old_file(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    path = tmp_path / "m.fnn"
    model.save(path)
    old = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)

    def crash(fd):
        raise OSError("simulated power loss")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated power loss"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.fnn"]  # the temporary file was removed
    _same([load_model(path).predict(x)], [_model().predict(x)])


def _saved(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.fnn"
    model.save(path)
    return path, path.read_bytes()


@pytest.mark.parametrize("cut", [0, 5, 20, 100, -33, -1])
def test_truncated_files_raise(tmp_path, cut):
    path, data = _saved(tmp_path)
    path.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="truncated|not a fastnn model file"):
        load_model(path)


def test_every_flipped_bit_is_detected(tmp_path):
    path, data = _saved(tmp_path)
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(8, len(data), 40).tolist()) | {8, 12, 20, len(data) - 1})
    target = _model()
    before = target.get_weights()
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        with pytest.raises(ModelFileError, match="corrupted|format version"):
            load_model(path)
        with pytest.raises(ModelFileError):
            target.load_weights(path)
    _same(target.get_weights(), before)


def test_wrong_version_and_foreign_files(tmp_path):
    path, data = _saved(tmp_path)
    import hashlib
    body = bytearray(data[:-32])
    struct.pack_into("<I", body, 8, 2)
    path.write_bytes(bytes(body) + hashlib.sha256(body).digest())
    with pytest.raises(ModelFileError, match="format version 2; this fastnn reads version 1"):
        load_model(path)
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        load_model(path)


def test_file_holds_no_pickle(tmp_path):
    path, data = _saved(tmp_path)
    assert b"\x80\x04\x95" not in data and b"numpy.core" not in data and b"pickle" not in data
    header, arrays = saving.read_file(path)
    assert header["kind"] == "model" and all(a.dtype.kind == "f" for a in arrays.values())


def test_model_checkpoint_saves_the_best(tmp_path):
    x, y = _data(96)
    model = _model()
    best = tmp_path / "best.fnn"
    every = tmp_path / "w-{epoch:02d}.fnn"
    model.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
              callbacks=[callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True),
                         callbacks.ModelCheckpoint(every, save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["best.fnn", "w-01.fnn", "w-02.fnn", "w-03.fnn"]
    loaded = load_model(best)
    val = model.history.history["val_loss"]
    assert loaded.evaluate(x[72:], y[72:], return_dict=True)["loss"] == pytest.approx(min(val), rel=1e-5)


def test_dropout_model_round_trip(tmp_path):
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(4, input_shape=(6,)), Dropout(0.5), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "d.fnn")
    loaded = load_model(tmp_path / "d.fnn")
    x, _ = _data()
    _same([loaded.predict(x)], [model.predict(x)])
    assert loaded.layers[1].rate == 0.5


@pytest.mark.parametrize("loss", [fastnn.losses.Huber(delta=2.0), "mae",
                                  fastnn.losses.CategoricalCrossentropy(label_smoothing=0.1)])
def test_loss_settings_round_trip(tmp_path, loss):
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(3, activation="softmax", input_shape=(6,))])
    model.compile(optimizer="rmsprop", loss=loss)
    model.save(tmp_path / "l.fnn")
    loaded = load_model(tmp_path / "l.fnn")
    assert type(loaded.loss) is type(model.loss) and loaded.loss.get_config() == model.loss.get_config()
    assert isinstance(loaded.optimizer, optimizers.RMSprop)


def test_dropout_model_continues_training_identically(tmp_path):
    """The dropout stream's key and position travel with the model: the next masks are the same."""
    x, y = _data()
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(8, input_shape=(6,), activation="relu"), Dropout(0.5), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "d.fnn")
    loaded = load_model(tmp_path / "d.fnn")
    assert loaded.layers[1].get_state() == model.layers[1].get_state() != {}
    fastnn.utils.set_random_seed(5)
    h1 = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    fastnn.utils.set_random_seed(5)
    h2 = loaded.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert h1.history == h2.history
    _same(loaded.get_weights(), model.get_weights())
