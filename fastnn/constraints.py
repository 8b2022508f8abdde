"""Weight constraints (Keras's ``keras.constraints``): after each optimizer update, a layer's
``kernel_constraint`` / ``bias_constraint`` projects the weight back into its allowed set.

    Dense(64, kernel_constraint=fastnn.constraints.MaxNorm(3))

Formulas are Keras's, with its fuzz factor ``EPSILON = 1e-7`` in the divisions; norms are taken
over ``axis`` (0 for a Dense kernel: the incoming weights of each unit) in float64. A constraint
runs on the weight arrays in place, after the (recorded or eager) training step.
"""
import numpy as np

from . import tracking

EPSILON = 1e-7


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w, dtype=np.float64), axis=axis, keepdims=True))


def _number(value, name, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) for a in axis)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer or a tuple of integers, got {axis!r}")
    return int(axis)


class Constraint(tracking.Tracked):
    """Base class: ``constraint(w)`` returns the projected weight (a new array)."""

    def __call__(self, w):
        return np.asarray(w)

    def apply_(self, w):
        """Project the array ``w`` in place."""
        w[...] = self(w)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """Each slice along ``axis`` has norm at most ``max_value``: ``w * clip(n, 0, max) / (eps + n)``
    (Srebro & Shraibman 2005; Srivastava et al. 2014 use it with dropout). Keras defaults
    ``max_value=2``, ``axis=0``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "MaxNorm max_value")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        return (w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))).astype(w.dtype)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative entries become 0."""

    def __call__(self, w):
        w = np.asarray(w)
        return (w * (w >= 0)).astype(w.dtype)


class UnitNorm(Constraint):
    """Each slice along ``axis`` scaled to norm 1: ``w / (eps + n)``."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        return (w / (EPSILON + _norms(w, self.axis))).astype(w.dtype)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Norms moved into [min_value, max_value] at ``rate``:
    ``desired = rate * clip(n, min, max) + (1 - rate) * n``; ``w * desired / (eps + n)``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "MinMaxNorm min_value")
        self.max_value = _number(max_value, "MinMaxNorm max_value")
        if self.max_value < self.min_value:
            raise ValueError(f"MinMaxNorm needs min_value <= max_value, got {min_value!r} > {max_value!r}")
        self.rate = _number(rate, "MinMaxNorm rate")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (EPSILON + norms))).astype(w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras's aliases
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_BY_NAME = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm,
            "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def serialize(constraint):
    """``{"class_name": ..., "config": ...}`` or None."""
    if constraint is None:
        return None
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def deserialize(config):
    return get(config)


def get(identifier):
    """A constraint from None, an instance, a Keras name (``"max_norm"``) or a serialize dict."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"unknown constraint {identifier!r}; expected None, a fastnn.constraints "
                     f"instance or one of {', '.join(_BY_NAME)}")
