"""Input adaptation and sample weights: what the public methods of a model do to the user's
arrays before any state changes (``fastnn.models.Model`` calls these).

* ``prepare_x`` / ``prepare_xy`` -- inputs converted to the model's float dtype (after checking
  that wider floats fit), checked against the input shape; targets checked and converted by the
  loss (``Loss.prepare_targets``), per step for sequence outputs.
* ``sample_weights`` -- ``sample_weight`` or ``class_weight`` per row (the loss weights its rows
  by them: ``Loss.weighted_value``).
* ``step_rows`` / ``StepMetric`` -- sequence outputs ``(N, T, C)`` as ``N * T`` rows.
"""
import math
import numbers

import numpy as np

from . import backend
from . import utils


class Batch:
    """Several arrays of one length: the inputs (or targets) of a model with several, in the
    model's order. Indexing takes the same rows of each."""
    __slots__ = ("arrays",)

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return Batch([a[index] for a in self.arrays])

    @property
    def shape(self):
        return self.arrays[0].shape

    @property
    def dtype(self):
        return self.arrays[0].dtype


def as_list(v):
    """The arrays of ``v``: a Batch's, or ``[v]``."""
    return list(v.arrays) if isinstance(v, Batch) else [v]


def like(model, arrays):
    """``arrays`` shaped as ``model`` (a Batch or one array) is."""
    return Batch(arrays) if isinstance(model, Batch) else arrays[0]


def shape_str(shape):
    """``(None, d1, ...)``: a shape with its batch axis, as messages and summaries print it."""
    return "(None, " + ", ".join(map(str, shape)) + ")"


def prepare_x(model, x, expected=None):
    """``x`` as a float array of the model's dtype, checked against the model's input shape
    (or ``expected`` when the model is not built yet)."""
    if (type(x) is np.ndarray and x.dtype == model._dtype and x.shape[1:] == model._input_shape
            and x.ndim >= 2 and getattr(model, "_shapes", None) is not None and model._layers):
        flags = x.flags  # the common case, decided first: a built model given its own kind of
        if flags.c_contiguous and flags.aligned:  # array (every check below would pass)
            check = getattr(model._layers[0], "check_inputs", None)
            if check is not None:
                check(x)
            return x
    dtype = model._dtype or np.dtype(backend.floatx())
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize:
        utils.check_fits_dtype(x, "x", dtype, finite=False)
    x = utils.as_float_array(x, "x", dtype)
    expected = model._input_shape or expected
    if x.ndim >= 2 and 0 in x.shape[1:]:
        raise ValueError(f"x must have at least one feature, got array of shape {x.shape}")
    if x.ndim < 2:
        want = "(N, ...)" if expected is None else "(N, " + ", ".join(map(str, expected)) + ")"
        raise ValueError(f"{model.name} expects a batch of inputs of shape {want}, got array of shape "
                         f"{x.shape}; add a batch axis to a single sample with x[None]")
    if expected is not None and x.shape[1:] != expected:
        first = model._layers[0].name if model._layers else model.name
        if len(expected) == 1 and x.ndim == 2:
            raise ValueError(f"{first} expects inputs with {expected[0]} features, got array of "
                             f"shape {x.shape}")
        raise ValueError(f"{first} expects inputs of shape {shape_str(expected)}, got array of "
                         f"shape {x.shape}")
    if not model._layers:
        raise ValueError(f"{model.name} has no layers; add some before using it")
    model._output_shapes(x.shape[1:])
    check = getattr(model._layers[0], "check_inputs", None)  # Embedding: token ids in range
    if check is not None:
        check(x)
    return x


def prepare_xy(model, x, y, what="x", expected=None):
    if model.loss is None:
        raise RuntimeError("the model must be compiled before training or evaluation: call "
                           "model.compile(optimizer=..., loss=...)")
    x = prepare_x(model, x, expected)
    if len(x) == 0:
        raise ValueError(f"{what} is empty (shape {x.shape}); at least one sample is needed")
    utils.check_finite(x, what)
    out_shape = model._output_shapes(x.shape[1:])[-1]
    return x, prepare_targets(model.loss, y, len(x), out_shape, x.dtype, x.shape[1:])


