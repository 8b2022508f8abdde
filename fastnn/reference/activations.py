"""Activation functions: forward passes and their derivatives.

Elementwise activations accept any shape.  ``softmax`` and ``log_softmax``
work row-wise on a 2-D array ``[N, C]`` (over the last axis).

Every ``NAME_backward(dy, x, y)`` returns ``dx = dy * f'(x)``.  Both the
input ``x`` and the output ``y`` are passed, and each derivative uses
whichever gives the cheaper or more stable formula (``tanh`` is cheapest
from ``y``, ``relu`` needs only the sign of ``x``).

All results keep the input dtype: float32 in, float32 out.
"""

import math

import numpy as np

from ._out import _into

# Constants from Klambauer et al. 2017, "Self-Normalizing Neural Networks",
# arXiv:1706.02515, eq. (14): the fixed point with zero mean, unit variance.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _shift_by_row_max(x):
    """``x - max_c x[n]`` per row, with the limit taken in rows whose maximum is +inf.

    Such a row is the limit of logits growing without bound together, so its entries at +inf
    become 0 and all others -inf: the softmax then puts 1/k on each of the k entries at +inf and
    0 elsewhere. A row of only -inf gives -inf - (-inf) = NaN (no distribution exists), and a NaN
    anywhere in a row makes the whole row NaN.
    """
    mx = x.max(axis=1, keepdims=True)  # NaN when the row holds a NaN
    with np.errstate(invalid="ignore"):  # -inf - (-inf): the documented NaN row
        shifted = x - mx
    top = np.isposinf(mx[:, 0])
    if top.any():
        shifted[top] = np.where(np.isposinf(x[top]), 0, -np.inf)
    return shifted


def _sigmoid(x):
    # exp(-|x|) lies in (0, 1], so neither branch can overflow; for large
    # |x| it underflows to 0, which is the correct limit.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# ---------------------------------------------------------------- linear

def linear_forward(x, out=None):
    """Identity activation.

    Formula: ``y = x``.   Shapes: x, y: any shape, same shape.
    """
    if out is None:
        return x.copy()  # a new array, never an alias the caller might mutate
    return _into(out, x, x.dtype)


def linear_backward(dy, x, y, out=None):
    """Derivative of the identity.

    Formula: ``dx = dy``.   Shapes: dy, x, y, dx: any shape, all equal.
    """
    if out is None:
        return dy.copy()
    return _into(out, dy, dy.dtype)


# ------------------------------------------------------------------ step

def step_forward(x, out=None):
    """Heaviside step, the threshold unit of Rosenblatt's perceptron (1958).

    Formula: ``y = 1 if x > 0 else 0``.   Shapes: x, y: any shape.
    Forward only: the derivative is zero almost everywhere, so there is no
    ``step_backward``.
    """
    return _into(out, x > 0, x.dtype)


# --------------------------------------------------------------- sigmoid

def sigmoid_forward(x, out=None):
    """Logistic sigmoid (https://en.wikipedia.org/wiki/Logistic_function).

    Formula::

        y = 1 / (1 + exp(-x))        for x >= 0
        y = exp(x) / (1 + exp(x))    for x <  0   (same value, no overflow)

    Shapes: x, y: any shape.
    """
    return _into(out, _sigmoid(x), x.dtype)


def sigmoid_backward(dy, x, y, out=None):
    """Derivative of the sigmoid, from its output.

    Formula: ``dx = dy * y * (1 - y)``.   Shapes: all equal, any shape.
    """
    return _into(out, dy * y * (1 - y), x.dtype)


# ------------------------------------------------------------------ tanh

def tanh_forward(x, out=None):
    """Hyperbolic tangent.

    Formula: ``y = tanh(x)``.   Shapes: x, y: any shape.
    """
    return _into(out, np.tanh(x), x.dtype)


