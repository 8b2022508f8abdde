"""Row-by-row MNIST with a recurrent layer: fastnn against PyTorch's own nn.RNN/LSTM/GRU loop.

Each image is a sequence of 28 rows of 28 pixels; a recurrent layer of 64 units reads it and a
Dense(10, softmax) layer classifies its last state. Adam (learning rate 0.001), batch 64, 3 epochs
on the first 8,000 images of the shared MNIST set, accuracy on the other 2,000.

Every measurement runs in a process of its own (OpenMP pools and BLAS threads of two frameworks
in one process spin against each other), rounds alternate between the frameworks, and the table
gives medians and the ratio of medians:

    python bench/recurrent_mnist.py --mnist ../shared/data/mnist --rounds 3 \\
        --torch-python /path/to/venv-with-torch/bin/python

Without --torch-python (or when that Python cannot import torch) only fastnn is measured.
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


def fastnn_worker(cell, mnist, epochs, threads):
    import fastnn
    from fastnn import layers
    fastnn.set_num_threads(threads)
    (x, y), (xt, yt) = _data(mnist)
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Input(shape=(28, 28)), getattr(layers, cell)(64),
                               layers.Dense(10, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(xt, batch_size=500).argmax(1) == yt).mean())
    return {"seconds": seconds, "accuracy": accuracy}


def torch_worker(cell, mnist, epochs, threads):
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    (x, y), (xt, yt) = _data(mnist)
    rnn = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[cell](
        28, 64, batch_first=True)
    head = torch.nn.Linear(64, 10)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen = np.random.default_rng(0)
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


def _run(python, framework, cell, args):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("FASTNN_BENCH_PATH", ""), os.environ.get("PYTHONPATH", "")] if p))
    cmd = [python, os.path.join(here, "recurrent_mnist.py"), "--worker", framework, "--cell", cell,
           "--mnist", args.mnist, "--epochs", str(args.epochs), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                        "shared", "data", "mnist"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--worker", choices=["fastnn", "torch"])
    parser.add_argument("--cell", choices=CELLS)
    args = parser.parse_args(argv)
    if args.worker:
        fn = fastnn_worker if args.worker == "fastnn" else torch_worker
        print(json.dumps(fn(args.cell, args.mnist, args.epochs, args.threads)))
        return
    frameworks = [("fastnn", sys.executable)]
    if args.torch_python:
        frameworks.append(("torch", args.torch_python))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    for cell in args.cells.split(","):
        for r in range(args.rounds):
            order = frameworks if r % 2 == 0 else frameworks[::-1]  # alternate who goes first
            for name, python in order:
                results.setdefault((cell, name), []).append(_run(python, name, cell, args))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"| layer | fastnn s | fastnn acc |" + (" PyTorch s | PyTorch acc | speed-up |"
                                                  if args.torch_python else ""))
    for cell in args.cells.split(","):
        f = results[(cell, "fastnn")]
        fs = statistics.median(r["seconds"] for r in f)
        line = f"| {cell} | {fs:.2f} | {statistics.median(r['accuracy'] for r in f):.3f} |"
        if args.torch_python:
            t = results[(cell, "torch")]
            ts = statistics.median(r["seconds"] for r in t)
            line += (f" {ts:.2f} | {statistics.median(r['accuracy'] for r in t):.3f} |"
                     f" {ts / fs:.2f}x |")
        print(line)


if __name__ == "__main__":
    main()
