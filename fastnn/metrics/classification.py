"""scikit-learn's label scores: accuracy, top-k, the confusion matrix, precision, recall, F-scores,
the classification report and the log loss, with sklearn.metrics's signatures and results.
"""
import numbers
import warnings

import numpy as np

from .inputs import AVERAGES, SKLEARN_TOP_K, UndefinedMetricWarning, _array, _indicator, _same_length, _weights, index_of, label_pair, read_labels


# ============================================================= scikit-learn: accuracy, top-k
def _mean(values, weights, normalize=True):
    """Weighted mean (or weighted sum when not normalize) of per-sample values."""
    if normalize:
        return float(np.average(values, weights=weights))
    return float(np.sum(values) if weights is None else np.dot(values, weights))


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """Fraction (or, with normalize=False, weighted count) of samples whose label is predicted.

    accuracy = sum_i w_i [y_true_i == y_pred_i] / sum_i w_i
    (https://scikit-learn.org/stable/modules/model_evaluation.html#accuracy-score)
    """
    t, p, _ = label_pair(y_true, y_pred)
    return _mean(t == p, _weights(sample_weight, len(t)), normalize)


accuracy = accuracy_score


def top_k_accuracy_score(y_true, y_score, *, k=SKLEARN_TOP_K, normalize=True, sample_weight=None,
                         labels=None):
    """Fraction of samples whose true label is among the k highest of y_score (N, C).

    Ties are broken as scikit-learn does: among equal scores the class with the larger index ranks
    higher, so label t is a hit when ``#{c: s_c > s_t} + #{c > t: s_c == s_t} < k``. For a binary
    problem y_score is (N,) the score of the larger label; k = 1 thresholds it at 0.5 when it lies
    in [0, 1] (else at 0) and k >= 2 is always a hit.
    """
    t = read_labels(y_true, "y_true")
    s = _array(y_score, "y_score").astype(np.float64)
    _same_length(("y_true", t), ("y_score", s))
    w = _weights(sample_weight, len(t))
    classes = np.unique(t) if labels is None else np.asarray(labels)
    if labels is not None and (len(np.unique(classes)) != len(classes) or
                               not np.array_equal(np.unique(classes), classes)):
        raise ValueError(f"labels must be unique and sorted, got {list(classes)}")
    binary = len(classes) <= 2 and (s.ndim == 1 or s.shape[1] == 1)
    n_scores = 2 if binary else (s.shape[1] if s.ndim == 2 else 1)
    if len(classes) != n_scores:
        raise ValueError(f"y_true has {len(classes)} classes but y_score has {n_scores} columns; "
                         "pass labels=[all classes] when y_true lacks some")
    encoded = index_of(classes, t)
    if (encoded < 0).any():
        raise ValueError(f"y_true contains labels not in labels: {sorted(set(t[encoded < 0].tolist()))}")
    if k >= len(classes):
        warnings.warn(f"k={k} >= the number of classes ({len(classes)}): every sample is a hit",
                      UndefinedMetricWarning, stacklevel=2)
    if binary:
        s = s.reshape(-1)
        if k == 1:
            threshold = 0.5 if s.min() >= 0 and s.max() <= 1 else 0.0
            hits = (s > threshold).astype(np.int64) == encoded
        else:
            hits = np.ones(len(s), dtype=bool)
    else:
        true_score = s[np.arange(len(s)), encoded][:, None]
        above = np.sum(s > true_score, axis=1)
        tied_after = np.sum((s == true_score) & (np.arange(s.shape[1]) > encoded[:, None]), axis=1)
        hits = above + tied_after < k
    return _mean(hits, w, normalize)


# ================================================================= scikit-learn: set-wise scores
def _confusion_counts(t, p, classes, weights):
    """Weighted confusion matrix over ``classes`` (rows: true, columns: predicted); int64 counts
    unless the weights are floats. Samples with a label outside ``classes`` are left out."""
    n = len(classes)
    ti, pi = index_of(classes, t), index_of(classes, p)
    keep = (ti >= 0) & (pi >= 0)
    w = np.ones(len(t), dtype=np.int64) if weights is None else weights
    cm = np.bincount(ti[keep] * n + pi[keep], weights=w[keep], minlength=n * n)
    return cm.astype(np.int64 if w.dtype.kind in "biu" else np.float64).reshape(n, n)


