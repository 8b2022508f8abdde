"""Optimizers with Keras's names, defaults and update rules, in order of increasing complexity.

Each update runs as one in-place kernel per weight array (``sgd_update``, ``adam_update``) on the
active backend; the formulas are in ``fastnn.reference.optim``. Per-weight state (velocity, moments)
is created on the first update and reused, so steady-state training allocates nothing here.

Gradient clipping takes Keras's arguments, at most one of them (as Keras 3 requires):

* ``clipnorm=c``: each gradient g is scaled by c / max(||g||, c), so no gradient is longer than c;
* ``global_clipnorm=c``: all gradients are scaled by c / max(sqrt(sum ||g||^2), c), together;
* ``clipvalue=v``: each gradient element is clipped to [-v, v].

Norms come from the ``sum_squares`` kernel (a fixed-order float64 sum) and the clipped gradients
from ``clip_gradient``, written to buffers the optimizer keeps: the caller's gradients are never
modified.
"""
import math
import numbers

import numpy as np

from . import backend


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _optional_positive(value, name):
    return None if value is None else _positive(value, name)


class Optimizer:
    """Base class: ``apply(params, grads)`` updates each array of ``params`` in place.

    ``clipnorm``, ``clipvalue``, ``global_clipnorm``: gradient clipping, Keras semantics (see the
    module docstring); at most one may be set.
    """

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.clipnorm = _optional_positive(clipnorm, "clipnorm")
        self.clipvalue = _optional_positive(clipvalue, "clipvalue")
        self.global_clipnorm = _optional_positive(global_clipnorm, "global_clipnorm")
        given = [f"{n}={v!r}" for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                           ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set (as in "
                             f"Keras), got {', '.join(given)}")
        self.iterations = 0
        self._slots = None
        self._shapes = None
        self._clipped = None  # buffers for clipped gradients, one per weight, when clipping

    def _make_slots(self, param):
        """Per-weight state arrays (zeros like ``param``), as a tuple."""
        return ()

    def apply(self, params, grads):
        """One update of every weight array in ``params`` by its gradient in ``grads``."""
        shapes = [(p.shape, p.dtype) for p in params]
        if self._slots is None or shapes != self._shapes:
            if self._slots is not None:
                raise ValueError("this optimizer already holds state for weights of shapes "
                                 f"{[s for s, _ in self._shapes]}, got {[s for s, _ in shapes]}; "
                                 "use a new optimizer for a different model")
            self._slots = [self._make_slots(p) for p in params]
            self._shapes = shapes
        kernels = backend.kernels()
        grads = self._clip(kernels, params, grads)
        self.iterations += 1
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(kernels, param, grad, slots)

    def _clip(self, kernels, params, grads):
        """The gradients after Keras's clipping (the same arrays when no clipping is set)."""
        if self.clipnorm is None and self.clipvalue is None and self.global_clipnorm is None:
            return grads
        if self._clipped is None:
            self._clipped = [np.empty_like(p) for p in params]
        if self.clipvalue is not None:
            return [kernels.clip_gradient(g, 1.0, self.clipvalue, out=out)
                    for g, out in zip(grads, self._clipped)]
        if self.clipnorm is not None:
            scales = [_norm_scale(math.sqrt(kernels.sum_squares(g)), self.clipnorm) for g in grads]
        else:
            total = math.sqrt(sum(kernels.sum_squares(g) for g in grads))  # a fixed order: weights'
            # Keras: an infinite or NaN global norm makes every gradient NaN
            scale = _norm_scale(total, self.global_clipnorm) if math.isfinite(total) else math.nan
            scales = [scale] * len(grads)
        return [kernels.clip_gradient(g, scale, math.inf, out=out)
                for g, scale, out in zip(grads, scales, self._clipped)]

    def apply_gradients(self, grads_and_vars):
        """Keras spelling: ``apply_gradients(zip(grads, weights))``."""
        pairs = list(grads_and_vars)
        self.apply([v for _, v in pairs], [g for g, _ in pairs])

    def variables(self):
        """The state arrays, flattened in weight order (empty before the first update)."""
        return [s for slots in (self._slots or []) for s in slots]

    def get_config(self):
        config = {"name": type(self).__name__, "learning_rate": self.learning_rate}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config


def _norm_scale(norm, clip):
    """Keras's factor c / max(norm, c): 1 for a short gradient, c / norm for a long one. A NaN norm
    gives NaN and an infinite one 0, so (as in Keras) inf entries become NaN, never finite."""
    if math.isnan(norm):
        return math.nan
    return clip / max(norm, clip)


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum; Keras defaults lr=0.01, momentum=0.

    v = momentum * v - lr * g;  w += v   (Nesterov: w += momentum * v - lr * g)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.momentum = _fraction(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def _make_slots(self, param):
        return (np.zeros_like(param),) if self.momentum else (None,)

    def _update(self, kernels, param, grad, slots):
        kernels.sgd_update(param, grad, slots[0], self.learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014, arXiv:1412.6980); Keras defaults lr=1e-3, beta_1=0.9,
    beta_2=0.999, epsilon=1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _update(self, kernels, param, grad, slots):
        m, v = slots
        kernels.adam_update(param, grad, m, v, self.learning_rate, self.beta_1, self.beta_2,
                            self.epsilon, self.iterations)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(identifier):
    """An optimizer from a Keras name (``"sgd"``, ``"adam"``, with defaults) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; expected an Optimizer instance or one of "
                     f"{', '.join(_BY_NAME)}")
