"""Timing helpers shared by ``python -m fastnn demo`` and ``bench/report.py``.

Timings on a shared machine are noisy, so every figure is the median of repeated runs, and the
useful numbers are ratios measured in the same run (native vs the NumPy reference backend).
"""
import time

import numpy as np

from .. import backend
from ..layers import Dense
from ..models import Sequential

BATCH_SIZES = (1, 8, 64, 512, 4096)


def _timed_calls(fn, budget, min_repeats):
    """Wall times of calls to ``fn()``: at least ``min_repeats``, for ``budget`` seconds."""
    times, start = [], time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10_000:
            break
    return times


def median_time(fn, min_repeats=5, budget=0.2):
    """Median wall time of ``fn()`` over at least ``min_repeats`` calls or ``budget`` seconds."""
    fn()  # warm-up: buffers, caches, thread pool
    return float(np.median(_timed_calls(fn, budget, min_repeats)))


def _cpu_jiffies():
    """(busy jiffies of the whole machine, of this process and its waited-for children), Linux only."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal (guest is in user)
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, sum(int(v) for v in own[11:15])  # utime, stime, cutime, cstime


def other_load(seconds=0.5):
    """Cores kept busy by other processes (0.0 idle, 1.0 one busy core, ...), measured over
    ``seconds`` from /proc/stat minus this process's own time; the 1-minute load average minus
    this process elsewhere (None where neither exists)."""
    import os
    try:
        busy0, own0 = _cpu_jiffies()
        time.sleep(seconds)
        busy1, own1 = _cpu_jiffies()
    except (OSError, ValueError, IndexError):
        try:
            return max(0.0, os.getloadavg()[0] - 1)
        except (OSError, AttributeError):
            return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / ticks / seconds)


BUSY = 0.25  # cores of other load above which timing ratios are not worth printing


def core_round_trip(seconds=0.05):
    """Nanoseconds for a cache line's round trip between two of the native kernels' threads: the
    floor under every parallel region's fork and join (None without the native extension or with
    one thread). A virtual machine's vCPUs can sit far apart on the host for seconds at a time
    (measured here: about 85 ns usually, 420-440 ns then, when a batch-32 step of the BN model
    runs 0.7x as fast on two threads as on one), which no process list shows."""
    core = backend._core
    if core is None:
        return None
    ns = core.measure_core_round_trip(seconds)
    return ns if ns > 0 else None


def round_trip_range(samples):
    """``core_round_trip`` values of one run (None ignored) as text: range, median, count."""
    import statistics
    seen = sorted(v for v in samples if v)
    if not seen:
        return "not measured (one thread)"
    return (f"{seen[0]:.0f}-{seen[-1]:.0f} ns, median {statistics.median(seen):.0f}, over "
            f"{len(seen)} measurements")


FAR = 2.0  # the round trip's largest / smallest measurement in one run beyond which it is noted


def round_trip_note(samples):
    """A sentence when the round trips measured during one run (``core_round_trip`` values, None
    ignored) spread by more than FAR: the multi-threaded timings then changed during the run."""
    seen = [v for v in samples if v]
    if len(seen) < 2 or max(seen) <= FAR * min(seen):
        return None
    return (f"the cores' round trip changed from {min(seen):.0f} to {max(seen):.0f} ns during the "
            f"run (the host moved this machine's vCPUs): multi-threaded times changed with it, and "
            f"fastnn's adaptive threads fall back to one thread while it is slow")


def busy_note(load, what="ratios"):
    """A sentence saying the machine is too busy for ``what`` to mean anything, or None."""
    if load is None or load < BUSY:
        return None
    return (f"the machine is busy: other processes kept {load:.1f} of {_cores()} cores busy, so "
            f"{what} measure the contention, not fastnn; run again on an idle machine")


def _cores():
    import os
    return os.cpu_count() or 1


SETTLE = 0.15  # seconds between rounds of different backends


def _busy_wait(seconds):
    """Wait without sleeping: a sleeping process lets the core clock down, and the next round's
    first steps would then run slow (measured: 110 us instead of 67 us per batch-8 step)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def paired_medians(fns, budget=0.2, rounds=4, min_repeats=3, scopes=None):
    """Median wall time of each backend's ``fns[backend]()``, timed in alternating rounds.
    (``scopes[name]()``, when given, is the context each one runs in instead of its backend.)

    Each round times one backend for ``budget / rounds`` seconds split between them, then the
    other, so that both see the same state of a shared machine and their ratio stays meaningful
    when the machine's speed drifts. Rounds are long (tens of milliseconds) so that the thread
    pools' spinning after one backend's calls barely overlaps the other's, and each starts after
    a pause of ``SETTLE`` seconds (less for a small budget): OpenBLAS's idle workers keep spinning
    on a core for tens of milliseconds after its last call (measured: a 2-thread native batch-512
    step ran at half speed right after NumPy's matmuls).
    """
    scope = (lambda name: scopes[name]()) if scopes else backend.backend_scope
    times = {name: [] for name in fns}
    for name, fn in fns.items():  # warm-up: buffers, caches, thread pools
        with scope(name):
            fn()
    order = list(fns)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            _busy_wait(min(SETTLE, budget / 2))
            with scope(name):
                times[name].extend(_timed_calls(fns[name], budget / rounds / len(fns), min_repeats))
    return {name: float(np.median(t)) for name, t in times.items()}


