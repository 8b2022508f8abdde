"""Keras's thresholded confusion metrics: ``Precision``, ``Recall`` and ``AUC`` with Keras's
arguments and Keras's numbers.

Each keeps, per threshold, the weighted counts of true/false positives and negatives over every
element of ``y_pred`` (an (N, C) output is flattened into N*C binary decisions unless
``multi_label=True``). A prediction is positive when it is strictly above the threshold; a label is
positive when it is non-zero. ``AUC`` sums the curve through its ``num_thresholds`` points (a
Riemann sum, so it differs slightly from the exact area); the exact, scikit-learn-style scores are
``PrecisionScore``, ``RecallScore`` and ``AUCScore`` in :mod:`fastnn.metrics.objects`.

One extension over Keras: integer labels (N,) or (N, 1) with an (N, C > 1) output are one-hot
encoded first (Keras needs y_true of y_pred's shape), so ``"precision"`` also works with
``sparse_categorical_crossentropy``.
"""
import numpy as np

from .inputs import _array, _same_length, _weights
from .objects import Metric

NEG_INF = -1e10          # Keras's stand-in for -inf (top_k filtering, thresholds with top_k)
EPSILON = 1e-7           # Keras's backend epsilon: AUC's end thresholds are -EPSILON and 1 + EPSILON
_CURVES = ("ROC", "PR")
_SUMMATIONS = ("interpolation", "minoring", "majoring")


def _confusion_inputs(y_true, y_pred, sample_weight, top_k=None, class_id=None):
    """(labels bool (N, L), predictions float (N, L), weights (N, L) or None) as Keras reads them."""
    p = _array(y_pred, "y_pred").astype(np.float64)
    t = _array(y_true, "y_true")
    if t.dtype.kind not in "biuf":
        raise TypeError(f"y_true must be numeric labels, got dtype {t.dtype}")
    _same_length(("y_true", t), ("y_pred", p))
    if p.ndim == 1:
        p = p[:, None]
    if t.ndim == 1:
        t = t[:, None]
    if t.shape != p.shape:
        if t.shape[1:] == (1,) and p.ndim == 2 and p.shape[1] > 1:
            labels = t[:, 0]
            if (labels != np.round(labels)).any() or (labels < 0).any() or (labels >= p.shape[1]).any():
                raise ValueError(f"y_true of shape {t.shape} with y_pred of shape {p.shape} must hold "
                                 f"class labels in 0..{p.shape[1] - 1}")
            t = labels.astype(np.int64)[:, None] == np.arange(p.shape[1])
        else:
            raise ValueError(f"y_true must have y_pred's shape {p.shape} (or be class labels), "
                             f"got shape {t.shape}")
    positive = t != 0
    if top_k is not None:
        keep = np.zeros(p.shape, dtype=bool)
        order = np.argsort(-p, axis=-1, kind="stable")[..., :top_k]
        np.put_along_axis(keep, order, True, axis=-1)
        p = np.where(keep, p, NEG_INF)
    if class_id is not None:
        if p.shape[1] == 1 and np.ndim(y_pred) == 1:
            raise ValueError("class_id needs y_pred of shape (num_samples, num_classes), got "
                             f"shape {np.shape(y_pred)}")
        if not 0 <= class_id < p.shape[1]:
            raise ValueError(f"class_id must be in 0..{p.shape[1] - 1}, got {class_id}")
        positive, p = positive[:, class_id:class_id + 1], p[:, class_id:class_id + 1]
    w = _weights(sample_weight, len(p))
    w = None if w is None else np.broadcast_to(w.astype(np.float64)[:, None], p.shape)
    return positive, p, w


def _counts(positive, above, w):
    """Weighted (tp, fp, fn, tn) per threshold from ``above`` (T, ...) and labels (...)."""
    w = np.ones(positive.shape) if w is None else w
    pos_w, neg_w = np.where(positive, w, 0.0), np.where(positive, 0.0, w)
    tp = (above * pos_w).sum(axis=1)
    fp = (above * neg_w).sum(axis=1)
    return tp, fp, pos_w.sum(axis=0) - tp, neg_w.sum(axis=0) - fp


