"""``python -m fastnn bench --peers``: a 60,000-sample ``fit`` epoch of the course models in
fastnn, its NumPy reference backend, and, when installed, PyTorch (its own training loop) and
TF-Keras (``fit``).

Every measurement runs in a process of its own (two frameworks' thread pools in one process spin
against each other), rounds alternate over the frameworks, and the table gives the median epoch
time of each and fastnn's speed-up over each peer. Inputs are MNIST-shaped random rows (784
values in [0, 1], 10 classes): an epoch's time does not depend on the pixel values. When other
processes keep a core busy before or after the run, the ratios are not printed: they would
measure the contention.
"""
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = (
    ("784-256-256-10 relu", (784, 256, 256, 10), "relu", False),
    ("784-512-BN-128-BN-10", (784, 512, 128, 10), "relu", True),
    ("784-50-100-10 sigmoid", (784, 50, 100, 10), "sigmoid", False),
)
BATCHES = (32, 128, 1024)
SAMPLES = 60_000
FRAMEWORKS = ("fastnn", "numpy", "pytorch", "tf-keras")

# The worker run in each child: reads its job as JSON from argv, prints {"seconds": ...}. It
# imports only the framework it times.
_WORKER = r'''
import json, sys, time
import numpy as np
job = json.loads(sys.argv[1])
sizes, act, bn, batch, n = job["sizes"], job["activation"], job["bn"], job["batch"], job["samples"]
rng = np.random.default_rng(0)
x = rng.random((n, sizes[0]), dtype=np.float32)
y = rng.integers(0, sizes[-1], n)
fw = job["framework"]
if fw in ("fastnn", "numpy"):
    import fastnn
    from fastnn import layers
    fastnn.set_backend("native" if fw == "fastnn" else "numpy")
    fastnn.utils.set_random_seed(0)
    stack = [layers.Input(shape=(sizes[0],))]
    for width in sizes[1:-1]:
        stack.append(layers.Dense(width, activation=None if bn else act))
        if bn:
            stack += [layers.BatchNormalization(), layers.Activation(act)]
    stack.append(layers.Dense(sizes[-1], activation="softmax"))
    model = fastnn.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
elif fw == "pytorch":
    import torch
    torch.manual_seed(0)
    mods, prev = [], sizes[0]
    for width in sizes[1:-1]:
        mods.append(torch.nn.Linear(prev, width))
        if bn:
            mods.append(torch.nn.BatchNorm1d(width, eps=1e-3, momentum=0.01))
        mods.append(torch.nn.ReLU() if act == "relu" else torch.nn.Sigmoid())
        prev = width
    mods.append(torch.nn.Linear(prev, sizes[-1]))
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    def epoch(limit):
        order = torch.randperm(limit)
        for i in range(0, limit, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
    epoch(min(2 * batch, n))  # warm-up (never past the rows there are)
    start = time.perf_counter()
    epoch(n)
else:
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tf_keras as keras
    except ImportError:
        from tensorflow import keras
    keras.utils.set_random_seed(0)
    stack = [keras.Input(shape=(sizes[0],))]
    for width in sizes[1:-1]:
        stack.append(keras.layers.Dense(width, activation=None if bn else act))
        if bn:
            stack += [keras.layers.BatchNormalization(), keras.layers.Activation(act)]
    stack.append(keras.layers.Dense(sizes[-1], activation="softmax"))
    model = keras.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
print(json.dumps({"seconds": time.perf_counter() - start}))
'''


def _has(python, module):
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_peers(torch_python=None, keras_python=None):
    """{framework: python executable} for the frameworks that can be timed."""
    here = sys.executable
    found = {"fastnn": here, "numpy": here}
    for name, module, given in (("pytorch", "torch", torch_python), ("tf-keras", "tensorflow", keras_python)):
        for python in ([given] if given else [here]):
            if python and _has(python, module):
                found[name] = python
                break
    return found


def _env():
    """The children import this fastnn (an editable checkout or an installed one alike)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../fastnn
    root = os.path.dirname(package)  # the directory that holds the package
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def time_epoch(python, framework, model, batch, samples=SAMPLES):
    """Seconds of one ``fit`` epoch of ``model`` (an entry of MODELS) in a fresh process."""
    _, sizes, act, bn = model
    job = json.dumps({"framework": framework, "sizes": list(sizes), "activation": act, "bn": bn,
                      "batch": batch, "samples": samples})
    out = subprocess.run([python, "-c", _WORKER, job], capture_output=True, text=True, env=_env(),
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} worker failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def report(rounds=3, samples=SAMPLES, torch_python=None, keras_python=None, models=MODELS,
           batches=BATCHES, write=print):
    """Print the peers table: median epoch seconds per framework, fastnn's speed-up over each."""
    import datetime
    from . import benchmark
    peers = find_peers(torch_python, keras_python)
    names = [f for f in FRAMEWORKS if f in peers]
    load_before = benchmark.other_load(1.0)
    trips = [benchmark.core_round_trip()]
    write(f"fastnn against its peers, {datetime.date.today()}: one {samples:,}-sample fit epoch "
          f"(Adam), seconds, median of {rounds} rounds, each run in its own process; "
          f"{os.cpu_count()} cores. Not installed: "
          + (", ".join(f for f in FRAMEWORKS if f not in peers) or "none") + ".")
    times = {}
    start = time.perf_counter()
    for r in range(rounds):
        for model in models:
            for batch in batches:
                order = names if r % 2 == 0 else names[::-1]
                for fw in order:
                    times.setdefault((model[0], batch, fw), []).append(
                        time_epoch(peers[fw], fw, model, batch, samples))
                trips.append(benchmark.core_round_trip())
    load_after = benchmark.other_load(1.0)
    load = max(v for v in (load_before, load_after) if v is not None) if (
        load_before is not None or load_after is not None) else None
    note = benchmark.busy_note(load)
    header = "| model | batch | " + " | ".join(names) + " |"
    ratios = [f for f in names if f != "fastnn"]
    if not note:
        header += " " + " | ".join(f"vs {f}" for f in ratios) + " |"
    write(header)
    write("|---|---:|" + "---:|" * (len(names) + (0 if note else len(ratios))))
    for model in models:
        for batch in batches:
            med = {fw: statistics.median(times[(model[0], batch, fw)]) for fw in names}
            row = f"| {model[0]} | {batch} | " + " | ".join(f"{med[f]:.2f}" for f in names) + " |"
            if not note:
                row += " " + " | ".join(f"{med[f] / med['fastnn']:.2f}x" for f in ratios) + " |"
            write(row)
    write(f"({time.perf_counter() - start:.0f} s; other processes' load "
          f"{'unknown' if load is None else f'{load:.2f} cores'}; the cores' round trip "
          f"{benchmark.round_trip_range(trips)} between jobs)")
    for line in (note, None if note else benchmark.round_trip_note(trips)):
        if line:
            write(line + ".")
    return times
