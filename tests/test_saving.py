"""Model files: save/load round trips give bitwise-identical predictions and identical continued
training; writes are atomic (a crash mid-save leaves the old file); truncated, bit-flipped,
wrong-version and mismatched files raise ModelFileError and leave the model untouched; no pickle."""
import hashlib
import json
import os
import pickle
import signal
import struct
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optimizers, saving
from fastnn.layers import BatchNormalization, Dense, Dropout
from fastnn.models import Sequential, load_model
from fastnn.saving import ModelFileError

from helpers import (
    blobs, classifier, raises_and_keeps, run_child, run_python, same_bits, small_model)


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


# -- damaged, crafted and foreign files; a killed save; what survives a file; permissions and path types ---
_PREFIX = struct.Struct("<8sIQ")


def _split_file(data):
    magic, version, length = _PREFIX.unpack_from(data)
    header = json.loads(data[_PREFIX.size:_PREFIX.size + length])
    return magic, version, header, data[_PREFIX.size + length:-32]


def _join_file(magic, version, header, payload):
    """A file in the documented layout with a correct checksum (so only the content is wrong)."""
    raw = json.dumps(header).encode()
    body = _PREFIX.pack(magic, version, len(raw)) + raw + payload
    return body + hashlib.sha256(body).digest()


class _Exploit:
    """Unpickling this would create the marker file: proof that the loader never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _corrupt(kind, data, marker):
    magic, version, header, payload = _split_file(data)
    if kind == "truncated_half":
        return data[:len(data) // 2]
    if kind == "truncated_header":
        return data[:_PREFIX.size + 3]
    if kind == "bit_flip_payload":
        flipped = bytearray(data)
        flipped[len(data) - 40] ^= 0x10
        return bytes(flipped)
    if kind == "wrong_version":
        return _join_file(magic, 99, header, payload)
    if kind == "pickle_file":
        return pickle.dumps(_Exploit(marker))
    if kind == "pickle_payload":
        blob = pickle.dumps(_Exploit(marker))
        header["arrays"][0].update(dtype="object", length=len(blob), offset=len(payload))
        return _join_file(magic, version, header, payload + blob)
    if kind == "wrong_shape":
        shape = header["arrays"][0]["shape"]
        header["arrays"][0]["shape"] = shape[::-1]  # same byte count, transposed kernel
        return _join_file(magic, version, header, payload)
    if kind == "unknown_layer":
        header["model_config"]["layers"][1]["class_name"] = "Conv9D"
        return _join_file(magic, version, header, payload)
    if kind == "layer_config_garbage":
        header["model_config"]["layers"][1]["config"]["units"] = "many"
        return _join_file(magic, version, header, payload)
    if kind == "array_past_payload":
        header["arrays"][-1]["offset"] = len(payload)
        return _join_file(magic, version, header, payload)
    if kind == "header_not_json":
        raw = b"{not json"
        body = _PREFIX.pack(magic, version, len(raw)) + raw + payload
        return body + hashlib.sha256(body).digest()
    raise AssertionError(kind)


BAD_FILES = {  # kind: message pattern, whether load_weights must also refuse it
    "truncated_half": ("truncated|corrupted", True),
    "truncated_header": ("truncated", True),
    "bit_flip_payload": ("corrupted", True),
    "wrong_version": ("format version 99", True),
    "pickle_file": ("not a fastnn model file", True),
    "pickle_payload": ("malformed", True),
    "wrong_shape": (r"shape \(8, 4\).*expects \(4, 8\)", True),
    "unknown_layer": ("Conv9D", False),       # weights-only loading ignores the architecture
    "layer_config_garbage": ("cannot rebuild", False),
    "array_past_payload": ("malformed|does not fit", True),
    "header_not_json": ("malformed", True),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_model_files_raise_a_clear_error_and_touch_nothing(backend, kind, tmp_path):
    """test_saving covers truncation at many offsets, every flipped bit and version 2; here every
    kind of damage named in the issue, through load_model and load_weights, with the full state
    check of the model loaded into, and proof that a pickle inside is never unpickled."""
    model = classifier(norm=True, dropout=True)
    x, y = blobs(n=12)
    model.fit(x, y, batch_size=4, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    marker = tmp_path / "unpickled"
    pattern, weights_too = BAD_FILES[kind]
    path.write_bytes(_corrupt(kind, path.read_bytes(), marker))
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_model(path)
    assert isinstance(info.value, ValueError) and "model.fnn" in str(info.value)
    target = classifier(norm=True, dropout=True)
    target.fit(x, y, batch_size=4, verbose=0)
    if weights_too:
        raises_and_keeps(target, ModelFileError, lambda m: m.load_weights(path), pattern)
    assert not marker.exists(), "the loader ran code from the file"
    assert np.isfinite(target.predict(x)).all()


_KILLED_SAVE = """
    import os, signal, sys
    import numpy as np, fastnn
    from fastnn import saving
    path = sys.argv[1]
    model = fastnn.load_model(path)
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    model.fit(x, np.arange(12) % 3, verbose=0)        # new weights, so the new file would differ
    half = os.path.getsize(path) // 2
    real_fdopen = os.fdopen

    class DiesHalfway:
        def __init__(self, f):
            self.f, self.written = f, 0
        def write(self, data):
            room = half - self.written
            if len(data) >= room:
                self.f.write(data[:room]); self.f.flush(); os.fsync(self.f.fileno())
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            self.written += self.f.write(data)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()

    saving.os.fdopen = lambda fd, mode="r", *a, **k: DiesHalfway(real_fdopen(fd, mode, *a, **k))
    model.save(path)
    print("survived", flush=True)
