"""Losses by Keras name, each turning (targets, model output) into a mean loss and its gradient.

Reduction is Keras's: the mean over the batch of per-sample losses, where a per-sample loss is the
mean over the outputs (MSE, MAE, Huber, log-cosh, hinge, binary cross-entropy) or the sum over the
classes (categorical cross-entropies, KL divergence). Every loss is one native kernel with a NumPy
twin of the same name in ``fastnn.reference.losses``.

Cross-entropies have a *fused* path: when the model ends in the matching activation (softmax for
the categorical ones, sigmoid for binary) the model hands the loss the pre-activation logits and the
loss and gradient come from one stable kernel (log-sum-exp / log1p form), so logits of 1e4 give a
finite loss and no NaN. Without that activation the loss works on the outputs as probabilities,
clipped to [EPSILON, 1 - EPSILON] as Keras does.

Keras argument order holds for the public call: ``loss(y_true, y_pred) -> float``.
"""
import numpy as np

from . import backend, program, tracking
from .utils import as_float_array

EPSILON = 1e-7  # Keras backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]
HUBER_DELTA = 1.0  # Keras Huber default


def _kernels():
    """The active backend's kernels (see ``fastnn.backend.kernels``)."""
    return backend.kernels()


def _numeric(y, name):
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {y.dtype}")
    return y


