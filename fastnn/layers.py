"""Layers: configuration in ``__init__``, weights in ``build(input_shape)``, then ``forward`` and
``backward`` through the active backend's kernels.

Shapes passed to ``build`` and ``compute_output_shape`` exclude the batch dimension, as Keras's
``input_shape=`` does. Weights are stored in Keras order (Dense: kernel (in, out), then bias (out,);
BatchNormalization: gamma, beta, moving_mean, moving_variance). A weight is trainable (the optimizer
updates it from its gradient) or not (BatchNormalization's moving statistics, updated by the layer
itself); ``grads`` lines up with ``trainable_weights``.

``training`` selects the mode: ``fit``/``train_on_batch`` run layers with ``training=True``,
``predict``/``evaluate`` with ``training=False``. Only BatchNormalization (batch vs moving
statistics) and Dropout (random mask vs identity) behave differently.

``forward`` and ``backward`` write into buffers the layer keeps between calls (no allocation per
training step once shapes repeat); the arrays they return stay valid until the layer's next call.
``layer(x)`` is the public call: it validates, builds if needed and returns a fresh array.
"""
import contextlib
import math
import numbers
import re
import threading
from collections import Counter

import numpy as np

from . import activations as activations_module
from . import backend, constraints, initializers, program, regularizers, tracking, utils

_name_counts = Counter()
_REGISTRY = {}


_weight_budget = threading.local()


@contextlib.contextmanager
def weight_budget(values):
    """Within the block, layers built on this thread may create at most ``values`` weight values
    in all (ValueError naming the weight otherwise, before it is allocated): ``load_model``
    rebuilds a model within the weight values its file holds, so a crafted configuration cannot
    make it allocate more than a small multiple of the file's size."""
    previous = getattr(_weight_budget, "bytes", None)
    _weight_budget.bytes = int(values)
    try:
        yield
    finally:
        _weight_budget.bytes = previous


