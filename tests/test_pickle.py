"""Pickling and deep-copying models: a trained model survives both with its weights, optimizer
state and dropout streams, and a copy trains on bitwise identically to the original."""
import copy
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import optimizers
from fastnn.layers import BatchNormalization, Dense, Dropout, LayerNormalization
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import small_model


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 7)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def _trained(backend):
    fastnn.set_backend(backend)
    fastnn.utils.set_random_seed(3)
    model = Sequential([Dense(16, activation="relu", input_shape=(7,)), BatchNormalization(),
                        Dropout(0.2), LayerNormalization(), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01, amsgrad=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model


def _continue(model, seed=11):
    """Two more shuffled epochs from a fixed generator state: the weights afterwards."""
    x, y = _data(seed=1)
    fastnn.utils.set_random_seed(seed)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return history.history["loss"], model.get_weights()


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("clone", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_copy_predicts_and_trains_on_bitwise_identically(backend, clone):
    model = _trained(backend)
    twin = clone(model)
    x, _ = _data(seed=2)
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    for a, b in zip(twin.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert twin.optimizer.iterations == model.optimizer.iterations
    loss_twin, weights_twin = _continue(twin)
    loss_model, weights_model = _continue(model)
    assert loss_twin == loss_model
    for a, b in zip(weights_twin, weights_model):
        np.testing.assert_array_equal(a, b)


def test_copy_is_independent_of_the_original():
    model = _trained("native")
    twin = copy.deepcopy(model)
    before = model.get_weights()
    _continue(twin)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(twin.get_weights(), before))
    assert twin.layers[0].kernel is not model.layers[0].kernel


def test_pickle_keeps_no_scratch_buffers():
    """The pickle holds weights and state, not the per-batch buffers of the last fit."""
    model = _trained("native")
    data = pickle.dumps(model)
    weight_bytes = sum(w.nbytes for w in model.weights)
    # Adam with amsgrad keeps three state arrays per weight: at most ~4x the weights plus overhead
    assert len(data) < 4 * weight_bytes + 20_000
    assert all(layer._buffers == {} for layer in pickle.loads(data).layers)


def test_unbuilt_and_uncompiled_models_pickle():
    model = Sequential([Dense(4), Dense(2)])
    twin = pickle.loads(pickle.dumps(model))
    assert not twin.built and twin.optimizer is None
    twin.compile(loss="mse")
    twin.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), epochs=1, verbose=0)
    assert twin.built


# -- a compiled, trained model --------------------------------------------------------------------
@pytest.mark.parametrize("clone", [lambda m: __import__("pickle").loads(__import__("pickle").dumps(m)),
                                   copy.deepcopy], ids=["pickle", "deepcopy"])
def test_trained_model_round_trips_through_pickle_and_deepcopy(backend, clone):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), np.arange(40) % 3
    model = small_model(metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    twin = clone(model)
    assert twin._lock is not model._lock
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    assert twin.optimizer.iterations == model.optimizer.iterations
    results = []
    for m in (twin, model):
        set_random_seed(5)
        history = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
        results.append((history.history["loss"], m.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
