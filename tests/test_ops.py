"""The public wrappers ``fastnn.ops`` and the backend switches (``set_backend``, ``backend_scope``,
``set_num_threads``).

``fastnn.ops`` converts any array-like once (lists, ints, any memory layout, read-only, broadcast)
to a C-contiguous float array and calls the active backend's kernel.  So an op on an awkward input
must give *bitwise* the same result as the same op on a contiguous float copy of it (same kernel,
same numbers), and must never modify what the caller passed.
"""
import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn import reference as R


def randn(shape, dtype=np.float64, seed=0, scale=1.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def same(a, b):
    """Bitwise equality of results (arrays, floats, None, tuples of those)."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    if isinstance(a, float):
        return isinstance(b, float) and np.float64(a).tobytes() == np.float64(b).tobytes()
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.shape == b.shape and a.tobytes() == b.tobytes())


# Each case: op name -> (callable taking the 2-D "main" input x, the other inputs derived from a
# fixed seed). x is always the argument that gets the awkward layout.
X_SHAPE = (6, 5)
W = randn((5, 3), np.float32, 1)
B = randn((3,), np.float32, 2)
T = np.abs(randn(X_SHAPE, np.float32, 3))
LABELS = np.array([0, 4, 2, 1, 3, 4])

ACTIVATIONS = ["linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
               "softplus"]

OPS = {
    "matmul": lambda x: ops.matmul(x, W),
    "matmul_left": lambda x: ops.matmul(W.T.copy(), np.transpose(x)),
    "dense_forward": lambda x: ops.dense_forward(x, W, B),
    "dense_forward_nobias": lambda x: ops.dense_forward(x, W),
    "dense_backward": lambda x: ops.dense_backward(randn((6, 3), np.float32, 4), x, W),
    "softmax": lambda x: ops.softmax(x),
    "log_softmax": lambda x: ops.log_softmax(x),
    "sparse_softmax_cross_entropy": lambda x: ops.sparse_softmax_cross_entropy(x, LABELS),
    "softmax_cross_entropy": lambda x: ops.softmax_cross_entropy(x, T),
    "sigmoid_binary_cross_entropy": lambda x: ops.sigmoid_binary_cross_entropy(x, T),
    "mean_squared_error": lambda x: ops.mean_squared_error(x, T),
    **{a: (lambda x, a=a: getattr(ops, a)(x)) for a in ACTIVATIONS},
    "leaky_relu_alpha": lambda x: ops.leaky_relu(x, 0.1),
    "elu_alpha": lambda x: ops.elu(x, alpha=0.5),
}
# Note "matmul_left" gets x.T, so it exercises a transposed view of an awkward input as well.


def awkward_forms(x):
    """x (float32, C-contiguous, shape X_SHAPE) in every layout ops must accept; each form holds
    exactly the same values as x."""
    fortran = np.asfortranarray(x)
    transposed = np.ascontiguousarray(x.T).T          # a transposed view
    reversed_ = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]  # negative strides
    readonly = x.copy()
    readonly.flags.writeable = False
    padded = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
    padded[:, ::2] = x
    strided = padded[:, ::2]                          # non-unit stride
    return {"fortran": fortran, "transposed": transposed, "reversed": reversed_,
            "readonly": readonly, "strided": strided}


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_awkward_float_layouts_match_contiguous_copy(name, backend):
    fastnn.set_backend(backend)
    x = randn(X_SHAPE, np.float32, 0)
    expected = OPS[name](x.copy())
    for form_name, form in awkward_forms(x).items():
        assert np.array_equal(form, x)
        before = form.copy()
        got = OPS[name](form)
        assert same(got, expected), f"{name} on a {form_name} input differs from a contiguous copy"
        assert np.array_equal(form, before), f"{name} modified a {form_name} input"


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_integer_inputs_become_floatx(name, backend):
    fastnn.set_backend(backend)
    xi = np.random.default_rng(5).integers(-3, 4, size=X_SHAPE)
    expected = OPS[name](xi.astype(np.float32))  # floatx is float32 by default
    for form in (xi, xi.astype(np.int32), np.asfortranarray(xi), xi.tolist()):
        got = OPS[name](form)
        assert same(got, expected), f"{name} on {type(form).__name__} ints"
    assert np.array_equal(xi, np.random.default_rng(5).integers(-3, 4, size=X_SHAPE))


def test_broadcast_inputs_match_contiguous_copy():
    row = randn((1, 5), np.float32, 0)
    x = np.broadcast_to(row, X_SHAPE)
    assert x.strides[0] == 0 and not x.flags.writeable
    dense = np.ascontiguousarray(x)
    for name in sorted(OPS):
        assert same(OPS[name](x), OPS[name](dense)), name
    s = np.broadcast_to(np.float64(2.5), (3, 4))
    assert same(ops.sigmoid(s), ops.sigmoid(np.full((3, 4), 2.5)))
    assert same(ops.matmul(np.broadcast_to(np.float32(1), (2, 5)), W),
                ops.matmul(np.ones((2, 5), np.float32), W))


def test_broadcast_weights_and_targets():
    x = randn(X_SHAPE, np.float64, 0)
    wb = np.broadcast_to(randn((5, 1), np.float64, 1), (5, 3))
    t = np.broadcast_to(randn((1, 5), np.float64, 2), X_SHAPE)
    assert same(ops.dense_forward(x, wb), ops.dense_forward(x, np.ascontiguousarray(wb)))
    assert same(ops.mean_squared_error(x, t), ops.mean_squared_error(x, np.ascontiguousarray(t)))


def _first_array(res):
    return next(r for r in (res if isinstance(res, tuple) else (res,)) if isinstance(r, np.ndarray))


def test_list_inputs_match_array_inputs():
    # Which float dtype a list of Python floats becomes is test_docstring_example_...'s business;
    # here: the list gives exactly the result of an array of that dtype holding the same values.
    x = randn(X_SHAPE, np.float64, 0)
    for name in sorted(OPS):
        got = OPS[name](x.tolist())
        dt = _first_array(got).dtype
        assert same(got, OPS[name](np.array(x.tolist(), dtype=dt))), name
    labels = LABELS.tolist()
    assert same(ops.sparse_softmax_cross_entropy(x, labels),
                ops.sparse_softmax_cross_entropy(x, LABELS))


def test_docstring_example_lists_of_floats_give_floatx():
    """The fastnn.ops module docstring promises

        >>> fastnn.ops.softmax([[1000.0, 0.0]])
        array([[1., 0.]], dtype=float32)

    i.e. a plain Python list converts to floatx (as Keras does), not to NumPy's default float64.
    BUG: ops returns float64 for a list of Python floats (docstring and behaviour disagree)."""
    y = ops.softmax([[1000.0, 0.0]])
    assert y.dtype == np.float32
    assert np.array_equal(y, np.array([[1.0, 0.0]], np.float32))


@pytest.mark.parametrize("name", sorted(OPS))
def test_float_dtypes_are_kept(name):
    for dt in (np.float32, np.float64):
        x = randn(X_SHAPE, dt, 0)
        res = OPS[name](x)
        res = res if isinstance(res, tuple) else (res,)
        arrays = [r for r in res if isinstance(r, np.ndarray)]
        assert arrays
        # The result's dtype is that of the first float array among the op's inputs: x itself for
        # everything but matmul_left and dense_backward, whose first operand (W, dy) is float32.
        want = np.float32 if name in ("matmul_left", "dense_backward") else dt
        assert all(a.dtype == want for a in arrays), (name, dt, [a.dtype for a in arrays])


def test_floatx_float64_applies_to_integer_inputs():
    fastnn.set_floatx("float64")
    assert ops.relu(np.arange(-2, 3)).dtype == np.float64
    assert ops.softmax([[1, 2], [3, 4]]).dtype == np.float64
    fastnn.set_floatx("float32")
    assert ops.relu(np.arange(-2, 3)).dtype == np.float32
    assert ops.relu(np.array([True, False])).dtype == np.float32


def test_big_endian_float64_stays_float64():
    """float64 in any byte order is float64: converting it to float32 would lose precision.
    (BUG: ops only recognises the native-order dtypes and sends '>f8' through floatx.)"""
    x = np.array([[1.0 + 2**-40, -3.0]], dtype=">f8")
    y = ops.linear(x)
    assert y.dtype == np.float64
    assert y[0, 0] == 1.0 + 2**-40


def test_unpickled_float32_array_is_accepted():
    """BUG: an unpickled float32 array (as multiprocessing/joblib deliver) has an equal but not
    identical dtype object; ops passes it through without a copy and the native binding rejects it
    with 'x must be a float32 or float64 array, got dtype float32'."""
    import pickle
    x = pickle.loads(pickle.dumps(randn(X_SHAPE, np.float32, 0)))
    assert same(ops.relu(x), ops.relu(x.copy()))
    assert same(ops.matmul(x, W), ops.matmul(x.copy(), W))


@pytest.mark.parametrize("bad", [
    np.array([[1 + 2j, 3]]),
    np.array([["a", "b"]]),
    np.array([[1.0, 2.0]], dtype=object),
    [[1.0, "x"]],
    "abc",
    np.array([[np.datetime64("2020-01-01")]]),
], ids=["complex", "str", "object", "mixed_list", "string", "datetime"])
def test_non_numeric_inputs_raise_type_error(bad):
    with pytest.raises(TypeError):
        ops.relu(bad)
    with pytest.raises(TypeError):
        ops.softmax(bad)
    with pytest.raises(TypeError):
        ops.matmul(bad, np.ones((2, 2)))
    with pytest.raises(TypeError):
        ops.mean_squared_error(np.ones((1, 2)), bad)


def test_labels_must_be_integers():
    x = randn((3, 4))
    with pytest.raises(TypeError, match="integer"):
        ops.sparse_softmax_cross_entropy(x, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(3,\)"):
        ops.sparse_softmax_cross_entropy(x, [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ops.sparse_softmax_cross_entropy(x, [0, 1, 4])
    loss32, _ = ops.sparse_softmax_cross_entropy(x, np.array([0, 1, 3], np.int32))
    loss64, _ = ops.sparse_softmax_cross_entropy(x, np.array([0, 1, 3], np.uint8))
    assert loss32 == loss64


def test_shape_errors():
    with pytest.raises(ValueError, match="2-D"):
        ops.softmax([1.0, 2.0])
    with pytest.raises(ValueError, match=r"a.shape\[1\] must equal b.shape\[0\]"):
        ops.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="target"):
        ops.mean_squared_error(np.ones((2, 3)), np.ones((3, 2)))


def test_inputs_are_never_modified_even_with_out():
    x = randn(X_SHAPE, np.float32, 0)
    x0 = x.copy()
    out = np.empty_like(x)
    for a in ACTIVATIONS:
        assert getattr(ops, a)(x, out=out) is out
        assert np.array_equal(x, x0), a
    assert ops.softmax(x, out=out) is out
    y = np.empty((6, 3), np.float32)
    assert ops.matmul(x, W, out=y) is y
    assert ops.dense_forward(x, W, B, out=y) is y
    assert np.array_equal(x, x0)


# ---------------------------------------------------------------- matmul vs numpy

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 17, 129), (129, 1, 17), (300, 257, 513)])
def test_matmul_matches_numpy(shape, dtype):
    M, K, N = shape
    a, b = randn((M, K), dtype, 1), randn((K, N), dtype, 2)
    got = ops.matmul(a, b)
    assert got.dtype == dtype and got.shape == (M, N)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # Dot products of length K: error <= ~sqrt(K)*eps*(|a|@|b|) for random data (4x margin; the
    # worst case is K*eps).
    bound = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    tol = 4 * np.sqrt(K + 1) * np.finfo(dtype).eps * bound
    assert np.all(np.abs(got - exact) <= tol)
    assert np.all(np.abs((a @ b).astype(np.float64) - exact) <= tol)  # numpy within the same bound


def test_matmul_ints_and_lists():
    got = ops.matmul([[1, 2], [3, 4]], [[5], [6]])
    assert got.dtype == np.float32
    assert np.array_equal(got, np.array([[17.0], [39.0]], np.float32))


def test_gemm_op_converts_a_and_b_but_writes_c_in_place():
    a = np.asfortranarray(randn((4, 3)))
    b = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    c = np.full((4, 2), np.nan)
    assert ops.gemm(a, b, c) is c
    np.testing.assert_allclose(c, a @ np.array(b), rtol=1e-14)


# ---------------------------------------------------------------- backends

def _all_ops_results(x):
    return {name: f(x) for name, f in OPS.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_backend_routes_ops_to_the_reference(dtype):
    # A shape where the native GEMM/softmax differ in the last bits from NumPy's, so equality with
    # the reference below proves the routing (checked at the end).
    x = randn((300, 513), dtype, 0, scale=3.0)
    w = randn((513, 257), dtype, 1)
    labels = np.arange(300) % 513
    t = np.abs(randn((300, 513), dtype, 2))
    cases = {
        "matmul": (lambda: ops.matmul(x, w), lambda: R.gemm(x, w, np.empty((300, 257), dtype))),
        "dense": (lambda: ops.dense_forward(x, w, w[0]), lambda: R.dense_forward(x, w, w[0])),
        "dense_backward": (lambda: ops.dense_backward(x @ w, x, w),
                           lambda: R.dense_backward(x @ w, x, w)),
        "softmax": (lambda: ops.softmax(x), lambda: R.softmax_forward(x)),
        "log_softmax": (lambda: ops.log_softmax(x), lambda: R.log_softmax_forward(x)),
        "tanh": (lambda: ops.tanh(x), lambda: R.tanh_forward(x)),
        "softplus": (lambda: ops.softplus(x), lambda: R.softplus_forward(x)),
        "elu": (lambda: ops.elu(x, 0.7), lambda: R.elu_forward(x, 0.7)),
        "sce": (lambda: ops.sparse_softmax_cross_entropy(x, labels),
                lambda: R.sparse_softmax_cross_entropy(x, labels)),
        "ce": (lambda: ops.softmax_cross_entropy(x, t), lambda: R.softmax_cross_entropy(x, t)),
        "bce": (lambda: ops.sigmoid_binary_cross_entropy(x, t / t.max()),
                lambda: R.sigmoid_binary_cross_entropy(x, t / t.max())),
        "mse": (lambda: ops.mean_squared_error(x, t), lambda: R.mean_squared_error(x, t)),
    }
    fastnn.set_backend("numpy")
    assert fastnn.get_backend() == "numpy" and fastnn.backend.kernels() is R
    on_numpy = {k: op() for k, (op, _) in cases.items()}
    fastnn.set_backend("native")
    assert fastnn.backend.kernels() is fastnn.native.kernels
    on_native = {k: op() for k, (op, _) in cases.items()}
    for k, (_, ref) in cases.items():
        assert same(on_numpy[k], ref()), f"{k}: numpy backend is not the reference"
    differs = [k for k in cases if not same(on_native[k], on_numpy[k])]
    assert differs, "native and numpy agree bitwise everywhere: this test cannot tell them apart"


def test_backend_scope_switches_and_restores():
    assert fastnn.get_backend() == "native"
    with fastnn.backend_scope("numpy"):
        assert fastnn.get_backend() == "numpy"
        assert fastnn.backend.kernels() is R
        with fastnn.backend_scope("native"):
            assert fastnn.get_backend() == "native"
        assert fastnn.get_backend() == "numpy"
    assert fastnn.get_backend() == "native"


def test_backend_scope_restores_when_the_body_raises():
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with fastnn.backend_scope("numpy"):
            assert fastnn.get_backend() == "numpy"
            raise Boom()
    assert fastnn.get_backend() == "native"
    fastnn.set_backend("numpy")
    with pytest.raises(Boom):
        with fastnn.backend_scope("native"):
            raise Boom()
    assert fastnn.get_backend() == "numpy"


def test_backend_scope_with_invalid_name_leaves_backend_alone():
    with pytest.raises(ValueError):
        with fastnn.backend_scope("bogus"):
            pytest.fail("the body must not run")  # pragma: no cover
    assert fastnn.get_backend() == "native"


@pytest.mark.parametrize("name", ["bogus", "Native", "", None, "cuda"])
def test_set_backend_rejects_unknown_names_listing_valid_ones(name):
    with pytest.raises(ValueError) as info:
        fastnn.set_backend(name)
    assert "native" in str(info.value) and "numpy" in str(info.value)
    assert repr(name) in str(info.value)
    assert fastnn.get_backend() == "native"


@pytest.mark.parametrize("n", [0, -1, True, 1.5, "2", None])
def test_set_num_threads_rejects_non_positive_integers(n):
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match="positive integer"):
        fastnn.set_num_threads(n)
    assert fastnn.get_num_threads() == before


def test_set_num_threads_accepts_numpy_integers():
    fastnn.set_num_threads(np.int64(1))
    assert fastnn.get_num_threads() == 1
    fastnn.set_num_threads(2)
    assert fastnn.get_num_threads() == 2


# ---- normalisation and dropout as functions ------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["native", "numpy"])
def test_layer_norm_rows_have_zero_mean_unit_variance(backend_name):
    x = np.random.default_rng(0).normal(5.0, 3.0, (7, 33)).tolist()  # a list: converted to float32
    with fastnn.backend_scope(backend_name):
        y = fastnn.ops.layer_norm(x, epsilon=1e-9)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-4)


def test_layer_norm_applies_gamma_and_beta_and_matches_the_formula():
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.normal(size=(5, 9)), rng.normal(size=9), rng.normal(size=9)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    expected = gamma * (x - mean) / np.sqrt(var + 1.0) + beta
    np.testing.assert_allclose(fastnn.ops.layer_norm(x, gamma, beta, epsilon=1.0), expected, rtol=1e-12)


def test_batch_norm_inference_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4))
    gamma, beta, mean, var = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.random(4) + 0.5
    expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(fastnn.ops.batch_norm(x, gamma, beta, mean, var), expected, rtol=1e-12)


def test_dropout_is_repeatable_scaled_and_keeps_the_mean():
    x = np.ones((200, 500), np.float32)
    a = fastnn.ops.dropout(x, 0.25, seed=7, counter=3)
    np.testing.assert_array_equal(a, fastnn.ops.dropout(x, 0.25, seed=7, counter=3))
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs(a.mean() - 1.0) < 0.01  # 100,000 draws: std of the mean is about 0.0019
    assert not np.array_equal(a, fastnn.ops.dropout(x, 0.25, seed=7, counter=4))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fastnn.ops.dropout(x, 1.0)


def test_keras_alias_runs_course_code_spelled_with_tf_keras():
    import fastnn as tf  # the only change a course example needs
    layer = tf.keras.layers.Activation("relu")
    assert isinstance(layer, fastnn.layers.Activation)
    assert tf.keras.models.Sequential is fastnn.Sequential


# -- outputs that share memory with inputs; gemm with alpha 0 -------------------------------------
def test_overlapping_outputs_give_the_numpy_result(backend):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6)).astype(np.float32)
    b = rng.standard_normal((6, 6)).astype(np.float32)
    expected = a.astype(np.float64) @ b
    for target in ("a", "b"):
        aa, bb = a.copy(), b.copy()
        out = aa if target == "a" else bb
        ops.matmul(aa, bb, out=out)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    aa, c = a.copy(), None
    ops.gemm(aa, b, aa, alpha=2.0, beta=1.0)
    np.testing.assert_allclose(aa, 2 * expected + a, rtol=1e-4, atol=1e-4)
    x = a.copy()
    ops.dense_forward(x, b, np.ones(6, np.float32), out=x)
    np.testing.assert_allclose(x, expected + 1, rtol=1e-4, atol=1e-4)


def test_dense_backward_outputs_overlapping_inputs(backend):
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((4, 4)).astype(np.float32)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    w = rng.standard_normal((4, 4)).astype(np.float32)
    k = fastnn.backend.kernels()
    want_dx, want_dw = dy.astype(np.float64) @ w.T, x.T.astype(np.float64) @ dy
    dyc = dy.copy()
    dx, dw, _ = k.dense_backward(dyc, x, w, dx=dyc, dw=np.empty_like(w), db=np.empty(4, np.float32))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-4)


def test_gemm_alpha_zero_does_not_read_a(backend):
    a = np.full((2, 2), np.inf, np.float32)
    c = np.ones((2, 2), np.float32)
    ops.gemm(a, np.ones((2, 2), np.float32), c, alpha=0.0, beta=2.0)
    np.testing.assert_array_equal(c, 2.0)