def tanh_backward(dy, x, y, out=None):
    """Derivative of tanh, from its output.

    Formula: ``dx = dy * (1 - y**2)``.   Shapes: all equal, any shape.
    """
    return _into(out, dy * (1 - y * y), x.dtype)


# ------------------------------------------------------------------ relu

def relu_forward(x, out=None):
    """Rectified linear unit (Nair & Hinton 2010, ICML,
    https://www.cs.toronto.edu/~hinton/absps/reluICML.pdf).

    Formula: ``y = max(x, 0)``.   Shapes: x, y: any shape.
    """
    return _into(out, np.maximum(x, 0), x.dtype)


def relu_backward(dy, x, y, out=None):
    """Derivative of ReLU; the derivative at exactly 0 is taken as 0.

    Formula: ``dx = dy * (x > 0)``.   Shapes: all equal, any shape.
    """
    return _into(out, np.where(x > 0, dy, 0), x.dtype)


# ------------------------------------------------------------ leaky relu

def leaky_relu_forward(x, alpha=0.3, out=None):
    """Leaky ReLU (Maas, Hannun & Ng 2013, "Rectifier Nonlinearities Improve
    Neural Network Acoustic Models", ICML workshop).

    Formula: ``y = x if x > 0 else alpha * x``.   Shapes: x, y: any shape.
    Default ``alpha=0.3``, the Keras ``LeakyReLU`` default (the paper
    uses 0.01).
    """
    return _into(out, np.where(x > 0, x, alpha * x), x.dtype)


def leaky_relu_backward(dy, x, y, alpha=0.3, out=None):
    """Derivative of leaky ReLU.

    Formula: ``dx = dy * (1 if x > 0 else alpha)``.   Shapes: all equal.
    Default ``alpha=0.3``, the Keras ``LeakyReLU`` default.
    """
    return _into(out, np.where(x > 0, dy, alpha * dy), x.dtype)


# ------------------------------------------------------------------- elu

def elu_forward(x, alpha=1.0, out=None):
    """Exponential linear unit (Clevert, Unterthiner & Hochreiter 2015,
    arXiv:1511.07289).

    Formula: ``y = x if x > 0 else alpha * (exp(x) - 1)``.
    Shapes: x, y: any shape.   Default ``alpha=1.0``, as in the paper and
    Keras.
    """
    # expm1 is accurate for small |x|, where exp(x) - 1 cancels; clamping
    # at 0 keeps the branch np.where discards from overflowing.
    negative = alpha * np.expm1(np.minimum(x, 0))
    return _into(out, np.where(x > 0, x, negative), x.dtype)


def elu_backward(dy, x, y, alpha=1.0, out=None):
    """Derivative of ELU, from its output.

    Formula: ``dx = dy * (1 if x > 0 else y + alpha)``, because for
    ``x <= 0`` the derivative ``alpha * exp(x)`` equals ``y + alpha``.
    Shapes: all equal.   Default ``alpha=1.0``.
    """
    return _into(out, np.where(x > 0, dy, dy * (y + alpha)), x.dtype)


# ------------------------------------------------------------------ selu

def selu_forward(x, out=None):
    """Scaled ELU (Klambauer et al. 2017, "Self-Normalizing Neural
    Networks", arXiv:1706.02515).

    Formula: ``y = SELU_SCALE * (x if x > 0 else SELU_ALPHA * (exp(x) - 1))``.
    Shapes: x, y: any shape.   The constants are fixed by the paper.
    """
    negative = SELU_ALPHA * np.expm1(np.minimum(x, 0))
    return _into(out, SELU_SCALE * np.where(x > 0, x, negative), x.dtype)


def selu_backward(dy, x, y, out=None):
    """Derivative of SELU.

    Formula: ``dx = dy * SELU_SCALE * (1 if x > 0 else SELU_ALPHA * exp(x))``.
    Shapes: all equal, any shape.
    """
    negative = (SELU_SCALE * SELU_ALPHA) * np.exp(np.minimum(x, 0))
    return _into(out, np.where(x > 0, SELU_SCALE * dy, negative * dy), x.dtype)


