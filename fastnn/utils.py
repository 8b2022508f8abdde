"""Seeding, progress display and small helpers shared by the Python layer."""
import random
import sys
import time

import numpy as np

from . import backend

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Make runs repeatable: seeds fastnn's generator (weights, shuffling), NumPy's global one and
    Python's ``random``, as Keras's ``set_random_seed`` does."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _rng = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def rng():
    """fastnn's global random generator (reseeded by :func:`set_random_seed`)."""
    return _rng


def format_number(x):
    """Four significant digits, as a progress bar shows metrics; a metric with several values
    (Precision with a list of thresholds) shows each, in brackets."""
    if np.ndim(x) > 0:
        return "[" + " ".join(format_number(v) for v in np.ravel(x)) + "]"
    x = float(x)
    return f"{x:.4f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.4e}"


def format_duration(seconds):
    """A duration with three significant digits in the largest unit that keeps it at 1 or more:
    ``"2.41s"``, ``"38.2ms"``, ``"412us"``, ``"1.05us"``, ``"850ns"``. Never rounds a short time to 0."""
    if not seconds > 0:
        return "0us"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            break
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    text = f"{value:.{digits}f}"
    if float(text) >= 1000 and unit != "s":  # 999.7ms rounds to 1000ms: say 1.00s instead
        return format_duration(round(value) * scale)
    return text + unit


def _in_notebook(stream):
    """Whether ``stream`` is the standard output of a Jupyter/IPython kernel (which draws a
    carriage return as a redraw of the line, though its stream is no terminal)."""
    if "ipykernel" not in sys.modules:
        return False
    return stream is sys.stdout or stream is sys.stderr or \
        type(stream).__module__.startswith("ipykernel")


class Progbar:
    """A Keras-style progress bar: ``12/250 [=>....] - ETA: 3s - loss: 0.4213``.

    On a terminal and in a Jupyter notebook it redraws one line in place (a carriage return, then
    the line padded over the previous one); when output goes elsewhere (a log file, CI) it prints
    only the final line, so logs stay readable. The final line gives the total time and the time
    per step in s, ms or us with three significant digits.
    """

    def __init__(self, target, width=30, stream=None, interactive=None, show_bar=True):
        self.target = target
        self.show_bar = show_bar
        self.width = width
        self.stream = stream or sys.stdout
        notebook = _in_notebook(self.stream)
        if interactive is None:
            interactive = (hasattr(self.stream, "isatty") and self.stream.isatty()) or notebook
        self.interactive = interactive
        # A notebook sends each redraw to the browser as a message: redraw less often there.
        self._interval = 0.1 if notebook else 0.05
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_width = 0

    def update(self, current, values=(), finalize=False):
        now = time.perf_counter()
        if not finalize and (not self.interactive or now - self._last_draw < self._interval):
            return
        self._last_draw = now
        done = min(current, self.target)
        filled = int(self.width * done / self.target) if self.target else self.width
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") if filled else ""
        elapsed = now - self.start
        if finalize:
            per_step = elapsed / max(current, 1)
            timing = f"{format_duration(elapsed)} {format_duration(per_step)}/step"
        else:
            eta = elapsed / max(current, 1) * (self.target - current)
            timing = f"ETA: {eta:.0f}s"
        metrics = "".join(f" - {k}: {format_number(v)}" for k, v in values)
        counter = f"{current:>{len(str(self.target))}}/{self.target}"
        line = f"{counter} [{bar:<{self.width}}] - {timing}{metrics}" if self.show_bar else \
            f"{counter} - {timing}{metrics}"
        if self.interactive:
            padded = line + " " * max(self._last_width - len(line), 0)
            self._last_width = len(line)
            self.stream.write("\r" + padded + ("\n" if finalize else ""))
        elif finalize:
            self.stream.write(line + "\n")
        self.stream.flush()


NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # what the kernels take


