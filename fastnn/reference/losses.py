"""Loss functions, each fused with its gradient.

Every loss returns ``(loss, grad)`` where ``loss`` is the MEAN loss as a
Python float and ``grad`` is the gradient of that mean with respect to the
first argument (``None`` when ``need_grad`` is False).  Fusing value and
gradient lets both share the expensive intermediate (the log-softmax or
the sigmoid) and lets the gradient be written in its simple closed form
instead of being chained through the activation.

The losses on logits never exponentiate a positive number, so they stay
finite for logits as extreme as +-1e30 in float32.
"""

import numpy as np

from ._out import _into

from .activations import sigmoid_forward


def _log_softmax(logits):
    # log-sum-exp with the row maximum subtracted: the largest exponent is
    # exp(0) = 1, so the sum lies in [1, C] and its log is always finite.
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def sparse_softmax_cross_entropy(logits, labels, dlogits=None, need_grad=True):
    """Softmax cross-entropy against integer class labels.

    Formula (Goodfellow et al., *Deep Learning*, section 6.2.2.3)::

        loss    = mean_n( logsumexp(logits[n]) - logits[n, labels[n]] )
                = mean_n( -log_softmax(logits)[n, labels[n]] )
        dlogits = (softmax(logits) - onehot(labels)) / N

    Shapes:
        logits: [N, C]   labels: int64 [N], values in [0, C)
        dlogits: [N, C] (optional preallocated output)
    """
    n = logits.shape[0]
    rows = np.arange(n)
    log_probs = _log_softmax(logits)
    loss = -np.mean(log_probs[rows, labels])
    if not need_grad:
        return float(loss), None
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), _into(dlogits, grad / n, logits.dtype)


def softmax_cross_entropy(logits, targets, dlogits=None, need_grad=True):
    """Softmax cross-entropy against target distributions (or one-hot rows).

    Formula::

        loss    = mean_n( -sum_c targets[n, c] * log_softmax(logits)[n, c] )
        dlogits = (softmax(logits) * sum_c targets[n, c] - targets) / N

    The factor ``sum_c targets[n, c]`` is 1 for proper distributions; it is
    kept so the gradient is exact for rows that are not exactly normalised.

    Shapes: logits, targets, dlogits: [N, C].
    """
    n = logits.shape[0]
    log_probs = _log_softmax(logits)
    loss = -np.mean((targets * log_probs).sum(axis=1))
    if not need_grad:
        return float(loss), None
    row_mass = targets.sum(axis=1, keepdims=True)
    grad = (np.exp(log_probs) * row_mass - targets) / n
    return float(loss), _into(dlogits, grad, logits.dtype)


def sigmoid_binary_cross_entropy(logits, targets, dlogits=None, need_grad=True):
    """Binary cross-entropy of ``sigmoid(logits)`` against targets in [0, 1].

    Formula, the stable form documented for TensorFlow's
    ``sigmoid_cross_entropy_with_logits``
    (https://www.tensorflow.org/api_docs/python/tf/nn/sigmoid_cross_entropy_with_logits)::

        loss    = mean over all elements of  max(z, 0) - z * t + log1p(exp(-|z|))
        dlogits = (sigmoid(z) - t) / (N * C)

    It equals ``-t*log(sigmoid(z)) - (1-t)*log(1-sigmoid(z))`` but never
    takes the log of a probability that has rounded to 0 or 1.

    Shapes: logits (z), targets (t), dlogits: [N, C]; the mean is over all
    N * C elements (independent binary problems).
    """
    z, t = logits, targets
    per_element = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    loss = np.mean(per_element)
    if not need_grad:
        return float(loss), None
    grad = (sigmoid_forward(z) - t) / z.size
    return float(loss), _into(dlogits, grad, logits.dtype)


def mean_squared_error(pred, target, dpred=None, need_grad=True):
    """Mean squared error.

    Formula::

        loss  = mean over all elements of (pred - target)**2
        dpred = 2 * (pred - target) / (N * C)

    Shapes: pred, target, dpred: [N, C].
    """
    diff = pred - target
    loss = np.mean(diff * diff)
    if not need_grad:
        return float(loss), None
    return float(loss), _into(dpred, 2 * diff / diff.size, pred.dtype)
