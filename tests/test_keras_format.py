"""Keras 3's files: .keras models and .weights.h5 weights (fastnn.keras_format).

The fixtures in tests/fixtures/keras/ were written by real Keras 3 (tests/fixtures/make_keras_files.py,
with Keras's own predictions in expected.npz). The other direction, Keras opening fastnn's files, is
checked by hand with bench/keras_files_crosscheck.py; here fastnn's files are compared structurally
with Keras's (zip members, config keys, HDF5 dataset paths and shapes).
"""
import io
import json
import os
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="Keras files need the optional h5py (the keras extra)")

import fastnn
from fastnn import keras_format, layers as L
from fastnn.saving import ModelFileError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "keras")
EXPECTED = np.load(os.path.join(FIXTURES, "expected.npz"))
NAMES = ["dense_stack", "recurrent", "gru_v1", "regression", "settings", "schedule", "activations"]
FUNCTIONAL = ["two_heads", "dict_io", "single"]


def fixture(name):
    return os.path.join(FIXTURES, name)


def h5_layout(data):
    """{dataset path: shape} of an HDF5 file given as bytes or a path."""
    out = {}
    with h5py.File(io.BytesIO(data) if isinstance(data, bytes) else data, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
    return out


def rewrite(src, dst, **members):
    """Copy the .keras zip ``src`` to ``dst`` with some members replaced (bytes) or removed (None)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in members:
                continue
            zout.writestr(info.filename, zin.read(info.filename))
        for name, data in members.items():
            if data is not None:
                zout.writestr(name, data)


def config_of(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


def weights_of(path):
    with zipfile.ZipFile(path) as z:
        return z.read("model.weights.h5")


# -- Keras wrote, fastnn reads --------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_keras_written_models_predict_as_keras(name):
    model = fastnn.keras.models.load_model(fixture(name + ".keras"))
    out = model.predict(EXPECTED[name + "/x"], verbose=0)
    np.testing.assert_allclose(out, EXPECTED[name + "/y"], rtol=1e-5, atol=1e-6)
    assert fastnn.models.load_model is fastnn.keras.models.load_model


def test_every_layer_type_is_read():
    classes = {type(l).__name__ for n in NAMES + FUNCTIONAL for l in fastnn.load_model(fixture(n + ".keras")).layers}
    assert classes == set(keras_format.LAYERS)


def test_compile_config_and_optimizer_state_are_restored():
    model = fastnn.load_model(fixture("dense_stack.keras"))
    cc = config_of(fixture("dense_stack.keras"))["compile_config"]
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.learning_rate == pytest.approx(cc["optimizer"]["config"]["learning_rate"])
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    assert model._metric_ids == ["accuracy"]
    assert model.optimizer.iterations == 8  # 2 epochs of 4 batches in the script
    dense = model.layers[3]
    assert type(dense.kernel_regularizer).__name__ == "L2" and dense.kernel_regularizer.l2 == pytest.approx(1e-3)
    assert type(dense.kernel_constraint).__name__ == "MaxNorm"
    assert type(dense.kernel_initializer).__name__ == "HeNormal"
    # Adam's moments came from the file: they are not the zeros of a fresh optimizer.
    assert any(np.abs(v).max() > 0 for v in model.optimizer.variables())


@pytest.mark.parametrize("name, optimizer", [("regression", "RMSprop"), ("settings", "RMSprop"),
                                             ("schedule", "Adam")])
def test_continued_training_matches_keras(name, optimizer):
    model = fastnn.load_model(fixture(name + ".keras"))
    assert type(model.optimizer).__name__ == optimizer
    x = EXPECTED[name + "/x"]
    model.train_on_batch(x, EXPECTED[name + "/step_y"])
    np.testing.assert_allclose(model.predict(x, verbose=0), EXPECTED[name + "/after_step"], rtol=1e-5, atol=1e-6)


def test_settings_off_their_defaults_are_read():
    model = fastnn.load_model(fixture("settings.keras"))
    dense, bn, dense2, ln = model.layers[:4]
    assert not dense.use_bias and dense.kernel_initializer.get_config()["mean"] == pytest.approx(0.1)
    assert dense.kernel_initializer.get_config()["seed"] == 7
    assert type(dense.kernel_regularizer).__name__ == "L1L2" and dense.kernel_regularizer.l1 == pytest.approx(1e-4)
    assert type(dense2.bias_constraint).__name__ == "NonNeg"
    assert not bn.center and bn.momentum == pytest.approx(0.9) and not ln.scale
    assert model.optimizer.momentum == 0.5 and model.optimizer.centered
    sched = fastnn.load_model(fixture("schedule.keras")).optimizer
    assert sched.amsgrad and type(sched.learning_rate_schedule).__name__ == "ExponentialDecay"
    huber = fastnn.load_model(fixture("regression.keras")).loss
    assert type(huber).__name__ == "Huber" and huber.delta == 1.0  # Keras 3.15 stores no delta


def test_compile_false_leaves_the_model_uncompiled():
    model = fastnn.load_model(fixture("regression.keras"), compile=False)
    assert model.optimizer is None and model.loss is None


def test_keras_weights_file_loads_into_a_model():
    model = fastnn.load_model(fixture("dense_stack.keras"), compile=False)
    model.set_weights([np.zeros_like(w) + (1 if "variance" in str(i) else 0) for i, w in enumerate(model.get_weights())])
    model.load_weights(fixture("dense_stack.weights.h5"))
    np.testing.assert_allclose(model.predict(EXPECTED["dense_stack/x"], verbose=0), EXPECTED["dense_stack/y"],
                               rtol=1e-5, atol=1e-6)


# -- fastnn writes, structure as Keras's -----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fastnn_writes_keras_layout(tmp_path, name):
    model = fastnn.load_model(fixture(name + ".keras"))
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(fixture(name + ".keras")) as k:
        assert sorted(z.namelist()) == sorted(k.namelist())
        assert set(json.loads(z.read("metadata.json"))) == set(json.loads(k.read("metadata.json")))
    ours, theirs = config_of(path), config_of(fixture(name + ".keras"))
    assert ours["class_name"] == theirs["class_name"] == "Sequential"
    assert set(ours) == set(theirs)
    assert [l["class_name"] for l in ours["config"]["layers"]] == [l["class_name"] for l in theirs["config"]["layers"]]
    for mine, keras_layer in zip(ours["config"]["layers"], theirs["config"]["layers"]):
        # every setting fastnn writes is one Keras writes for that layer
        assert set(mine["config"]) <= set(keras_layer["config"]), mine["class_name"]
        assert mine.get("build_config") in (None, keras_layer.get("build_config"))
    assert h5_layout(weights_of(path)) == h5_layout(weights_of(fixture(name + ".keras")))
    assert set(ours["compile_config"]) == set(theirs["compile_config"])
    if theirs["compile_config"]:
        assert ours["compile_config"]["optimizer"]["class_name"] == theirs["compile_config"]["optimizer"]["class_name"]


def test_fastnn_keras_file_round_trips_with_optimizer_state(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.integers(0, 3, 32)
    model = fastnn.Sequential([fastnn.Input((5,)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                               L.Dense(3, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(amsgrad=False), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = fastnn.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_save_weights_writes_keras_layout(tmp_path):
    model = fastnn.load_model(fixture("dense_stack.keras"))
    model.save_weights(tmp_path / "w.weights.h5")
    assert h5_layout(str(tmp_path / "w.weights.h5")) == h5_layout(fixture("dense_stack.weights.h5"))
    other = fastnn.load_model(fixture("dense_stack.keras"))
    other.set_weights([w * 0.5 for w in other.get_weights()])
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_float64_model_keeps_its_dtype(tmp_path):
    with _float64():
        model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(2)])
    model.save(tmp_path / "m.keras")
    assert config_of(tmp_path / "m.keras")["config"]["layers"][1]["config"]["dtype"] == "float64"
    loaded = fastnn.load_model(tmp_path / "m.keras")
    assert loaded.weights[0].dtype == np.float64
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_float64_functional_model_keeps_its_dtype(tmp_path):
    with _float64():
        a, b = fastnn.Input((3,), name="a"), fastnn.Input((3,), name="b")
        model = fastnn.Model([a, b], L.Dense(2)(L.Maximum()([a, b])))
    model.save(tmp_path / "m.keras")
    assert {l["config"]["dtype"] for l in config_of(tmp_path / "m.keras")["config"]["layers"]} == {"float64"}
    loaded = fastnn.load_model(tmp_path / "m.keras")
    assert loaded.weights[0].dtype == np.float64 and all(t.dtype == np.float64 for t in loaded.inputs)
    x = [np.linspace(-1, 1, 12).reshape(4, 3), np.linspace(1, -1, 12).reshape(4, 3)]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


class _float64:
    def __enter__(self):
        self.old = fastnn.backend.floatx()
        fastnn.backend.set_floatx("float64")

    def __exit__(self, *exc):
        fastnn.backend.set_floatx(self.old)


# -- extensions: a fastnn file never under a Keras name ---------------------------------------------

def small_model():
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(2)])
    model.compile(loss="mse")
    return model


@pytest.mark.parametrize("name", ["m.h5", "m.hdf5", "m.weights.h5"])
def test_save_refuses_other_keras_extensions(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.keras"):
        small_model().save(tmp_path / name)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["w.keras", "w.h5"])
def test_save_weights_refuses_other_keras_extensions(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        small_model().save_weights(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_other_names_keep_fastnn_format(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.fnn")
    model.save(tmp_path / "m")
    for name in ("m.fnn", "m"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == fastnn.saving.MAGIC
        np.testing.assert_array_equal(fastnn.load_model(tmp_path / name).get_weights()[0], model.get_weights()[0])


def test_loading_the_wrong_kind_of_keras_file(tmp_path):
    with pytest.raises(ModelFileError, match="load_weights"):
        fastnn.load_model(fixture("dense_stack.weights.h5"))
    with pytest.raises(ModelFileError, match="load_model"):
        fastnn.load_model(fixture("regression.keras")).load_weights(fixture("regression.keras"))


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"fastnn-cpu\[keras\]"):
        small_model().save(tmp_path / "m.keras")
    with pytest.raises(ImportError, match=r"fastnn-cpu\[keras\]"):
        fastnn.load_model(fixture("regression.keras"))
    assert os.listdir(tmp_path) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    small_model().save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        small_model().save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.keras"]


def test_unsupported_models_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        fastnn.Sequential([L.Dense(2)]).save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


# -- hostile files ---------------------------------------------------------------------------------

def hostile(tmp_path, config=None, weights=None, **members):
    src = fixture("regression.keras")
    if config is not None:
        members["config.json"] = json.dumps(config).encode() if not isinstance(config, bytes) else config
    if weights is not None:
        members["model.weights.h5"] = weights
    path = tmp_path / "bad.keras"
    rewrite(src, path, **members)
    return path


def regression_config():
    return config_of(fixture("regression.keras"))


def h5_bytes(build):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


@pytest.mark.parametrize("class_name, module", [("Lambda", "keras.layers"), ("Conv2D", "keras.layers"),
                                                ("system", "os"), ("Evil", "fastnn_test_evil_module")])
def test_unknown_layer_classes_refused_without_import(tmp_path, class_name, module):
    config = regression_config()
    config["config"]["layers"][1] = {"module": module, "class_name": class_name, "config": {"function": "x"},
                                     "registered_name": None}
    with pytest.raises(ModelFileError, match=f"{class_name}.*fastnn does not have"):
        fastnn.load_model(hostile(tmp_path, config))
    assert "fastnn_test_evil_module" not in sys.modules


def test_custom_objects_and_model_classes_refused(tmp_path):
    config = regression_config()
    config["config"]["layers"][1]["config"]["kernel_initializer"] = {
        "module": "evil", "class_name": "Thing", "config": {}, "registered_name": "Custom>Thing"}
    with pytest.raises(ModelFileError, match="custom object"):
        fastnn.load_model(hostile(tmp_path, config))
    for cls, match in (("MyModel", "not a Keras model"),):
        config = regression_config()
        config["class_name"] = cls
        with pytest.raises(ModelFileError, match=match):
            fastnn.load_model(hostile(tmp_path, config))


def test_unsupported_settings_refused(tmp_path):
    config = regression_config()
    config["config"]["layers"][1]["config"]["quantization_config"] = {"mode": "int8"}
    with pytest.raises(ModelFileError, match="quantization_config"):
        fastnn.load_model(hostile(tmp_path, config))
    config = regression_config()
    config["compile_config"]["optimizer"] = {"module": "keras.optimizers", "class_name": "Muon", "config": {}}
    with pytest.raises(ModelFileError, match="unknown optimizer"):
        fastnn.load_model(hostile(tmp_path, config))
    config = regression_config()
    config["compile_config"]["loss"] = "os.system"
    with pytest.raises(ModelFileError, match="compile"):
        fastnn.load_model(hostile(tmp_path, config))


@pytest.mark.parametrize("config", [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100000 + b"]" * 100000,
                                    json.dumps({"class_name": "Sequential", "config": {"layers": "x"}}).encode(),
                                    json.dumps({"class_name": "Sequential", "config": {"layers": [
                                        {"class_name": "Dense", "config": {"units": 2}}]}}).encode()])
def test_malformed_configs(tmp_path, config):
    with pytest.raises(ModelFileError):
        fastnn.load_model(hostile(tmp_path, config))


def test_huge_layers_in_a_tiny_file_allocate_nothing(tmp_path):
    config = regression_config()
    config["config"]["layers"][1]["config"]["units"] = 10 ** 8  # 400 MB kernel, 4e8 B file claims nothing
    path = hostile(tmp_path, config)
    assert os.path.getsize(path) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="shape"):
            fastnn.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_zip_bomb_refused(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", b" " * (keras_format.MAX_JSON_BYTES + 1))
        z.writestr("model.weights.h5", b"")
    assert os.path.getsize(path) < 100_000
    with pytest.raises(ModelFileError, match="declares"):
        fastnn.load_model(path)


def test_zip_entry_lying_about_its_size_refused(tmp_path):
    path = hostile(tmp_path, regression_config())
    data = bytearray(path.read_bytes())
    # Shrink config.json's declared size in the central directory (the local header is not used
    # for sizes by zipfile): reading it must not return more than declared.
    idx = 0
    while True:
        idx = data.find(b"PK\x01\x02", idx)
        name_len = int.from_bytes(data[idx + 28:idx + 30], "little")
        if data[idx + 46:idx + 46 + name_len] == b"config.json":
            data[idx + 24:idx + 28] = (10).to_bytes(4, "little")
            break
        idx += 4
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        fastnn.load_model(path)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04garbage", b"FASTNN"])
def test_not_a_zip(tmp_path, data):
    path = tmp_path / "x.keras"
    path.write_bytes(data)
    with pytest.raises(ModelFileError):
        fastnn.load_model(path)


def test_truncated_and_incomplete_archives(tmp_path):
    with open(fixture("regression.keras"), "rb") as f:
        data = f.read()
    for cut in (len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.keras"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            fastnn.load_model(path)
    with pytest.raises(ModelFileError, match="model.weights.h5"):
        fastnn.load_model(hostile(tmp_path, **{"model.weights.h5": None}))
    with pytest.raises(ModelFileError, match="HDF5"):
        fastnn.load_model(hostile(tmp_path, weights=b"\x89HDF\r\n\x1a\n" + b"\x00" * 500))


def _copy_layout(f, src, change):
    with h5py.File(io.BytesIO(src), "r") as s:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                value = change(name, obj[()])
                if value is not None:
                    kw = value if isinstance(value, dict) else {"data": value}
                    f.create_dataset(name, **kw)
        s.visititems(visit)


@pytest.mark.parametrize("what", ["shape", "int", "string", "missing", "compressed_huge"])
def test_bad_weight_arrays(tmp_path, what):
    src = weights_of(fixture("regression.keras"))
    target = "layers/dense/vars/0"

    def change(name, value):
        if name != target:
            return value
        if what == "shape":
            return np.zeros((5, 6), np.float32)
        if what == "int":
            return value.astype(np.int64)
        if what == "string":
            return np.array([b"x" * 4] * value.size).reshape(value.shape)
        if what == "missing":
            return None
        return {"shape": value.shape, "dtype": "f4", "chunks": value.shape, "compression": "gzip"}
    weights = h5_bytes(lambda f: _copy_layout(f, src, change))
    with pytest.raises(ModelFileError, match=target):
        fastnn.load_model(hostile(tmp_path, weights=weights))


def test_bad_weights_file_leaves_model_unchanged(tmp_path):
    model = fastnn.load_model(fixture("dense_stack.keras"))
    before = model.get_weights()
    with open(fixture("dense_stack.weights.h5"), "rb") as f:
        src = f.read()

    def change(name, value):
        return np.zeros((1,), np.float32) if name == "layers/dense_1/vars/0" else value
    path = tmp_path / "bad.weights.h5"
    path.write_bytes(h5_bytes(lambda f: _copy_layout(f, src, change)))
    with pytest.raises(ModelFileError, match="dense_1"):
        model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_non_finite_weights_refused(tmp_path):
    src = weights_of(fixture("regression.keras"))

    def change(name, value):
        return np.full_like(value, np.nan) if name == "layers/dense/vars/1" else value
    weights = h5_bytes(lambda f: _copy_layout(f, src, change))
    with pytest.raises(ModelFileError):
        fastnn.load_model(hostile(tmp_path, weights=weights))


def test_model_checkpoint_writes_keras_files_and_checks_the_name_at_once(tmp_path):
    with pytest.raises(ValueError, match=r"\.keras"):
        fastnn.callbacks.ModelCheckpoint(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        fastnn.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    model = small_model()
    x = np.ones((8, 3), np.float32)
    cbs = [fastnn.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"), monitor="loss"),
           fastnn.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.h5"), monitor="loss",
                                            save_weights_only=True)]
    model.fit(x, x[:, :2], epochs=2, verbose=0, callbacks=cbs)
    assert sorted(os.listdir(tmp_path)) == ["m-1.keras", "m-2.keras", "w-1.weights.h5", "w-2.weights.h5"]
    np.testing.assert_array_equal(fastnn.load_model(tmp_path / "m-2.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_damaged_archives_never_raise_anything_but_model_file_error(tmp_path):
    """Seeded random byte changes in config.json and model.weights.h5: each file either loads or
    raises ModelFileError (h5py's own errors on a damaged file included)."""
    with zipfile.ZipFile(fixture("regression.keras")) as z:
        members = {n: z.read(n) for n in z.namelist()}
    rng = np.random.default_rng(1234)
    outcomes = set()
    for trial in range(60):
        target = "config.json" if trial % 3 == 0 else "model.weights.h5"
        data = bytearray(members[target])
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        path = tmp_path / f"f{trial}.keras"
        rewrite(fixture("regression.keras"), path, **{target: bytes(data)})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fastnn.load_model(path)
            outcomes.add("loaded")
        except ModelFileError:
            outcomes.add("refused")
    assert "refused" in outcomes


def test_include_optimizer_false_keeps_compile_settings_only(tmp_path):
    model = fastnn.load_model(fixture("regression.keras"))
    model.save(tmp_path / "m.keras", include_optimizer=False)
    assert not any(p.startswith("optimizer/") for p in h5_layout(weights_of(tmp_path / "m.keras")))
    loaded = fastnn.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer).__name__ == "RMSprop" and loaded.optimizer.iterations == 0
    np.testing.assert_array_equal(loaded.predict(EXPECTED["regression/x"], verbose=0),
                                  model.predict(EXPECTED["regression/x"], verbose=0))


def test_bytes_and_pathlike_paths(tmp_path):
    model = small_model()
    model.save(os.fsencode(str(tmp_path / "m.keras")))
    model.save_weights(os.fsencode(str(tmp_path / "w.weights.h5")))
    assert fastnn.load_model(os.fsencode(str(tmp_path / "m.keras"))).layers[0].units == 2
    model.load_weights(tmp_path / "w.weights.h5")


def test_what_keras_cannot_hold_is_refused_before_writing(tmp_path):
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(2, activation="step")])
    with pytest.raises(ValueError, match="no Keras name"):
        model.save(tmp_path / "m.keras")
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(2)])
    model.compile(loss="mse", metrics=[fastnn.metrics.MeanAbsoluteError(multioutput=[0.25, 0.75])])
    with pytest.raises(ValueError, match="cannot express"):
        model.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_weights_member_zip_bomb_refused(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(fixture("regression.keras")) as k, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", k.read("metadata.json"))
        z.writestr("config.json", k.read("config.json"))
        z.writestr("model.weights.h5", bytes(64 << 20))  # 64 MiB of zeros, ~64 KiB compressed
    assert os.path.getsize(path) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="zip bomb"):
            fastnn.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_too_many_layers_refused(tmp_path):
    config = regression_config()
    config["config"]["layers"] += [{"class_name": "Identity", "config": {}}] * keras_format.MAX_LAYERS
    with pytest.raises(ModelFileError, match="layers, more than"):
        fastnn.load_model(hostile(tmp_path, config))