def mlp(sizes, activation="relu", seed=0):
    """An untrained MLP with layer widths ``sizes`` (input first), softmax output, compiled with Adam."""
    from .. import utils
    utils.set_random_seed(seed)
    layers = [Dense(n, activation=activation) for n in sizes[1:-1]]
    model = Sequential([Dense(sizes[1], activation=activation, input_dim=sizes[0])] + layers[1:]
                       + [Dense(sizes[-1], activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def predict_table(model, batch_sizes=BATCH_SIZES, budget=0.2, backends=backend.BACKENDS):
    """Rows ``(batch, {backend: seconds per sample})`` for ``predict`` at each batch size."""
    rng = np.random.default_rng(0)
    n_in = model.input_shape[1]
    inputs = {batch: rng.random((batch, n_in), dtype=np.float32) for batch in batch_sizes}
    times = {}
    for batch, x in inputs.items():
        medians = paired_medians({name: (lambda x=x, b=batch: model.predict(x, batch_size=b))
                                  for name in backends}, budget=budget)
        times[batch] = {name: t / batch for name, t in medians.items()}
    return list(times.items())


TRAIN_MODELS = (((784, 128, 10), "relu"), ((784, 256, 256, 10), "relu"), ((784, 50, 100, 10), "sigmoid"))


def batch_pool(sizes, batch, n_batches=16, seed=0):
    """``n_batches`` different (x, y) batches of random inputs and labels. Steps cycle through them:
    repeating one batch lets the model memorise it, its gradients vanish towards subnormal
    numbers, and every backend then slows down for reasons no real training run has."""
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], batch))
            for _ in range(n_batches)]


def train_step_table(sizes, batch_sizes, budget=0.3, backends=backend.BACKENDS, activation="relu"):
    """Rows ``(batch, {backend: samples per second})`` for ``train_on_batch`` of an MLP."""
    rates = {}
    for batch in batch_sizes:
        pool = batch_pool(sizes, batch)
        steps = {}
        for name in backends:
            with backend.backend_scope(name):
                model = mlp(sizes, activation)
            steps[name] = _train_steps(model, pool)
        medians = paired_medians(steps, budget=budget)
        rates[batch] = {name: batch / t for name, t in medians.items()}
    return list(rates.items())


def _train_steps(model, pool):
    """A function that runs one train_on_batch step, cycling through the batches of ``pool``."""
    step = iter(range(10 ** 9))

    def train():
        x, y = pool[next(step) % len(pool)]
        model.train_on_batch(x, y)
    return train


def format_time(seconds):
    """Three significant digits in s, ms, us or ns, never in exponent notation (999.7 us -> 1000 us)."""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


# -- the report printed by `python -m fastnn bench` ---------------------------------------------

GEMM_SHAPES = [(64, 64, 64), (128, 128, 128), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
               (512, 256, 784), (32, 128, 784)]  # (M, N, K); the last two are MLP forward passes
TRAIN_BATCHES = (1, 8, 32, 512, 2048)


