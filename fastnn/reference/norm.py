"""Batch normalization and layer normalization: forward and backward passes.

Both standardize values to mean 0 and variance 1, then scale by a learned ``gamma`` and shift by a
learned ``beta``; they differ in *which* values share a mean and a variance:

* batch normalization (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
  Training by Reducing Internal Covariate Shift", https://arxiv.org/abs/1502.03167): each feature
  (column), over the samples of the batch; at test time, over the whole training data, estimated
  by moving averages.
* layer normalization (Ba, Kiros & Hinton 2016, "Layer Normalization",
  https://arxiv.org/abs/1607.06450): each sample (row), over its features; the same at training
  and test time.

Numerics, the same here as in the C++ kernels:

* The variance is computed in two passes, the mean first and then the mean squared deviation
  from it. The one-pass shortcut ``E[x^2] - E[x]^2`` subtracts two nearly equal numbers when the
  mean is large compared with the spread: for x = 1e4 + 1e-2 * noise, E[x^2] is about 1e8, whose
  float32 rounding step (8.0) is 80,000 times the variance (1e-4) being computed.
* Sums are accumulated in float64 and the statistics stored in the input's dtype. A float32 sum
  of many values near 1e4 would round away the small spread that the variance measures.

``gamma`` or ``beta`` may be None: Keras's ``scale=False`` (gamma = 1) and ``center=False``
(beta = 0).
"""

import numpy as np

from ._out import _into


def batchnorm_forward(x, gamma, beta, moving_mean, moving_variance, momentum, epsilon, out=None,
                      mean=None, rstd=None):
    """Batch normalization in training mode: normalize with this batch's statistics.

    Formula, per feature c, over the N rows of the batch::

        mean[c] = sum_n x[n, c] / N
        var[c]  = sum_n (x[n, c] - mean[c])**2 / N            (biased: divides by N)
        rstd[c] = 1 / sqrt(var[c] + epsilon)
        y[n, c] = gamma[c] * (x[n, c] - mean[c]) * rstd[c] + beta[c]

    and the moving statistics, used at inference, are updated in place::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
        moving_variance = momentum * moving_variance + (1 - momentum) * var

    Shapes:
        x: [N, C]   gamma, beta: [C] or None   moving_mean, moving_variance: [C] (updated)
        y: [N, C]   mean, rstd: [C] (saved for ``batchnorm_backward``)

    Defaults of the Keras layer: momentum=0.99, epsilon=1e-3. As in Keras 3, the moving variance
    averages the biased batch variance (Keras 2's fused kernel used N/(N-1) times it).
    ``out``, ``mean`` and ``rstd`` are optional preallocated outputs.

    Returns ``(y, mean, rstd)``.
    """
    dtype = x.dtype
    n = x.shape[0]
    mean64 = x.sum(axis=0, dtype=np.float64) / n
    var64 = ((x - mean64) ** 2).sum(axis=0) / n  # two passes: no cancellation
    mean_value = _into(mean, mean64, dtype)
    rstd_value = _into(rstd, 1.0 / np.sqrt(var64 + epsilon), dtype)
    moving_mean[...] = momentum * moving_mean + (1 - momentum) * mean_value
    moving_variance[...] = momentum * moving_variance + (1 - momentum) * var64.astype(dtype)
    y = _normalize(x, mean_value, rstd_value, gamma, beta)
    return _into(out, y, dtype), mean_value, rstd_value


def batchnorm_inference(x, gamma, beta, moving_mean, moving_variance, epsilon, out=None):
    """Batch normalization in inference mode: normalize with the moving statistics.

    Formula::

        y[n, c] = gamma[c] * (x[n, c] - moving_mean[c]) / sqrt(moving_variance[c] + epsilon) + beta[c]

    Each row is transformed on its own, so a sample's output does not depend on its batch.

    Shapes:
        x: [N, C]   gamma, beta, moving_mean, moving_variance: [C] (gamma/beta may be None)   y: [N, C]
    """
    dtype = x.dtype
    rstd = (1.0 / np.sqrt(moving_variance.astype(np.float64) + epsilon)).astype(dtype)
    return _into(out, _normalize(x, moving_mean, rstd, gamma, beta), dtype)


def batchnorm_backward(dy, x, gamma, mean, rstd, dx=None, dgamma=None, dbeta=None, need_dx=True,
                       need_dgamma=True, need_dbeta=True):
    """Gradients of training-mode batch normalization.

    With xhat = (x - mean) * rstd and y = gamma * xhat + beta, the chain rule through the batch
    mean and variance (both depend on every row; Ioffe & Szegedy 2015, section 3) gives::

        dbeta[c]  = sum_n dy[n, c]
        dgamma[c] = sum_n dy[n, c] * xhat[n, c]
        dx[n, c]  = gamma[c] * rstd[c] * (dy[n, c] - dbeta[c] / N - xhat[n, c] * dgamma[c] / N)

    The two subtracted terms are the gradient flowing through the mean and through the variance.

    Shapes:
        dy, x: [N, C]   gamma: [C] or None   mean, rstd: [C] (from ``batchnorm_forward``)
        dx: [N, C]   dgamma, dbeta: [C]

    ``dx``, ``dgamma``, ``dbeta`` are optional preallocated outputs, overwritten (never
    accumulated into); each is None in the result when its ``need_`` flag is False.

    Returns ``(dx, dgamma, dbeta)``.
    """
    dtype = x.dtype
    n = x.shape[0]
    xhat = (x - mean) * rstd
    sum_dy = dy.sum(axis=0, dtype=np.float64)
    sum_dy_xhat = (dy.astype(np.float64) * xhat).sum(axis=0)
    dx_value = None
    if need_dx:
        k = rstd if gamma is None else gamma * rstd
        mean_dy = (sum_dy / n).astype(dtype)
        mean_dy_xhat = (sum_dy_xhat / n).astype(dtype)
        dx_value = _into(dx, k * ((dy - mean_dy) - xhat * mean_dy_xhat), dtype)
    dgamma_value = _into(dgamma, sum_dy_xhat, dtype) if need_dgamma else None
    dbeta_value = _into(dbeta, sum_dy, dtype) if need_dbeta else None
    return dx_value, dgamma_value, dbeta_value


