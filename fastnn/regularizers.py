"""Weight penalties with Keras's names and definitions: ``L1``, ``L2``, ``L1L2``.

    Dense(64, kernel_regularizer=fastnn.regularizers.L2(1e-4))
    Dense(64, kernel_regularizer="l2")                 # Keras's default coefficient, 0.01

A regularizer adds ``l1 * sum|w| + l2 * sum(w**2)`` to the loss of every training step (the
reported loss includes it, as in Keras) and its gradient ``l1 * sign(w) + 2 * l2 * w`` to the
weight's gradient, in one kernel (``l1_l2_penalty``; formula in ``fastnn.reference.optim``).
Only trainable weights are penalised, as in Keras.
"""
import math
import numbers

from . import backend, tracking


def _coefficient(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


class Regularizer(tracking.Tracked):
    """Base class: ``regularizer(w)`` returns the penalty of weight array ``w`` as a float."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, w):
        return backend.kernels().l1_l2_penalty(w, self.l1, self.l2)

    def penalty_and_grad(self, w, grad):
        """The penalty of ``w``; also adds its gradient into ``grad`` (in place)."""
        return backend.kernels().l1_l2_penalty(w, self.l1, self.l2, grad)

    def get_config(self):
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum|w| + l2 * sum(w**2)``; Keras defaults l1=0.0, l2=0.0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _coefficient(l1, "l1")
        self.l2 = _coefficient(l2, "l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum|w|`` (lasso: drives weights to exactly zero); Keras default l1=0.01."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w**2)`` (ridge, weight decay: shrinks large weights); Keras default l2=0.01."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lowercase aliases

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier):
    """A regularizer from None, an instance, a Keras name (``"l1"``, ``"l2"``, ``"l1_l2"``, with
    Keras's default coefficients) or a config ``{"class_name": "L2", "config": {"l2": 1e-4}}``."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and str(identifier.get("class_name", "")).lower() in _BY_NAME:
        return _BY_NAME[identifier["class_name"].lower()](**identifier.get("config", {}))
    raise ValueError(f"unknown regularizer {identifier!r}; expected None, a fastnn.regularizers "
                     f"instance or one of {', '.join(_BY_NAME)}")


def serialize(regularizer):
    """``{"class_name": ..., "config": ...}`` for a regularizer, None for None."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
