"""Layers: configuration in ``__init__``, weights in ``build(input_shape)``, then ``forward`` and
``backward`` through the active backend's kernels.

Shapes passed to ``build`` and ``compute_output_shape`` exclude the batch dimension, as Keras's
``input_shape=`` does. Weights are stored in Keras order (Dense: kernel (in, out), then bias (out,)).

``forward`` and ``backward`` write into buffers the layer keeps between calls (no allocation per
training step once shapes repeat); the arrays they return stay valid until the layer's next call.
``layer(x)`` is the public call: it validates, builds if needed and returns a fresh array.
"""
import re
from collections import Counter

import numpy as np

from . import activations as activations_module
from . import backend, initializers

_name_counts = Counter()


def _auto_name(cls_name):
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def _shape_tuple(shape, what):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}")
    return shape


class Layer:
    """Base class of the layer protocol (see the module docstring)."""

    def __init__(self, name=None, input_shape=None, trainable=True):
        self.name = name or _auto_name(type(self).__name__)
        self.input_shape_arg = None if input_shape is None else _shape_tuple(input_shape, "input_shape")
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape = None
        self.dtype = None
        self._weights = []   # (name, array) in Keras order
        self._grads = []     # gradient arrays, same order and shapes
        self._buffers = {}

    # -- construction ---------------------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (without the batch dimension)."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(backend.floatx()) if self.dtype is None else self.dtype
        self.built = True

    def compute_output_shape(self, input_shape):
        """Output shape (without batch dimension) for inputs of ``input_shape``; raises ValueError
        naming the layer when the inputs do not fit it."""
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer):
        value = initializers.get(initializer)(shape, self.dtype)
        self._weights.append((name, value))
        self._grads.append(np.zeros_like(value))
        return value

    # -- computation ----------------------------------------------------------------------------
    def forward(self, x, training=False, logits=False):
        """Output for a batch ``x``. With ``logits=True`` a layer ending in an activation returns
        the pre-activation values instead (the fused loss path)."""
        raise NotImplementedError

    def backward(self, dy, need_dx=True, logits=False):
        """Given dL/d(output) of the last forward call, store weight gradients in ``grads`` (overwriting)
        and return dL/d(input), or None when ``need_dx`` is False."""
        raise NotImplementedError

    def _buffer(self, key, shape, dtype):
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def __call__(self, x, training=False):
        from .utils import as_float_array
        x = as_float_array(x, "x", self.dtype)
        if x.ndim < 2:
            raise ValueError(f"{self.name} expects a batch of inputs (at least 2-D), got shape {x.shape}")
        if not self.built:
            self.compute_output_shape(x.shape[1:])
            self.build(x.shape[1:])
            x = as_float_array(x, "x", self.dtype)
        elif x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.name} expects inputs of shape (None, "
                             f"{', '.join(map(str, self.input_shape))}), got array of shape {x.shape}")
        return np.array(self.forward(x, training=training), copy=True)

    # -- weights --------------------------------------------------------------------------------
    @property
    def weights(self):
        return [w for _, w in self._weights]

    @property
    def trainable_weights(self):
        return self.weights if self.trainable else []

    @property
    def grads(self):
        return self._grads

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"{self.name} has {len(self._weights)} weight arrays, got {len(weights)}")
        arrays = []
        for (name, current), new in zip(self._weights, weights):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"{self.name}: weight '{name}' has shape {current.shape}, got {new.shape}")
            if new.dtype.kind not in "fiu":
                raise TypeError(f"{self.name}: weight '{name}' must be numeric, got dtype {new.dtype}")
            arrays.append(new)
        for (_, current), new in zip(self._weights, arrays):
            current[...] = new

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape_arg is not None:
            config["input_shape"] = list(self.input_shape_arg)
        return config

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class InputLayer(Layer):
    """Declares the input shape of a Sequential model; computes nothing."""

    def __init__(self, shape, name=None):
        super().__init__(name=name, input_shape=shape)

    def forward(self, x, training=False, logits=False):
        return x

    def backward(self, dy, need_dx=True, logits=False):
        return dy if need_dx else None


def Input(shape, name=None):
    """``Input(shape=(784,))`` as the first entry of a Sequential model fixes its input shape."""
    return InputLayer(shape, name=name)