def _can_limit_blas():
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def _blas_threads(n):
    """Context limiting NumPy's BLAS to ``n`` threads (needs threadpoolctl), or None without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def gemm_table(shapes=GEMM_SHAPES, threads=(1, 2), budget=0.2):
    """Rows ``(shape, threads, fastnn GFLOP/s, numpy GFLOP/s or None)``, the two timed in
    alternating rounds (see paired_medians). NumPy is limited to the same thread count when
    threadpoolctl is installed (without it, it is only timed at the last, full thread count)."""
    from .. import ops
    rng = np.random.default_rng(0)
    cases = [(m, n, k, rng.standard_normal((m, k), dtype=np.float32),
              rng.standard_normal((k, n), dtype=np.float32), np.empty((m, n), np.float32))
             for m, n, k in shapes]
    rows = []
    previous = backend.get_num_threads()
    try:
        for nt in threads:
            backend.set_num_threads(nt)
            with_numpy = _can_limit_blas() or nt == threads[-1]
            for m, n, k, a, b, c in cases:
                fns = {"fastnn": lambda: ops.gemm(a, b, c)}
                scopes = {"fastnn": _nullcontext}
                if with_numpy:
                    fns["numpy"] = lambda: np.matmul(a, b, out=c)
                    scopes["numpy"] = lambda: _blas_threads(nt) or _nullcontext()
                medians = paired_medians(fns, budget=budget, scopes=scopes)
                gflop = 2 * m * n * k / 1e9
                rows.append(((m, n, k), nt, gflop / medians["fastnn"],
                             gflop / medians["numpy"] if with_numpy else None))
    finally:
        backend.set_num_threads(previous)
    return rows


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _torch_mlp(sizes, activation="relu"):
    """The same MLP in PyTorch (an optional peer), or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Sigmoid())
    net = torch.nn.Sequential(*layers)
    return torch, net, torch.optim.Adam(net.parameters(), lr=1e-3)


def torch_rates(sizes, batches, budget, activation="relu"):
    """PyTorch eager train-step samples/s and predict seconds/sample, or None without torch.

    Measured in a child process: PyTorch brings its own OpenMP runtime, and two thread pools
    that spin while they wait for work slow each other down badly on a 2-core machine (measured:
    100x and more when both run in one process), which would time the collision, not PyTorch."""
    import importlib.util
    import json
    import subprocess
    import sys
    if importlib.util.find_spec("torch") is None:
        return None
    code = (f"import json; from fastnn.tools.benchmark import _torch_rates_here as f; "
            f"t, p = f({tuple(sizes)!r}, {tuple(batches)!r}, {budget!r}, {activation!r}); "
            f"print(json.dumps([list(t.items()), list(p.items())]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    train, predict = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(train), dict(predict)


def _torch_rates_here(sizes, batches, budget, activation):
    torch, net, opt = _torch_mlp(sizes, activation)
    loss_fn = torch.nn.CrossEntropyLoss()
    train, predict = {}, {}
    for batch in batches:
        pool = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batch_pool(sizes, batch)]
        steps = iter(range(10 ** 9))

        def step():
            x, y = pool[next(steps) % len(pool)]
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()

        def infer():
            with torch.no_grad():
                torch.softmax(net(pool[0][0]), dim=1).numpy()
        train[batch] = batch / median_time(step, budget=budget)
        predict[batch] = median_time(infer, budget=budget) / batch
    return train, predict


def _rate(gflops):
    """GFLOP/s with one decimal, or two significant digits when smaller (a busy machine)."""
    return f"{gflops:.1f}" if gflops >= 0.1 else f"{gflops:.2g}"


