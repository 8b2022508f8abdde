"""One training step (forward, softmax cross-entropy, backward, Adam) per model and backend.

Each native step (one call of the compiled plan) sits beside the NumPy reference backend's in the
same group, after a check that both give the same loss on the same inputs. Steps cycle through a
pool of batches (fastnn.tools.benchmark.batch_pool) so that no model memorises its data.
"""
import itertools

import pytest

import fastnn
from fastnn.tools import benchmark as fb


@pytest.mark.parametrize("sizes,activation", fb.TRAIN_MODELS,
                         ids=["-".join(map(str, s)) + "-" + a for s, a in fb.TRAIN_MODELS])
@pytest.mark.parametrize("batch", [1, 8, 32, 512, 2048])
@pytest.mark.parametrize("backend", fastnn.backend.BACKENDS)
def test_train_step(benchmark, backend, batch, sizes, activation):
    pool = fb.batch_pool(sizes, batch, n_batches=4)
    reference, model = fb.mlp(sizes, activation), fb.mlp(sizes, activation)
    x, y = pool[0]
    with fastnn.backend_scope("numpy"):
        expected = reference.train_on_batch(x, y)
    with fastnn.backend_scope(backend):
        assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-5)
        if backend == "native":
            assert model._programs["train"][1] is not None  # timed through the recorded program
        benchmark.group = f"train step {'-'.join(map(str, sizes))} {activation}, batch {batch}"
        benchmark.extra_info["samples"] = batch
        batches = itertools.cycle(pool)
        benchmark(lambda: model.train_on_batch(*next(batches)))
