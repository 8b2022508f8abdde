"""The default (adaptive) threading against one pinned thread, on an idle and on a busy machine.

One training step of 784-256-256-10 relu (softmax cross-entropy, Adam; ``train_on_batch``, the
recorded one-call step) at batch 1, 32 and 512, in three scenarios:

* ``idle``: nothing started by this script beside fastnn;
* ``busy``: one other process spinning (``python -c "while True: pass"``, pinned to the last core
  with ``--pin``);
* ``blas``: each round starts right after NumPy's matmuls in the same process (OpenBLAS's idle
  workers spin for tens of milliseconds after a call), and its steps run inside that window.

Each scenario times rounds of steps for each setting -- the default, ``set_num_threads(1)``,
``set_num_threads(<cores>)`` -- in alternating order (reversed every other round); a round's figure
is its total time over its steps (so the probes of the adaptive mode are paid for), and the table
gives the median over rounds in samples/s with the ratio default / one thread. In ``blas`` the
reference is the default's speed in rounds without the matmuls before them (``vs no BLAS``).
The load from other processes during each scenario is printed: on a shared machine it is
rarely zero, and the ratios mean what that load makes of them.

    python bench/threads_contention.py [--rounds 9] [--seconds 0.25] [--pin] [--scenarios idle,busy,blas]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fastnn of this checkout

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn.tools import benchmark as fb  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCHES = (1, 32, 512)


def _setting(name):
    if name == "default":
        fastnn.set_num_threads("auto")
    else:
        fastnn.set_num_threads(int(name))


def _round(step, seconds, before=None):
    """Samples of steps for ``seconds``: (steps, total seconds), after ``before()`` when given."""
    if before is not None:
        before()
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and count >= 3:
            return count, elapsed


def _blas_burst(a, b, c):
    def burst():
        for _ in range(8):
            np.matmul(a, b, out=c)
    return burst


def measure(scenario, rounds, seconds):
    """{batch: {setting: samples/s}} for one scenario (the busy process is started by the caller)."""
    cores = os.cpu_count() or 1
    settings = ["default", "1"] + ([str(cores)] if cores > 1 else [])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 784), dtype=np.float32)
    b = rng.standard_normal((784, 256), dtype=np.float32)
    burst = _blas_burst(a, b, np.empty((512, 256), np.float32))
    window = 0.05 if scenario == "blas" else seconds  # inside OpenBLAS's spinning after the burst
    runs = [(s, burst if scenario == "blas" else None) for s in settings]
    if scenario == "blas":
        runs.append(("default, no BLAS", None))
    table = {}
    for batch in BATCHES:
        pool = fb.batch_pool(SIZES, batch)
        model = fb.mlp(SIZES)
        step = fb._train_steps(model, pool)
        for _ in range(30):
            step()
        rates = {name: [] for name, _ in runs}
        for r in range(rounds):
            for name, before in (runs if r % 2 == 0 else runs[::-1]):
                _setting(name.split(",")[0])
                n = 0
                total = 0.0
                for _ in range(max(1, int(seconds / window))):
                    k, t = _round(step, window, before)
                    n, total = n + k, total + t
                rates[name].append(batch * n / total)
        table[batch] = {name: statistics.median(v) for name, v in rates.items()}
    fastnn.set_num_threads("auto")
    return table


def _spinner(pin):
    code = "while True: pass"
    cmd = [sys.executable, "-c", code]
    if pin and hasattr(os, "sched_setaffinity"):
        cpu = (os.cpu_count() or 1) - 1
        cmd = [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\n{code}"]
    return subprocess.Popen(cmd)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.25, help="per round and setting")
    parser.add_argument("--pin", action="store_true", help="pin the busy process to the last core")
    parser.add_argument("--scenarios", default="idle,busy,blas")
    args = parser.parse_args(argv)
    print(f"fastnn {fastnn.__version__}, {os.cpu_count()} cores, team of {fastnn.get_num_threads()}; "
          f"model {'-'.join(map(str, SIZES))} relu, Adam, train_on_batch; medians of {args.rounds} "
          f"rounds of {args.seconds} s per setting")
    for scenario in args.scenarios.split(","):
        load_before = fb.other_load(0.5)
        spinner = _spinner(args.pin) if scenario == "busy" else None
        try:
            if spinner:
                time.sleep(0.3)
            start = time.time()
            table = measure(scenario, args.rounds, args.seconds)
            wall = time.time() - start
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
        load_after = fb.other_load(0.5)
        print(f"\n{scenario}: other processes' load {load_before:.2f} cores before, {load_after:.2f} after"
              + (" (besides the spinning process)" if spinner else "") + f"; {wall:.0f} s")
        names = list(next(iter(table.values())))
        print("| batch | " + " | ".join(names) + " | default / 1 thread |"
              + (" default vs no BLAS |" if scenario == "blas" else ""))
        print("|---:|" + "---:|" * (len(names) + 1 + (scenario == "blas")))
        for batch, rates in table.items():
            extra = f" {rates['default'] / rates['default, no BLAS']:.2f} |" if scenario == "blas" else ""
            print(f"| {batch} | " + " | ".join(f"{rates[n]:,.0f}" for n in names)
                  + f" | {rates['default'] / rates['1']:.2f} |" + extra, flush=True)


if __name__ == "__main__":
    main()
