"""Recorded programs: the one-call native step derived from the layers' own description.

Layers, losses and optimizers say once what they compute, as calls of the kernel interface
(``backend.kernels()``, the names and signatures of ``fastnn.reference``). Run eagerly, those calls
compute: on the NumPy twins, or on the native kernels one by one. Run under :func:`record`, the
same code calls a :class:`Recorder` instead, which computes nothing: each call becomes an
instruction of a program (kernel, buffers, scalar arguments) that the C++ executor
(``csrc/program.cpp``) replays for any batch size in one native call, the GIL released. The
executor dispatches on kernels only, never on layers, so a layer built from existing kernels runs
natively with no line outside its class.

What a recording sees instead of arrays:

* :class:`Buf` -- a buffer of the program: the call's inputs, the layers' scratch buffers (sized
  per batch: the first dimension of ``shape`` is a :class:`Dim`, ``a * n + b`` for n rows), or an
  array of the Python objects (weights, gradients, optimizer state, random streams), which the
  program uses in place, so ``get_weights``, saving and callbacks see every update.
* :class:`Scalar` -- a register: a loss or a norm returned by a kernel, their sums, and the call's
  scalar inputs (learning rate, step). ``+`` and ``*`` on scalars record an addition and a
  product.

A program goes stale when anything it was recorded from changes: every configurable object
(``fastnn.tracking.Tracked``) counts its attribute changes in one global counter, and a program
recorded at one count is not used at another (it is recorded again). Code that cannot be recorded
-- a user's layer doing NumPy arithmetic on its inputs -- raises :class:`NotRecordable`, and the
model then runs eagerly, with the same results.
"""
import inspect
import threading

import numpy as np

from . import reference

try:
    from . import _core
except ImportError:  # the NumPy backend works without the extension; nothing is recorded then
    _core = None

_local = threading.local()
_local.recorder = None


class NotRecordable(Exception):
    """Raised while recording when the code does something a program cannot express."""


def active():
    """The recorder of this thread, or None when kernel calls compute."""
    return getattr(_local, "recorder", None)


class Dim:
    """A size ``a * n + b`` for the batch size ``n`` of a call (``a = 0``: a fixed size)."""
    __slots__ = ("a", "b")

    def __init__(self, a, b=0):
        self.a, self.b = int(a), int(b)

    def __mul__(self, k):
        if isinstance(k, Dim) or not isinstance(k, (int, np.integer)):
            raise NotRecordable(f"cannot multiply a batch size by {k!r}")
        return Dim(self.a * int(k), self.b * int(k))

    __rmul__ = __mul__

    def __floordiv__(self, k):
        if self.a % k or self.b % k:
            raise NotRecordable(f"{self} rows do not split into groups of {k}")
        return Dim(self.a // k, self.b // k)

    def __eq__(self, other):
        return isinstance(other, Dim) and (self.a, self.b) == (other.a, other.b)

    def __hash__(self):
        return hash((self.a, self.b))

    def __index__(self):
        raise NotRecordable("the batch size is not known while recording")

    def __repr__(self):
        return f"{self.a}n" + (f"+{self.b}" if self.b else "")


def _product(dims):
    total = 1
    for d in dims:
        total = d * total if isinstance(d, Dim) else total * int(d)
    return total


class Buf:
    """A buffer of a program being recorded, with the shape and dtype of the array it stands for."""

    def __init__(self, recorder, id, shape, dtype):
        self._recorder, self.id, self.shape, self.dtype = recorder, id, tuple(shape), np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        raise NotRecordable("the batch size is not known while recording")

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], tuple):
            shape = shape[0]
        shape = list(shape)
        if -1 in shape:
            i = shape.index(-1)
            rest = _product(shape[:i] + shape[i + 1:])
            shape[i] = _product(self.shape) // rest
        shape = tuple(shape)
        if shape == self.shape:
            return self
        if _product(shape) != _product(self.shape):
            raise NotRecordable(f"cannot reshape {self.shape} to {shape}")
        return self._recorder._alias(self, shape)

    def __array__(self, *args, **kwargs):
        raise NotRecordable("NumPy arithmetic on a buffer being recorded")

    def __array_ufunc__(self, *args, **kwargs):
        raise NotRecordable("NumPy arithmetic on a buffer being recorded")

    def _arithmetic(self, *args):
        raise NotRecordable("arithmetic on a buffer being recorded: express it as kernel calls")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = \
        __pow__ = __neg__ = __getitem__ = __setitem__ = __iadd__ = __imul__ = _arithmetic

    def __repr__(self):
        return f"Buf({self.id}, shape={self.shape}, dtype={self.dtype})"


