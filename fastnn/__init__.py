"""fastnn: fast multilayer perceptrons with a Keras-style API.

Hot kernels are C++17/OpenMP (``fastnn._core``); each has a plain NumPy twin in
``fastnn.reference`` that is the ground truth in tests and a textbook to read. Switch the whole
engine with ``fastnn.set_backend("numpy")`` or ``with fastnn.backend_scope("numpy"): ...``.
"""
from . import (activations, backend, callbacks, constraints, datasets, initializers, layers, losses,
               metrics, ops, optimizers, plot, random, reference, regularizers, saving, schedules,
               utils)
from .backend import (backend_scope, floatx, get_backend, get_num_threads, set_backend, set_floatx,
                      set_num_threads)
from .layers import Input, InputLayer
from .models import Sequential, clone_model, load_model, model_from_json
from . import models

# ``import fastnn as keras`` and ``import fastnn as tf`` (then ``tf.keras.layers.Dense``) run Keras
# programs unchanged: fastnn.keras is a package of modules under Keras's names (fastnn/keras/).
from . import keras

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = [
    "Input", "InputLayer", "Sequential", "activations", "backend", "backend_scope", "callbacks",
    "clone_model", "constraints", "datasets", "floatx", "model_from_json", "random",
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
