"""fastnn's float32 GEMM beside NumPy's matmul (OpenBLAS) on square and MLP-shaped products."""
import numpy as np
import pytest

import fastnn

SHAPES = [(64, 64, 64), (128, 128, 128), (512, 512, 512), (1024, 1024, 1024),
          (512, 256, 784),   # forward of 784-256 at batch 512: (512x784) @ (784x256)
          (32, 128, 784)]    # forward of 784-128 at batch 32


@pytest.mark.parametrize("impl", ["fastnn", "numpy"])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_sgemm(benchmark, impl, m, n, k):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    fastnn.ops.gemm(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    benchmark.group = f"sgemm {m}x{k} @ {k}x{n}"
    benchmark.extra_info["gflop"] = 2 * m * n * k / 1e9
    if impl == "fastnn":
        benchmark(fastnn.ops.gemm, a, b, c)
    else:
        benchmark(np.matmul, a, b, out=c)
