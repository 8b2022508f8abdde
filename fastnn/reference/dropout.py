"""Dropout: forward and backward passes, with a counter-based random mask.

Dropout (Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A Simple Way
to Prevent Neural Networks from Overfitting", JMLR 15:1929-1958,
https://jmlr.org/papers/v15/srivastava14a.html) sets each unit to zero with probability ``rate``
during training, so that no unit can rely on particular others being present.

The random mask comes from a *counter-based* generator: whether element ``i`` is kept is a pure
function of ``(seed, counter, i)``, computed with 64-bit integer arithmetic (splitmix64's output
function; Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators",
https://doi.org/10.1145/2714064.2660195). There is no generator state to share between threads,
so the C++ kernel draws the same mask on any number of threads, and this NumPy twin draws it bit
for bit too.
"""

import math

import numpy as np

from ._out import _into

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's step between consecutive states
TWO_POW_53 = 1 << 53         # keep decisions compare the top 53 bits of a 64-bit hash


def _mix(z):
    """splitmix64's output function: a bijection of 64-bit integers that scrambles every bit.

    Works on Python ints (masked to 64 bits) and on numpy uint64 arrays (which wrap by themselves).
    """
    if isinstance(z, np.ndarray):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def dropout_keep(n, rate, seed, counter):
    """Boolean keep mask of ``n`` elements for one call ``(seed, counter)``.

    Formula (all arithmetic modulo 2**64)::

        key  = mix(mix(seed) ^ counter)
        u[i] = mix(key + (i + 1) * 0x9E3779B97F4A7C15)       (splitmix64's i-th output from key)
        keep[i] = (u[i] >> 11) >= ceil(rate * 2**53)

    ``u[i] >> 11`` is uniform on [0, 2**53), so an element is kept with probability 1 - rate
    (exactly, up to the 2**-53 resolution). ``rate * 2**53`` is exact in float64, so C++ and NumPy
    agree on the threshold.
    """
    key = _mix(_mix(seed & MASK64) ^ (counter & MASK64))
    threshold = np.uint64(math.ceil(rate * TWO_POW_53))
    i = np.arange(1, n + 1, dtype=np.uint64)
    u = _mix(np.uint64(key) + i * np.uint64(GOLDEN))
    return (u >> np.uint64(11)) >= threshold


def dropout_forward(x, rate, seed, counter, out=None, mask=None):
    """Inverted dropout in training mode.

    Formula::

        mask[i] = 1 / (1 - rate)  if keep[i]  else 0       (keep[i] from ``dropout_keep``)
        y[i]    = x[i] * mask[i]

    Why "inverted": the original paper keeps units unscaled during training and multiplies the
    weights by the keep probability ``1 - rate`` at test time. Either way the expected value a
    unit passes on during training equals what it passes at test time: E[mask] * x = x here, and
    (1 - rate) * x = (1 - rate) * x there. Scaling by 1 / (1 - rate) during training moves all the
    work into training, so inference is the identity and needs no knowledge of ``rate``. Keras's
    ``Dropout`` layer does the same.

    Shapes: x, y, mask: any shape, all equal; ``i`` runs over the flattened (row-major) array.
    ``rate`` in [0, 1); ``seed`` and ``counter`` are integers in [0, 2**64). The layer advances
    ``counter`` after each training call so every call draws a new mask.
    ``out`` and ``mask`` are optional preallocated outputs.

    Returns ``(y, mask)``; ``mask`` is saved for ``dropout_backward``.
    """
    dtype = x.dtype
    keep = dropout_keep(x.size, rate, seed, counter).reshape(x.shape)
    scale = np.asarray(1.0 / (1.0 - rate), dtype=dtype)
    mask_value = _into(mask, np.where(keep, scale, np.zeros((), dtype)), dtype)
    return _into(out, x * mask_value, dtype), mask_value


def dropout_backward(dy, mask, out=None):
    """Gradient of dropout: ``dx = dy * mask`` (dropped units pass no gradient back).

    Shapes: dy, mask, dx: any shape, all equal. ``out`` is overwritten if given.
    """
    return _into(out, dy * mask, dy.dtype)


