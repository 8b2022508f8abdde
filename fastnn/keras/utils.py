"""``keras.utils`` for Keras programs: ``fastnn.utils`` under Keras's module path."""
from .. import utils as _source
__all__ = [n for n in dir(_source) if not n.startswith("_")]


def __getattr__(name):
    return getattr(_source, name)


def __dir__():
    return __all__