def _fraction(value, name):
    """``value`` as a float in [0, 1]; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none")


class Loss(tracking.Tracked):
    """Base class. Subclasses set ``name`` (Keras's default name) and implement ``prepare_targets``
    and ``_mean`` (the mean over the batch, Keras's ``"sum_over_batch_size"``), and ``_logits_mean``
    when they have a fused path; ``value_and_grad`` applies the ``reduction``.

    ``fused_activation`` names the activation whose logits ``logits_value_and_grad`` accepts.
    ``reduction`` is Keras's: ``"sum_over_batch_size"`` (default) and ``"mean"`` average the
    per-sample losses, ``"sum"`` adds them, ``"mean_with_sample_weight"`` divides the weighted sum
    by the sum of the weights, and ``None``/``"none"`` returns one loss per sample from a call
    (training needs one number, so fit refuses it).
    """
    name = "loss"
    fused_activation = None

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        if not isinstance(reduction, (str, type(None))) or reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.from_logits = bool(from_logits)
        self.reduction = reduction
        self.name = name or type(self).name
        self._cache = {}  # scratch buffers of the probability path

    def prepare_targets(self, y, n, output_shape, dtype):
        """Validate targets ``y`` for ``n`` samples and model outputs of ``output_shape`` (no batch
        dim); returns them as a C-contiguous array ready for the kernels. Raises before any work."""
        raise NotImplementedError

    def _mean(self, y, pred, out=None, need_grad=True):
        raise NotImplementedError

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        raise NotImplementedError(f"{self.name} has no fused path from logits")

    def _reduce(self, rows_of, value, grad, need_grad):
        if self.reduction is None or self.reduction == "none":
            if need_grad:
                raise ValueError(f"{type(self).__name__}(reduction={self.reduction!r}) gives one loss per "
                                 "sample; training needs one number: use reduction='sum_over_batch_size' "
                                 "or 'sum'")
        elif self.reduction == "sum":
            value = _kernels().scale_by_rows(value, rows_of, grad)
        return value, grad

    def value_and_grad(self, y, pred, out=None, need_grad=True):
        """(reduced loss, d loss / d pred) for model outputs ``pred``."""
        return self._reduce(pred, *self._mean(y, pred, out, need_grad), need_grad)

    def logits_value_and_grad(self, y, logits, out=None, need_grad=True):
        """(reduced loss, d loss / d logits) where the model output is fused_activation(logits)."""
        return self._reduce(logits, *self._logits_mean(y, logits, out, need_grad), need_grad)

    def weighted_value(self, y, pred, weights, logits=False, grad=None):
        """The loss with per-row weights ``weights[N]`` under the reduction (Keras: sum(w_n l_n) / N
        for "sum_over_batch_size"); scales ``grad`` (from ``value_and_grad``) by the weights.
        Rows sharing a weight are averaged by one kernel call (class weights take few values)."""
        fn = self._logits_mean if logits else self._mean
        total = 0.0
        for value in np.unique(weights):
            if value == 0:
                continue
            rows = np.flatnonzero(weights == value)
            group_loss, _ = fn(y[rows], np.ascontiguousarray(pred[rows]), None, False)
            total += float(value) * float(group_loss) * len(rows)
        n = len(weights)
        divisor = {"sum": 1.0, "mean_with_sample_weight": float(np.sum(weights, dtype=np.float64))}.get(
            self.reduction, float(n))
        if grad is not None:
            scale = weights * (n / divisor if self.reduction == "mean_with_sample_weight" and divisor else 1)
            grad *= scale.reshape((-1,) + (1,) * (grad.ndim - 1)).astype(grad.dtype, copy=False)
        return total / divisor if divisor else 0.0

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of predictions ``y_pred`` against ``y_true`` (Keras argument order), reduced as
        ``reduction`` says: a float, or one loss per sample for ``reduction=None``."""
        pred = as_float_array(_numeric(y_pred, "y_pred"), "y_pred")
        if pred.ndim == 1:
            pred = pred[:, None]
        dtype = pred.dtype
        y = self.prepare_targets(y_true, len(pred), pred.shape[1:], dtype)
        weights = None
        if sample_weight is not None:
            weights = as_float_array(sample_weight, "sample_weight", np.float64)
            if weights.ndim == 2 and weights.shape[1] == 1:
                weights = weights[:, 0]
            if weights.shape != (len(pred),) or not np.isfinite(weights).all():
                raise ValueError(f"sample_weight must be {len(pred)} finite numbers, one per sample, "
                                 f"got array of shape {weights.shape}")
        if self.reduction is None or self.reduction == "none":
            per_sample = np.array([self._mean(y[i:i + 1], np.ascontiguousarray(pred[i:i + 1]), None, False)[0]
                                   for i in range(len(pred))], dtype=np.float64)
            return (per_sample if weights is None else per_sample * weights).astype(dtype)
        if weights is None:
            return self.value_and_grad(y, pred, need_grad=False)[0]
        return self.weighted_value(y, pred, weights.astype(dtype))

    def _settings(self):
        """The constructor arguments besides reduction and name."""
        return {"from_logits": self.from_logits}

    def get_config(self):
        """The constructor arguments: ``type(loss)(**config)`` rebuilds it."""
        return {"name": self.name, "reduction": self.reduction, **self._settings()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

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
        y = np.require(y, dtype=dtype, requirements=("C", "A"))  # contiguous, aligned for the kernels
        _check_finite(y, "y")
        return y

    def _check_range(self, y, lo, hi, what):
        if y.size and (y.min() < lo or y.max() > hi):
            raise ValueError(f"{self.name} expects {what} in [{lo}, {hi}], got values in "
                             f"[{y.min()}, {y.max()}]")
        return y


def _check_axis(axis):
    if axis != -1 and axis is not None:
        raise ValueError(f"fastnn losses work along the last axis (axis=-1), got axis={axis!r}")


def _check_finite(a, name):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}: "
                         f"{a[tuple(bad)]})")


def _on_probabilities(loss, y, pred, out, need_grad, binary):
    """A cross-entropy on probabilities: the stable kernel on logits that give back the clipped
    probabilities, then the chain rule back to them (clipped entries get no gradient)."""
    k = _kernels()
    logits = k.probabilities_to_logits(pred, EPSILON, binary,
                                       out=program.buffer(loss, loss._cache, "logits", pred.shape, pred.dtype))
    value, dlogits = loss._logits_mean(
        y, logits, program.buffer(loss, loss._cache, "dlogits", pred.shape, pred.dtype) if need_grad else None,
        need_grad)
    if not need_grad:
        return value, None
    if out is None:
        out = program.buffer(loss, loss._cache, "grad", pred.shape, pred.dtype)
    return value, k.probabilities_grad(dlogits, pred, EPSILON, binary, out=out)


# -- regression: targets with the output's shape, one kernel on (pred, target) -------------------
class _PredictionLoss(Loss):
    """A loss computed by the kernel ``kernel(pred, target, dpred, need_grad, **kernel_args)``."""
    kernel = None

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(False, reduction, name)

    def _kernel_args(self):
        return {}

    def prepare_targets(self, y, n, output_shape, dtype):
        return self._dense_targets(y, n, output_shape, dtype, "targets")

    def _mean(self, y, pred, out=None, need_grad=True):
        return getattr(_kernels(), self.kernel)(pred, y, out, need_grad, **self._kernel_args())

    def _settings(self):
        return self._kernel_args()


class MeanSquaredError(_PredictionLoss):
    """mean((y_pred - y_true)^2) over all outputs of the batch."""
    name = kernel = "mean_squared_error"


class MeanAbsoluteError(_PredictionLoss):
    """mean(|y_pred - y_true|) over all outputs of the batch."""
    name = kernel = "mean_absolute_error"


class Huber(_PredictionLoss):
    """mean of d^2/2 where |d| <= delta, delta * (|d| - delta/2) elsewhere, d = y_pred - y_true."""
    name = "huber_loss"  # Keras's Huber class name
    kernel = "huber"

    def __init__(self, delta=HUBER_DELTA, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)) \
                or not 0 < delta < np.inf:
            raise ValueError(f"Huber delta must be a positive finite number, got {delta!r}")
        self.delta = float(delta)

    def _kernel_args(self):
        return {"delta": self.delta}


