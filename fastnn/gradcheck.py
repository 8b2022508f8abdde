"""Gradient checking: compare backpropagation with central differences, weight by weight.

Backpropagation (the chain rule applied layer by layer, from the loss back to the first weights)
is fast but easy to get subtly wrong; a finite difference of the loss is slow but needs nothing
but the forward pass. When the two agree, the backward passes are right.
``fastnn.utils.gradient_check(model, x, y)`` makes that comparison for a whole compiled model,
through the model's public seam alone: ``model.compute_gradients(x, y, return_loss=True)`` for
backpropagation and ``model.compute_loss(x, y)`` for the finite differences (both change nothing
and check x and y as ``fit`` does), ``model.trainable_weights`` / ``layer.weight_names`` for what
to perturb, ``model.dtype`` for the float64 requirement.
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

    - analytic ``a``: ``model.compute_gradients(x, y, return_loss=True)``, the model's forward
      pass in training mode, then each layer's ``backward`` from the last layer to the first, as a
      training step does (but no optimizer update);
    - numerical ``n``: for each checked entry ``w[i]``, the central difference
      ``n[i] = (L(w[i] + epsilon) - L(w[i] - epsilon)) / (2 * epsilon)``, each ``L`` one
      ``model.compute_loss(x, y)``;

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

    The check runs in training mode: BatchNormalization uses the batch statistics (each call of
    the seam puts its moving statistics back) and each Dropout layer draws one mask, the same for
    every evaluation (each call puts its random stream back). The model is left as it was:
    weights (each perturbed entry is put back bitwise, even on an exception), moving statistics,
    dropout state, gradient arrays and optimizer state; fastnn's random generator is not used.
    The kernels are the active backend's: inside ``with fastnn.backend_scope("numpy"):`` the check
    exercises the NumPy reference instead. Each evaluation holds the model's lock, but between
    evaluations one weight entry is perturbed in place: do not use the model from another thread
    while it is being checked.

    Args:
        model: a built, compiled fastnn model (``Sequential``, functional ``Model(inputs,
            outputs)``, recurrent layers included) with float64 weights. Build it after
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
        TypeError: ``model`` is not a fastnn model, or x/y are not numeric.
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
    _check_model(model)
    # x and y are checked here, before anything changes (ValueError / TypeError)
    loss, analytic = model.compute_gradients(x, y, return_loss=True)
    by_id = {id(w): g for w, g in zip(model.trainable_weights, analytic)}
    rng = np.random.default_rng(seed)
    delta = ROUNDING_MARGIN * FLOAT64_EPS * max(abs(loss), 1.0) / epsilon
    errors = {}
    for layer in model.layers:
        trainable = {id(w) for w in layer.trainable_weights}
        if not trainable:
            continue
        errors[layer.name] = {}
        for name, w in zip(layer.weight_names, layer.weights):
            if id(w) not in trainable:
                continue
            index = _entries(w.size, max_params_per_weight, rng)
            n = _numerical_gradient(model, x, y, w, index, epsilon)
            errors[layer.name][name] = _error(by_id[id(w)].reshape(-1)[index], n, delta)
    if per_weight:
        return errors
    return {layer: max(by_weight.values()) for layer, by_weight in errors.items()}


def _error(a, n, delta):
    """``||a - n|| / max(||a|| + ||n||, tiny)``, or 0 when both norms are within the resolution."""
    norm_a, norm_n = np.linalg.norm(a), np.linalg.norm(n)
    if max(norm_a, norm_n) <= np.sqrt(a.size) * delta:
        return 0.0
    return float(np.linalg.norm(a - n) / max(norm_a + norm_n, TINY))


# -- the numerical gradient -----------------------------------------------------------------------
def _numerical_gradient(model, x, y, w, index, epsilon):
    """Central differences of the training loss (``model.compute_loss``, which changes nothing and
    so draws the same Dropout mask every time) at the flat entries ``index`` of weight array ``w``.
    Each entry is put back bitwise, whatever happens."""
    n = np.empty(len(index))
    for k, at in enumerate(zip(*np.unravel_index(index, w.shape))):
        original = w[at]
        try:
            w[at] = original + epsilon  # in place: the layer computes with this very array
            plus = model.compute_loss(x, y)
            w[at] = original - epsilon
            minus = model.compute_loss(x, y)
        finally:
            w[at] = original
        n[k] = (plus - minus) / (2 * epsilon)
    return n


def _entries(size, cap, rng):
    """Flat indices to check: all ``size`` of them, or ``cap`` distinct ones in increasing order."""
    if cap is None or size <= cap:
        return np.arange(size)
    return np.sort(rng.choice(size, cap, replace=False))


# -- validation at the boundary -------------------------------------------------------------------
def _check_model(model):
    """ValueError unless the model can be checked (x and y are ``compute_gradients``'s to check)."""
    if model.loss is None:
        raise ValueError(f"gradient_check needs a compiled model (its loss is what gets "
                         f"differentiated); {model.name} is not compiled: call "
                         f"model.compile(loss=...) first")
    if not model.built:
        raise ValueError(f"gradient_check needs a built model (it checks the weights the model has); "
                         f"{model.name} is not built: give the first layer input_shape=..., start "
                         f"with Input(shape=...) or call model.build(x.shape[1:]) first")
    if model.dtype != np.float64:
        raise ValueError(f"gradient_check needs a float64 model, got {model.name} with {model.dtype} "
                         f"weights (float32 rounding is as large as the finite differences): call "
                         f"fastnn.set_floatx('float64') before building the model, or rebuild it in "
                         f"float64 as help(fastnn.utils.gradient_check) shows")
    names = [layer.name for layer in model.layers]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"gradient_check reports errors by layer name, and {model.name} has more than "
                         f"one layer named {', '.join(map(repr, twice))}; give its layers unique names")


def _positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)