# -------------------------------------------------------------- softplus

def softplus_forward(x, out=None):
    """Softplus, a smooth ReLU (Dugas et al. 2001, NIPS, "Incorporating
    Second-Order Functional Knowledge for Better Option Pricing").

    Formula::

        y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))

    The second form never overflows and keeps full precision when
    ``exp(-|x|)`` is tiny.   Shapes: x, y: any shape.
    """
    return _into(out, np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), x.dtype)


def softplus_backward(dy, x, y, out=None):
    """Derivative of softplus, which is the sigmoid.

    Formula: ``dx = dy * sigmoid(x)``.   Shapes: all equal, any shape.
    """
    return _into(out, dy * _sigmoid(x), x.dtype)


# --------------------------------------------------------------- softmax

def softmax_forward(x, out=None):
    """Softmax over each row (Bridle 1990, "Probabilistic Interpretation of
    Feedforward Classification Network Outputs"; Goodfellow et al., *Deep
    Learning*, section 6.2.2.3).

    Formula::

        y[n, c] = exp(x[n, c] - max_c x[n]) / sum_c exp(x[n, c] - max_c x[n])

    Subtracting the row maximum changes nothing mathematically but makes
    the largest exponent exp(0) = 1, so nothing overflows.

    Infinite logits (the result both backends give):

    - a row with k entries at +inf: ``1/k`` at each of them and 0 elsewhere,
      the limit as those logits grow together (``[inf, 0, 1] -> [1, 0, 0]``);
      -inf entries in a row with a finite maximum get exactly 0;
    - a row of only -inf: NaN in every entry, since no distribution exists
      (the same as a NaN logit, which makes its whole row NaN).

    Shapes: x, y: [N, C].
    """
    e = np.exp(_shift_by_row_max(x))
    return _into(out, e / e.sum(axis=1, keepdims=True), x.dtype)


def softmax_backward(dy, x, y, out=None):
    """Vector-Jacobian product of softmax, from its output.

    Formula: ``dx = y * (dy - sum_c(dy * y))``, the sum taken per row.
    Shapes: dy, x, y, dx: [N, C].
    """
    inner = (dy * y).sum(axis=1, keepdims=True)
    return _into(out, y * (dy - inner), x.dtype)


# ----------------------------------------------------------- log_softmax

def log_softmax_forward(x, out=None):
    """Logarithm of the softmax over each row, via log-sum-exp.

    Formula::

        s = x - max_c x[n]
        y = s - log(sum_c exp(s))

    Computing it this way, rather than ``log(softmax(x))``, stays finite
    when a probability underflows to 0.

    Infinite logits, as for ``softmax_forward``: a row with k entries at
    +inf gives ``-log(k)`` there and -inf elsewhere (``[inf, 0] -> [0, -inf]``);
    -inf entries in a row with a finite maximum give -inf; a row of only
    -inf gives NaN everywhere.

    Shapes: x, y: [N, C].
    """
    shifted = _shift_by_row_max(x)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return _into(out, shifted - log_sum, x.dtype)


def log_softmax_backward(dy, x, y, out=None):
    """Vector-Jacobian product of log_softmax, from its output.

    Formula: ``dx = dy - exp(y) * sum_c(dy)``, the sum taken per row
    (``exp(y)`` is the softmax).
    Shapes: dy, x, y, dx: [N, C].
    """
    return _into(out, dy - np.exp(y) * dy.sum(axis=1, keepdims=True), x.dtype)


# ----------------------------------------------------- Keras 3's further activations
# Formulas as ``keras.activations`` defines them; derivatives from x (or y where cheaper).

