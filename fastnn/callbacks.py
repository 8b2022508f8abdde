"""Callbacks: hooks that ``fit`` calls around epochs and batches, with ``self.model`` set.

Set ``self.model.stop_training = True`` in a hook to end training after the current batch.
Keras's callbacks, with its arguments and semantics: ``History`` (returned by fit), ``EarlyStopping``,
``ReduceLROnPlateau``, ``LearningRateScheduler``, ``TerminateOnNaN``, ``ModelCheckpoint``,
``CSVLogger``, ``LambdaCallback``; and ``GradientHealth`` (per-layer gradient diagnostics).
"""
import csv
import math
import numbers
import os
import re
import string
import sys
import warnings

import numpy as np


class Callback:
    """Base class with Keras's hooks; override the ones you need."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass

    # Keras's aliases for the training-batch hooks.
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def _check_fit(self, log_keys):
        """Called by ``fit`` while it checks its arguments, before anything changes or trains:
        ``log_keys`` are the keys every epoch's logs will hold. Raise to refuse the fit."""


def _log_keys(metric_names, validation, callbacks):
    """The keys of fit's epoch logs: the loss and metric names, their ``val_`` twins with
    validation data, and ``learning_rate`` when a callback that adds it (LearningRateScheduler,
    ReduceLROnPlateau) is among ``callbacks`` (those that run before the one asking)."""
    keys = ["loss", *metric_names]
    if validation:
        keys += ["val_" + k for k in keys]
    if any(isinstance(cb, (LearningRateScheduler, ReduceLROnPlateau)) for cb in callbacks):
        keys.append("learning_rate")
    return keys


