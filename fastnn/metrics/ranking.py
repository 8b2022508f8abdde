"""scikit-learn's ranking scores: ROC and precision-recall curves, the area under them and the
average precision.
"""
import warnings

import numpy as np

from .inputs import UndefinedMetricWarning, _array, _check_integral, _indicator, _same_length, _weights, binary_target, index_of


def _ranked_counts(positive, score, weights):
    """(fps, tps, thresholds): weighted numbers of negatives and positives with score >= each
    distinct score, the distinct scores in decreasing order (zero-weight samples dropped)."""
    if weights is not None:
        keep = weights != 0
        positive, score, weights = positive[keep], score[keep], weights[keep]
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order].astype(np.float64)
    last_of_each = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    if weights is None:
        tps = np.cumsum(positive)[last_of_each]
        fps = last_of_each + 1 - tps
    else:
        w = weights[order].astype(np.float64)
        tps = np.cumsum(positive * w)[last_of_each]
        fps = np.cumsum((1 - positive) * w)[last_of_each]
    return fps, tps, score[last_of_each]


def _scores_1d(y_score, name="y_score"):
    s = _array(y_score, name)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1:
        raise ValueError(f"{name} must be one score per sample, shape (N,), got shape {s.shape}"
                         + ("; for a two-column output pass y_score[:, 1]" if s.ndim == 2 else ""))
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or inf")
    return s


def _binary_ranking_inputs(y_true, y_score, pos_label, sample_weight):
    positive = binary_target(y_true, pos_label)
    s = _scores_1d(y_score)
    _same_length(("y_true", positive), ("y_score", s))
    return _ranked_counts(positive, s, _weights(sample_weight, len(s)))


