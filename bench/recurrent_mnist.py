"""Row-by-row MNIST with a recurrent layer: fastnn against PyTorch's own nn.RNN/LSTM/GRU loop.

Each image is a sequence of 28 rows of 28 pixels; a recurrent layer of 64 units reads it and a
Dense(10, softmax) layer classifies its last state. Adam (learning rate 0.001), batch 64, 3 epochs
on the first 8,000 images of the shared MNIST set, accuracy on the other 2,000.

Every measurement runs in a process of its own (OpenMP pools and BLAS threads of two frameworks
in one process spin against each other), rounds alternate between the frameworks, round r seeds
both frameworks with --seed + r (so the accuracy's median is over initializations), and the
table gives medians and the ratio of medians:

    python bench/recurrent_mnist.py --mnist ../shared/data/mnist --rounds 3 \\
        --torch-python /path/to/venv-with-torch/bin/python

Before each run the parent waits (up to --quiet-wait seconds) until other processes keep less
than a quarter of a core busy (``fastnn.tools.benchmark.other_load``), and measures that load again
right after the run, runs again (--retries) a run that other load disturbed; each run's line
gives both loads, and the table the largest among the runs kept.

Without --torch-python (or when that Python cannot import torch) only fastnn is measured.
With --keras-python (a Python with Keras 3; set KERAS_BACKEND) Keras 3 runs the same recipe too:
its default initializers (glorot_uniform kernel, orthogonal recurrent kernel, LSTM's
unit_forget_bias), Adam(0.001) with its epsilon 1e-7, fit's shuffling of every epoch. On a busy
machine, where only the accuracy means something, ``--quiet-wait 0 --retries 0`` skips the waiting.

``--same-start`` compares the two trainings themselves rather than their medians: for each cell
and seed, Keras draws its initial weights and trains without shuffling (the same batches in the
same order), fastnn starts from Keras's weights (``set_weights``) and trains on the same
batches; each line gives the largest difference between the two runs' per-batch losses and both
held-out accuracies after every epoch:

    KERAS_BACKEND=jax python bench/recurrent_mnist.py --same-start --rounds 2 \\
        --keras-python /path/to/keras-venv/bin/python
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CELLS = ("SimpleRNN", "LSTM", "GRU")


def _data(mnist):
    """The shared t10k images as 8,000 training and 2,000 held-out sequences, pixels in [0, 1]
    (read with NumPy alone, so the PyTorch process never loads fastnn)."""
    import gzip
    import numpy as np

    def idx(name):
        with gzip.open(os.path.join(mnist, name)) as f:
            raw = f.read()
        dims = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)
    x = idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    y = idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])


def fastnn_worker(cell, mnist, epochs, threads, seed=0):
    import fastnn
    from fastnn import layers
    fastnn.set_num_threads(threads)
    (x, y), (xt, yt) = _data(mnist)
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([layers.Input(shape=(28, 28)), getattr(layers, cell)(64),
                               layers.Dense(10, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(xt, batch_size=500).argmax(1) == yt).mean())
    return {"seconds": seconds, "accuracy": accuracy}


def torch_worker(cell, mnist, epochs, threads, seed=0):
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    (x, y), (xt, yt) = _data(mnist)
    rnn = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[cell](
        28, 64, batch_first=True)
    head = torch.nn.Linear(64, 10)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(gen.permutation(len(x)))
        for lo in range(0, len(x), 64):
            idx = order[lo:lo + 64]
            out, _ = rnn(xs[idx])
            loss = loss_fn(head(out[:, -1]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        out, _ = rnn(torch.from_numpy(xt))
        accuracy = float((head(out[:, -1]).argmax(1).numpy() == yt).mean())
    return {"seconds": seconds, "accuracy": accuracy}


def keras_worker(cell, mnist, epochs, threads, seed=0):
    """Keras 3 (any backend, KERAS_BACKEND) with the same recipe: its default initializers and
    Adam, fit's shuffling."""
    import keras
    keras.utils.set_random_seed(seed)
    (x, y), (xt, yt) = _data(mnist)
    model = keras.Sequential([keras.Input(shape=(28, 28)), getattr(keras.layers, cell)(64),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(xt, batch_size=500, verbose=0).argmax(1) == yt).mean())
    return {"seconds": seconds, "accuracy": accuracy}


def _same_start_train(lib, model, x, y, xt, yt, epochs, predict_kw):
    """Trains ``model`` without shuffling; returns each batch's loss and the held-out accuracy
    after each epoch. Both frameworks log the epoch's running mean loss after a batch; the batch's
    own loss is recovered from two consecutive means (every batch has 64 images)."""
    import numpy as np
    running, accuracies = [], []

    class Record(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            running.append(float(logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            p = self.model.predict(xt, batch_size=500, **predict_kw)
            accuracies.append(float((p.argmax(1) == yt).mean()))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=False, callbacks=[Record()])
    r = np.array(running).reshape(epochs, -1)
    k = np.arange(1, r.shape[1] + 1)
    per_batch = r * k - np.concatenate([np.zeros((epochs, 1)), r[:, :-1] * k[:-1]], axis=1)
    return per_batch, accuracies


def keras_start_worker(cell, mnist, epochs, threads, seed, path):
    """Keras's side of --same-start: saves its initial weights, per-batch losses, accuracies."""
    import keras
    import numpy as np
    keras.utils.set_random_seed(seed)
    (x, y), (xt, yt) = _data(mnist)
    model = keras.Sequential([keras.Input(shape=(28, 28)), getattr(keras.layers, cell)(64),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    initial = model.get_weights()
    losses, accuracies = _same_start_train(keras, model, x, y, xt, yt, epochs,
                                           {"verbose": 0})
    np.savez(path, losses=losses, accuracies=np.array(accuracies),
             **{f"w{i}": w for i, w in enumerate(initial)})
    return {"accuracy": accuracies[-1]}


def fastnn_start_worker(cell, mnist, epochs, threads, seed, path):
    """fastnn's side of --same-start: Keras's initial weights, the same batches."""
    import numpy as np
    import fastnn
    from fastnn import layers
    fastnn.set_num_threads(threads)
    (x, y), (xt, yt) = _data(mnist)
    keras_run = np.load(path)
    model = fastnn.Sequential([layers.Input(shape=(28, 28)), getattr(layers, cell)(64),
                               layers.Dense(10, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    model.set_weights([keras_run[f"w{i}"] for i in range(len(model.get_weights()))])
    losses, accuracies = _same_start_train(fastnn, model, x, y, xt, yt, epochs, {})
    diff = np.abs(losses - keras_run["losses"])
    return {"accuracy": accuracies[-1], "accuracies": accuracies,
            "keras_accuracies": keras_run["accuracies"].tolist(),
            "max_loss_diff": float(diff.max()), "max_loss_diff_first_epoch": float(diff[0].max()),
            "first_loss": float(losses[0, 0]), "last_loss": float(losses[-1, -1])}


def _same_start(args):
    """--same-start: Keras and fastnn from the same weights on the same batches."""
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("FASTNN_BENCH_PATH", ""), os.environ.get("PYTHONPATH", "")] if p))
    print("| layer | seed | per-batch loss, largest difference (epoch 1 / all) | accuracy after "
          "each epoch, fastnn | Keras |")
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells.split(","):
            for r in range(args.rounds):
                seed = args.seed + r
                path = os.path.join(tmp, f"{cell}_{seed}.npz")
                for name, python in (("keras-start", args.keras_python),
                                     ("fastnn-start", sys.executable)):
                    cmd = [python, os.path.join(here, "recurrent_mnist.py"), "--worker", name,
                           "--cell", cell, "--mnist", args.mnist, "--epochs", str(args.epochs),
                           "--threads", str(args.threads), "--seed", str(seed), "--path", path]
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {cell} | {seed} | {result['max_loss_diff_first_epoch']:.1e} / "
                      f"{result['max_loss_diff']:.1e} | "
                      f"{' '.join(f'{a:.4f}' for a in result['accuracies'])} | "
                      f"{' '.join(f'{a:.4f}' for a in result['keras_accuracies'])} |", flush=True)


def _other_load(seconds=1.0):
    try:
        from fastnn.tools.benchmark import other_load
    except ImportError:  # the parent without fastnn: the load average minus nothing
        return os.getloadavg()[0]
    return other_load(seconds)


def _wait_quiet(limit, busy=0.25):
    """Waits until other processes keep less than ``busy`` cores busy (at most ``limit`` s);
    returns the last load measured."""
    deadline = time.monotonic() + limit
    load = _other_load()
    while load >= busy and time.monotonic() < deadline:
        time.sleep(2.0)
        load = _other_load()
    return load


def _run(python, framework, cell, args, seed=0):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("FASTNN_BENCH_PATH", ""), os.environ.get("PYTHONPATH", "")] if p))
    cmd = [python, os.path.join(here, "recurrent_mnist.py"), "--worker", framework, "--cell", cell,
           "--mnist", args.mnist, "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--seed", str(seed)]
    for attempt in range(1 + args.retries):
        before = _wait_quiet(args.quiet_wait)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(load_before=before, load_after=_other_load())
        print(f"{cell} {framework} seed {seed}: {result['seconds']:.2f} s, accuracy "
              f"{result['accuracy']:.3f}, other load {before:.2f} before, "
              f"{result['load_after']:.2f} after", flush=True)
        if max(before, result["load_after"]) < 0.25:
            break  # a quiet run; otherwise run it again (the last attempt is kept)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                        "shared", "data", "mnist"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--seed", type=int, default=0, help="round r uses seed --seed + r")
    parser.add_argument("--retries", type=int, default=3,
                        help="runs again (up to this many times) a run that others disturbed")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait for a quiet machine before each run")
    parser.add_argument("--keras-python", default=None,
                        help="also run Keras 3 with this Python (set KERAS_BACKEND)")
    parser.add_argument("--same-start", action="store_true",
                        help="train Keras and fastnn from the same weights on the same batches "
                             "(needs --keras-python)")
    parser.add_argument("--worker", choices=["fastnn", "torch", "keras", "keras-start",
                                             "fastnn-start"])
    parser.add_argument("--cell", choices=CELLS)
    parser.add_argument("--path", help="the workers' --same-start file")
    args = parser.parse_args(argv)
    if args.worker:
        fn = {"fastnn": fastnn_worker, "torch": torch_worker, "keras": keras_worker,
              "keras-start": keras_start_worker, "fastnn-start": fastnn_start_worker}[args.worker]
        extra = (args.path,) if args.worker.endswith("-start") else ()
        print(json.dumps(fn(args.cell, args.mnist, args.epochs, args.threads, args.seed, *extra)))
        return
    if args.same_start:
        if not args.keras_python:
            parser.error("--same-start needs --keras-python")
        _same_start(args)
        return
    frameworks = [("fastnn", sys.executable)]
    if args.torch_python:
        frameworks.append(("torch", args.torch_python))
    if args.keras_python:
        frameworks.append(("keras", args.keras_python))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    for cell in args.cells.split(","):
        for r in range(args.rounds):
            order = frameworks if r % 2 == 0 else frameworks[::-1]  # alternate who goes first
            for name, python in order:
                results.setdefault((cell, name), []).append(
                    _run(python, name, cell, args, args.seed + r))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| layer | fastnn s | fastnn acc |" + (" PyTorch s | PyTorch acc | speed-up |"
                                                  if args.torch_python else "")
          + (" Keras s | Keras acc |" if args.keras_python else "") + " max other load |")
    for cell in args.cells.split(","):
        f = results[(cell, "fastnn")]
        fs = statistics.median(r["seconds"] for r in f)
        line = f"| {cell} | {fs:.2f} | {statistics.median(r['accuracy'] for r in f):.3f} |"
        if args.torch_python:
            t = results[(cell, "torch")]
            ts = statistics.median(r["seconds"] for r in t)
            line += (f" {ts:.2f} | {statistics.median(r['accuracy'] for r in t):.3f} |"
                     f" {ts / fs:.2f}x |")
        if args.keras_python:
            k = results[(cell, "keras")]
            line += (f" {statistics.median(r['seconds'] for r in k):.2f} |"
                     f" {statistics.median(r['accuracy'] for r in k):.3f} |")
        runs = f + sum((results[(cell, name)] for name, _ in frameworks[1:]), [])
        line += f" {max(max(r['load_before'], r['load_after']) for r in runs):.2f} |"
        print(line)
    seeds = [args.seed + r for r in range(args.rounds)]
    print(f"accuracy by seed ({', '.join(map(str, seeds))}):")
    for cell in args.cells.split(","):
        for name, _ in frameworks:
            print(f"  {cell} {name}: "
                  + " ".join(f"{r['accuracy']:.3f}" for r in results[(cell, name)]))


if __name__ == "__main__":
    main()
