"""``keras.metrics`` for Keras programs: ``fastnn.metrics`` under Keras's module path."""
import types

from .. import metrics as _source
__all__ = [n for n in dir(_source)
           if not n.startswith("_") and not isinstance(getattr(_source, n), types.ModuleType)]


def __getattr__(name):
    if name in __all__:
        return getattr(_source, name)
    raise AttributeError(f"module 'fastnn.keras.metrics' has no attribute {name!r}")


def __dir__():
    return __all__