# -- functional models -----------------------------------------------------------------------------

def functional_inputs(name):
    if name == "two_heads":
        return [EXPECTED["two_heads/x0"], EXPECTED["two_heads/x1"]]
    if name == "dict_io":
        return {"series": EXPECTED["dict_io/x_series"], "extra": EXPECTED["dict_io/x_extra"]}
    return EXPECTED["single/x"]


def functional_expected(name):
    if name == "two_heads":
        return [EXPECTED["two_heads/y0"], EXPECTED["two_heads/y1"]]
    if name == "dict_io":
        return {"zeta": EXPECTED["dict_io/y_zeta"], "alpha": EXPECTED["dict_io/y_alpha"]}
    return EXPECTED["single/y"]


def assert_outputs_close(got, want, **tol):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], **tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, **tol)
    else:
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_keras_written_functional_models_predict_as_keras(name):
    model = fastnn.load_model(fixture(name + ".keras"))
    assert isinstance(model, fastnn.functional.Functional)
    assert_outputs_close(model.predict(functional_inputs(name), verbose=0), functional_expected(name),
                         rtol=1e-5, atol=1e-6)
    # fastnn's idea of Keras's layer order (which numbers the HDF5 groups) is the order Keras wrote
    config = config_of(fixture(name + ".keras"))["config"]
    assert [l.name for l in keras_format._keras_layers(model)] == [l["name"] for l in config["layers"]]


