"""How good is a model? Scores from arrays or from a trained model, with scikit-learn's numbers.

Three kinds of things live here, all in NumPy (evaluation is not the hot path):

1. **Keras's per-sample functions**, one value per sample, for ``compile(metrics=[...])`` to
   average: ``binary_accuracy``, ``categorical_accuracy``, ``sparse_categorical_accuracy``,
   ``top_k_categorical_accuracy``, ``sparse_top_k_categorical_accuracy``, ``cosine_similarity``.
2. **scikit-learn's scores**, with sklearn.metrics's signatures and results: ``accuracy_score``,
   ``top_k_accuracy_score``, ``confusion_matrix``, ``precision_recall_fscore_support``,
   ``precision_score``, ``recall_score``, ``fbeta_score``, ``f1_score``, ``classification_report``,
   ``roc_curve``, ``auc``, ``roc_auc_score``, ``precision_recall_curve``,
   ``average_precision_score``, ``log_loss``, ``mean_absolute_error``, ``mean_squared_error``,
   ``root_mean_squared_error``, ``r2_score`` (short names: ``accuracy``, ``precision``, ``recall``,
   ``fbeta``). Beyond sklearn, label arguments also take model outputs: an (N, C) array of scores
   or one-hot rows stands for its argmax, and a float (N, 1) column in [0, 1] of predictions for
   the class ``p > 0.5``; so ``accuracy(y_test, model.predict(x_test))`` works.
3. **Stateful metric objects** (``Accuracy``, ``Precision``, ``AUC``, ``R2Score``...), which
   ``compile(metrics=[...])`` takes by name or as instances. Each keeps sufficient statistics
   (counts, a confusion matrix, all scores for AUC), so ``result()`` after any sequence of batches
   equals the function on the concatenated data, never an average of per-batch ratios.

Edge cases follow scikit-learn's documentation: an undefined ratio (a class never predicted, no
positive sample) takes ``zero_division`` (default "warn": 0.0 and an UndefinedMetricWarning). One
deliberate difference: ROC AUC with a single class in ``y_true`` raises ValueError (recent
scikit-learn warns and returns nan), because the number does not exist.
"""
import copy
import inspect
import numbers
import warnings

import numpy as np

BINARY_THRESHOLD = 0.5  # Keras binary_accuracy default; also the class-1 cut for a probability column
KERAS_TOP_K = 5         # Keras top_k_categorical_accuracy default
SKLEARN_TOP_K = 2       # scikit-learn top_k_accuracy_score default
AVERAGES = (None, "binary", "micro", "macro", "weighted")  # scikit-learn's set-wise averages


class UndefinedMetricWarning(UserWarning):
    """A metric was undefined (e.g. precision with no predicted sample) and set by zero_division."""


