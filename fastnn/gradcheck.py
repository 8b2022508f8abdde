"""Gradient checking: compare backpropagation with central differences, weight by weight.

Backpropagation (the chain rule applied layer by layer, from the loss back to the first weights)
is fast but easy to get subtly wrong; a finite difference of the loss is slow but needs nothing
but the forward pass. When the two agree, the backward passes are right.
``fastnn.utils.gradient_check(model, x, y)`` makes that comparison for a whole compiled model.
"""
import numpy as np

from .models import Model

FLOAT64_EPS = np.finfo(np.float64).eps  # u = 2**-52, the gap between 1.0 and the next float64
# A central difference is off by truncation ~ eps**2 * |L'''| / 6 plus rounding ~ u * |L| / eps;
# the sum is smallest near eps = u ** (1/3) ~ 6e-6 (Nocedal & Wright, Numerical Optimization, 8.1).
EPSILON = 1e-5
# Measured on batches of 4 to 256 samples, both backends, losses of order 1 to 100: the rounding
# error of one central difference stays below u * max(|L|, 1) / eps. Ten times that is the resolution.
ROUNDING_MARGIN = 10
MAX_PARAMS_PER_WEIGHT = 100  # entries checked per weight array (two forward passes each)
TINY = np.finfo(np.float64).tiny  # smallest normal float64: makes 0 / 0 read as 0