def test_functional_graph_and_compile_settings_are_read():
    model = fastnn.load_model(fixture("two_heads.keras"))
    assert model.name == "two_heads" and model._output_names == ["price", "kind"]
    shared = model.get_layer("shared")
    assert sum(node.layer is shared for node in model._nodes) == 2  # one layer, two calls
    assert {type(l).__name__ for l in model.layers} >= {"Add", "Subtract", "Multiply", "Average", "Maximum",
                                                       "Minimum", "Concatenate", "Reshape"}
    assert [type(l).__name__ for l in model._losses] == ["MeanSquaredError", "SparseCategoricalCrossentropy"]
    assert model._loss_weights == [0.5, 2.0] and model._metric_spec == [["mae"], ["accuracy"]]
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.iterations == 4
    named = fastnn.load_model(fixture("dict_io.keras"))
    assert named._in_kind == named._out_kind == "dict"
    assert named._output_names == ["zeta", "alpha"] and named.optimizer.momentum == 0.9


def test_functional_continued_training_matches_keras():
    """One more Adam step after loading lands where Keras's did: the optimizer's moments were
    mapped from Keras's variable order (its layer order) to fastnn's."""
    model = fastnn.load_model(fixture("two_heads.keras"))
    xs = functional_inputs("two_heads")
    model.train_on_batch(xs, [EXPECTED["two_heads/step_y0"], EXPECTED["two_heads/step_y1"]])
    assert_outputs_close(model.predict(xs, verbose=0), [EXPECTED["two_heads/after0"], EXPECTED["two_heads/after1"]],
                         rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_fastnn_writes_functional_keras_layout(tmp_path, name):
    model = fastnn.load_model(fixture(name + ".keras"))
    model.save(tmp_path / "m.keras")
    ours, theirs = config_of(tmp_path / "m.keras"), config_of(fixture(name + ".keras"))
    assert ours["class_name"] == theirs["class_name"] == "Functional"
    assert set(ours) == set(theirs) and set(ours["config"]) == set(theirs["config"])
    assert ours["config"]["input_layers"] == theirs["config"]["input_layers"]
    assert ours["config"]["output_layers"] == theirs["config"]["output_layers"]
    assert [l["name"] for l in ours["config"]["layers"]] == [l["name"] for l in theirs["config"]["layers"]]
    for mine, keras_layer in zip(ours["config"]["layers"], theirs["config"]["layers"]):
        assert mine["class_name"] == keras_layer["class_name"]
        assert set(mine["config"]) <= set(keras_layer["config"]), mine["class_name"]
        assert mine.get("build_config") in (None, keras_layer.get("build_config")), mine["name"]
        strip = [[t["config"]["keras_history"] for t in (n["args"][0] if isinstance(n["args"][0], list)
                                                        else [n["args"][0]])] for n in mine["inbound_nodes"]]
        want = [[t["config"]["keras_history"] for t in (n["args"][0] if isinstance(n["args"][0], list)
                                                       else [n["args"][0]])] for n in keras_layer["inbound_nodes"]]
        assert strip == want, mine["name"]
        for n, k in zip(mine["inbound_nodes"], keras_layer["inbound_nodes"]):
            tensors = n["args"][0] if isinstance(n["args"][0], list) else [n["args"][0]]
            keras_tensors = k["args"][0] if isinstance(k["args"][0], list) else [k["args"][0]]
            assert [t["config"]["shape"] for t in tensors] == [t["config"]["shape"] for t in keras_tensors]
    assert h5_layout(weights_of(tmp_path / "m.keras")) == h5_layout(weights_of(fixture(name + ".keras")))
    cc, kc = ours["compile_config"], theirs["compile_config"]
    assert set(cc) == set(kc)
    outputs = [ref[0] for ref in ours["config"]["output_layers"]] if name == "two_heads" else None
    for key in ("loss_weights", "metrics"):  # Keras keeps the form it was given (a dict by output name
        # for a list of outputs); fastnn writes a list for a list of outputs: the same settings
        assert per_output(cc[key], outputs) == per_output(kc[key], outputs), key
    loaded = fastnn.load_model(tmp_path / "m.keras")
    assert_outputs_close(loaded.predict(functional_inputs(name), verbose=0),
                         model.predict(functional_inputs(name), verbose=0), rtol=0, atol=0)


def per_output(value, outputs):
    """A compile setting given as a dict by output name, as a list in output order."""
    return [value[o] for o in outputs] if isinstance(value, dict) and outputs else value


def every_merge_model():
    a, b = fastnn.Input((4,), name="a"), fastnn.Input((3,), name="b")
    shared = L.Dense(5, activation="tanh", name="shared")
    ha, hb = shared(L.Dense(3, name="pre")(a)), shared(b)
    h = L.Concatenate()([L.Add()([ha, hb]), L.Subtract()([ha, hb]), L.Multiply()([ha, hb]),
                         L.Average()([ha, hb]), L.Maximum()([ha, hb]), L.Minimum()([ha, hb])])
    h = L.Flatten()(L.Reshape((6, 5))(h))
    h = L.Add(name="skip")([L.Dense(4, activation="relu")(h), L.Dense(4)(a)])
    model = fastnn.Model([a, b], [L.Dense(1, name="y")(h), L.Dense(3, activation="softmax", name="c")(h)])
    model.compile(optimizer=fastnn.optimizers.Adam(1e-2), loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[0.3, 1.0], metrics=[["mae"], ["accuracy"]])
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(24, 4)).astype("float32"), rng.normal(size=(24, 3)).astype("float32")]
    ys = [rng.normal(size=(24, 1)).astype("float32"), rng.integers(0, 3, 24)]
    return model, xs, ys


