"""Memory: flat resident memory over 10,000 training and prediction calls, no reference kept to
the caller's arrays, and the scratch buffers kept between calls bounded by
``fastnn.backend.buffer_cache_limit()`` (freed after a larger batch, none kept after a MemoryError
part way through growing them).
"""
import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.layers import Dense
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import blobs, classifier, run_child


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


RSS_BOUND = 2 * 1024 * 1024


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="resident memory read from /proc (Linux)")
def test_repeated_calls_keep_memory_and_refcounts_flat(backend):
    """After 500 warm-up calls of each, 10,000 train_on_batch and 10,000 predict calls on a
    4-16-3 model grow the resident set by less than 2 MiB (measured: 0-8 KiB on both backends;
    a leak of one 16x3 float32 array per call would be 1.9 MiB), and the reference counts of
    the input arrays are what they were before the calls."""
    model = classifier(hidden=16, metrics=())
    x, y = blobs(n=16)
    refs = sys.getrefcount(x), sys.getrefcount(y)
    for _ in range(500):
        model.train_on_batch(x, y)
        model.predict(x)
    gc.collect()
    start = _rss_bytes()
    for _ in range(10_000):
        model.train_on_batch(x, y)
    for _ in range(10_000):
        model.predict(x)
    gc.collect()
    growth = _rss_bytes() - start
    assert growth < RSS_BOUND, f"resident memory grew by {growth / 1024:.0f} KiB"
    assert model.optimizer.iterations == 10_500
    # no reference to the inputs survives the calls
    assert sys.getrefcount(x) == refs[0] and sys.getrefcount(y) == refs[1]


def test_input_refcounts_unchanged_after_calls(backend):
    """After predict, evaluate, train_on_batch and fit return, the model holds no reference to
    the caller's arrays: sys.getrefcount of x and y is what it was before the calls."""
    model = classifier(hidden=16, metrics=())
    x, y = blobs(n=16)
    refs = sys.getrefcount(x), sys.getrefcount(y)
    for call in (lambda: model.predict(x), lambda: model.evaluate(x, y), lambda: model(x),
                 lambda: model.train_on_batch(x, y), lambda: model.fit(x, y, verbose=0)):
        call()
        gc.collect()
        assert (sys.getrefcount(x), sys.getrefcount(y)) == refs


def _functional_classifier():
    set_random_seed(0)
    inp = layers.Input(shape=(4,))
    h = Dense(8, activation="relu")(inp)
    model = fastnn.Model(inp, Dense(3, activation="softmax")(layers.Add()([h, h])))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("make", [lambda: classifier(hidden=16, metrics=(), norm=True, dropout=True),
                                  _functional_classifier], ids=["sequential", "functional"])
def test_no_layer_keeps_the_input_after_an_eager_pass(backend, make):
    """The eager calls (every call on the NumPy backend; ``model(x, training=True)`` and
    ``compute_gradients`` on both) hand the layers the caller's arrays; none survives the call.
    The model releases its layers only after such a pass (a recorded program holds none)."""
    import weakref
    model = make()
    calls = [lambda x, y: model(x, training=True), lambda x, y: model.compute_gradients(x, y),
             lambda x, y: model.train_on_batch(x, y), lambda x, y: model.predict(x),
             lambda x, y: model.fit(x, y, epochs=1, batch_size=8, verbose=0)]
    for call in calls:
        x, y = blobs(n=16)
        ref = weakref.ref(x)
        call(x, y)
        del x
        gc.collect()
        assert ref() is None, call
        held = [(layer.name, k) for layer in model.layers for k in layer._RUNTIME
                if isinstance(layer.__dict__.get(k), np.ndarray)]
        assert not held, held


@pytest.mark.parametrize("make", [lambda: Dense(3), lambda: layers.BatchNormalization(),
                                  lambda: layers.LayerNormalization(), lambda: layers.Activation("relu"),
                                  lambda: layers.PReLU()])
def test_layer_call_keeps_no_reference_to_the_input(backend, make):
    import gc, weakref
    layer = make()
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    ref = weakref.ref(x)
    layer(x, training=True)
    del x
    gc.collect()
    assert ref() is None


