"""Weight initializers with Keras's names and definitions.

For a kernel of shape (fan_in, fan_out) (a bias: fan_in = fan_out = its length):

==================  ==========================================  ============================
name                distribution                                 scale
==================  ==========================================  ============================
glorot_uniform      U(-limit, limit), limit = sqrt(6/(fan_in+fan_out))   Glorot & Bengio 2010
glorot_normal       truncated N(0, 2/(fan_in+fan_out))                   Glorot & Bengio 2010
he_uniform          U(-limit, limit), limit = sqrt(6/fan_in)             He et al. 2015
he_normal           truncated N(0, 2/fan_in)                             He et al. 2015
lecun_uniform       U(-limit, limit), limit = sqrt(3/fan_in)             LeCun et al. 1998
lecun_normal        truncated N(0, 1/fan_in)                             LeCun et al. 1998
==================  ==========================================  ============================

"Truncated N(0, var)" follows Keras's VarianceScaling: a normal cut at two standard deviations
(values beyond are redrawn), with the standard deviation divided by 0.87962566103423978 (the std of
a unit normal truncated to [-2, 2]) so that the samples keep the stated variance.

The others: ``zeros``, ``ones``, ``constant(value=0)``; ``random_normal`` N(mean=0, stddev=0.05);
``random_uniform`` U(-0.05, 0.05); ``truncated_normal`` N(0, 0.05^2) cut at two standard deviations,
*without* the variance correction (Keras defaults throughout).
``zeros`` is kept on purpose: it lets a learner watch the symmetry problem (all units stay equal).

Every initializer is available by Keras name (``"he_normal"``), as a class (``HeNormal(seed=1)``;
a seed makes its draws repeatable) and by Keras's lowercase alias (``initializers.he_normal``).
"""
import math

import numpy as np

from . import backend, utils

TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]; Keras VarianceScaling


def _fans(shape):
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise ValueError(f"initializers expect a 1-D or 2-D weight shape, got {tuple(shape)}")


class Initializer:
    """Base class: ``init(shape, dtype=None)`` returns a new array. ``seed`` makes it repeatable."""

    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(self.seed) if self.seed is not None else utils.rng()

    def __call__(self, shape, dtype=None):
        dtype = np.dtype(dtype or backend.floatx())
        return np.ascontiguousarray(self.sample(tuple(int(s) for s in shape)), dtype=dtype)

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    """N(mean, stddev^2) with draws beyond two standard deviations redrawn."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return mean + stddev * z


class Zeros(Initializer):
    """All zeros. Every unit of a zero-initialised layer computes the same thing and receives the
    same gradient, so the units never become different (the symmetry problem)."""

    def sample(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones (BatchNormalization's gamma and moving variance start here)."""

    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    """Every value equal to ``value``; Keras default 0."""

    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """N(mean, stddev^2); Keras defaults mean=0, stddev=0.05."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """U(minval, maxval); Keras defaults -0.05, 0.05."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(Initializer):
    """N(mean, stddev^2) cut at two standard deviations; Keras defaults mean=0, stddev=0.05."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape):
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n``, n = fan_in, fan_out or their mean (``mode``)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "uniform"):
            raise ValueError(f"distribution must be 'truncated_normal' or 'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)  # U(-a, a) has variance a^2 / 3
            return self._rng().uniform(-limit, limit, shape)
        return _truncated_normal(self._rng(), shape, 0.0, math.sqrt(variance) / TRUNCATED_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _variance_scaling(scale, mode, distribution, doc):
    class Named(VarianceScaling):
        __doc__ = doc

        def __init__(self, seed=None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed}
    return Named


_TRUNC = " (std before the cut: sqrt(variance) / 0.8796, cut at 2 of those std)"
GlorotUniform = _variance_scaling(
    1.0, "fan_avg", "uniform", "Glorot/Xavier uniform (Glorot & Bengio 2010): U(-l, l), "
    "l = sqrt(6 / (fan_in + fan_out)), i.e. variance 2 / (fan_in + fan_out). Keras's Dense default.")
GlorotNormal = _variance_scaling(
    1.0, "fan_avg", "truncated_normal", "Glorot/Xavier normal (Glorot & Bengio 2010): truncated "
    "normal with variance 2 / (fan_in + fan_out)" + _TRUNC + ".")
HeUniform = _variance_scaling(
    2.0, "fan_in", "uniform", "He uniform (He et al. 2015, for ReLU): U(-l, l), l = sqrt(6 / fan_in), "
    "i.e. variance 2 / fan_in.")
HeNormal = _variance_scaling(
    2.0, "fan_in", "truncated_normal", "He normal (He et al. 2015, for ReLU): truncated normal with "
    "variance 2 / fan_in" + _TRUNC + ".")
LecunUniform = _variance_scaling(
    1.0, "fan_in", "uniform", "LeCun uniform (LeCun et al. 1998, for SELU): U(-l, l), "
    "l = sqrt(3 / fan_in), i.e. variance 1 / fan_in.")
LecunNormal = _variance_scaling(
    1.0, "fan_in", "truncated_normal", "LeCun normal (LeCun et al. 1998, for SELU): truncated normal "
    "with variance 1 / fan_in" + _TRUNC + ".")
for _cls, _name in [(GlorotUniform, "GlorotUniform"), (GlorotNormal, "GlorotNormal"),
                    (HeUniform, "HeUniform"), (HeNormal, "HeNormal"),
                    (LecunUniform, "LecunUniform"), (LecunNormal, "LecunNormal")]:
    _cls.__name__ = _cls.__qualname__ = _name

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}

class Orthogonal(Initializer):
    """A random orthogonal matrix times ``gain`` (Saxe et al. 2014; Keras's ``Orthogonal``, the
    default recurrent kernel of SimpleRNN/LSTM/GRU). For a (rows, cols) weight: the Q of the QR
    decomposition of a (max, min) standard normal matrix, its columns' signs fixed by R's diagonal,
    transposed when rows < cols, so the rows (or columns) are orthonormal. Multiplying a state by
    it keeps its length: repeated over time steps, it neither shrinks nor blows up the signal."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)
        if not math.isfinite(self.gain):
            raise ValueError(f"Orthogonal gain must be a finite number, got {gain!r}")

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a weight of at least 2 dimensions, got shape {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """The identity matrix times ``gain`` (Keras's ``Identity``; 2-D weights only; a non-square
    shape gets ones on its main diagonal). An identity recurrent kernel with ReLU is Le et al.'s
    (2015) IRNN."""

    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = float(gain)
        if not math.isfinite(self.gain):
            raise ValueError(f"Identity gain must be a finite number, got {gain!r}")

    def sample(self, shape):
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D weight, got shape {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


_BY_NAME.update(orthogonal=Orthogonal, identity=Identity)
orthogonal, identity = Orthogonal, Identity

# Keras's lowercase aliases
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal


def get(identifier):
    """An initializer from a Keras name (``"he_normal"`` or ``"HeNormal"``), a class, or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    by_class = {cls.__name__: cls for cls in _BY_NAME.values()}
    if isinstance(identifier, str) and identifier in by_class:
        return by_class[identifier]()
    raise ValueError(f"unknown initializer {identifier!r}; expected one of {', '.join(_BY_NAME)}")


def name_of(init):
    """The Keras name of an initializer instance (for configs and summaries)."""
    for name, cls in _BY_NAME.items():
        if type(init) is cls:
            return name
    return type(init).__name__
