"""Print the README's benchmark tables: ratios measured in one run, medians of repeated calls.

    python bench/report.py            # after `pip install .`
"""
import datetime
import os
import platform

import numpy as np

import fastnn
from fastnn import benchmark as fb


def gemm_rows(shapes, budget):
    rng = np.random.default_rng(0)
    cases = []
    for m, n, k in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        cases.append((m, n, k, a, b, np.empty((m, n), np.float32)))
    # Each implementation timed as one block (see fastnn.benchmark.predict_table).
    t_fast = [fb.median_time(lambda: fastnn.ops.gemm(a, b, c), budget=budget) for *_, a, b, c in cases]
    t_np = [fb.median_time(lambda: np.matmul(a, b, out=c), budget=budget) for *_, a, b, c in cases]
    return [(f"{m}x{k} @ {k}x{n}", 2 * m * n * k / 1e9 / tf, 2 * m * n * k / 1e9 / tn)
            for (m, n, k, *_), tf, tn in zip(cases, t_fast, t_np)]


def main(budget=0.5):
    cpu = platform.processor() or platform.machine()
    print(f"Measured {datetime.date.today()} on {os.cpu_count()} cores ({cpu}), "
          f"{fastnn.get_num_threads()} threads, numpy {np.__version__}; medians.\n")

    print("predict, 784-128-10, time per sample")
    print("| batch | native | numpy reference | native vs reference | native vs its batch 1 |")
    print("|---:|---:|---:|---:|---:|")
    rows = fb.predict_table(fb.mlp((784, 128, 10)), budget=budget)
    t1 = rows[0][1]["native"]
    for batch, t in rows:
        print(f"| {batch} | {fb.format_time(t['native'])} | {fb.format_time(t['numpy'])} | "
              f"{t['numpy'] / t['native']:.2f}x | {t1 / t['native']:.1f}x |")

    print("\ntrain_on_batch (forward, softmax cross-entropy, backward, Adam), samples/s")
    print("| network | batch | native | numpy reference | native vs reference |")
    print("|---|---:|---:|---:|---:|")
    for sizes in [(784, 128, 10), (784, 256, 256, 10)]:
        for batch, r in fb.train_step_table(sizes, (1, 32, 512), budget=budget):
            print(f"| {'-'.join(map(str, sizes))} | {batch} | {r['native']:,.0f} | {r['numpy']:,.0f} | "
                  f"{r['native'] / r['numpy']:.2f}x |")

    print("\nfloat32 GEMM, GFLOP/s")
    print("| shape | fastnn | numpy (OpenBLAS) | fastnn / numpy |")
    print("|---|---:|---:|---:|")
    shapes = [(128, 128, 128), (512, 512, 512), (1024, 1024, 1024), (512, 256, 784), (32, 128, 784)]
    for name, g_fast, g_np in gemm_rows(shapes, budget):
        print(f"| {name} | {g_fast:.1f} | {g_np:.1f} | {g_fast / g_np:.2f}x |")


if __name__ == "__main__":
    main()
