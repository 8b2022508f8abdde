"""Models: ``Model``, the training engine (``compile`` / ``fit`` / ``evaluate`` / ``predict``,
the recorded programs, weights, files, callbacks), independent of how the layers are connected;
``Sequential``, a stack of layers, which adds only the layer list. The functional graph
(``keras.Model(inputs, outputs)``) is in ``fastnn.functional``; input adaptation and sample weights
in ``fastnn.data_adapter``.

Every public method validates its inputs completely before it changes anything (weights, optimizer
state, buffers, built status), so a call that raises leaves the model exactly as it was.
Calls on one model are serialised by a lock: layers reuse their buffers between calls.
"""
import json
import math
import numbers
import os
import signal
import threading
import weakref
import warnings

import numpy as np

from . import backend
from . import callbacks as callbacks_module
from . import data_adapter
from .data_adapter import shape_str as _shape_str
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import program
from . import tracking
from . import saving
from . import utils
from .layers import InputLayer, Layer, _auto_name
from .layers import get as layer_from_config

DEFAULT_BATCH_SIZE = 32    # Keras default for fit/evaluate
PREDICT_CHUNK = 4096       # predict(batch_size=None) runs at most this many rows at once


_MODELS = weakref.WeakSet()  # every live model, for the fork handler below


def _new_locks_after_fork():
    # A child forked while another thread held a model's lock (inside fit, say) would wait forever
    # for a thread that does not exist in it: the child starts with fresh, unheld locks.
    fresh = {}  # models sharing a lock (they share layers) keep sharing one
    for model in list(_MODELS):
        object.__setattr__(model, "_lock", fresh.setdefault(id(model._lock), threading.RLock()))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


_FLOAT_MAX = {4: float(np.finfo(np.float32).max), 8: float(np.finfo(np.float64).max)}