def register(cls):
    """Class decorator: makes a layer class known by name to ``get`` (model files, configs)."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _auto_name(cls_name):
    # Keras's snake case: "BatchNormalization" -> batch_normalization, "PReLU" -> p_re_lu
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls_name)).lower()
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


class Layer(tracking.Tracked):
    """Base class of the layer protocol (see the module docstring).

    What forward saves for backward (``_x``, ``_y``, ``_z``, ``_mask``, ``_mean``, ``_rstd``...) is
    run-time state; every other attribute is configuration, and changing it makes the next
    native step record the model again (``fastnn.tracking``)."""
    _RUNTIME = frozenset({"_x", "_y", "_z", "_mask", "_mean", "_rstd", "_training", "_dropped",
                          "_shape", "_noisy", "_activity_loss"})
    # The layer's ``activation`` (when it has one) is the last thing applied to its output, so
    # that ``forward(logits=True)`` can stop before it and a matching loss can train through the
    # logits. False for a layer whose activation works inside it (a recurrent cell's).
    _activation_is_output = True

    def __init__(self, name=None, input_shape=None, trainable=True):
        self.name = name or _auto_name(type(self).__name__)
        self.input_shape_arg = None if input_shape is None else _shape_tuple(input_shape, "input_shape")
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape = None
        self.dtype = None
        self._weights = []      # (name, array, trainable) in Keras order
        self._grads = []        # one gradient array per trainable weight, same order and shapes
        self._regularized = []  # (weight, its gradient, regularizer)
        self._buffers = {}

    @property
    def min_training_batch(self):
        """Fewest samples a training-mode call accepts (BatchNormalization needs two)."""
        return 1

    # -- construction ---------------------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (without the batch dimension)."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(backend.floatx()) if self.dtype is None else self.dtype
        self.built = True

    def _unbuild(self):
        """Undo a build that raised: no weights, not built (the next build starts afresh)."""
        for name, _, _ in self._weights:
            self.__dict__.pop(name, None)
        self._weights, self._grads, self._regularized, self._buffers = [], [], [], {}
        self.input_shape = None
        self.built = False

    def compute_output_shape(self, input_shape):
        """Output shape (without batch dimension) for inputs of ``input_shape``; raises ValueError
        naming the layer when the inputs do not fit it."""
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer, trainable=True, regularizer=None, constraint=None):
        """Create a weight; a trainable one also gets a gradient array (and its regularizer, and
        its constraint, applied after each optimizer update)."""
        budget = getattr(_weight_budget, "bytes", None)
        if budget is not None:  # loading a file: its weights bound what building may allocate
            need = math.prod(int(d) for d in shape)
            if need > budget:
                raise ValueError(f"{self.name}'s weight {name!r} of shape {tuple(shape)} has {need} "
                                 f"values, but the file holds only {budget} more weight values")
            _weight_budget.bytes = budget - need
        value = initializers.get(initializer)(shape, self.dtype)
        if constraint is not None and trainable:
            self.__dict__.setdefault("_constraints", []).append((value, constraint))
        self._weights.append((name, value, bool(trainable)))
        if trainable:
            self._grads.append(np.zeros_like(value))
            if regularizer is not None:
                self._regularized.append((value, self._grads[-1], regularizer))
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

    def release(self):
        """Drop references to the last call's arrays (the input may be the caller's own array):
        ``backward`` is valid only between ``forward`` and this. Sequential releases every layer
        when a public call returns, so a model never keeps its caller's arrays alive."""
        for name in self._RUNTIME:  # also the handles a recording left behind
            if name in self.__dict__:
                object.__setattr__(self, name, None)
        program.trim_buffers(self.__dict__.get("_buffers"))  # a huge batch's scratch is not kept

    def regularization_loss(self, add_grads=False):
        """Sum of the penalties of this layer's regularized trainable weights (0.0 when frozen).
        With ``add_grads`` the penalties' gradients are added into ``grads`` (after ``backward``)."""
        activity = self.__dict__.get("_activity_loss")  # set by a training forward pass
        if not self.trainable:
            return 0.0 if activity is None else activity
        total = 0.0 if activity is None else activity
        for weight, grad, regularizer in self._regularized:
            total += regularizer.penalty_and_grad(weight, grad) if add_grads else regularizer(weight)
        return total

    def check_training_batch(self, n):
        """Raise ValueError when a training-mode call on ``n`` samples cannot be computed."""
        if n < self.min_training_batch:
            raise ValueError(f"{self.name} ({type(self).__name__}) needs at least "
                             f"{self.min_training_batch} samples per training batch (the batch "
                             f"statistics of one sample are undefined), got a batch of {n}")

    def apply_constraints(self):
        """Project each constrained weight (``kernel_constraint=``...) after an optimizer update."""
        if self.trainable:
            for weight, constraint in self.__dict__.get("_constraints", ()):
                constraint.apply_(weight)

    def _activity_forward(self, y, training):
        """With an ``activity_regularizer``, in training: its penalty on the output ``y``, kept for
        ``regularization_loss`` (Keras adds it to the training loss)."""
        reg = self.__dict__.get("activity_regularizer")
        if reg is not None:
            self._activity_loss = reg(y) if training else None

    def _activity_backward(self, y, dy):
        """With an ``activity_regularizer``: add its gradient at the output ``y`` into ``dy`` (in
        place)."""
        reg = self.__dict__.get("activity_regularizer")
        if reg is not None:
            reg.penalty_and_grad(y, dy)

    def _buffer(self, key, shape, dtype):
        """The layer's scratch buffer ``key``, reused between calls (see ``fastnn.program.buffer``)."""
        node = self.__dict__.get("_node_index")  # a shared layer's later calls in a graph
        return program.buffer(self, self._buffers, key if not node else (node, key), shape, dtype)

    def __call__(self, x, training=False):
        from . import functional
        if functional.is_symbolic(x):  # keras.Input(...) tensors: a node of a functional graph
            return functional.call_layer(self, x)
        given = x
        x = utils.as_float_array(x, "x", self.dtype)
        if x.ndim < 2:
            raise ValueError(f"{self.name} expects a batch of inputs (at least 2-D), got shape {x.shape}")
        if not self.built:
            self.compute_output_shape(x.shape[1:])
        elif x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.name} expects inputs of shape (None, "
                             f"{', '.join(map(str, self.input_shape))}), got array of shape {x.shape}")
        training = bool(training)
        if training:
            self.check_training_batch(len(x))
        if not self.built:
            try:
                self.build(x.shape[1:])
            except BaseException:
                self._unbuild()
                raise
            x = utils.as_float_array(x, "x", self.dtype)
        if x is given or (isinstance(given, np.ndarray) and np.shares_memory(x, given)):
            x = x.copy()  # what forward keeps for backward is the layer's own copy, never the caller's array
        return np.array(self.forward(x, training=training), copy=True)

    # -- weights --------------------------------------------------------------------------------
    @property
    def weights(self):
        """All weight arrays in Keras order (trainable and not)."""
        return [w for _, w, _ in self._weights]

    @property
    def weight_names(self):
        """The name of each array of ``weights``, in the same order (Dense: ``["kernel", "bias"]``;
        the names ``add_weight`` was given, as Keras's ``weight.name``)."""
        return [name for name, _, _ in self._weights]

    @property
    def trainable_weights(self):
        """The weights the optimizer updates (none when the layer is frozen); ``grads`` lines up."""
        return [w for _, w, t in self._weights if t] if self.trainable else []

    @property
    def non_trainable_weights(self):
        """Weights the optimizer never touches: moving statistics, or all weights of a frozen layer."""
        return [w for _, w, t in self._weights if not (t and self.trainable)]

    @property
    def losses(self):
        """Keras's ``layer.losses``: the current penalty of each regularized trainable weight (none
        when the layer is frozen), then the activity penalty of the last training pass, as floats."""
        out = [float(r(w)) for w, _, r in self._regularized] if self.trainable else []
        activity = self.__dict__.get("_activity_loss")
        return out if activity is None else out + [float(activity)]

    @property
    def grads(self):
        """One gradient array per trainable weight (whether or not the layer is frozen)."""
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
        for (name, current, _), new in zip(self._weights, weights):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"{self.name}: weight '{name}' has shape {current.shape}, got {new.shape}")
            if new.dtype.kind not in "fiu":
                raise TypeError(f"{self.name}: weight '{name}' must be numeric, got dtype {new.dtype}")
            utils.check_fits_dtype(new, f"{self.name}: weight '{name}'", current.dtype)
            arrays.append(new)
        for (_, current, _), new in zip(self._weights, arrays):
            current[...] = new

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape_arg is not None:
            config["input_shape"] = list(self.input_shape_arg)
        return config

    def get_state(self):
        """State that is neither configuration nor weights but decides future training steps (a
        random stream's position), as JSON values; saved with the model. Most layers have none."""
        return {}

    def set_state(self, state):
        """Restore what :meth:`get_state` returned (on a built layer)."""
        if state:
            raise ValueError(f"{self.name} ({type(self).__name__}) keeps no state, got {state!r}")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"

    # -- pickling -------------------------------------------------------------------------------
    def __getstate__(self):
        """Configuration, weights and state; without the scratch buffers (rebuilt on the next call)
        or the arrays a forward pass left behind for backward, which live in them."""
        state = dict(self.__dict__)
        state.pop("_model", None)  # the model that holds it sets it again
        scratch = {id(b) for b in state.pop("_buffers", {}).values()}
        for key, value in list(state.items()):
            if isinstance(value, np.ndarray) and (id(value) in scratch or id(value.base) in scratch):
                del state[key]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._buffers = {}


@register
class InputLayer(Layer):
    """Declares the input shape of a Sequential model; computes nothing."""

    def __init__(self, shape=None, name=None, input_shape=None, batch_size=None):
        if (shape is None) == (input_shape is None):
            raise ValueError("InputLayer needs exactly one of shape=... (Keras 3) or input_shape=..., "
                             f"got shape={shape!r}, input_shape={input_shape!r}")
        super().__init__(name=name, input_shape=shape if input_shape is None else input_shape)

    def forward(self, x, training=False, logits=False):
        return x

    def backward(self, dy, need_dx=True, logits=False):
        return dy if need_dx else None


def Input(shape=None, name=None, dtype=None, batch_size=None, **kwargs):
    """``Input(shape=(784,))``: a symbolic tensor, the input of a functional model
    (``fastnn.functional``), or the first entry of a Sequential model, which fixes its input shape;
    ``batch_size`` is accepted as in Keras and ignored (every batch size runs)."""
    from . import functional
    return functional.Input(shape=shape, name=name, dtype=dtype, batch_size=batch_size, **kwargs)