def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _phi_cdf(x):
    # The standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2 (erfc: no cancellation in the far
    # negative tail, where 1 + erf would lose every digit). The argument is rounded in x's dtype,
    # as the native kernel does (erfc magnifies an argument's rounding by about 2 x^2); NumPy has
    # no erfc ufunc, so math.erfc runs per element in float64.
    x = np.asarray(x)
    arg = -(x * x.dtype.type(1 / math.sqrt(2.0)))
    flat = arg.astype(np.float64).ravel()
    values = np.fromiter((math.erfc(v) for v in flat), np.float64, flat.size)
    return 0.5 * values.reshape(np.shape(x))


def gelu_forward(x, out=None):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016, arXiv:1606.08415), Keras's
    ``gelu(x, approximate=False)``: ``y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))``, computed as
    ``0.5 x erfc(-x / sqrt 2)``. Shapes: any. Phi is evaluated in float64 and rounded once."""
    return _into(out, x * _phi_cdf(x), x.dtype)


def gelu_backward(dy, x, y, out=None):
    """``dx = dy * (Phi(x) + x * phi(x))``, phi the standard normal density."""
    xd = x.astype(np.float64)
    grad = _phi_cdf(x) + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
    return _into(out, dy * grad, x.dtype)


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu_tanh_forward(x, out=None):
    """GELU's tanh approximation, Keras's ``gelu(x, approximate=True)``:
    ``y = 0.5 x (1 + tanh(u))``, ``u = sqrt(2/pi) (x + 0.044715 x^3)``, computed as
    ``x * sigmoid(2u)`` (the same value, without the cancellation of 1 + tanh(u) for u << 0)."""
    u = _GELU_C * (x + 0.044715 * (x * x * x))
    return _into(out, x * _sigmoid(2 * u), x.dtype)


def gelu_tanh_backward(dy, x, y, out=None):
    """``dx = dy * (s + 2 x s (1 - s) u')``, s = sigmoid(2u), u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    s = _sigmoid(2 * (_GELU_C * (x + 0.044715 * (x * x * x))))
    du = _GELU_C * (1 + 3 * 0.044715 * (x * x))
    return _into(out, dy * (s + 2 * x * s * (1 - s) * du), x.dtype)


def silu_forward(x, out=None):
    """SiLU / swish (Elfwing et al. 2017, arXiv:1702.03118; Ramachandran et al. 2017):
    ``y = x * sigmoid(x)``."""
    return _into(out, x * _sigmoid(x), x.dtype)


def silu_backward(dy, x, y, out=None):
    """``dx = dy * s (1 + x (1 - s))``, s = sigmoid(x)."""
    s = _sigmoid(x)
    return _into(out, dy * (s * (1 + x * (1 - s))), x.dtype)


def mish_forward(x, out=None):
    """Mish (Misra 2019, arXiv:1908.08681): ``y = x * tanh(softplus(x))``."""
    return _into(out, x * np.tanh(_softplus(x)), x.dtype)


def mish_backward(dy, x, y, out=None):
    """``dx = dy * (t + x (1 - t^2) sigmoid(x))``, t = tanh(softplus(x))."""
    t = np.tanh(_softplus(x))
    return _into(out, dy * (t + x * (1 - t * t) * _sigmoid(x)), x.dtype)


def relu6_forward(x, out=None):
    """``y = min(max(x, 0), 6)`` (Krizhevsky 2010; MobileNets). NaN passes through."""
    return _into(out, np.minimum(np.maximum(x, 0), 6), x.dtype)


def relu6_backward(dy, x, y, out=None):
    """``dx = dy`` where 0 < x < 6, else 0."""
    return _into(out, np.where((x > 0) & (x < 6), dy, 0), x.dtype)


def _hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1)


def hard_sigmoid_forward(x, out=None):
    """Keras 3's hard sigmoid: ``y = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1)``."""
    return _into(out, _hard_sigmoid(x), x.dtype)


