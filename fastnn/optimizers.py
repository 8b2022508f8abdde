"""Optimizers with Keras's names, defaults and update rules, in order of increasing complexity:
SGD (with momentum / Nesterov), Adagrad, RMSprop, Adam (with AMSGrad), AdamW.

Each update runs as one in-place kernel per weight array (``sgd_update``, ``adagrad_update``,
``rmsprop_update``, ``adam_update``) on the active backend; the formulas are in
``fastnn.reference.optim``. Per-weight state (velocity, moments) is created on the first update and
reused, so steady-state training allocates nothing here.

``learning_rate`` is a float or a schedule from ``fastnn.optimizers.schedules``, evaluated at
``iterations`` (the number of updates so far). ``weight_decay=wd`` (every optimizer, as in Keras 3)
shrinks each weight before the update, ``w -= w * wd * lr`` (decoupled weight decay; AdamW is Adam
with ``weight_decay=0.004``).

Gradient clipping takes Keras's arguments, at most one of them (as Keras 3 requires):

* ``clipnorm=c``: each gradient g is scaled by c / max(||g||, c), so no gradient is longer than c;
* ``global_clipnorm=c``: all gradients are scaled by c / max(sqrt(sum ||g||^2), c), together;
* ``clipvalue=v``: each gradient element is clipped to [-v, v].

Norms come from the ``sum_squares`` kernel (a fixed-order float64 sum) and the clipped gradients
from ``clip_gradient``, written to buffers the optimizer keeps: the caller's gradients are never
modified.
"""
import math
import numbers

import numpy as np

from . import backend
from . import schedules
from . import tracking
from .utils import check_fits_dtype


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _optional_positive(value, name):
    return None if value is None else _positive(value, name)


def _learning_rate(value):
    if isinstance(value, schedules.LearningRateSchedule):
        return value
    return _positive(value, "learning_rate")


def _weight_decay(value):
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ValueError(f"weight_decay must be None or a non-negative number, got {value!r}")
    return float(value)


class Optimizer(tracking.Tracked):
    """Base class: ``apply(params, grads)`` updates each array of ``params`` in place.

    ``learning_rate``: a positive float or a ``schedules.LearningRateSchedule``.
    ``weight_decay``: Keras 3's decoupled decay ``w -= w * weight_decay * lr`` before each update.
    ``clipnorm``, ``clipvalue``, ``global_clipnorm``: gradient clipping, Keras semantics (see the
    module docstring); at most one may be set.

    The update itself, :meth:`update`, is written once as kernel calls: it runs eagerly from
    ``apply`` and is recorded into the model's native step (``fastnn.program``), with the learning
    rate and the step number as inputs of each call. Those two (``iterations``, the learning rate
    or schedule) are run-time state; changing any other setting re-records the step.
    """
    _RUNTIME = frozenset({"iterations", "_learning_rate", "_slots_checked"})

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        self._learning_rate = _learning_rate(learning_rate)
        self.weight_decay = _weight_decay(weight_decay)
        self.clipnorm = _optional_positive(clipnorm, "clipnorm")
        self.clipvalue = _optional_positive(clipvalue, "clipvalue")
        self.global_clipnorm = _optional_positive(global_clipnorm, "global_clipnorm")
        given = [f"{n}={v!r}" for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                           ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set (as in "
                             f"Keras), got {', '.join(given)}")
        self.iterations = 0
        self._slots_checked = -1
        self._slots = None
        self._shapes = None
        self._clipped = None  # buffers for clipped gradients, one per weight, when clipping

    @property
    def learning_rate(self):
        """The learning rate of the next update (a schedule is evaluated at ``iterations``)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _learning_rate(value)

    @property
    def learning_rate_schedule(self):
        """The schedule given as ``learning_rate``, or None for a constant rate."""
        lr = self._learning_rate
        return lr if isinstance(lr, schedules.LearningRateSchedule) else None

    def _make_slots(self, param):
        """Per-weight state arrays (like ``param``; None for state not used), as a tuple."""
        return ()

    def build(self, params):
        """Create the per-weight state for ``params`` (done by the first ``apply``)."""
        shapes = [(p.shape, p.dtype) for p in params]
        if self._slots is None or shapes != self._shapes:
            if self._slots is not None:
                raise ValueError("this optimizer already holds state for weights of shapes "
                                 f"{[s for s, _ in self._shapes]}, got {[s for s, _ in shapes]}; "
                                 "use a new optimizer for a different model")
            self._slots = [self._make_slots(p) for p in params]
            self._shapes = shapes
        elif self._slots_checked != tracking.count():
            # A setting changed since the state was made (momentum turned on, say): the state
            # grows to fit, as in Keras; what exists is kept.
            grown = [tuple(old if old is not None or new is None else new
                           for old, new in zip(olds, self._make_slots(p)))
                     for olds, p in zip(self._slots, params)]
            if any(a is not b for olds, news in zip(self._slots, grown) for a, b in zip(olds, news)):
                self._slots = grown
        self._slots_checked = tracking.count()

    def apply(self, params, grads):
        """One update of every weight array in ``params`` by its gradient in ``grads``. Everything
        is checked before anything changes; gradients of another float dtype or memory layout are
        converted to their weight's (``grads`` themselves are never modified)."""
        lr = self.learning_rate  # checked before any state is created or changed
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"the learning-rate schedule gave {lr!r} at step {self.iterations}; "
                             "expected a finite non-negative number")
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"apply needs one gradient per weight array: got {len(grads)} gradients "
                             f"for {len(params)} weights")
        checked = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64) \
                    or not p.flags.c_contiguous or not p.flags.writeable:
                raise TypeError(f"weight {i} must be a writeable C-contiguous float32/float64 ndarray, "
                                f"got {type(p).__name__} {getattr(p, 'dtype', '')}")
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"gradient {i} must have the shape of its weight {p.shape}, got {g.shape}")
            if g.dtype.kind not in "fiu":
                raise TypeError(f"gradient {i} must be numeric, got dtype {g.dtype}")
            check_fits_dtype(g, f"gradient {i}", p.dtype, finite=False)
            checked.append(np.require(g, dtype=p.dtype, requirements=("C", "A")))
        for p in params[:1]:
            if lr > np.finfo(p.dtype).max:
                raise ValueError(f"learning_rate {lr!r} overflows {p.dtype.name} (max {np.finfo(p.dtype).max:.4g})")
        grads = checked
        self.build(params)
        step = self.iterations + 1
        self.update(params, grads, lr, step)
        self.iterations = step

    def update(self, params, grads, lr, step):
        """The update of ``params`` by ``grads`` at learning rate ``lr``, as the ``step``-th update
        (1 for the first): clipping, decoupled weight decay, then the rule of each optimizer. The
        state must exist (``build``); ``iterations`` is left to the caller."""
        kernels = backend.kernels()
        grads = self._clip(kernels, params, grads)
        if self.weight_decay is not None:
            for param in params:
                kernels.weight_decay_update(param, lr, self.weight_decay)
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(kernels, param, grad, slots, lr, step)

    def _clip(self, kernels, params, grads):
        """The gradients after Keras's clipping (the same arrays when no clipping is set)."""
        if self.clipnorm is None and self.clipvalue is None and self.global_clipnorm is None:
            return grads
        if self._clipped is None:
            self._clipped = [np.empty_like(p) for p in params]
        if self.clipvalue is not None:
            return [kernels.clip_gradient(g, 1.0, self.clipvalue, out=out)
                    for g, out in zip(grads, self._clipped)]
        if self.clipnorm is not None:
            scales = [kernels.norm_scale(kernels.scalar_sqrt(kernels.sum_squares(g)), self.clipnorm)
                      for g in grads]
        else:
            total = 0.0
            for g in grads:  # a fixed order: the weights'
                total = total + kernels.sum_squares(g)
            scale = kernels.global_norm_scale(kernels.scalar_sqrt(total), self.global_clipnorm)
            scales = [scale] * len(grads)
        return [kernels.clip_gradient(g, scale, math.inf, out=out)
                for g, scale, out in zip(grads, scales, self._clipped)]

    def apply_gradients(self, grads_and_vars):
        """Keras spelling: ``apply_gradients(zip(grads, weights))``."""
        pairs = list(grads_and_vars)
        self.apply([v for _, v in pairs], [g for g, _ in pairs])

    @property
    def has_state(self):
        """Whether the optimizer holds state (made by its first update or by ``set_state``)."""
        return self._slots is not None

    def slots_for(self, params):
        """The state per weight (a list of arrays, ``None`` where unused) for weights ``params``:
        the live arrays when the optimizer holds state, else what its first update would make.
        Read-only: for files that store the state in their own layout (``fastnn.keras_format``)."""
        return self._slots if self._slots is not None else self.fresh_slots(params)

    def fresh_slots(self, params):
        """New state per weight for weights ``params``, as the first update makes it."""
        return [self._make_slots(p) for p in params]

    def variables(self):
        """The state arrays, flattened in weight order (empty before the first update)."""
        return [s for slots in (self._slots or []) for s in slots if s is not None]

    def get_state(self):
        """``(iterations, copies of variables())``: everything an identical resumed run needs."""
        return self.iterations, [v.copy() for v in self.variables()]

    def set_state(self, params, iterations, variables):
        """Restore a ``get_state()`` for weights ``params``; checks everything before changing anything."""
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        shapes = [(p.shape, p.dtype) for p in params]
        if self._slots is not None and shapes != self._shapes:
            raise ValueError("this optimizer already holds state for weights of shapes "
                             f"{[s for s, _ in self._shapes]}, got {[s for s, _ in shapes]}; "
                             "use a new optimizer for a different model")
        fresh = [self._make_slots(p) for p in params]
        slots = [s for per_weight in fresh for s in per_weight if s is not None]
        variables = list(variables)
        if len(variables) != len(slots):
            raise ValueError(f"{type(self).__name__} state for these weights has {len(slots)} arrays, "
                             f"got {len(variables)}")
        for i, (cur, new) in enumerate(zip(slots, variables)):
            new = np.asarray(new)
            if new.shape != cur.shape or new.dtype != cur.dtype:
                raise ValueError(f"optimizer state array {i} must have shape {cur.shape} and dtype "
                                 f"{cur.dtype}, got shape {new.shape} and dtype {new.dtype}")
        for cur, new in zip(slots, variables):
            cur[...] = new
        self._slots, self._shapes = fresh, shapes
        self.iterations = int(iterations)

    def get_config(self):
        lr = self._learning_rate
        config = {"name": type(self).__name__,
                  "learning_rate": schedules.serialize(lr) if isinstance(lr, schedules.LearningRateSchedule)
                  else lr}
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("name", None)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum; Keras defaults lr=0.01, momentum=0.

    v = momentum * v - lr * g;  w += v   (Nesterov: w += momentum * v - lr * g)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.momentum = _fraction(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def _make_slots(self, param):
        return (np.zeros_like(param),) if self.momentum else (None,)

    def _update(self, kernels, param, grad, slots, lr, step):
        kernels.sgd_update(param, grad, slots[0], lr, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """AdaGrad (Duchi et al. 2011): per-weight steps shrinking with the sum of squared gradients.
    Keras defaults lr=1e-3, initial_accumulator_value=0.1, epsilon=1e-7.

    acc += g^2;  w -= lr * g / sqrt(acc + eps)
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        if (isinstance(initial_accumulator_value, bool) or not isinstance(initial_accumulator_value, numbers.Real)
                or not 0 <= initial_accumulator_value < math.inf):
            raise ValueError("initial_accumulator_value must be a non-negative number, got "
                             f"{initial_accumulator_value!r}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = _positive(epsilon, "epsilon")

    def _make_slots(self, param):
        return (np.full_like(param, self.initial_accumulator_value),)

    def _update(self, kernels, param, grad, slots, lr, step):
        kernels.adagrad_update(param, grad, slots[0], lr, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop (Hinton, lecture 6e): divide by a running root mean square of the gradients.
    Keras defaults lr=1e-3, rho=0.9, momentum=0, epsilon=1e-7, centered=False.

    v = rho * v + (1 - rho) * g^2;  w -= lr * g / sqrt(v + eps)   (see reference.rmsprop_update
    for the centered and momentum variants)
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.rho = _fraction(rho, "rho")
        self.momentum = _fraction(momentum, "momentum")
        self.epsilon = _positive(epsilon, "epsilon")
        self.centered = bool(centered)

    def _make_slots(self, param):
        return (np.zeros_like(param), np.zeros_like(param) if self.centered else None,
                np.zeros_like(param) if self.momentum else None)

    def _update(self, kernels, param, grad, slots, lr, step):
        velocity, average_grad, momentum_velocity = slots
        kernels.rmsprop_update(param, grad, velocity, average_grad, momentum_velocity, lr, self.rho,
                               self.momentum, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2014, arXiv:1412.6980); Keras defaults lr=1e-3, beta_1=0.9,
    beta_2=0.999, epsilon=1e-7, amsgrad=False (AMSGrad: Reddi et al. 2018)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def _make_slots(self, param):
        return (np.zeros_like(param), np.zeros_like(param),
                np.zeros_like(param) if self.amsgrad else None)

    def _update(self, kernels, param, grad, slots, lr, step):
        m, v, v_hat = slots
        kernels.adam_update(param, grad, m, v, lr, self.beta_1, self.beta_2, self.epsilon, step, v_hat)

    def get_config(self):
        config = {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                  "epsilon": self.epsilon}
        if self.amsgrad:  # listed only when set, like the other options off by default
            config["amsgrad"] = True
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2017, arXiv:1711.05101):
    ``w -= w * weight_decay * lr`` before each Adam step. Keras defaults as Adam, weight_decay=0.004."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None):
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay (Keras default 0.004), got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm,
                         clipvalue, global_clipnorm)

    def get_config(self):
        # weight_decay=0 is stored too: left out, it would come back as the default 0.004
        return {**super().get_config(), "weight_decay": self.weight_decay or 0.0}


_BY_NAME = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` (JSON-ready) for an optimizer."""
    config = optimizer.get_config()
    config.pop("name", None)
    return {"class_name": type(optimizer).__name__, "config": config}


def deserialize(config):
    """The optimizer described by ``serialize``'s output (fresh state); ValueError when unknown."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if not isinstance(name, str) or name.lower() not in _BY_NAME:
        raise ValueError(f"unknown optimizer {config!r}; expected one of {', '.join(_BY_NAME)}")
    return _BY_NAME[name.lower()].from_config(config.get("config", {}))


def get(identifier):
    """An optimizer from a Keras name (``"sgd"``, ``"rmsprop"``, ``"adam"``, ... with defaults),
    a ``serialize`` dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; expected an Optimizer instance or one of "
                     f"{', '.join(_BY_NAME)}")


class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum (Dozat 2016), Keras 3's form
    (``fastnn.reference.nadam_update``); Keras defaults lr=1e-3, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7. State per weight: m, v and the running product of the momentum schedule."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param), np.ones(1, param.dtype)

    def _update(self, kernels, param, grad, slots, lr, step):
        m, v, u_product = slots
        kernels.nadam_update(param, grad, m, v, u_product, lr, self.beta_1, self.beta_2, self.epsilon, step)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (Kingma & Ba 2014, section 7.1), Keras 3's form
    (``fastnn.reference.adamax_update``); Keras defaults lr=1e-3, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _update(self, kernels, param, grad, slots, lr, step):
        m, u = slots
        kernels.adamax_update(param, grad, m, u, lr, self.beta_1, self.beta_2, self.epsilon, step)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012, arXiv:1212.5701), Keras 3's form with a learning rate
    (``fastnn.reference.adadelta_update``); Keras defaults lr=1e-3, rho=0.95, epsilon=1e-7."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.rho = _fraction(rho, "rho")
        self.epsilon = _positive(epsilon, "epsilon")

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _update(self, kernels, param, grad, slots, lr, step):
        accumulated_grad, accumulated_delta = slots
        kernels.adadelta_update(param, grad, accumulated_grad, accumulated_delta, lr, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al. 2023, arXiv:2302.06675): every weight moves by the learning rate times
    the sign of an interpolated momentum (``fastnn.reference.lion_update``); Keras defaults
    lr=1e-3, beta_1=0.9, beta_2=0.99 (use a smaller learning rate than Adam's)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")

    def _make_slots(self, param):
        return (np.zeros_like(param),)

    def _update(self, kernels, param, grad, slots, lr, step):
        kernels.lion_update(param, grad, slots[0], lr, self.beta_1, self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


_BY_NAME.update(nadam=Nadam, adamax=Adamax, adadelta=Adadelta, lion=Lion)
