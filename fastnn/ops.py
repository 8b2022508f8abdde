"""The kernels as NumPy-compatible functions on the active backend.

Each function takes array-likes (lists, any dtype that converts to float, any memory layout),
converts them once -- without a copy when they are already C-contiguous float32/float64 -- and
returns an ndarray; ``out=`` writes into a preallocated array instead. The user's arrays are never
modified (only ``gemm``'s ``c`` and the optimizer updates work in place, by definition).

    >>> fastnn.ops.softmax([[1000.0, 0.0]])
    array([[1., 0.]], dtype=float32)
"""
import numpy as np

from . import backend
from .utils import NATIVE_FLOATS, as_float_array, native_float_dtype


def _ready(arrays):
    """True when every argument (None aside) is already a C-contiguous, aligned ndarray of one
    native float dtype: nothing to convert (the common case, checked in well under a microsecond)."""
    first = arrays[0]
    if type(first) is not np.ndarray or first.dtype not in NATIVE_FLOATS:
        return False
    dtype = first.dtype
    for a in arrays:
        if a is None:
            continue
        if type(a) is not np.ndarray or a.dtype != dtype:
            return False
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned):
            return False
    return True


def _floats(*arrays, names):
    """Convert every argument to one float dtype: that of the first float32/float64 ndarray among
    them, else ``floatx``. Lists and scalars take the arrays' dtype, as in Keras (a list of Python
    floats becomes float32 by default). ``None`` (an optional argument) stays None."""
    if _ready(arrays):
        return list(arrays)
    dtype = next((d for d in map(native_float_dtype, arrays) if d is not None), np.dtype(backend.floatx()))
    return [None if a is None else as_float_array(a, n, dtype) for a, n in zip(arrays, names)]


def _rows(x, name="x"):
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, features), got shape {x.shape}")
    return x