@register
class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    Defaults follow Keras: glorot_uniform kernel, zero bias, no activation, no regularizer.
    ``kernel_regularizer`` / ``bias_regularizer`` (``fastnn.regularizers``) add a weight penalty to
    the loss and its gradient to the weight's gradient.
    Shapes: x (N, in) -> y (N, units); kernel (in, units); bias (units,). On sequences
    (N, T, in) -> (N, T, units): the same weights at every step, as Keras applies Dense to the last
    axis.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_dim=None, input_shape=None, name=None, trainable=True, kernel_constraint=None,
                 bias_constraint=None, activity_regularizer=None):
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.activity_regularizer = regularizers.get(activity_regularizer)

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        self._activation = activations_module.get(value)

    def compute_output_shape(self, input_shape):
        if len(input_shape) > 2:
            raise ValueError(f"{self.name} (Dense) expects inputs of shape (batch, features) or (batch, "
                             f"timesteps, features), got input shape (None, "
                             f"{', '.join(map(str, input_shape))}); add a Flatten layer first")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def forward(self, x, training=False, logits=False):
        self._shape = x.shape
        if x.ndim > 2:  # (N, T, F): the same weights at every step, as rows of one product
            y = self.forward(x.reshape(-1, x.shape[-1]), training, logits)
            self._shape = x.shape
            return y.reshape(tuple(x.shape[:-1]) + (self.units,))
        k, act = backend.kernels(), self.activation
        z = self._buffer("z", (x.shape[0], self.units), x.dtype)
        self._x, self._z = x, z
        if logits or act.name == "linear":
            self._y = k.dense_forward(x, self.kernel, self.bias, out=z)
        elif act.rowwise:
            k.dense_forward(x, self.kernel, self.bias, out=z)
            self._y = act.forward(z, out=self._buffer("y", z.shape, z.dtype))
        else:  # the activation fused into the product's epilogue
            self._y = k.dense_act_forward(x, self.kernel, self.bias, act.name, act.alpha or 0.0, z=z,
                                          out=self._buffer("y", z.shape, z.dtype))
        self._activity_forward(self._y, training)
        return self._y

    def backward(self, dy, need_dx=True, logits=False):
        if len(self._shape) > 2:
            dx = self._backward(dy.reshape(-1, self.units), need_dx, logits)
            return None if dx is None else dx.reshape(self._shape)
        return self._backward(dy, need_dx, logits)

    def _backward(self, dy, need_dx, logits):
        self._activity_backward(self._y, dy)
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
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                **_optional_config(self)}