def test_fastnn_functional_round_trip_with_optimizer_state(tmp_path):
    model, xs, ys = every_merge_model()
    model.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = fastnn.load_model(tmp_path / "m.keras")
    assert_outputs_close(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=0, atol=0)
    assert loaded._loss_weights == [0.3, 1.0] and loaded._metric_spec == [["mae"], ["accuracy"]]
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    model.train_on_batch(xs, ys)
    loaded.train_on_batch(xs, ys)
    assert_outputs_close(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6, atol=1e-7)
    cc = config_of(tmp_path / "m.keras")["compile_config"]
    assert cc["loss_weights"] == [0.3, 1.0] and cc["metrics"] == [["mae"], ["accuracy"]]
    assert [l["class_name"] for l in cc["loss"]] == ["MeanSquaredError", "SparseCategoricalCrossentropy"]


def test_functional_weights_file_round_trips(tmp_path):
    model, xs, _ = every_merge_model()
    model.save_weights(tmp_path / "w.weights.h5")
    layout = h5_layout(str(tmp_path / "w.weights.h5"))
    assert "layers/dense_1/vars/0" in layout and layout["layers/dense_1/vars/0"] == (3, 5)  # shared, second Dense
    other, _, _ = every_merge_model()
    other.load_weights(tmp_path / "w.weights.h5")
    assert_outputs_close(other.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=0, atol=0)


