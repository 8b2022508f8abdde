"""Which kernel implementation runs: the native C++ module or the NumPy reference.

Both expose the same kernel names and signatures (see ``fastnn.reference``), so every layer, loss
and optimizer asks :func:`kernels` for the active one at each call and never cares which it got.

    fastnn.set_backend("numpy")          # the whole engine on the reference twins
    with fastnn.backend_scope("native"): # temporarily back on the C++ kernels
        model.fit(x, y)
"""
import contextlib
import contextvars
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import native, program, reference

BACKENDS = ("native", "numpy")


class NativeExtensionWarning(RuntimeWarning):
    """fastnn's compiled kernels could not be loaded: everything runs on the slow NumPy reference."""


def _native_failure(exc):
    """Why the native extension did not load, and what fixes it, as one message."""
    here = Path(__file__).resolve().parent
    built = sorted(p.name for p in here.glob("_core*") if p.suffix in (".so", ".pyd"))
    if not built and (here.parent / "setup.py").is_file() and (here.parent / "csrc").is_dir():
        cause = f"this is the source folder {here}, and its extension was never built"
        fix = ("build it in place with `pip install -e .` at the repository root (a C++17 "
               "compiler with OpenMP is needed; see README.md, Installing)")
    else:
        cause = f"fastnn._core failed to import: {exc}"
        fix = ("reinstall fastnn for this Python (`pip install --force-reinstall fastnn-cpu`, or "
               "`pip install -e .` in a clone); `python -m fastnn info` shows what is installed")
    return f"{cause}; fix: {fix}"


try:
    from . import _core
except ImportError as exc:  # never a silent fallback: say why, and how to fix it
    _core = None
    _CORE_ERROR = _native_failure(exc)
    warnings.warn("fastnn's native extension is unavailable, so fastnn runs on the NumPy reference "
                  f"backend (many times slower): {_CORE_ERROR}", NativeExtensionWarning, stacklevel=2)
else:
    _CORE_ERROR = None


class CpuCapabilityWarning(RuntimeWarning):
    """``FASTNN_CPU_CAPABILITY`` names no GEMM variant this CPU and build can run."""


def _apply_capability_request():
    """Honour ``FASTNN_CPU_CAPABILITY`` whatever its case or surrounding spaces ("AVX2" is
    "avx2"). A name that is not a variant, or one this CPU cannot run, is not silently ignored:
    a warning names the valid values and the variant kept (the import itself never fails)."""
    request = os.environ.get("FASTNN_CPU_CAPABILITY")
    if _core is None or not request:
        return
    name = request.strip().lower()
    try:
        _core.set_cpu_capability(name)
    except ValueError as exc:
        warnings.warn(f"FASTNN_CPU_CAPABILITY={request!r} is not used: {exc}; valid values: "
                      "generic, avx2, avx512 (on this CPU: "
                      f"{', '.join(_core.available_cpu_capabilities())}); using "
                      f"{_core.cpu_capability()}", CpuCapabilityWarning, stacklevel=3)


_apply_capability_request()

_backend = "native" if _core is not None else "numpy"  # the process-wide default (set_backend)
# The backend a ``backend_scope`` chose, per thread (and per asyncio task): None outside any scope.
# A new thread starts outside every scope, on the process-wide default.
_scoped: "contextvars.ContextVar[str | None]" = contextvars.ContextVar("fastnn_backend", default=None)
_floatx = np.dtype(np.float32)


def kernels():
    """The active kernel namespace: ``fastnn.native.kernels`` (the C++ kernels) or
    ``fastnn.reference`` (numpy) -- or, while a program is being recorded on this thread, the
    recorder (``fastnn.program``), which turns each call into an instruction."""
    rec = program._local.recorder if hasattr(program._local, "recorder") else None
    if rec is not None:
        return rec
    return native.kernels if (_scoped.get() or _backend) == "native" else reference


def get_backend() -> str:
    """Name of the active backend, ``"native"`` or ``"numpy"``. It is ``"numpy"`` from the start
    only when the native extension failed to load; :func:`native_error` then says why. Inside a
    :func:`backend_scope` it is the scope's backend (for this thread only)."""
    return _scoped.get() or _backend