class LogCosh(_PredictionLoss):
    """mean(log(cosh(y_pred - y_true))) over all outputs: about d^2/2 near 0, |d| - log 2 far away."""
    name = "log_cosh"
    kernel = "log_cosh"


class Hinge(_PredictionLoss):
    """mean(max(1 - y_true * y_pred, 0)) for labels -1/+1 (0/1 labels become -1/+1, as in Keras)."""
    name = kernel = "hinge"

    def prepare_targets(self, y, n, output_shape, dtype):
        y = self._dense_targets(y, n, output_shape, dtype, "labels")
        values = np.unique(y)
        if np.isin(values, [0, 1]).all():
            return np.ascontiguousarray(2 * y - 1)
        if not np.isin(values, [-1, 1]).all():
            raise ValueError(f"{self.name} expects labels -1 and 1 (or 0 and 1), got values "
                             f"{values[:5].tolist()}{'...' if len(values) > 5 else ''}")
        return y


class KLDivergence(_PredictionLoss):
    """mean over samples of sum_c y_true * log(y_true / y_pred), both clipped to [EPSILON, 1]."""
    name = "kl_divergence"
    kernel = "kl_divergence"

    def prepare_targets(self, y, n, output_shape, dtype):
        y = self._dense_targets(y, n, output_shape, dtype, "target distributions")
        return self._check_range(y, 0, 1, "target probabilities")

    def _kernel_args(self):
        return {"epsilon": EPSILON}

    def _settings(self):
        return {}


# -- classification: probabilities or logits, fused with softmax / sigmoid ----------------------
class _CrossEntropy(Loss):
    """Shared probability path: p -> logits = log(p) turns the softmax kernel into cross-entropy on
    probabilities (softmax(log p) = p / sum(p), the normalisation Keras applies)."""
    fused_activation = "softmax"

    def _mean(self, y, pred, out=None, need_grad=True):
        if self.from_logits:
            return self._logits_mean(y, pred, out, need_grad)
        return _on_probabilities(self, y, pred, out, need_grad, binary=False)


class SparseCategoricalCrossentropy(_CrossEntropy):
    """-mean(log p[label]) for integer labels in [0, classes).

    ``ignore_class`` (Keras 3): rows whose label equals it add neither loss nor gradient, and the
    mean divides by the number of the other rows (0 when every row is ignored); with
    ``reduction="sum"`` the loss is the sum over the other rows. The ignored label may lie outside
    [0, classes) (``-1`` is common)."""
    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name=None):
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, (int, np.integer))):
            raise TypeError(f"ignore_class must be an integer label or None, got {ignore_class!r}")
        super().__init__(from_logits, reduction, name)
        _check_axis(axis)
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def _settings(self):
        return {**super()._settings(), "ignore_class": self.ignore_class}

    def prepare_targets(self, y, n, output_shape, dtype):
        y = _numeric(y, "y")
        self._check_len(y, n)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{self.name} expects integer labels of shape (N,), got shape {y.shape}"
                             " (for one-hot targets use categorical_crossentropy)")
        classes = output_shape[-1]
        flags = y.flags
        if y.dtype == np.int64 and self.ignore_class is None and flags.c_contiguous and flags.aligned:
            # the common case in one comparison: read as unsigned, a negative label is huge
            if not (y.view(np.uint64) >= classes).any():
                return y
        if y.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
            if bad.size:
                raise ValueError(f"labels must be integers in [0, {classes}), got {y[bad[0]]} at "
                                 f"index {bad[0]}")
        bad = (y < 0) | (y >= classes)
        if self.ignore_class is not None:
            bad &= y != self.ignore_class
        bad = np.flatnonzero(bad)
        if bad.size:
            also = "" if self.ignore_class is None else f" or ignore_class={self.ignore_class}"
            raise ValueError(f"labels must be integers in [0, {classes}){also} for a model with {classes} "
                             f"outputs, got {y[bad[0]]} at index {bad[0]}")
        return np.require(y, dtype=np.int64, requirements=("C", "A"))

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        if self.ignore_class is None:
            return _kernels().sparse_softmax_cross_entropy(logits, y, out, need_grad)
        # the kernel does the "sum" reduction itself: the number of kept rows varies per batch
        return _kernels().sparse_softmax_cross_entropy_ignore(logits, y, out, need_grad, self.ignore_class,
                                                              self.reduction == "sum")

    def _reduce(self, rows_of, value, grad, need_grad):
        if self.ignore_class is not None and self.reduction == "sum":
            return value, grad  # summed over the kept rows by the kernel
        return super()._reduce(rows_of, value, grad, need_grad)

    def weighted_value(self, y, pred, weights, logits=False, grad=None):
        """As :meth:`Loss.weighted_value`, over the rows not labelled ``ignore_class``: Keras
        divides by their number ("sum_over_batch_size") or by their weights' sum
        ("mean_with_sample_weight"); ignored rows keep a zero gradient."""
        if self.ignore_class is None:
            return super().weighted_value(y, pred, weights, logits, grad)
        fn = self._logits_mean if logits else self._mean
        keep = y != self.ignore_class
        kept_weights = np.where(keep, weights, 0)
        total = 0.0
        for value in np.unique(kept_weights[keep]):
            if value == 0:
                continue
            rows = np.flatnonzero(keep & (weights == value))
            group_loss, _ = fn(y[rows], np.ascontiguousarray(pred[rows]), None, False)
            total += float(value) * float(group_loss) * (1 if self.reduction == "sum" else len(rows))
        count = int(keep.sum())
        divisor = {"sum": 1.0, "mean_with_sample_weight": float(np.sum(kept_weights, dtype=np.float64))}.get(
            self.reduction, float(count))
        if grad is not None:
            scale = kept_weights * (count / divisor if self.reduction == "mean_with_sample_weight" and divisor
                                    else 1)
            grad *= scale.reshape((-1,) + (1,) * (grad.ndim - 1)).astype(grad.dtype, copy=False)
        return total / divisor if divisor else 0.0