def as_float_array(x, name, dtype=None):
    """``x`` as a C-contiguous, aligned float array (no copy when it already is one of ``dtype``).

    Integers and booleans are converted to ``dtype`` (default: float64/float32 inputs keep their
    dtype, others get ``floatx``); complex, object and string arrays raise TypeError.
    """
    if type(x) is np.ndarray and x.dtype in NATIVE_FLOATS and (dtype is None or x.dtype == dtype):
        flags = x.flags
        if flags.c_contiguous and flags.aligned:
            return x  # already what the kernels take (the common case: no conversion to decide)
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; fastnn does not apply masks: pass "
                        f"{name}.filled(value) or {name}.compressed() explicitly")
    try:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers, got {type(x).__name__}: {exc}") from None
    if arr.dtype == object and _numeric_pandas(x):
        # pandas' nullable columns (Float64, Int64, boolean) come out of np.asarray as objects;
        # a missing value becomes NaN, which the finiteness checks then refuse by name
        arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array (float, int or bool), got dtype {arr.dtype}")
    if dtype is None:
        dtype = native_float_dtype(arr) or np.dtype(backend.floatx())
    # C-contiguous and aligned (the kernels load whole floats); a 0-d array stays 0-d.
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def _numeric_pandas(x):
    """True for a pandas Series or DataFrame whose every column has a numeric dtype."""
    if not hasattr(x, "to_numpy"):
        return False
    dtypes = x.dtypes if hasattr(x, "columns") else [getattr(x, "dtype", None)]
    return len(dtypes) > 0 and all(getattr(d, "kind", "O") in "fiub" for d in dtypes)


def native_float_dtype(arr):
    """float32/float64 in native byte order for a float32/float64 array of any byte order, else None."""
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8):
        return np.dtype(f"f{arr.dtype.itemsize}")
    return None


FINITE_CHECK_BLOCK = 1 << 16  # values checked at once: the temporary mask stays small (64 KiB)


def check_finite(arr, name):
    """Raise ValueError naming the first NaN or inf in ``arr``. Checked block by block, so that
    validating a large dataset never needs a mask as large as the data."""
    if arr.dtype.kind != "f":
        return
    flat = arr.reshape(-1)
    for lo in range(0, flat.size, FINITE_CHECK_BLOCK):
        ok = np.isfinite(flat[lo:lo + FINITE_CHECK_BLOCK])
        if not ok.all():
            where = tuple(int(i) for i in np.unravel_index(lo + int(np.argmin(ok)), arr.shape))
            raise ValueError(f"{name} contains NaN or inf (first at index {where}: {arr[where]})")


def check_fits_dtype(arr, name, dtype, finite=True):
    """Raise ValueError when ``arr`` has NaN or inf (with ``finite``), or finite values beyond the
    range of ``dtype`` (a float64 1e39 would become inf in a float32 model)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        return
    dtype = np.dtype(dtype)
    if arr.dtype.kind == "f" and finite:
        check_finite(arr, name)
    if dtype.kind != "f" or arr.size == 0 or (arr.dtype.kind == "f" and arr.dtype.itemsize <= dtype.itemsize):
        return
    limit = float(np.finfo(dtype).max)
    flat = arr.reshape(-1)
    for lo in range(0, flat.size, FINITE_CHECK_BLOCK):
        block = np.abs(flat[lo:lo + FINITE_CHECK_BLOCK].astype(np.float64, copy=False))
        big = block > limit
        if big.any() and (block[big] < np.inf).any():
            raise ValueError(f"{name} has values that overflow {dtype.name} (max {limit:.4g}), got "
                             f"{float(block[big & (block < np.inf)][0]):.4g}")


def check_batch_size(batch_size, allow_none=False):
    if batch_size is None and allow_none:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)

def to_categorical(x, num_classes=None):
    """One-hot encoding of integer class labels, as ``keras.utils.to_categorical``.

    ``out[..., k] = 1.0 if x[...] == k else 0.0``. Shapes: x (N,) or (N, 1) -> (N, num_classes);
    any other shape gains a trailing axis. ``num_classes`` defaults to ``max(x) + 1``.
    Returns float64, as Keras does for NumPy input.
    """
    labels = np.asarray(x)
    if labels.dtype.kind not in "iuf" or labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
        raise ValueError(f"to_categorical expects integer class labels, got array of dtype {labels.dtype}"
                         + (" with fractional values" if labels.dtype.kind == "f" else ""))
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(f"to_categorical expects labels in 0..{num_classes - 1}, got values in "
                         f"{flat.min()}..{flat.max()}")
    out = np.zeros((flat.size, int(num_classes)), dtype=np.float64)
    out[np.arange(flat.size), flat] = 1.0
    return out.reshape(shape + (int(num_classes),))


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (``keras.utils.normalize``); a zero
    norm leaves the values unchanged. Shapes: x -> same shape."""
    arr = as_float_array(x, "x")
    norm = np.atleast_1d(np.linalg.norm(arr, order, axis))
    norm[norm == 0] = 1
    return arr / np.expand_dims(norm, axis)