# ================================================================================ input handling
def _array(y, name):
    y = np.asarray(y)
    if y.dtype.kind not in "biufUSO":
        raise TypeError(f"{name} must be an array of numbers or labels, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) == 0:
        raise ValueError(f"{name} must hold at least one sample, got array of shape {y.shape}")
    return y


def _same_length(*named):
    lengths = {name: len(a) for name, a in named if a is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError("inputs must have the same number of samples, got " +
                         ", ".join(f"{n} with {k}" for n, k in lengths.items()))


def _weights(sample_weight, n):
    """``sample_weight`` as a 1-D array of ``n`` finite non-negative numbers, or None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {w.dtype}")
    w = w.reshape(-1) if w.ndim == 2 and w.shape[1] == 1 else w
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {np.shape(sample_weight)}")
    if w.dtype.kind == "f" and not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or inf")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be non-negative, got {w.min()}")
    return w


def _check_integral(y, name):
    """Floats are accepted as labels only when they are whole numbers (0.0, 1.0, ...)."""
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise ValueError(f"{name} must hold class labels, got the continuous value {y[bad[0]]} "
                             f"at index {bad[0]}; pass labels, (N, C) scores or an (N, 1) column "
                             "of probabilities")
    return y


def _labels(y, name):
    """Class labels (N,) from ``y``: (N,) labels and (N, 1) label columns as they are, (N, C > 1)
    scores or one-hot rows as their argmax."""
    y = _array(y, name)
    if y.ndim > 2:
        raise ValueError(f"{name} must be labels (N,) or outputs (N, C), got shape {y.shape}")
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name} of shape {y.shape} must be numeric scores, got dtype {y.dtype}")
        if name == "y_true" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) != 1).any():
            row = int(np.flatnonzero(y.sum(axis=1) != 1)[0])
            raise ValueError(f"y_true row {row} is {y[row].tolist()[:10]}: multi-label targets (not "
                             "exactly one 1 per row) are not supported here; score each output "
                             "on its own, or use binary_accuracy")
        return np.argmax(y, axis=1)
    return _check_integral(y.reshape(-1), name)


def _pred_labels(y_pred, threshold=BINARY_THRESHOLD):
    """Predicted labels from ``y_pred`` as :func:`_labels` does, except that a float (N, 1) column
    in [0, 1] is the probability of class 1, hence label ``p > threshold`` (0/1 labels stay)."""
    y = _array(y_pred, "y_pred")
    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind == "f" and np.isfinite(y).all() \
            and y.min() >= 0 and y.max() <= 1:
        return (y[:, 0] > threshold).astype(np.int64)
    return _labels(y, "y_pred")


def _label_pair(y_true, y_pred, threshold=BINARY_THRESHOLD):
    """(true labels, predicted labels, sorted labels present in either); checks lengths and types."""
    t = _labels(y_true, "y_true")
    p = _pred_labels(y_pred, threshold)
    _same_length(("y_true", t), ("y_pred", p))
    if (t.dtype.kind in "USO") != (p.dtype.kind in "USO"):
        raise TypeError(f"y_true and y_pred mix string and number labels ({t.dtype} and {p.dtype})")
    return t, p, np.union1d(t, p)


def _index_of(classes, values):
    """Position of each value in ``classes`` (distinct labels, any order), -1 where absent."""
    classes, values = np.asarray(classes).reshape(-1), np.asarray(values).reshape(-1)
    kinds = {classes.dtype.kind, values.dtype.kind}
    if len(classes) and (kinds <= set("biuf") or kinds <= set("US")):  # comparable: binary search
        order = np.argsort(classes, kind="stable")
        pos = np.minimum(np.searchsorted(classes[order], values), len(classes) - 1)
        return np.where(classes[order][pos] == values, order[pos], -1).astype(np.int64)
    where = {c: i for i, c in enumerate(classes.tolist())}  # objects, or numbers against strings
    return np.array([where.get(v, -1) for v in values.tolist()], dtype=np.int64)


# ================================================================ Keras's per-sample functions
def sparse_categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) equals the integer label, else 0.0."""
    y_true = np.asarray(y_true).reshape(-1)
    return (np.argmax(np.asarray(y_pred), axis=-1) == y_true).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) equals argmax(y_true), else 0.0."""
    hits = np.argmax(np.asarray(y_pred), axis=-1) == np.argmax(np.asarray(y_true), axis=-1)
    return hits.astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=BINARY_THRESHOLD):
    """Per-sample mean over outputs of (y_pred > threshold) == (y_true > threshold)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    hits = (y_pred > threshold) == (y_true > threshold)
    return hits.reshape(len(hits), -1).mean(axis=1)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=KERAS_TOP_K):
    """Per-sample 1.0 where the integer label is among the k highest scores of y_pred (N, C).

    As TensorFlow's ``in_top_k`` (which Keras uses): a label tied with the k-th score counts as a
    hit, i.e. the hit condition is ``#{c : y_pred[c] > y_pred[label]} < k``.
    """
    scores = np.asarray(y_pred, dtype=np.float64)
    labels = np.asarray(y_true).reshape(-1).astype(np.int64)
    true_score = scores[np.arange(len(scores)), labels]
    return (np.sum(scores > true_score[:, None], axis=1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=KERAS_TOP_K):
    """Per-sample 1.0 where argmax(y_true) (one-hot rows) is among the k highest scores of y_pred."""
    return sparse_top_k_categorical_accuracy(np.argmax(np.asarray(y_true), axis=-1), y_pred, k)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample cosine of the angle between y_true and y_pred along ``axis``.

    cos = sum(a * b) / (||a|| ||b||); an all-zero vector gives 0, as scikit-learn's
    ``cosine_similarity`` (Keras divides by max(||a||, 1e-6) instead, which differs only for
    vectors shorter than 1e-6). The Keras metric ``CosineSimilarity`` is the mean of these values.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        a = a.reshape(b.shape)
    na = np.sqrt(np.sum(a * a, axis=axis, keepdims=True))
    nb = np.sqrt(np.sum(b * b, axis=axis, keepdims=True))
    a = a / np.where(na == 0, 1, na)
    b = b / np.where(nb == 0, 1, nb)
    return np.sum(a * b, axis=axis)


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
    t, p, _ = _label_pair(y_true, y_pred)
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
    t = _labels(y_true, "y_true")
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
    encoded = _index_of(classes, t)
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
    ti, pi = _index_of(classes, t), _index_of(classes, p)
    keep = (ti >= 0) & (pi >= 0)
    w = np.ones(len(t), dtype=np.int64) if weights is None else weights
    cm = np.bincount(ti[keep] * n + pi[keep], weights=w[keep], minlength=n * n)
    return cm.astype(np.int64 if w.dtype.kind in "biu" else np.float64).reshape(n, n)


def _class_sums(t, p, classes, weights):
    """(tp, predicted, true): per class of ``classes``, the weighted number of samples predicted
    right, predicted as it, and truly of it -- the sufficient statistics of precision and recall."""
    n = len(classes)
    ti, pi = _index_of(classes, t), _index_of(classes, p)
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
    t, p, present = _label_pair(y_true, y_pred)
    w = _weights(sample_weight, len(t))
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    if labels is None:
        labels = present
    else:
        labels = np.asarray(labels)
        if labels.size == 0:
            raise ValueError("labels must contain at least one label")
        if not (_index_of(labels, t) >= 0).any():
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
        if len(present) == 2 and (_index_of(present, [pos_label]) < 0).all():
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
    idx = _index_of(present, chosen)
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
    t, p, present = _label_pair(y_true, y_pred)
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
    t, p, present = _label_pair(y_true, y_pred)
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


# ============================================================== scikit-learn: ranking scores
def _binary_target(y_true, pos_label):
    """(is_positive (N,) bool) for a binary ranking metric; pos_label defaults to 1 for labels in
    {0, 1} or {-1, 1}, and must be given for any other labels."""
    t = _labels(y_true, "y_true")
    classes = np.unique(t)
    if pos_label is None:
        numeric = t.dtype.kind in "biuf"
        if len(classes) > 2 or not numeric or not any(
                len(classes) == len(ok) and np.array_equal(classes, ok)
                for ok in ([0, 1], [-1, 1], [0], [1], [-1])):
            kind = "multiclass" if len(classes) > 2 else "binary"
            raise ValueError(f"y_true ({kind}) takes the values {classes.tolist()[:10]} and "
                             "pos_label is not given: use labels 0/1 or -1/1, or pass pos_label")
        pos_label = 1
    return t == pos_label


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
    positive = _binary_target(y_true, pos_label)
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


def _indicator(y_true, name="y_true"):
    """A 2-D y_true of 0/1 entries as an (N, C) indicator matrix (multilabel, or one-hot)."""
    y = _array(y_true, name)
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"a 2-D {name} must be an indicator matrix of 0 and 1, got values "
                         f"{np.unique(y).tolist()[:5]}")
    return y.astype(np.int64)


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
    missing = _index_of(classes, t) < 0
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
    encoded = _index_of(classes, t)
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
        Y = (_index_of(classes, t)[:, None] == np.arange(len(classes))).astype(np.int64)
        return _average_columns(_binary_average_precision, Y, S, average, w)
    if len(classes) == 2 and (_index_of(classes, [pos_label]) < 0).all():
        raise ValueError(f"pos_label={pos_label!r} is not a valid label; it should be one of "
                         f"{classes.tolist()}")
    s = _scores_1d(y_score)
    _same_length(("y_true", t), ("y_score", s))
    return _binary_average_precision(t == pos_label, s, w)


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
        if labels is not None and (_index_of(classes, t) < 0).any():
            raise ValueError(f"y_true contains labels not in labels={list(labels)}")
        if len(classes) < 2:
            raise ValueError(f"y_true contains a single label ({classes.tolist()}): pass "
                             "labels=[all classes] so the log loss knows the others")
        T = (_index_of(classes, t)[:, None] == np.arange(len(classes))).astype(np.int64)
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