def test_subclassed_model_saves_as_its_traced_graph(tmp_path):
    class TwoTower(fastnn.Model):
        def __init__(self):
            super().__init__()
            self.hidden = L.Dense(6, activation="relu")
            self.out = L.Dense(2)

        def call(self, x, training=False):
            return self.out(L.Concatenate()([self.hidden(x), x]))
    model = TwoTower()
    x = np.random.default_rng(5).normal(size=(10, 3)).astype("float32")
    model.compile(loss="mse")
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    assert config_of(tmp_path / "m.keras")["class_name"] == "Functional"
    loaded = fastnn.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# -- hostile functional files ------------------------------------------------------------------------

def functional_config():
    return config_of(fixture("two_heads.keras"))


def hostile_functional(tmp_path, config):
    path = tmp_path / "bad.keras"
    rewrite(fixture("two_heads.keras"), path, **{"config.json": json.dumps(config).encode()})
    return path


def entry(config, name):
    return next(l for l in config["config"]["layers"] if l["name"] == name)


def first_ref(layer_entry):
    arg = layer_entry["inbound_nodes"][0]["args"][0]
    return (arg[0] if isinstance(arg, list) else arg)["config"]["keras_history"]


def _missing_layer(c):
    first_ref(entry(c, "body"))[0] = "nowhere"


