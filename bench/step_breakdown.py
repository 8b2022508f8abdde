"""Where a large-batch training step's time goes: 784-256-256-10 relu (or --sizes/--activation), Adam, float32.

Each kernel call of the step (the calls the recorded program replays, in its order) is timed on
its own through the native kernels, on a pinned thread count, in alternating rounds; the table
gives each call's median time, its share of the sum and, for GEMMs, GFLOP/s against the measured
multiply-add peak (``_core.measure_peak_gflops``). The dense backward call is split into its two
GEMMs (dX = dY W^T, then dW = X^T dY with db riding along) by calling it with and without dX.

    python bench/step_breakdown.py [--threads 2] [--batches 1024 2048] [--sizes 784 50 100 10 --activation sigmoid]
"""
import argparse
import time

import numpy as np

import fastnn
from fastnn import _core
from fastnn.native import kernels as K
from fastnn.tools.benchmark import busy_note, other_load


def _calls(n, sizes=(784, 256, 256, 10), act="relu", seed=0):
    rng = np.random.default_rng(seed)
    f = np.float32
    x = rng.standard_normal((n, sizes[0])).astype(f)
    labels = rng.integers(0, sizes[-1], n)
    ws = [(rng.standard_normal((a, b)) * 0.05).astype(f) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, f) for b in sizes[1:]]
    zs = [np.empty((n, b), f) for b in sizes[1:]]
    hs = [np.empty((n, b), f) for b in sizes[1:]]
    dh = [np.empty((n, b), f) for b in sizes[1:]]
    dws = [np.empty_like(w) for w in ws]
    dbs = [np.empty_like(b) for b in bs]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    calls, ins = [], [x] + hs[:-1]
    last = len(ws) - 1
    for i, w in enumerate(ws):
        flops = 2 * n * w.shape[0] * w.shape[1]
        if i < last:
            calls.append((f"forward GEMM+bias+{act} {n}x{w.shape[0]}x{w.shape[1]}", flops,
                          lambda i=i, w=w: K.dense_act_forward(ins[i], w, bs[i], act, 0.0, zs[i], hs[i])))
        else:
            calls.append((f"forward GEMM+bias (logits) {n}x{w.shape[0]}x{w.shape[1]}", flops,
                          lambda i=i, w=w: K.dense_forward(ins[i], w, bs[i], zs[i])))
    calls.append(("softmax-CE value+grad", 0,
                  lambda: K.sparse_softmax_cross_entropy(zs[-1], labels, dh[-1], True)))
    for i in reversed(range(len(ws))):
        w = ws[i]
        flops = 2 * n * w.shape[0] * w.shape[1]
        if i > 0:
            calls.append((f"dX GEMM dY W^T {n}x{w.shape[1]}x{w.shape[0]}", flops, None))
        calls.append((f"dW GEMM X^T dY (+db) {w.shape[0]}x{n}x{w.shape[1]}", flops,
                      lambda i=i, w=w: K.dense_backward(dh[i], ins[i], w, None, dws[i], dbs[i], False, True)))
        if i > 0:
            both = lambda i=i, w=w: K.dense_backward(dh[i], ins[i], w, dh[i - 1], dws[i], dbs[i], True, True)
            calls[-2] = (calls[-2][0], flops, ("minus", both, calls[-1][2]))
            calls.append((f"{act} backward {n}x{w.shape[0]}", 0,
                          lambda i=i: K.act_backward(dh[i - 1], zs[i - 1], hs[i - 1], act, 0.0, dh[i - 1])))
    for i, w in enumerate(ws):
        calls.append((f"Adam {w.size} weights" if i == 0 else f"Adam {w.size}", 0,
                      lambda i=i, w=w: K.adam_update(w, dws[i], ms[i], vs[i], 1e-3, 0.9, 0.999, 1e-7, 1)))
        calls.append((f"Adam bias {bs[i].size}", 0,
                      lambda i=i: K.adam_update(bs[i], dbs[i], np.zeros_like(bs[i]), np.zeros_like(bs[i]),
                                                1e-3, 0.9, 0.999, 1e-7, 1)))
    for fn in [c[2] for c in calls if callable(c[2])]:
        fn()  # every buffer written once before timing
    return calls


def _time(fn, repeats):
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best))


def breakdown(n, rounds=5, repeats=9, sizes=(784, 256, 256, 10), act="relu"):
    calls = _calls(n, tuple(sizes), act)
    times = [[] for _ in calls]
    for _ in range(rounds):  # alternating rounds: every call sees the same load
        for k, (_, _, fn) in enumerate(calls):
            if isinstance(fn, tuple):  # dX = (dense backward with dX) - (without)
                times[k].append(max(0.0, _time(fn[1], repeats) - _time(fn[2], repeats)))
            else:
                times[k].append(_time(fn, repeats))
    return [(name, flops, float(np.median(t))) for (name, flops, _), t in zip(calls, times)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 10])
    parser.add_argument("--activation", default="relu")
    args = parser.parse_args()
    fastnn.set_num_threads(args.threads)
    load = other_load()
    note = busy_note(load, "figures")
    if note:
        print(note)
    peak = max(_core.measure_peak_gflops(0.2) for _ in range(3))
    print(f"{'-'.join(map(str, args.sizes))} {args.activation}; threads {args.threads}, {_core.cpu_capability()}, measured peak {peak:.0f} GFLOP/s\n")
    for n in args.batches:
        rows = breakdown(n, sizes=args.sizes, act=args.activation)
        total = sum(t for _, _, t in rows)
        gemm_flops = sum(f for _, f, _ in rows)
        print(f"batch {n}: sum of calls {total * 1e3:.2f} ms, {gemm_flops / total / 1e9:.0f} GFLOP/s "
              f"over the step ({gemm_flops / total / 1e9 / peak:.0%} of peak)")
        print(f"| call | ms | share | GFLOP/s | of peak |\n|---|---:|---:|---:|---:|")
        for name, flops, t in rows:
            rate = f"{flops / t / 1e9:.0f} | {flops / t / 1e9 / peak:.0%}" if flops and t > 0 else " | "
            print(f"| {name} | {t * 1e3:.3f} | {t / total:.1%} | {rate} |")
        print()


if __name__ == "__main__":
    main()
