"""The ``out=`` convention shared by every reference kernel."""
import numpy as np


def _into(out, value, dtype):
    """Write ``value`` into ``out`` if given (and return ``out``), else return it as ``dtype``."""
    if out is None:
        return np.asarray(value, dtype=dtype)
    out[...] = value
    return out
