"""Bad input is refused before anything changes: labels out of range, wrong shapes, (N, 1)
predictions against (N,) targets, non-numeric dtypes, NaN or inf, empty data, bad batch sizes,
values that overflow float32, masked arrays, zero features. Each error is a ValueError or TypeError
naming what was expected and what was received, raised before any kernel runs, and after it the
model is bitwise what it was (``helpers.model_state``: weights, optimizer state, configuration).
Good input in other dtypes and awkward memory layouts gives the float32, C-contiguous results,
and the caller's arrays are never modified. Both backends throughout.
"""
import re

import numpy as np
import pytest

import fastnn
from fastnn import losses, ops, optimizers
from fastnn.layers import Dense, Flatten
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import (
    BACKENDS, KernelSpy, array_digest, assert_state_unchanged, blobs, classifier, model_state,
    numeric_state, raises_and_keeps, same_bits, small_model, weights_equal)


LABEL_CASES = {
    "equal_to_class_count": (np.array([0, 1, 3, 2]), r"\b3\b"),
    "huge": (np.array([0, 1, 2**40, 2]), str(2**40)),
    "negative": (np.array([0, -1, 1, 2]), r"-1"),
    "fraction": (np.array([0.0, 1.5, 1.0, 2.0]), r"1\.5"),
    "nan": (np.array([0.0, np.nan, 1.0, 2.0]), r"nan"),
    "uint8_too_big": (np.array([0, 1, 2, 200], np.uint8), r"200"),
    "float_too_big": (np.array([0.0, 1.0, 3.0, 2.0]), r"3\.0"),
}


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "validation"])
@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_bad_labels_raise_naming_label_and_range_before_any_kernel(backend, case, method,
                                                                      monkeypatch):
    labels, shown = LABEL_CASES[case]
    model = classifier(features=2, hidden=4, classes=3)
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # optimizer state exists
    calls = {
        "fit": lambda m: m.fit(x, labels, epochs=1, verbose=0),
        "evaluate": lambda m: m.evaluate(x, labels),
        "train_on_batch": lambda m: m.train_on_batch(x, labels),
        "validation": lambda m: m.fit(x, np.array([0, 1, 2, 0]), verbose=0, validation_data=(x, labels)),
    }
    spy = KernelSpy(monkeypatch)
    raises_and_keeps(model, ValueError, calls[method], shown, r"\[0, 3\)")
    assert spy.calls == [], f"kernels ran before the labels were rejected: {spy.calls}"
    model.evaluate(x, np.array([0, 1, 2, 0]))
    assert spy.calls, "the spy must see the kernels of a valid call"


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0, 2**40]])
def test_kernel_level_labels_out_of_range_on_both_backends(labels):
    """ops.sparse_softmax_cross_entropy itself: the native binding checks every label; the loss
    object checks before the numpy twin would index out of bounds (or wrap a negative label)."""
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ops.sparse_softmax_cross_entropy(z, np.array(labels))
    for name in BACKENDS:
        with fastnn.backend_scope(name), pytest.raises(ValueError, match=r"\[0, 3\)"):
            losses.SparseCategoricalCrossentropy()(np.array(labels), np.full((2, 3), 1 / 3, np.float32))


SHAPE_CASES = {
    "features": (lambda x: x[:, :3], [r"\b4 features\b|\(N, 4\)|\(None, 4\)", r"\(6, 3\)"]),
    "one_d": (lambda x: x[0], [r"\(N, 4\)", r"\(4,\)"]),
    "three_d": (lambda x: x.reshape(6, 2, 2), [r"\(None, 4\)", r"\(6, 2, 2\)"]),
    "zero_d": (lambda x: np.float32(1.0), [r"\(N, 4\)", r"shape \(\)"]),
}


SHAPE_METHODS = {
    "fit": lambda m, x, y: m.fit(x, y, verbose=0),
    "evaluate": lambda m, x, y: m.evaluate(x, y),
    "predict": lambda m, x, y: m.predict(x),
    "train_on_batch": lambda m, x, y: m.train_on_batch(x, y),
    "call": lambda m, x, y: m(x),
}