def _split_size(size, n, name):
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be an int (samples), a float in (0, 1) (fraction) or None, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0 < size < 1:
            raise ValueError(f"{name} as a fraction must be in (0, 1), got {size!r}")
        return int(size * n)
    if not 0 < size <= n:
        raise ValueError(f"{name} must be between 1 and the {n} samples, got {size!r}")
    return int(size)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split arrays into two parts along the first axis, as ``keras.utils.split_dataset``.

    ``dataset`` is an array or a tuple of arrays of the same length (e.g. ``(x, y)``); sizes are
    sample counts or fractions; the default is half and half. Returns ``(left, right)`` in the
    form of ``dataset`` (NumPy arrays, where Keras returns ``tf.data.Dataset`` objects).
    """
    arrays = list(dataset) if isinstance(dataset, (tuple, list)) else [dataset]
    arrays = [np.asarray(a) for a in arrays]
    if not arrays or any(a.ndim == 0 for a in arrays):
        raise ValueError("split_dataset expects an array or a tuple of arrays with a sample axis")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"split_dataset expects arrays of one length, got lengths {[len(a) for a in arrays]}")
    left, right = _split_size(left_size, n, "left_size"), _split_size(right_size, n, "right_size")
    if left is None and right is None:
        left = n // 2
    if left is None:
        left = n - right
    if right is None:
        right = n - left
    if left + right > n or left < 0 or right < 0:
        raise ValueError(f"left_size + right_size ({left} + {right}) exceeds the {n} samples")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    parts = ([a[order[:left]] for a in arrays], [a[order[left:left + right]] for a in arrays])
    if isinstance(dataset, (tuple, list)):
        return tuple(parts[0]), tuple(parts[1])
    return parts[0][0], parts[1][0]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """``keras.utils.pad_sequences``: a list of token lists as one ``(len(sequences), maxlen)``
    array (``maxlen`` defaults to the longest). Shorter ones are filled with ``value`` before
    (``padding="pre"``) or after (``"post"``) their tokens; longer ones lose their first
    (``truncating="pre"``) or last (``"post"``) tokens, as in Keras."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r} and "
                         f"{truncating!r}")
    try:
        seqs = [np.asarray(s).reshape(-1) for s in sequences]
    except TypeError:
        raise TypeError(f"pad_sequences expects a list of sequences, got {type(sequences).__name__}") from None
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be a non-negative integer or None, got {maxlen!r}")
    out = np.full((len(seqs), int(maxlen)), value, dtype=dtype)
    for i, s in enumerate(seqs):
        if maxlen == 0 or not len(s):
            continue
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "pre":
            out[i, maxlen - len(s):] = s
        else:
            out[i, :len(s)] = s
    return out


def __getattr__(name):
    # ``fastnn.utils.gradient_check`` lives in its own module, which needs the models; loaded on
    # first use so that importing utils (as models does) never imports the models back.
    if name == "gradient_check":
        from .gradcheck import gradient_check
        return gradient_check
    raise AttributeError(f"module 'fastnn.utils' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "gradient_check"])
