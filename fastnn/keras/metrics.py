"""``keras.metrics`` for Keras programs: ``fastnn.metrics`` under Keras's module path."""
from .. import metrics as _source
__all__ = [n for n in dir(_source) if not n.startswith("_")]


def __getattr__(name):
    return getattr(_source, name)


def __dir__():
    return __all__