def _class_sums(t, p, classes, weights):
    """(tp, predicted, true): per class of ``classes``, the weighted number of samples predicted
    right, predicted as it, and truly of it -- the sufficient statistics of precision and recall."""
    n = len(classes)
    ti, pi = index_of(classes, t), index_of(classes, p)
    w = np.ones(len(t), dtype=np.int64) if weights is None else weights
    hit = ti == pi
    sums = (np.bincount(ti[hit], weights=w[hit], minlength=n), np.bincount(pi, weights=w, minlength=n),
            np.bincount(ti, weights=w, minlength=n))
    dtype = np.int64 if w.dtype.kind in "biu" else np.float64
    return tuple(s.astype(dtype) for s in sums)


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """C[i, j] = (weighted) number of samples of true class labels[i] predicted as labels[j].

    ``labels`` defaults to the sorted labels present in y_true or y_pred; samples whose labels are
    not in ``labels`` are ignored. ``normalize``: "true" divides rows by their sums, "pred" columns,
    "all" the whole matrix; 0/0 gives 0.
    (https://scikit-learn.org/stable/modules/model_evaluation.html#confusion-matrix)
    """
    t, p, present = label_pair(y_true, y_pred)
    w = _weights(sample_weight, len(t))
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    if labels is None:
        labels = present
    else:
        labels = np.asarray(labels)
        if labels.size == 0:
            raise ValueError("labels must contain at least one label")
        if not (index_of(labels, t) >= 0).any():
            raise ValueError("at least one of labels must occur in y_true")
    cm = _confusion_counts(t, p, labels, w)
    if normalize is not None:
        total = {"true": cm.sum(axis=1, keepdims=True), "pred": cm.sum(axis=0, keepdims=True),
                 "all": cm.sum()}[normalize]
        with np.errstate(all="ignore"):
            cm = np.nan_to_num(cm / total)
    if cm.shape == (1, 1):
        warnings.warn("a single label was found in y_true and y_pred; pass labels=[all classes] "
                      "for a matrix of the intended shape", UserWarning, stacklevel=2)
    return cm


def _zero_division_value(zero_division):
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, numbers.Real) and not isinstance(zero_division, bool):
        if zero_division in (0, 1) or np.isnan(zero_division):
            return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan, got {zero_division!r}")


def _divide(num, den, metric, modifier, warn, zero_division):
    """num / den elementwise, with ``zero_division`` where den == 0 (and a warning for "warn")."""
    den = np.asarray(den, dtype=np.float64)
    undefined = den == 0
    ratio = np.asarray(num, dtype=np.float64) / np.where(undefined, 1.0, den)
    if undefined.any():
        ratio[undefined] = _zero_division_value(zero_division)
        if warn and isinstance(zero_division, str):
            where = "for the label" if ratio.size == 1 else f"for {undefined.sum()} labels"
            warnings.warn(f"{metric} is ill-defined and set to 0.0 {where} with no {modifier} "
                          "samples; use the zero_division parameter to choose the value",
                          UndefinedMetricWarning, stacklevel=4)
    return ratio


def _nan_average(values, weights):
    """Weighted mean ignoring NaN entries; NaN when all are NaN, unweighted when weights sum to 0."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    values = values[keep]
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)[keep]
        if weights.sum() != 0:
            return float(np.average(values, weights=weights))
    return float(np.mean(values))


def _set_wise_labels(present, average, labels, pos_label):
    """The labels a set-wise score is computed over, checking ``average`` as scikit-learn does."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if average == "binary":
        if len(present) > 2:
            raise ValueError(f"the targets are multiclass ({len(present)} labels: "
                             f"{present.tolist()[:10]}) but average='binary'; choose average="
                             "'micro', 'macro', 'weighted' or None")
        if len(present) == 2 and (index_of(present, [pos_label]) < 0).all():
            raise ValueError(f"pos_label={pos_label!r} is not a valid label; it should be one of "
                             f"{present.tolist()}")
        return np.asarray([pos_label])
    if pos_label not in (None, 1):
        warnings.warn(f"pos_label={pos_label!r} is ignored when average={average!r}; use "
                      "labels=[pos_label] to score a single class", UserWarning, stacklevel=4)
    return present if labels is None else np.asarray(labels)