class Scalar:
    """A register of a program being recorded (a float when the program runs)."""

    def __init__(self, recorder, reg):
        self._recorder, self.reg = recorder, reg

    def __add__(self, other):
        return self._recorder.scalar_add(self, other)

    __radd__ = __add__  # IEEE addition is commutative, bit for bit

    def __mul__(self, other):
        return self._recorder.scalar_mul(self, other)

    __rmul__ = __mul__

    def __float__(self):
        raise NotRecordable("the value of a scalar is not known while recording")

    __bool__ = __int__ = __float__

    def __repr__(self):
        return f"Scalar(r{self.reg})"


# The kernels a program can call, from the executor's table: kind and optionality of each
# parameter (named and ordered as the NumPy twin's) and what the call returns.
_SPECS = {}
_ACTIVATION_CODES = {}
_BUFFER_KINDS = {"in": 0, "out": 0, "io": 0, "labels": 1, "stream": 2}
_DTYPES = {1: np.dtype(np.int64), 2: np.dtype(np.uint64)}
if _core is not None:
    for _id, (_name, _params, _results) in enumerate(_core.program_kernels):
        _parsed = []
        for _p in _params.split():
            _pname, _kind = _p.split(":")
            _kind, _, _like = _kind.rstrip("?").partition("@")
            _parsed.append((_pname, _kind, _p.endswith("?"), _like or None))
        _SPECS[_name] = (_id, _parsed, _results.split(), inspect.signature(getattr(reference, _name)))
    _ACTIVATION_CODES = {name: code for code, name in enumerate(_core.activation_names)}
_NONE, _BUFFER, _LITERAL, _REG = 0, 1, 2, 3


def _wanted(values, name):
    """Whether the optional output ``name`` is asked for: its flag ``need_<name>`` is true, or, for
    a gradient (``d...``), the kernel's ``need_grad``."""
    return values.get("need_" + name) is True or (name.startswith("d") and values.get("need_grad") is True)