@pytest.mark.parametrize("method", sorted(SHAPE_METHODS))
@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_wrong_input_shapes_name_expected_and_received(backend, case, method):
    make, patterns = SHAPE_CASES[case]
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    raises_and_keeps(model, ValueError, lambda m: SHAPE_METHODS[method](m, make(x), y), *patterns)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
@pytest.mark.parametrize("n_y", [5, 7, 0])
def test_len_x_differs_from_len_y(backend, method, n_y):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    y_bad = np.resize(y, n_y)
    raises_and_keeps(model, ValueError, lambda m: SHAPE_METHODS[method](m, x, y_bad),
                     r"\b6 inputs\b", rf"\({n_y},\)")


def test_unbuilt_model_keeps_unbuilt_after_a_shape_error(backend):
    """A model without an input shape learns it from the first batch, unless that batch is bad."""
    set_random_seed(0)
    model = Sequential([Dense(3), Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    x, y = blobs(n=6)
    raises_and_keeps(model, ValueError, lambda m: m.fit(x[0], y, verbose=0), r"\(4,\)")
    # no input shape to compare with: the first layer names what it needs and what it got
    raises_and_keeps(model, ValueError, lambda m: m.fit(x.reshape(6, 2, 2), y, verbose=0),
                     r"\(batch, features\)", r"\(None, 2, 2\)")
    raises_and_keeps(model, ValueError, lambda m: m.fit(x, y[:5], verbose=0), r"\b6\b", r"\(5,\)")
    assert not model.built


REGRESSION_LOSSES = {
    "mse": lambda d: d * d,
    "mae": np.abs,
    "huber": lambda d: np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5),
    "log_cosh": lambda d: np.log(np.cosh(d)),
}


@pytest.mark.parametrize("name", sorted(REGRESSION_LOSSES))
def test_column_predictions_against_flat_targets_give_the_per_sample_mean(backend, name):
    """The loss object, evaluate, train_on_batch and the compiled metrics all equal
    mean_n f(pred_n - y_n); the broadcast mean over all (N, N) pairs is a different number here
    (checked, so the test can tell them apart). test_losses / test_models prove MSE on one path."""
    per_element = REGRESSION_LOSSES[name]
    y = np.array([0.5, -1.0, 2.0, 4.0, 0.0], np.float32)
    pred = np.array([[1.0], [0.0], [2.5], [1.0], [-0.5]], np.float32)
    want = float(np.mean(per_element(pred[:, 0].astype(np.float64) - y)))
    broadcast = float(np.mean(per_element(pred.astype(np.float64) - y)))
    assert abs(broadcast - want) > 0.1
    loss = losses.get(name)
    assert loss(y, pred) == pytest.approx(want, rel=1e-6)
    assert loss(y[:, None], pred[:, 0]) == pytest.approx(want, rel=1e-6)

    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss=name, metrics=["mse", "mae"])
    x = np.random.default_rng(3).normal(size=(5, 2)).astype(np.float32)
    out = model.predict(x)[:, 0].astype(np.float64)
    want_model = float(np.mean(per_element(out - y)))
    logs = model.evaluate(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(want_model, rel=1e-5)
    assert logs["mse"] == pytest.approx(np.mean((out - y) ** 2), rel=1e-5)
    assert logs["mae"] == pytest.approx(np.mean(np.abs(out - y)), rel=1e-5)
    first = model.train_on_batch(x, y)
    assert (first[0] if isinstance(first, list) else first) == pytest.approx(want_model, rel=1e-5)


def test_targets_that_do_not_match_the_output_raise(backend):
    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((5, 2), np.float32)
    raises_and_keeps(model, ValueError, lambda m: m.fit(x, np.zeros((5, 2)), verbose=0),
                     r"\(N, 1\)", r"\(5, 2\)")
    raises_and_keeps(model, ValueError, lambda m: m.evaluate(x, np.zeros((1, 5))), r"\b5\b", r"\(1, 5\)")
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        losses.MeanSquaredError()(np.zeros((5, 2)), np.zeros((5, 1)))
    assert fastnn.metrics.mean_squared_error(np.arange(3.0), np.arange(3.0)[:, None] + 1) == 1.0


def _x_variants(x_small_ints):
    """Arrays holding the same values in other dtypes (values 0..3 are exact in every dtype)."""
    return {
        "float64": x_small_ints.astype(np.float64),
        "float16": x_small_ints.astype(np.float16),
        "int64": x_small_ints.astype(np.int64),
        "int8": x_small_ints.astype(np.int8),
        "uint8": x_small_ints.astype(np.uint8),
        "bool": (x_small_ints > 1),
        "list": x_small_ints.astype(int).tolist(),
    }


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "int8", "uint8", "bool", "list"])
def test_float64_int_bool_inputs_match_float32(backend, dtype):
    """Same predictions, evaluation and trained weights as the float32 array of the same values:
    bitwise, since the model converts once at the boundary. Labels as int32/uint8/float64 too."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, size=(12, 4)).astype(np.float32)
    variant = _x_variants(base)[dtype]
    as32 = (base > 1).astype(np.float32) if dtype == "bool" else base
    y = rng.integers(0, 3, 12)
    results = []
    for x, labels in ((as32, y), (variant, y.astype(np.int32)), (variant, y.astype(np.float64)),
                      (variant, y.astype(np.uint8))):
        model = classifier()
        set_random_seed(5)
        history = model.fit(x, labels, batch_size=4, epochs=2, verbose=0)
        results.append((model.predict(x), model.evaluate(x, labels), history.history["loss"],
                        model.get_weights()))
    for other in results[1:]:
        assert same_bits(other[0], results[0][0])
        assert other[1] == results[0][1] and other[2] == results[0][2]
        assert all(same_bits(a, b) for a, b in zip(other[3], results[0][3]))
    assert results[0][0].dtype == np.float32


def test_float64_ops_inputs_keep_float64_and_match_float32_within_tolerance(backend):
    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(7, 5))
    for fn in (ops.softmax, ops.log_softmax, ops.tanh, ops.sigmoid):
        y64, y32 = fn(x64), fn(x64.astype(np.float32))
        assert y64.dtype == np.float64 and y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(ops.softmax(x64.astype(int)), ops.softmax(x64.astype(int).astype(np.float32)))


BAD_DTYPES = {
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "complex64": lambda a: a.astype(np.complex64),
    "complex128": lambda a: a.astype(np.complex128),
    "datetime": lambda a: a.astype(np.int64).astype("datetime64[s]"),
    "list_of_str": lambda a: [["a"] * a.shape[1]] * len(a) if a.ndim == 2 else ["a"] * len(a),
}


@pytest.mark.parametrize("what", ["x", "y"])
@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
def test_object_string_complex_inputs_raise_type_error(backend, kind, what):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    bad = BAD_DTYPES[kind](x if what == "x" else y)
    calls = [lambda m: m.fit(bad, y, verbose=0), lambda m: m.evaluate(bad, y), lambda m: m.predict(bad),
             lambda m: m.train_on_batch(bad, y), lambda m: m(bad)] if what == "x" else \
        [lambda m: m.fit(x, bad, verbose=0), lambda m: m.evaluate(x, bad), lambda m: m.train_on_batch(x, bad)]
    for call in calls:
        raises_and_keeps(model, TypeError, call, r"dtype|array-like|numeric")
    with pytest.raises(TypeError):
        ops.softmax(BAD_DTYPES[kind](x))


def _layout(name, a):
    """(awkward view, C-contiguous copy with the same values) for the 2-D array ``a``."""
    if name == "transposed":
        view = np.ascontiguousarray(a.T).T
    elif name == "fortran":
        view = np.asfortranarray(a)
    elif name == "strided_columns":
        wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
        wide[:, ::2] = a
        view = wide[:, ::2]
    elif name == "strided_rows":
        tall = np.zeros((2 * a.shape[0], a.shape[1]), a.dtype)
        tall[1::2] = a
        view = tall[1::2]
    elif name == "reversed":
        view = a[::-1].copy()[::-1]
    elif name == "broadcast":
        view = np.broadcast_to(a[2], a.shape)
    elif name == "read_only":
        view = a.copy()
        view.flags.writeable = False
    elif name == "big_endian":
        view = a.astype(a.dtype.newbyteorder(">"))
    elif name == "misaligned":
        raw = bytearray(a.nbytes + 1)
        view = np.frombuffer(raw, a.dtype, count=a.size, offset=1).reshape(a.shape)
        view[...] = a
    else:
        raise AssertionError(name)
    return view, np.ascontiguousarray(view, dtype=view.dtype.newbyteorder("="))


LAYOUTS = ["transposed", "fortran", "strided_columns", "strided_rows", "reversed", "broadcast",
           "read_only", "big_endian", "misaligned"]


def _label_layout(name, y):
    if name in ("transposed", "fortran", "strided_columns"):
        return y
    view, _ = _layout(name, y[:, None])
    return view[:, 0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_awkward_layouts_match_contiguous_and_are_never_modified(backend, layout):
    """predict, evaluate, train_on_batch, fit (with shuffling and validation data), model(x) and
    the ops give bitwise the results of a contiguous copy, and every input hashes the same after
    the calls (bytes, strides and flags). test_ops covers the ops on other layouts."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 4)).astype(np.float32)
    x, x_copy = _layout(layout, base)
    y_base = rng.integers(0, 3, 10)
    y = _label_layout(layout, y_base)
    y_copy = np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("="))
    digests = [array_digest(a) for a in (x, y, x_copy, y_copy)]

    def run(xx, yy):
        model = classifier()
        out = [model.predict(xx), model(xx), model.evaluate(xx, yy), model.train_on_batch(xx, yy)]
        set_random_seed(9)
        hist = model.fit(xx, yy, batch_size=3, epochs=2, verbose=0, validation_data=(xx, yy))
        out += [hist.history, model.get_weights(), model.predict(xx, batch_size=4)]
        out += [ops.softmax(xx), ops.log_softmax(xx), ops.matmul(xx, xx.T),
                ops.dense_forward(xx, np.ones((4, 2), np.float32)),
                ops.sparse_softmax_cross_entropy(xx[:, :3], yy),
                ops.mean_squared_error(xx, xx[::-1] if layout != "broadcast" else xx)]
        return out

    awkward, contiguous = run(x, y), run(x_copy, y_copy)
    for a, b in zip(awkward, contiguous):
        if isinstance(a, np.ndarray):
            assert same_bits(a, b)
        elif isinstance(a, (list, tuple)) and a and isinstance(a[0], np.ndarray):
            assert all(same_bits(u, v) for u, v in zip(a, b))
        elif isinstance(a, tuple):  # (loss, grad)
            assert a[0] == b[0] and same_bits(a[1], b[1])
        else:
            assert a == b
    assert [array_digest(a) for a in (x, y, x_copy, y_copy)] == digests