def prepare_targets(loss, y, n, out_shape, dtype, x_shape=None):
    """Targets ``y`` for ``n`` outputs of shape ``out_shape``, checked and converted by the loss."""
    if len(out_shape) > 1:  # sequence outputs: targets per step, checked as N*T rows
        y = numeric_targets(y)
        lead = tuple(out_shape[:-1])
        if y.shape[:1 + len(lead)] != (n,) + lead:
            raise ValueError(
                (f"for inputs {shape_str(x_shape)} " if x_shape is not None else "") +
                "the model gives outputs "
                f"{shape_str(out_shape)}, one per step of the second axis, so targets must start "
                f"with shape ({n}, {', '.join(map(str, lead))}); got array of shape {y.shape}. "
                "If each sample is one input (an image, say) rather than a sequence, add a "
                "Flatten layer first: Dense expects (batch, features)")
        rows = n * int(np.prod(lead))
        flat = loss.prepare_targets(y.reshape((rows,) + y.shape[1 + len(lead):]), rows,
                                         tuple(out_shape[-1:]), dtype)
        return flat.reshape((n,) + lead + flat.shape[1:])
    return loss.prepare_targets(y, n, out_shape, dtype)


def check_input(x, name, expected, dtype, model_name):
    """One input array of a model with named inputs, as ``prepare_x`` checks a Sequential's."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize:
        utils.check_fits_dtype(x, name, dtype, finite=False)
    x = utils.as_float_array(x, name, dtype)
    if x.ndim < 2 or x.shape[1:] != tuple(expected):
        raise ValueError(f"{model_name}: input {name!r} expects arrays of shape {shape_str(expected)}, "
                         f"got array of shape {x.shape}")
    return x


def sample_weights(y, n, sample_weight, class_weight, dtype):
    """Per-sample loss weights[n] from ``sample_weight`` times ``class_weight[class of y]``, or None."""
    if sample_weight is None and class_weight is None:
        return None
    if sample_weight is not None and class_weight is not None:  # Keras refuses the pair too
        raise ValueError("class_weight and sample_weight cannot be given together (as in Keras): "
                         "multiply the class weights into sample_weight instead")
    if isinstance(y, Batch):  # a functional model's targets
        if class_weight is not None and len(y.arrays) > 1:
            raise ValueError("class_weight needs a model with one output; this one has "
                             f"{len(y.arrays)}: pass sample_weight instead")
        y = y.arrays[0]
    weights = np.ones(n, dtype=np.float64)
    if sample_weight is not None:
        sw = utils.as_float_array(sample_weight, "sample_weight", np.float64)
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), one weight per sample, got "
                             f"array of shape {sw.shape}")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        weights *= sw
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
        classes = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else \
            np.rint(np.asarray(y, np.float64).reshape(n)).astype(np.int64)
        table = {}
        for key, value in class_weight.items():
            if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                    or value < 0):
                raise ValueError(f"class_weight[{key!r}] must be a non-negative number, got {value!r}")
            if isinstance(key, bool) or not isinstance(key, numbers.Integral):
                raise ValueError(f"class_weight keys must be integer class indices, got {key!r}")
            table[int(key)] = float(value)
        missing = sorted(set(np.unique(classes).tolist()) - set(table))
        if missing:
            raise ValueError(f"class_weight has no weight for class(es) {missing} present in y; "
                             f"got keys {sorted(table)}")
        weights *= np.array([table[c] for c in classes.tolist()], dtype=np.float64)
    limit = float(np.finfo(dtype).max)
    if not (np.abs(weights) <= limit).all():
        raise ValueError(f"sample_weight times class_weight has values that overflow {np.dtype(dtype).name} "
                         f"(max {limit:.4g}), got up to {float(np.abs(weights).max()):.4g}")
    return weights.astype(dtype)


def numeric_targets(y):
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y must be a numeric array, got dtype {y.dtype}")
    return y


def step_rows(h, y):
    """Outputs per step as rows: (N, T, C) outputs and their targets become N*T rows, so a loss
    is the mean over every sample and step of the per-step loss (Keras's reduction for sequence
    outputs). 2-D outputs pass unchanged."""
    if h.ndim <= 2:
        return h, y
    lead = h.ndim - 1
    return h.reshape(-1, h.shape[-1]), y.reshape((-1,) + tuple(y.shape[lead:]))


class StepMetric:
    """A metric over sequence outputs: each (sample, step) counts as one row."""

    def __init__(self, metric):
        self._metric = metric

    def update_state(self, y, outputs, *args, **kwargs):
        outputs, y = step_rows(np.asarray(outputs), np.asarray(y))
        return self._metric.update_state(y, outputs, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._metric, name)