@register
class Activation(Layer):
    """Applies an activation function by name: ``Activation("relu")``."""

    def __init__(self, activation, name=None, input_shape=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.activation = activation

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        self._activation = activations_module.get(value)

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


@register
class ReLU(Activation):
    """Keras's ReLU layer: ``max(x, 0)``; with ``negative_slope`` > 0 a leaky ReLU; with
    ``max_value`` clipped above; with ``threshold`` zero (or sloped) below the threshold:
    ``y = (x if x > threshold else 0, clipped to [0, max_value]) - negative_slope * max(threshold - x, 0)``
    (``fastnn.reference.relu_clip_forward``)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, name=None, input_shape=None,
                 **kwargs):
        if (isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real)
                or not 0 <= negative_slope < math.inf):
            raise ValueError(f"negative_slope must be a finite number >= 0, got {negative_slope!r}")
        slope = float(negative_slope)
        if max_value is not None and not (isinstance(max_value, (int, float, np.integer, np.floating))
                                          and not isinstance(max_value, bool) and max_value >= 0):
            raise ValueError(f"max_value must be None or a non-negative number, got {max_value!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        super().__init__("relu", name=name, input_shape=input_shape, **kwargs)
        self.negative_slope = slope
        self.max_value = None if max_value is None else float(max_value)
        self.threshold = float(threshold)

    def _clipped(self):
        return self.__dict__.get("max_value") is not None or self.__dict__.get("threshold", 0.0) != 0

    def _clip_args(self):
        return (self.negative_slope, np.inf if self.max_value is None else self.max_value,
                self.threshold)

    def forward(self, x, training=False, logits=False):
        if not self._clipped():
            return super().forward(x, training, logits)
        self._x = x
        self._y = backend.kernels().relu_clip_forward(x, *self._clip_args(),
                                                      out=self._buffer("y", x.shape, x.dtype))
        return self._y

    def backward(self, dy, need_dx=True, logits=False):
        if not self._clipped():
            return super().backward(dy, need_dx, logits)
        if not need_dx:
            return None
        return backend.kernels().relu_clip_backward(dy, self._x, *self._clip_args(),
                                                    out=self._buffer("dx", dy.shape, dy.dtype))

    @property
    def negative_slope(self):
        return self.activation.alpha or 0.0

    @negative_slope.setter
    def negative_slope(self, value):
        slope = float(value)
        self.activation = "relu" if slope == 0 else activations_module.Activation("leaky_relu", slope)

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register
class LeakyReLU(Activation):
    """``x if x > 0 else negative_slope * x``; Keras default slope 0.3 (``alpha`` is the old name)."""

    def __init__(self, negative_slope=activations_module.LEAKY_RELU_ALPHA, alpha=None, name=None,
                 input_shape=None, **kwargs):
        slope = float(negative_slope if alpha is None else alpha)
        super().__init__(activations_module.Activation("leaky_relu", slope), name=name,
                         input_shape=input_shape, **kwargs)

    @property
    def negative_slope(self):
        return self.activation.alpha

    @negative_slope.setter
    def negative_slope(self, value):
        self.activation = activations_module.Activation("leaky_relu", float(value))

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "negative_slope": self.negative_slope}


@register
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


def _last_axis(axis, input_shape, layer):
    """Check that ``axis`` names the last axis of inputs ``(None,) + input_shape``."""
    last = len(input_shape)  # index of the last axis counting the batch axis
    if axis not in (-1, last):
        raise ValueError(f"{layer.name} ({type(layer).__name__}) normalizes the last (feature) axis: "
                         f"axis must be -1 or {last} for inputs of shape (None, "
                         f"{', '.join(map(str, input_shape))}), got axis={axis!r}")


def _check_axis_arg(axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer (fastnn normalizes the last axis, -1), got {axis!r}")
    return int(axis)


def _positive_float(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return float(value)


@register
class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015, arXiv:1502.03167) with Keras's semantics.

    Training (``fit``, ``train_on_batch``, ``training=True``): each feature is normalized with the
    mean and biased variance of the batch, ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``,
    and the moving statistics are updated: ``moving = momentum * moving + (1 - momentum) * batch``.
    Inference (``predict``, ``evaluate``): the moving statistics replace the batch's.
    A frozen layer (``trainable=False``) always runs in inference mode, as in Keras.

    Defaults are Keras's: axis=-1, momentum=0.99, epsilon=1e-3, center=True (beta), scale=True
    (gamma); gamma starts at ones, beta and the moving mean at zeros, the moving variance at ones.
    Weights, in Keras order: gamma, beta (trainable), moving_mean, moving_variance (non-trainable).
    Shapes: x (N, ..., C) -> y of the same shape; statistics over every axis but the last.

    A training batch needs at least two samples. ``fit`` merges a last batch of one sample into the
    batch before it; ``train_on_batch`` and ``layer(x, training=True)`` raise ValueError.
    Formulas and numerics: ``fastnn.reference.norm``.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 name=None, input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.axis = _check_axis_arg(axis)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.epsilon = _positive_float(epsilon, "BatchNormalization epsilon")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    @property
    def min_training_batch(self):
        return 2 if self.trainable else 1

    def compute_output_shape(self, input_shape):
        _last_axis(self.axis, input_shape, self)
        return tuple(input_shape)

    def build(self, input_shape):
        super().build(input_shape)
        c = (input_shape[-1],)
        self.gamma = self.add_weight("gamma", c, self.gamma_initializer) if self.scale else None
        self.beta = self.add_weight("beta", c, self.beta_initializer) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", c, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c, self.moving_variance_initializer,
                                               trainable=False)

    def forward(self, x, training=False, logits=False):
        x2 = x.reshape(-1, x.shape[-1])
        k = backend.kernels()
        out = self._buffer("y", x2.shape, x.dtype)
        self._x, self._training = x2, bool(training and self.trainable)
        if self._training:
            c = (x2.shape[1],)
            y, self._mean, self._rstd = k.batchnorm_forward(
                x2, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.momentum,
                self.epsilon, out=out, mean=self._buffer("mean", c, x.dtype),
                rstd=self._buffer("rstd", c, x.dtype))
        else:
            y = k.batchnorm_inference(x2, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                      self.epsilon, out=out)
        return y.reshape(x.shape)

    def backward(self, dy, need_dx=True, logits=False):
        dy2 = dy.reshape(self._x.shape)
        dx_buf = self._buffer("dx", self._x.shape, dy.dtype) if need_dx else None
        grads = iter(self._grads)
        dgamma = next(grads) if self.scale else None
        dbeta = next(grads) if self.center else None
        if self._training:
            dx, _, _ = backend.kernels().batchnorm_backward(
                dy2, self._x, self.gamma, self._mean, self._rstd, dx=dx_buf, dgamma=dgamma,
                dbeta=dbeta, need_dx=need_dx, need_dgamma=self.scale, need_dbeta=self.center)
        else:
            dx = self._inference_backward(dy2, dx_buf, dgamma, dbeta)
        return None if dx is None else dx.reshape(dy.shape)

    def _inference_backward(self, dy, dx, dgamma, dbeta):
        """Backward of the inference-mode transform, a fixed per-feature affine map (a frozen layer
        during fit): dx = dy * gamma * rstd, with rstd from the moving variance."""
        if not self.trainable:  # a frozen layer inside fit: one kernel
            if dx is None:
                return None
            return backend.kernels().batchnorm_frozen_backward(
                dy, self.gamma, self.moving_variance, self.epsilon, out=dx,
                scale=self._buffer("scale", self.moving_variance.shape, dy.dtype))
        rstd = (1.0 / np.sqrt(self.moving_variance.astype(np.float64) + self.epsilon)).astype(dy.dtype)
        if self.trainable:  # only reachable through the layer protocol, never from fit
            xhat = (self._x - self.moving_mean) * rstd
            if dgamma is not None:
                dgamma[...] = (dy.astype(np.float64) * xhat).sum(axis=0)
            if dbeta is not None:
                dbeta[...] = dy.sum(axis=0, dtype=np.float64)
        if dx is None:
            return None
        return np.multiply(dy, rstd if self.gamma is None else self.gamma * rstd, out=dx)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}


@register
class LayerNormalization(Layer):
    """Layer normalization (Ba, Kiros & Hinton 2016, arXiv:1607.06450) with Keras's semantics.

    Each sample is normalized over its features, ``y = gamma * (x - mean) / sqrt(var + epsilon)
    + beta`` with the mean and biased variance of that sample alone, so training and inference
    compute the same thing and any batch size works.

    Defaults are Keras's: axis=-1, epsilon=1e-3, center=True, scale=True; gamma starts at ones and
    beta at zeros. Weights, in Keras order: gamma, beta.
    Shapes: x (N, ..., C) -> y of the same shape; statistics over the last axis.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", name=None, input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.axis = _check_axis_arg(axis)
        self.epsilon = _positive_float(epsilon, "LayerNormalization epsilon")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)

    def compute_output_shape(self, input_shape):
        _last_axis(self.axis, input_shape, self)
        return tuple(input_shape)

    def build(self, input_shape):
        super().build(input_shape)
        c = (input_shape[-1],)
        self.gamma = self.add_weight("gamma", c, self.gamma_initializer) if self.scale else None
        self.beta = self.add_weight("beta", c, self.beta_initializer) if self.center else None

    def forward(self, x, training=False, logits=False):
        x2 = x.reshape(-1, x.shape[-1])
        rows = (x2.shape[0],)
        y, self._mean, self._rstd = backend.kernels().layernorm_forward(
            x2, self.gamma, self.beta, self.epsilon, out=self._buffer("y", x2.shape, x.dtype),
            mean=self._buffer("mean", rows, x.dtype), rstd=self._buffer("rstd", rows, x.dtype))
        self._x = x2
        return y.reshape(x.shape)

    def backward(self, dy, need_dx=True, logits=False):
        grads = iter(self._grads)
        dgamma = next(grads) if self.scale else None
        dbeta = next(grads) if self.center else None
        dx, _, _ = backend.kernels().layernorm_backward(
            dy.reshape(self._x.shape), self._x, self.gamma, self._mean, self._rstd,
            dx=self._buffer("dx", self._x.shape, dy.dtype) if need_dx else None, dgamma=dgamma,
            dbeta=dbeta, need_dx=need_dx, need_dgamma=self.scale, need_dbeta=self.center)
        return None if dx is None else dx.reshape(dy.shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer)}


SEED_LIMIT = 2 ** 64  # seeds are 64-bit unsigned integers (the counter-based generator's key)


