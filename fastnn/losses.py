"""Losses by Keras name, each turning (targets, model output) into a mean loss and its gradient.

Cross-entropies have a *fused* path: when the model ends in the matching activation (softmax for
the categorical ones, sigmoid for binary) the model hands the loss the pre-activation logits and the
loss and gradient come from one stable kernel (log-sum-exp / log1p form), so logits of 1e4 give a
finite loss and no NaN. Without that activation the loss works on the outputs as probabilities,
clipped to [EPSILON, 1 - EPSILON] as Keras does.

Keras argument order holds for the public call: ``loss(y_true, y_pred) -> float``.
"""
import numpy as np

from . import backend
from .utils import as_float_array

EPSILON = 1e-7  # Keras backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]


def _numeric(y, name):
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {y.dtype}")
    return y


class Loss:
    """Base class. Subclasses set ``name`` and implement ``prepare_targets`` and ``value_and_grad``.

    ``fused_activation`` names the activation whose logits ``logits_value_and_grad`` accepts.
    """
    name = "loss"
    fused_activation = None

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def prepare_targets(self, y, n, output_shape, dtype):
        """Validate targets ``y`` for ``n`` samples and model outputs of ``output_shape`` (no batch
        dim); returns them as a C-contiguous array ready for the kernels. Raises before any work."""
        raise NotImplementedError

    def value_and_grad(self, y, pred, out=None, need_grad=True):
        """(mean loss, d loss / d pred) for model outputs ``pred``."""
        raise NotImplementedError

    def logits_value_and_grad(self, y, logits, out=None, need_grad=True):
        """(mean loss, d loss / d logits) where the model output is fused_activation(logits)."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        """Mean loss of predictions ``y_pred`` against ``y_true`` (Keras argument order)."""
        pred = as_float_array(_numeric(y_pred, "y_pred"), "y_pred")
        if pred.ndim == 1:
            pred = pred[:, None]
        dtype = pred.dtype
        y = self.prepare_targets(y_true, len(pred), pred.shape[1:], dtype)
        return self.value_and_grad(y, pred, need_grad=False)[0]

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def _check_len(self, y, n):
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"x and y must have the same number of samples: got {n} inputs and "
                             f"targets of shape {y.shape}")

    def _dense_targets(self, y, n, output_shape, dtype, what):
        """Targets with the output's shape; a 1-D y is taken as one column when there is one output."""
        y = _numeric(y, "y")
        self._check_len(y, n)
        if y.ndim == 1 and tuple(output_shape) == (1,):
            y = y.reshape(n, 1)
        if y.shape[1:] != tuple(output_shape):
            raise ValueError(f"{self.name} expects {what} of shape (N, {', '.join(map(str, output_shape))})"
                             f" matching the model output, got targets of shape {y.shape}")
        y = np.ascontiguousarray(y, dtype=dtype)
        _check_finite(y, "y")
        return y


def _check_finite(a, name):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}: "
                         f"{a[tuple(bad)]})")


def _clipped(pred):
    return np.clip(pred, EPSILON, 1 - EPSILON)


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over all outputs of the batch."""
    name = "mean_squared_error"

    def __init__(self):
        super().__init__(False)

    def prepare_targets(self, y, n, output_shape, dtype):
        return self._dense_targets(y, n, output_shape, dtype, "targets")

    def value_and_grad(self, y, pred, out=None, need_grad=True):
        return backend.kernels().mean_squared_error(pred, y, out, need_grad)

    def get_config(self):
        return {"name": self.name}


class _CrossEntropy(Loss):
    """Shared probability path: p -> logits = log(p) turns the softmax kernel into cross-entropy on
    probabilities (softmax(log p) = p / sum(p), the normalisation Keras applies)."""
    fused_activation = "softmax"

    def value_and_grad(self, y, pred, out=None, need_grad=True):
        if self.from_logits:
            return self.logits_value_and_grad(y, pred, out, need_grad)
        p = _clipped(pred)
        loss, dlogits = self.logits_value_and_grad(y, np.log(p), None, need_grad)
        if not need_grad:
            return loss, None
        grad = dlogits / p * ((pred > EPSILON) & (pred < 1 - EPSILON))  # clipped entries get no gradient
        return loss, _store(out, grad)


def _store(out, value):
    if out is None:
        return value
    out[...] = value
    return out


class SparseCategoricalCrossentropy(_CrossEntropy):
    """-mean(log p[label]) for integer labels in [0, classes)."""
    name = "sparse_categorical_crossentropy"

    def prepare_targets(self, y, n, output_shape, dtype):
        y = _numeric(y, "y")
        self._check_len(y, n)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{self.name} expects integer labels of shape (N,), got shape {y.shape}"
                             " (for one-hot targets use categorical_crossentropy)")
        classes = output_shape[-1]
        if y.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
            if bad.size:
                raise ValueError(f"labels must be integers in [0, {classes}), got {y[bad[0]]} at "
                                 f"index {bad[0]}")
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if bad.size:
            raise ValueError(f"labels must be integers in [0, {classes}) for a model with {classes} "
                             f"outputs, got {y[bad[0]]} at index {bad[0]}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def logits_value_and_grad(self, y, logits, out=None, need_grad=True):
        return backend.kernels().sparse_softmax_cross_entropy(logits, y, out, need_grad)


class CategoricalCrossentropy(_CrossEntropy):
    """-mean(sum(y_true * log p)) for one-hot or probability targets of shape (N, classes)."""
    name = "categorical_crossentropy"

    def prepare_targets(self, y, n, output_shape, dtype):
        return self._dense_targets(y, n, output_shape, dtype, "one-hot targets")

    def logits_value_and_grad(self, y, logits, out=None, need_grad=True):
        return backend.kernels().softmax_cross_entropy(logits, y, out, need_grad)


class BinaryCrossentropy(Loss):
    """-mean(t log p + (1 - t) log(1 - p)) over all outputs, targets t in [0, 1]."""
    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def prepare_targets(self, y, n, output_shape, dtype):
        y = self._dense_targets(y, n, output_shape, dtype, "targets")
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{self.name} expects targets in [0, 1], got values in "
                             f"[{y.min()}, {y.max()}]")
        return y

    def logits_value_and_grad(self, y, logits, out=None, need_grad=True):
        return backend.kernels().sigmoid_binary_cross_entropy(logits, y, out, need_grad)

    def value_and_grad(self, y, pred, out=None, need_grad=True):
        if self.from_logits:
            return self.logits_value_and_grad(y, pred, out, need_grad)
        # logit(p) = log(p / (1 - p)) is the inverse of the sigmoid, so the stable kernel applies.
        p = _clipped(pred)
        loss, dlogits = self.logits_value_and_grad(y, np.log(p) - np.log1p(-p), None, need_grad)
        if not need_grad:
            return loss, None
        grad = dlogits / (p * (1 - p)) * ((pred > EPSILON) & (pred < 1 - EPSILON))
        return loss, _store(out, grad)


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """A :class:`Loss` from a Keras name (``"mse"``, ``"sparse_categorical_crossentropy"``...) or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown loss {identifier!r}; expected a Loss instance or one of "
                     f"{', '.join(sorted(_BY_NAME))}")
