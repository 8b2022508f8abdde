"""One training step of a recurrent model (row-by-row MNIST shape: 28 steps of 28 features, 64
units, Dense(10, softmax), Adam) per cell, batch size and backend.

Each native step sits beside the NumPy reference backend's in the same group, after a check that
both give the same loss on the same batch. The whole-job comparison against PyTorch, each
framework in its own process, is `bench/recurrent_mnist.py`.
"""
import itertools

import numpy as np
import pytest

import fastnn
from fastnn import layers

CELLS = ["SimpleRNN", "LSTM", "GRU"]


def _model(cell):
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Input(shape=(28, 28)), getattr(layers, cell)(64),
                               layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("batch", [1, 64, 256])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_recurrent_train_step(benchmark, backend, cell, batch):
    rng = np.random.default_rng(batch)
    pool = [(rng.random((batch, 28, 28), dtype=np.float32), rng.integers(0, 10, batch))
            for _ in range(4)]
    reference, model = _model(cell), _model(cell)
    with fastnn.backend_scope("numpy"):
        expected = reference.train_on_batch(*pool[0])
    with fastnn.backend_scope(backend):
        assert model.train_on_batch(*pool[0]) == pytest.approx(expected, rel=1e-4)
        if backend == "native":
            assert model._programs["train"][1] is not None  # timed through the recorded program
        benchmark.group = f"train step {cell}(64) on 28x28 sequences, batch {batch}"
        benchmark.extra_info["samples"] = batch
        batches = itertools.cycle(pool)
        benchmark(lambda: model.train_on_batch(*next(batches)))