class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    Defaults follow Keras: glorot_uniform kernel, zero bias, no activation.
    Shapes: x (N, in) -> y (N, units); kernel (in, units); bias (units,).
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_dim=None, input_shape=None, name=None, trainable=True):
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = activations_module.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self.name} (Dense) expects inputs of shape (batch, features), got input "
                             f"shape (None, {', '.join(map(str, input_shape))}); add a Flatten layer first")
        return (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[0], self.units), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None

    def forward(self, x, training=False, logits=False):
        n = x.shape[0]
        z = backend.kernels().dense_forward(x, self.kernel, self.bias,
                                            out=self._buffer("z", (n, self.units), x.dtype))
        self._x, self._z = x, z
        if logits or self.activation.name == "linear":
            self._y = z
            return z
        self._y = self.activation.forward(z, out=self._buffer("y", z.shape, z.dtype))
        return self._y

    def backward(self, dy, need_dx=True, logits=False):
        dz = dy
        if not (logits or self.activation.name == "linear"):
            dz = self.activation.backward(dy, self._z, self._y, out=self._buffer("dz", dy.shape, dy.dtype))
        x = self._x
        dx_buf = self._buffer("dx", x.shape, x.dtype) if need_dx else None
        dx, _, _ = backend.kernels().dense_backward(
            dz, x, self.kernel, dx=dx_buf, dw=self._grads[0],
            db=self._grads[1] if self.use_bias else None, need_dx=need_dx, need_db=self.use_bias)
        return dx

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": self.activation.get_config(), "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer)}


class Activation(Layer):
    """Applies an activation function by name: ``Activation("relu")``."""

    def __init__(self, activation, name=None, input_shape=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.activation = activations_module.get(activation)

    def compute_output_shape(self, input_shape):
        if self.activation.rowwise and len(input_shape) != 1:
            raise ValueError(f"{self.name} ({self.activation.name}) expects inputs of shape (batch, "
                             f"features), got input shape (None, {', '.join(map(str, input_shape))})")
        return tuple(input_shape)

    def forward(self, x, training=False, logits=False):
        self._x = x
        if logits:
            self._y = x
            return x
        self._y = self.activation.forward(x, out=self._buffer("y", x.shape, x.dtype))
        return self._y

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        if logits:
            return dy
        return self.activation.backward(dy, self._x, self._y, out=self._buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.get_config()}


class ReLU(Activation):
    """``max(x, 0)``; with ``negative_slope`` > 0 it is a leaky ReLU (Keras ReLU layer)."""

    def __init__(self, negative_slope=0.0, name=None, input_shape=None, **kwargs):
        slope = float(negative_slope)
        if slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope!r}")
        act = "relu" if slope == 0 else activations_module.Activation("leaky_relu", slope)
        super().__init__(act, name=name, input_shape=input_shape, **kwargs)
        self.negative_slope = slope

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "negative_slope": self.negative_slope}


class LeakyReLU(Activation):
    """``x if x > 0 else negative_slope * x``; Keras default slope 0.3 (``alpha`` is the old name)."""

    def __init__(self, negative_slope=activations_module.LEAKY_RELU_ALPHA, alpha=None, name=None,
                 input_shape=None, **kwargs):
        slope = float(negative_slope if alpha is None else alpha)
        super().__init__(activations_module.Activation("leaky_relu", slope), name=name,
                         input_shape=input_shape, **kwargs)
        self.negative_slope = slope

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "negative_slope": self.negative_slope}


class Softmax(Activation):
    """Softmax over the last axis (rows sum to one)."""

    def __init__(self, axis=-1, name=None, input_shape=None, **kwargs):
        if axis not in (-1, 1):
            raise ValueError(f"Softmax supports axis=-1 (the feature axis of a 2-D batch), got {axis!r}")
        super().__init__("softmax", name=name, input_shape=input_shape, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "axis": -1}


class Flatten(Layer):
    """Reshapes each sample to one dimension: (N, 28, 28) -> (N, 784). A view, no copy."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False, logits=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True, logits=False):
        return dy.reshape(self._shape) if need_dx else None


def get(config):
    """A layer from ``{"class_name": ..., "config": {...}}`` as produced by ``Sequential.get_config``."""
    classes = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, ReLU, LeakyReLU, Softmax, Flatten)}
    cls = classes.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown layer type {config.get('class_name')!r}; expected one of {', '.join(classes)}")
    kwargs = dict(config.get("config", {}))
    if cls is InputLayer:
        kwargs["shape"] = kwargs.pop("input_shape")
    kwargs.pop("trainable", None)
    return cls(**kwargs)