def _node_out_of_range(c):
    first_ref(entry(c, "body"))[1] = 7


def _tensor_out_of_range(c):
    first_ref(entry(c, "body"))[2] = 1


def _cycle(c):  # pre_a reads body's output, which (through shared) reads pre_a's
    first_ref(entry(c, "pre_a"))[:] = ["body", 0, 0]


def _self_loop(c):
    first_ref(entry(c, "body"))[:] = ["body", 0, 0]


def _unknown_class(c):
    entry(c, "body")["class_name"] = "Lambda"


def _nested_model(c):
    entry(c, "body")["class_name"] = "Functional"


def _merge_given_one_tensor(c):
    node = entry(c, "skip")["inbound_nodes"][0]
    node["args"] = [node["args"][0][0]]


def _merge_of_nothing(c):
    entry(c, "skip")["inbound_nodes"][0]["args"] = [[]]


def _bad_dtype(c):
    entry(c, "body")["config"]["dtype"] = {"class_name": "DTypePolicy", "config": True}


def _duplicate_name(c):
    entry(c, "body")["name"] = "jump"


def _output_missing(c):
    c["config"]["output_layers"][0] = ["ghost", 0, 0]


def _input_not_input_layer(c):
    c["config"]["input_layers"][0] = ["body", 0, 0]