def layernorm_forward(x, gamma, beta, epsilon, out=None, mean=None, rstd=None):
    """Layer normalization: normalize each sample over its features.

    Formula, per row n, over the C features::

        mean[n] = sum_c x[n, c] / C
        var[n]  = sum_c (x[n, c] - mean[n])**2 / C
        rstd[n] = 1 / sqrt(var[n] + epsilon)
        y[n, c] = gamma[c] * (x[n, c] - mean[n]) * rstd[n] + beta[c]

    Nothing depends on the other rows, so training and inference compute the same thing.

    Shapes:
        x: [N, C]   gamma, beta: [C] or None   y: [N, C]   mean, rstd: [N] (saved for backward)

    Defaults of the Keras layer: epsilon=1e-3, axis=-1.

    Returns ``(y, mean, rstd)``.
    """
    dtype = x.dtype
    c = x.shape[1]
    mean64 = x.sum(axis=1, dtype=np.float64) / c
    var64 = ((x - mean64[:, None]) ** 2).sum(axis=1) / c
    mean_value = _into(mean, mean64, dtype)
    rstd_value = _into(rstd, 1.0 / np.sqrt(var64 + epsilon), dtype)
    y = _normalize(x, mean_value[:, None], rstd_value[:, None], gamma, beta)
    return _into(out, y, dtype), mean_value, rstd_value


def layernorm_backward(dy, x, gamma, mean, rstd, dx=None, dgamma=None, dbeta=None, need_dx=True,
                       need_dgamma=True, need_dbeta=True):
    """Gradients of layer normalization.

    With xhat = (x - mean) * rstd (per row) and g = dy * gamma, the gradient w.r.t. x is the
    batch-norm formula turned sideways -- the mean and variance are now taken over a row::

        dx[n, c]  = rstd[n] * (g[n, c] - sum_c g[n, c] / C - xhat[n, c] * sum_c g[n, c] * xhat[n, c] / C)
        dgamma[c] = sum_n dy[n, c] * xhat[n, c]
        dbeta[c]  = sum_n dy[n, c]

    Shapes:
        dy, x: [N, C]   gamma: [C] or None   mean, rstd: [N]   dx: [N, C]   dgamma, dbeta: [C]

    Outputs are overwritten, never accumulated into. Returns ``(dx, dgamma, dbeta)``.
    """
    dtype = x.dtype
    c = x.shape[1]
    xhat = (x - mean[:, None]) * rstd[:, None]
    dx_value = None
    if need_dx:
        g = dy if gamma is None else dy * gamma
        mean_g = (g.sum(axis=1, dtype=np.float64) / c).astype(dtype)
        mean_g_xhat = ((g.astype(np.float64) * xhat).sum(axis=1) / c).astype(dtype)
        dx_value = _into(dx, rstd[:, None] * ((g - mean_g[:, None]) - xhat * mean_g_xhat[:, None]), dtype)
    dgamma_value = _into(dgamma, (dy.astype(np.float64) * xhat).sum(axis=0), dtype) if need_dgamma else None
    dbeta_value = _into(dbeta, dy.sum(axis=0, dtype=np.float64), dtype) if need_dbeta else None
    return dx_value, dgamma_value, dbeta_value


def _normalize(x, mean, rstd, gamma, beta):
    """gamma * ((x - mean) * rstd) + beta, skipping a None gamma or beta."""
    y = (x - mean) * rstd
    if gamma is not None:
        y = gamma * y
    if beta is not None:
        y = y + beta
    return y


def batchnorm_frozen_backward(dy, gamma, moving_variance, epsilon, out=None, scale=None):
    """Backward of inference-mode batch normalization (a frozen layer inside ``fit``).

    In inference mode the layer is a fixed affine map per feature, so

        scale = gamma / sqrt(moving_variance + epsilon)     (rstd in float64, rounded once)
        dx    = dy * scale

    Shapes: dy (N, C), gamma (C,) or None, moving_variance (C,) -> dx (N, C); ``scale`` (C,) is a
    workspace that receives the per-feature factor.
    """
    rstd = (1.0 / np.sqrt(moving_variance.astype(np.float64) + epsilon)).astype(dy.dtype)
    factor = _into(scale, rstd if gamma is None else gamma * rstd, dy.dtype)
    return _into(out, dy * factor, dy.dtype)