def gradient_check(model, x, y, epsilon=EPSILON, max_params_per_weight=MAX_PARAMS_PER_WEIGHT,
                   per_weight=False, seed=0):
    """Relative error between the model's backpropagated gradients and central differences.

    For every trainable weight array ``w`` (Dense kernel and bias, normalization gamma and beta)
    this computes the gradient of the training loss ``L`` on ``(x, y)`` -- the sample mean of the
    compiled loss plus the regularization penalties, what ``fit`` minimizes -- in two ways:

    - analytic ``a``: the model's forward pass in training mode, then each layer's ``backward``
      from the last layer to the first, as a training step does (but no optimizer update);
    - numerical ``n``: for each checked entry ``w[i]``, the central difference
      ``n[i] = (L(w[i] + epsilon) - L(w[i] - epsilon)) / (2 * epsilon)``;

    and reports the norm-based relative error of each weight array::

        error = ||a - n|| / max(||a|| + ||n||, tiny)     (2-norms over the checked entries)

    It is 0 when the gradients agree exactly and 1 when one of them is zero and the other is not.
    Why the norm over the array rather than the largest entry-wise ``|a_i - n_i| / (|a_i| + |n_i|)``:
    an entry whose true gradient is almost zero has a central difference made of rounding noise
    alone, which entry-wise reads as a 100% error; the norm weighs each entry by its size, so it
    says how far the gradient *vector* is off.

    Reading it in float64: about 1e-7 or less, the backward pass is right; 1e-3 or more, it is
    wrong (a gradient scaled by 1.01 gives 5e-3, a missing one gives 1); in between, look closer:
    a kink (ReLU or an absolute value at 0, a probability at its clipping bound) within ``epsilon``
    of some input, or a small mistake diluted by a correct term such as a regularizer's gradient.

    Resolution: one central difference is exact to about ``delta = 10 * u * max(|L|, 1) / epsilon``
    (``u = 2**-52``; ``delta ~ 2e-10`` for a loss of order 1). When ``||a||`` and ``||n||`` are both
    below ``sqrt(m) * delta`` (``m`` entries checked) the two gradients are zero as far as the check
    can tell, and the error is 0. A Dense bias feeding BatchNormalization is such a weight: the
    batch mean subtracts it, so its true gradient is exactly zero. Small gradients in general (the
    first layers of a deep stack, where gradients vanish) raise the floor to about ``delta / |a_i|``:
    a larger ``epsilon`` (1e-4) lowers it, at the price of a larger truncation error.

    The check runs in training mode: BatchNormalization uses the batch statistics (its moving
    statistics are restored afterwards) and each Dropout layer draws one mask, the same for every
    evaluation (its step counter is held, then restored). The model is left as it was: weights,
    moving statistics, dropout state, gradient arrays and optimizer state; fastnn's random
    generator is not used. The kernels are the active backend's: inside
    ``with fastnn.backend_scope("numpy"):`` the check exercises the NumPy reference instead.

    Args:
        model: a built, compiled ``fastnn.Sequential`` with float64 weights. Build it after
            ``fastnn.set_floatx("float64")``: in float32 the rounding error of a central
            difference (~1e-7 * |L| / epsilon) is as large as the gradients. A float32 model
            raises ValueError rather than being copied, so that what is checked is the very model
            given (custom layers, a patched backward); the example shows the float64 rebuild.
        x: inputs of shape ``(N, ...)`` as ``fit`` takes them; a few dozen samples are plenty
            (every checked entry costs two forward passes over all of ``x``). BatchNormalization
            needs N >= 2.
        y: targets for the compiled loss, as ``fit`` takes them.
        epsilon: the central-difference step (default 1e-5, see above).
        max_params_per_weight: check at most this many entries of each weight array, drawn without
            replacement by ``numpy.random.default_rng(seed)`` (default 100; ``None``: every entry).
        per_weight: return ``{layer name: {weight name: error}}`` instead of one error per layer.
        seed: seed of the generator that picks the entries.

    Returns:
        ``{layer name: largest error over its trainable weights}`` in layer order. Layers without
        trainable weights (activations, Flatten, Dropout, frozen layers) have no entry: a wrong
        backward in one of them shows in the layers before it, whose gradients flow through it.

    Raises:
        TypeError: ``model`` is not a Sequential, or x/y are not numeric.
        ValueError: the model is not compiled, not built or not float64; x or y do not fit it;
            an argument is out of range. Nothing has changed when it raises.

    Example::

        import numpy as np
        import fastnn
        from fastnn.layers import Dense

        fastnn.set_floatx("float64")
        model = fastnn.Sequential([Dense(8, activation="tanh", input_shape=(4,)),
                                   Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(16, 4)), rng.integers(0, 3, size=16)
        errors = fastnn.utils.gradient_check(model, x, y)
        # about 1e-10 for each layer: max(errors.values()) < 1e-7, backprop is right

        # A float32 model `model32`: the same network, rebuilt in float64 with the same weights.
        fastnn.set_floatx("float64")
        model64 = fastnn.Sequential.from_config(model32.get_config())
        model64.compile(loss=model32.loss)
        model64.set_weights(model32.get_weights())
        fastnn.utils.gradient_check(model64, x, y)
    """
    if not isinstance(model, Model):
        raise TypeError(f"gradient_check expects a fastnn model (Sequential or Model), got "
                        f"{type(model).__name__}")
    epsilon = _positive_float(epsilon, "epsilon")
    if max_params_per_weight is not None:
        max_params_per_weight = _positive_int(max_params_per_weight, "max_params_per_weight")
    with model._lock:
        x, y = _prepare(model, x, y)
        checked = [(layer, [name for name, _, trainable in layer._weights if trainable])
                   for layer in model.layers if layer.trainable_weights]
        if not checked:
            return {}
        rng = np.random.default_rng(seed)
        snapshot = _Snapshot(model)
        try:
            loss, analytic = _analytic_gradients(model, x, y, snapshot)
            delta = ROUNDING_MARGIN * FLOAT64_EPS * max(abs(loss), 1.0) / epsilon
            errors = {}
            for (layer, names), grads in zip(checked, analytic):
                errors[layer.name] = {}
                for name, w, a in zip(names, layer.trainable_weights, grads):
                    index = _entries(w.size, max_params_per_weight, rng)
                    n = _numerical_gradient(model, x, y, w, index, epsilon, snapshot)
                    errors[layer.name][name] = _error(a.reshape(-1)[index], n, delta)
        finally:
            snapshot.restore()
    if per_weight:
        return errors
    return {layer: max(by_weight.values()) for layer, by_weight in errors.items()}


def _error(a, n, delta):
    """``||a - n|| / max(||a|| + ||n||, tiny)``, or 0 when both norms are within the resolution."""
    norm_a, norm_n = np.linalg.norm(a), np.linalg.norm(n)
    if max(norm_a, norm_n) <= np.sqrt(a.size) * delta:
        return 0.0
    return float(np.linalg.norm(a - n) / max(norm_a + norm_n, TINY))


