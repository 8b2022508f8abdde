"""Fully connected (dense) layer: forward and backward passes.

The layer is ``y = x @ w + b``.  The backward pass is three matrix
products/reductions obtained from the chain rule; see e.g. Goodfellow,
Bengio & Courville, *Deep Learning* (2016), section 6.5
(https://www.deeplearningbook.org/contents/mlp.html).
"""

import numpy as np

from ._out import _into


def dense_forward(x, w, b=None, out=None):
    """Affine map of a batch of row vectors.

    Formula::

        y[n, m] = sum_k x[n, k] * w[k, m] + b[m]

    Shapes:
        x: [N, K]   w: [K, M]   b: [M] or None (no bias)   y: [N, M]

    ``out`` is an optional preallocated [N, M] array that receives ``y``.
    """
    y = x @ w
    if b is not None:
        y = y + b
    return _into(out, y, x.dtype)


def dense_backward(dy, x, w, dx=None, dw=None, db=None, need_dx=True, need_db=True):
    """Gradients of a dense layer given the gradient of its output.

    Formula (chain rule applied to ``y = x @ w + b``)::

        dx = dy @ w.T
        dw = x.T @ dy
        db = sum over the batch of dy

    Shapes:
        dy: [N, M]   x: [N, K]   w: [K, M]
        dx: [N, K]   dw: [K, M]   db: [M]

    Defaults: ``need_dx=True`` and ``need_db=True``.  The first layer of a
    network does not need ``dx`` (nothing upstream to train) and a layer
    without bias does not need ``db``; those results are then ``None``.
    ``dx``, ``dw``, ``db`` are optional preallocated outputs; they are
    overwritten, never accumulated into.

    Returns ``(dx, dw, db)``.
    """
    dtype = x.dtype
    # every result computed before any output is written: an output may share an input's memory
    values = (dy @ w.T if need_dx else None, x.T @ dy, dy.sum(axis=0) if need_db else None)
    dx_value = _into(dx, values[0], dtype) if need_dx else None
    dw_value = _into(dw, values[1], dtype)
    db_value = _into(db, values[2], dtype) if need_db else None
    return dx_value, dw_value, db_value


def dense_act_forward(x, w, b, activation, alpha=0.0, z=None, out=None):
    """Dense layer and its activation in one call: ``z = x @ w + b``, ``out = activation(z)``.

    The native kernel applies an elementwise activation to each block of z while it is still in
    cache (the GEMM's epilogue); the result is the same as the two steps here.
    Shapes: x (N, K), w (K, M), b (M,) or None -> z, out (N, M). Returns out (z is filled too).
    """
    from .activations import act_forward
    z = dense_forward(x, w, b, out=z)
    return act_forward(z, activation, alpha, out=out)
