"""fastnn under Keras's names: ``import fastnn.keras as keras`` (or ``import fastnn as tf`` and
then ``tf.keras``) and a Keras program runs with its imports changed.

Every submodule is a real module re-exporting fastnn's own (``from fastnn.keras.layers import
Dense``, ``from fastnn.keras import layers, models, optimizers, ...``); nothing here computes.
"""
from . import (activations, backend, callbacks, constraints, datasets, initializers, layers, losses,
               metrics, models, ops, optimizers, random, regularizers, utils)
from ..layers import Input, InputLayer
from ..models import Model, Sequential, clone_model, load_model, model_from_json

__all__ = ["Input", "InputLayer", "Model", "Sequential", "activations", "backend", "callbacks", "clone_model",
           "constraints", "datasets", "initializers", "layers", "load_model", "losses", "metrics",
           "model_from_json", "models", "ops", "optimizers", "random", "regularizers", "utils"]
