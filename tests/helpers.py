"""Helpers shared by the test modules that check bad inputs and faults (``test_input_validation``,
``test_numerics``, ``test_saving``, ``test_threads``, ``test_memory``, ...): small compiled models,
the full state of a model (what a failed call must leave bitwise unchanged), array digests, and
child interpreters with timeouts, so that a hang fails the test instead of the run.

Importable as ``helpers`` because pyproject.toml puts ``tests/`` on pytest's ``pythonpath``.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import losses, optimizers
from fastnn.layers import BatchNormalization, Dense, Dropout
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["native", "numpy"]  # conftest's ``backend`` fixture runs a test on each
SUBPROCESS_TIMEOUT = 120  # seconds; a child that hangs is killed and the test fails


def kernels_of(name):
    """The kernel module of backend ``name``."""
    return fastnn.backend._core if name == "native" else fastnn.reference


# -- small models and data -----------------------------------------------------------------------
def classifier(seed=0, features=4, hidden=8, classes=3, optimizer=None, norm=False, dropout=False,
               metrics=("accuracy",)):
    """A small compiled ReLU/softmax classifier (optionally with batch norm and dropout)."""
    set_random_seed(seed)
    stack = [Dense(hidden, activation="relu", input_shape=(features,))]
    if norm:
        stack.append(BatchNormalization())
    if dropout:
        stack.append(Dropout(0.25, seed=3))
    stack.append(Dense(classes, activation="softmax"))
    model = Sequential(stack)
    model.compile(optimizer=optimizer or optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def small_model(seed=0, features=4, units=3, **compile_args):
    """A compiled ``features``-5-``units`` ReLU/softmax model (Adam, sparse cross-entropy unless
    ``compile_args`` say otherwise)."""
    set_random_seed(seed)
    model = Sequential([Dense(5, activation="relu", input_shape=(features,)), Dense(units, activation="softmax")])
    model.compile(optimizer=compile_args.pop("optimizer", "adam"),
                  loss=compile_args.pop("loss", "sparse_categorical_crossentropy"), **compile_args)
    return model


def blobs(n=24, features=4, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


# -- the state a failed call must keep -----------------------------------------------------------
def model_state(model):
    """Everything a failed call must leave bitwise unchanged: the bytes of every weight (moving
    statistics included), the optimizer's iterations and slot variables from
    ``optimizer.get_state()``, the model, layer, optimizer and loss configurations, the layers'
    extra state (dropout's random stream) and whether the model is built."""
    opt = model.optimizer
    iterations, slots = opt.get_state() if opt is not None else (None, [])
    as_bytes = lambda arrays: [(a.dtype.str, a.shape, a.tobytes()) for a in arrays]  # noqa: E731
    as_json = lambda value: json.dumps(value, sort_keys=True, default=repr)  # noqa: E731
    return {
        "built": model.built,
        "weights": as_bytes(model.weights),
        "iterations": iterations,
        "slots": as_bytes(slots),
        "model_config": as_json(model.get_config()),
        "optimizer": None if opt is None else (type(opt).__name__, as_json(opt.get_config())),
        "loss": None if model.loss is None else (type(model.loss).__name__,
                                                 as_json(model.loss.get_config())),
        "layer_states": as_json([layer.get_state() for layer in model.layers]),
        "trainable": [layer.trainable for layer in model.layers],
    }


NUMERIC_STATE = ("weights", "iterations", "slots", "layer_states")


def numeric_state(model):
    """The part of ``model_state`` that two equally trained models share (not names)."""
    state = model_state(model)
    return {key: state[key] for key in NUMERIC_STATE}


def assert_state_unchanged(model, before, what="a call that raised"):
    after = model_state(model)
    for key in before:
        assert after[key] == before[key], f"{what} changed the model's {key}"


def raises_and_keeps(model, exc, call, *patterns):
    """``call(model)`` raises ``exc`` whose message matches every regex in ``patterns``, and the
    model is bitwise what it was before."""
    before = model_state(model)
    with pytest.raises(exc) as info:
        call(model)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in message: {info.value}"
    assert_state_unchanged(model, before)
    return info.value


# -- arrays --------------------------------------------------------------------------------------
def array_digest(a):
    """Hash of an array's bytes, dtype, shape, strides and flags (to prove it was never modified)."""
    h = hashlib.sha256()
    h.update(repr((a.dtype.str, a.shape, a.strides, a.flags.c_contiguous, a.flags.f_contiguous,
                   a.flags.writeable, a.flags.aligned, a.flags.owndata)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def weights_equal(m1, m2):
    return all(same_bits(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))


class KernelSpy:
    """Records every kernel the model asks the active backend for (to prove that bad input is
    refused "before any kernel runs"). Installed on ``backend.kernels`` and on the losses' own
    lookup."""

    def __init__(self, monkeypatch):
        self.calls = []
        real_kernels, real_loss_kernels = fastnn.backend.kernels, losses._kernels
        spy = self

        class Proxy:
            def __init__(self, module):
                self._module = module

            def __getattr__(self, name):
                spy.calls.append(name)
                return getattr(self._module, name)

        monkeypatch.setattr(fastnn.backend, "kernels", lambda: Proxy(real_kernels()))
        monkeypatch.setattr(losses, "_kernels", lambda: Proxy(real_loss_kernels()))


# -- child interpreters --------------------------------------------------------------------------
def run_python(code, *args, timeout=SUBPROCESS_TIMEOUT):
    """Run ``code`` with ``args`` in a fresh interpreter (the installed fastnn, not the source
    tree); returns the CompletedProcess. A child still running after ``timeout`` s fails the test."""
    env = {**os.environ, "PYTHONPATH": ""}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                              capture_output=True,
                              text=True, env=env, cwd="/", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child process hung (killed after {timeout} s); stderr: {exc.stderr!r}")


def run_child(code, timeout=SUBPROCESS_TIMEOUT):
    """Run ``code`` in a fresh interpreter that imports fastnn from this tree."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