class RandomLayer(Layer):
    """A layer that draws random numbers in training from a counter-based generator
    (``fastnn.reference.dropout``): with the same ``seed`` the same calls draw the same numbers, on
    any number of threads and on either backend. Without a seed, one is drawn from fastnn's
    generator when the layer is built (so ``fastnn.utils.set_random_seed`` makes runs
    repeatable). Each training call advances a step counter, giving new numbers every step.

    The generator's state is one uint64 array ``[key, step]``, which the kernels advance in place
    (``dropout_step``, ``normal_noise_step``) and which travels with a saved model."""

    def __init__(self, seed=None, name=None, input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < SEED_LIMIT):
            raise ValueError(f"{type(self).__name__} seed must be None or an integer in [0, 2**64), "
                             f"got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._stream = np.zeros(2, dtype=np.uint64)

    @property
    def step(self):
        """Training calls so far: the counter of the generator."""
        return int(self._stream[1])

    @step.setter
    def step(self, value):
        self._stream[1] = value

    @property
    def _key(self):
        return int(self._stream[0]) if self.built else None

    def build(self, input_shape):
        super().build(input_shape)
        self._stream[0] = self.seed if self.seed is not None else utils.rng().integers(SEED_LIMIT, dtype=np.uint64)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def get_state(self):
        """The random stream's key and position: a reloaded model draws the same next numbers."""
        return {"key": self._key, "step": self.step}

    def set_state(self, state):
        key, step = state.get("key"), state.get("step")
        for name, value in (("key", key), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
                raise ValueError(f"{self.name}: {type(self).__name__.lower()} state '{name}' must be "
                                 f"an integer in [0, 2**64), got {value!r}")
        self._stream[:] = (key, step)


@register
class Dropout(RandomLayer):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15:1929): in training, each value is zeroed
    with probability ``rate`` and the kept ones are scaled by ``1 / (1 - rate)``; in inference the
    layer is the identity.

    The course notes describe the original, non-inverted form: keep values unscaled in training
    and multiply by ``1 - rate`` at test time. Both give every unit the same expected output in
    training as at test time (inverted: E[mask] = (1 - rate) / (1 - rate) = 1; original: both
    sides carry the factor 1 - rate), so they train the same network; the inverted form leaves
    inference untouched. Keras uses it too. Masks: see :class:`RandomLayer`.
    Shapes: x -> y of the same shape.
    """

    def __init__(self, rate, noise_shape=None, seed=None, name=None, input_shape=None, trainable=True):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None and not isinstance(noise_shape, (tuple, list)):
            raise ValueError(f"noise_shape must be None or a tuple, got {noise_shape!r}")
        super().__init__(seed=seed, name=name, input_shape=input_shape, trainable=trainable)
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def compute_output_shape(self, input_shape):
        ns = self.__dict__.get("noise_shape")
        if ns is not None and (len(ns) != len(input_shape) + 1 or any(
                d is not None and d != full for d, full in zip(ns[1:], input_shape))):
            raise ValueError(f"{self.name} (Dropout): noise_shape={ns} for inputs (None, "
                             f"{', '.join(map(str, input_shape))}): fastnn draws one mask entry per "
                             "value, so each entry of noise_shape must be None or the input's size "
                             "(masks shared along an axis are not supported)")
        return tuple(input_shape)

    def forward(self, x, training=False, logits=False):
        self._dropped = bool(training) and self.rate > 0
        if not self._dropped:
            return x
        y, self._mask = backend.kernels().dropout_step(
            x, self.rate, self._stream, out=self._buffer("y", x.shape, x.dtype),
            mask=self._buffer("mask", x.shape, x.dtype))
        return y

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        if not self._dropped:
            return dy
        return backend.kernels().dropout_backward(dy, self._mask, out=self._buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        config = {**super().get_config(), "rate": self.rate}
        if self.__dict__.get("noise_shape") is not None:
            config["noise_shape"] = list(self.noise_shape)
        return config


@register
class GaussianNoise(RandomLayer):
    """Additive zero-mean Gaussian noise in training, ``y = x + stddev * z`` with z ~ N(0, 1) drawn
    anew each step (a regularizer, Keras's GaussianNoise); the identity in inference. The noise
    does not depend on x, so the gradient passes through unchanged. Numbers: see
    :class:`RandomLayer` and ``fastnn.reference.normal_noise``.
    Shapes: x -> y of the same shape.
    """

    def __init__(self, stddev, seed=None, name=None, input_shape=None, trainable=True):
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.integer, np.floating)) \
                or not 0 <= stddev < np.inf:
            raise ValueError(f"GaussianNoise stddev must be a non-negative finite number, got {stddev!r}")
        super().__init__(seed=seed, name=name, input_shape=input_shape, trainable=trainable)
        self.stddev = float(stddev)

    def forward(self, x, training=False, logits=False):
        self._noisy = bool(training) and self.stddev > 0
        if not self._noisy:
            return x
        return backend.kernels().normal_noise_step(x, self.stddev, self._stream,
                                                   out=self._buffer("y", x.shape, x.dtype))

    def backward(self, dy, need_dx=True, logits=False):
        return dy if need_dx else None

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


@register
class PReLU(Layer):
    """Parametric ReLU (He et al. 2015, arXiv:1502.01852): ``y = x if x > 0 else alpha * x`` with a
    slope ``alpha`` learned for each feature (the last axis). Keras's defaults:
    ``alpha_initializer="zeros"`` (it starts as a plain ReLU), no regularizer.
    Weights: alpha (C,). Shapes: x (N, ..., C) -> y of the same shape.
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, name=None, input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)

    def build(self, input_shape):
        super().build(input_shape)
        self.alpha = self.add_weight("alpha", (input_shape[-1],), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)

    def forward(self, x, training=False, logits=False):
        self._x = x
        return backend.kernels().prelu_forward(x, self.alpha, out=self._buffer("y", x.shape, x.dtype))

    def backward(self, dy, need_dx=True, logits=False):
        dx, _ = backend.kernels().prelu_backward(
            dy, self._x, self.alpha, dx=self._buffer("dx", dy.shape, dy.dtype) if need_dx else None,
            dalpha=self._grads[0], need_dx=need_dx)
        return dx

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer)}


