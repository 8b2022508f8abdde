"""Loss functions, each fused with its gradient.

Every loss returns ``(loss, grad)`` where ``loss`` is the MEAN loss as a
Python float and ``grad`` is the gradient of that mean with respect to the
first argument (``None`` when ``need_grad`` is False).  Fusing value and
gradient lets both share the expensive intermediate (the log-softmax or
the sigmoid) and lets the gradient be written in its simple closed form
instead of being chained through the activation.

The losses on logits never exponentiate a positive number, so they stay
finite for logits as extreme as +-1e30 in float32.

Infinite logits give the limit of the formula, the same on both backends:
the softmax of a row with k logits at +inf is 1/k on each of them and 0
elsewhere, so a sample whose target mass lies only on +inf logits has
loss ``sum_c q[c] * log(k)`` (0 for a single +inf logit), a sample with
target mass on a logit below +inf (or on a -inf logit) has loss +inf,
and terms with target 0 on a -inf logit count 0 (``0 * log 0 = 0``). The
gradient ``(softmax - q) / N`` stays finite in all these cases. A row of
only -inf logits has no softmax: its loss and gradient are NaN, as for a
NaN logit. The binary cross-entropy at z = +inf is 0 for target 1 and +inf
otherwise, at z = -inf 0 for target 0 and +inf otherwise.

Reduction follows Keras (``reduction="sum_over_batch_size"``): the loss is
the mean over the batch of per-sample losses, and a per-sample loss is the
mean over the sample's C outputs (MSE, MAE, Huber, log-cosh, hinge, binary
cross-entropy) or the sum over its C classes (categorical cross-entropies,
KL divergence).  So the first group is a mean over all N * C elements and
the second a sum over classes divided by N.
"""

import numpy as np

from ._out import _into

from .activations import _shift_by_row_max, sigmoid_forward


def _log_softmax(logits):
    # log-sum-exp with the row maximum subtracted: the largest exponent is
    # exp(0) = 1, so the sum lies in [1, C] and its log is always finite.
    # Rows with +inf logits take the limit (see activations._shift_by_row_max).
    shifted = _shift_by_row_max(logits)
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
    bad = (labels < 0) | (labels >= logits.shape[1])
    if bad.any():  # as the native kernel: never wrap -1 around to the last class
        raise ValueError(f"labels must be in [0, {logits.shape[1]}), got {int(labels[np.argmax(bad)])}")
    rows = np.arange(n)
    log_probs = _log_softmax(logits)
    loss = -np.mean(log_probs[rows, labels])
    if not need_grad:
        return float(loss), None
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), _into(dlogits, grad / n, logits.dtype)


def softmax_cross_entropy(logits, targets, dlogits=None, need_grad=True, label_smoothing=0.0):
    """Softmax cross-entropy against target distributions (or one-hot rows).

    Formula, with label smoothing ``s`` as in Keras's ``CategoricalCrossentropy``
    (https://keras.io/api/losses/probabilistic_losses/#categoricalcrossentropy-class;
    Szegedy et al. 2016, section 7, https://arxiv.org/abs/1512.00567)::

        q       = targets * (1 - s) + s / C
        loss    = mean_n( -sum_c q[n, c] * log_softmax(logits)[n, c] )
        dlogits = (softmax(logits) * sum_c q[n, c] - q) / N

    The factor ``sum_c q[n, c]`` is 1 for proper distributions; it is
    kept so the gradient is exact for rows that are not exactly normalised.

    Shapes: logits, targets, dlogits: [N, C].
    Defaults: label_smoothing = 0 (Keras), which leaves the targets as given.
    """
    n, c = logits.shape
    q = targets * (1 - label_smoothing) + label_smoothing / c
    log_probs = _log_softmax(logits)
    with np.errstate(invalid="ignore"):  # 0 * -inf, replaced by 0 just below
        terms = q * log_probs
    terms[(q == 0) & (log_probs == -np.inf)] = 0  # 0 * log(0) = 0: a -inf logit off target
    loss = -np.mean(terms.sum(axis=1))
    if not need_grad:
        return float(loss), None
    row_mass = q.sum(axis=1, keepdims=True)
    grad = (np.exp(log_probs) * row_mass - q) / n
    return float(loss), _into(dlogits, grad, logits.dtype)