"""


def test_process_killed_during_save_leaves_the_previous_file_loadable(tmp_path):
    """A child loads the model, trains, and is SIGKILLed after writing half of the new file: the
    target still holds the previous file byte for byte, which loads and predicts as before (the
    half-written temporary file is left beside it, never renamed over the target)."""
    model = classifier(norm=True)
    x, y = blobs(n=12)
    model.fit(x, y, batch_size=4, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    old = path.read_bytes()
    out = run_python(_KILLED_SAVE, path)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.strip() == "dying"
    assert path.read_bytes() == old
    leftovers = [p for p in tmp_path.iterdir() if p.name != "model.fnn"]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == len(old) // 2
    assert same_bits(load_model(path).predict(x), model.predict(x))


def test_adamw_weight_decay_zero_round_trips(tmp_path):
    opt = optimizers.AdamW(weight_decay=0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert not again.weight_decay
    model = small_model(optimizer=optimizers.AdamW(weight_decay=0.0))
    model.save(tmp_path / "m.fastnn")
    assert not load_model(tmp_path / "m.fastnn").optimizer.weight_decay


def _rewrite_header(path, edit):
    import hashlib, json, struct
    from fastnn import saving
    data = path.read_bytes()
    magic, version, n = struct.unpack_from("<8sIQ", data)
    header = json.loads(data[20:20 + n])
    header = edit(header)
    hb = json.dumps(header).encode() if not isinstance(header, bytes) else header
    body = struct.pack("<8sIQ", magic, version, len(hb)) + hb + data[20 + n:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def _with(key, value):
    def edit(h):
        h[key] = value
        return h
    return edit


def _deep(h):
    return ("[" * 100000 + "]" * 100000).encode()


def _loss(name):
    def edit(h):
        h["compile_config"]["loss"]["class_name"] = name
        return h
    return edit


def _activation(h):
    h["model_config"]["layers"][1]["config"]["activation"] = "bogus"
    return h


@pytest.mark.parametrize("edit", [_with("dtype", "int64"), _with("dtype", "float16"), _with("dtype", "object"),
                                  _with("dtype", True), _deep, _with("arrays", 5), lambda h: [h],
                                  _loss("Loss"), _activation],
                         ids=["int64", "float16", "object", "bool", "deep", "arrays", "list", "Loss", "act"])
def test_malformed_checksum_valid_files_raise_model_file_error(tmp_path, edit):
    path = tmp_path / "m.fastnn"
    small_model().save(path)
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError):
        load_model(path)


def test_non_model_files_are_refused_from_their_first_bytes(tmp_path):
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        load_model("/dev/zero")  # endless: read whole, it would never return


def test_header_longer_than_the_file_is_refused(tmp_path):
    import struct
    from fastnn import saving
    path = tmp_path / "m.fastnn"
    path.write_bytes(struct.pack("<8sIQ", saving.MAGIC, 1, 1 << 40) + b"x" * 100)
    with pytest.raises(ModelFileError, match="header claims"):
        load_model(path)


def test_saved_files_follow_the_umask_and_keep_their_mode(tmp_path):
    model = small_model()
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "a.fastnn")
    finally:
        os.umask(old)
    assert (tmp_path / "a.fastnn").stat().st_mode & 0o777 == 0o644
    os.chmod(tmp_path / "a.fastnn", 0o640)
    model.save(tmp_path / "a.fastnn")
    assert (tmp_path / "a.fastnn").stat().st_mode & 0o777 == 0o640


def test_bytes_and_pathlike_paths(tmp_path):
    model = small_model()
    model.save(os.fsencode(tmp_path / "b.fastnn"))
    model.save_weights(tmp_path / "w.fastnn")
    assert load_model(os.fsencode(tmp_path / "b.fastnn")).count_params() == model.count_params()


def test_metric_objects_are_saved_and_restored(tmp_path):
    from fastnn import metrics
    objects = [metrics.PrecisionScore(average="macro", name="p_macro"), metrics.AUC(curve="PR"),
               metrics.Precision(thresholds=0.3, name="p30"), metrics.AUCScore(curve="PR", name="ap"),
               metrics.TopKCategoricalAccuracy(k=2), metrics.F1Score(average="weighted"),
               metrics.Accuracy(threshold=0.3)]
    model = small_model(metrics=["accuracy", *objects])
    x, y = np.random.default_rng(0).normal(size=(32, 4)), np.arange(32) % 3
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    assert loaded.metrics_names == model.metrics_names
    restored = loaded._metric_ids[1:]
    assert [type(m) for m in restored] == [type(m) for m in objects]
    assert [m.get_config() for m in restored] == [m.get_config() for m in objects]
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_a_metric_that_cannot_be_saved_is_named_not_dropped_silently(tmp_path):
    from fastnn import metrics
    custom = metrics.MeanMetricWrapper(lambda t, p: np.zeros(len(t)), name="zero")
    model = small_model(metrics=[custom, "accuracy"])
    with pytest.warns(UserWarning, match="zero.*not saved"):
        model.save(tmp_path / "m.fastnn")
    assert load_model(tmp_path / "m.fastnn").metrics_names == ["loss", "accuracy"]


def test_unknown_metric_class_in_a_file_is_a_model_file_error(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model(metrics=["accuracy"]).save(path)

    def edit(h):
        h["compile_config"]["metrics"] = [{"class_name": "Metric", "config": {}}]
        return h
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match="unknown metric"):
        load_model(path)


def test_crafted_huge_layer_is_refused_without_allocating(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model().save(path)

    def edit(h):  # 10**5 inputs x 10**5 units: 40 GB of kernel, from a file of a few hundred bytes
        first, dense = h["model_config"]["layers"][:2]
        assert first["class_name"] == "InputLayer" and dense["class_name"] == "Dense"
        first["config"]["input_shape"] = dense["config"]["input_shape"] = [10**5]
        dense["config"]["units"] = 10**5
        return h
    _rewrite_header(path, edit)
    code = f"""
        import resource, tracemalloc
        from fastnn.models import load_model
        from fastnn.saving import ModelFileError
        tracemalloc.start()
        try:
            load_model({str(path)!r})
        except ModelFileError as exc:
            print("refused:", exc)
        print("peak", tracemalloc.get_traced_memory()[1])
        print("rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
    result = run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "file holds only" in result.stdout, result.stdout
    peak = int(result.stdout.split("peak ")[1].split()[0])
    rss = int(result.stdout.split("rss_kib ")[1].split()[0])
    assert peak < 50 * 2**20, peak  # 40 GB declared: Python-side allocations stay small
    # and the process stays under a 1 GiB ceiling -- except under AddressSanitizer (CI's sanitizer
    # run preloads it), whose shadow memory and quarantine alone take about that much
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert rss < 1024 * 1024, rss


@pytest.mark.parametrize("shape", [[-1, 4], [2**40, 2**40]])
def test_negative_or_overflowing_array_shapes_are_refused(tmp_path, shape):
    path = tmp_path / "m.fastnn"
    small_model().save(path)

    def edit(h):
        h["arrays"][0]["shape"] = shape
        return h
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match="does not fit"):
        load_model(path)