def _prf_from_counts(present, sums, *, beta, labels, pos_label, average, warn_for, zero_division):
    """precision_recall_fscore_support from the per-class ``sums`` (tp, predicted, true) of the
    ``present`` labels (:func:`_class_sums`)."""
    _zero_division_value(zero_division)
    if not (isinstance(beta, numbers.Real) and beta >= 0):
        raise ValueError(f"beta must be a non-negative number, got {beta!r}")
    chosen = _set_wise_labels(present, average, labels, pos_label)
    idx = index_of(present, chosen)
    found = idx >= 0

    def per_label(v):
        out = np.zeros(len(chosen), dtype=v.dtype)
        out[found] = v[idx[found]]
        return out

    tp, pred_sum, true_sum = (per_label(s) for s in sums)
    if average == "micro":
        tp, pred_sum, true_sum = (np.array([v.sum()]) for v in (tp, pred_sum, true_sum))
    precision = _divide(tp, pred_sum, "Precision", "predicted", "precision" in warn_for, zero_division)
    recall = _divide(tp, true_sum, "Recall", "true", "recall" in warn_for, zero_division)
    if np.isposinf(beta):
        f = recall
    elif beta == 0:
        f = precision
    else:  # F = (1 + b^2) P R / (b^2 P + R) = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)
        b2 = beta * beta
        f = _divide((1 + b2) * tp, b2 * true_sum + pred_sum, "F-score", "true nor predicted",
                    "f-score" in warn_for, zero_division)
    if average is None:
        return precision, recall, f, true_sum
    weights = true_sum if average == "weighted" else None
    return (_nan_average(precision, weights), _nan_average(recall, weights),
            _nan_average(f, weights), None)


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                                    average=None, warn_for=("precision", "recall", "f-score"),
                                    sample_weight=None, zero_division="warn"):
    """Precision, recall, F-beta and support per label (average=None) or averaged.

    For one label with tp true positives, fp false positives and fn false negatives
    (https://scikit-learn.org/stable/modules/model_evaluation.html#precision-recall-and-f-measures)::

        precision = tp / (tp + fp)        recall = tp / (tp + fn)
        F_beta    = (1 + beta^2) tp / ((1 + beta^2) tp + beta^2 fn + fp)
        support   = tp + fn  (the weighted number of true samples of the label)

    average: None -> arrays over ``labels``; "binary" -> the scores of ``pos_label`` alone
    (targets must have at most two labels); "micro" -> the ratios of tp, fp, fn summed over labels;
    "macro" -> the unweighted mean over labels; "weighted" -> the mean weighted by support.
    A ratio 0/0 takes ``zero_division`` ("warn": 0.0 with an UndefinedMetricWarning; 0.0; 1.0;
    np.nan, which the averages then skip).
    """
    t, p, present = label_pair(y_true, y_pred)
    sums = _class_sums(t, p, present, _weights(sample_weight, len(t)))
    return _prf_from_counts(present, sums, beta=beta, labels=labels, pos_label=pos_label,
                            average=average, warn_for=warn_for, zero_division=zero_division)


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                    sample_weight=None, zero_division="warn"):
    """tp / (tp + fp): of the samples predicted as a class, the fraction that are of it.
    See :func:`precision_recall_fscore_support` for ``average`` and ``zero_division``."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("precision",), sample_weight=sample_weight, zero_division=zero_division)[0]


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn"):
    """tp / (tp + fn): of the samples of a class, the fraction predicted as it.
    See :func:`precision_recall_fscore_support` for ``average`` and ``zero_division``."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("recall",), sample_weight=sample_weight, zero_division=zero_division)[1]


def fbeta_score(y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn"):
    """Weighted harmonic mean of precision and recall, recall counting beta times as much:
    F_beta = (1 + beta^2) P R / (beta^2 P + R). See :func:`precision_recall_fscore_support`."""
    return precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label, average=average,
        warn_for=("f-score",), sample_weight=sample_weight, zero_division=zero_division)[2]


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division="warn"):
    """Harmonic mean of precision and recall, F1 = 2 P R / (P + R) = 2 tp / (2 tp + fp + fn)."""
    return fbeta_score(y_true, y_pred, beta=1.0, labels=labels, pos_label=pos_label,
                       average=average, sample_weight=sample_weight, zero_division=zero_division)


precision, recall, fbeta = precision_score, recall_score, fbeta_score