def native_error() -> "str | None":
    """None when the native extension loaded; otherwise why it did not and how to fix it (the
    message of the warning that importing fastnn gave)."""
    return _CORE_ERROR


def _check_backend(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "native" and _core is None:
        raise RuntimeError(f"the native backend is not available: {_CORE_ERROR}")


def set_backend(name: str) -> None:
    """Run every kernel on ``name``: ``"native"`` (C++/OpenMP) or ``"numpy"`` (the reference).

    This sets the process-wide default, which every thread outside a :func:`backend_scope` uses.
    Called inside a scope, it changes that scope's backend (until the scope ends) instead."""
    global _backend
    _check_backend(name)
    if _scoped.get() is not None:
        _scoped.set(name)
    else:
        _backend = name


@contextlib.contextmanager
def backend_scope(name: str) -> Iterator[None]:
    """Context manager running the enclosed code on backend ``name``, then restoring the previous one.

    The scope is per thread (a context variable): other threads, and their running ``fit`` or
    ``predict``, keep their own backend, and threads started inside the scope begin on the
    process-wide default."""
    _check_backend(name)
    token = _scoped.set(name)
    try:
        yield
    finally:
        _scoped.reset(token)


_buffer_cache_limit = 256 << 20


def buffer_cache_limit() -> int:
    """Bytes of scratch buffers a model (each recorded program, each layer's eager buffers) keeps
    between calls: 256 MiB unless :func:`set_buffer_cache_limit` changed it."""
    return _buffer_cache_limit


def set_buffer_cache_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of scratch buffers per program and per layer between calls.

    Buffers grow to the largest batch seen so that a repeated batch size allocates nothing; a
    batch whose buffers exceed the limit (``predict(batch_size=100000)``, say) gets them for the
    call only: they are freed when the call returns (or fails)."""
    global _buffer_cache_limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"the buffer cache limit must be a non-negative number of bytes, got {nbytes!r}")
    if _core is not None:
        _core.set_program_cache_limit(int(nbytes))
    _buffer_cache_limit = int(nbytes)


def floatx() -> str:
    """Default float dtype name for new weights and inputs (Keras's ``floatx``): ``"float32"``."""
    return _floatx.name


def set_floatx(dtype: "str | type[np.floating[Any]]") -> None:
    """Set the default float dtype to ``"float32"`` or ``"float64"`` (affects models built afterwards)."""
    global _floatx
    dt = np.dtype(dtype) if dtype in ("float32", "float64", np.float32, np.float64) else None
    if dt is None:
        raise ValueError(f"floatx must be 'float32' or 'float64', got {dtype!r}")
    _floatx = dt


def get_num_threads() -> int:
    """Number of threads the native kernels use (in the default, adaptive mode: at most)."""
    return _core.get_num_threads() if _core is not None else 1


def set_num_threads(n: "int | str") -> None:
    """Set the number of threads the native kernels use (results do not depend on it).

    By default (and after ``set_num_threads("auto")``) the team has ``OMP_NUM_THREADS`` or the
    cores' count, and each training or prediction step runs on the thread count that its recent
    steps measured fastest: fewer threads when another process keeps a core busy. An integer pins
    that many threads for every step."""
    if isinstance(n, str) and n == "auto":
        if _core is not None:
            _core.set_adaptive_threads()
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"num_threads must be a positive integer or 'auto', got {n!r}")
    if _core is not None:
        _core.set_num_threads(int(n))


def clear_session() -> None:
    """Start afresh as Keras's ``clear_session`` does: automatic layer and model names count from
    the start again (``dense``, ``dense_1``, ...). Existing models keep working."""
    from . import layers
    layers._name_counts.clear()


def epsilon() -> float:
    """The fuzz factor Keras's backend exposes: ``1e-7`` (fastnn.losses.EPSILON)."""
    from .losses import EPSILON
    return EPSILON


def image_data_format() -> str:
    """Keras's image layout setting, ``"channels_last"``; fastnn has no image layers."""
    return "channels_last"
