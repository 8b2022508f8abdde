"""Activation functions by Keras name, each a forward/backward pair on the active backend.

``get("relu")`` returns an :class:`Activation`, whose ``forward(x, out)`` and
``backward(dy, x, y, out)`` call the kernels ``act_forward`` / ``act_backward`` (by name:
``relu_forward`` / ``relu_backward``) of whichever backend is active. The formulas live with the kernels in ``fastnn.reference.activations``.
"""
import math
import numbers

from . import backend, tracking

# Keras defaults: LeakyReLU layer negative_slope=0.3, ELU alpha=1.0.
LEAKY_RELU_ALPHA = 0.3
ELU_ALPHA = 1.0

_ALPHA_DEFAULTS = {"leaky_relu": LEAKY_RELU_ALPHA, "elu": ELU_ALPHA}
_ELEMENTWISE = ("linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus")
_ROWWISE = ("softmax", "log_softmax")
NAMES = _ELEMENTWISE + _ROWWISE


class Activation(tracking.Tracked):
    """One activation function: ``name`` plus ``alpha`` for leaky_relu (slope) and elu (scale)."""

    def __init__(self, name, alpha=None):
        if not isinstance(name, str) or name not in NAMES:
            raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(NAMES)}")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, numbers.Real)
                                  or not math.isfinite(alpha)):
            raise ValueError(f"the {name} activation's alpha must be a finite number, got {alpha!r}")
        self.name = name
        self.alpha = _ALPHA_DEFAULTS.get(name) if alpha is None else float(alpha)

    @property
    def has_gradient(self):
        return self.name != "step"

    @property
    def rowwise(self):
        """True for softmax-like functions that normalise over the last axis (need 2-D input)."""
        return self.name in _ROWWISE

    def forward(self, x, out=None):
        return backend.kernels().act_forward(x, self.name, self.alpha or 0.0, out=out)

    def backward(self, dy, x, y, out=None):
        if not self.has_gradient:
            raise ValueError("the 'step' activation has no gradient (its derivative is 0 almost "
                             "everywhere); use it for inference or the perceptron rule, and a "
                             "smooth activation such as 'sigmoid' for training by backpropagation")
        return backend.kernels().act_backward(dy, x, y, self.name, self.alpha or 0.0, out=out)

    def get_config(self):
        return self.name if self.alpha in (None, _ALPHA_DEFAULTS.get(self.name)) else \
            {"name": self.name, "alpha": self.alpha}

    def __repr__(self):
        return f"Activation({self.name!r})"


def get(identifier):
    """An :class:`Activation` from a Keras name (``"relu"``), ``None`` (linear) or an Activation."""
    if identifier is None:
        return Activation("linear")
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, dict):
        if not set(identifier) <= {"name", "alpha"}:
            raise ValueError(f"an activation config has the keys 'name' and 'alpha', got {identifier!r}")
        return Activation(identifier.get("name"), identifier.get("alpha"))
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return Activation(identifier.lower())
    raise ValueError(f"unknown activation {identifier!r}; expected one of {', '.join(NAMES)} or None")