class CategoricalCrossentropy(_CrossEntropy):
    """-mean(sum(q * log p)) for one-hot or probability targets y of shape (N, classes), with
    q = y * (1 - label_smoothing) + label_smoothing / classes (Keras)."""
    name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None):
        super().__init__(from_logits, reduction, name)
        _check_axis(axis)
        self.label_smoothing = _fraction(label_smoothing, "label_smoothing")

    def prepare_targets(self, y, n, output_shape, dtype):
        y = self._dense_targets(y, n, output_shape, dtype, "one-hot targets")
        return self._check_range(y, 0, 1, "one-hot or probability targets")

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        return _kernels().softmax_cross_entropy(logits, y, out, need_grad,
                                                label_smoothing=self.label_smoothing)

    def _settings(self):
        return {**super()._settings(), "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(Loss):
    """-mean(q log p + (1 - q) log(1 - p)) over all outputs, targets y in [0, 1] and
    q = y * (1 - label_smoothing) + label_smoothing / 2 (Keras)."""
    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None):
        super().__init__(from_logits, reduction, name)
        _check_axis(axis)
        self.label_smoothing = _fraction(label_smoothing, "label_smoothing")

    def prepare_targets(self, y, n, output_shape, dtype):
        y = self._dense_targets(y, n, output_shape, dtype, "targets")
        return self._check_range(y, 0, 1, "targets")

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        return _kernels().sigmoid_binary_cross_entropy(logits, y, out, need_grad,
                                                       label_smoothing=self.label_smoothing)

    def _mean(self, y, pred, out=None, need_grad=True):
        if self.from_logits:
            return self._logits_mean(y, pred, out, need_grad)
        # logit(p) = log(p / (1 - p)) is the inverse of the sigmoid, so the stable kernel applies.
        return _on_probabilities(self, y, pred, out, need_grad, binary=True)

    def _settings(self):
        return {**super()._settings(), "label_smoothing": self.label_smoothing}