def hard_sigmoid_backward(dy, x, y, out=None):
    """``dx = dy / 6`` where -3 < x < 3, else 0."""
    return _into(out, np.where((x > -3) & (x < 3), dy / 6, 0), x.dtype)


def hard_silu_forward(x, out=None):
    """Hard SiLU / hard swish (Howard et al. 2019, arXiv:1905.02244): ``y = x * hard_sigmoid(x)``."""
    return _into(out, x * _hard_sigmoid(x), x.dtype)


def hard_silu_backward(dy, x, y, out=None):
    """``dx = dy * (0 for x <= -3, x / 3 + 1/2 in between, 1 for x >= 3)``."""
    grad = np.where(x <= -3, 0, np.where(x >= 3, dy, dy * (x / 3 + 0.5)))
    return _into(out, grad, x.dtype)


def softsign_forward(x, out=None):
    """Softsign (Bergstra et al. 2009): ``y = x / (1 + |x|)``."""
    return _into(out, x / (1 + np.abs(x)), x.dtype)


def softsign_backward(dy, x, y, out=None):
    """``dx = dy / (1 + |x|)^2``."""
    d = 1 + np.abs(x)
    return _into(out, dy / (d * d), x.dtype)


def exponential_forward(x, out=None):
    """``y = exp(x)`` (overflows to inf beyond log(max float), as Keras's)."""
    with np.errstate(over="ignore"):
        return _into(out, np.exp(x), x.dtype)


def exponential_backward(dy, x, y, out=None):
    """``dx = dy * y``."""
    return _into(out, dy * y, x.dtype)


def celu_forward(x, alpha=1.0, out=None):
    """Continuously differentiable ELU (Barron 2017, arXiv:1704.07483):
    ``y = x if x > 0 else alpha * (exp(x / alpha) - 1)``; Keras default alpha=1.0."""
    negative = alpha * np.expm1(np.minimum(x, 0) / alpha)
    return _into(out, np.where(x > 0, x, negative), x.dtype)


def celu_backward(dy, x, y, alpha=1.0, out=None):
    """``dx = dy * (1 if x > 0 else exp(x / alpha))``."""
    return _into(out, np.where(x > 0, dy, dy * np.exp(np.minimum(x, 0) / alpha)), x.dtype)


def relu_clip_forward(x, negative_slope=0.0, max_value=math.inf, threshold=0.0, out=None):
    """Keras's ``relu(x, negative_slope, max_value, threshold)`` in one kernel::

        y = (x if x > threshold else 0, clipped to [0, max_value]) - negative_slope * max(threshold - x, 0)

    (Keras's order of operations; NaN passes through.) Shapes: any."""
    pos = np.where(x > threshold, np.clip(x, 0, max_value), 0)
    neg = np.maximum(threshold - x, 0)
    y = pos - negative_slope * neg if negative_slope != 0 else pos
    return _into(out, np.where(np.isnan(x), x, y), x.dtype)


def relu_clip_backward(dy, x, negative_slope=0.0, max_value=math.inf, threshold=0.0, out=None):
    """``dx = dy * ((1 if threshold < x, 0 < x < max_value) + (negative_slope if x < threshold))``."""
    grad = (((x > threshold) & (x > 0) & (x < max_value)).astype(x.dtype)
            + np.where(x < threshold, negative_slope, 0).astype(x.dtype))
    return _into(out, dy * grad, x.dtype)


def affine_forward(x, scale, offset, out=None):
    """Per-feature affine map over the last axis: ``y = x * scale + offset`` (Rescaling,
    Normalization). Shapes: x (N, ..., C), scale and offset (C,) -> y like x."""
    return _into(out, x * scale + offset, x.dtype)


def affine_backward(dy, scale, out=None):
    """``dx = dy * scale``. Shapes: dy (N, ..., C), scale (C,)."""
    return _into(out, dy * scale, dy.dtype)