def roc_curve(y_true, y_score, *, pos_label=None, sample_weight=None, drop_intermediate=True):
    """Receiver operating characteristic: (fpr, tpr, thresholds), thresholds decreasing.

    At threshold T (predict positive when score >= T): tpr = TP / P, fpr = FP / N; the curve starts
    at (0, 0) with T = inf (Fawcett 2006, https://doi.org/10.1016/j.patrec.2005.10.010).
    ``drop_intermediate`` keeps only the points where the curve's step changes (the first and last
    always), which does not change its area. No negatives (positives) makes fpr (tpr) NaN, with an
    UndefinedMetricWarning.
    """
    fps, tps, thresholds = _binary_ranking_inputs(y_true, y_score, pos_label, sample_weight)
    if drop_intermediate and len(fps) > 2:
        step_changes = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
        keep = np.r_[True, step_changes, True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    rates = []
    for counts, what in ((fps, "negative"), (tps, "positive")):
        if counts[-1] <= 0:
            warnings.warn(f"no {what} samples in y_true: the rate is undefined (NaN)",
                          UndefinedMetricWarning, stacklevel=2)
            rates.append(np.full(counts.shape, np.nan))
        else:
            rates.append(counts / counts[-1])
    return rates[0], rates[1], thresholds


def precision_recall_curve(y_true, y_score, *, pos_label=None, sample_weight=None,
                           drop_intermediate=False):
    """(precision, recall, thresholds) with thresholds increasing; the last point is (1, 0).

    At threshold T: precision = TP / (TP + FP), recall = TP / P. ``drop_intermediate`` removes the
    thresholds where TP does not change on either side. With no positive sample, recall is set to
    1 (and a warning given), as scikit-learn does.
    """
    fps, tps, thresholds = _binary_ranking_inputs(y_true, y_score, pos_label, sample_weight)
    if drop_intermediate and len(fps) > 2:
        keep = np.r_[True, (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    predicted = tps + fps
    prec = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    if tps[-1] == 0:
        warnings.warn("no positive samples in y_true: recall is set to 1 for all thresholds",
                      UndefinedMetricWarning, stacklevel=2)
        rec = np.ones_like(tps)
    else:
        rec = tps / tps[-1]
    return np.r_[prec[::-1], 1.0], np.r_[rec[::-1], 0.0], thresholds[::-1]


def auc(x, y):
    """Area under the curve through the points (x, y) by the trapezoidal rule; x monotonic."""
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    _same_length(("x", x), ("y", y))
    if len(x) < 2:
        raise ValueError(f"at least 2 points are needed to compute an area, got {len(x)}")
    dx = np.diff(x)
    direction = 1.0
    if (dx < 0).any():
        if not (dx <= 0).all():
            raise ValueError("x is neither increasing nor decreasing")
        direction = -1.0
    return float(direction * np.sum(dx * (y[1:] + y[:-1]) / 2))


def _binary_roc_auc(positive, score, weights=None, max_fpr=None):
    """ROC AUC of one binary problem; ValueError when y_true holds a single class."""
    if positive.all() or not positive.any():
        raise ValueError("only one class is present in y_true: ROC AUC is not defined, it needs "
                         "both positive and negative samples")
    fpr, tpr, _ = roc_curve(positive, score, sample_weight=weights)
    if max_fpr is None or max_fpr == 1:
        return auc(fpr, tpr)
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    # partial AUC up to max_fpr, then McClish's correction to [0.5, 1] (McClish 1989,
    # https://doi.org/10.1177/0272989X8900900307)
    stop = np.searchsorted(fpr, max_fpr, "right")
    tpr_at = np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])
    partial = auc(np.r_[fpr[:stop], max_fpr], np.r_[tpr[:stop], tpr_at])
    min_area, max_area = 0.5 * max_fpr ** 2, max_fpr
    return 0.5 * (1 + (partial - min_area) / (max_area - min_area))


def _average_columns(binary_score, Y, S, average, weights):
    """A binary score averaged over the columns of indicator Y (N, C) and scores S (N, C).

    micro: one problem of all N*C entries; macro: mean over columns; weighted: mean weighted by
    each column's (weighted) number of positives, skipping empty columns; samples: mean over rows;
    None: one score per column.
    """
    if average not in (None, "micro", "macro", "weighted", "samples"):
        raise ValueError(f"average must be None, 'micro', 'macro', 'weighted' or 'samples', "
                         f"got {average!r}")
    if average == "micro":
        w = None if weights is None else np.repeat(weights, Y.shape[1])
        return float(binary_score(Y.reshape(-1).astype(bool), S.reshape(-1), w))
    if average == "samples":
        per_row = [binary_score(Y[i].astype(bool), S[i], None) for i in range(len(Y))]
        return float(np.average(per_row, weights=weights))
    column_weight = None
    if average == "weighted":
        column_weight = (Y if weights is None else Y * weights[:, None]).sum(axis=0).astype(np.float64)
        if np.isclose(column_weight.sum(), 0):
            return 0.0
    scores = np.zeros(Y.shape[1])
    for c in range(Y.shape[1]):
        if column_weight is None or column_weight[c] != 0:
            scores[c] = binary_score(Y[:, c].astype(bool), S[:, c], weights)
    if average is None:
        return scores
    return float(np.average(scores, weights=column_weight))


def _scores_2d(y_score, n_columns):
    s = _array(y_score, "y_score").astype(np.float64)
    if s.ndim != 2 or s.shape[1] != n_columns:
        raise ValueError(f"y_score must have shape (N, {n_columns}), one column per class, got "
                         f"shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("y_score contains NaN or inf")
    return s


def _class_list(t, labels):
    """The classes of a multiclass score: sorted unique y_true, or ``labels`` (unique, sorted,
    covering y_true)."""
    if labels is None:
        return np.unique(t)
    classes = np.asarray(labels).reshape(-1)
    if len(np.unique(classes)) != len(classes) or not np.array_equal(np.unique(classes), classes):
        raise ValueError(f"labels must be unique and sorted, got {classes.tolist()}")
    missing = index_of(classes, t) < 0
    if missing.any():
        raise ValueError(f"y_true contains labels not in labels: {sorted(set(t[missing].tolist()))}")
    return classes


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """Area under the ROC curve: the probability that a random positive outranks a random negative.

    Binary: y_true (N,) with two labels (the larger is positive) and y_score (N,) the positive
    class's score; ``max_fpr`` gives McClish's standardised partial AUC. Multiclass: y_true (N,)
    with more labels and y_score (N, C) probabilities summing to 1 per row; ``multi_class="ovr"``
    averages the one-vs-rest AUCs (average "macro", "weighted" by prevalence, "micro" or None),
    ``"ovo"`` the pairwise AUCs of Hand & Till (2001, https://doi.org/10.1023/A:1010920819831).
    Multilabel: y_true an (N, C) indicator, averaged per column ("micro", "macro", "weighted",
    "samples", None). A single class in y_true raises ValueError: the AUC is not defined.
    """
    w = _weights(sample_weight, len(np.asarray(y_true)))
    y = _array(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] > 1:
        Y = _indicator(y)
        S = _scores_2d(y_score, Y.shape[1])
        _same_length(("y_true", Y), ("y_score", S))
        return _average_columns(lambda t, s, w_: _binary_roc_auc(t, s, w_, max_fpr), Y, S, average, w)
    t = _check_integral(y.reshape(-1), "y_true") if y.dtype.kind == "f" else y.reshape(-1)
    s = _array(y_score, "y_score")
    classes = np.unique(t)
    if len(classes) > 2 or (s.ndim == 2 and s.shape[1] > 2):
        return _multiclass_roc_auc(t, s, labels, multi_class, average, w, max_fpr)
    s = _scores_1d(s)
    _same_length(("y_true", t), ("y_score", s))
    return _binary_roc_auc(t == classes[-1], s, w, max_fpr)


def _multiclass_roc_auc(t, s, labels, multi_class, average, weights, max_fpr):
    if max_fpr is not None and max_fpr != 1:
        raise ValueError("partial AUC (max_fpr) is only defined for binary problems")
    if multi_class not in ("ovr", "ovo"):
        raise ValueError("y_true is multiclass: pass multi_class='ovr' (one-vs-rest) or 'ovo' "
                         f"(one-vs-one), got multi_class={multi_class!r}")
    allowed = ("micro", "macro", "weighted", None) if multi_class == "ovr" else ("macro", "weighted")
    if average not in allowed:
        raise ValueError(f"average must be one of {allowed} for multi_class={multi_class!r}, "
                         f"got {average!r}")
    classes = _class_list(t, labels)
    s = _scores_2d(s, len(classes))
    _same_length(("y_true", t), ("y_score", s))
    if not np.allclose(1, s.sum(axis=1)):
        raise ValueError("multiclass ROC AUC needs probabilities in y_score: rows must sum to 1")
    encoded = index_of(classes, t)
    if multi_class == "ovr":
        Y = (encoded[:, None] == np.arange(len(classes))).astype(np.int64)
        return _average_columns(_binary_roc_auc, Y, s, average, weights)
    if weights is not None:
        raise ValueError("sample_weight is not supported by one-vs-one ROC AUC")
    present = np.unique(encoded)
    pair_scores, prevalence = [], []
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            in_pair = (encoded == a) | (encoded == b)
            is_a = encoded[in_pair] == a
            pair_scores.append((_binary_roc_auc(is_a, s[in_pair, a]) +
                                _binary_roc_auc(~is_a, s[in_pair, b])) / 2)
            prevalence.append(in_pair.mean())
    return float(np.average(pair_scores, weights=prevalence if average == "weighted" else None))


def _binary_average_precision(positive, score, weights=None):
    prec, rec, _ = precision_recall_curve(positive, score, sample_weight=weights)
    return max(0.0, float(-np.sum(np.diff(rec) * prec[:-1])))


def average_precision_score(y_true, y_score, *, average="macro", pos_label=1, sample_weight=None):
    """Average precision: AP = sum_n (R_n - R_{n-1}) P_n over the thresholds of the PR curve
    (no interpolation), the area under the precision-recall step curve.

    Binary: y_true (N,) and y_score (N,), positives are ``pos_label``. Multiclass y_true (N,) with
    y_score (N, C), or a multilabel (N, C) indicator: one-vs-rest AP per class, averaged
    ("micro", "macro", "weighted" by positives, "samples" for multilabel, or None).
    """
    w = _weights(sample_weight, len(np.asarray(y_true)))
    y = _array(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] > 1:
        if pos_label != 1:
            raise ValueError("pos_label is fixed to 1 for an indicator y_true")
        Y = _indicator(y)
        S = _scores_2d(y_score, Y.shape[1])
        _same_length(("y_true", Y), ("y_score", S))
        return _average_columns(_binary_average_precision, Y, S, average, w)
    t = y.reshape(-1)
    classes = np.unique(t)
    if len(classes) > 2:
        if pos_label != 1:
            raise ValueError("pos_label is fixed to 1 for a multiclass y_true")
        S = _scores_2d(y_score, len(classes))
        _same_length(("y_true", t), ("y_score", S))
        Y = (index_of(classes, t)[:, None] == np.arange(len(classes))).astype(np.int64)
        return _average_columns(_binary_average_precision, Y, S, average, w)
    if len(classes) == 2 and (index_of(classes, [pos_label]) < 0).all():
        raise ValueError(f"pos_label={pos_label!r} is not a valid label; it should be one of "
                         f"{classes.tolist()}")
    s = _scores_1d(y_score)
    _same_length(("y_true", t), ("y_score", s))
    return _binary_average_precision(t == pos_label, s, w)
