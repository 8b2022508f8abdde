"""Keras's per-sample metric functions: one value per sample, for ``compile(metrics=[...])`` to
average.
"""
import numpy as np

from .inputs import BINARY_THRESHOLD, KERAS_TOP_K


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
