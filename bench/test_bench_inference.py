"""predict() per batch size for 784-128-10, native beside the NumPy reference backend.

Run: pytest bench --benchmark-only --benchmark-group-by=group   (per-sample time = mean / batch).
Each case first checks that the native output matches the reference on the same inputs.
"""
import numpy as np
import pytest

import fastnn
from fastnn.tools import benchmark as fb

BATCHES = fb.BATCH_SIZES


@pytest.fixture(scope="module")
def model():
    return fb.mlp((784, 128, 10))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_predict(benchmark, model, backend, batch):
    x = np.random.default_rng(batch).random((batch, 784), dtype=np.float32)
    with fastnn.backend_scope("numpy"):
        expected = model.predict(x)
    with fastnn.backend_scope(backend):
        np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
        benchmark.group = f"predict 784-128-10, batch {batch}"
        benchmark.extra_info["samples"] = batch
        benchmark(model.predict, x, batch_size=batch)
