"""Optimizer update rules, applied in place, and the gradient transforms before them.

Each update function updates ``param`` and its state arrays (velocity,
moments) in place and returns None.  The rules follow Keras exactly, so a
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


def adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step):
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

    Shapes: param, grad, m, v: any shape, all equal.  ``param``, ``m`` and
    ``v`` are updated in place.
    No defaults here: the caller passes the optimizer's hyper-parameters
    (Keras defaults are learning_rate=0.001, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7; the paper uses epsilon=1e-8).
    """
    m[...] = beta_1 * m + (1 - beta_1) * grad
    v[...] = beta_2 * v + (1 - beta_2) * (grad * grad)
    lr_t = learning_rate * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    param -= lr_t * m / (np.sqrt(v) + epsilon)
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