@register
class Flatten(Layer):
    """Reshapes each sample to one dimension: (N, 28, 28) -> (N, 784). A view, no copy."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False, logits=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # not -1: 0 rows are fine too

    def backward(self, dy, need_dx=True, logits=False):
        return dy.reshape(self._shape) if need_dx else None


# -- Layers of the functional API: merges of several tensors, and Reshape --------------------------
# A merge layer takes a list of tensors (``Add()([a, b])``); the functional graph
# (fastnn/functional.py) gives it its inputs as a list and takes a list of input gradients back.
# Each is a chain of two-input kernels (fastnn/reference/merge.py): k inputs, k - 1 calls.

class _Merge(Layer):
    """Base of the elementwise merges: inputs of one shape, one output of that shape."""
    _multi_input = True
    _OP = None       # the code of fastnn.reference.merge.MERGE_OPS
    _ARITY = None    # exactly this many inputs (Subtract: 2), else two or more
    _RUNTIME = Layer._RUNTIME | {"_inputs", "_partials"}

    def __init__(self, name=None, trainable=True, **kwargs):
        kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        super().__init__(name=name, trainable=trainable)

    def _check_shapes(self, input_shapes):
        if not isinstance(input_shapes, (list, tuple)) or not input_shapes or \
                not all(isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(f"{self.name} ({type(self).__name__}) takes a list of tensors, got "
                             f"input shape {input_shapes!r}")
        shapes = [tuple(s) for s in input_shapes]
        if self._ARITY is not None and len(shapes) != self._ARITY:
            raise ValueError(f"{self.name} ({type(self).__name__}) takes exactly {self._ARITY} inputs, "
                             f"got {len(shapes)}")
        if len(shapes) < 2:
            raise ValueError(f"{self.name} ({type(self).__name__}) takes at least 2 inputs, got "
                             f"{len(shapes)}")
        return shapes

    def compute_output_shape(self, input_shapes):
        shapes = self._check_shapes(input_shapes)
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.name} ({type(self).__name__}) needs inputs of one shape, got "
                             + ", ".join("(None, " + ", ".join(map(str, s)) + ")" for s in shapes))
        return shapes[0]

    def build(self, input_shapes):
        self.compute_output_shape(input_shapes)
        super().build(tuple(tuple(s) for s in input_shapes))

    def _scale(self, j, k):
        return 1.0

    def forward(self, xs, training=False, logits=False):
        kernels = backend.kernels()
        self._inputs = list(xs)
        acc, partials = xs[0], []
        for j, x in enumerate(xs[1:], 1):
            acc = kernels.merge_forward(acc, x, self._OP, self._scale(j, len(xs)),
                                        out=self._buffer(("out", j), x.shape, x.dtype))
            partials.append(acc)
        self._partials = partials
        return acc

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        kernels, xs = backend.kernels(), self._inputs
        dxs = [None] * len(xs)
        grad = dy
        for j in range(len(xs) - 1, 0, -1):  # the chain backwards: acc_j = s (acc_{j-1} op x_j)
            a = xs[0] if j == 1 else self._partials[j - 2]
            grad, dxs[j] = kernels.merge_backward(
                grad, a, xs[j], self._OP, self._scale(j, len(xs)),
                da=self._buffer(("da", j), dy.shape, dy.dtype),
                db=self._buffer(("db", j), dy.shape, dy.dtype))
        dxs[0] = grad
        return dxs

    def __call__(self, x, training=False):
        from . import functional
        if functional.is_symbolic(x):
            return functional.call_layer(self, x)
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"{self.name} ({type(self).__name__}) takes a list of arrays, got "
                             f"{type(x).__name__}")
        xs = [utils.as_float_array(a, "x", self.dtype or np.dtype(backend.floatx())) for a in x]
        shapes = [a.shape[1:] for a in xs]
        if any(a.ndim < 2 or len(a) != len(xs[0]) for a in xs):
            raise ValueError(f"{self.name} expects batches of one length, got shapes {[a.shape for a in xs]}")
        if not self.built:
            self.build(shapes)
        self.compute_output_shape(shapes)
        try:
            return np.array(self.forward([a.copy() for a in xs], training=bool(training)), copy=True)
        finally:
            self.release()


@register
class Add(_Merge):
    """``Add()([a, b, ...])``: the elementwise sum of tensors of one shape."""
    _OP = 0


@register
class Subtract(_Merge):
    """``Subtract()([a, b])``: ``a - b``."""
    _OP, _ARITY = 1, 2


@register
class Multiply(_Merge):
    """``Multiply()([a, b, ...])``: the elementwise product."""
    _OP = 2


@register
class Average(_Merge):
    """``Average()([a, b, ...])``: the elementwise mean (the sum, its last addition scaled by 1/k)."""
    _OP = 0

    def _scale(self, j, k):
        return 1.0 / k if j == k - 1 else 1.0


@register
class Maximum(_Merge):
    """``Maximum()([a, b, ...])``: the elementwise maximum (a tie's gradient goes to the first)."""
    _OP = 3


@register
class Minimum(_Merge):
    """``Minimum()([a, b, ...])``: the elementwise minimum (a tie's gradient goes to the first)."""
    _OP = 4


@register
class Concatenate(_Merge):
    """``Concatenate(axis=-1)([a, b, ...])``: tensors side by side along the last axis (the other
    axes must agree)."""

    def __init__(self, axis=-1, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Concatenate axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shapes):
        shapes = self._check_shapes(input_shapes)
        rank = len(shapes[0]) + 1  # with the batch axis
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"{self.name}: fastnn concatenates along the last axis only (axis=-1), "
                             f"got axis={self.axis} for inputs of rank {rank}")
        if any(len(s) != len(shapes[0]) or s[:-1] != shapes[0][:-1] for s in shapes):
            raise ValueError(f"{self.name} (Concatenate) needs inputs that agree on every axis but the "
                             "last, got " + ", ".join("(None, " + ", ".join(map(str, s)) + ")"
                                                      for s in shapes))
        return shapes[0][:-1] + (sum(s[-1] for s in shapes),)

    def forward(self, xs, training=False, logits=False):
        kernels = backend.kernels()
        self._inputs = list(xs)
        rows = [x.reshape(-1, x.shape[-1]) for x in xs]
        acc = rows[0]
        for j, x in enumerate(rows[1:], 1):
            width = acc.shape[1] + x.shape[1]
            acc = kernels.concat_forward(acc, x, out=self._buffer(("out", j), (acc.shape[0], width),
                                                                  x.dtype))
        return acc.reshape(tuple(xs[0].shape[:-1]) + (acc.shape[1],))

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        kernels = backend.kernels()
        grad = dy.reshape(-1, dy.shape[-1])
        dxs, offset = [], 0
        for j, x in enumerate(self._inputs):
            width = x.shape[-1]
            part = kernels.take_columns(grad, offset, self._buffer(("dx", j), (grad.shape[0], width), dy.dtype))
            dxs.append(part.reshape(x.shape))
            offset += width
        return dxs

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register
class Reshape(Layer):
    """``Reshape(target_shape)``: each sample to ``target_shape`` (one entry may be -1). A view."""
    _RUNTIME = Layer._RUNTIME | {"_in_shape"}

    def __init__(self, target_shape, name=None, input_shape=None, trainable=True, **kwargs):
        kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Reshape got unexpected arguments {sorted(kwargs)}")
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        try:
            target = tuple(int(s) for s in target_shape)
        except (TypeError, ValueError):
            raise ValueError(f"Reshape target_shape must be a tuple of integers, got {target_shape!r}") from None
        if not target or any(s == 0 or s < -1 for s in target) or target.count(-1) > 1:
            raise ValueError(f"Reshape target_shape must hold positive sizes and at most one -1, got "
                             f"{target_shape!r}")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        target = self.target_shape
        if -1 in target:
            if size % known:
                raise ValueError(f"{self.name}: inputs (None, {', '.join(map(str, input_shape))}) do not "
                                 f"reshape to {self.target_shape}")
            target = tuple(size // known if s == -1 else s for s in target)
        if int(np.prod(target)) != size:
            raise ValueError(f"{self.name}: inputs (None, {', '.join(map(str, input_shape))}) have {size} "
                             f"values per sample, target_shape {self.target_shape} has {int(np.prod(target))}")
        return target

    def forward(self, x, training=False, logits=False):
        self._in_shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape[1:]))

    def backward(self, dy, need_dx=True, logits=False):
        return dy.reshape(self._in_shape) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