def sigmoid_binary_cross_entropy(logits, targets, dlogits=None, need_grad=True, label_smoothing=0.0):
    """Binary cross-entropy of ``sigmoid(logits)`` against targets in [0, 1].

    Formula, the stable form documented for TensorFlow's
    ``sigmoid_cross_entropy_with_logits``
    (https://www.tensorflow.org/api_docs/python/tf/nn/sigmoid_cross_entropy_with_logits),
    with Keras's label smoothing ``s`` (``BinaryCrossentropy``, which pulls
    targets towards 1/2)::

        t       = targets * (1 - s) + s / 2
        loss    = mean over all elements of  max(z, 0) - z * t + log1p(exp(-|z|))
        dlogits = (sigmoid(z) - t) / (N * C)

    It equals ``-t*log(sigmoid(z)) - (1-t)*log(1-sigmoid(z))`` but never
    takes the log of a probability that has rounded to 0 or 1.

    Shapes: logits (z), targets, dlogits: [N, C]; the mean is over all
    N * C elements (independent binary problems).
    Defaults: label_smoothing = 0 (Keras).
    """
    z, t = logits, targets * (1 - label_smoothing) + label_smoothing / 2
    with np.errstate(invalid="ignore"):  # inf - inf and 0 * inf at infinite z, replaced below
        per_element = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    if np.isinf(z).any():  # the limit: 0 when the target agrees exactly, else +inf
        agrees = np.where(z > 0, t == 1, t == 0)
        per_element = np.where(np.isinf(z), np.where(agrees, 0, np.inf), per_element)
    loss = np.mean(per_element)
    if not need_grad:
        return float(loss), None
    grad = (sigmoid_forward(z) - t) / z.size
    return float(loss), _into(dlogits, grad, logits.dtype)


def hinge(pred, target, dpred=None, need_grad=True):
    """Hinge loss of scores against labels -1 or +1 (the SVM loss).

    Formula, Keras's ``hinge``
    (https://keras.io/api/losses/hinge_losses/#hinge-function;
    https://en.wikipedia.org/wiki/Hinge_loss)::

        loss  = mean over all elements of max(1 - target * pred, 0)
        dpred = -target / (N * C)   where target * pred < 1, else 0

    At the kink (``target * pred == 1``) the subgradient 0 is taken.
    Keras turns 0/1 labels into -1/+1 before this formula; in fastnn that
    happens once, in ``fastnn.losses.Hinge.prepare_targets``.

    Shapes: pred, target, dpred: [N, C].
    """
    margin = 1 - target * pred
    loss = np.mean(np.maximum(margin, 0))
    if not need_grad:
        return float(loss), None
    grad = np.where(margin > 0, -target, 0) / pred.size
    return float(loss), _into(dpred, grad, pred.dtype)


def kl_divergence(pred, target, dpred=None, need_grad=True, epsilon=1e-7):
    """Kullback-Leibler divergence KL(target || pred) of two distributions.

    Formula, Keras's ``kl_divergence``
    (https://keras.io/api/losses/probabilistic_losses/#kldivergence-class;
    https://en.wikipedia.org/wiki/Kullback%E2%80%93Leibler_divergence), with
    both arguments clipped to [epsilon, 1] so that the logarithm is finite::

        q     = clip(target, epsilon, 1),  p = clip(pred, epsilon, 1)
        loss  = mean_n( sum_c q[n, c] * log(q[n, c] / p[n, c]) )
        dpred = -q / p / N   where epsilon <= pred <= 1, else 0

    Like the gradient of Keras's clip, clipped predictions get no gradient.

    Shapes: pred, target, dpred: [N, C].
    Defaults: epsilon = 1e-7, Keras's backend epsilon.
    """
    n = pred.shape[0]
    q = np.clip(target, epsilon, 1)
    p = np.clip(pred, epsilon, 1)
    loss = np.sum(q * np.log(q / p)) / n
    if not need_grad:
        return float(loss), None
    inside = (pred >= epsilon) & (pred <= 1)
    grad = np.where(inside, -q / p, 0) / n
    return float(loss), _into(dpred, grad, pred.dtype)