def matmul(a, b, out=None):
    """a @ b for 2-D arrays, with fastnn's GEMM."""
    a, b = _floats(a, b, names=("a", "b"))
    _rows(a, "a"), _rows(b, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: a has shape {a.shape} and b has shape {b.shape}; a.shape[1] must equal b.shape[0]")
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    return backend.kernels().gemm(a, b, out)


def gemm(a, b, c, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, in place in ``c`` (a C-contiguous float ndarray)."""
    a, b = _floats(a, b, names=("a", "b"))
    return backend.kernels().gemm(a, b, c, alpha, beta, trans_a, trans_b)


def dense_forward(x, w, b=None, out=None):
    """y = x @ w + b (b optional). Shapes: x (N, K), w (K, M), b (M,) -> y (N, M)."""
    x, w, b = _floats(x, w, b, names=("x", "w", "b"))
    _rows(x)
    return backend.kernels().dense_forward(x, w, b, out=out)


def dense_backward(dy, x, w, need_dx=True, need_db=True):
    """(dx, dw, db) = (dy @ w.T, x.T @ dy, dy.sum(0)); dx/db are None when not needed."""
    dy, x, w = _floats(dy, x, w, names=("dy", "x", "w"))
    return backend.kernels().dense_backward(dy, x, w, need_dx=need_dx, need_db=need_db)


def _elementwise(name, has_alpha=False, default=None):
    if has_alpha:
        def forward(x, alpha=default, out=None):
            (x,) = _floats(x, names=("x",))
            return getattr(backend.kernels(), name + "_forward")(x, alpha, out=out)
    else:
        def forward(x, out=None):
            (x,) = _floats(x, names=("x",))
            return getattr(backend.kernels(), name + "_forward")(x, out=out)
    forward.__name__ = name
    forward.__doc__ = f"{name} applied elementwise (see fastnn.reference.{name}_forward for the formula)."
    return forward


linear = _elementwise("linear")
step = _elementwise("step")
sigmoid = _elementwise("sigmoid")
tanh = _elementwise("tanh")
relu = _elementwise("relu")
leaky_relu = _elementwise("leaky_relu", True, 0.3)
elu = _elementwise("elu", True, 1.0)
selu = _elementwise("selu")
softplus = _elementwise("softplus")


def softmax(x, out=None):
    """Row-wise softmax of a 2-D array (max-subtracted: stable for any finite logits)."""
    (x,) = _floats(x, names=("x",))
    return backend.kernels().softmax_forward(_rows(x), out=out)


def log_softmax(x, out=None):
    """Row-wise log-softmax of a 2-D array: x - max - log(sum(exp(x - max)))."""
    (x,) = _floats(x, names=("x",))
    return backend.kernels().log_softmax_forward(_rows(x), out=out)


def sparse_softmax_cross_entropy(logits, labels, need_grad=True):
    """(mean loss, dlogits) of softmax cross-entropy for integer labels in [0, C)."""
    (logits,) = _floats(logits, names=("logits",))
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}")
    labels = np.require(labels, dtype=np.int64, requirements=("C", "A"))
    _rows(logits, "logits")
    if labels.shape != (len(logits),):
        raise ValueError(f"labels must have shape ({len(logits)},) to match logits {logits.shape}, got {labels.shape}")
    return backend.kernels().sparse_softmax_cross_entropy(logits, labels, need_grad=need_grad)


def _target_loss(kernel, pred_name):
    def loss(pred, target, need_grad=True):
        pred, target = _floats(pred, target, names=(pred_name, "target"))
        _rows(pred, pred_name)
        if target.shape != pred.shape:
            raise ValueError(f"target must have the shape of {pred_name} {pred.shape}, got {target.shape}")
        return getattr(backend.kernels(), kernel)(pred, target, need_grad=need_grad)
    loss.__name__ = kernel
    loss.__doc__ = f"(mean loss, gradient) of {kernel} (see fastnn.reference.{kernel})."
    return loss


softmax_cross_entropy = _target_loss("softmax_cross_entropy", "logits")
sigmoid_binary_cross_entropy = _target_loss("sigmoid_binary_cross_entropy", "logits")
mean_squared_error = _target_loss("mean_squared_error", "pred")


def _check_epsilon(epsilon):
    # epsilon 0 divides a constant row by 0: NaN; both backends refuse it here
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating, np.integer)) \
            or not np.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")


def layer_norm(x, gamma=None, beta=None, epsilon=1e-3, out=None):
    """Each row normalised to mean 0 and variance 1 over its features, then ``gamma * . + beta``
    (epsilon 1e-3: the Keras LayerNormalization default). Shapes: x (N, C), gamma/beta (C,)."""
    _check_epsilon(epsilon)
    x, gamma, beta = _floats(x, gamma, beta, names=("x", "gamma", "beta"))
    return backend.kernels().layernorm_forward(_rows(x), gamma, beta, epsilon, out=out)[0]


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon=1e-3, out=None):
    """Batch normalisation in inference mode, with given statistics:
    ``gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``. Shapes: x (N, C), others (C,)."""
    x, gamma, beta, mean, var = _floats(x, gamma, beta, moving_mean, moving_variance,
                                        names=("x", "gamma", "beta", "moving_mean", "moving_variance"))
    _check_epsilon(epsilon)
    if (var < 0).any():
        raise ValueError(f"moving_variance must be >= 0, got {float(var.min())}")
    return backend.kernels().batchnorm_inference(_rows(x), gamma, beta, mean, var, epsilon, out=out)


def dropout(x, rate, seed=0, counter=0, out=None):
    """Inverted dropout in training mode: each element kept with probability ``1 - rate`` and scaled
    by ``1 / (1 - rate)``; the mask depends only on (seed, counter, element index)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    for what, value in (("seed", seed), ("counter", counter)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
            raise ValueError(f"dropout {what} must be an integer in [0, 2**64), got {value!r}")
    (x,) = _floats(x, names=("x",))
    return backend.kernels().dropout_forward(x, rate, seed, counter, out=out)[0]


def convert_to_numpy(x):
    """``keras.ops.convert_to_numpy``: fastnn's values already are NumPy arrays (or Python floats,
    like ``optimizer.learning_rate``); returns ``np.asarray(x)``."""
    return np.asarray(x)