@pytest.fixture
def small_cache_limit():
    previous = fastnn.backend.buffer_cache_limit()
    fastnn.backend.set_buffer_cache_limit(1 << 20)  # 1 MiB: a 4,096-row batch of 256 units exceeds it
    yield
    fastnn.backend.set_buffer_cache_limit(previous)


def _program_bytes(model, kind):
    return model._programs[kind][1].storage_bytes()


def test_buffers_of_a_batch_over_the_limit_are_freed_after_the_call(small_cache_limit):
    fastnn.set_backend("native")
    set_random_seed(0)
    model = Sequential([Dense(256, activation="relu", input_shape=(8,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4096, 8)).astype(np.float32), np.arange(4096) % 3
    big = model.predict(x, batch_size=4096, verbose=0)
    assert _program_bytes(model, "predict") == 0
    small = model.predict(x[:32], batch_size=32, verbose=0)
    np.testing.assert_array_equal(small, big[:32])
    kept = _program_bytes(model, "predict")
    assert 0 < kept <= 1 << 20  # a normal batch keeps its buffers
    model.predict(x[:32], batch_size=32, verbose=0)
    assert _program_bytes(model, "predict") == kept  # and reuses them: nothing allocated again
    model.fit(x, y, batch_size=4096, epochs=2, verbose=0)
    assert _program_bytes(model, "train") == 0
    model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0)
    kept = _program_bytes(model, "train")
    assert 0 < kept <= 1 << 20
    model.train_on_batch(x[:32], y[:32])
    assert _program_bytes(model, "train") == kept


def test_eager_buffers_over_the_limit_are_not_kept(backend, small_cache_limit):
    set_random_seed(0)
    model = Sequential([Dense(256, activation="relu", input_shape=(8,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(4096, 8)).astype(np.float32)
    kept = lambda layer: sum(b.nbytes for b in layer._buffers.values())
    # a weighted evaluation runs layer by layer on both backends (the unweighted one runs a
    # recorded program on the native backend, whose buffers tests/test_program.py bounds)
    model.evaluate(x, np.arange(4096) % 3, batch_size=4096, verbose=0, sample_weight=np.ones(4096))
    assert kept(model.layers[0]) == 0  # 4096 x 256 values: over the limit, freed
    assert all(kept(layer) <= 1 << 20 for layer in model.layers)
    model.evaluate(x[:32], np.arange(32) % 3, batch_size=32, verbose=0, sample_weight=np.ones(32))
    assert 0 < kept(model.layers[0]) <= 1 << 20


def test_set_buffer_cache_limit_checks_its_argument():
    for bad in (-1, 1.5, "big", True):
        with pytest.raises(ValueError, match="buffer cache limit"):
            fastnn.backend.set_buffer_cache_limit(bad)


def test_memory_error_mid_growth_keeps_no_half_grown_buffers():
    code = """
        import resource
        import numpy as np
        import fastnn
        from fastnn.layers import Dense
        from fastnn.models import Sequential
        fastnn.set_backend("native")
        fastnn.set_num_threads(1)
        model = Sequential([Dense(256, activation="relu", input_shape=(4,)), Dense(256, activation="relu"),
                            Dense(3)])
        small = np.ones((8, 4), np.float32)
        expected = model.predict(small, verbose=0)
        def vm():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * resource.getpagesize()
        # each of the batch's buffers needs 400 MB; the address space allows about two of them
        resource.setrlimit(resource.RLIMIT_AS, (vm() + (900 << 20), resource.RLIM_INFINITY))
        x = np.ones((400_000, 4), np.float32)
        compiled = model._predict_program(x)
        try:
            model.predict(x, batch_size=len(x), verbose=0)
            print("no error")
        except MemoryError:
            print("MemoryError", compiled.storage_bytes())
        np.testing.assert_array_equal(model.predict(small, verbose=0), expected)
        print("ok")
    """
    result = run_child(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["MemoryError", "0", "ok"], result.stdout
