"""Random numbers as Keras's ``keras.random`` and TensorFlow's ``tf.random`` give them, as NumPy
arrays: ``normal``, ``uniform``, ``truncated_normal``, ``randint``, ``shuffle``, and ``set_seed``.

Without ``seed`` the numbers come from fastnn's global generator (``fastnn.utils.rng``, reseeded by
``set_seed`` / ``keras.utils.set_random_seed``), so a seeded program draws the same numbers on
every run; with an integer ``seed`` a call draws the same numbers every time it is made.
"""
import numpy as np

from . import backend, utils


def set_seed(seed):
    """TensorFlow's ``tf.random.set_seed``: the same as ``fastnn.utils.set_random_seed``."""
    utils.set_random_seed(seed)


class SeedGenerator:
    """Keras's ``keras.random.SeedGenerator(seed)``: a stream of numbers that a ``seed=``
    argument can take; each call using it draws new numbers, the same ones on every run."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"SeedGenerator seed must be None or a non-negative integer, got {seed!r}")
        self._rng = np.random.default_rng(None if seed is None else int(seed))


def _generator(seed):
    if seed is None:
        return utils.rng()
    if isinstance(seed, SeedGenerator):
        return seed._rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None, a non-negative integer or a SeedGenerator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a tuple of non-negative integers, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    return shape


def _float_dtype(dtype):
    dt = np.dtype(backend.floatx() if dtype is None else dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a float dtype, got {dtype!r}")
    return dt


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of N(mean, stddev^2) in an array of ``shape`` (float32 unless ``dtype``)."""
    return _generator(seed).normal(mean, stddev, _shape(shape)).astype(_float_dtype(dtype))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of U[minval, maxval) in an array of ``shape``."""
    if not maxval > minval:
        raise ValueError(f"uniform needs minval < maxval, got minval={minval!r}, maxval={maxval!r}")
    return _generator(seed).uniform(minval, maxval, _shape(shape)).astype(_float_dtype(dtype))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of N(mean, stddev^2) redrawn until within two standard deviations of the mean."""
    gen, shape = _generator(seed), _shape(shape)
    z = gen.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return (mean + stddev * z).astype(_float_dtype(dtype))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers in [minval, maxval)."""
    return _generator(seed).integers(minval, maxval, _shape(shape)).astype(dtype)


def shuffle(x, axis=0, seed=None):
    """A copy of ``x`` with its entries along ``axis`` in random order."""
    return _generator(seed).permutation(np.asarray(x), axis=axis)