def normalize_forward(x, mean, variance, epsilon, invert=False, out=None):
    """Keras's ``Normalization`` over the last axis, with ``s = maximum(sqrt(variance), epsilon)``::

        y = (x - mean) / s           (invert=False)
        y = mean + x * s             (invert=True: undoes the normalization)

    Shapes: x (N, ..., C), mean and variance (C,) -> y like x."""
    s = np.maximum(np.sqrt(variance), x.dtype.type(epsilon))
    y = mean + x * s if invert else (x - mean) / s
    return _into(out, y, x.dtype)


def normalize_backward(dy, variance, epsilon, invert=False, out=None):
    """``dx = dy / s`` (or ``dy * s`` with invert), s as in :func:`normalize_forward`."""
    s = np.maximum(np.sqrt(variance), dy.dtype.type(epsilon))
    return _into(out, dy * s if invert else dy / s, dy.dtype)


# -- By name: the form a recorded program calls --------------------------------------------------
_BY_NAME = {"linear": (linear_forward, linear_backward), "step": (step_forward, None),
            "sigmoid": (sigmoid_forward, sigmoid_backward), "tanh": (tanh_forward, tanh_backward),
            "relu": (relu_forward, relu_backward),
            "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
            "elu": (elu_forward, elu_backward), "selu": (selu_forward, selu_backward),
            "softplus": (softplus_forward, softplus_backward),
            "softmax": (softmax_forward, softmax_backward),
            "log_softmax": (log_softmax_forward, log_softmax_backward),
            "gelu": (gelu_forward, gelu_backward), "gelu_tanh": (gelu_tanh_forward, gelu_tanh_backward),
            "silu": (silu_forward, silu_backward), "mish": (mish_forward, mish_backward),
            "relu6": (relu6_forward, relu6_backward),
            "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward),
            "hard_silu": (hard_silu_forward, hard_silu_backward),
            "softsign": (softsign_forward, softsign_backward),
            "exponential": (exponential_forward, exponential_backward),
            "celu": (celu_forward, celu_backward)}
_WITH_ALPHA = ("leaky_relu", "elu", "celu")


def act_forward(x, activation, alpha=0.0, out=None):
    """``activation(x)`` for an activation given by name (``"relu"``, ``"softmax"``...); ``alpha``
    is the slope of leaky_relu and the scale of elu, ignored by the others."""
    forward = _BY_NAME[activation][0]
    return forward(x, alpha, out=out) if activation in _WITH_ALPHA else forward(x, out=out)


def act_backward(dy, x, y, activation, alpha=0.0, out=None):
    """``dy * activation'(x)`` from x and y = activation(x), for an activation given by name."""
    backward = _BY_NAME[activation][1]
    return backward(dy, x, y, alpha, out=out) if activation in _WITH_ALPHA else backward(dy, x, y, out=out)


def prelu_forward(x, alpha, out=None):
    """Parametric ReLU (He et al. 2015, arXiv:1502.01852): a slope learned per feature.

        y = x            where x > 0
        y = alpha * x    elsewhere

    Shapes: x (N, ..., C), alpha (C,) -> y like x.
    """
    return _into(out, np.where(x > 0, x, alpha * x), x.dtype)


def prelu_backward(dy, x, alpha, dx=None, dalpha=None, need_dx=True):
    """Gradients of :func:`prelu_forward`: returns (dx, dalpha).

        dx     = dy * (1 if x > 0 else alpha)
        dalpha = sum over every axis but the last of (0 if x > 0 else dy * x)

    ``dalpha`` is summed in float64 and rounded once; it is overwritten, never accumulated.
    """
    negative = ~(x > 0)
    grad = (np.where(negative, dy.astype(np.float64) * x, 0.0)).reshape(-1, alpha.shape[0])
    dalpha = _into(dalpha, grad.sum(axis=0), x.dtype)
    if not need_dx:
        return None, dalpha
    return _into(dx, np.where(negative, alpha * dy, dy), x.dtype), dalpha
