"""Optimizer update rules, applied in place, and the gradient transforms before them.

Each update function updates ``param`` and its state arrays (velocity,
moments, accumulators) in place and returns None.  In order of increasing
complexity: SGD, AdaGrad, RMSprop, Adam (and AMSGrad), plus the decoupled
weight decay that Keras 3 applies before any of them (AdamW).  The rules follow Keras exactly, so a
model trained here matches one trained with the same Keras optimizer.
The transforms (gradient norms, clipping, L1/L2 weight penalties) are
what Keras applies between computing the gradients and the update.
"""

import math

import numpy as np

from ._out import _into


def sgd_update(param, grad, velocity, learning_rate, momentum=0.0, nesterov=False):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    Formula (Keras ``SGD``)::

        momentum == 0:   param -= learning_rate * grad
        otherwise:       velocity = momentum * velocity - learning_rate * grad
                         param += velocity                                   (classical)
                         param += momentum * velocity - learning_rate * grad (nesterov)

    Classical momentum: Polyak 1964; the Nesterov form is the reformulation
    of Sutskever et al. 2013, "On the importance of initialization and
    momentum in deep learning" (ICML), section 2.1, as used by Keras.

    Shapes: param, grad, velocity: any shape, all equal.  ``velocity`` may
    be None when ``momentum == 0`` (it is then not touched).
    Defaults: ``momentum=0.0, nesterov=False``, the Keras ``SGD`` defaults.
    """
    if momentum == 0:
        param -= learning_rate * grad
        return None
    velocity[...] = momentum * velocity - learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity
    return None


def adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, v_hat=None):
    """One Adam step (Kingma & Ba 2014, "Adam: A Method for Stochastic
    Optimization", arXiv:1412.6980), in the form Keras uses.

    Formula, with ``step`` = t counting this update (1 on the first call)::

        m    = beta_1 * m + (1 - beta_1) * grad
        v    = beta_2 * v + (1 - beta_2) * grad**2
        lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        param -= lr_t * m / (sqrt(v) + epsilon)

    Why this differs from the textbook algorithm: Algorithm 1 of the paper
    bias-corrects both moments, ``m_hat = m / (1 - beta_1**t)`` and
    ``v_hat = v / (1 - beta_2**t)``, then steps by
    ``learning_rate * m_hat / (sqrt(v_hat) + epsilon)``.  Section 2 of the
    paper notes that the two corrections can be folded into the step size
    ``lr_t`` above, with epsilon then added to the *uncorrected* sqrt(v);
    the paper calls that constant "epsilon hat".  Keras implements this
    folded form.  It equals the textbook form with
    ``epsilon = epsilon_hat / sqrt(1 - beta_2**t)``, so the two agree
    whenever sqrt(v) is much larger than epsilon and differ slightly when
    v is tiny (early steps, near-zero gradients).

    AMSGrad (Reddi, Kale & Kumar 2018, "On the Convergence of Adam and
    Beyond", ICLR, https://openreview.net/forum?id=ryQu7f-RZ), Keras's
    ``amsgrad=True``: pass ``v_hat`` (zeros at first); the step then divides
    by the largest second moment seen so far, so the effective step size
    never grows::

        v_hat = maximum(v_hat, v)
        param -= lr_t * m / (sqrt(v_hat) + epsilon)

    Shapes: param, grad, m, v, v_hat: any shape, all equal.  ``param``,
    ``m``, ``v`` (and ``v_hat``) are updated in place.
    No defaults here: the caller passes the optimizer's hyper-parameters
    (Keras defaults are learning_rate=0.001, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7; the paper uses epsilon=1e-8).
    """
    m[...] = beta_1 * m + (1 - beta_1) * grad
    v[...] = beta_2 * v + (1 - beta_2) * (grad * grad)
    lr_t = learning_rate * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        param -= lr_t * m / (np.sqrt(v_hat) + epsilon)
    else:
        param -= lr_t * m / (np.sqrt(v) + epsilon)
    return None


def adagrad_update(param, grad, accumulator, learning_rate, epsilon):
    """One AdaGrad step (Duchi, Hazan & Singer 2011, "Adaptive Subgradient
    Methods for Online Learning and Stochastic Optimization", JMLR 12,
    https://jmlr.org/papers/v12/duchi11a.html), in Keras's form.

    Formula (Keras ``Adagrad``)::

        accumulator += grad**2
        param -= learning_rate * grad / sqrt(accumulator + epsilon)

    Each weight gets its own step size, shrinking with the sum of its
    squared gradients so far: rarely-updated weights keep large steps.
    The sum only grows, so the steps decay to zero in long runs (the
    problem RMSprop fixes).

    Shapes: param, grad, accumulator: any shape, all equal; ``param`` and
    ``accumulator`` are updated in place.
    Keras defaults: learning_rate=0.001, initial_accumulator_value=0.1 (the
    accumulator's starting value), epsilon=1e-7.
    """
    accumulator += grad * grad
    param -= learning_rate * grad / np.sqrt(accumulator + epsilon)
    return None


def rmsprop_update(param, grad, velocity, average_grad, momentum_velocity, learning_rate, rho,
                   momentum, epsilon):
    """One RMSprop step (Hinton, Srivastava & Swersky, "Neural Networks for
    Machine Learning", lecture 6e, 2012,
    https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf),
    in Keras's form.

    Formula (Keras ``RMSprop``)::

        velocity = rho * velocity + (1 - rho) * grad**2
        centered (average_grad given; Graves 2013, arXiv:1308.0850, eq. 38):
            average_grad = rho * average_grad + (1 - rho) * grad
            denominator  = velocity - average_grad**2 + epsilon
        otherwise:
            denominator  = velocity + epsilon
        increment = learning_rate * grad / sqrt(denominator)
        momentum_velocity given:  momentum_velocity = momentum * momentum_velocity + increment
                                  param -= momentum_velocity
        otherwise:                param -= increment

    Unlike AdaGrad's sum, the running mean of squared gradients forgets
    old gradients, so the step size does not decay to zero.  Centering
    divides by an estimate of the gradient's variance instead of its
    second moment.

    Shapes: param, grad, velocity, average_grad, momentum_velocity: any
    shape, all equal; ``average_grad`` and ``momentum_velocity`` may be None
    (not centered; no momentum).  State arrays are updated in place.
    Keras defaults: learning_rate=0.001, rho=0.9, momentum=0.0,
    epsilon=1e-7, centered=False.
    """
    velocity[...] = rho * velocity + (1 - rho) * (grad * grad)
    if average_grad is not None:
        average_grad[...] = rho * average_grad + (1 - rho) * grad
        denominator = velocity - average_grad * average_grad
    else:
        denominator = velocity
    increment = learning_rate * grad / np.sqrt(denominator + epsilon)
    if momentum_velocity is not None:
        momentum_velocity[...] = momentum * momentum_velocity + increment
        param -= momentum_velocity
    else:
        param -= increment
    return None


def weight_decay_update(param, learning_rate, weight_decay):
    """Decoupled weight decay, as every Keras 3 optimizer applies it before its update.

    Formula (Keras ``Optimizer._apply_weight_decay``)::

        param -= param * weight_decay * learning_rate

    Unlike an L2 penalty on the loss (whose gradient Adam would rescale), the decay shrinks every
    weight by the same factor whatever the optimizer does: Loshchilov & Hutter 2017/2019,
    "Decoupled Weight Decay Regularization", https://arxiv.org/abs/1711.05101 (AdamW).

    Shapes: param: any shape, updated in place.
    """
    param -= param * weight_decay * learning_rate
    return None


# -- gradient transforms: norms, clipping, weight penalties -------------------------------------

def sum_squares(x):
    """Sum of squares, ``sum_i x[i]**2``, accumulated in float64; returns a Python float.

    The squared L2 norm of one gradient; Keras's ``global_clipnorm`` adds these over all
    gradients before taking the square root.

    Shapes: x: any shape.
    """
    x64 = x.astype(np.float64).ravel()
    return float(np.dot(x64, x64))


def clip_gradient(grad, scale=1.0, clipvalue=math.inf, out=None):
    """Scale, then clip, a gradient elementwise.

    Formula::

        out = clip(scale * grad, -clipvalue, clipvalue)

    Keras's three clipping options (``keras.optimizers.Optimizer``) are all of this form:

    * ``clipnorm=c``:        scale = c / max(||g||, c)   per gradient (clipvalue = inf)
    * ``global_clipnorm=c``: scale = c / max(sqrt(sum over all gradients of ||g||**2), c)
    * ``clipvalue=v``:       scale = 1, clipvalue = v

    so the direction of a norm-clipped gradient is kept and only its length is capped
    (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks",
    https://arxiv.org/abs/1211.5063, section 3.2).

    Shapes: grad, out: any shape, equal. ``out`` may be ``grad`` (in place).
    """
    return _into(out, np.clip(scale * grad, -clipvalue, clipvalue), grad.dtype)


def l1_l2_penalty(w, l1, l2, grad=None):
    """L1 and L2 weight penalty and, if ``grad`` is given, its gradient added into ``grad``.

    Formula (Keras ``regularizers.L1L2``)::

        penalty = l1 * sum_i |w[i]| + l2 * sum_i w[i]**2
        grad   += l1 * sign(w) + 2 * l2 * w              (sign(0) = 0)

    L1 (the lasso) pushes weights to exactly zero; L2 (ridge, "weight decay") shrinks them in
    proportion to their size. The penalty is added to the loss, so minimising the total trades
    data fit against weight size.

    Shapes: w, grad: any shape, equal. ``grad`` is ACCUMULATED into (it already holds the data
    loss's gradient). Returns the penalty as a Python float (summed in float64).
    """
    if grad is not None:
        grad += l1 * np.sign(w) + 2 * l2 * w
    w64 = w.astype(np.float64).ravel()
    return float(l1 * np.abs(w64).sum() + l2 * np.dot(w64, w64))


# -- Scalars of a training step (what a recorded program keeps in registers) ----------------------
def scalar_add(a, b):
    """``a + b`` in float64: a loss plus its weight penalties."""
    return float(a) + float(b)


def scalar_sqrt(x):
    """``sqrt(x)`` in float64: a gradient norm from its sum of squares."""
    return math.sqrt(x)


def norm_scale(norm, clip):
    """Keras's clipnorm factor ``clip / max(norm, clip)``: 1 for a short gradient, ``clip / norm``
    for a long one. A NaN norm gives NaN and an infinite one 0, so (as in Keras) inf entries become
    NaN, never finite."""
    if math.isnan(norm):
        return math.nan
    return clip / max(norm, clip)


def global_norm_scale(norm, clip):
    """:func:`norm_scale` for the global norm of all gradients; an infinite or NaN global norm
    makes every gradient NaN (Keras)."""
    return norm_scale(norm, clip) if math.isfinite(norm) else math.nan


def nadam_update(param, grad, m, v, u_product, learning_rate, beta_1, beta_2, epsilon, step):
    """One Nadam step (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), Keras 3's form,
    ``step`` = t counting this update::

        u_t  = beta_1 (1 - 0.5 * 0.96**t);   u_t1 = beta_1 (1 - 0.5 * 0.96**(t + 1))
        u_product *= u_t                      (the product of every u so far; starts at 1)
        m += (grad - m) (1 - beta_1);   v += (grad**2 - v) (1 - beta_2)
        m_hat = u_t1 m / (1 - u_product u_t1) + (1 - u_t) grad / (1 - u_product)
        param -= learning_rate * m_hat / (sqrt(v / (1 - beta_2**t)) + epsilon)

    ``u_product`` is a one-element array per weight (Keras keeps one for the optimizer; the values
    are the same). The coefficients are computed in float64 and rounded to the dtype once.
    Shapes: param, grad, m, v: any, all equal; u_product: (1,).
    """
    u_t = beta_1 * (1.0 - 0.5 * 0.96 ** step)
    u_t1 = beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))
    u_product[0] = float(u_product[0]) * u_t
    prod = float(u_product[0])
    dt = param.dtype.type
    c_m, c_g = dt(u_t1 / (1.0 - prod * u_t1)), dt((1.0 - u_t) / (1.0 - prod))
    c_v = dt(1.0 / (1.0 - beta_2 ** step))
    m[...] = m + (grad - m) * dt(1.0 - beta_1)
    v[...] = v + (grad * grad - v) * dt(1.0 - beta_2)
    m_hat = c_m * m + c_g * grad
    param -= dt(learning_rate) * m_hat / (np.sqrt(v * c_v) + dt(epsilon))
    return None


def adamax_update(param, grad, m, u, learning_rate, beta_1, beta_2, epsilon, step):
    """One Adamax step (Kingma & Ba 2014, arXiv:1412.6980, section 7.1), Keras 3's form::

        m += (grad - m) (1 - beta_1)
        u  = maximum(beta_2 u, |grad|)               (the infinity norm of the past gradients)
        param -= learning_rate / (1 - beta_1**t) * m / (u + epsilon)

    Shapes: param, grad, m, u: any, all equal.
    """
    dt = param.dtype.type
    c = dt(learning_rate / (1.0 - beta_1 ** step))
    m[...] = m + (grad - m) * dt(1.0 - beta_1)
    u[...] = np.maximum(dt(beta_2) * u, np.abs(grad))
    param -= c * m / (u + dt(epsilon))
    return None


def adadelta_update(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon):
    """One Adadelta step (Zeiler 2012, arXiv:1212.5701), Keras 3's form (with a learning rate,
    default 0.001)::

        accumulated_grad = rho accumulated_grad + (1 - rho) grad**2
        delta = -sqrt(accumulated_delta + epsilon) * grad / sqrt(accumulated_grad + epsilon)
        accumulated_delta = rho accumulated_delta + (1 - rho) delta**2
        param += learning_rate * delta

    Shapes: all equal.
    """
    dt = param.dtype.type
    r, r1 = dt(rho), dt(1.0 - rho)
    accumulated_grad[...] = r * accumulated_grad + r1 * grad * grad
    delta = -(np.sqrt(accumulated_delta + dt(epsilon)) * grad) / np.sqrt(accumulated_grad + dt(epsilon))
    accumulated_delta[...] = r * accumulated_delta + r1 * delta * delta
    param += dt(learning_rate) * delta
    return None


def lion_update(param, grad, m, learning_rate, beta_1, beta_2):
    """One Lion step (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
    arXiv:2302.06675), Keras 3's form::

        param -= learning_rate * sign(beta_1 m + (1 - beta_1) grad)
        m = beta_2 m + (1 - beta_2) grad

    Every weight moves by exactly the learning rate (or not at all where the sign is 0).
    Shapes: all equal.
    """
    dt = param.dtype.type
    c = dt(beta_1) * m + dt(1.0 - beta_1) * grad
    param -= dt(learning_rate) * np.sign(c)
    m[...] = dt(beta_2) * m + dt(1.0 - beta_2) * grad
    return None
