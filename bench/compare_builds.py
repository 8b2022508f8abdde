"""Two builds of fastnn side by side: training-step and predict speed of the benchmark models.

    python bench/compare_builds.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 5] [--threads default|2]

Each checkout must hold a built extension (``python setup.py build_ext --inplace``). Every round
runs each build in a process of its own (their OpenMP pools would spin against each other in
one), the order of the builds alternating from round to round; each process times, for every
model and batch size, ``train_on_batch`` over 16 different batches and ``predict`` on one batch,
after a warm-up. The table gives the median per-step time of each build over the rounds and
new / old as a speed ratio (above 1: the new build is faster). Only the public API is used, so
any two versions of fastnn can be compared. The load from other processes before and after the
run is printed: a ratio measured beside another busy process says little.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

MODELS = (((784, 128, 10), "relu"), ((784, 256, 256, 10), "relu"), ((784, 50, 100, 10), "sigmoid"))
BATCHES = (1, 8, 32, 512, 2048)

_WORKER = r'''
import json, sys, time
import numpy as np
import fastnn
from fastnn import layers
job = json.loads(sys.argv[1])
if job["threads"] != "default":
    fastnn.set_num_threads(int(job["threads"]))
out = {}
for sizes, act in job["models"]:
    for batch in job["batches"]:
        fastnn.utils.set_random_seed(0)
        model = fastnn.Sequential([layers.Input(shape=(sizes[0],))]
                                  + [layers.Dense(w, activation=act) for w in sizes[1:-1]]
                                  + [layers.Dense(sizes[-1], activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(1)
        pool = [(rng.random((batch, sizes[0]), dtype=np.float32),
                 rng.integers(0, sizes[-1], batch)) for _ in range(16)]
        def run(fn, budget):
            steps, start = 0, time.perf_counter()
            while True:
                fn(steps)
                steps += 1
                elapsed = time.perf_counter() - start
                if elapsed >= budget and steps >= 3:
                    return elapsed / steps
        train = lambda i: model.train_on_batch(*pool[i % 16])
        predict = lambda i: model.predict(pool[0][0], batch_size=batch, verbose=0)
        run(train, job["budget"] / 2)  # warm-up: buffers, the thread choice
        t = run(train, job["budget"])
        run(predict, job["budget"] / 4)
        p = run(predict, job["budget"])
        out["-".join(map(str, sizes)) + " " + act + " b" + str(batch)] = [t, p]
print(json.dumps(out))
'''


def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    try:
        from fastnn.tools import benchmark
        return benchmark.other_load(1.0)
    except Exception:  # an old checkout: no load probe
        return os.getloadavg()[0]


def run_build(root, threads, budget):
    job = json.dumps({"models": [[list(s), a] for s, a in MODELS], "batches": list(BATCHES),
                      "threads": threads, "budget": budget})
    env = dict(os.environ, PYTHONPATH=os.path.abspath(root))
    out = subprocess.run([sys.executable, "-c", _WORKER, job], capture_output=True, text=True,
                         env=env, cwd=os.path.abspath(root), timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{root}: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="default", help="'default' or a pinned count")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds timed per cell")
    args = parser.parse_args()
    load_before = _load()
    runs = {"old": [], "new": []}
    for r in range(args.rounds):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            runs[which].append(run_build(getattr(args, which), args.threads, args.budget))
    load_after = _load()
    print(f"threads: {args.threads}; {args.rounds} rounds; other load before {load_before:.2f}, "
          f"after {load_after:.2f} cores")
    print("| model | batch | train old | train new | new/old speed | predict old | predict new "
          "| new/old speed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in runs["old"][0]:
        med = {w: [statistics.median(run[key][i] for run in runs[w]) for i in (0, 1)]
               for w in runs}
        model, batch = key.rsplit(" b", 1)
        cells = []
        for i in (0, 1):
            cells += [f"{med['old'][i] * 1e6:.1f} us", f"{med['new'][i] * 1e6:.1f} us",
                      f"{med['old'][i] / med['new'][i]:.3f}x"]
        print(f"| {model} | {batch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