class Recorder:
    """The kernel namespace while recording: each kernel call becomes an instruction."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.core = _core.Program(self.dtype.name)
        self.registers = 0
        self._externals = {}  # id(array) -> (Buf, array): arrays used in place, kept alive
        self._named = {}      # (owner id, key) -> Buf: each scratch buffer recorded once
        self._slots = []      # input buffers, in slot order
        self._cond = -1

    # -- buffers and registers --------------------------------------------------------------------
    def _new_buffer(self, shape, dtype, kind=0, alias=-1, array=None, slot=-1):
        rows = shape[0] if shape else 1
        rows = rows if isinstance(rows, Dim) else Dim(0, rows)
        cols = _product(shape[1:]) if len(shape) > 1 else 1
        if isinstance(cols, Dim):
            raise NotRecordable(f"only the first axis of a buffer may depend on the batch, got {shape}")
        id = self.core.add_buffer(kind, rows.a, rows.b, cols, alias, array, slot)
        return Buf(self, id, shape, dtype)

    def _alias(self, buf, shape):
        kind = {np.dtype(np.int64): 1, np.dtype(np.uint64): 2}.get(buf.dtype, 0)
        return self._new_buffer(shape, buf.dtype, kind=kind, alias=buf.id)

    def input(self, tail_shape, dtype):
        """An array given to each run, of shape (n, *tail_shape)."""
        kind = 1 if np.dtype(dtype) == np.int64 else 0
        buf = self._new_buffer((Dim(1),) + tuple(tail_shape), dtype, kind=kind, slot=len(self._slots))
        self._slots.append(buf)
        return buf

    def scalar_input(self):
        """A scalar given to each run (the registers given first, in order)."""
        reg = Scalar(self, self.registers)
        self.registers += 1
        return reg

    def buffer(self, key, shape, dtype):
        """The scratch buffer ``key`` (an owner's name for it) of this shape; one per key."""
        buf = self._named.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = self._named[key] = self._new_buffer(tuple(shape), dtype)
        return buf

    def _external(self, array, kind):
        entry = self._externals.get(id(array))
        if entry is not None and entry[1] is array:
            return entry[0]
        want = _DTYPES.get(kind, self.dtype)
        if (array.dtype != want or not array.flags.c_contiguous or not array.flags.writeable
                or not array.flags.aligned):
            raise NotRecordable(f"an array of dtype {array.dtype} (contiguous: "
                                f"{array.flags.c_contiguous}) cannot be used in place as {want}")
        buf = self._new_buffer(array.shape, array.dtype, kind=kind, array=array)
        self._externals[id(array)] = (buf, array)
        return buf

    def when(self, flag, fn):
        """Record ``fn()`` to run only in calls where the scalar ``flag`` is non-zero."""
        outer, self._cond = self._cond, flag.reg
        try:
            return fn()
        finally:
            self._cond = outer

    # -- kernels ----------------------------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("_") or name not in _SPECS:
            raise NotRecordable(f"kernel {name!r} cannot be recorded in a program")
        spec = _SPECS[name]
        return lambda *args, **kwargs: self._call(name, spec, args, kwargs)

    def _call(self, name, spec, args, kwargs):
        kernel, params, results, signature = spec
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise NotRecordable(f"{name}: {exc}") from None
        bound.apply_defaults()
        values = bound.arguments
        encoded, handles, like = [], {}, None
        for pname, kind, optional, shaped_like in params:
            value = values[pname]
            if kind in _BUFFER_KINDS:
                code = _BUFFER_KINDS[kind]
                if value is None and kind == "out" and (not optional or _wanted(values, pname)):
                    model = handles.get(shaped_like, like) if shaped_like else like
                    value = self._new_buffer(model.shape, model.dtype)
                if value is None:
                    encoded.append((_NONE, -1, 0.0))
                    handles[pname] = None
                    continue
                if isinstance(value, np.ndarray):
                    value = self._external(value, code)
                elif not isinstance(value, Buf):
                    raise NotRecordable(f"{name}: {pname} must be an array, got {type(value).__name__}")
                like = value if like is None else like
                handles[pname] = value
                encoded.append((_BUFFER, value.id, 0.0))
            elif kind == "act":
                if value not in _ACTIVATION_CODES:
                    raise NotRecordable(f"{name}: unknown activation {value!r}")
                encoded.append((_LITERAL, -1, float(_ACTIVATION_CODES[value])))
            elif isinstance(value, Scalar):
                encoded.append((_REG, value.reg, 0.0))
            elif value is None:
                encoded.append((_NONE, -1, 0.0))
            else:
                try:
                    encoded.append((_LITERAL, -1, float(value)))
                except (TypeError, ValueError):
                    raise NotRecordable(f"{name}: {pname}={value!r} is not a number") from None
        result = -1
        if "@" in results:
            result = self.registers
            self.registers += 1
        self.core.add_instr(kernel, encoded, result, self._cond)
        out = [Scalar(self, result) if r == "@" else handles[r] for r in results]
        return None if not out else out[0] if len(out) == 1 else tuple(out)

    # Scalar arithmetic of a step, recorded like the kernels (the twins are in reference.optim).
    def scalar_add(self, a, b):
        return self._call("scalar_add", _SPECS["scalar_add"], (a, b), {})

    def scalar_mul(self, a, b):
        return self._call("scalar_mul", _SPECS["scalar_mul"], (a, b), {})


def when(flag, fn):
    """``fn()`` when ``flag`` holds: now for a bool, or recorded as conditional for a Scalar."""
    if isinstance(flag, Scalar):
        return flag._recorder.when(flag, fn)
    return fn() if flag else None


def buffer(owner, cache, key, shape, dtype):
    """The scratch buffer ``key`` of ``owner``: an array kept in ``cache`` (reused while the shape
    and dtype repeat), or the program's buffer while recording."""
    rec = active()
    if rec is not None:
        return rec.buffer((id(owner), key), shape, dtype)
    buf = cache.get(key)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = cache[key] = np.empty(shape, dtype)
    return buf


def trim_buffers(cache):
    """Empty the scratch-buffer ``cache`` of :func:`buffer` when its arrays hold more than
    ``backend.buffer_cache_limit()`` bytes (called when a public call returns)."""
    if cache:
        from . import backend
        if sum(b.nbytes for b in cache.values()) > backend.buffer_cache_limit():
            cache.clear()


def trim_programs(programs):
    """Free the internal buffers of every program in ``programs`` (a model's ``{kind: (count,
    Program or None)}``) that holds more than the cache limit (``backend.buffer_cache_limit``)."""
    for _, compiled in programs.values():
        if compiled is not None:
            compiled.trim()


class Program:
    """A recorded program, ready to run: ``run(n, arrays, scalars)`` returns its results (floats
    for scalars, arrays of n rows for buffers, which stay valid until the next run)."""

    def __init__(self, recorder, results):
        self._core = recorder.core
        self._registers = recorder.registers
        self._slots = [b.id for b in recorder._slots]
        self._keep = recorder._externals  # the arrays the program points into
        self._results = results
        self._scalars = [r.reg for r in results if isinstance(r, Scalar)]
        self._last_rows, self._fits = 0, {}  # rows of the last run; {limit: rows known to fit}
        first = results[0] if results else None  # run_into's case: the input is the first result
        self._passthrough = isinstance(first, Buf) and first.id in self._slots
        self.output_tail = tuple(first.shape[1:]) if isinstance(first, Buf) else None

    def run(self, n, arrays, scalars, buffers=True):
        """The results of one run; with ``buffers=False`` the buffer results are None (not read)."""
        self._last_rows = n
        values = iter(self._core.run(n, arrays, scalars, self._registers, self._scalars))
        out = []
        for r in self._results:
            if isinstance(r, Scalar):
                out.append(next(values))
            elif r is None or not buffers:
                out.append(None)
            elif r.id in self._slots:  # the model passes its input through unchanged
                out.append(arrays[self._slots.index(r.id)].reshape((n,) + r.shape[1:]))
            else:
                out.append(self._core.view(r.id, n, list(r.shape[1:])))
        return out

    def trim(self):
        """Free the internal buffers if they hold more than the cache limit (results of the last
        run become invalid); the next run allocates them again. Asks the native side only after
        a run larger than any seen within the limit, so a steady state makes no extra call."""
        limit = _core.program_cache_limit()
        if self._last_rows <= self._fits.get(limit, -1):
            return
        if self._core.storage_bytes() > limit:
            self._core.release()
        else:
            self._fits = {limit: self._last_rows}

    def storage_bytes(self):
        """Bytes of internal buffers the program holds now."""
        return self._core.storage_bytes()

    def chosen_threads(self, n):
        """The thread count its runs of ``n`` rows use now (0 before the first): fixed by
        ``set_num_threads(k)``, else chosen from measured step times (csrc/threads.h)."""
        return self._core.chosen_threads(n)

    def run_into(self, x, out):
        """Run on the single input ``x``, then copy the first result (a buffer of len(x) rows)
        into the C-contiguous ``out`` (the inference fast path: one native call)."""
        result = self._results[0]
        self._last_rows = len(x)
        if self._passthrough:  # the model passes its input through unchanged
            self._core.run(len(x), [x], [], self._registers, [])
            out[...] = x.reshape(out.shape)
        else:
            self._core.infer(x, result.id, out)


def record(dtype, describe, inputs, scalars):
    """Record ``describe(*input buffers, *scalar inputs)``, which returns a list of results
    (Scalars, Bufs or None), into a :class:`Program`. ``inputs`` lists ``(tail shape, dtype)`` of
    each array given per run; ``scalars`` counts the scalars given per run. Raises NotRecordable."""
    if _core is None:
        raise NotRecordable("the native extension is not available")
    rec = Recorder(dtype)
    bufs = [rec.input(shape, dt) for shape, dt in inputs]
    regs = [rec.scalar_input() for _ in range(scalars)]
    outer, _local.recorder = active(), rec
    try:
        results = describe(*bufs, *regs)
    finally:
        _local.recorder = outer
    compiled = Program(rec, list(results))
    compiled.inputs = [(tuple(shape), np.dtype(dt)) for shape, dt in inputs]
    return compiled


def run_once(name, *args, **kwargs):
    """Kernel ``name`` of the executor's table run once on arrays (a one-instruction program):
    the native form of a kernel that has no binding of its own. Outputs not given are allocated
    like the kernel's first array argument."""
    _, params, results, signature = _SPECS[name]
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    values = dict(bound.arguments)
    like = next(values[p] for p, kind, _, _ in params
                if kind in _BUFFER_KINDS and isinstance(values[p], np.ndarray))
    for p, kind, optional, shaped_like in params:
        if kind == "out" and values[p] is None and (not optional or _wanted(values, p)):
            values[p] = np.empty_like(values[shaped_like] if shaped_like else like)
    dtype = like.dtype if like.dtype.kind == "f" else np.dtype(np.float64)

    def describe():
        value = getattr(active(), name)(**values)
        flat = value if isinstance(value, tuple) else (value,)
        return [v for v in flat if isinstance(v, Scalar)]

    scalars = iter(record(dtype, describe, [], 0).run(0, [], []))
    out = [next(scalars) if r == "@" else values[r] for r in results]
    return None if not out else out[0] if len(out) == 1 else tuple(out)
