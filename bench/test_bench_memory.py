"""Peak memory of a training run: no more than the optimizer state, the compiled plan's buffers
(a few floats per layer output and sample), the shuffled batch copy and the GEMM workspaces.

The bound below is that accounting with room for the allocator; README.md gives the measured
figures. Linux only (peak resident memory from /proc)."""
import sys

import pytest

from fastnn.tools import benchmark as fb

SIZES = (784, 256, 256, 10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc (Linux)")
@pytest.mark.parametrize("batch", [32, 512, 2048])
def test_training_peak_memory_is_state_plus_one_batch_of_buffers(batch):
    growth, params = fb.training_peak_memory(SIZES, batch=batch, samples=8 * batch if batch > 512 else 4096,
                                             epochs=1)
    floats = 4
    adam_state = 2 * params * floats
    plan_buffers = 4 * batch * sum(SIZES[1:]) * floats + batch * SIZES[0] * floats
    batch_copy = batch * SIZES[0] * floats
    workspaces = 6 * 2 ** 20  # GEMM packing buffers, thread stacks touched, allocator slack
    bound = adam_state + plan_buffers + batch_copy + workspaces
    print(f"batch {batch}: peak growth {growth / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB")
    assert 0 < growth <= bound, f"peak growth {growth / 2**20:.1f} MiB over the bound {bound / 2**20:.1f} MiB"
