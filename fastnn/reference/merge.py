"""Merge kernels of the functional API: elementwise binary operations and concatenation.

Keras's merge layers (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``,
``Concatenate``) combine several tensors of one shape (or, for ``Concatenate``, of one shape but
the last axis). fastnn reduces each to a chain of two-input kernels: ``merge_forward`` applies one
operation to two arrays (``Average`` of k inputs is k - 1 additions, the last one scaled by 1/k),
``concat_forward`` puts two arrays side by side along the last axis, and ``take_columns`` cuts
one input's part out of the concatenation's gradient. A tensor that feeds several layers (a
residual connection) receives the sum of their gradients: one ``merge_forward`` addition each.

All arrays are 2-D ``[N, C]``; a batch of sequences ``[N, T, C]`` is ``N * T`` rows.
"""
import numpy as np

from ._out import _into

MERGE_OPS = {"add": 0, "subtract": 1, "multiply": 2, "maximum": 3, "minimum": 4}


def merge_forward(a, b, op, scale=1.0, out=None):
    """``out = scale * (a op b)`` elementwise, ``op`` a code of :data:`MERGE_OPS`.

    maximum and minimum keep ``a`` on ties (the gradient then goes to ``a``). Shapes: a, b, out
    of one shape."""
    op = int(op)
    s = a.dtype.type(scale)
    if op == 0:
        y = a + b
    elif op == 1:
        y = a - b
    elif op == 2:
        y = a * b
    elif op == 3:
        y = np.where(a >= b, a, b)
    elif op == 4:
        y = np.where(a <= b, a, b)
    else:
        raise ValueError(f"unknown merge operation {op}; expected one of {MERGE_OPS}")
    return _into(out, s * y, a.dtype)


def merge_backward(dy, a, b, op, scale=1.0, da=None, db=None):
    """Gradients ``(da, db)`` of :func:`merge_forward` for the output gradient ``dy``::

        add: (s dy, s dy)   subtract: (s dy, -s dy)   multiply: (s dy b, s dy a)
        maximum: s dy to a where a >= b, else to b    minimum: s dy to a where a <= b, else to b
    """
    op = int(op)
    g = a.dtype.type(scale) * dy
    zero = np.zeros_like(g)
    if op == 0:
        ga, gb = g, g
    elif op == 1:
        ga, gb = g, -g
    elif op == 2:
        ga, gb = g * b, g * a
    elif op in (3, 4):
        first = a >= b if op == 3 else a <= b
        ga, gb = np.where(first, g, zero), np.where(first, zero, g)
    else:
        raise ValueError(f"unknown merge operation {op}; expected one of {MERGE_OPS}")
    ga, gb = np.array(ga, copy=True), np.array(gb, copy=True)  # da may alias dy
    return _into(da, ga, a.dtype), _into(db, gb, a.dtype)


def concat_forward(a, b, out=None):
    """``out[N, Ca + Cb] = [a[N, Ca], b[N, Cb]]``: the rows side by side."""
    return _into(out, np.concatenate([a, b], axis=1), a.dtype)


def take_columns(x, offset, out):
    """``out[N, C] = x[:, offset : offset + C]`` (``C`` is ``out``'s width): the gradient of one
    input of a concatenation."""
    offset = int(offset)
    out[...] = x[:, offset:offset + out.shape[1]]
    return out


def scalar_mul(a, b):
    """``a * b`` in float64: one output's loss times its ``loss_weights`` entry."""
    return float(a) * float(b)