# ================================================================ scikit-learn: regression
def _regression_inputs(y_true, y_pred, sample_weight, multioutput, allowed):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t = t.reshape(-1, 1) if t.ndim == 1 else t
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    if t.ndim != 2 or t.shape != p.shape or len(t) == 0:
        raise ValueError(f"y_true and y_pred must have the same shape (N,) or (N, outputs), got "
                         f"{np.shape(y_true)} and {np.shape(y_pred)}")
    for a, name in ((t, "y_true"), (p, "y_pred")):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
    if isinstance(multioutput, str):
        if multioutput not in allowed:
            raise ValueError(f"multioutput must be one of {allowed} or an array of weights, got "
                             f"{multioutput!r}")
    else:
        multioutput = np.asarray(multioutput, dtype=np.float64)
        if t.shape[1] == 1:
            raise ValueError("multioutput weights need more than one output")
        if multioutput.shape != (t.shape[1],):
            raise ValueError(f"multioutput must have one weight per output ({t.shape[1]}), got "
                             f"shape {multioutput.shape}")
    return t, p, _weights(sample_weight, len(t)), multioutput


def _combine_outputs(per_output, multioutput, variance=None):
    """Per-output scores combined as scikit-learn's ``multioutput`` asks."""
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return per_output
        if multioutput == "variance_weighted" and variance is not None and (variance != 0).any():
            return float(np.average(per_output, weights=variance))
        return float(np.mean(per_output))
    return float(np.average(per_output, weights=multioutput))