def _check_directory(path, what):
    """The directory that will hold ``path`` exists or can be created (its nearest existing
    ancestor is a writable directory); a clear error otherwise."""
    directory = os.path.dirname(os.path.abspath(path))
    ancestor = directory
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: cannot write into {directory!r} ({ancestor!r} is not a writable "
                         "directory)")
    return directory


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the loss per epoch; returned by fit."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path=None, keys=None):
        """Plot each metric per epoch (with its ``val_`` curve on the same axes), one panel per
        metric; saves to ``path`` (PNG, SVG... by extension) or shows the figure. Needs matplotlib.
        Returns the matplotlib Figure."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        names = keys or [k for k in self.history if not k.startswith("val_")]
        if not names:
            raise ValueError("History is empty: nothing to plot (did fit run any epoch?)")
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            if name not in self.history:
                raise ValueError(f"no {name!r} in the history; recorded: {sorted(self.history)}")
            ax.plot(epochs, self.history[name], marker="o", label=name)
            if "val_" + name in self.history:
                ax.plot(epochs, self.history["val_" + name], marker="o", label="val_" + name)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
            plt.close(fig)
        else:
            plt.show()
        return fig


MODES = ("auto", "min", "max")


def _check_mode(mode, who):
    if mode not in MODES:
        raise ValueError(f"{who} mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _metric_direction(model, monitor):
    """"up" or "down": the direction in which ``monitor`` improves, decided as Keras does for
    mode="auto" -- the loss goes down, and each compiled metric has its own direction (accuracy,
    precision, recall, AUC, F1, R2 go up; errors and log loss go down). None when unknown."""
    from . import metrics as metrics_module
    name = monitor[len("val_"):] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "down"
    loss = getattr(model, "loss", None)
    shape = getattr(model, "output_shape", None)
    shape = tuple(shape[1:]) if shape else (1,)
    for identifier in getattr(model, "_metric_ids", []):
        metric = metrics_module.get(identifier, loss, shape)
        if metric.name == name:
            return metric.direction
    return None


class _MonitorCallback(Callback):
    """What EarlyStopping, ReduceLROnPlateau and ModelCheckpoint share (Keras's MonitorCallback):
    the monitored key, its direction and the improvement test. With mode="auto" the direction is
    resolved at the first epoch end, once the model's metrics are known. The first value seen is
    always an improvement (even NaN, after which nothing improves on it), as in Keras."""

    def __init__(self, monitor, mode, min_delta, who):
        super().__init__()
        self.monitor, self.mode = monitor, _check_mode(mode, who)
        self.min_delta = abs(float(min_delta))
        self.monitor_op = None
        self._who = who

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            direction = _metric_direction(self.model, self.monitor)
            if direction is None:
                raise ValueError(f"{self._who} monitors {self.monitor!r}, whose direction fastnn cannot "
                                 "tell (it is neither the loss nor a compiled metric with a known "
                                 "direction); pass mode='max' to keep the highest value or mode='min' "
                                 "to keep the lowest")
            mode = "max" if direction == "up" else "min"
        self.monitor_op = np.less if mode == "min" else np.greater

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        delta = -self.min_delta if self.monitor_op is np.less else self.min_delta
        return bool(self.monitor_op(value - delta, reference))


def _get_lr(model, who):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise RuntimeError(f"{who} needs a compiled model with an optimizer")
    return float(optimizer.learning_rate)


def _check_settable_lr(model, who):
    _get_lr(model, who)
    schedule = model.optimizer.learning_rate_schedule
    if schedule is not None:
        raise TypeError(f"{who} cannot change the learning rate of an optimizer driven by a "
                        f"{type(schedule).__name__} schedule; use a float learning_rate")


def _set_lr(model, value, who):
    optimizer = model.optimizer
    _check_settable_lr(model, who)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{who}: the learning rate must be a positive finite number, got {value!r}")
    optimizer.learning_rate = float(value)


class EarlyStopping(_MonitorCallback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Improvement means beating the best value so far by more than ``min_delta``; the first value
    is the first best. With ``baseline``, the patience counter restarts only when the value also
    beats the baseline. Epochs before ``start_from_epoch`` are ignored.
    ``restore_best_weights=True`` puts back the weights of the best epoch when training ends,
    whether or not it stopped early. ``mode="auto"`` takes the direction of the monitored metric
    (see :func:`_metric_direction`).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        self.patience = _non_negative_int(patience, "patience")
        self.start_from_epoch = _non_negative_int(start_from_epoch, "start_from_epoch")
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping monitors {self.monitor!r}, which is not in the logs "
                          f"(available: {', '.join(sorted(logs or {}))})", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first epoch counts as best so far
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement of
    ``monitor`` (by more than ``min_delta``), then wait ``cooldown`` epochs; never below ``min_lr``.
    Keras defaults: factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0; ``mode="auto"``
    takes the direction of the monitored metric."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta, "ReduceLROnPlateau")
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in [0, 1), got {factor!r}")
        self.factor, self.verbose = float(factor), verbose
        self.patience = _non_negative_int(patience, "patience")
        self.cooldown = _non_negative_int(cooldown, "cooldown")
        self.min_lr = float(min_lr)
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        _check_settable_lr(self.model, "ReduceLROnPlateau")
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _get_lr(self.model, "ReduceLROnPlateau")
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau monitors {self.monitor!r}, which is not in the logs "
                          f"(available: {', '.join(sorted(logs))})", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = _get_lr(self.model, "ReduceLROnPlateau")
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    _set_lr(self.model, new, "ReduceLROnPlateau")
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), as Keras does; epochs count from 0."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable schedule, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_train_begin(self, logs=None):
        _check_settable_lr(self.model, "LearningRateScheduler")

    def on_epoch_begin(self, epoch, logs=None):
        lr = _get_lr(self.model, "LearningRateScheduler")
        try:
            new = self.schedule(epoch, lr)
        except TypeError:  # a schedule of the epoch only (Keras accepts both)
            new = self.schedule(epoch)
        _set_lr(self.model, new, "LearningRateScheduler")
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model, "LearningRateScheduler")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite, printing where it happened."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Epoch {self._epoch + 1}, batch {batch}: invalid loss {loss}, terminating training",
                  file=sys.stdout)
            self.model.stop_training = True


class ModelCheckpoint(_MonitorCallback):
    """Save the model (``model.save``) or its weights (``save_weights_only=True``) at the end of each
    epoch; ``filepath`` may hold ``{epoch}`` (1-based) and log keys, e.g. ``"m-{epoch:02d}-{val_loss:.2f}.fnn"``.
    With ``save_best_only`` a file is written only when ``monitor`` improves on the best so far
    (the first epoch always does); ``mode="auto"`` takes the direction of the monitored metric."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", initial_value_threshold=None):
        super().__init__(monitor, mode, 0, "ModelCheckpoint")
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.best = initial_value_threshold
        from . import saving  # the extension chooses the format: checked now, not after an epoch
        saving._keras_extension(self.filepath, weights=self.save_weights_only)

    def _check_fit(self, log_keys):
        """The file name's fields are ``epoch`` or log keys and their formats fit their values;
        the directory can be made (it is created, as Keras does, when the first file is saved)."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f is not None]
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} is not a valid format "
                             f"string: {exc}") from None
        for field in fields:
            key = re.split(r"[.\[]", field, maxsplit=1)[0]
            if key != "epoch" and key not in log_keys:
                raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} names {{{field}}}, but "
                                 f"the logs will hold only epoch, {', '.join(log_keys)}")
        try:
            path = self.filepath.format(epoch=1, **{k: 0.5 for k in log_keys})
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} cannot be formatted with "
                             f"an epoch number and the logs' floats: {exc}") from None
        _check_directory(path, "ModelCheckpoint")

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint monitors {self.monitor!r}, which is not in the logs "
                              f"(available: {', '.join(sorted(logs))}); skipping", stacklevel=2)
                return
            if not self._is_improvement(current, self.best):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current}, "
                      f"saving model to {path}")
            self.best = current
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file: a header ``epoch,<keys...>`` then one row per epoch."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, bool(append)
        self._keys = None

    def _check_fit(self, log_keys):
        directory = os.path.dirname(os.path.abspath(self.filename))
        if not os.path.isdir(directory):  # as Keras, the logger does not create directories
            raise ValueError(f"CSVLogger: the directory of {self.filename!r} does not exist")
        if os.path.isdir(self.filename) or not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError(f"CSVLogger: cannot write the file {self.filename!r}")

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new_file = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch"] + self._keys)
            writer.writerow([epoch] + [logs.get(k, "NA") for k in self._keys])


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.
    Accepts on_train_begin/end(logs), on_epoch_begin/end(epoch, logs), on_batch_begin/end(batch, logs)
    and on_train_batch_begin/end(batch, logs)."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin",
              "on_batch_end", "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}; expected one of "
                                f"{', '.join(self._HOOKS)}")
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback {name} must be callable, got {fn!r}")
                setattr(self, name, fn)


RELU_FAMILY = ("relu", "relu6")      # units that output exactly 0 below their threshold
SATURATING = ("sigmoid", "hard_sigmoid", "tanh")


class GradientHealth(Callback):
    """Per-layer gradient diagnostics, measured at the end of every epoch on a fixed probe batch
    ``(x, y)`` (a few hundred samples; copied, the caller's arrays are not kept) and added to the
    epoch's logs, so that ``History`` records them:

    - ``LAYER/grad_norm``: the norm of the training loss's gradient with respect to the layer's
      trainable weights (all of them as one vector), from ``model.compute_gradients`` -- nothing
      is updated;
    - ``LAYER/update_ratio``: ``||w_end - w_start|| / ||w_start||`` over the epoch, how far the
      optimizer moved the layer's weights relative to their size;
    - ``LAYER/dead_fraction`` (ReLU layers): the fraction of units that output 0 for every probe
      sample (inference mode) -- they pass no gradient and no longer learn;
    - ``LAYER/saturated_fraction`` (sigmoid and tanh layers): the fraction of outputs within
      ``saturation`` of the function's limits (0 or 1; -1 or 1), where its derivative is near 0.

    A ``UserWarning`` names the layer when its gradient norm is below ``vanishing`` or above
    ``exploding`` (or not finite), once per layer and kind per ``fit``. ``measure()`` returns the
    gradient and activation figures for the model as it is now (e.g. before training), as
    ``{layer name: {figure: value}}``. Training itself is untouched: the measurement runs
    between epochs, and costs one forward and backward pass of the probe batch per epoch."""

    def __init__(self, x, y, vanishing=1e-6, exploding=1e3, saturation=0.01, verbose=0):
        super().__init__()
        for name, value in (("vanishing", vanishing), ("exploding", exploding)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"GradientHealth {name} must be a positive number, got {value!r}")
        if not vanishing < exploding:
            raise ValueError(f"GradientHealth needs vanishing < exploding, got {vanishing!r} and "
                             f"{exploding!r}")
        if (isinstance(saturation, bool) or not isinstance(saturation, numbers.Real)
                or not 0 < saturation < 0.5):
            raise ValueError(f"GradientHealth saturation must be a number in (0, 0.5), got {saturation!r}")
        x, y = np.array(x, copy=True), np.array(y, copy=True)
        if x.ndim < 2 or len(x) == 0 or len(x) != len(y):
            raise ValueError("GradientHealth needs a probe batch x (at least 2-D, one row per sample) "
                             f"and y with as many rows; got x of shape {x.shape} and y of shape "
                             f"{y.shape}")
        self.x, self.y = x, y
        self.vanishing, self.exploding = float(vanishing), float(exploding)
        self.saturation, self.verbose = float(saturation), verbose
        self._start, self._warned = None, set()

    def measure(self):
        """Gradient norms and activation fractions of the model now: {layer name: {figure: value}}."""
        model = self.model
        if model is None:
            raise RuntimeError("GradientHealth.measure needs a model: call set_model(model) first "
                               "(fit does it)")
        grads = iter(model.compute_gradients(self.x, self.y))
        out = {}
        h = self.x
        for layer in model.layers:
            figures = {}
            n = len(layer.trainable_weights)
            if n:
                g = [next(grads) for _ in range(n)]
                figures["grad_norm"] = float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in g)))
            h = layer(h)  # inference mode: the layer's output on the probe batch
            act = getattr(getattr(layer, "activation", None), "name", None)
            if act in RELU_FAMILY:
                rows = h.reshape(-1, h.shape[-1])
                figures["dead_fraction"] = float(np.mean(np.all(rows <= 0, axis=0)))
            elif act in SATURATING:
                low = -1.0 if act == "tanh" else 0.0
                width = 1.0 - low
                s = self.saturation * width
                figures["saturated_fraction"] = float(np.mean((h <= low + s) | (h >= 1.0 - s)))
            if figures:
                out[layer.name] = figures
        return out

    def on_train_begin(self, logs=None):
        self._warned = set()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = {layer.name: [w.copy() for w in layer.trainable_weights]
                       for layer in self.model.layers if layer.trainable_weights}

    def on_epoch_end(self, epoch, logs=None):
        figures = self.measure()
        for layer in self.model.layers:
            start = (self._start or {}).get(layer.name)
            if start is not None and layer.name in figures:
                moved = sum(np.sum(np.square(w - w0, dtype=np.float64))
                            for w, w0 in zip(layer.trainable_weights, start))
                size = sum(np.sum(np.square(w0, dtype=np.float64)) for w0 in start)
                figures[layer.name]["update_ratio"] = float(np.sqrt(moved) / max(np.sqrt(size), 1e-30))
        for name, values in figures.items():
            for key, value in values.items():
                if logs is not None:
                    logs[f"{name}/{key}"] = value
            norm = values.get("grad_norm")
            if norm is None:
                continue
            if not (math.isfinite(norm) and norm <= self.exploding):
                where = "not finite" if not math.isfinite(norm) else f"above exploding={self.exploding:g}"
                self._warn(name, "exploding", f"gradient norm of layer {name} is {norm:.3g} at epoch "
                           f"{epoch + 1}, {where}: gradients explode (lower "
                           "the learning rate or the initial weights' scale, or clip gradients with "
                           "clipnorm=)")
            elif norm < self.vanishing:
                self._warn(name, "vanishing", f"gradient norm of layer {name} is {norm:.3g} at epoch "
                           f"{epoch + 1}, below vanishing={self.vanishing:g}: gradients vanish (try "
                           "ReLU, He or Glorot initialization, or batch normalization)")
        if self.verbose:
            for name, values in figures.items():
                print(f"GradientHealth epoch {epoch + 1} {name}: "
                      + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))

    def _warn(self, layer, kind, message):
        if (layer, kind) not in self._warned:
            self._warned.add((layer, kind))
            warnings.warn(f"GradientHealth: {message}", UserWarning, stacklevel=2)


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


class CallbackList:
    """Dispatches each hook to every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances, got {cb!r}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        """``self.on_...(*args)`` calls that hook of every callback that overrides it, in order (an
        ``on_train_batch_*`` hook also calls ``on_batch_*``). The methods are looked up once per
        list, so a fit whose callbacks have no batch hooks pays nothing per step."""
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        methods = self._overriding(hook)

        def call(*args):
            for method in methods:
                method(*args)
        self.__dict__[hook] = call  # later lookups find it without __getattr__
        return call

    def _overriding(self, hook):
        methods = []
        for cb in self.callbacks:
            names = [hook] + ([hook.replace("train_", "")] if hook.startswith("on_train_batch") else [])
            for name in names:
                method = getattr(cb, name)
                if getattr(method, "__func__", None) is not getattr(Callback, name, None):
                    methods.append(method)  # overridden (or set on the instance)
        return methods

    def wants(self, hook):
        """Whether any callback overrides ``hook`` (fit skips a batch's logs nobody reads)."""
        return bool(self._overriding(hook))