def dropout_step(x, rate, stream, out=None, mask=None):
    """One training call of a Dropout layer whose generator state is ``stream = [key, step]``
    (uint64): :func:`dropout_forward` with ``seed=key, counter=step``, then ``step += 1`` so the
    next call draws a new mask. Returns (y, mask)."""
    y, mask = dropout_forward(x, rate, int(stream[0]), int(stream[1]), out=out, mask=mask)
    stream[1] += np.uint64(1)
    return y, mask


def normal_noise(x, stddev, seed, counter, out=None):
    """``x + stddev * z`` with z standard normal, drawn from the same counter-based generator.

    For element i (arithmetic modulo 2**64, key as in :func:`dropout_keep`)::

        u1 = ((mix(key + (2i + 1) * golden) >> 11) + 1) / 2**53      in (0, 1]
        u2 =  (mix(key + (2i + 2) * golden) >> 11)      / 2**53      in [0, 1)
        z  = sqrt(-2 log u1) * cos(2 pi u2)                          (Box & Muller 1958)

    The integers agree bit for bit with the C++ kernel; log and cos may differ from the C
    library's in the last bit, so the noise agrees to float64 rounding.
    Shapes: x -> y of the same shape.
    """
    key = _mix(_mix(seed & MASK64) ^ (counter & MASK64))
    i = np.arange(x.size, dtype=np.uint64)
    k1 = _mix(np.uint64(key) + (np.uint64(2) * i + np.uint64(1)) * np.uint64(GOLDEN)) >> np.uint64(11)
    k2 = _mix(np.uint64(key) + (np.uint64(2) * i + np.uint64(2)) * np.uint64(GOLDEN)) >> np.uint64(11)
    u1 = (k1.astype(np.float64) + 1.0) / TWO_POW_53
    u2 = k2.astype(np.float64) / TWO_POW_53
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    return _into(out, x.astype(np.float64) + stddev * z.reshape(x.shape), x.dtype)


def normal_noise_step(x, stddev, stream, out=None):
    """One training call of a noise layer with generator state ``stream = [key, step]``:
    :func:`normal_noise` with ``seed=key, counter=step``, then ``step += 1``."""
    y = normal_noise(x, stddev, int(stream[0]), int(stream[1]), out=out)
    stream[1] += np.uint64(1)
    return y


def gaussian_dropout_step(x, stddev, stream, out=None, mask=None):
    """One training call of GaussianDropout (Srivastava et al. 2014, section 10) with generator
    state ``stream = [key, step]``: multiplicative noise ``mask = 1 + stddev * z`` (z as in
    :func:`normal_noise`, on an array of ones), ``y = x * mask``; then ``step += 1``. Keras's
    ``stddev = sqrt(rate / (1 - rate))``. Backward is :func:`dropout_backward` with this mask.
    Returns (y, mask)."""
    noise = normal_noise(np.ones(x.shape, x.dtype), stddev, int(stream[0]), int(stream[1]))
    stream[1] += np.uint64(1)
    mask = _into(mask, noise, x.dtype)
    return _into(out, x * mask, x.dtype), mask


def alpha_dropout_step(x, rate, stream, out=None, mask=None):
    """One training call of AlphaDropout (Klambauer et al. 2017, arXiv:1706.02515), Keras's form:
    values kept as :func:`dropout_keep` decides, dropped ones set to ``alpha' = -SELU_ALPHA *
    SELU_SCALE``, then ``a * v + b`` with ``a = ((1 - rate) (1 + rate alpha'^2))^-1/2`` and
    ``b = -a alpha' rate``, which keeps zero mean and unit variance. ``mask = a`` where kept, else
    0 (the derivative, for :func:`dropout_backward`); then ``step += 1``. Returns (y, mask)."""
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = 1.0 / math.sqrt((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p))
    b = -a * alpha_p * rate
    keep = dropout_keep(x.size, rate, int(stream[0]), int(stream[1])).reshape(x.shape)
    stream[1] += np.uint64(1)
    ta, tb = np.asarray(a, x.dtype), np.asarray(b, x.dtype)
    dropped = np.asarray(a * alpha_p + b, x.dtype)
    y = np.where(keep, ta * x + tb, dropped)
    mask = _into(mask, np.where(keep, ta, np.zeros((), x.dtype)), x.dtype)
    return _into(out, y, x.dtype), mask
