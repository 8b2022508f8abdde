"""The native backend's kernel namespace: ``fastnn._core``'s bindings, plus the kernels of the
program executor's table that have no binding of their own, run as one-instruction programs, and
the scalar helpers of a step (plain float arithmetic, identical in C++ and Python).

Same names and signatures as ``fastnn.reference``.
"""
from types import SimpleNamespace

from . import program, reference
from .reference import activations as _ref_activations

try:
    from . import _core
except ImportError:
    _core = None


def _act_forward(x, activation, alpha=0.0, out=None):
    forward = getattr(_core, activation + "_forward")
    return forward(x, alpha, out=out) if activation in _ref_activations._WITH_ALPHA else forward(x, out=out)


def _act_backward(dy, x, y, activation, alpha=0.0, out=None):
    backward = getattr(_core, activation + "_backward")
    return (backward(dy, x, y, alpha, out=out) if activation in _ref_activations._WITH_ALPHA
            else backward(dy, x, y, out=out))


def _dense_act_forward(x, w, b, activation, alpha=0.0, z=None, out=None):
    # The executor fuses the activation into the GEMM's epilogue; the two calls give the same bits.
    z = _core.dense_forward(x, w, b, out=z)
    return _act_forward(z, activation, alpha, out=out)


def _dropout_step(x, rate, stream, out=None, mask=None):
    y, mask = _core.dropout_forward(x, rate, int(stream[0]), int(stream[1]), out=out, mask=mask)
    stream[1] += 1
    return y, mask


def _namespace():
    if _core is None:
        return None
    names = {n: getattr(_core, n) for n in dir(_core) if not n.startswith("_")}
    for name in program._SPECS:
        if name not in names:
            names[name] = (lambda kernel: lambda *a, **k: program.run_once(kernel, *a, **k))(name)
    names.update(act_forward=_act_forward, act_backward=_act_backward,
                 dense_act_forward=_dense_act_forward, dropout_step=_dropout_step,
                 scalar_add=reference.scalar_add, scalar_mul=reference.scalar_mul,
                 scalar_sqrt=reference.scalar_sqrt,
                 norm_scale=reference.norm_scale, global_norm_scale=reference.global_norm_scale)
    return SimpleNamespace(**names)


kernels = _namespace()
