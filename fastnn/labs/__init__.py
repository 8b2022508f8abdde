"""Labs: every experiment of the course notes as a one-command lesson that measures and draws.

``python -m fastnn lab NAME [--quick] [--out DIR] [--lang en|ko] [--mnist DIR]`` runs one,
``python -m fastnn lab --list`` lists them; from Python, ``fastnn.labs.NAME(quick=False,
out=None, lang="en")`` (``-`` in a name becomes ``_``) returns a :class:`LabResult` with
``.claims`` (claim -> did the measurement hold), ``.numbers``, ``.figures`` (PNG paths) and
``.text``. ``quick=True`` runs in seconds on small built-in data and still measures every claim.
Figures need matplotlib (the ``plot`` extra); without it the labs run and say figures were skipped.
"""
from ._base import LANGS, REGISTRY, LabResult
from .basics import activations, depth, linear_collapse, perceptron
from .gradients import backprop, initialization, vanishing_gradients
from .training import batchnorm, hyperparameters, optimizers, overfitting_dropout, regularization
from .evaluation import batching, metrics
from .rnn import recurrent

ORDER = ("perceptron", "linear-collapse", "depth", "activations", "vanishing-gradients",
         "overfitting-dropout", "batchnorm", "initialization", "optimizers", "batching",
         "backprop", "regularization", "metrics", "hyperparameters", "recurrent")
assert set(ORDER) == set(REGISTRY), "every registered lab is in ORDER"


def names():
    """The lab names in the order of the course."""
    return list(ORDER)


def get(name):
    """The lab function called ``name`` (``-`` or ``_``); ValueError naming the labs otherwise."""
    key = str(name).replace("_", "-")
    if key not in REGISTRY:
        raise ValueError(f"unknown lab {name!r}; the labs are: {', '.join(ORDER)}")
    return REGISTRY[key]


def run(name, **kwargs):
    """Run the lab ``name`` with ``quick``, ``out``, ``lang``, ``mnist``; returns its LabResult."""
    return get(name)(**kwargs)


__all__ = ["LabResult", "get", "names", "run"] + [n.replace("-", "_") for n in ORDER]
