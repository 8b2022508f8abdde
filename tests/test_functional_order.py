"""A functional model's ``layers`` in Keras's order, and .fnn files that keep their own order.

The expected layer lists are what Keras 3 (TensorFlow 2.21's ``tf.keras``) gives for the same
graphs built with the same calls in the same order; fastnn computes them from the graph.
"""
from pathlib import Path

import numpy as np
import pytest

import fastnn
import fastnn.keras as keras
from fastnn.saving import read_file

L = keras.layers
FIXTURES = Path(__file__).parent / "fixtures"


def _created_out_of_order():
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(4,), name="b")
    d2 = L.Dense(4, name="d2")(b)
    d1 = L.Dense(4, name="d1", activation="tanh")(a)
    s = L.Add(name="add")([d1, d2])
    sk = L.Dense(4, name="skip")(a)
    d3 = L.Dense(4, name="d3")(s)
    return [a, b], L.Add(name="add2")([d3, sk])


def _residual_two_outputs():
    x = keras.Input(shape=(6,), name="x")
    h = L.Dense(5, name="h1")(x)
    h2 = L.Dense(5, name="h2")(h)
    h3 = L.Dense(5, name="h3")(h2)
    r = L.Add(name="res")([h, h3])
    return x, [L.Dense(2, name="y1")(r), L.Dense(3, name="y2")(h2)]


def _outputs_of_different_depth():
    x = keras.Input(shape=(6,), name="x")
    u = L.Dense(6, name="u")(L.Dense(6, name="t")(x))
    return x, [L.Dense(6, name="w")(x), u]


def _shared_layer():
    x = keras.Input(shape=(3,), name="xin")
    shared = L.Dense(3, name="shared")
    p = shared(x)
    q = shared(L.Dense(3, name="pre")(p))
    return x, L.Dense(1, name="head")(L.Concatenate(name="cat")([p, q]))


def _unused_input():
    i1, i2 = keras.Input(shape=(2,), name="i1"), keras.Input(shape=(2,), name="i2")
    i3 = keras.Input(shape=(2,), name="unused")
    f = L.Dense(2, name="f")(L.Dense(2, name="e")(i2))
    return [i1, i2, i3], L.Multiply(name="mul")([i1, f])


def _dicts():
    x, z = keras.Input(shape=(3,), name="xx"), keras.Input(shape=(3,), name="zz")
    p = L.Dense(2, name="p")(x)
    q = L.Dense(2, name="q")(z)
    return {"zz": z, "xx": x}, {"out_q": q, "a_out": L.Dense(2, name="r")(p)}


KERAS_ORDER = [  # (graph, Keras 3's [l.name for l in model.layers])
    (_created_out_of_order, ["a", "b", "d1", "d2", "add", "d3", "skip", "add2"]),
    (_residual_two_outputs, ["x", "h1", "h2", "h3", "res", "y1", "y2"]),
    (_outputs_of_different_depth, ["x", "t", "w", "u"]),
    (_shared_layer, ["xin", "shared", "pre", "cat", "head"]),
    (_unused_input, ["i2", "e", "i1", "f", "unused", "mul"]),
    (_dicts, ["xx", "p", "zz", "r", "q"]),
]


@pytest.mark.parametrize("graph, expected", KERAS_ORDER, ids=[g.__name__[1:] for g, _ in KERAS_ORDER])
def test_layers_come_in_keras_order(graph, expected):
    model = keras.Model(*graph())
    assert [layer.name for layer in model.layers] == expected
    names = [layer.name for layer in model.layers for _ in layer.weights]
    assert [w.shape for w in model.get_weights()] == [w.shape for l in model.layers for w in l.weights]
    assert len(names) == len(model.weights)
    # the rebuilt graph orders its layers the same way
    assert [l.name for l in type(model).from_config(model.get_config()).layers] == expected


def test_set_weights_follows_the_layer_order():
    model = keras.Model(*_created_out_of_order())
    weights = [np.full(w.shape, k, np.float32) for k, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    assert model.get_layer("d1").get_weights()[0][0, 0] == 0  # d1 is the first Dense in Keras order
    assert model.get_layer("d2").get_weights()[0][0, 0] == 2


def _data():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(32, 4)).astype(np.float32) for _ in range(2)]
    return x, rng.normal(size=(32, 4)).astype(np.float32)


def test_file_stores_weights_in_configuration_order(tmp_path):
    fastnn.utils.set_random_seed(0)
    model = keras.Model(*_created_out_of_order())
    model.compile("adam", "mse")
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.fnn"
    model.save(path)
    header, arrays = read_file(path)
    stored = [arrays[e["name"]] for e in header["arrays"] if e["name"].startswith("weights/")]
    config_order = [model.get_layer(e["name"]) for e in model.get_config()["layers"]]
    assert [l.name for l in config_order] == ["a", "b", "d2", "d1", "add", "skip", "d3", "add2"]
    expected = [w for layer in config_order for w in layer.weights]
    assert len(stored) == len(expected)
    for s, w in zip(stored, expected):
        np.testing.assert_array_equal(s, w)
    # and the optimizer's state, weight by weight, in the same order (Adam: m and v per weight)
    opt = [arrays[e["name"]] for e in header["arrays"] if e["name"].startswith("optimizer/")]
    slots = dict(zip(map(id, model.trainable_weights), model.optimizer.slots_for(model.trainable_weights)))
    expected_opt = [s for layer in config_order for w in layer.trainable_weights
                    for s in slots[id(w)] if s is not None]
    assert len(opt) == len(expected_opt) > 0
    for s, w in zip(opt, expected_opt):
        np.testing.assert_array_equal(s, w)


def test_saved_and_loaded_model_resumes_bitwise(tmp_path):
    fastnn.utils.set_random_seed(0)
    model = keras.Model(*_created_out_of_order())
    model.compile("adam", "mse")
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    model.save(tmp_path / "m.fnn")
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    loaded = keras.models.load_model(tmp_path / "m.fnn")
    loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_file_written_before_the_keras_order_still_loads_and_resumes():
    # functional_graph_v1.fnn: written by the fastnn of the time (see make_functional_v1.py) with
    # the same graph, data and fit as _created_out_of_order / _data
    loaded = keras.models.load_model(FIXTURES / "functional_graph_v1.fnn")
    assert [l.name for l in loaded.layers] == KERAS_ORDER[0][1]
    x, y = _data()
    loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    # (to rounding: the file was written on another machine, whose SIMD kernels may round
    # differently; a misplaced weight or optimizer state would be off by far more)
    np.testing.assert_allclose(loaded.predict(x), np.load(FIXTURES / "functional_graph_v1_resumed.npy"),
                               rtol=1e-5, atol=1e-6)


def test_shared_layer_called_again_on_a_later_layer_saves_and_loads(tmp_path):
    # the shared layer's entry comes first in the configuration, but its second call reads "pre",
    # listed after it: rebuilding must wait for that call
    model = keras.Model(*_shared_layer())
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    model.save(tmp_path / "shared.fnn")
    loaded = keras.models.load_model(tmp_path / "shared.fnn")
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_configuration_reading_a_missing_tensor_is_refused():
    config = keras.Model(*_shared_layer()).get_config()
    head = next(e for e in config["layers"] if e["name"] == "head")
    head["inbound_nodes"] = [[["nowhere", 0]]]
    with pytest.raises(ValueError, match="nowhere"):
        fastnn.functional.Functional.from_config(config)