def get(config):
    """A layer from ``{"class_name": ..., "config": {...}}`` as produced by ``Sequential.get_config``;
    the class is any registered with :func:`register`."""
    cls = _REGISTRY.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown layer type {config.get('class_name')!r}; expected one of {', '.join(_REGISTRY)}")
    kwargs = dict(config.get("config", {}))
    if cls is InputLayer:
        kwargs["shape"] = kwargs.pop("input_shape")
        kwargs.pop("trainable", None)
    return cls(**kwargs)


def add(inputs, **kwargs):
    """``keras.layers.add([a, b])``: ``Add(**kwargs)([a, b])``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``keras.layers.subtract([a, b])``: ``Subtract(**kwargs)([a, b])``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``keras.layers.multiply([a, b])``: ``Multiply(**kwargs)([a, b])``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``keras.layers.average([a, b])``: ``Average(**kwargs)([a, b])``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``keras.layers.maximum([a, b])``: ``Maximum(**kwargs)([a, b])``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``keras.layers.minimum([a, b])``: ``Minimum(**kwargs)([a, b])``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``keras.layers.concatenate([a, b], axis=-1)``: ``Concatenate(axis, **kwargs)([a, b])``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


# Keras layers for grid-shaped data (images, volumes, spectrograms): fastnn computes dense
# and recurrent networks only, so asking for one of these names says so instead of a bare
# AttributeError.
NOT_PROVIDED = frozenset(
    [f"{kind}{d}D" for kind in ("Conv", "SeparableConv", "DepthwiseConv", "MaxPooling", "AveragePooling",
                                 "GlobalMaxPooling", "GlobalAveragePooling", "UpSampling", "ZeroPadding",
                                 "Cropping", "SpatialDropout") for d in (1, 2, 3)]
    + [f"Conv{d}DTranspose" for d in (1, 2, 3)]
    + [f"{kind}{d}D" for kind in ("MaxPool", "AvgPool", "GlobalMaxPool", "GlobalAvgPool", "Convolution")
       for d in (1, 2, 3)]
    + ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "RandomFlip", "RandomRotation", "RandomZoom", "RandomCrop",
       "RandomTranslation", "RandomContrast", "Resizing", "CenterCrop"])


# Keras names fastnn does not have, each with what to do instead.
NOT_YET = {
    "Bidirectional": "fastnn has no Bidirectional wrapper yet; a recurrent layer with "
                     "go_backwards=True runs the sequence in reverse",
    "TimeDistributed": "fastnn has no TimeDistributed wrapper: Dense on (batch, timesteps, "
                       "features) already applies to the last axis, as TimeDistributed(Dense) does",
    "Lambda": "fastnn cannot run a Python function as a layer: it trains through its own kernels "
              "and their derivatives; use a fastnn layer or activation for the computation",
}


def __getattr__(name):
    if name in NOT_YET:
        raise NotImplementedError(NOT_YET[name])
    if name in NOT_PROVIDED:
        raise NotImplementedError(
            f"fastnn has no {name} layer: fastnn trains dense (fully connected) and recurrent "
            "networks on the CPU; convolutional, pooling and image preprocessing layers are not "
            "part of it. Flatten the inputs and use Dense layers, or "
            "use Keras itself for this model")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- Keras layers added for Keras programs ---------------------------------------------------------

def _optional_config(layer):
    """The constraint and activity settings of a layer, listed only when set."""
    config = {}
    for key in ("kernel_constraint", "bias_constraint"):
        if layer.__dict__.get(key) is not None:
            config[key] = constraints.serialize(layer.__dict__[key])
    if layer.__dict__.get("activity_regularizer") is not None:
        config["activity_regularizer"] = regularizers.serialize(layer.activity_regularizer)
    return config


def _finite(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _rate(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < 1:
        raise ValueError(f"{what} rate must be in [0, 1), got {value!r}")
    return float(value)


@register
class Identity(Layer):
    """Returns its input unchanged (Keras's Identity layer)."""

    def forward(self, x, training=False, logits=False):
        return x

    def backward(self, dy, need_dx=True, logits=False):
        return dy if need_dx else None


@register
class ELU(Activation):
    """``x if x > 0 else alpha * (exp(x) - 1)``; Keras default alpha=1.0."""

    def __init__(self, alpha=1.0, name=None, input_shape=None, **kwargs):
        super().__init__(activations_module.Activation("elu", _finite(alpha, "ELU alpha")), name=name,
                         input_shape=input_shape, **kwargs)

    @property
    def alpha(self):
        return self.activation.alpha

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "alpha": self.alpha}