def test_sample_weights_and_targets_are_not_modified(backend):
    """Regression targets, sample weights, class weights and validation triples come back
    untouched after fit / evaluate (the loss path scales gradients in place: never the user's)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    y = rng.normal(size=(9, 2)).astype(np.float32)
    w = rng.random(9).astype(np.float32)
    w.flags.writeable = True
    keep = [array_digest(a) for a in (x, y, w)]
    set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0, validation_data=(x, y, w))
    model.evaluate(x, y, sample_weight=w)
    assert [array_digest(a) for a in (x, y, w)] == keep
    labels = rng.integers(0, 3, 9)
    keep_labels = array_digest(labels)
    classifier(features=3).fit(x, labels, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, verbose=0)
    assert array_digest(labels) == keep_labels


def test_kernels_reject_misaligned_arrays_and_the_api_aligns_them():
    """A C-contiguous view at an odd byte offset would make the kernels load misaligned floats
    (undefined behaviour, caught by the sanitizer job): the bindings refuse it with a clear error,
    and the public functions hand the kernels an aligned copy instead."""
    from fastnn import _core as C

    def misaligned(a):
        view = np.frombuffer(b"\0" + a.tobytes(), a.dtype, a.size, offset=1).reshape(a.shape)
        assert not view.flags.aligned and view.flags.c_contiguous
        return view
    x = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)
    labels = np.array([3, 1, 0], np.int64)
    logits = np.eye(3, 4, dtype=np.float32)
    with pytest.raises(ValueError, match="aligned"):
        C.relu_forward(misaligned(x))
    with pytest.raises(ValueError, match="aligned"):
        C.sparse_softmax_cross_entropy(logits, misaligned(labels), None, True)
    np.testing.assert_array_equal(fastnn.ops.relu(misaligned(x)), np.maximum(x, 0))
    assert fastnn.ops.sparse_softmax_cross_entropy(logits, misaligned(labels))[0] == \
        fastnn.ops.sparse_softmax_cross_entropy(logits, labels)[0]


def test_finite_check_names_the_first_bad_value_in_a_later_block():
    """The check runs block by block (no mask as large as the data): a NaN or inf past the first
    block is still found, and the first one is named with its index."""
    x = np.zeros((3, fastnn.utils.FINITE_CHECK_BLOCK), np.float32)
    x[2, 5], x[2, 7] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at index \(2, 5\): inf\)"):
        fastnn.utils.check_finite(x, "x")
    fastnn.utils.check_finite(np.zeros((3, fastnn.utils.FINITE_CHECK_BLOCK + 1)), "x")  # no error


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "y", "validation_x", "sample_weight"])
def test_non_finite_training_inputs_raise(backend, bad, where):
    """test_models covers x/y NaN on the native backend; here every non-finite value, the
    validation data and the sample weights, both backends, with the full state check."""
    set_random_seed(0)
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model.fit(x, y, verbose=0)
    xb, yb, w = x.copy(), y.copy(), np.ones(8)
    {"x": xb, "y": yb, "validation_x": xb, "sample_weight": w}[where].flat[5] = bad
    call = {
        "x": lambda m: m.fit(xb, y, verbose=0),
        "y": lambda m: m.fit(x, yb, verbose=0),
        "validation_x": lambda m: m.fit(x, y, verbose=0, validation_data=(xb, y)),
        "sample_weight": lambda m: m.fit(x, y, verbose=0, sample_weight=w),
    }[where]
    raises_and_keeps(model, ValueError, call, r"NaN|nan|inf|finite")


@pytest.mark.parametrize("features", [(4,), (2, 2)])  # (2, 2): through Flatten
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_on_empty_input_returns_zero_rows(backend, features, dtype):
    fastnn.set_floatx(dtype)
    set_random_seed(0)
    stack = ([Flatten(input_shape=features)] if len(features) > 1 else []) + \
        [Dense(5, activation="relu", input_shape=(4,) if len(features) == 1 else None), Dense(3)]
    model = Sequential(stack)
    for batch_size in (None, 1, 7):
        out = model.predict(np.zeros((0,) + features), batch_size=batch_size)
        assert out.shape == (0, 3) and out.dtype == np.dtype(dtype)
    assert model(np.zeros((0,) + features)).shape == (0, 3)


def test_empty_training_and_evaluation_data_raise(backend):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    for call in (lambda m: m.fit(x[:0], y[:0], verbose=0), lambda m: m.evaluate(x[:0], y[:0]),
                 lambda m: m.train_on_batch(x[:0], y[:0]),
                 lambda m: m.fit(x, y, verbose=0, validation_data=(x[:0], y[:0]))):
        raises_and_keeps(model, ValueError, call, r"empty", r"\(0, 4\)")


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True, np.float64(4.0), 1j])
def test_bad_batch_sizes_raise(backend, batch_size):
    model = classifier()
    x, y = blobs(n=6)
    model.fit(x, y, verbose=0)
    for call in (lambda m: m.fit(x, y, batch_size=batch_size, verbose=0),
                 lambda m: m.evaluate(x, y, batch_size=batch_size),
                 lambda m: m.predict(x, batch_size=batch_size)):
        raises_and_keeps(model, ValueError, call, r"batch_size", re.escape(repr(batch_size)))


def test_batch_size_larger_than_the_data_is_one_batch(backend):
    """test_models proves this for fit on the native backend; here both backends, numpy integer
    batch sizes, and evaluate/predict agreeing with a single batch."""
    x, y = blobs(n=10)
    one, many = classifier(), classifier()
    set_random_seed(1)
    h1 = one.fit(x, y, batch_size=np.int64(10**6), epochs=2, verbose=0)
    set_random_seed(1)
    h2 = many.fit(x, y, batch_size=10, epochs=2, verbose=0)
    assert one.optimizer.iterations == 2 and h1.history == h2.history and weights_equal(one, many)
    assert one.evaluate(x, y, batch_size=10**6) == one.evaluate(x, y, batch_size=10)
    assert same_bits(one.predict(x, batch_size=10**6), one.predict(x, batch_size=10))


def _failing_calls():
    """(name, call, exception) for one bad call of each kind in items 4-11 and 17."""
    x, y = blobs(n=12)
    x_nan = x.copy()
    x_nan[3, 1] = np.nan
    return [
        ("label_out_of_range", lambda m: m.fit(x, np.full(12, 3), verbose=0), ValueError),
        ("label_fraction", lambda m: m.train_on_batch(x, y + 0.5), ValueError),
        ("features", lambda m: m.fit(x[:, :3], y, verbose=0), ValueError),
        ("x_3d", lambda m: m.train_on_batch(x.reshape(12, 2, 2), y), ValueError),
        ("len_mismatch", lambda m: m.fit(x, y[:11], verbose=0), ValueError),
        ("x_object", lambda m: m.fit(x.astype(object), y, verbose=0), TypeError),
        ("y_complex", lambda m: m.train_on_batch(x, y.astype(complex)), TypeError),
        ("x_nan", lambda m: m.fit(x_nan, y, verbose=0), ValueError),
        ("empty", lambda m: m.fit(x[:0], y[:0], verbose=0), ValueError),
        ("batch_size", lambda m: m.fit(x, y, batch_size=0, verbose=0), ValueError),
        ("one_sample_bn", lambda m: m.train_on_batch(x[:1], y[:1]), ValueError),
        ("bad_validation", lambda m: m.fit(x, y, verbose=0, validation_data=(x_nan, y)), ValueError),
        ("bad_class_weight", lambda m: m.fit(x, y, verbose=0, class_weight={0: 1.0}), ValueError),
        ("bad_sample_weight", lambda m: m.fit(x, y, verbose=0, sample_weight=-np.ones(12)), ValueError),
        ("bad_epochs", lambda m: m.fit(x, y, epochs=1.5, verbose=0), ValueError),
        ("bad_compile", lambda m: m.compile(optimizer="adam", loss="no_such_loss"), ValueError),
        ("set_weights_shape", lambda m: m.set_weights([w[..., :1] for w in m.get_weights()]), ValueError),
        ("load_weights_missing", lambda m: m.load_weights("/nonexistent/dir/w.fnn"), OSError),
    ]


@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
], ids=["adam-amsgrad", "sgd-nesterov", "rmsprop-centered"])
def test_every_failed_call_leaves_the_model_bitwise_unchanged(backend, make_optimizer):
    """A trained model with batch norm (moving statistics), dropout (a random stream) and an
    optimizer with slots: after each failing call, ``model_state`` -- weights, get_state()
    (iterations and every slot), configs, layer states -- is bitwise what it was; and the model
    then trains exactly like an untouched twin that never saw the bad calls."""
    x, y = blobs(n=12)
    model = classifier(optimizer=make_optimizer(), norm=True, dropout=True)
    twin = classifier(optimizer=make_optimizer(), norm=True, dropout=True)
    for m in (model, twin):
        set_random_seed(4)
        m.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert model.optimizer.get_state()[0] == 6
    for name, call, exc in _failing_calls():
        before = model_state(model)
        with pytest.raises(exc):
            call(model)
        assert_state_unchanged(model, before, what=name)
    assert numeric_state(model) == numeric_state(twin)
    for m in (model, twin):
        set_random_seed(8)
        m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert numeric_state(model) == numeric_state(twin)


@pytest.mark.parametrize("kind", ["sample_weight", "class_weight", "learning_rate", "schedule"])
def test_values_overflowing_float32_are_refused(backend, kind):
    x = np.random.default_rng(0).standard_normal((8, 4))
    y = np.arange(8) % 3
    model = small_model()
    kwargs = {}
    if kind == "sample_weight":
        kwargs["sample_weight"] = np.full(8, 1e39)
    elif kind == "class_weight":
        kwargs["class_weight"] = {0: 1e39, 1: 1.0, 2: 1.0}
    elif kind == "learning_rate":
        model.optimizer.learning_rate = 1e39
    else:
        model.optimizer.learning_rate = fastnn.optimizers.schedules.ExponentialDecay(1e39, 10, 0.5)
    before = model.get_weights()
    with pytest.raises(ValueError, match="overflow"):
        model.fit(x, y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("label", [-1, 3])
def test_sparse_cross_entropy_labels_out_of_range(backend, label):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        ops.sparse_softmax_cross_entropy(np.zeros((2, 3), np.float32), [0, label])


def test_zero_features_is_a_clear_error_with_nothing_built(backend):
    model = Sequential([Dense(3)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="at least one feature"):
        model.fit(np.zeros((4, 0)), np.zeros((4, 3)), verbose=0)
    assert not model.built and model.optimizer.variables() == []


def test_masked_arrays_are_refused_on_both_backends(backend):
    x = np.ma.masked_array(np.ones((2, 3)), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match="masked"):
        ops.softmax(x)
    with pytest.raises(TypeError, match="masked"):
        small_model(features=3).predict(x, verbose=0)


def test_x_overflowing_float32_is_named_by_fit_and_predict(backend):
    model = small_model()
    x = np.ones((4, 4))
    x[1, 2] = 1e39
    with pytest.raises(ValueError, match="overflow float32"):
        model.fit(x, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match="overflow float32"):
        model.predict(x, verbose=0)