def _check_thresholds(thresholds):
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if values.ndim != 1 or not len(values) or ((values < 0) | (values > 1)).any():
        raise ValueError(f"thresholds must be numbers in [0, 1] (one, or a list), got {thresholds!r}")
    return values


class _ThresholdedMetric(Metric):
    """Precision or recall at one or more thresholds, over all elements (Keras's semantics)."""
    direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        if class_id is not None and (not isinstance(class_id, (int, np.integer)) or class_id < 0):
            raise ValueError(f"class_id must be a non-negative integer or None, got {class_id!r}")
        self.init_thresholds = thresholds
        if thresholds is None:
            self.thresholds = np.array([0.5 if top_k is None else NEG_INF])
        else:
            self.thresholds = _check_thresholds(thresholds)
        self.top_k, self.class_id = top_k, class_id
        super().__init__(name)

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives, self.false_positives = np.zeros(n), np.zeros(n)
        self.false_negatives = np.zeros(n)

    def update_state(self, y_true, y_pred, sample_weight=None):
        positive, p, w = _confusion_inputs(y_true, y_pred, sample_weight, self.top_k, self.class_id)
        positive, p = positive.reshape(-1), p.reshape(-1)
        w = None if w is None else w.reshape(-1)
        above = p[None, :] > self.thresholds[:, None]
        tp, fp, fn, _ = _counts(positive, above, w)
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += fn

    def _ratio(self, other):
        total = self.true_positives + other
        values = np.divide(self.true_positives, total, out=np.zeros_like(total), where=total != 0)
        single = self.init_thresholds is None or np.ndim(self.init_thresholds) == 0
        return float(values[0]) if single else values.copy()

    def get_config(self):
        return {"name": self.name, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ThresholdedMetric):
    """Keras's ``Precision``: tp / (tp + fp) over all elements with ``y_pred > threshold``
    (default 0.5; with ``top_k`` only each row's k largest predictions count), restricted to
    column ``class_id`` if given. A list of ``thresholds`` gives an array of values, one per
    threshold (as Keras; the progress bar of ``fit(verbose=1)`` shows only single numbers, so
    use ``verbose=0`` or one threshold per metric there); 0.0 while undefined. For scikit-learn's averaged precision use :class:`PrecisionScore`."""
    default_name = "precision"

    def result(self):
        return self._ratio(self.false_positives)


class Recall(_ThresholdedMetric):
    """Keras's ``Recall``: tp / (tp + fn), arguments as :class:`Precision`. For scikit-learn's
    averaged recall use :class:`RecallScore`."""
    default_name = "recall"

    def result(self):
        return self._ratio(self.false_negatives)