_KERAS_NAMES = {  # Keras's loss function names and aliases
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "log_cosh": LogCosh, "logcosh": LogCosh,
    "hinge": Hinge,
    "kld": KLDivergence, "kl_divergence": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
# Keras also accepts class names as strings ("MeanSquaredError"); names are matched lower-case.
_BY_NAME = {**{cls.__name__.lower(): cls for cls in set(_KERAS_NAMES.values())}, **_KERAS_NAMES}


def get(identifier):
    """A :class:`Loss` from a Keras name (``"mse"``, ``"sparse_categorical_crossentropy"``...), a
    class name (``"MeanSquaredError"``) or an instance (returned as it is)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if callable(identifier) and not isinstance(identifier, type):
        raise TypeError(f"loss={getattr(identifier, '__name__', identifier)!r} is a Python function; "
                        "fastnn trains through its own loss kernels and cannot differentiate "
                        "one: use one of fastnn.losses (by name or class), e.g. "
                        "BinaryCrossentropy() with fit(class_weight=...) for a weighted loss")
    raise ValueError(f"unknown loss {identifier!r}; expected a Loss instance or one of "
                     f"{', '.join(sorted(_KERAS_NAMES))}")


class _FuzzFactorLoss(_PredictionLoss):
    """A loss whose kernel takes Keras's fixed fuzz factor EPSILON (not a setting of the loss)."""

    def _kernel_args(self):
        return {"epsilon": EPSILON}

    def _settings(self):
        return {}


class MeanAbsolutePercentageError(_FuzzFactorLoss):
    """mean(100 * |y_true - y_pred| / max(|y_true|, EPSILON)) over all outputs of the batch."""
    name = kernel = "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_FuzzFactorLoss):
    """mean((log(max(y_pred, EPSILON) + 1) - log(max(y_true, EPSILON) + 1))^2)."""
    name = kernel = "mean_squared_logarithmic_error"


class Poisson(_FuzzFactorLoss):
    """mean(y_pred - y_true * log(y_pred + EPSILON)): counts y_true with predicted rates y_pred."""
    name = kernel = "poisson"


class SquaredHinge(Hinge):
    """mean(max(1 - y_true * y_pred, 0)^2) for labels -1/+1 (0/1 labels become -1/+1, as in Keras)."""
    name = kernel = "squared_hinge"


class CosineSimilarity(_PredictionLoss):
    """mean over samples of -cos(y_true, y_pred) (row L2 norms at least EPSILON): -1 when they point
    the same way."""
    name = kernel = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        _check_axis(axis)

    def _kernel_args(self):
        return {"epsilon": EPSILON}

    def _settings(self):
        return {}


class CategoricalHinge(_PredictionLoss):
    """mean over samples of max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)."""
    name = kernel = "categorical_hinge"


def _nonnegative(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < np.inf:
        raise ValueError(f"{what} must be a non-negative finite number, got {value!r}")
    return float(value)


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Keras's binary focal cross-entropy: (1 - p_t)^gamma times the binary cross-entropy, each
    output weighted alpha (class 1) / 1 - alpha (class 0) with ``apply_class_balancing``."""
    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _fraction(alpha, "alpha")
        self.gamma = _nonnegative(gamma, "gamma")

    def _kernel(self, y, x, out, need_grad, from_logits):
        return _kernels().binary_focal_cross_entropy(
            x, y, out, need_grad, from_logits=from_logits, gamma=self.gamma, alpha=self.alpha,
            apply_class_balancing=self.apply_class_balancing, label_smoothing=self.label_smoothing,
            epsilon=EPSILON)

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        return self._kernel(y, logits, out, need_grad, True)

    def _mean(self, y, pred, out=None, need_grad=True):
        return self._kernel(y, pred, out, need_grad, self.from_logits)

    def _settings(self):
        return {**super()._settings(), "apply_class_balancing": self.apply_class_balancing,
                "alpha": self.alpha, "gamma": self.gamma}


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """Keras's categorical focal cross-entropy: sum over classes of alpha (1 - p)^gamma times the
    cross-entropy term, for one-hot or probability targets."""
    name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name)
        self.alpha = _nonnegative(alpha, "alpha")
        self.gamma = _nonnegative(gamma, "gamma")

    def _kernel(self, y, x, out, need_grad, from_logits):
        return _kernels().categorical_focal_cross_entropy(
            x, y, out, need_grad, from_logits=from_logits, gamma=self.gamma, alpha=self.alpha,
            label_smoothing=self.label_smoothing, epsilon=EPSILON)

    def _logits_mean(self, y, logits, out=None, need_grad=True):
        return self._kernel(y, logits, out, need_grad, True)

    def _mean(self, y, pred, out=None, need_grad=True):
        return self._kernel(y, pred, out, need_grad, self.from_logits)

    def _settings(self):
        return {**super()._settings(), "alpha": self.alpha, "gamma": self.gamma}


_KERAS_NAMES.update({
    "cosine_similarity": CosineSimilarity, "categorical_hinge": CategoricalHinge,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "poisson": Poisson, "squared_hinge": SquaredHinge,
    "bce": BinaryCrossentropy,  # Keras 3's short name (also "BCE": names match lower-case)
})
_BY_NAME.update({**{cls.__name__.lower(): cls for cls in set(_KERAS_NAMES.values())}, **_KERAS_NAMES})
