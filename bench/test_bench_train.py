"""One training step (forward, softmax cross-entropy, backward, Adam) of 784-128-10 per backend."""
import numpy as np
import pytest

import fastnn
from fastnn import benchmark as fb


@pytest.mark.parametrize("batch", [1, 32, 512])
@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_train_step(benchmark, backend, batch):
    rng = np.random.default_rng(batch)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    reference, model = fb.mlp((784, 128, 10)), fb.mlp((784, 128, 10))
    with fastnn.backend_scope("numpy"):
        expected = reference.train_on_batch(x, y)
    with fastnn.backend_scope(backend):
        assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-5)
        benchmark.group = f"train step 784-128-10, batch {batch}"
        benchmark.extra_info["samples"] = batch
        benchmark(model.train_on_batch, x, y)