_REGRESSION_AVERAGES = ("raw_values", "uniform_average")


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """MAE = sum_i w_i |y_true_i - y_pred_i| / sum_i w_i, per output, then combined."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.average(np.abs(p - t), axis=0, weights=w), mo)


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """MSE = sum_i w_i (y_true_i - y_pred_i)^2 / sum_i w_i, per output, then combined."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.average((t - p) ** 2, axis=0, weights=w), mo)


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """RMSE = sqrt(MSE) per output, then combined (so for several outputs it is the mean of the
    per-output RMSEs, as in scikit-learn, not the root of the overall MSE as in Keras)."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.sqrt(np.average((t - p) ** 2, axis=0, weights=w)), mo)


def _r2_from_sums(residual, total, force_finite):
    """R^2 = 1 - SS_res / SS_tot per output; with force_finite, 1.0 for a perfect fit of constant
    targets and 0.0 for an imperfect one (instead of nan and -inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - residual / total
    if force_finite:
        r2 = np.where(total != 0, r2, np.where(residual != 0, 0.0, 1.0))
        r2 = np.where((total != 0) & (residual == 0), 1.0, r2)
    return r2


def r2_score(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average", force_finite=True):
    """Coefficient of determination, per output then combined:

        R^2 = 1 - sum_i w_i (y_i - f_i)^2 / sum_i w_i (y_i - ybar)^2,   ybar the weighted mean of y

    1 is a perfect fit and 0 is what predicting the mean achieves; it can be negative. Needs two
    samples (else nan with an UndefinedMetricWarning). multioutput "variance_weighted" weights the
    outputs by the variance of their targets.
    """
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput,
                                     _REGRESSION_AVERAGES + ("variance_weighted",))
    if len(t) < 2:
        warnings.warn("R^2 is not well-defined with fewer than two samples", UndefinedMetricWarning,
                      stacklevel=2)
        return float("nan")
    ww = 1.0 if w is None else w[:, None]
    residual = np.sum(ww * (t - p) ** 2, axis=0)
    total = np.sum(ww * (t - np.average(t, axis=0, weights=w)) ** 2, axis=0)
    return _combine_outputs(_r2_from_sums(residual, total, force_finite), mo, total)


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
    t, p, _ = _label_pair(y_true, y_pred, threshold)
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
        t, p, present = _label_pair(y_true, y_pred, self.threshold)
        w = _weights(sample_weight, len(t))
        classes = np.union1d(self.classes, present) if len(self.classes) else present
        where = _index_of(classes, self.classes)
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


class Precision(_ConfusionMetric):
    """precision_score over all batches (default zero_division 0.0, without warnings)."""
    default_name = "precision"

    def result(self):
        return self._scores()[0]


class Recall(_ConfusionMetric):
    """recall_score over all batches (default zero_division 0.0, without warnings)."""
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
    t = _labels(y_true, "y_true")
    s = _array(y_pred, "y_pred").astype(np.float64)
    if s.ndim == 2 and s.shape[1] <= 2:
        s = s[:, -1]
    _same_length(("y_true", t), ("y_pred", s))
    return t, s


class AUC(Metric):
    """roc_auc_score (curve="ROC") or average_precision_score (curve="PR") of all samples seen.

    Keeps every label and score, so the result is exact (Keras's AUC approximates the curve with
    200 thresholds). Model outputs: one column, or two (column 1 is used), is a binary problem;
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
        encoded = _index_of(classes, t)
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


# ======================================================================= lookup for compile()
def _binary_or_macro(output_shape):
    return "binary" if tuple(output_shape)[-1:] in ((1,), (2,)) else "macro"


def _accuracy_fn(loss, output_shape):
    """Keras's resolution of "accuracy" from the loss and the model's output shape."""
    loss_name = getattr(loss, "name", None)
    if loss_name == "sparse_categorical_crossentropy":
        return sparse_categorical_accuracy
    if loss_name == "binary_crossentropy" or tuple(output_shape)[-1:] == (1,):
        return binary_accuracy
    return categorical_accuracy


_FACTORIES = {  # name -> metric(loss, output_shape)
    "binary_accuracy": lambda loss, shape: BinaryAccuracy(),
    "categorical_accuracy": lambda loss, shape: CategoricalAccuracy(),
    "sparse_categorical_accuracy": lambda loss, shape: SparseCategoricalAccuracy(),
    "top_k_categorical_accuracy": lambda loss, shape: TopKCategoricalAccuracy(),
    "sparse_top_k_categorical_accuracy": lambda loss, shape: SparseTopKCategoricalAccuracy(),
    "precision": lambda loss, shape: Precision(average=_binary_or_macro(shape)),
    "recall": lambda loss, shape: Recall(average=_binary_or_macro(shape)),
    "f1_score": lambda loss, shape: F1Score(average=_binary_or_macro(shape)),
    "f1": lambda loss, shape: F1Score(average=_binary_or_macro(shape)),
    "auc": lambda loss, shape: AUC(), "roc_auc": lambda loss, shape: AUC(),
    "average_precision": lambda loss, shape: AUC(curve="PR"),
    "pr_auc": lambda loss, shape: AUC(curve="PR"),
    "log_loss": lambda loss, shape: LogLoss(),
    "mae": lambda loss, shape: MeanAbsoluteError(),
    "mean_absolute_error": lambda loss, shape: MeanAbsoluteError(),
    "mse": lambda loss, shape: MeanSquaredError(),
    "mean_squared_error": lambda loss, shape: MeanSquaredError(),
    "rmse": lambda loss, shape: RootMeanSquaredError(),
    "root_mean_squared_error": lambda loss, shape: RootMeanSquaredError(),
    "r2": lambda loss, shape: R2Score(), "r2_score": lambda loss, shape: R2Score(),
    "cosine_similarity": lambda loss, shape: CosineSimilarity(),
}


def get(identifier, loss=None, output_shape=(1,)):
    """A fresh :class:`Metric` for ``compile(metrics=[...])``.

    A name (Keras's, e.g. "accuracy", "precision", "auc", "mae") makes a new metric reporting under
    that name: "accuracy"/"acc" picks the variant that matches ``loss`` (a fastnn Loss) and the
    model's ``output_shape`` as Keras does, and "precision"/"recall"/"f1_score" use
    average="binary" for one or two outputs and "macro" otherwise. An instance is cloned with an
    empty state, so training, validation and evaluate never mix their counts.
    """
    if isinstance(identifier, Metric):
        average = getattr(identifier, "average", None)
        if average == "binary" and tuple(output_shape)[-1] > 2:
            raise ValueError(f"{identifier.name} uses average='binary' but the model has "
                             f"{tuple(output_shape)[-1]} outputs; choose average='micro', "
                             "'macro' or 'weighted'")
        return identifier.clone()
    if not isinstance(identifier, str):
        raise ValueError(f"metrics must be names or Metric instances, got {identifier!r}")
    name = identifier.lower()
    if name in ("accuracy", "acc"):
        return MeanMetricWrapper(_accuracy_fn(loss, output_shape), identifier, direction="up")
    if name not in _FACTORIES:
        raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                         f"{', '.join(sorted(_FACTORIES))}")
    metric = _FACTORIES[name](loss, output_shape)
    metric.name = identifier
    return metric
