"""Keras programs of a user's kind (tests/keras_programs/) run with only their imports changed, and
report what Keras 3 reports: the same log keys, shapes, dtypes, names and flags, and scores within a
few points. The reference, tests/fixtures/keras_programs.json, was written by real Keras
(bench/keras_user_programs.py runs every program in both and rewrites it)."""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import fastnn

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("keras_programs_run", HERE / "keras_programs" / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

KERAS = json.loads((HERE / "fixtures" / "keras_programs.json").read_text(encoding="utf-8"))

# What fastnn cannot do yet, named exactly; strict, so each turns into a failure once it works.
MISSING = {
    "p16_custom_loss": "loss= and metrics= given as Python functions of keras.ops: fastnn trains "
                       "through its own loss kernels (losses.get raises TypeError) and has no "
                       "keras.ops.mean/log/clip",
}


# Reported values where fastnn still departs from Keras, each named exactly; the test requires
# exactly these to differ (so it fails, asking for this entry to go, once fastnn agrees).
DEPARTS = {}  # program -> {result key: why fastnn departs from Keras there}; none today


def _cases():
    for program in run.PROGRAMS:
        marks = []
        if program.stem in MISSING:
            marks.append(pytest.mark.xfail(strict=True, reason=MISSING[program.stem]))
        yield pytest.param(program, id=program.stem, marks=marks)


def test_every_program_has_a_keras_reference():
    assert sorted(KERAS) == sorted(p.stem for p in run.PROGRAMS)


def test_swap_imports_changes_only_import_lines():
    source = ("import keras\nfrom keras import layers\nfrom keras.layers import Dense\n"
              "import tensorflow as tf\nfrom tensorflow.keras.models import Sequential\n"
              "x = keras.layers  # import keras\n")
    assert run.swap_imports(source).splitlines() == [
        "import fastnn as keras", "from fastnn.keras import layers",
        "from fastnn.keras.layers import Dense", "import fastnn as tf",
        "from fastnn.keras.models import Sequential", "x = keras.layers  # import keras"]


def test_differences_reports_what_departs():
    keras_result = {"acc": 0.95, "mae": 40.0, "history_keys": ["loss", "val_loss"]}
    assert run.differences(keras_result, {"acc": 0.93, "mae": 45.0,
                                          "history_keys": ["loss", "val_loss"]}) == []
    found = run.differences(keras_result, {"acc": 0.80, "mae": 60.0, "history_keys": ["loss"]})
    assert [d.split(":")[0] for d in found] == ["acc", "history_keys", "mae"]


@pytest.mark.parametrize("program", list(_cases()))
def test_keras_program_runs_unchanged_and_agrees_with_keras(program, tmp_path):
    if "sklearn" in program.read_text(encoding="utf-8"):
        pytest.importorskip("sklearn", reason="the program loads its data with scikit-learn")
    env = dict(os.environ, PYTHONPATH=str(Path(fastnn.__file__).resolve().parents[1]))
    result, done = run.run_program(program, "fastnn", tmp_path, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    departs = DEPARTS.get(program.stem, {})
    found = run.differences(KERAS[program.stem], result)
    assert [d.split(":")[0] for d in found] == sorted(departs), found


# ------------------------------------------------------------- what the programs needed, in detail
def test_model_losses_are_the_current_weight_penalties():
    from fastnn import layers, regularizers
    model = fastnn.Sequential([fastnn.Input(shape=(3,)),
                               layers.Dense(4, kernel_regularizer=regularizers.L2(0.01)),
                               layers.Dense(2, kernel_regularizer=regularizers.L1(0.1),
                                            bias_regularizer=regularizers.L2(0.5))])
    w1, _, w2, b2 = model.get_weights()
    b2 = b2 + 1.0
    model.layers[1].set_weights([w2, b2])
    expected = [0.01 * np.sum(w1.astype(np.float64) ** 2), 0.1 * np.abs(w2).sum(),
                0.5 * np.sum(b2.astype(np.float64) ** 2)]
    assert np.allclose(model.losses, expected, rtol=1e-5)
    assert all(type(v) is float for v in model.losses)
    model.layers[0].trainable = False                      # Keras: trainable weights only
    assert np.allclose(model.losses, expected[1:], rtol=1e-5)
    assert model.layers[0].losses == []


def test_integer_input_dtype_feeds_an_embedding():
    from fastnn import layers
    tokens = np.random.default_rng(0).integers(0, 5, size=(40, 6)).astype(np.int32)
    model = fastnn.Sequential([fastnn.Input(shape=(6,), dtype="int32"), layers.Embedding(5, 3),
                               layers.SimpleRNN(4), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(tokens, np.zeros((40, 1), np.float32), epochs=1, verbose=0)
    assert model.predict(tokens[:3], verbose=0).dtype == np.float32
    with pytest.raises(ValueError, match="float or integer dtype, got 'complex64'"):
        fastnn.Input(shape=(6,), dtype="complex64")


def test_ops_convert_to_numpy_gives_arrays():
    out = fastnn.keras.ops.convert_to_numpy(0.25)
    assert isinstance(out, np.ndarray) and out == 0.25
    x = np.arange(3.0)
    assert fastnn.keras.ops.convert_to_numpy(x) is x


def test_functional_helpers_and_keras_names():
    from fastnn import layers
    a, b = fastnn.Input(shape=(3,)), fastnn.Input(shape=(3,))
    for fn, cls in [(layers.add, layers.Add), (layers.subtract, layers.Subtract),
                    (layers.multiply, layers.Multiply), (layers.average, layers.Average),
                    (layers.maximum, layers.Maximum), (layers.minimum, layers.Minimum),
                    (layers.concatenate, layers.Concatenate)]:
        out = fn([a, b], name=f"m_{cls.__name__.lower()}")
        model = fastnn.Model([a, b], out)
        assert type(model.get_layer(f"m_{cls.__name__.lower()}")) is cls
    x, y = np.array([[1.0, -2.0, 3.0]], np.float32), np.array([[4.0, 5.0, -6.0]], np.float32)
    model = fastnn.Model([a, b], layers.concatenate([a, b]))
    assert np.array_equal(model.predict([x, y], verbose=0), np.concatenate([x, y], axis=1))
    assert layers.Dense(2, activation="gelu").activation.__name__ == "gelu"
    assert type(fastnn.losses.get("bce")) is fastnn.losses.BinaryCrossentropy
    assert type(fastnn.losses.get("BCE")) is fastnn.losses.BinaryCrossentropy
    for name, says in [("Bidirectional", "go_backwards"), ("TimeDistributed", "last axis"),
                       ("Lambda", "Python function")]:
        with pytest.raises(NotImplementedError, match=says):
            getattr(fastnn.keras.layers, name)


def test_pad_sequences_pads_and_truncates_as_keras():
    pad = fastnn.keras.utils.pad_sequences
    seqs = [[1, 2, 3, 4], [5], []]
    assert pad(seqs).tolist() == [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0]]
    assert pad(seqs, maxlen=2).tolist() == [[3, 4], [0, 5], [0, 0]]
    assert pad(seqs, maxlen=3, padding="post", truncating="post", value=-1).tolist() == [
        [1, 2, 3], [5, -1, -1], [-1, -1, -1]]
    assert pad(seqs).dtype == np.int32 and pad(seqs, dtype="float32").dtype == np.float32
    with pytest.raises(ValueError, match="'pre' or 'post'"):
        pad(seqs, padding="both")