# -- the two gradients ----------------------------------------------------------------------------
def _training_loss(model, x, y, snapshot):
    """L(x, y) as fit minimizes it: the mean loss in training mode plus the weight penalties."""
    snapshot.restore_states()  # each Dropout layer draws the same mask at every evaluation
    loss, _, _ = model._loss_and_outputs(x, y, training=True)
    return float(loss) + float(model._regularization_loss())


def _analytic_gradients(model, x, y, snapshot):
    """(L, [[dL/dw for each trainable weight] for each layer with trainable weights]) by the model's
    forward and backward passes, as ``Model._train_step`` computes them, without the update."""
    snapshot.restore_states()
    loss, grad, _ = model._loss_and_outputs(x, y, training=True)
    layers = model.layers
    model._backward(grad, logits=model._fused())
    loss = float(loss) + float(model._regularization_loss(add_grads=True))
    return loss, [[g.copy() for g in layer.grads] for layer in layers if layer.trainable_weights]


def _numerical_gradient(model, x, y, w, index, epsilon, snapshot):
    """Central differences of the training loss at the flat entries ``index`` of weight array ``w``."""
    n = np.empty(len(index))
    for k, at in enumerate(zip(*np.unravel_index(index, w.shape))):
        original = w[at]
        w[at] = original + epsilon  # in place: the layer computes with this very array
        plus = _training_loss(model, x, y, snapshot)
        w[at] = original - epsilon
        minus = _training_loss(model, x, y, snapshot)
        w[at] = original
        n[k] = (plus - minus) / (2 * epsilon)
    return n


def _entries(size, cap, rng):
    """Flat indices to check: all ``size`` of them, or ``cap`` distinct ones in increasing order."""
    if cap is None or size <= cap:
        return np.arange(size)
    return np.sort(rng.choice(size, cap, replace=False))


# -- leaving the model as it was ------------------------------------------------------------------
class _Snapshot:
    """Copies of what the check disturbs: every weight array (the perturbed entries,
    BatchNormalization's moving statistics), every gradient array, each layer's state (Dropout's
    step). Restored in place, so any other holder of those arrays sees the original values."""

    def __init__(self, model):
        self.layers = model.layers
        self.weights = [w.copy() for layer in self.layers for w in layer.weights]
        self.grads = [g.copy() for layer in self.layers for g in layer.grads]
        self.states = [layer.get_state() for layer in self.layers]

    def restore_states(self):
        for layer, state in zip(self.layers, self.states):
            layer.set_state(dict(state))

    def restore(self):
        self.restore_states()
        for w, saved in zip([w for layer in self.layers for w in layer.weights], self.weights):
            w[...] = saved
        for g, saved in zip([g for layer in self.layers for g in layer.grads], self.grads):
            g[...] = saved


# -- validation at the boundary -------------------------------------------------------------------
def _prepare(model, x, y):
    """(x, y) converted for the model, once the model is known to be checkable; changes nothing."""
    if model.loss is None:
        raise ValueError(f"gradient_check needs a compiled model (its loss is what gets "
                         f"differentiated); {model.name} is not compiled: call "
                         f"model.compile(loss=...) first")
    if not model.built:
        raise ValueError(f"gradient_check needs a built model (it checks the weights the model has); "
                         f"{model.name} is not built: give the first layer input_shape=..., start "
                         f"with Input(shape=...) or call model.build(x.shape[1:]) first")
    if model._dtype != np.float64:
        raise ValueError(f"gradient_check needs a float64 model, got {model.name} with {model._dtype} "
                         f"weights (float32 rounding is as large as the finite differences): call "
                         f"fastnn.set_floatx('float64') before building the model, or rebuild it in "
                         f"float64 as help(fastnn.utils.gradient_check) shows")
    names = [layer.name for layer in model.layers]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"gradient_check reports errors by layer name, and {model.name} has more than "
                         f"one layer named {', '.join(map(repr, twice))}; give its layers unique names")
    x, y = model._prepare_xy(x, y)
    model._check_trainable()
    model._check_training_batch(len(x))
    return x, y


def _positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)
