"""Metrics for ``compile(metrics=[...])``: stateful objects that accumulate counts over batches, so
the epoch figure is the metric of all samples seen, not an average of per-batch ratios.

``"accuracy"`` resolves as in Keras from the loss: sparse labels -> sparse_categorical_accuracy,
one-hot targets -> categorical_accuracy, binary cross-entropy -> binary_accuracy.
"""
import numpy as np

BINARY_THRESHOLD = 0.5  # Keras binary_accuracy default


def sparse_categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) equals the integer label, else 0.0."""
    y_true = np.asarray(y_true).reshape(-1)
    return (np.argmax(np.asarray(y_pred), axis=-1) == y_true).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) equals argmax(y_true), else 0.0."""
    return (np.argmax(np.asarray(y_pred), axis=-1) == np.argmax(np.asarray(y_true), axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=BINARY_THRESHOLD):
    """Per-sample mean over outputs of (y_pred > threshold) == y_true."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    hits = (y_pred > threshold) == (y_true > threshold)
    return hits.reshape(len(hits), -1).mean(axis=1)


class Metric:
    """Accumulates a per-sample score over batches; ``result()`` is the mean over all samples."""

    def __init__(self, fn, name):
        self.fn, self.name = fn, name
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred):
        scores = self.fn(y_true, y_pred)
        self.total += float(np.sum(scores))
        self.count += len(scores)

    def result(self):
        return self.total / self.count if self.count else 0.0


_FUNCTIONS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
}


def get(identifier, loss, output_shape):
    """A :class:`Metric` for a name in compile(); ``"accuracy"``/``"acc"`` picks the variant that
    matches ``loss`` (a fastnn Loss) and the model's ``output_shape``."""
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise ValueError(f"metrics must be names or Metric instances, got {identifier!r}")
    name = identifier.lower()
    if name in ("accuracy", "acc"):
        if loss.name == "sparse_categorical_crossentropy":
            fn = sparse_categorical_accuracy
        elif loss.name == "binary_crossentropy" or tuple(output_shape)[-1:] == (1,):
            fn = binary_accuracy
        else:
            fn = categorical_accuracy
        return Metric(fn, identifier)
    if name in _FUNCTIONS:
        return Metric(_FUNCTIONS[name], identifier)
    raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of {', '.join(_FUNCTIONS)}")
