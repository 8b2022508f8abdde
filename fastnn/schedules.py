"""Learning-rate schedules (``fastnn.optimizers.schedules``), with Keras's names, arguments and formulas.

A schedule maps the optimizer's step count (``optimizer.iterations`` before the update: 0 on the
first) to a learning rate; pass one as ``learning_rate=`` to any optimizer::

    lr = fastnn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=lr), loss="mse")
"""
import math
import numbers


def _number(value, name, positive=False, nonnegative=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _steps(value, name, positive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if positive else 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} integer, "
                         f"got {value!r}")
    return int(value)


class LearningRateSchedule:
    """Base class: ``schedule(step)`` returns the learning rate (a float) for step ``step``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase=True`` the
    exponent is ``floor(step / decay_steps)`` (the rate drops in steps). Keras ``ExponentialDecay``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", positive=True)
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.decay_rate = _number(decay_rate, "decay_rate", positive=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.
    Keras ``PiecewiseConstantDecay``; ``len(values) == len(boundaries) + 1``."""

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError("values must have one more entry than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = [_steps(b, "each boundary", positive=False) for b in boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase strictly, got {self.boundaries}")
        self.values = [_number(v, "each value", positive=True) for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov & Hutter 2017, SGDR, arXiv:1608.03983), Keras ``CosineDecay``.

    Without warm-up: ``lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))
    + alpha)``, from ``initial_learning_rate`` down to ``alpha * initial_learning_rate``.
    With ``warmup_target`` and ``warmup_steps``: a linear rise from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps`` steps, then the cosine decay from ``warmup_target``
    over the next ``decay_steps``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", nonnegative=True)
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.alpha = _number(alpha, "alpha", nonnegative=True)
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "warmup_target",
                                                                        positive=True)
        self.warmup_steps = _steps(warmup_steps, "warmup_steps", positive=False)

    def __call__(self, step):
        if self.warmup_target is not None and step < self.warmup_steps:
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * (
                step / self.warmup_steps)
        start = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        done = min(max(step - self.warmup_steps, 0), self.decay_steps) / self.decay_steps
        return start * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * done)) + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase=True``
    ``step / decay_steps`` is floored. Keras ``InverseTimeDecay``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", positive=True)
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.decay_rate = _number(decay_rate, "decay_rate", nonnegative=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


_BY_NAME = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay)}


def serialize(schedule):
    """``{"class_name": ..., "config": ...}`` for a schedule (JSON-ready)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """The schedule described by ``serialize``'s output; ValueError for an unknown class."""
    if not isinstance(config, dict) or config.get("class_name") not in _BY_NAME:
        raise ValueError(f"unknown learning-rate schedule {config!r}; expected one of {', '.join(_BY_NAME)}")
    return _BY_NAME[config["class_name"]].from_config(dict(config.get("config", {})))


class PolynomialDecay(LearningRateSchedule):
    """Keras ``PolynomialDecay``: ``(initial - end) * (1 - p)**power + end`` with
    ``p = min(step, decay_steps) / decay_steps``; with ``cycle=True`` the decay restarts, over
    ``decay_steps * ceil(step / decay_steps)`` steps (1 at step 0)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", nonnegative=True)
        self.decay_steps = _steps(decay_steps, "decay_steps")
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate", nonnegative=True)
        self.power = _number(power, "power", nonnegative=True)
        self.cycle = bool(cycle)

    def __call__(self, step):
        steps = self.decay_steps
        if self.cycle:
            steps = steps * (1.0 if step == 0 else math.ceil(step / steps))
        else:
            step = min(step, steps)
        p = step / steps
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (Loshchilov & Hutter 2017, SGDR), Keras
    ``CosineDecayRestarts``: the i-th period lasts ``first_decay_steps * t_mul**i`` steps and starts
    at ``m_mul**i`` times the initial rate; within a period
    ``lr = initial * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi * fraction)) + alpha)``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", nonnegative=True)
        self.first_decay_steps = _steps(first_decay_steps, "first_decay_steps")
        self.t_mul = _number(t_mul, "t_mul", positive=True)
        self.m_mul = _number(m_mul, "m_mul", nonnegative=True)
        self.alpha = _number(alpha, "alpha", nonnegative=True)

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul != 1.0:
            i = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** i) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** i
        else:
            i = math.floor(fraction)
            fraction -= i
        cosine = 0.5 * self.m_mul ** i * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha}


_BY_NAME.update(PolynomialDecay=PolynomialDecay, CosineDecayRestarts=CosineDecayRestarts)
