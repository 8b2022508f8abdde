"""Activation functions by Keras name, each a forward/backward pair on the active backend.

``get("relu")`` returns an :class:`Activation`, whose ``forward(x, out)`` and
``backward(dy, x, y, out)`` call the kernels ``act_forward`` / ``act_backward`` (by name:
``relu_forward`` / ``relu_backward``) of whichever backend is active. The formulas live with the kernels in ``fastnn.reference.activations``.
"""
import math
import numbers

import numpy as np

from . import backend, tracking

# Keras defaults: LeakyReLU layer negative_slope=0.3, ELU alpha=1.0.
LEAKY_RELU_ALPHA = 0.3  # the LeakyReLU layer's default slope (Keras)
LEAKY_RELU_ACTIVATION_ALPHA = 0.2  # activation="leaky_relu" and leaky_relu(x) (Keras)
ELU_ALPHA = 1.0

CELU_ALPHA = 1.0

_ALPHA_DEFAULTS = {"leaky_relu": LEAKY_RELU_ACTIVATION_ALPHA, "elu": ELU_ALPHA, "celu": CELU_ALPHA}
_ELEMENTWISE = ("linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus",
                "gelu", "gelu_tanh", "silu", "mish", "relu6", "hard_sigmoid", "hard_silu", "softsign",
                "exponential", "celu")
# Keras's other names for the same functions.
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
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
    def __name__(self):
        """The name, as on Keras's activation functions (``layer.activation.__name__``)."""
        return self.name

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
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name in NAMES:
            return Activation(name)
    if callable(identifier) and getattr(identifier, "_activation_name", None) is not None:
        return Activation(identifier._activation_name)  # keras.activations.relu and friends
    if callable(identifier):
        raise ValueError(f"activation {identifier!r} is a callable fastnn does not know: fastnn runs "
                         "its activations as native kernels with their derivatives, so pass one of "
                         f"{', '.join(NAMES)} by name or as fastnn.activations.<name>")
    raise ValueError(f"unknown activation {identifier!r}; expected one of {', '.join(NAMES)} "
                     f"(or {', '.join(_ALIASES)}), a fastnn.activations function, or None")


# -- The functions themselves (Keras's keras.activations.relu(x), ...) -------------------------
# Each takes an array-like and returns a new NumPy array, computed on the active backend. Passed as
# ``activation=``, a function stands for its name.

def _apply(name, x, alpha=0.0):
    from . import utils
    x = utils.as_float_array(x, "x")
    if name in _ROWWISE:
        if x.ndim == 0:
            raise ValueError(f"{name} needs at least a 1-D array, got a scalar")
        shape = x.shape
        x2 = np.ascontiguousarray(x.reshape(-1, shape[-1]))
        return backend.kernels().act_forward(x2, name, 0.0).reshape(shape)
    return backend.kernels().act_forward(np.ascontiguousarray(x), name, alpha)


def _named(name):
    def function(x):
        return _apply(name, x)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``{name}(x)`` elementwise (fastnn.reference.activations.{name}_forward)."
    function._activation_name = name
    return function


linear = _named("linear")
sigmoid = _named("sigmoid")
tanh = _named("tanh")
selu = _named("selu")
softplus = _named("softplus")
silu = swish = _named("silu")
mish = _named("mish")
relu6 = _named("relu6")
hard_sigmoid = _named("hard_sigmoid")
hard_silu = hard_swish = _named("hard_silu")
softsign = _named("softsign")
exponential = _named("exponential")


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ``relu``: ``max(x, 0)``, or with the options
    ``(x if x > threshold else 0, clipped to [0, max_value]) - negative_slope * max(threshold - x, 0)``."""
    from . import utils
    if negative_slope == 0 and max_value is None and threshold == 0:
        return _apply("relu", x)
    x = np.ascontiguousarray(utils.as_float_array(x, "x"))
    return backend.kernels().relu_clip_forward(
        x, float(negative_slope), np.inf if max_value is None else float(max_value), float(threshold))


relu._activation_name = "relu"


def leaky_relu(x, negative_slope=0.2):
    """Keras's ``leaky_relu``: ``x if x > 0 else negative_slope * x`` (default slope 0.2)."""
    return _apply("leaky_relu", x, float(negative_slope))


leaky_relu._activation_name = "leaky_relu"


def elu(x, alpha=1.0):
    """``x if x > 0 else alpha * (exp(x) - 1)``."""
    return _apply("elu", x, float(alpha))


elu._activation_name = "elu"


def celu(x, alpha=1.0):
    """``x if x > 0 else alpha * (exp(x / alpha) - 1)``."""
    if not alpha > 0:
        raise ValueError(f"celu alpha must be positive, got {alpha!r}")
    return _apply("celu", x, float(alpha))


celu._activation_name = "celu"


def gelu(x, approximate=False):
    """``x * Phi(x)``; with ``approximate=True`` the tanh approximation."""
    return _apply("gelu_tanh" if approximate else "gelu", x)


gelu._activation_name = "gelu"


def softmax(x, axis=-1):
    """Softmax over the last axis."""
    if axis not in (-1, np.ndim(x) - 1):
        raise ValueError(f"fastnn's softmax works over the last axis (-1), got axis={axis!r}")
    return _apply("softmax", x)


softmax._activation_name = "softmax"


def log_softmax(x, axis=-1):
    """Log of the softmax over the last axis."""
    if axis not in (-1, np.ndim(x) - 1):
        raise ValueError(f"fastnn's log_softmax works over the last axis (-1), got axis={axis!r}")
    return _apply("log_softmax", x)


log_softmax._activation_name = "log_softmax"


def serialize(activation):
    """The name (or name and alpha) of an activation, as a layer's config stores it."""
    return get(activation).get_config()


def deserialize(config):
    """The :class:`Activation` of a :func:`serialize` result."""
    return get(config)