def _unconnected_call(c):
    e = entry(c, "jump")
    e["inbound_nodes"].append(e["inbound_nodes"][0])


def _bad_tensor(c):
    entry(c, "body")["inbound_nodes"][0]["args"] = [{"class_name": "Evil", "config": {}}]


def _call_kwargs(c):
    entry(c, "body")["inbound_nodes"][0]["kwargs"] = {"mask": [1, 2]}


def _shared_shapes_differ(c):
    e = entry(c, "shared")  # the shared Dense called on (3,) and on (4,)
    e["inbound_nodes"][1]["args"][0]["config"]["keras_history"] = ["a", 0, 0]


@pytest.mark.parametrize("damage, match", [
    (_missing_layer, "does not have"), (_node_out_of_range, "call 7"), (_tensor_out_of_range, "tensor index 1"),
    (_cycle, "cycle"), (_self_loop, "cycle"), (_unknown_class, "Lambda.*fastnn does not have"),
    (_nested_model, "Functional.*fastnn does not have"), (_merge_given_one_tensor, "list of tensors"),
    (_duplicate_name, "two layers"), (_output_missing, "ghost"), (_input_not_input_layer, "not an InputLayer"),
    (_unconnected_call, "does not lead to any output"), (_bad_tensor, "Keras tensor"),
    (_call_kwargs, "call arguments"), (_shared_shapes_differ, "shared layer"), (_merge_of_nothing, "two or more"),
    (_bad_dtype, "dtype")])