class AUC(Metric):
    """Keras's ``AUC``: the area under the ROC (or PR) curve through ``num_thresholds`` points.

    Thresholds are ``i / (num_thresholds - 1)`` for i = 1..num_thresholds-2 plus -1e-7 and 1+1e-7
    (or the given ``thresholds`` plus those two ends). ``summation_method`` "interpolation" is the
    trapezoidal rule for ROC and Davis & Goadrich's interpolation for PR (2006,
    https://doi.org/10.1145/1143844.1143874); "minoring" and "majoring" are lower and upper Riemann
    sums. ``multi_label=True`` computes one AUC per output column and averages them (weighted by
    ``label_weights``); otherwise all elements are one binary problem. ``from_logits`` applies the
    sigmoid first. For the exact area (scikit-learn's roc_auc_score / average_precision_score) use
    :class:`AUCScore`.
    """
    direction = "up"
    default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        curve = curve.upper() if isinstance(curve, str) else curve
        if curve not in _CURVES:
            raise ValueError(f"curve must be one of {_CURVES}, got {curve!r}")
        method = summation_method.lower() if isinstance(summation_method, str) else summation_method
        if method not in _SUMMATIONS:
            raise ValueError(f"summation_method must be one of {_SUMMATIONS}, got {summation_method!r}")
        self.init_thresholds = thresholds
        if thresholds is not None:
            inner = np.sort(_check_thresholds(thresholds))
            self.evenly_spaced = False
        else:
            if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError(f"num_thresholds must be an integer > 1, got {num_thresholds!r}")
            inner = np.array([(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)])
            self.evenly_spaced = True
        self.thresholds = np.r_[0.0 - EPSILON, inner, 1.0 + EPSILON]
        self.num_thresholds = len(self.thresholds)
        self.curve, self.summation_method = curve, method
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, dtype=np.float64)
        if self.label_weights is not None and (self.label_weights < 0).any():
            raise ValueError("label_weights must be non-negative")
        self.from_logits = bool(from_logits)
        super().__init__(name)

    def reset_state(self):
        shape = (self.num_thresholds,) if not self.multi_label or self.num_labels is None else \
            (self.num_thresholds, self.num_labels)
        self._built = not self.multi_label or self.num_labels is not None
        self.true_positives, self.false_positives = np.zeros(shape), np.zeros(shape)
        self.true_negatives, self.false_negatives = np.zeros(shape), np.zeros(shape)

    def _above(self, p):
        """(T, ...) booleans p > threshold; for Keras's evenly spaced thresholds computed by
        bucketing, as Keras does, so values on a threshold land where Keras puts them."""
        if not self.evenly_spaced:
            return p[None] > self.thresholds.reshape((-1,) + (1,) * p.ndim)
        p32 = np.clip(p.astype(np.float32), 0.0, 1.0)
        bucket = np.maximum(np.ceil(p32 * np.float32(self.num_thresholds - 1)) - 1, 0).astype(np.int64)
        return np.arange(self.num_thresholds).reshape((-1,) + (1,) * p.ndim) <= bucket[None]

    def update_state(self, y_true, y_pred, sample_weight=None):
        positive, p, w = _confusion_inputs(y_true, y_pred, sample_weight)
        if self.from_logits:
            p = 0.5 * (1.0 + np.tanh(0.5 * p))  # the sigmoid, without overflow
        if self.multi_label:
            if np.ndim(y_pred) != 2:
                raise ValueError(f"AUC(multi_label=True) needs y_pred of rank 2, got shape {np.shape(y_pred)}")
            if not self._built:
                shape = (self.num_thresholds, p.shape[1])
                for attr in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
                    setattr(self, attr, np.zeros(shape))
                self._built = True
            elif self.true_positives.shape[1] != p.shape[1]:
                raise ValueError(f"AUC(multi_label=True) was built for {self.true_positives.shape[1]} "
                                 f"labels, got y_pred with {p.shape[1]} columns")
        else:
            if self.label_weights is not None:
                lw = np.broadcast_to(self.label_weights, p.shape)
                w = lw if w is None else w * lw
            positive, p = positive.reshape(-1), p.reshape(-1)
            w = None if w is None else w.reshape(-1)
        tp, fp, fn, tn = _counts(positive, self._above(p), w)
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += fn
        self.true_negatives += tn

    def _interpolate_pr_auc(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))

    def result(self):
        tp, fp, fn, tn = self.true_positives, self.false_positives, self.false_negatives, self.true_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            terms = self._interpolate_pr_auc()
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            else:
                x, y = recall, _divide_no_nan(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            terms = (x[:-1] - x[1:]) * heights
        if not self.multi_label:
            return float(terms.sum())
        per_label = terms.sum(axis=0)
        if self.label_weights is None:
            return float(per_label.mean()) if per_label.size else 0.0
        total = self.label_weights.sum()
        return float((per_label * self.label_weights).sum() / total) if total else 0.0

    def get_config(self):
        config = {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self.from_logits}
        if self.init_thresholds is not None:
            config["thresholds"] = self.init_thresholds
        return config


def _divide_no_nan(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.zeros(a.shape), where=b != 0)
