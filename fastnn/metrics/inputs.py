"""How metrics read their arguments: labels, model outputs, weights and the shared constants.

A label argument may be class labels, an (N, C) array of scores or one-hot rows (its argmax),
or a float (N, 1) column of probabilities (the class ``p > 0.5``). Other modules (plots) read
labels the same way through the public functions here.
"""
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


def read_labels(y, name):
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


def predicted_labels(y_pred, threshold=BINARY_THRESHOLD):
    """Predicted labels from ``y_pred`` as :func:`read_labels` does, except that a float (N, 1) column
    in [0, 1] is the probability of class 1, hence label ``p > threshold`` (0/1 labels stay)."""
    y = _array(y_pred, "y_pred")
    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind == "f" and np.isfinite(y).all() \
            and y.min() >= 0 and y.max() <= 1:
        return (y[:, 0] > threshold).astype(np.int64)
    return read_labels(y, "y_pred")


def label_pair(y_true, y_pred, threshold=BINARY_THRESHOLD):
    """(true labels, predicted labels, sorted labels present in either); checks lengths and types."""
    t = read_labels(y_true, "y_true")
    p = predicted_labels(y_pred, threshold)
    _same_length(("y_true", t), ("y_pred", p))
    if (t.dtype.kind in "USO") != (p.dtype.kind in "USO"):
        raise TypeError(f"y_true and y_pred mix string and number labels ({t.dtype} and {p.dtype})")
    return t, p, np.union1d(t, p)


def index_of(classes, values):
    """Position of each value in ``classes`` (distinct labels, any order), -1 where absent."""
    classes, values = np.asarray(classes).reshape(-1), np.asarray(values).reshape(-1)
    kinds = {classes.dtype.kind, values.dtype.kind}
    if len(classes) and (kinds <= set("biuf") or kinds <= set("US")):  # comparable: binary search
        order = np.argsort(classes, kind="stable")
        pos = np.minimum(np.searchsorted(classes[order], values), len(classes) - 1)
        return np.where(classes[order][pos] == values, order[pos], -1).astype(np.int64)
    where = {c: i for i, c in enumerate(classes.tolist())}  # objects, or numbers against strings
    return np.array([where.get(v, -1) for v in values.tolist()], dtype=np.int64)


# ============================================================== scikit-learn: ranking scores
def binary_target(y_true, pos_label):
    """(is_positive (N,) bool) for a binary ranking metric; pos_label defaults to 1 for labels in
    {0, 1} or {-1, 1}, and must be given for any other labels."""
    t = read_labels(y_true, "y_true")
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


def _indicator(y_true, name="y_true"):
    """A 2-D y_true of 0/1 entries as an (N, C) indicator matrix (multilabel, or one-hot)."""
    y = _array(y_true, name)
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"a 2-D {name} must be an indicator matrix of 0 and 1, got values "
                         f"{np.unique(y).tolist()[:5]}")
    return y.astype(np.int64)
