"""Stateful metric objects for ``compile(metrics=[...])``: each keeps sufficient statistics (counts,
a confusion matrix, all scores for AUC), so ``result()`` after any sequence of batches equals the
function on the concatenated data, never an average of per-batch ratios.
"""
import copy
import inspect
import warnings

import numpy as np

from .classification import _class_sums, _log_loss_inputs, _per_sample_log_loss, _prf_from_counts, _zero_division_value
from .functions import binary_accuracy, categorical_accuracy, cosine_similarity, sparse_categorical_accuracy, sparse_top_k_categorical_accuracy, top_k_categorical_accuracy
from .inputs import AVERAGES, BINARY_THRESHOLD, KERAS_TOP_K, _array, _same_length, _weights, index_of, label_pair, read_labels
from .ranking import _average_columns, _binary_average_precision, _binary_roc_auc, _multiclass_roc_auc
from .regression import _REGRESSION_AVERAGES, _combine_outputs, _r2_from_sums, _regression_inputs


# ===================================================================== stateful metric objects
class Metric:
    """A metric accumulated over batches: ``reset_state()``, ``update_state(y_true, y_pred,
    sample_weight=None)``, ``result() -> float``, and a ``name`` for the logs.

    Subclasses keep sufficient statistics, so ``result()`` over any split into batches equals the
    metric of all the data at once.
    """
    default_name = "metric"
    direction = None  # "up" or "down": where the metric improves (callbacks' mode="auto"), as in Keras

    def __init__(self, name=None):
        self.name = name or self.default_name
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments that rebuild this metric: ``type(self)(**get_config())``.

        Read from the constructors' parameters (following ``**kwargs`` up the classes) and the
        attributes of the same names. A metric built around a user function (a plain
        :class:`MeanMetricWrapper`) has none: TypeError.
        """
        config = {}
        for cls in type(self).__mro__:
            init = cls.__dict__.get("__init__")
            if init is None:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]
            for p in params:
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in config:
                    continue
                if p.name in ("fn", "direction"):
                    raise TypeError(f"{type(self).__name__} wraps a function and has no config")
                if hasattr(self, p.name):
                    value = getattr(self, p.name)
                else:
                    value = getattr(self, "kwargs", {}).get(p.name, p.default)
                config[p.name] = value.tolist() if isinstance(value, np.ndarray) else value
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        """A copy with the same configuration and an empty state."""
        twin = copy.deepcopy(self)
        twin.reset_state()
        return twin

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class MeanMetricWrapper(Metric):
    """The (weighted) mean of a per-sample function ``fn(y_true, y_pred, **kwargs)`` over all
    samples seen: ``total / count``, 0.0 before any update."""

    def __init__(self, fn, name=None, direction=None, **kwargs):
        self.fn, self.kwargs = fn, kwargs
        if direction is not None:
            self.direction = direction
        super().__init__(name or getattr(fn, "__name__", "mean_metric"))

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self.fn(y_true, y_pred, **self.kwargs), dtype=np.float64)
        w = _weights(sample_weight, len(values))
        self.total += float(np.sum(values) if w is None else np.dot(values, w))
        self.count += len(values) if w is None else float(np.sum(w))

    def result(self):
        return self.total / self.count if self.count else 0.0


def _accuracy_per_sample(y_true, y_pred, threshold=BINARY_THRESHOLD):
    t, p, _ = label_pair(y_true, y_pred, threshold)
    return (t == p).astype(np.float64)


class Accuracy(MeanMetricWrapper):
    """accuracy_score over all batches; y_pred may be model outputs (argmax of (N, C) scores, or
    p > threshold for an (N, 1) probability column). Unlike Keras's ``Accuracy``, which compares
    y_pred to y_true for exact equality, this compares the predicted labels."""
    direction = "up"

    def __init__(self, threshold=BINARY_THRESHOLD, name="accuracy"):
        super().__init__(_accuracy_per_sample, name, threshold=threshold)


class BinaryAccuracy(MeanMetricWrapper):
    """Mean of :func:`binary_accuracy`: the fraction of outputs on the right side of threshold."""
    direction = "up"

    def __init__(self, threshold=BINARY_THRESHOLD, name="binary_accuracy"):
        super().__init__(binary_accuracy, name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """Mean of :func:`categorical_accuracy` (one-hot targets)."""
    direction = "up"

    def __init__(self, name="categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Mean of :func:`sparse_categorical_accuracy` (integer labels)."""
    direction = "up"

    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """Mean of :func:`top_k_categorical_accuracy` (one-hot targets, Keras's k = 5)."""
    direction = "up"

    def __init__(self, k=KERAS_TOP_K, name="top_k_categorical_accuracy"):
        super().__init__(top_k_categorical_accuracy, name, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Mean of :func:`sparse_top_k_categorical_accuracy` (integer labels, Keras's k = 5)."""
    direction = "up"

    def __init__(self, k=KERAS_TOP_K, name="sparse_top_k_categorical_accuracy"):
        super().__init__(sparse_top_k_categorical_accuracy, name, k=k)


class CosineSimilarity(MeanMetricWrapper):
    """Mean of :func:`cosine_similarity` over samples (Keras's CosineSimilarity)."""
    direction = "up"

    def __init__(self, axis=-1, name="cosine_similarity"):
        super().__init__(cosine_similarity, name, axis=axis)


class _ConfusionMetric(Metric):
    """Accumulates the labels seen and, per label, the weighted counts of true positives,
    predictions and true samples, from which every set-wise score (precision, recall, F-beta,
    any average) follows exactly."""
    direction = "up"

    def __init__(self, average="binary", pos_label=1, labels=None, zero_division=0.0,
                 threshold=BINARY_THRESHOLD, name=None):
        if average not in AVERAGES[1:]:
            raise ValueError(f"average must be one of {AVERAGES[1:]} for a metric object (one "
                             f"number per epoch), got {average!r}")
        _zero_division_value(zero_division)
        self.average, self.pos_label, self.labels = average, pos_label, labels
        self.zero_division, self.threshold = zero_division, threshold
        super().__init__(name)

    def reset_state(self):
        self.classes = np.empty(0)
        self.sums = tuple(np.zeros(0, dtype=np.int64) for _ in range(3))  # tp, predicted, true

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, present = label_pair(y_true, y_pred, self.threshold)
        w = _weights(sample_weight, len(t))
        classes = np.union1d(self.classes, present) if len(self.classes) else present
        where = index_of(classes, self.classes)
        grown = []
        for old, new in zip(self.sums, _class_sums(t, p, classes, w)):
            total = new.copy() if old.dtype == new.dtype else new.astype(np.float64)
            total[where] += old
            grown.append(total)
        self.classes, self.sums = classes, tuple(grown)

    def _scores(self, beta=1.0):
        if not len(self.classes):
            return 0.0, 0.0, 0.0
        return _prf_from_counts(self.classes, self.sums, beta=beta, labels=self.labels,
                                pos_label=self.pos_label, average=self.average, warn_for=(),
                                zero_division=self.zero_division)[:3]


class PrecisionScore(_ConfusionMetric):
    """precision_score over all batches (default zero_division 0.0, without warnings): labels
    from model outputs (argmax, or p > threshold for one column) and scikit-learn's averages.
    Keras's thresholded ``Precision`` is :class:`fastnn.metrics.Precision`."""
    default_name = "precision"

    def result(self):
        return self._scores()[0]


class RecallScore(_ConfusionMetric):
    """recall_score over all batches (default zero_division 0.0, without warnings), as
    :class:`PrecisionScore`. Keras's thresholded ``Recall`` is :class:`fastnn.metrics.Recall`."""
    default_name = "recall"

    def result(self):
        return self._scores()[1]


class FBetaScore(_ConfusionMetric):
    """fbeta_score over all batches (default zero_division 0.0, without warnings)."""
    default_name = "fbeta_score"

    def __init__(self, beta=1.0, **kwargs):
        self.beta = beta
        super().__init__(**kwargs)

    def result(self):
        return self._scores(self.beta)[2]


class F1Score(FBetaScore):
    """f1_score over all batches (default zero_division 0.0, without warnings)."""
    default_name = "f1_score"

    def __init__(self, **kwargs):
        super().__init__(beta=1.0, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


def _model_scores(y_true, y_pred):
    """(labels (N,), scores): scores (N,) for one output or two (column 1, the class-1
    probability), else (N, C)."""
    t = read_labels(y_true, "y_true")
    s = _array(y_pred, "y_pred").astype(np.float64)
    if s.ndim == 2 and s.shape[1] <= 2:
        s = s[:, -1]
    _same_length(("y_true", t), ("y_pred", s))
    return t, s


class AUCScore(Metric):
    """roc_auc_score (curve="ROC") or average_precision_score (curve="PR") of all samples seen.

    Keeps every label and score, so the result is exact (Keras's AUC, :class:`fastnn.metrics.AUC`,
    approximates the curve with 200 thresholds). Model outputs: one column, or two (column 1 is used), is a binary problem;
    C > 2 columns are one-vs-rest (or one-vs-one) over the classes ``labels`` (default 0..C-1).
    ``result()`` is nan while the AUC is undefined (a class without samples yet). Exactness has a
    price: ``result()`` sorts all n scores seen, O(n log n), and ``fit`` asks for it after every
    batch; on large training sets prefer AUC in ``evaluate`` or on validation data.
    """
    direction = "up"
    default_name = "auc"

    def __init__(self, curve="ROC", multi_class="ovr", average="macro", labels=None, name=None):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"curve must be 'ROC' or 'PR', got {curve!r}")
        self.curve, self.multi_class, self.average, self.labels = curve, multi_class, average, labels
        super().__init__(name)

    def reset_state(self):
        self._true, self._scores, self._weights = [], [], []

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, s = _model_scores(y_true, y_pred)
        w = _weights(sample_weight, len(t))
        self._true.append(np.array(t, copy=True))  # copies: models reuse their output buffers
        self._scores.append(np.array(s, copy=True))
        self._weights.append(np.ones(len(t)) if w is None else np.asarray(w, dtype=np.float64))

    def result(self):
        if not self._true:
            return float("nan")
        t, s = np.concatenate(self._true), np.concatenate(self._scores)
        w = np.concatenate(self._weights)
        w = None if (w == 1).all() else w
        if s.ndim == 1:
            positive = t == (1 if self.labels is None else self.labels[-1])
            if self.curve == "PR":
                return _binary_average_precision(positive, s, w)
            return float("nan") if positive.all() or not positive.any() else _binary_roc_auc(positive, s, w)
        classes = np.arange(s.shape[1]) if self.labels is None else np.asarray(self.labels)
        encoded = index_of(classes, t)
        if self.curve == "ROC" and len(np.unique(encoded)) < len(classes):
            return float("nan")
        if self.curve == "PR":
            Y = (encoded[:, None] == np.arange(len(classes))).astype(np.int64)
            return _average_columns(_binary_average_precision, Y, s, self.average, w)
        return _multiclass_roc_auc(t, s, classes, self.multi_class, self.average, w, None)


class LogLoss(Metric):
    """log_loss over all batches: the sum of per-sample losses over the sum of weights.
    The classes are ``labels``, or 0..C-1 for C output columns (0, 1 for one column)."""
    direction = "down"
    default_name = "log_loss"

    def __init__(self, labels=None, name=None):
        self.labels = labels
        super().__init__(name)

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred)
        labels = self.labels
        if labels is None:
            labels = np.arange(2 if p.ndim == 1 or p.shape[1] == 1 else p.shape[1])
        y = np.asarray(y_true)
        if y.ndim == 2 and y.shape[1] > 1:
            y = np.argmax(y, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # rows of float32 softmax sum to 1 +- 1e-7
            T, p = _log_loss_inputs(y, p, labels)
        w = _weights(sample_weight, len(T))
        losses = _per_sample_log_loss(T, p)
        self.total += float(np.sum(losses) if w is None else np.dot(losses, w))
        self.count += len(T) if w is None else float(np.sum(w))

    def result(self):
        return self.total / self.count if self.count else 0.0


def _metric_multioutput(multioutput, allowed):
    """A metric object's ``multioutput``: one of ``allowed`` or per-output weights (never
    "raw_values": ``result()`` is one number)."""
    if isinstance(multioutput, str):
        if multioutput not in allowed:
            raise ValueError(f"multioutput must be one of {allowed} or an array of per-output "
                             f"weights for a metric object, got {multioutput!r}")
        return multioutput
    weights = np.asarray(multioutput, dtype=np.float64)
    if weights.ndim != 1 or not np.isfinite(weights).all():
        raise ValueError(f"multioutput weights must be a 1-D array of finite numbers, got {multioutput!r}")
    return weights


class _RegressionMetric(Metric):
    """Per-output weighted sums of an error, combined over outputs as ``multioutput`` says."""
    direction = "down"

    def __init__(self, multioutput="uniform_average", name=None):
        self.multioutput = _metric_multioutput(multioutput, ("uniform_average",))
        super().__init__(name)

    def reset_state(self):
        self.error_sum, self.weight_sum = 0.0, 0.0

    def _error(self, t, p):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, w, _ = _regression_inputs(y_true, y_pred, sample_weight, "uniform_average",
                                        _REGRESSION_AVERAGES)
        e = self._error(t, p)
        self.error_sum = self.error_sum + (e.sum(axis=0) if w is None else w @ e)
        self.weight_sum += len(t) if w is None else float(np.sum(w))

    def _per_output(self):
        return self.error_sum / self.weight_sum

    def result(self):
        if not self.weight_sum:
            return 0.0
        return _combine_outputs(np.atleast_1d(self._per_output()), self.multioutput)


class MeanAbsoluteError(_RegressionMetric):
    """mean_absolute_error over all batches."""
    default_name = "mean_absolute_error"

    def _error(self, t, p):
        return np.abs(p - t)


class MeanSquaredError(_RegressionMetric):
    """mean_squared_error over all batches."""
    default_name = "mean_squared_error"

    def _error(self, t, p):
        return (t - p) ** 2


class RootMeanSquaredError(MeanSquaredError):
    """root_mean_squared_error over all batches (per-output roots, then averaged, as sklearn)."""
    default_name = "root_mean_squared_error"

    def _per_output(self):
        return np.sqrt(super()._per_output())


class R2Score(Metric):
    """r2_score over all batches. Keeps per output the weighted sum of squared residuals and, for
    the targets, the total weight, mean and sum of squared deviations, merged batch by batch with
    Chan et al.'s update (1979, https://doi.org/10.1007/978-3-642-51461-6_3), which stays accurate
    where sum(y^2) - n*mean^2 would cancel."""
    direction = "up"
    default_name = "r2_score"

    def __init__(self, multioutput="uniform_average", force_finite=True, name=None):
        self.multioutput = _metric_multioutput(multioutput, ("uniform_average", "variance_weighted"))
        self.force_finite = bool(force_finite)
        super().__init__(name)

    def reset_state(self):
        self.samples, self.weight, self.mean, self.m2, self.residual = 0, 0.0, 0.0, 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, w, _ = _regression_inputs(y_true, y_pred, sample_weight, "uniform_average",
                                        _REGRESSION_AVERAGES)
        wb = np.ones(len(t)) if w is None else w.astype(np.float64)
        weight_b = wb.sum()
        if weight_b == 0:
            self.samples += len(t)
            return
        mean_b = np.average(t, axis=0, weights=wb)
        m2_b = wb @ (t - mean_b) ** 2
        total = self.weight + weight_b
        delta = mean_b - self.mean
        self.m2 = self.m2 + m2_b + delta ** 2 * self.weight * weight_b / total
        self.mean = self.mean + delta * weight_b / total
        self.weight = total
        self.residual = self.residual + wb @ (t - p) ** 2
        self.samples += len(t)

    def result(self):
        if self.samples < 2:
            return float("nan")
        r2 = _r2_from_sums(np.atleast_1d(self.residual), np.atleast_1d(self.m2), self.force_finite)
        return _combine_outputs(r2, self.multioutput, np.atleast_1d(self.m2))