def test_hostile_functional_graphs_refused(tmp_path, damage, match):
    config = functional_config()
    damage(config)
    with pytest.raises(ModelFileError, match=match):
        fastnn.load_model(hostile_functional(tmp_path, config))


def test_layer_settings_fastnn_refuses_are_file_errors(tmp_path):
    config = config_of(fixture("dict_io.keras"))
    entry(config, "gru")["config"]["stateful"] = True
    path = tmp_path / "bad.keras"
    rewrite(fixture("dict_io.keras"), path, **{"config.json": json.dumps(config).encode()})
    with pytest.raises(ModelFileError, match="stateful"):
        fastnn.load_model(path)


def test_functional_bounds(tmp_path):
    config = functional_config()
    body = entry(config, "body")
    body["inbound_nodes"] = body["inbound_nodes"] * (keras_format.MAX_NODES + 1)
    with pytest.raises(ModelFileError, match="layer calls"):
        fastnn.load_model(hostile_functional(tmp_path, config))
    config = functional_config()
    entry(config, "body")["config"]["units"] = 10 ** 8
    with pytest.raises(ModelFileError, match="more weights"):
        fastnn.load_model(hostile_functional(tmp_path, config))
    entry(config, "body")["config"]["units"] = 10 ** 6  # 140 MB of kernel claimed by a tiny file
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="shape"):
            fastnn.load_model(hostile_functional(tmp_path, config))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_keras_functional_weights_file_loads_into_a_model():
    """Keras's save_weights of a functional model: groups numbered in Keras's layer order."""
    model = fastnn.load_model(fixture("two_heads.keras"), compile=False)
    model.set_weights([np.ones_like(w) for w in model.get_weights()])
    model.load_weights(fixture("two_heads.weights.h5"))
    assert_outputs_close(model.predict(functional_inputs("two_heads"), verbose=0), functional_expected("two_heads"),
                         rtol=1e-5, atol=1e-6)


def test_functional_names_keras_cannot_hold_refused_before_writing(tmp_path):
    a = fastnn.Input((3,), name="x")
    model = fastnn.Model(a, L.Dense(2, name="x")(a))  # a layer named as the input
    with pytest.raises(ValueError, match="used twice"):
        model.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_metric_objects_travel_with_their_settings_and_others_are_refused(tmp_path):
    pytest.importorskip("h5py", reason="h5py writes the weights of .keras files (fastnn-cpu[keras])")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = fastnn.Sequential([fastnn.keras.Input(shape=(4,)), fastnn.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=[fastnn.metrics.AUC(num_thresholds=50, name="auc50"),
                           fastnn.metrics.Precision(thresholds=0.3), "accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        entries = json.loads(z.read("config.json"))["compile_config"]["metrics"]
    assert entries[0]["class_name"] == "AUC" and entries[0]["config"]["num_thresholds"] == 50
    assert entries[0]["config"]["name"] == "auc50" and entries[1]["config"]["thresholds"] == 0.3
    assert entries[2] == "accuracy"
    loaded = fastnn.models.load_model(path)
    assert loaded.evaluate(x, y, return_dict=True) == model.evaluate(x, y, return_dict=True)
    model.compile("adam", "binary_crossentropy", metrics=[fastnn.metrics.AUCScore()])
    with pytest.raises(ValueError, match="AUCScore"):
        model.save(tmp_path / "exact.keras")
    assert not (tmp_path / "exact.keras").exists()
