"""The compiled training plan: a whole Sequential model handed to C++ once.

On the native backend, the first training step after ``compile`` describes the model -- its
layers, loss and optimizer -- to ``fastnn._core.TrainingPlan`` (csrc/plan.cpp). From then on a
step of ``fit`` or ``train_on_batch`` is a single native call: forward, loss, backward, weight
penalties, gradient clipping, weight decay and the optimizer update, over buffers the plan owns
(no allocation once the batch size repeats), with the GIL released. ``predict`` runs its
forward pass through the same plan.

The description is built from the layers themselves, and the plan points into their arrays
(weights, gradients, optimizer state, moving statistics, dropout streams), so the Python objects
stay the model: ``get_weights``, saving, callbacks and a later step on the layer-by-layer path all
see the plan's updates. The plan calls the same kernels in the same order as the layers do, so
both paths give bitwise-identical results (tests/test_plan.py holds them equal; the NumPy
backend, always layer by layer, agrees within rounding). One exception: a cross-entropy on
probabilities (no softmax/sigmoid to fuse with, and not from_logits) takes log(p) from the C
library in the plan and from NumPy on the layer path, which may differ in the last bit.

Every layer, loss and optimizer of fastnn has a plan entry; a model the plan cannot describe
(a user-defined layer or loss class, per-sample weights in ``fit``) trains layer by layer, with
the same results. A new layer type plugs in here (``_describe_layer``) and in csrc/plan.cpp.
"""
import math

import numpy as np

from . import backend
from . import layers as layers_module
from . import losses as losses_module
from . import optimizers as optimizers_module
from . import regularizers as regularizers_module

_ACTIVATION_LAYERS = (layers_module.Activation, layers_module.ReLU, layers_module.LeakyReLU,
                      layers_module.Softmax)
_LOSS_KERNELS = {
    losses_module.SparseCategoricalCrossentropy: "sparse_softmax_cross_entropy",
    losses_module.CategoricalCrossentropy: "softmax_cross_entropy",
    losses_module.BinaryCrossentropy: "sigmoid_binary_cross_entropy",
    losses_module.MeanSquaredError: "mean_squared_error",
    losses_module.MeanAbsoluteError: "mean_absolute_error",
    losses_module.Huber: "huber",
    losses_module.LogCosh: "log_cosh",
    losses_module.Hinge: "hinge",
    losses_module.KLDivergence: "kl_divergence",
}
_OPTIMIZERS = {optimizers_module.SGD: "sgd", optimizers_module.Adagrad: "adagrad",
               optimizers_module.RMSprop: "rmsprop", optimizers_module.Adam: "adam",
               optimizers_module.AdamW: "adam"}
