"""Configuration changes, counted: what keeps a recorded program from going stale.

Layers, activations, losses, regularizers, optimizers and models derive from :class:`Tracked`.
Setting any attribute of one of them -- a Dropout's ``rate``, a Dense layer's ``activation``, a
``trainable`` flag, an optimizer's ``momentum`` or its state arrays -- advances one global
counter, except for the attributes a class lists in ``_RUNTIME`` (what changes while it runs: the
arrays a forward pass saves for backward, the optimizer's step count, the learning rate, which
every step passes in afresh). A recorded program remembers the count it was recorded at and is
recorded again when the count has moved, so no change of configuration can be missed, whoever
makes it and however. The check costs one integer comparison per step.
"""
_count = [0]


def count():
    """The number of configuration changes so far."""
    return _count[0]


def changed():
    """Record a change that is not an attribute assignment (a layer list edited in place)."""
    _count[0] += 1


class Tracked:
    """Base of every configurable object: attribute assignments count as changes, except those
    named in ``_RUNTIME``."""
    _RUNTIME = frozenset()

    def __setattr__(self, name, value):
        if name not in self._RUNTIME:
            _count[0] += 1
        object.__setattr__(self, name, value)
