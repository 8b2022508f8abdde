"""fastnn: fast multilayer perceptrons with a Keras-style API.

Hot kernels are C++17/OpenMP (``fastnn._core``); each has a plain NumPy twin in
``fastnn.reference`` that is the ground truth in tests and a textbook to read. Switch the whole
engine with ``fastnn.set_backend("numpy")`` or ``with fastnn.backend_scope("numpy"): ...``.
"""
from . import (activations, backend, callbacks, datasets, initializers, layers, losses, metrics,
               ops, optimizers, plot, reference, regularizers, saving, schedules, utils)
from .backend import (backend_scope, floatx, get_backend, get_num_threads, set_backend, set_floatx,
                      set_num_threads)
from .models import Sequential, load_model
from . import models
import sys as _sys

# ``import fastnn as tf`` makes Keras code that spells ``tf.keras.layers.Dense`` run unchanged:
# fastnn.keras is fastnn itself (layers, models, optimizers, losses, ... under Keras's names).
keras = _sys.modules[__name__]

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = [
    "Sequential", "activations", "backend", "backend_scope", "callbacks", "datasets", "floatx",
    "get_backend", "get_num_threads", "initializers", "keras", "layers", "load_model", "losses",
    "metrics", "models", "ops", "optimizers", "plot", "reference", "regularizers", "saving",
    "schedules", "set_backend", "set_floatx", "set_num_threads", "utils",
]


def __getattr__(name):
    # fastnn.labs is imported on first use: the lessons are not needed to train a model
    if name == "labs":
        import importlib
        return importlib.import_module(".labs", __name__)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