class _DeferredInterrupt:
    """While ``fit`` runs in the main thread with Python's default SIGINT handler, Ctrl-C is held
    until the current training step has finished (``check`` raises it then): a step is applied
    whole, with ``optimizer.iterations`` counting it, or not at all."""

    def __init__(self):
        self.pending = False
        self._previous = None

    def _hold(self, signum, frame):
        self.pending = True

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def check(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc[0] is None:
            self.check()
        return False


def _releasing(method):
    """Run a public method under the model's lock and release the layers' references to the
    caller's arrays when it returns (or raises)."""
    def wrapper(self, *args, **kwargs):
        if self.__dict__.get("_untraced"):  # a subclassed model's first call: trace ``call``
            self._trace(args[0] if args else kwargs.get("x"))
            return getattr(self, method.__name__)(*args, **kwargs)
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            finally:
                if self.__dict__.get("_eager"):  # only an eager pass hands layers arrays
                    object.__setattr__(self, "_eager", False)
                    for layer in self._layers:
                        layer.release()
                program.trim_programs(self._programs)  # a huge batch's buffers are not kept
                program.trim_buffers(self._buffers)
    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = method.__name__, method.__qualname__, method.__doc__
    wrapper.__wrapped__ = method
    return wrapper


def _flag(value, name):
    """``value`` as a bool; TypeError unless it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class _Restored:
    """Copies of a model's layer states, non-trainable weights and gradient arrays, put back in
    place on exit (whatever happened inside): see ``Model.compute_gradients``."""

    def __init__(self, model, grads=True):
        self.layers = model.layers
        self.states = [layer.get_state() for layer in self.layers]
        arrays = model.non_trainable_weights
        if grads:  # a forward pass alone writes no gradient array
            arrays += [g for layer in self.layers for g in layer.grads]
        self.arrays = [(a, a.copy()) for a in arrays]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for layer, state in zip(self.layers, self.states):
            layer.set_state(dict(state))
        for array, saved in self.arrays:
            array[...] = saved
        return False


class Model(tracking.Tracked):
    """The training engine shared by every kind of model: compile, fit, evaluate, predict,
    train_on_batch, weights, files and callbacks.

    A training step is described once (``_describe_train_step``) as calls of the kernel
    interface. The NumPy backend runs it eagerly; the native backend records it into a program
    that runs each later step as one native call (``fastnn.program``), recorded again whenever
    any setting of the model, its layers, loss or optimizer has changed (``fastnn.tracking``).

    ``Model(inputs, outputs)`` makes a functional model (``fastnn.functional.Functional``), as
    ``keras.Model`` does. A subclass says how its layers are connected: ``_layers`` (every layer, in the order their
    weights are listed), ``_input_shape`` and ``_dtype`` once built, ``build``, ``built``,
    ``_output_shapes(input_shape)`` (the last entry is the model's output shape), ``_forward``
    and ``get_config``.
    """
    # ``_eager``: an eager pass (``_forward``/``_backward``) ran since the layers were released
    _RUNTIME = frozenset({"stop_training", "history", "_programs", "_shapes", "_eager"})
    _CONFIG_CLASS = "Model"  # the class_name of to_json

    def __new__(cls, *args, **kwargs):
        # keras.Model(inputs, outputs) is a functional model, as in Keras
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional
            return object.__new__(Functional)
        return object.__new__(cls)

    def __init__(self, name=None, **kwargs):
        kwargs.pop("trainable", None)
        if kwargs:
            raise TypeError(f"Model got unexpected arguments {sorted(kwargs)}")
        self.name = name or _auto_name(type(self).__name__)
        if getattr(type(self), "call", None) is not None and type(self)._CONFIG_CLASS == "Model":
            # a subclassed model (``call(self, x, training=False)``): its graph is traced from
            # ``call`` on symbolic inputs shaped like the first data it sees (fastnn.functional)
            object.__setattr__(self, "_untraced", True)
        self.optimizer = None
        self.loss = None
        self._metric_ids = []
        self.stop_training = False
        self.history = None
        self._lock = threading.RLock()
        _MODELS.add(self)
        self._buffers = {}
        self._programs = {}  # "train" / "predict" -> (tracking count, Program or None)

    @property
    def _params(self):
        """The weights the optimizer updates, layer by layer (``_grads`` lines up)."""
        return [w for l in self._layers for w in l.trainable_weights]

    @property
    def _grads(self):
        return [g for l in self._layers if l.trainable for g in l.grads]

    @property
    def trainable_weights(self):
        return self._params

    @property
    def non_trainable_weights(self):
        return [w for l in self._layers for w in l.non_trainable_weights]

    @property
    def dtype(self):
        """The dtype of the model's weights and outputs (``numpy.float32`` or ``float64``, as
        ``layer.dtype``), fixed when the model is built; None before."""
        return self._dtype

    @property
    def losses(self):
        """Keras's ``model.losses``: every layer's ``losses`` (weight and activity penalties)."""
        return [value for layer in self._layers for value in layer.losses]

    def _min_training_batch(self):
        return max([l.min_training_batch for l in self._layers], default=1)

    def _check_training_batch(self, n):
        """ValueError, before anything changes, when a layer cannot train on a batch of ``n``."""
        for layer in self._layers:
            layer.check_training_batch(n)

    def _regularization_loss(self, add_grads=False):
        """Sum of the layers' weight penalties (Keras adds them to the reported loss)."""
        return sum(layer.regularization_loss(add_grads) for layer in self._layers)

    @property
    def built(self):
        return False

    def _trace(self, x):
        if x is None:
            raise ValueError(f"{type(self).__name__} is a subclassed model: give it data (fit, predict "
                             "or call it on an array) so that its call() can be traced")
        from .functional import trace_subclassed
        trace_subclassed(self, x)

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Choose the optimizer, the loss and the metrics reported by fit and evaluate.

        ``optimizer`` defaults to ``"rmsprop"``, as in Keras.
        ``loss_weights`` is for models with several outputs (``keras.Model(inputs, outputs)``).
        """
        if self.__dict__.get("_untraced"):  # applied when call() has been traced
            optimizers_module.get(optimizer)
            if loss is None:
                raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
            self._compile_args = (optimizer, loss, metrics, loss_weights)
            self.loss = loss
            return
        if loss_weights is not None:
            raise ValueError(f"loss_weights weights the losses of several outputs; {self.name} has one")
        with self._lock:
            opt = optimizers_module.get(optimizer)
            if loss is None:
                raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
            loss_obj = losses_module.get(loss)
            metric_ids = list(metrics or [])
            if isinstance(metrics, str):
                metric_ids = [metrics]
            for m in metric_ids:  # resolve once now so that unknown names fail here
                metrics_module.get(m, loss_obj, (2,))
            self.optimizer, self.loss, self._metric_ids = opt, loss_obj, metric_ids

    def _make_metrics(self, output_shape):
        if len(output_shape) > 1:  # sequence outputs (N, T, C): every step is a row
            return [data_adapter.StepMetric(metrics_module.get(m, self.loss, tuple(output_shape[-1:])))
                    for m in self._metric_ids]
        return [metrics_module.get(m, self.loss, output_shape) for m in self._metric_ids]

    def _fused(self):
        """True when the last layer's activation pairs with the loss: train through its logits."""
        last = self._layers[-1] if self._layers else None
        act = getattr(last, "activation", None)
        return (act is not None and last._activation_is_output and not self.loss.from_logits
                and act.name == self.loss.fused_activation)

    # -- validation at the boundary (fastnn.data_adapter) ----------------------------------------
    def _prepare_x(self, x, expected=None):
        return data_adapter.prepare_x(self, x, expected)

    def _prepare_xy(self, x, y, what="x", expected=None):
        return data_adapter.prepare_xy(self, x, y, what, expected)

    def _check_trainable(self):
        if self.optimizer is None:
            raise RuntimeError("the model must be compiled before training: call model.compile(...)")
        for layer in self._layers:
            act = getattr(layer, "activation", None)
            if act is not None and not act.has_gradient:
                raise ValueError(f"layer {layer.name} uses the 'step' activation, which has no gradient; "
                                 "train with 'sigmoid' (or 'tanh') and threshold the output instead")

    # -- the recorded programs (native backend) --------------------------------------------------
    def _program(self, kind, describe, inputs, scalars):
        """The native program ``kind`` ("train" or "predict") of this model, recorded from
        ``describe`` on first use and again after any configuration change; None on the NumPy
        backend or when the description cannot be recorded (it then runs eagerly)."""
        if backend.get_backend() != "native":
            return None
        cached = self._programs.get(kind)
        if cached is not None and cached[0] == tracking.count():
            return cached[1]
        try:
            recorded = program.record(self._dtype, describe, inputs, scalars)
        except Exception:  # noqa: BLE001 -- code that cannot be recorded (a user's layer doing
            # NumPy arithmetic, say) runs eagerly instead, where a genuine error surfaces again
            recorded = None
        finally:
            for layer in self._layers:
                layer.release()
        self._programs[kind] = (tracking.count(), recorded)  # after recording: it creates state
        return recorded

    def _train_program(self, x, y):
        """The recorded training step for batches like (x, y) (see _describe_train_step)."""
        xs, ys = data_adapter.as_list(x), data_adapter.as_list(y)

        def describe(*args):
            self.optimizer.build(self._params)  # the program uses the state's arrays in place
            bufs, (lr, step, want_outputs) = args[:-3], args[-3:]
            xb = data_adapter.like(x, bufs[:len(xs)])
            yb = data_adapter.like(y, bufs[len(xs):])
            return self._describe_train_step(xb, yb, lr, step, want_outputs)
        return self._program("train", describe, [(a.shape[1:], a.dtype) for a in xs + ys], 3)

    def _predict_program(self, x):
        cached = self._programs.get("predict")
        if cached is not None and cached[0] == tracking.count() and backend.get_backend() == "native":
            return cached[1]  # the common case, checked first: predict at batch 1 is a few us
        return self._program("predict", lambda xb: [self._forward(xb, training=False)],
                             [(x.shape[1:], x.dtype)], 0)

    def _evaluate_program(self, x, y):
        """The recorded evaluation batch for batches like (x, y) (see _describe_evaluate): the
        forward pass in inference mode and the loss, one native call whose thread count is
        chosen from its measured run times like fit's and predict's (csrc/threads.h)."""
        xs, ys = data_adapter.as_list(x), data_adapter.as_list(y)
        inputs = [(a.shape[1:], a.dtype) for a in xs + ys]
        cached = self._programs.get("evaluate")
        if (cached is not None and cached[0] == tracking.count() and backend.get_backend() == "native"
                and (cached[1] is None or cached[1].inputs == inputs)):
            return cached[1]
        if cached is not None and cached[0] == tracking.count():
            del self._programs["evaluate"]  # recorded for other input shapes: record again

        def describe(*bufs):
            return self._describe_evaluate(data_adapter.like(x, list(bufs[:len(xs)])),
                                           data_adapter.like(y, list(bufs[len(xs):])))
        return self._program("evaluate", describe, inputs, 0)

    def _describe_evaluate(self, x, y):
        """One evaluation batch as kernel calls: [loss, outputs as ``_step_outputs`` reads them]."""
        loss, _, outputs = self._loss_and_outputs(x, y, training=False)
        return [loss, outputs]

    # -- the steps ------------------------------------------------------------------------------
    def _buffer(self, key, shape, dtype):
        return program.buffer(self, self._buffers, key, shape, dtype)

    def _loss_and_outputs(self, x, y, training, weights=None):
        """Forward pass and loss; returns (loss, dL/d(last output), outputs as the model gives them).

        ``weights[N]`` (optional) weights each sample's loss as Keras does: sum(w_n * l_n) / N."""
        fused = self._fused()
        h = self._forward(x, training, logits=fused)
        shape, h, y = h.shape, *data_adapter.step_rows(h, y)
        if weights is not None and len(shape) > 2:  # one weight per sequence: for each of its steps
            weights = np.repeat(weights, len(h) // shape[0])
        grad_out = self._buffer("dout", h.shape, h.dtype) if training else None
        fn = self.loss.logits_value_and_grad if fused else self.loss.value_and_grad
        loss, grad = fn(y, h, grad_out, training)
        if weights is not None:  # the loss weights each row's value and gradient (its reduction)
            loss = self.loss.weighted_value(y, h, weights, fused, grad if training else None)
        outputs = h
        if fused:
            outputs = self._layers[-1].activation.forward(h, out=self._buffer("outputs", h.shape, h.dtype))
        return loss, None if grad is None else grad.reshape(shape), outputs.reshape(shape)

    def _describe_train_step(self, x, y, lr, step, want_outputs, weights=None):
        """One training step as kernel calls -- forward, loss, backward, weight penalties (value
        and gradient), optimizer update -- run eagerly or recorded (fastnn.program). ``lr``, ``step``
        and ``want_outputs`` are numbers, or a recording's scalar inputs. Returns [loss including
        the penalties, outputs (computed only when wanted)]."""
        fused = self._fused()
        h = self._forward(x, True, logits=fused)
        shape, h, y = h.shape, *data_adapter.step_rows(h, y)
        if weights is not None and len(shape) > 2:  # eager only, as below
            weights = np.repeat(weights, len(h) // shape[0])
        fn = self.loss.logits_value_and_grad if fused else self.loss.value_and_grad
        loss, grad = fn(y, h, self._buffer("dout", h.shape, h.dtype), True)
        if weights is not None:  # eager only: weighted rows (see _loss_and_outputs)
            loss = self.loss.weighted_value(y, h, weights, fused, grad)
        grad = grad.reshape(shape)
        outputs = h
        if fused:
            act = self._layers[-1].activation
            outputs = program.when(want_outputs, lambda: act.forward(
                h, out=self._buffer("outputs", h.shape, h.dtype)))
        if outputs is not None:
            outputs = outputs.reshape(shape)
        self._backward(grad, logits=fused)
        loss = loss + self._regularization_loss(add_grads=True)
        self.optimizer.update(self._params, self._grads, lr, step)
        return [loss, outputs]

    def _train_step(self, x, y, weights=None, want_outputs=True):
        """One optimizer step on (x, y); returns the loss including the penalties and the outputs
        (None when not wanted and the step ran as one native call). On the native backend the
        step is one call of the recorded program; per-sample weights run it eagerly."""
        opt = self.optimizer
        lr = opt.learning_rate  # checked before any state is created or changed
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"the learning-rate schedule gave {lr!r} at step {opt.iterations}; "
                             "expected a finite non-negative number")
        if lr > _FLOAT_MAX[self._dtype.itemsize]:
            raise ValueError(f"the learning rate {lr!r} at step {opt.iterations} overflows "
                             f"{self._dtype.name} (max {_FLOAT_MAX[self._dtype.itemsize]:.4g})")
        step = opt.iterations + 1
        compiled = None
        if weights is None:
            cached = self._programs.get("train")
            if cached is not None and cached[0] == tracking.count() and backend.get_backend() == "native":
                compiled = cached[1]  # checked first: a small step takes tens of microseconds
            else:
                compiled = self._train_program(x, y)
        if compiled is not None:
            results = compiled.run(len(x), data_adapter.as_list(x) + data_adapter.as_list(y),
                                   [lr, step, float(want_outputs)], want_outputs)
        else:
            opt.build(self._params)
            results = self._describe_train_step(x, y, lr, step, want_outputs, weights)
        loss, outputs = results[0], self._step_outputs(results[1:])
        opt.iterations = step
        for layer in self._layers:  # kernel_constraint / bias_constraint, after the update
            layer.apply_constraints()
        return loss, outputs

    def _step_outputs(self, results):
        """What a training step gives the metrics, from the step's results after the loss."""
        return results[0]

    def _gather(self, x, y, index):
        """Rows ``index`` of x and y: views for a slice, else copies into reused buffers."""
        if isinstance(index, slice) or isinstance(x, data_adapter.Batch):
            return x[index], y[index]
        n = len(index)
        # mode="clip": the index is part of a permutation, every entry valid; the default "raise"
        # gathers into a fresh temporary and copies that into out (measured: a batch of 1024
        # MNIST rows then costs its 3.2 MB of page faults and a second copy every step)
        xb = np.take(x, index, axis=0, out=self._buffer("xb", (n,) + x.shape[1:], x.dtype), mode="clip")
        yb = np.take(y, index, axis=0, out=self._buffer("yb", (n,) + y.shape[1:], y.dtype), mode="clip")
        return xb, yb

    # -- fit / evaluate / predict ---------------------------------------------------------------
    @_releasing
    def fit(self, x, y, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over (x, y) in shuffled mini-batches; returns a History.

        Keras semantics: ``verbose`` 0 silent, 1 (or "auto") a progress bar per epoch with an ETA
        (only the final line when output is not a terminal), 2 one line per epoch.
        ``validation_split=f`` holds out the LAST fraction f of (x, y), taken before shuffling
        (ignored when ``validation_data`` is given). ``sample_weight[N]`` and ``class_weight``
        ({class: weight}) scale each sample's loss: the loss is sum(w_n * l_n) / N. Training runs
        epochs ``initial_epoch .. epochs - 1``; a second ``fit`` continues from the current weights
        and optimizer state. ``batch_size`` defaults to 32; a batch larger than the data trains on
        all of it at once. With a BatchNormalization layer, a last batch of a single sample (its
        batch statistics are undefined) is merged into the batch before it.
        ``steps_per_epoch`` trains on only the first that many batches of each epoch's order;
        ``validation_batch_size`` (default ``batch_size``) batches the validation data;
        ``validation_freq=k`` validates after every k-th epoch only.
        """
        with self._lock:
            batch_size = utils.check_batch_size(DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
            if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
                raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
            if (isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral)
                    or initial_epoch < 0):
                raise ValueError(f"initial_epoch must be a non-negative integer, got {initial_epoch!r}")
            if (isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real)
                    or not 0 <= validation_split < 1):
                raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
            verbose = _check_verbose(verbose)
            if not isinstance(shuffle, (bool, np.bool_)):
                raise ValueError(f"shuffle must be True or False, got {shuffle!r}")
            for name, value in (("steps_per_epoch", steps_per_epoch),
                                ("validation_batch_size", validation_batch_size)):
                if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                          or value < 1):
                    raise ValueError(f"{name} must be None or a positive integer, got {value!r}")
            if (isinstance(validation_freq, bool) or not isinstance(validation_freq, numbers.Integral)
                    or validation_freq < 1):
                raise ValueError(f"validation_freq must be a positive integer, got {validation_freq!r}")
            x, y = self._prepare_xy(x, y)
            if class_weight is not None and len(self._output_shapes(x.shape[1:])[-1]) > 1:
                raise ValueError("class_weight is not supported for sequence outputs (targets per "
                                 "timestep); pass sample_weight, one weight per sequence, instead")
            weights = data_adapter.sample_weights(y, len(x), sample_weight, class_weight, x.dtype)
            val = None
            if validation_split and validation_data is None:
                split_at = int(math.floor(len(x) * (1.0 - validation_split)))
                if split_at == 0 or split_at == len(x):
                    raise ValueError(f"validation_split={validation_split} of {len(x)} samples leaves "
                                     f"{split_at} for training and {len(x) - split_at} for validation; "
                                     "both need at least one")
                # class_weight weights the training rows only; sample_weight is split with x (Keras)
                val = (x[split_at:], y[split_at:], None if sample_weight is None else
                       data_adapter.sample_weights(y[split_at:], len(x) - split_at,
                                                   np.asarray(sample_weight)[split_at:], None, x.dtype))
                x, y = x[:split_at], y[:split_at]
                weights = None if weights is None else weights[:split_at]
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                    raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                     f"val_sample_weight), got {type(validation_data).__name__}"
                                     + (f" of length {len(validation_data)}"
                                        if isinstance(validation_data, (tuple, list)) else ""))
                x_val, y_val = self._prepare_xy(*validation_data[:2], what="validation x",
                                                expected=x.shape[1:])
                val_weights = None
                if len(validation_data) == 3:
                    val_weights = data_adapter.sample_weights(y_val, len(x_val), validation_data[2], None, x.dtype)
                val = (x_val, y_val, val_weights)
            self._check_trainable()
            bounds = self._batch_bounds(len(x), batch_size)
            cbs = list(callbacks or [])
            for cb in cbs:
                if not isinstance(cb, callbacks_module.Callback):
                    raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances, got {cb!r}")
            names = self.metrics_names[1:]  # the log keys, as fit will write them
            for i, cb in enumerate(cbs):  # a checkpoint's file name, a logger's directory: refused
                cb._check_fit(callbacks_module._log_keys(names, val is not None, cbs[:i]))  # now
            # Everything is valid: from here on the model may change.
            if not self.built:
                self.build(x.shape[1:])
            return self._fit_loop(x, y, weights, bounds, int(initial_epoch), int(epochs), verbose, cbs,
                                  val, shuffle, batch_size, steps_per_epoch, validation_batch_size,
                                  int(validation_freq))

    def _batch_bounds(self, n, batch_size):
        """Start of each training batch, then ``n``. A last batch smaller than a layer accepts (one
        sample, with BatchNormalization) joins the batch before it; ValueError when even that fails."""
        bounds = list(range(0, n, batch_size)) + [n]
        need = self._min_training_batch()
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < need:
            del bounds[-2]
        self._check_training_batch(min(b - a for a, b in zip(bounds, bounds[1:])))
        return bounds

    def _fit_loop(self, x, y, weights, bounds, initial_epoch, epochs, verbose, cbs, val, shuffle,
                  batch_size, steps_per_epoch=None, validation_batch_size=None, validation_freq=1):
        n = len(x)
        steps = len(bounds) - 1
        if steps_per_epoch is not None:
            if steps_per_epoch > steps:
                warnings.warn(f"steps_per_epoch={steps_per_epoch} exceeds the {steps} batches of the "
                              f"data; each epoch trains on all {steps}", stacklevel=3)
            steps = min(steps, int(steps_per_epoch))
        history = callbacks_module.History()
        params = {"epochs": epochs, "steps": steps, "verbose": verbose}
        cb = callbacks_module.CallbackList(cbs + [history], self, params)  # last, as in Keras: it
        # records what the other callbacks added to the logs (learning_rate)
        metrics = self._make_metrics(self._output_shapes(self._input_shape)[-1])
        self.stop_training = False
        with _DeferredInterrupt() as interrupt:
            return self._fit_epochs(x, y, weights, bounds, initial_epoch, epochs, verbose, cb, val,
                                    shuffle, batch_size, steps, n, history, metrics, interrupt,
                                    validation_batch_size, validation_freq)

    def _fit_epochs(self, x, y, weights, bounds, initial_epoch, epochs, verbose, cb, val, shuffle,
                    batch_size, steps, n, history, metrics, interrupt, validation_batch_size,
                    validation_freq):
        cb.on_train_begin({})
        wants_batch_end = cb.wants("on_train_batch_end")
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch, {})
            order = utils.rng().permutation(n) if shuffle else None
            for m in metrics:
                m.reset_state()
            total, seen, logs = 0.0, 0, {}
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = utils.Progbar(steps, interactive=None if verbose == 1 else False, show_bar=verbose == 1)
            batch_logs = verbose == 1 or wants_batch_end  # else the epoch's logs are made once, at its end
            for step in range(steps):
                lo, hi = bounds[step], bounds[step + 1]
                index = slice(lo, hi) if order is None else order[lo:hi]
                xb, yb = self._gather(x, y, index)
                cb.on_train_batch_begin(step, {})
                loss, outputs = self._train_step(xb, yb, None if weights is None else weights[index],
                                                 want_outputs=bool(metrics))
                interrupt.check()  # Ctrl-C lands here, between steps: a step is all or nothing
                total += loss * len(xb)
                seen += len(xb)
                for m in metrics:
                    m.update_state(yb, outputs)
                if batch_logs:
                    logs = {"loss": total / seen, **{m.name: m.result() for m in metrics}}
                    cb.on_train_batch_end(step, logs)
                    if verbose == 1:
                        bar.update(step + 1, list(logs.items()))
                if self.stop_training:
                    break
            if seen and not batch_logs:
                logs = {"loss": total / seen, **{m.name: m.result() for m in metrics}}
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(val[0], val[1], validation_batch_size or batch_size,
                                                 val[2])
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            if verbose and steps:
                bar.update(step + 1, list(logs.items()), finalize=True)
            cb.on_epoch_end(epoch, dict(logs))
            if self.stop_training:
                break
        cb.on_train_end({})
        self.history = history
        return history

    def _evaluate_arrays(self, x, y, batch_size, weights=None, cb=None):
        metrics = self._make_metrics(self._output_shapes(self._input_shape)[-1])
        total = 0.0
        # On the native backend each batch is one run of the recorded "evaluate" program; per-sample
        # weights (NumPy arithmetic on the loss) run eagerly, with the same kernels and results.
        compiled = self._evaluate_program(x, y) if weights is None and len(x) else None
        for lo in range(0, len(x), batch_size):
            if cb is not None:
                cb.on_test_batch_begin(lo // batch_size, {})
            xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
            wb = None if weights is None else weights[lo:lo + batch_size]
            if compiled is not None:
                results = compiled.run(len(xb), data_adapter.as_list(xb) + data_adapter.as_list(yb), [])
                loss, outputs = results[0], self._step_outputs(results[1:])
            else:
                loss, _, outputs = self._loss_and_outputs(xb, yb, training=False, weights=wb)
            total += loss * len(xb)
            for m in metrics:
                m.update_state(yb, outputs)
            if cb is not None:
                seen = min(lo + batch_size, len(x))
                cb.on_test_batch_end(lo // batch_size, {"loss": total / seen,
                                                        **{m.name: m.result() for m in metrics}})
        loss = total / len(x) + self._regularization_loss()  # the weights are fixed meanwhile
        return {"loss": loss, **{m.name: m.result() for m in metrics}}

    @_releasing
    def evaluate(self, x, y, batch_size=None, verbose=0, sample_weight=None, return_dict=False,
                 callbacks=None, steps=None):
        """Loss (and metrics) over (x, y): a float, ``[loss, *metrics]``, or a dict with return_dict.
        ``sample_weight[N]`` weights each sample's loss, sum(w_n * l_n) / N, as in fit.
        ``callbacks`` get the ``on_test_*`` hooks; ``steps`` evaluates only that many batches."""
        with self._lock:
            batch_size = utils.check_batch_size(DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
            verbose = _check_verbose(verbose)
            x, y = self._prepare_xy(x, y)
            weights = data_adapter.sample_weights(y, len(x), sample_weight, None, x.dtype)
            if steps is not None:
                if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
                    raise ValueError(f"steps must be None or a positive integer, got {steps!r}")
                x, y = x[:steps * batch_size], y[:steps * batch_size]
                weights = None if weights is None else weights[:steps * batch_size]
            cb = None
            if callbacks:
                cb = callbacks_module.CallbackList(list(callbacks), self, {"verbose": verbose,
                                                                           "steps": -(-len(x) // batch_size)})
            if not self.built:
                self.build(x.shape[1:])
            if cb is not None:
                cb.on_test_begin({})
            logs = self._evaluate_arrays(x, y, batch_size, weights, cb)
            if cb is not None:
                cb.on_test_end(dict(logs))
            if verbose:
                print(" - ".join(f"{k}: {utils.format_number(v)}" for k, v in logs.items()))
            if return_dict:
                return logs
            values = list(logs.values())
            return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0, callbacks=None, steps=None):
        """Model outputs for ``x`` as a new array of shape (N, outputs). NaN inputs give NaN outputs.
        ``callbacks`` get the ``on_predict_*`` hooks (batches of ``batch_size``, default 32, as
        Keras); ``steps`` predicts only that many batches.

        ``batch_size=None`` runs up to 4096 rows at once; results do not depend on the batch size
        on the native backend (each output row is computed in the same order).
        """
        if self.__dict__.get("_untraced"):
            self._trace(x)
            return self.predict(x, batch_size=batch_size, verbose=verbose, callbacks=callbacks, steps=steps)
        with self._lock:
            batch_size = utils.check_batch_size(batch_size, allow_none=True)
            _check_verbose(verbose)
            x = self._prepare_x(x)
            if steps is not None:
                if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
                    raise ValueError(f"steps must be None or a positive integer, got {steps!r}")
                x = x[:steps * (batch_size or DEFAULT_BATCH_SIZE)]
            if callbacks:
                return self._predict_with_callbacks(x, batch_size or DEFAULT_BATCH_SIZE, list(callbacks))
            batch_size = batch_size or PREDICT_CHUNK
            cached = self._programs.get("predict")
            if (cached is not None and cached[1] is not None and len(x) <= batch_size
                    and cached[0] == tracking.count() and backend.get_backend() == "native"):
                # the common case first: recorded for this configuration, so built (any change
                # since, a layer's build included, would have moved the count)
                result = np.empty((len(x),) + cached[1].output_tail, dtype=self._dtype)
                cached[1].run_into(x, result)
                return result
            if not self.built:
                self.build(x.shape[1:])
            out_shape = self._output_shapes(self._input_shape)[-1]
            result = np.empty((len(x),) + out_shape, dtype=self._dtype)
            compiled = self._predict_program(x)
            if compiled is not None:  # the layers keep no reference to x: nothing to release
                if len(x) <= batch_size:
                    compiled.run_into(x, result)  # one native call, no slicing
                    return result
                for lo in range(0, len(x), batch_size):
                    xb = x[lo:lo + batch_size]
                    compiled.run_into(xb, result[lo:lo + len(xb)])
                return result
            try:
                for lo in range(0, len(x), batch_size):
                    result[lo:lo + batch_size] = self._forward(x[lo:lo + batch_size], training=False)
            finally:
                for layer in self._layers:
                    layer.release()
            return result

    def predict_on_batch(self, x):
        """Outputs for one batch ``x`` (one forward pass)."""
        return self(x)

    @_releasing
    def __call__(self, x, training=False):
        """One forward pass over ``x`` in training or inference mode; returns a new array.

        ``training=True`` uses batch statistics in BatchNormalization (and updates its moving
        statistics) and drops units in Dropout, as in ``fit``; no weight is trained."""
        with self._lock:
            x = self._prepare_x(x)
            if training:
                self._check_training_batch(len(x))
            if not self.built:
                self.build(x.shape[1:])
            if not training and len(x):
                compiled = self._predict_program(x)  # one native call, as predict
                if compiled is not None:
                    out = np.empty((len(x),) + self._output_shapes(self._input_shape)[-1], self._dtype)
                    compiled.run_into(x, out)
                    return out
            return np.array(self._forward(x, training=bool(training)), copy=True)

    def _print_summary(self, lines, widths, rule, print_fn):
        """``summary``'s table rows (from the subclass) and the parameter totals under them."""
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        lines += ["=" * sum(widths), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        for line in lines:
            print_fn(line)

    # -- inspection: the training loss and its gradients, changing nothing -----------------------
    @_releasing
    def compute_gradients(self, x, y, sample_weight=None, *, return_loss=False):
        """The gradients of the training loss on the batch (x, y) with respect to each trainable
        weight, at the current weights and in training mode, as a step of ``fit`` computes them
        (the same forward pass, loss, backward passes and weight penalties, on the active backend's
        kernels) -- without updating anything.

        Returns new arrays lined up with ``trainable_weights`` (the model's, layer by layer); with
        ``return_loss=True``, ``(loss, gradients)``, where ``loss`` is the float ``fit`` minimizes
        on this batch: the compiled loss (weighted by ``sample_weight[N]`` as in ``fit``) plus the
        layers' weight and activity penalties -- what ``train_on_batch`` would report. The model is
        left exactly as it was: weights, gradient arrays (``layer.grads``), optimizer state,
        BatchNormalization's moving statistics and each random layer's stream (Dropout draws the
        same mask at every call until the model trains). Inputs are checked as ``fit`` checks them
        (RuntimeError when not compiled, ValueError/TypeError for data that does not fit, a 'step'
        activation, or a batch too small for BatchNormalization) before anything changes; an
        unbuilt model is built for ``x``, as ``fit`` builds it. Thread-safe like every public
        method: the call holds the model's lock. Used by ``fastnn.callbacks.GradientHealth`` and
        ``fastnn.utils.gradient_check``; ``compute_loss`` evaluates the loss alone."""
        with self._lock:
            return_loss = _flag(return_loss, "return_loss")
            x, y = self._prepare_xy(x, y)
            weights = data_adapter.sample_weights(y, len(x), sample_weight, None, x.dtype)
            self._check_trainable()
            self._check_training_batch(len(x))
            if not self.built:
                self.build(x.shape[1:])
            with self._left_as_it_was():
                loss, grad, _ = self._loss_and_outputs(x, y, True, weights)
                self._backward(grad, self._fused())
                loss = float(loss) + float(self._regularization_loss(add_grads=True))
                grads = [g.copy() for g in self._grads]
            return (loss, grads) if return_loss else grads

    @_releasing
    def compute_loss(self, x, y, *, sample_weight=None, training=True):
        """The loss ``fit`` minimizes on the batch (x, y), as a float: the compiled loss (weighted
        by ``sample_weight[N]`` as in ``fit``) plus the layers' weight and activity penalties, from
        one forward pass at the current weights -- what ``compute_gradients(x, y,
        return_loss=True)`` returns as its loss, without the backward pass.

        ``training=True`` (the default) runs the layers in training mode, as ``fit`` does:
        BatchNormalization normalizes with the batch statistics and Dropout drops units. Nothing
        changes (moving statistics and random streams are put back), so calls at the same weights
        give the same value -- the same Dropout mask -- and a central difference
        ``(compute_loss at w + e) - (compute_loss at w - e)`` differentiates exactly the function
        whose gradient ``compute_gradients`` returns. ``training=False`` gives the inference-mode
        loss, ``evaluate``'s over one batch. Keras 3 has a ``compute_loss`` too, given the
        predictions ``y_pred``; this one runs the forward pass itself (there is no ``y_pred``).
        Inputs are checked as in ``compute_gradients`` before anything changes; the call holds the
        model's lock."""
        with self._lock:
            training = _flag(training, "training")
            x, y = self._prepare_xy(x, y)
            weights = data_adapter.sample_weights(y, len(x), sample_weight, None, x.dtype)
            if training:
                self._check_trainable()
                self._check_training_batch(len(x))
            if not self.built:
                self.build(x.shape[1:])
            with self._left_as_it_was(grads=False):
                loss, _, _ = self._loss_and_outputs(x, y, training, weights)
                return float(loss) + float(self._regularization_loss())

    def _left_as_it_was(self, grads=True):
        """A context that puts back what a forward and backward pass disturb: each layer's state
        (random streams), the non-trainable weights (moving statistics) and (``grads``) the
        gradient arrays."""
        return _Restored(self, grads)

    @_releasing
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns the batch loss, or ``[loss, *metrics]``, or a dict
        with ``return_dict``. ``sample_weight`` and ``class_weight`` weight the loss as in fit."""
        with self._lock:
            x, y = self._prepare_xy(x, y)
            weights = data_adapter.sample_weights(y, len(x), sample_weight, class_weight, x.dtype)
            self._check_trainable()
            self._check_training_batch(len(x))
            if not self.built:
                self.build(x.shape[1:])
            metrics = self._make_metrics(self._output_shapes(self._input_shape)[-1])
            loss, outputs = self._train_step(x, y, weights, want_outputs=bool(metrics))
            for m in metrics:
                m.update_state(y, outputs)
            if return_dict:
                return {"loss": loss, **{m.name: m.result() for m in metrics}}
            return loss if not metrics else [loss] + [m.result() for m in metrics]

    # -- weights and description ----------------------------------------------------------------
    def get_weights(self):
        """Copies of all weight arrays, layer by layer in Keras order."""
        with self._lock:
            return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Replace all weights; checks every shape before changing any."""
        with self._lock:
            weights = list(weights)
            current = [w for layer in self._layers for w in layer.weights]
            if len(weights) != len(current):
                raise ValueError(f"{self.name} has {len(current)} weight arrays, got {len(weights)}")
            for i, (cur, new) in enumerate(zip(current, weights)):
                new = np.asarray(new)
                if new.shape != cur.shape:
                    raise ValueError(f"weight {i} must have shape {cur.shape}, got {new.shape}")
                if new.dtype.kind not in "fiu":
                    raise TypeError(f"weight {i} must be numeric, got dtype {new.dtype}")
                utils.check_fits_dtype(new, f"weight {i}", cur.dtype)
            for cur, new in zip(current, weights):
                cur[...] = new

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    # -- files ----------------------------------------------------------------------------------
    def export(self, filepath, format="onnx", **kwargs):
        """Write the model for serving, as Keras 3's ``export``: ``format="onnx"`` (fastnn.export)."""
        from . import export
        return export.export(self, filepath, format, **kwargs)

    def to_torch(self):
        """A PyTorch ``nn.Module`` (eval mode) computing this model's outputs (fastnn.export)."""
        from . import export
        return export.to_torch(self)

    def save(self, filepath, include_optimizer=True):
        """Write the whole model to one file: architecture, compile settings, weights and (with
        ``include_optimizer``) the optimizer state. Atomic; see ``fastnn.saving``."""
        with self._lock:
            saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath):
        """Write only the weights to one file (atomically); read back with ``load_weights``."""
        with self._lock:
            saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Replace the weights with those in ``filepath`` (from ``save_weights`` or ``save``);
        raises ``saving.ModelFileError`` and changes nothing when the file is bad or does not fit."""
        with self._lock:
            saving.load_weights(self, filepath)

    def count_params(self):
        return sum(layer.count_params() for layer in self._layers)

    # -- Keras model methods ---------------------------------------------------------------------
    def _predict_with_callbacks(self, x, batch_size, cbs):
        cb = callbacks_module.CallbackList(cbs, self, {"verbose": 0, "steps": -(-len(x) // batch_size)})
        cb.on_predict_begin({})
        parts = []
        for i, lo in enumerate(range(0, len(x), batch_size)):
            cb.on_predict_batch_begin(i, {})
            out = self.predict(x[lo:lo + batch_size], batch_size=batch_size)
            cb.on_predict_batch_end(i, {"outputs": out})
            parts.append(out)
        cb.on_predict_end({})
        if not parts:
            return self.predict(x)
        return np.concatenate(parts)

    @property
    def trainable(self):
        """False freezes every layer (no weight is trained, BatchNormalization runs in inference
        mode), as Keras's ``model.trainable = False``; True unfreezes them all."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        with self._lock:
            self._trainable = bool(value)
            for layer in self._layers:
                layer.trainable = bool(value)

    @property
    def metrics_names(self):
        """``["loss", *metric names]``: the order of ``evaluate``'s and ``train_on_batch``'s lists."""
        if self.loss is None:
            return []
        shape = self._output_shapes(self._input_shape)[-1] if self._input_shape is not None else (2,)
        return ["loss"] + [m.name for m in self._make_metrics(shape)]

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``fastnn.models.model_from_json`` reads it back)."""
        return json.dumps({"class_name": self._CONFIG_CLASS, "config": self.get_config(),
                           "backend": "fastnn"}, **kwargs)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch, as ``evaluate`` over it."""
        return self.evaluate(x, y, batch_size=max(len(np.asarray(x)), 1), sample_weight=sample_weight,
                             return_dict=return_dict)

    # -- pickling and copying -------------------------------------------------------------------
    def __getstate__(self):
        """Everything but the lock, the recorded programs (native objects pointing into this model's
        arrays) and the scratch buffers: the copy recreates them on first use, from its own arrays."""
        state = dict(self.__dict__)
        for key in ("_lock", "_programs", "_buffers"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        object.__setattr__(self, "_lock", threading.RLock())
        _MODELS.add(self)
        for layer in self._layers:
            if layer.__dict__.get("_model") is None:
                object.__setattr__(layer, "_model", weakref.ref(self))
        object.__setattr__(self, "_programs", {})
        object.__setattr__(self, "_buffers", {})



class Sequential(Model):
    """A linear stack of layers: ``Sequential([Dense(128, activation="relu"), Dense(10)])``.

    Weights are created when the input shape becomes known: from ``Input(shape=...)``, from
    ``input_shape=``/``input_dim=`` on the first layer, from ``build(input_shape)``, or from the
    first batch given to ``fit``/``predict``. Training, evaluation and files are ``Model``'s.
    """
    _CONFIG_CLASS = "Sequential"

    def __init__(self, layers=None, name=None):
        self._layers = []
        self._input_shape = None
        self._shapes = None  # output shape of each layer for _input_shape, once built
        self._dtype = None
        super().__init__(name=name or _auto_name("Sequential"))
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------------------------
    def add(self, layer):
        """Append ``layer``; builds it at once when the model's input shape is known."""
        with self._lock:
            node = getattr(layer, "node", None)  # keras.Input(...): a tensor made by an InputLayer
            if node is not None and isinstance(node.layer, InputLayer) and not isinstance(layer, Layer):
                layer = node.layer
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential.add expects a fastnn layer, got {type(layer).__name__}")
            if isinstance(layer, InputLayer):
                if self._layers or self._input_shape is not None:
                    raise ValueError("Input(...) must come first in a Sequential model")
                self._input_shape = layer.input_shape_arg
                return
            if any(layer is l for l in self._layers):
                raise ValueError(f"layer {layer.name!r} is already in this model")
            owner = layer.__dict__.get("_model")
            owner = owner() if owner is not None else None
            if owner is not None and owner is not self and owner._lock is not self._lock:
                # A layer keeps per-call buffers: models that share a layer share one lock, so
                # that calls on them never run at once.
                if any(l.__dict__.get("_model") is not None and l.__dict__["_model"]() is self
                       for l in self._layers):
                    raise ValueError(f"layer {layer.name!r} belongs to model {owner.name!r}; a model can "
                                     "share layers with another only when the shared layers come first "
                                     "(build a new layer and copy the weights with set_weights instead)")
                shared_lock = owner._lock
            if getattr(layer, "return_state", False):
                raise ValueError(f"{layer.name} ({type(layer).__name__}) has return_state=True, which "
                                 "gives several outputs; a Sequential model passes one array from "
                                 "layer to layer (call the layer directly for its states)")
            if layer.built and self._input_shape is None and not self._layers:
                self._input_shape = layer.input_shape
            input_shape = self._input_shape
            if input_shape is None and not self._layers and layer.input_shape_arg is not None:
                input_shape = layer.input_shape_arg
            if input_shape is not None:
                self._output_shapes(input_shape, self._layers + [layer])  # raises before any change
            self._layers.append(layer)
            if owner is None:
                object.__setattr__(layer, "_model", weakref.ref(self))
            elif owner is not self and owner._lock is not self._lock:
                object.__setattr__(self, "_lock", shared_lock)
            tracking.changed()
            self._shapes = None
            self._input_shape = input_shape
            if input_shape is not None:
                self._build_layers()

    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        if self._input_shape is None:
            return False
        for layer in self._layers:  # a loop, not all(...): predict at batch 1 asks every call
            if not layer.built:
                return False
        return True

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + self._input_shape

    @property
    def output_shape(self):
        if self._input_shape is None:
            return None
        return (None,) + self._output_shapes(self._input_shape)[-1]

    def build(self, input_shape):
        """Create all weights for inputs of ``input_shape``, e.g. ``(None, 784)`` or ``(784,)``."""
        with self._lock:
            try:
                shape = tuple(input_shape)
            except TypeError:
                raise ValueError(f"input_shape must be a tuple such as (None, 784), got {input_shape!r}") from None
            if shape and shape[0] is None:
                shape = shape[1:]
            if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0
                                for s in shape):
                raise ValueError(f"input_shape must be (None, d1, ...) with positive integer sizes, "
                                 f"got {input_shape!r}")
            shape = tuple(int(s) for s in shape)
            if self._input_shape is not None and shape != self._input_shape:
                raise ValueError(f"{self.name} is built for inputs {_shape_str(self._input_shape)}, "
                                 f"got build({input_shape!r})")
            self._output_shapes(shape)
            self._input_shape = shape
            self._build_layers()

    def _output_shapes(self, input_shape, layers=None):
        """Output shape of each layer for ``input_shape``; ValueError naming the first misfit."""
        if layers is None and self._shapes is not None and input_shape == self._input_shape:
            return self._shapes
        shapes, shape = [], tuple(input_shape)
        for layer in self._layers if layers is None else layers:
            if layer.built and shape != layer.input_shape:
                raise ValueError(f"layer {layer.name} is built for inputs {_shape_str(layer.input_shape)}, "
                                 f"but receives {_shape_str(shape)}")
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes or [tuple(input_shape)]

    def _build_layers(self):
        self._shapes = None
        shape = self._input_shape
        dtype_before = self._dtype
        if self._dtype is None:
            built = [l.dtype for l in self._layers if l.built]
            self._dtype = built[0] if built else np.dtype(backend.floatx())
        fresh = []
        try:
            for layer in self._layers:
                if not layer.built:
                    fresh.append(layer)
                    layer.dtype = self._dtype
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)
        except BaseException:
            # A failed build (MemoryError, a bad initializer) leaves no half-built layer behind:
            # the model is as before the call, and a later build can succeed.
            for layer in fresh:
                layer._unbuild()
            self._dtype = dtype_before
            self._input_shape = None if all(not l.built for l in self._layers) else self._input_shape
            raise
        self._shapes = self._output_shapes(self._input_shape)  # cached: every call needs them

    def _forward(self, x, training, logits=False):
        object.__setattr__(self, "_eager", True)  # the layers now hold arrays: release them
        last = len(self._layers) - 1
        for i, layer in enumerate(self._layers):
            x = layer.forward(x, training=training, logits=logits and i == last)
        return x

    def _backward(self, grad, logits=False):
        """The layers' backward passes from dL/d(output) ``grad``, last layer first, down to the
        first layer with trainable weights (whose input gradient nobody needs)."""
        object.__setattr__(self, "_eager", True)
        with_weights = [i for i, l in enumerate(self._layers) if l.trainable_weights]
        first = with_weights[0] if with_weights else len(self._layers)
        last = len(self._layers) - 1
        for i in range(last, first - 1, -1):
            grad = self._layers[i].backward(grad, need_dx=i > first, logits=logits and i == last)

    def summary(self, print_fn=None):
        """Print a Keras-style table of layers, output shapes and parameter counts."""
        if self._input_shape is None:
            raise ValueError(f"{self.name} has not been built yet: give the first layer input_shape=..., "
                             "start with Input(shape=...), call build(), or fit it on data first")
        print_fn = print_fn or print
        names = [f"{layer.name} ({type(layer).__name__})" for layer in self._layers]
        widths = (max([33] + [len(n) + 2 for n in names]), 26, 12)  # long names widen the column
        rule = "_" * sum(widths)
        lines = [f'Model: "{self.name}"', rule,
                 f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}",
                 "=" * sum(widths)]
        for name, layer, shape in zip(names, self._layers, self._output_shapes(self._input_shape)):
            lines.append(f"{name:<{widths[0]}}{_shape_str(shape):<{widths[1]}}{layer.count_params():>{widths[2]},}")
        self._print_summary(lines, widths, rule, print_fn)

    def get_config(self):
        layers = [{"class_name": type(l).__name__, "config": l.get_config()} for l in self._layers]
        if self._input_shape is not None:
            layers.insert(0, {"class_name": "InputLayer", "config": {"input_shape": list(self._input_shape)}})
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config):
        return cls([layer_from_config(c) for c in config["layers"]], name=config.get("name"))

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` (as in ``model.layers``)."""
        if (name is None) == (index is None):
            raise ValueError(f"get_layer needs exactly one of name= or index=, got name={name!r}, "
                             f"index={index!r}")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral) \
                    or not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"index {index!r} is out of range: {self.name} has "
                                 f"{len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in {self.name}; its layers are "
                         f"{[l.name for l in self._layers]}")

    def pop(self):
        """Remove and return the last layer (compile again before training: the optimizer's
        state belongs to the old weights)."""
        with self._lock:
            if not self._layers:
                raise TypeError(f"{self.name} has no layers to pop")
            layer = self._layers.pop()
            tracking.changed()
            self._shapes = None
            if self._input_shape is not None and self._layers:
                self._shapes = self._output_shapes(self._input_shape)
            return layer




def model_from_json(json_string, custom_objects=None):
    """The model described by ``model.to_json()`` (fresh weights)."""
    try:
        data = json.loads(json_string)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_from_json expects the JSON string of model.to_json(): {exc}") from None
    if isinstance(data, dict) and data.get("class_name") == "Functional" and "config" in data:
        from .functional import Functional
        return Functional.from_config(data["config"])
    if not isinstance(data, dict) or data.get("class_name") != "Sequential" or "config" not in data:
        raise ValueError("model_from_json reads Sequential models written by to_json (a JSON object "
                         f"with class_name 'Sequential' and a config), got {str(json_string)[:80]!r}")
    return Sequential.from_config(data["config"])


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same layers' configuration and new weights (initialised afresh), as
    Keras's ``clone_model``; copy weights with ``clone.set_weights(model.get_weights())``."""
    if type(model).__name__ == "Functional" and clone_function is None and input_tensors is None:
        return type(model).from_config(model.get_config())
    if not isinstance(model, Sequential):
        raise TypeError(f"clone_model expects a Sequential or functional model, got {type(model).__name__}")
    if input_tensors is not None:
        raise ValueError("clone_model: input_tensors is for functional models, which fastnn has not")
    if clone_function is None:
        return Sequential.from_config(model.get_config())
    clone = Sequential(name=model.name)
    if model._input_shape is not None:
        clone.add(InputLayer(shape=model._input_shape))
    for layer in model.layers:
        clone.add(clone_function(layer))
    return clone


def load_model(filepath, compile=True):
    """The model saved with ``model.save(filepath)``: identical predictions and, with the optimizer
    state in the file, identical continued training. Never runs code from the file."""
    return saving.load_model(filepath, compile=compile)


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose

