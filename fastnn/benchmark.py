"""Timing helpers shared by ``python -m fastnn demo`` and ``bench/report.py``.

Timings on a shared machine are noisy, so every figure is the median of repeated runs, and the
useful numbers are ratios measured in the same run (native vs the NumPy reference backend).
"""
import time

import numpy as np

from . import backend
from .layers import Dense
from .models import Sequential

BATCH_SIZES = (1, 8, 64, 512, 4096)


def median_time(fn, min_repeats=5, budget=0.2):
    """Median wall time of ``fn()`` over at least ``min_repeats`` calls or ``budget`` seconds."""
    fn()  # warm-up: buffers, caches, thread pool
    times, start = [], time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10_000:
            break
    return float(np.median(times))


def mlp(sizes, activation="relu", seed=0):
    """An untrained MLP with layer widths ``sizes`` (input first), softmax output, compiled with Adam."""
    from . import utils
    utils.set_random_seed(seed)
    layers = [Dense(n, activation=activation) for n in sizes[1:-1]]
    model = Sequential([Dense(sizes[1], activation=activation, input_dim=sizes[0])] + layers[1:]
                       + [Dense(sizes[-1], activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def predict_table(model, batch_sizes=BATCH_SIZES, budget=0.2, backends=backend.BACKENDS):
    """Rows ``(batch, {backend: seconds per sample})`` for ``predict`` at each batch size."""
    rng = np.random.default_rng(0)
    n_in = model.input_shape[1]
    inputs = {batch: rng.random((batch, n_in), dtype=np.float32) for batch in batch_sizes}
    times = {batch: {} for batch in batch_sizes}
    # One backend at a time: OpenBLAS's and OpenMP's worker threads both spin for a while after a
    # call, so alternating them on two cores would slow both down.
    for name in backends:
        with backend.backend_scope(name):
            for batch, x in inputs.items():
                times[batch][name] = median_time(lambda: model.predict(x, batch_size=batch), budget=budget) / batch
    return list(times.items())


def train_step_table(sizes, batch_sizes, budget=0.3, backends=backend.BACKENDS):
    """Rows ``(batch, {backend: samples per second})`` for ``train_on_batch`` of an MLP."""
    rng = np.random.default_rng(0)
    data = {b: (rng.random((b, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], b)) for b in batch_sizes}
    rates = {batch: {} for batch in batch_sizes}
    for name in backends:  # one backend at a time, as in predict_table
        with backend.backend_scope(name):
            for batch, (x, y) in data.items():
                model = mlp(sizes)
                rates[batch][name] = batch / median_time(lambda: model.train_on_batch(x, y), budget=budget)
    return list(rates.items())


def format_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
