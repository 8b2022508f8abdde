"""Optimizer update rules, applied in place.

Each function updates ``param`` and its state arrays (velocity, moments)
in place and returns None.  The rules follow Keras exactly, so a model
trained here matches one trained with the same Keras optimizer.
"""

import math

import numpy as np


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