def mean_squared_error(pred, target, dpred=None, need_grad=True):
    """Mean squared error (Keras's ``mean_squared_error``).

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


def mean_absolute_error(pred, target, dpred=None, need_grad=True):
    """Mean absolute error (Keras's ``mean_absolute_error``).

    Formula (https://keras.io/api/losses/regression_losses/#meanabsoluteerror-class)::

        loss  = mean over all elements of |pred - target|
        dpred = sign(pred - target) / (N * C)     (0 where pred == target)

    Shapes: pred, target, dpred: [N, C].
    """
    diff = pred - target
    loss = np.mean(np.abs(diff))
    if not need_grad:
        return float(loss), None
    return float(loss), _into(dpred, np.sign(diff) / diff.size, pred.dtype)


def huber(pred, target, dpred=None, need_grad=True, delta=1.0):
    """Huber loss: quadratic for small residuals, linear beyond ``delta``.

    Formula, Keras's ``huber``
    (https://keras.io/api/losses/regression_losses/#huber-class;
    Huber 1964, https://en.wikipedia.org/wiki/Huber_loss), with d = pred - target::

        loss  = mean over all elements of  d**2 / 2                   if |d| <= delta
                                           delta * (|d| - delta / 2)  otherwise
        dpred = clip(d, -delta, delta) / (N * C)

    Both branches are one expression with m = min(|d|, delta), the part of
    the residual inside the quadratic zone:  m**2 / 2 + delta * (|d| - m).

    Shapes: pred, target, dpred: [N, C].
    Defaults: delta = 1.0 (Keras).
    """
    d = pred - target
    a = np.abs(d)
    m = np.minimum(a, delta)
    loss = np.mean(0.5 * m * m + delta * (a - m))
    if not need_grad:
        return float(loss), None
    return float(loss), _into(dpred, np.clip(d, -delta, delta) / d.size, pred.dtype)


def log_cosh(pred, target, dpred=None, need_grad=True):
    """Log-cosh loss: about d**2 / 2 for small residuals d and |d| - log(2) for large ones.

    Formula, Keras's ``log_cosh``
    (https://keras.io/api/losses/regression_losses/#logcosh-class), with
    d = pred - target, written so that cosh never overflows::

        log(cosh(d)) = |d| + log1p(exp(-2 |d|)) - log(2)
        loss  = mean over all elements of log(cosh(d))
        dpred = tanh(d) / (N * C)

    Shapes: pred, target, dpred: [N, C].
    """
    d = pred - target
    a = np.abs(d)
    loss = np.mean(a + np.log1p(np.exp(-2 * a)) - np.log(2.0))
    if not need_grad:
        return float(loss), None
    return float(loss), _into(dpred, np.tanh(d) / d.size, pred.dtype)


def probabilities_to_logits(pred, epsilon, binary, out=None):
    """Logits whose softmax (``binary``: sigmoid) gives back the clipped probabilities ``pred``.

        p = clip(pred, epsilon, 1 - epsilon)
        z = log(p)                    (categorical: softmax(log p) = p / sum(p))
        z = log(p) - log(1 - p)       (binary: the inverse of the sigmoid)

    A cross-entropy on probabilities is then the stable kernel on these logits, as Keras clips.
    """
    p = np.clip(pred, pred.dtype.type(epsilon), pred.dtype.type(1 - epsilon))
    return _into(out, np.log(p) - np.log1p(-p) if binary else np.log(p), pred.dtype)


def probabilities_grad(dlogits, pred, epsilon, binary, out=None):
    """The chain rule from d loss / d logits back to the probabilities of
    :func:`probabilities_to_logits`: ``dlogits / p`` (binary: ``dlogits / (p (1 - p))``), and 0
    where ``pred`` was clipped (the clip has no gradient there)."""
    lo, hi = pred.dtype.type(epsilon), pred.dtype.type(1 - epsilon)
    p = np.clip(pred, lo, hi)
    grad = dlogits / (p * (1 - p)) if binary else dlogits / p
    return _into(out, grad * ((pred > lo) & (pred < hi)), pred.dtype)


# -- Keras's further pointwise losses: the mean over all N*C elements of l(pred, target) ---------

def _pointwise(loss, grad, pred, dpred, need_grad):
    value = float(np.mean(loss, dtype=np.float64)) if loss.size else float("nan")
    if not need_grad:
        return value, None
    return value, _into(dpred, grad / pred.size, pred.dtype)


def mean_absolute_percentage_error(pred, target, dpred=None, need_grad=True, epsilon=1e-7):
    """Keras's ``mean_absolute_percentage_error``::

        loss  = mean of 100 * |target - pred| / max(|target|, epsilon)
        dpred = 100 * sign(pred - target) / max(|target|, epsilon) / (N * C)

    Shapes: pred, target, dpred: [N, C]."""
    scale = pred.dtype.type(100) / np.maximum(np.abs(target), pred.dtype.type(epsilon))
    d = pred - target
    return _pointwise(np.abs(d) * scale, np.sign(d) * scale, pred, dpred, need_grad)


def mean_squared_logarithmic_error(pred, target, dpred=None, need_grad=True, epsilon=1e-7):
    """Keras's ``mean_squared_logarithmic_error``::

        d     = log(max(pred, epsilon) + 1) - log(max(target, epsilon) + 1)
        loss  = mean of d**2
        dpred = 2 d / (pred + 1) / (N * C) where pred > epsilon, else 0

    Shapes: pred, target, dpred: [N, C]."""
    e = pred.dtype.type(epsilon)
    pc = np.maximum(pred, e)
    d = np.log1p(pc) - np.log1p(np.maximum(target, e))
    grad = np.where(pred > e, 2 * d / (pc + 1), 0)
    return _pointwise(d.astype(np.float64) ** 2, grad, pred, dpred, need_grad)


def poisson(pred, target, dpred=None, need_grad=True, epsilon=1e-7):
    """Keras's ``poisson`` (the negative log-likelihood of counts ``target`` with rates ``pred``,
    up to a constant)::

        loss  = mean of pred - target * log(pred + epsilon)
        dpred = (1 - target / (pred + epsilon)) / (N * C)

    Shapes: pred, target, dpred: [N, C]."""
    e = pred.dtype.type(epsilon)
    return _pointwise(pred - target * np.log(pred + e), 1 - target / (pred + e), pred, dpred, need_grad)


def squared_hinge(pred, target, dpred=None, need_grad=True):
    """Keras's ``squared_hinge`` for labels -1/+1 (0/1 labels are turned into -1/+1 by the loss
    class, as for :func:`hinge`)::

        loss  = mean of max(1 - target * pred, 0)**2
        dpred = -2 target max(1 - target * pred, 0) / (N * C)

    Shapes: pred, target, dpred: [N, C]."""
    margin = np.maximum(1 - target * pred, 0)
    return _pointwise(margin.astype(np.float64) ** 2, -2 * target * margin, pred, dpred, need_grad)


# -- Keras's further row losses: the mean over the N rows of l(pred[n], target[n]) ---------------

def _stable_norm(x):
    """Row L2 norms [N, 1] without overflow: the largest magnitude m times the norm of x / m."""
    x = x.astype(np.float64)
    m = np.max(np.abs(x), axis=1, keepdims=True)
    safe = np.where(m > 0, m, 1)
    return m * np.sqrt(np.sum((x / safe) ** 2, axis=1, keepdims=True))


def cosine_similarity(pred, target, dpred=None, need_grad=True, epsilon=1e-7):
    """Keras's ``cosine_similarity`` (minus the cosine: -1 for the same direction)::

        pn = pred / max(|pred|, epsilon),  tn = target / max(|target|, epsilon)  (row L2 norms)
        loss  = mean_n( -sum_c tn * pn )
        dpred = -(tn - (sum_c tn pn) pn) / |pred| / N   where |pred| > epsilon, else -tn / epsilon / N

    Norms are taken as m * |x / m| (m the row's largest magnitude), so rows of 1e30 in float32
    do not overflow. Shapes: pred, target, dpred: [N, C]."""
    n = pred.shape[0]
    rp = 1 / np.maximum(_stable_norm(pred), epsilon)
    rt = 1 / np.maximum(_stable_norm(target), epsilon)
    pn, tn = pred.astype(np.float64) * rp, target.astype(np.float64) * rt
    s = np.sum(tn * pn, axis=1, keepdims=True)
    loss = float(-np.sum(s) / n) if n else float("nan")
    if not need_grad:
        return loss, None
    grad = -rp * np.where(rp < 1 / epsilon, tn - s * pn, tn) / n
    return loss, _into(dpred, grad, pred.dtype)


def categorical_hinge(pred, target, dpred=None, need_grad=True):
    """Keras's ``categorical_hinge``::

        pos = sum_c target * pred,  neg = max_c (1 - target) * pred
        loss  = mean_n( max(neg - pos + 1, 0) )
        dpred = (-target + (1 - target) [c attains neg] / ties) / N   where the margin is > 0

    The max's gradient is shared equally among the classes that attain it.
    Shapes: pred, target, dpred: [N, C]."""
    n = pred.shape[0]
    other = (1 - target) * pred
    neg = np.max(other, axis=1, keepdims=True)
    margin = neg - np.sum(target * pred, axis=1, keepdims=True) + 1
    loss = float(np.mean(np.maximum(margin, 0), dtype=np.float64)) if n else float("nan")
    if not need_grad:
        return loss, None
    at_max = other == neg
    grad = -target + (1 - target) * at_max / at_max.sum(axis=1, keepdims=True)
    grad = np.where(margin > 0, grad, 0) / n
    return loss, _into(dpred, grad, pred.dtype)


def _focal_slope(f, gamma):
    """gamma * f**(gamma - 1), taken as 0 where f == 0 (the limit of the term it multiplies)."""
    if gamma == 0:
        return np.zeros_like(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f != 0, gamma * np.power(f, gamma - 1), 0)


def binary_focal_cross_entropy(pred, target, dpred=None, need_grad=True, from_logits=False, gamma=2.0,
                               alpha=0.25, apply_class_balancing=False, label_smoothing=0.0, epsilon=1e-7):
    """Keras's ``binary_focal_crossentropy`` (Lin et al. 2017, https://arxiv.org/abs/1708.02002)::

        t    = target * (1 - s) + s / 2
        p    = pred, or sigmoid(pred) from logits
        bce  = -(t log p' + (1 - t) log(1 - p')),  p' = clip(p, epsilon, 1 - epsilon)
               (from logits: max(z, 0) - z t + log1p(exp(-|z|)), exact for any z)
        f    = 1 - (t p + (1 - t)(1 - p))          (from logits: t sigmoid(-z) + (1 - t) sigmoid(z))
        w    = t alpha + (1 - t)(1 - alpha) with apply_class_balancing, else 1
        loss = mean over N*C of w f**gamma bce
        dpred = w (gamma f**(gamma-1) f' bce + f**gamma bce') / (N * C)

    Shapes: pred, target, dpred: [N, C]. Defaults as Keras: gamma 2, alpha 0.25."""
    x = pred.astype(np.float64)
    t = target.astype(np.float64) * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        sp, sn = sigmoid_forward(x), sigmoid_forward(-x)
        bce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        f = t * sn + (1 - t) * sp
        dbce, df = sp - t, (1 - 2 * t) * sp * sn
    else:
        pc = np.clip(x, epsilon, 1 - epsilon)
        bce = -(t * np.log(pc) + (1 - t) * np.log(1 - pc))
        f = 1 - (t * x + (1 - t) * (1 - x))
        dbce = np.where((x > epsilon) & (x < 1 - epsilon), -t / pc + (1 - t) / (1 - pc), 0)
        df = 1 - 2 * t
    w = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else 1.0
    fg = np.ones_like(f) if gamma == 0 else np.power(f, gamma)
    loss = float(np.mean(w * fg * bce)) if x.size else float("nan")
    if not need_grad:
        return loss, None
    grad = w * (_focal_slope(f, gamma) * df * bce + fg * dbce) / x.size
    return loss, _into(dpred, grad, pred.dtype)


def categorical_focal_cross_entropy(pred, target, dpred=None, need_grad=True, from_logits=False,
                                    gamma=2.0, alpha=0.25, label_smoothing=0.0, epsilon=1e-7):
    """Keras's ``categorical_focal_crossentropy``::

        q    = target * (1 - s) + s / C
        o    = pred / sum_c pred, clipped to [epsilon, 1 - epsilon]
               (from logits: o = softmax(pred), log o the log-softmax, 1 - o = -expm1(log o), unclipped)
        loss = mean_n( sum_c alpha q (1 - o)**gamma (-log o) )
        dpred, probabilities: (g - sum_c g o) / sum_c pred / N with
               g = alpha q (gamma (1 - o)**(gamma-1) log o - (1 - o)**gamma / o), 0 where clipped
        dpred, logits: (w - o sum_c w) / N with w = alpha q (gamma (1 - o)**(gamma-1) o log o - (1 - o)**gamma)

    Shapes: pred, target, dpred: [N, C]. Defaults as Keras: gamma 2, alpha 0.25."""
    n, c = pred.shape
    x = pred.astype(np.float64)
    q = target.astype(np.float64) * (1 - label_smoothing) + label_smoothing / c
    if from_logits:
        lp = _log_softmax(x)
        p, om = np.exp(lp), -np.expm1(lp)
        fg = np.ones_like(om) if gamma == 0 else np.power(om, gamma)
        with np.errstate(invalid="ignore"):
            terms = np.where(q != 0, alpha * q * fg * -lp, 0)
            w = np.where(q != 0, alpha * q * (np.where(p != 0, _focal_slope(om, gamma) * p * lp, 0) - fg), 0)
        loss = float(np.sum(terms) / n) if n else float("nan")
        if not need_grad:
            return loss, None
        grad = (w - p * w.sum(axis=1, keepdims=True)) / n
    else:
        s = x.sum(axis=1, keepdims=True)
        o = x / s
        oc = np.clip(o, epsilon, 1 - epsilon)
        fg = np.ones_like(oc) if gamma == 0 else np.power(1 - oc, gamma)
        loss = float(np.sum(alpha * q * fg * -np.log(oc)) / n) if n else float("nan")
        if not need_grad:
            return loss, None
        g = np.where((o > epsilon) & (o < 1 - epsilon),
                     alpha * q * (_focal_slope(1 - oc, gamma) * np.log(oc) - fg / oc), 0)
        grad = (g - np.sum(g * o, axis=1, keepdims=True)) / s / n
    return loss, _into(dpred, grad, pred.dtype)


def scale_by_rows(value, rows_of, grad=None):
    """Keras's ``reduction="sum"`` from a mean over the N rows of ``rows_of``: returns value * N
    and multiplies ``grad`` (if given) by N in place."""
    n = rows_of.shape[0]
    if grad is not None:
        grad *= grad.dtype.type(n)
    return float(value) * n


def sparse_softmax_cross_entropy_ignore(logits, labels, dlogits=None, need_grad=True, ignore_class=-1,
                                        total=False):
    """Softmax cross-entropy against integer labels with Keras's ``ignore_class``.

    Rows whose label is ``ignore_class`` add neither loss nor gradient; with K the kept rows::

        loss    = sum_{n in K} -log_softmax(logits)[n, labels[n]] / |K|    (0 when K is empty)
        dlogits = (softmax(logits) - onehot(labels)) / |K|  on K, 0 elsewhere

    ``total`` (reduction="sum") leaves out the division by |K|. A label outside [0, C) that is
    not ``ignore_class`` is a ValueError.

    Shapes:
        logits: [N, C]   labels: int64 [N]   dlogits: [N, C] (optional preallocated output)
    """
    keep = labels != int(ignore_class)
    bad = keep & ((labels < 0) | (labels >= logits.shape[1]))
    if bad.any():
        raise ValueError(f"labels must be in [0, {logits.shape[1]}) or ignore_class={int(ignore_class)}, "
                         f"got {int(labels[np.argmax(bad)])}")
    rows = np.flatnonzero(keep)
    count = len(rows)
    divisor = 1.0 if total else float(count)
    log_probs = _log_softmax(logits)
    loss = -np.sum(log_probs[rows, labels[rows]]) / divisor if count else 0.0
    if not need_grad:
        return float(loss), None
    grad = np.exp(log_probs)
    grad[rows, labels[rows]] -= 1
    grad[~keep] = 0
    return float(loss), _into(dlogits, grad / divisor if count else grad * 0, logits.dtype)