def report(budget=0.3, plot=None, write=print):
    """Print the benchmark tables (and write a PNG of per-sample time when ``plot`` is a path)."""
    import datetime
    import os
    from .. import _core
    cap = _core.cpu_capability()
    peak = max(_core.measure_peak_gflops(0.2) for _ in range(3))  # a peak: the best of three
    write(f"fastnn benchmark, {datetime.date.today()}: {os.cpu_count()} cores, "
          f"{backend.get_num_threads()} threads, GEMM variant {cap}, numpy {np.__version__}; "
          f"medians of repeated calls, ratios from this run.")
    write(f"Measured {cap} float32 multiply-add peak on {backend.get_num_threads()} threads: "
          f"{peak:.0f} GFLOP/s.\n")

    write("float32 GEMM (GFLOP/s; % of the measured peak for that many threads)")
    write("| M x K @ K x N | threads | fastnn | % peak | numpy | fastnn / numpy |")
    write("|---|---:|---:|---:|---:|---:|")
    per_thread_peak = peak / backend.get_num_threads()
    for (m, n, k), nt, g_fast, g_np in gemm_table(budget=budget / 2):
        ratio = "n/a (no threadpoolctl)" if g_np is None else f"{g_fast / g_np:.2f}x"
        numpy_col = "n/a" if g_np is None else _rate(g_np)
        write(f"| {m}x{k} @ {k}x{n} | {nt} | {_rate(g_fast)} | {100 * g_fast / (per_thread_peak * nt):.0f}% | "
              f"{numpy_col} | {ratio} |")

    write("\ntrain_on_batch: one step of forward, softmax cross-entropy, backward, Adam (samples/s)")
    torch_peers = {sizes: torch_rates(sizes, TRAIN_BATCHES, budget, activation)
                   for sizes, activation in TRAIN_MODELS}
    with_torch = any(torch_peers.values())
    write("| model | batch | native | numpy reference | native / reference |" + (" pytorch |" if with_torch else ""))
    write("|---|---:|---:|---:|---:|" + ("---:|" if with_torch else ""))
    for sizes, activation in TRAIN_MODELS:
        label = "-".join(map(str, sizes)) + f" {activation}"
        peer = torch_peers[sizes]
        for batch, r in train_step_table(sizes, TRAIN_BATCHES, budget=budget, activation=activation):
            extra = f" {peer[0][batch]:,.0f} |" if peer else ""
            write(f"| {label} | {batch} | {r['native']:,.0f} | {r['numpy']:,.0f} | "
                  f"{r['native'] / r['numpy']:.2f}x |{extra}")

    rows = predict_table(mlp((784, 128, 10)), budget=budget)
    torch_predict = torch_rates((784, 128, 10), BATCH_SIZES, budget)[1] if with_torch else None
    write("\npredict, 784-128-10: time per sample")
    write("| batch | native | numpy reference | native / reference | native vs its batch 1 |"
          + (" pytorch |" if torch_predict else ""))
    write("|---:|---:|---:|---:|---:|" + ("---:|" if torch_predict else ""))
    single = rows[0][1]["native"]
    for batch, t in rows:
        extra = f" {format_time(torch_predict[batch])} |" if torch_predict else ""
        write(f"| {batch} | {format_time(t['native'])} | {format_time(t['numpy'])} | "
              f"{t['numpy'] / t['native']:.2f}x | {single / t['native']:.1f}x |{extra}")
    if plot:
        plot_per_sample(rows, plot, torch_predict)
        write(f"\nwrote {plot}")


def plot_per_sample(rows, path, torch_predict=None):
    """Log-log PNG of predict time per sample against batch size, one line per backend."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'fastnn-cpu[plot]'") from None
    batches = [b for b, _ in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in backend.BACKENDS:
        ax.plot(batches, [t[name] * 1e6 for _, t in rows], marker="o", label=f"fastnn {name}")
    if torch_predict:
        ax.plot(batches, [torch_predict[b] * 1e6 for b in batches], marker="o", label="pytorch")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="predict time per sample (us)",
           title="784-128-10: batch vs single sample")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_peak_memory(sizes=(784, 256, 256, 10), batch=512, samples=20_000, epochs=2):
    """Growth of peak resident memory (bytes) while ``fit`` trains an MLP, measured in a fresh
    process on Linux (peak from /proc/self/status, reset through /proc/self/clear_refs), or None
    elsewhere. The model is built, and a small warm-up model has run (code, imports, threads),
    before the measurement starts: what remains is the optimizer state and the training
    workspaces."""
    import json
    import subprocess
    import sys
    if not sys.platform.startswith("linux"):
        return None
    code = f"""
import gc, json, numpy as np, fastnn
from fastnn.tools import benchmark as fb
def status(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024
rng = np.random.default_rng(0)
x = rng.random(({samples}, {sizes[0]}), dtype=np.float32)
y = rng.integers(0, {sizes[-1]}, {samples})
model = fb.mlp({tuple(sizes)!r})
warm = fb.mlp(({sizes[0]}, 8, {sizes[-1]}))
warm.fit(x[:2 * {batch}], y[:2 * {batch}], batch_size={batch}, verbose=0)
gc.collect()
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
model.fit(x, y, batch_size={batch}, epochs={epochs}, verbose=0)
print(json.dumps([status("VmHWM") - base, model.count_params()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth, params = json.loads(out.stdout.strip().splitlines()[-1])
    return growth, params