def classification_report(y_true, y_pred, *, labels=None, target_names=None, sample_weight=None,
                          digits=2, output_dict=False, zero_division="warn"):
    """A text table (or, with output_dict, a dict) of precision, recall, F1 and support per label,
    then accuracy (when every present label is reported) and the macro and weighted averages,
    laid out as scikit-learn's ``classification_report``."""
    t, p, present = label_pair(y_true, y_pred)
    w = _weights(sample_weight, len(t))
    labels_given = labels is not None
    labels = present if labels is None else np.asarray(labels)
    show_accuracy = not labels_given or set(labels.tolist()) >= set(present.tolist())
    if target_names is not None and len(labels) != len(target_names):
        if not labels_given:
            raise ValueError(f"{len(labels)} classes but {len(target_names)} target_names; "
                             "pass labels= to choose the classes")
        warnings.warn(f"{len(labels)} labels but {len(target_names)} target_names", stacklevel=2)
    names = [str(n) for n in target_names] if target_names is not None else \
        ["%s" % label for label in labels]
    sums = _class_sums(t, p, present, w)
    scores = dict(labels=labels, pos_label=1, warn_for=("precision", "recall", "f-score"),
                  zero_division=zero_division, beta=1.0)
    prec, rec, f1, support = _prf_from_counts(present, sums, average=None, **scores)
    rows = [(name, prec[i], rec[i], f1[i], support[i]) for i, name in enumerate(names)]
    averages = []
    for average in ("micro", "macro", "weighted"):
        heading = "accuracy" if average == "micro" and show_accuracy else average + " avg"
        avg = _prf_from_counts(present, sums, average=average, **scores)[:3]
        averages.append((heading, *avg, np.sum(support)))
    headers = ["precision", "recall", "f1-score", "support"]
    if output_dict:
        report = {row[0]: dict(zip(headers, map(float, row[1:]))) for row in rows}
        for heading, *values in averages:
            report[heading] = values[0] if heading == "accuracy" else dict(zip(headers, map(float, values)))
        return report
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    text = f"{'':>{width}} " + "".join(f" {h:>9}" for h in headers) + "\n\n"
    line = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for row in rows:
        text += line.format(*row, width=width, digits=digits)
    text += "\n"
    for heading, *values in averages:
        if heading == "accuracy":
            text += f"{heading:>{width}s} " + f" {'':>9}" * 2 + \
                f" {values[2]:>9.{digits}f} {values[3]:>9}\n"
        else:
            text += line.format(heading, *values, width=width, digits=digits)
    return text


# ================================================================= scikit-learn: log loss
def _log_loss_inputs(y_true, y_proba, labels):
    """(indicator T (N, K), probabilities P (N, K)) for the log loss, checked as scikit-learn."""
    p = _array(y_proba, "y_proba")
    if p.dtype.kind not in "biuf":
        raise TypeError(f"y_proba must be numeric, got dtype {p.dtype}")
    p = p if p.dtype.kind == "f" else p.astype(np.float64)
    if p.max() > 1 or p.min() < 0:
        raise ValueError(f"y_proba must be probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
    y = _array(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] > 1:
        T = _indicator(y)
    else:
        t = y.reshape(-1)
        classes = np.unique(t) if labels is None else np.unique(np.asarray(labels))
        if labels is not None and (index_of(classes, t) < 0).any():
            raise ValueError(f"y_true contains labels not in labels={list(labels)}")
        if len(classes) < 2:
            raise ValueError(f"y_true contains a single label ({classes.tolist()}): pass "
                             "labels=[all classes] so the log loss knows the others")
        T = (index_of(classes, t)[:, None] == np.arange(len(classes))).astype(np.int64)
    if p.ndim == 1 or p.shape[1] == 1:
        p = p.reshape(-1, 1)
        p = np.concatenate([1 - p, p], axis=1)
    _same_length(("y_true", T), ("y_proba", p))
    if T.shape[1] != p.shape[1]:
        raise ValueError(f"y_true has {T.shape[1]} classes but y_proba has {p.shape[1]} columns; "
                         "pass labels=[all classes]")
    if not np.allclose(p.sum(axis=1), 1, rtol=np.sqrt(np.finfo(p.dtype).eps), atol=0):
        warnings.warn("y_proba rows do not sum to one: pass probabilities", UserWarning, stacklevel=3)
    return T, p


def _per_sample_log_loss(T, p):
    """-sum_k T[n, k] log p[n, k], with p clipped to [eps, 1 - eps] (eps of p's dtype)."""
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    return -np.sum(np.where(T != 0, T * np.log(p), 0), axis=1)


def log_loss(y_true, y_proba, *, normalize=True, sample_weight=None, labels=None):
    """Cross-entropy of predicted probabilities: -mean_n sum_k [y_n = k] log p[n, k].

    y_proba is (N, K) with one column per class of ``labels`` (default: the sorted labels of
    y_true), or (N,) the probability of the larger of two labels. Probabilities are clipped to
    [eps, 1 - eps] with eps the machine epsilon of y_proba's dtype.
    """
    T, p = _log_loss_inputs(y_true, y_proba, labels)
    return _mean(_per_sample_log_loss(T, p), _weights(sample_weight, len(T)), normalize)