@register
class Rescaling(Layer):
    """``y = x * scale + offset`` (Keras's Rescaling: ``Rescaling(1 / 255)`` for pixels); ``scale``
    and ``offset`` are numbers or one value per feature (the last axis).
    Shapes: x (N, ..., C) -> y of the same shape."""

    def __init__(self, scale, offset=0.0, name=None, input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.scale = self._value(scale, "scale")
        self.offset = self._value(offset, "offset")

    @staticmethod
    def _value(value, what):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim > 1 or not np.isfinite(arr).all() or arr.dtype.kind not in "fiu":
            raise ValueError(f"Rescaling {what} must be a finite number or a 1-D sequence, got {value!r}")
        return float(arr) if arr.ndim == 0 else tuple(arr.tolist())

    def compute_output_shape(self, input_shape):
        for what in ("scale", "offset"):
            v = getattr(self, what)
            if isinstance(v, tuple) and len(v) != input_shape[-1]:
                raise ValueError(f"{self.name} (Rescaling): {what} has {len(v)} values for inputs "
                                 f"with {input_shape[-1]} features")
        return tuple(input_shape)

    def _vectors(self, c, dtype):
        key = (self.scale, self.offset, c, np.dtype(dtype))
        cached = self.__dict__.get("_vec")
        if cached is None or cached[0] != key:
            cached = (key, np.ascontiguousarray(np.broadcast_to(np.asarray(self.scale, dtype), (c,))),
                      np.ascontiguousarray(np.broadcast_to(np.asarray(self.offset, dtype), (c,))))
            object.__setattr__(self, "_vec", cached)  # derived from the settings: not tracked
        return cached[1], cached[2]

    def forward(self, x, training=False, logits=False):
        scale, offset = self._vectors(x.shape[-1], x.dtype)
        return backend.kernels().affine_forward(x, scale, offset, out=self._buffer("y", x.shape, x.dtype))

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        scale, _ = self._vectors(dy.shape[-1], dy.dtype)
        return backend.kernels().affine_backward(dy, scale, out=self._buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_vec", None)
        return state


NORMALIZATION_EPSILON = 1e-7  # Keras's backend.epsilon(), the floor of the standard deviation


@register
class Normalization(Layer):
    """Keras's Normalization: ``y = (x - mean) / max(sqrt(variance), 1e-7)`` per feature (the last
    axis); ``invert=True`` undoes it, ``y = mean + x * max(sqrt(variance), 1e-7)``. ``mean`` and
    ``variance`` are given, or learnt from data by :meth:`adapt` (over every axis but the last);
    they are non-trainable weights (saved with the model).
    Shapes: x (N, ..., C) -> y of the same shape; mean, variance (C,)."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, name=None, input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.axis = _check_axis_arg(axis)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization needs both mean and variance, or neither (then call adapt)")
        self.init_mean = None if mean is None else np.asarray(mean, np.float64).reshape(-1).tolist()
        self.init_variance = None if variance is None else np.asarray(variance, np.float64).reshape(-1).tolist()
        if variance is not None and (np.asarray(self.init_variance) < 0).any():
            raise ValueError("Normalization variance must be non-negative")
        self.invert = bool(invert)

    def compute_output_shape(self, input_shape):
        _last_axis(self.axis, input_shape, self)
        if self.init_mean is not None and len(self.init_mean) not in (1, input_shape[-1]):
            raise ValueError(f"{self.name} (Normalization): mean has {len(self.init_mean)} values "
                             f"for inputs with {input_shape[-1]} features")
        return tuple(input_shape)

    def build(self, input_shape):
        super().build(input_shape)
        c = (input_shape[-1],)
        self.mean = self.add_weight("mean", c, "zeros", trainable=False)
        self.variance = self.add_weight("variance", c, "ones", trainable=False)
        if self.init_mean is not None:
            self.mean[...] = self.init_mean
            self.variance[...] = self.init_variance

    def adapt(self, data, batch_size=None, steps=None):
        """Set mean and variance (biased, as Keras) from ``data`` (N, ..., C), computed in float64."""
        data = utils.as_float_array(data, "data", np.float64)
        if data.ndim < 2 or len(data) == 0:
            raise ValueError(f"adapt expects a non-empty batch of samples (N, ..., features), got "
                             f"shape {data.shape}")
        utils.check_finite(data, "data")
        if self.built and data.shape[1:] != self.input_shape:
            raise ValueError(f"{self.name} is built for inputs {(None,) + self.input_shape}, got "
                             f"adapt data of shape {data.shape}")
        if not self.built:
            self.compute_output_shape(data.shape[1:])
            self.build(data.shape[1:])
        flat = data.reshape(-1, data.shape[-1])
        self.mean[...] = flat.mean(axis=0)
        self.variance[...] = flat.var(axis=0)

    def forward(self, x, training=False, logits=False):
        x2 = x.reshape(-1, x.shape[-1])
        y = backend.kernels().normalize_forward(x2, self.mean, self.variance, NORMALIZATION_EPSILON,
                                                self.invert, out=self._buffer("y", x2.shape, x.dtype))
        return y.reshape(x.shape)

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        dy2 = dy.reshape(-1, dy.shape[-1])
        dx = backend.kernels().normalize_backward(dy2, self.variance, NORMALIZATION_EPSILON, self.invert,
                                                  out=self._buffer("dx", dy2.shape, dy.dtype))
        return dx.reshape(dy.shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "mean": self.init_mean,
                "variance": self.init_variance, "invert": self.invert}


@register
class GaussianDropout(RandomLayer):
    """Multiplicative Gaussian noise in training, ``y = x * (1 + stddev * z)`` with
    ``stddev = sqrt(rate / (1 - rate))`` (Srivastava et al. 2014, section 10; Keras's
    GaussianDropout); the identity in inference. Numbers: see :class:`RandomLayer`.
    Shapes: x -> y of the same shape."""

    def __init__(self, rate, seed=None, name=None, input_shape=None, trainable=True):
        super().__init__(seed=seed, name=name, input_shape=input_shape, trainable=trainable)
        self.rate = _rate(rate, "GaussianDropout")

    def forward(self, x, training=False, logits=False):
        self._dropped = bool(training) and self.rate > 0
        if not self._dropped:
            return x
        y, self._mask = backend.kernels().gaussian_dropout_step(
            x, float(np.sqrt(self.rate / (1.0 - self.rate))), self._stream,
            out=self._buffer("y", x.shape, x.dtype), mask=self._buffer("mask", x.shape, x.dtype))
        return y

    def backward(self, dy, need_dx=True, logits=False):
        if not need_dx:
            return None
        if not self._dropped:
            return dy
        return backend.kernels().dropout_backward(dy, self._mask, out=self._buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@register
class AlphaDropout(GaussianDropout):
    """Alpha dropout (Klambauer et al. 2017, for SELU networks), Keras's form: dropped values are
    set to SELU's negative saturation, then an affine map keeps mean 0 and variance 1
    (``fastnn.reference.alpha_dropout_step``); the identity in inference.
    Shapes: x -> y of the same shape."""

    def __init__(self, rate, noise_shape=None, seed=None, name=None, input_shape=None, trainable=True):
        if noise_shape is not None:
            raise ValueError("AlphaDropout: fastnn draws one mask entry per value; noise_shape is "
                             f"not supported, got {noise_shape!r}")
        super().__init__(rate, seed=seed, name=name, input_shape=input_shape, trainable=trainable)

    def forward(self, x, training=False, logits=False):
        self._dropped = bool(training) and self.rate > 0
        if not self._dropped:
            return x
        y, self._mask = backend.kernels().alpha_dropout_step(
            x, self.rate, self._stream, out=self._buffer("y", x.shape, x.dtype),
            mask=self._buffer("mask", x.shape, x.dtype))
        return y


@register
class ActivityRegularization(Layer):
    """Passes its input through and adds ``l1 * sum|x| + l2 * sum x^2`` (over the batch, as Keras
    3 does) to the training loss, with its gradient."""

    def __init__(self, l1=0.0, l2=0.0, name=None, input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.activity_regularizer = regularizers.L1L2(l1, l2)

    def forward(self, x, training=False, logits=False):
        self._x = x
        self._activity_forward(x, training)
        return x

    def backward(self, dy, need_dx=True, logits=False):
        self._activity_backward(self._x, dy)
        return dy if need_dx else None

    def get_config(self):
        return {**super().get_config(), "l1": self.activity_regularizer.l1,
                "l2": self.activity_regularizer.l2}


from .recurrent import GRU, LSTM, Embedding, SimpleRNN  # noqa: E402,F401 -- registered layers
