"""Which kernel implementation runs: the native C++ module or the NumPy reference.

Both expose the same kernel names and signatures (see ``fastnn.reference``), so every layer, loss
and optimizer asks :func:`kernels` for the active one at each call and never cares which it got.

    fastnn.set_backend("numpy")          # the whole engine on the reference twins
    with fastnn.backend_scope("native"): # temporarily back on the C++ kernels
        model.fit(x, y)
"""
import contextlib

import numpy as np

from . import native, program, reference

BACKENDS = ("native", "numpy")

try:
    from . import _core
except ImportError as exc:  # a source checkout that was not built; the numpy backend still works
    _core = None
    _CORE_ERROR = exc
else:
    _CORE_ERROR = None

_backend = "native" if _core is not None else "numpy"
_floatx = np.dtype(np.float32)


def kernels():
    """The active kernel namespace: ``fastnn.native.kernels`` (the C++ kernels) or
    ``fastnn.reference`` (numpy) -- or, while a program is being recorded on this thread, the
    recorder (``fastnn.program``), which turns each call into an instruction."""
    rec = program._local.recorder if hasattr(program._local, "recorder") else None
    if rec is not None:
        return rec
    return native.kernels if _backend == "native" else reference


def get_backend():
    """Name of the active backend, ``"native"`` or ``"numpy"``."""
    return _backend


def set_backend(name):
    """Run every kernel on ``name``: ``"native"`` (C++/OpenMP) or ``"numpy"`` (the reference)."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "native" and _core is None:
        raise RuntimeError(f"the native backend is not available: {_CORE_ERROR}. "
                           "Install fastnn with `pip install .` to build it.")
    _backend = name


@contextlib.contextmanager
def backend_scope(name):
    """Context manager running the enclosed code on backend ``name``, then restoring the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def floatx():
    """Default float dtype name for new weights and inputs (Keras's ``floatx``): ``"float32"``."""
    return _floatx.name


def set_floatx(dtype):
    """Set the default float dtype to ``"float32"`` or ``"float64"`` (affects models built afterwards)."""
    global _floatx
    dt = np.dtype(dtype) if dtype in ("float32", "float64", np.float32, np.float64) else None
    if dt is None:
        raise ValueError(f"floatx must be 'float32' or 'float64', got {dtype!r}")
    _floatx = dt


def get_num_threads():
    """Number of threads the native kernels use."""
    return _core.get_num_threads() if _core is not None else 1


def set_num_threads(n):
    """Set the number of threads the native kernels use (results do not depend on it)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"num_threads must be a positive integer, got {n!r}")
    if _core is not None:
        _core.set_num_threads(int(n))


def clear_session():
    """Start afresh as Keras's ``clear_session`` does: automatic layer and model names count from
    the start again (``dense``, ``dense_1``, ...). Existing models keep working."""
    from . import layers
    layers._name_counts.clear()


def epsilon():
    """The fuzz factor Keras's backend exposes: ``1e-7`` (fastnn.losses.EPSILON)."""
    from .losses import EPSILON
    return EPSILON


def image_data_format():
    """Keras's image layout setting, ``"channels_last"``; fastnn has no image layers."""
    return "channels_last"