# Optimizer attributes the plan copies; a change to any of them rebuilds the plan.
_OPTIMIZER_FIELDS = ("momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon", "amsgrad", "centered",
                     "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _activation(act):
    return {"activation": act.name, "alpha": act.alpha}


def _describe_layer(layer, in_shape, out_shape):
    """The plan entry for ``layer`` (plain values and the layer's own arrays), or None when the
    plan has no entry for its class (the model then trains layer by layer)."""
    kind = type(layer)
    entry = {"in_size": _size(in_shape), "out_size": _size(out_shape), "trainable": layer.trainable}
    if kind is layers_module.Dense:
        entry.update(kind="dense", W=layer.kernel, dW=layer.grads[0], **_activation(layer.activation))
        if layer.use_bias:
            entry.update(b=layer.bias, db=layer.grads[1])
    elif kind in _ACTIVATION_LAYERS:
        entry.update(kind="activation", **_activation(layer.activation))
    elif kind in (layers_module.BatchNormalization, layers_module.LayerNormalization):
        grads = iter(layer.grads)
        entry.update(kind="batchnorm" if kind is layers_module.BatchNormalization else "layernorm",
                     channels=int(in_shape[-1]), epsilon=layer.epsilon)
        if layer.scale:
            entry.update(gamma=layer.gamma, dgamma=next(grads))
        if layer.center:
            entry.update(beta=layer.beta, dbeta=next(grads))
        if kind is layers_module.BatchNormalization:
            entry.update(moving_mean=layer.moving_mean, moving_variance=layer.moving_variance,
                         momentum=layer.momentum)
    elif kind is layers_module.Dropout:
        entry.update(kind="dropout", rate=layer.rate, stream=layer._stream)
    elif kind is layers_module.Flatten:
        entry.update(kind="identity")
    else:
        return None
    return entry


def _describe_loss(model):
    loss = model.loss
    kernel = _LOSS_KERNELS.get(type(loss))
    if kernel is None:
        return None
    entry = {"kernel": kernel, "clip_eps": losses_module.EPSILON, "input": "direct", "fused": False}
    if model._fused():
        entry.update(input="logits", fused=True)
    elif isinstance(loss, (losses_module._CrossEntropy, losses_module.BinaryCrossentropy)):
        entry["input"] = "logits" if loss.from_logits else "probabilities"
    if isinstance(loss, losses_module.Huber):
        entry["param"] = loss.delta
    elif isinstance(loss, losses_module.KLDivergence):
        entry["param"] = losses_module.EPSILON
    elif hasattr(loss, "label_smoothing"):
        entry["param"] = loss.label_smoothing
    return entry


def _describe_optimizer(opt, params, grads):
    """The plan entry for ``opt`` (creating its state, as the first update would), or None."""
    kind = _OPTIMIZERS.get(type(opt))
    if kind is None:
        return None
    opt.build(params)
    if isinstance(opt, optimizers_module.SGD) and opt.momentum and opt._slots and opt._slots[0][0] is None:
        return None  # momentum set after the state was created without it: the layer path decides
    entry = {"kind": kind, "weight_decay": opt.weight_decay or 0.0, "clip": "none",
             "params": [dict(zip(("s0", "s1", "s2"), slots), p=p, g=g)
                        for p, g, slots in zip(params, grads, opt._slots)]}
    for name in ("momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon"):
        if hasattr(opt, name):
            entry[name] = getattr(opt, name)
    for clip, name in (("value", "clipvalue"), ("norm", "clipnorm"), ("global_norm", "global_clipnorm")):
        if getattr(opt, name) is not None:
            entry.update(clip=clip, clip_value=getattr(opt, name))
    return entry


class NativePlan:
    """A model's compiled plan and what it was built from (to know when it is out of date)."""

    def __init__(self, model, core_plan, key):
        self._core = core_plan
        self.key = key
        self._out_shape = model._output_shapes(model._input_shape)[-1]

    def train_step(self, x, y, learning_rate, step, want_outputs):
        """(loss, outputs or None) of one training step on (x, y); see Sequential._train_step."""
        loss = self._core.train_step(x, y, learning_rate, step, want_outputs)
        outputs = self._core.outputs(len(x)).reshape((len(x),) + self._out_shape) if want_outputs else None
        return loss, outputs

    def predict(self, x, out):
        """Inference-mode outputs of x written into out (both C-contiguous, the model's dtype)."""
        self._core.predict(x, out)


def plan_key(model):
    """What a plan depends on beyond the layer list (which only ``add`` changes): the loss and
    optimizer objects, the optimizer's state arrays and settings, and each layer's trainable flag."""
    opt = model.optimizer
    return (model.loss, opt, getattr(opt, "_slots", None),
            tuple(getattr(opt, f, None) for f in _OPTIMIZER_FIELDS),
            tuple(layer.trainable for layer in model._layers))


def same_key(a, b):
    return (a[0] is b[0] and a[1] is b[1] and a[2] is b[2] and a[3] == b[3] and a[4] == b[4])


# A plan that only predicts has no loss to compute and no weights to update.
_NO_LOSS = {"kernel": "mean_squared_error"}
_NO_OPTIMIZER = {"kind": "sgd", "params": []}


def build(model, inference_only=False):
    """A NativePlan for ``model`` (built, and compiled unless ``inference_only``), or None when
    the native backend is not active or some part of the model has no plan entry."""
    if backend.get_backend() != "native" or not model.built or not model._layers:
        return None
    if not inference_only and (model.optimizer is None or model.loss is None):
        return None
    from . import _core
    entries, shape = [], model._input_shape
    for layer, out_shape in zip(model._layers, model._output_shapes(model._input_shape)):
        entry = _describe_layer(layer, shape, out_shape)
        if entry is None:
            return None
        entries.append(entry)
        shape = out_shape
    if inference_only:
        core = _core.TrainingPlan(np.dtype(model._dtype).name, entries, _NO_LOSS, _NO_OPTIMIZER, [],
                                  len(entries))
        return NativePlan(model, core, None)
    regularized = [(i, w, g, reg) for i, layer in enumerate(model._layers) if layer.trainable
                   for w, g, reg in layer._regularized]
    if any(type(reg) not in (regularizers_module.L1, regularizers_module.L2, regularizers_module.L1L2)
           for _, _, _, reg in regularized):
        return None
    loss = _describe_loss(model)
    optimizer = None if loss is None else _describe_optimizer(model.optimizer, model._params, model._grads)
    if optimizer is None:
        return None
    penalties = [{"w": w, "g": g, "l1": reg.l1, "l2": reg.l2, "layer": i} for i, w, g, reg in regularized]
    with_weights = [i for i, layer in enumerate(model._layers) if layer.trainable_weights]
    first = with_weights[0] if with_weights else len(model._layers)
    core = _core.TrainingPlan(np.dtype(model._dtype).name, entries, loss, optimizer, penalties, first)
    return NativePlan(model, core, plan_key(model))


def check_learning_rate(opt):
    """The optimizer's next learning rate, checked as Optimizer.apply checks it."""
    lr = opt.learning_rate
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"the learning-rate schedule gave {lr!r} at step {opt.iterations}; "
                         "expected a finite non-negative number")
    return lr
