"""Command line: ``python -m fastnn demo [--mnist DIR]``, ``python -m fastnn bench [--plot PNG]``,
``python -m fastnn bench --peers`` (fit epochs beside PyTorch and TF-Keras, fastnn.tools.peers),
``python -m fastnn info`` (what is installed and how it was built) and ``python -m fastnn --version``.

The demo needs no files and no network: it shows a single-layer perceptron failing on XOR where a
two-layer network succeeds, trains an MLP on a generated 3-class spiral with a progress bar, and
prints how much faster per sample a batch is than single-sample calls on both backends.
With ``--mnist DIR`` it trains 784-128-10 on the MNIST IDX files in DIR instead.
"""
import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

from . import backend, datasets, optimizers, utils
from .tools import benchmark
from .layers import Dense, Flatten
from .models import Sequential


def _accuracy(model, x, y):
    pred = model.predict(x)
    if pred.shape[1] == 1:
        return float(np.mean((pred[:, 0] > 0.5) == (y.reshape(-1) > 0.5)))
    return float(np.mean(np.argmax(pred, axis=1) == y))


def xor_demo(seed):
    print("== XOR: one layer cannot separate it, two layers can ==")
    x, y = datasets.logic_gate("xor")
    utils.set_random_seed(seed)
    perceptron = Sequential([Dense(1, activation="sigmoid", input_dim=2)])
    perceptron.compile(optimizers.Adam(0.1), "binary_crossentropy", ["accuracy"])
    perceptron.fit(x, y, batch_size=4, epochs=300, verbose=0)
    mlp = Sequential([Dense(8, activation="tanh", input_dim=2), Dense(1, activation="sigmoid")])
    mlp.compile(optimizers.Adam(0.05), "binary_crossentropy", ["accuracy"])
    mlp.fit(x, y, batch_size=4, epochs=300, verbose=0)
    print("  x1 x2 | XOR | 1 layer | 2 layers")
    for xi, yi, p1, p2 in zip(x, y[:, 0], perceptron.predict(x)[:, 0], mlp.predict(x)[:, 0]):
        print(f"   {xi[0]:.0f}  {xi[1]:.0f} |  {yi:.0f}  |  {p1:.3f}  |  {p2:.3f}")
    print(f"  accuracy: 1 layer {_accuracy(perceptron, x, y):.2f}, 2 layers {_accuracy(mlp, x, y):.2f}\n")


def spiral_demo(seed, epochs):
    print("== Spiral: 3 interleaved classes in 2-D, MLP 2-64-64-3 (ReLU, Adam) ==")
    x, y = datasets.make_spiral(n_per_class=300, n_classes=3, noise=0.2, seed=seed)
    utils.set_random_seed(seed)
    order = utils.rng().permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    model = Sequential([Dense(64, activation="relu", input_dim=2), Dense(64, activation="relu"),
                        Dense(3, activation="softmax")])
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, verbose=1)
    loss, acc = model.evaluate(x[split:], y[split:])
    print(f"  held-out accuracy: {acc:.3f} (loss {loss:.4f})\n")


def mnist_demo(path, seed, epochs):
    print(f"== MNIST from {path}: 784-128-10 (ReLU, Adam, batch 32) ==")
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(path)
    print(f"  {len(x_train)} training and {len(x_test)} test images")
    utils.set_random_seed(seed)
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=1)
    loss, acc = model.evaluate(x_test, y_test)
    print(f"  test accuracy: {acc:.4f} (loss {loss:.4f})\n")


def timing_demo(budget):
    print("== Batch vs single sample: predict time per sample, 784-128-10 ==")
    model = benchmark.mlp((784, 128, 10))
    load = benchmark.other_load(0.3)
    rows = benchmark.predict_table(model, budget=budget)
    load = max(load or 0.0, benchmark.other_load(0.3) or 0.0)
    note = benchmark.busy_note(load, "speed-ups")  # times are shown, ratios would mislead
    single = rows[0][1]
    print(f"  {'batch':>6} | {'native':>10} | {'numpy ref':>10} |"
          + ("" if note else " native speed-up vs batch 1"))
    for batch, t in rows:
        print(f"  {batch:>6} | {benchmark.format_time(t['native']):>10} | "
              f"{benchmark.format_time(t['numpy']):>10} |"
              + ("" if note else f" {single['native'] / t['native']:>8.1f}x"))
    if note:
        print(f"  ({note}.)")
    else:
        print(f"  (medians; native vs numpy at batch 1: {single['numpy'] / single['native']:.1f}x faster)")


# ---- python -m fastnn info / --version -----------------------------------------------------------

# OpenMP specification dates (the value of _OPENMP) and the versions they name.
_OPENMP_VERSIONS = {199810: "1.0", 200203: "2.0", 200505: "2.5", 200805: "3.0", 201107: "3.1",
                    201307: "4.0", 201511: "4.5", 201811: "5.0", 202011: "5.1", 202111: "5.2"}


def _version_string():
    from . import __version__
    return f"fastnn {__version__} (Python {platform.python_version()}, NumPy {np.__version__})"


def _openmp_runtimes():
    """The OpenMP runtime libraries loaded in this process, with versions where known."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        found = [f"{i.get('internal_api')} {i.get('version') or ''} ({i.get('filepath')})".replace("  ", " ")
                 for i in threadpool_info() if i.get("user_api") == "openmp"]
        if found:
            return found
    try:  # Linux without threadpoolctl: the mapped libraries
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps if "omp" in line.rsplit("/", 1)[-1]}
        return sorted(libs) or ["none loaded"]
    except OSError:
        return ["unknown (pip install threadpoolctl to see it)"]


def _numpy_blas():
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict form
        return "unknown"


def _round_trip_text():
    ns = benchmark.core_round_trip()
    return ("not measured (one thread)" if ns is None else
            f"{ns:.0f} ns between two of the kernels' threads (the floor of a parallel region)")


def info_lines():
    """``python -m fastnn info`` as a list of lines: what is installed, how it was built, what runs."""
    from . import __version__
    lines = [f"fastnn {__version__} (distribution fastnn-cpu), imported from "
             f"{os.path.dirname(os.path.abspath(__file__))}",
             f"Python {platform.python_version()} ({sys.executable}), {platform.platform()}",
             f"NumPy {np.__version__}, BLAS: {_numpy_blas()}"]
    core = backend._core
    if core is None:
        lines += [f"backend: {backend.get_backend()} -- THE NATIVE EXTENSION IS NOT LOADED",
                  f"  {backend.native_error()}"]
        return lines
    build = getattr(core, "build_info", {})
    omp = build.get("openmp_version", 1 if core.openmp else 0)
    omp_text = (f"OpenMP {_OPENMP_VERSIONS.get(omp, omp)} ({omp})" if omp else
                "no OpenMP: serial build (FASTNN_NO_OPENMP=1, or libomp was missing on macOS)")
    lines += [f"backend: {backend.get_backend()} (native extension {core.__file__})",
              f"compiled with: {build.get('compiler', 'unknown')}, C++ {build.get('cplusplus', '?')}, "
              f"{omp_text}",
              f"build flags: optimized={build.get('optimized', '?')} fast-math={build.get('fast_math', '?')} "
              f"sanitizers={build.get('sanitizers', '?')}",
              f"OpenMP runtime: {'; '.join(_openmp_runtimes()) if core.openmp else 'none'}",
              f"CPU variants: compiled {', '.join(build.get('simd_variants_compiled', ('?',)))}; "
              f"this CPU runs {', '.join(core.available_cpu_capabilities())}; "
              f"chosen {core.cpu_capability()}"
              + (f" (FASTNN_CPU_CAPABILITY={os.environ['FASTNN_CPU_CAPABILITY']})"
                 if os.environ.get("FASTNN_CPU_CAPABILITY") else ""),
              f"threads: {backend.get_num_threads()} (os.cpu_count() = {os.cpu_count()}, "
              f"OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS', 'unset')})",
              f"cores' round trip: {_round_trip_text()}",
              f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()]
    return lines


def add_info_commands(parser, sub):
    """Register ``--version`` on ``parser`` and the ``info`` subcommand on ``sub``."""
    parser.add_argument("--version", action="version", version=_version_string())
    sub.add_parser("info", help="show the version, the backend, how the native extension was built, "
                                "OpenMP, threads and CPU variants")


def run_info():
    print("\n".join(info_lines()))
    return 0 if backend._core is not None else 1


def main(argv=None):
    if (lab_argv := _lab_argv(argv)) is not None: return lab_main(lab_argv)  # noqa: E701
    parser = argparse.ArgumentParser(prog="python -m fastnn", description="fastnn command line")
    sub = parser.add_subparsers(dest="command", required=True)
    add_info_commands(parser, sub)
    demo = sub.add_parser("demo", help="train small networks on built-in data and time them")
    demo.add_argument("--mnist", metavar="DIR", help="train 784-128-10 on the MNIST IDX files in DIR")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default 30 spiral, 5 MNIST)")
    demo.add_argument("--backend", choices=backend.BACKENDS, default=backend.get_backend())
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--budget", type=float, default=0.2, help="seconds of timing per table cell")
    bench = sub.add_parser("bench", help="print GEMM, training and batch-vs-single benchmark tables")
    bench.add_argument("--budget", type=float, default=0.3, help="seconds of timing per table cell")
    bench.add_argument("--plot", metavar="PNG", help="also write per-sample time vs batch size to PNG")
    bench.add_argument("--peers", action="store_true",
                       help="instead: a 60k-sample fit epoch of the course models in fastnn, its NumPy "
                            "reference, PyTorch and TF-Keras (when installed), each in its own process")
    bench.add_argument("--rounds", type=int, default=3, help="--peers: rounds over the frameworks")
    bench.add_argument("--samples", type=int, default=60_000, help="--peers: samples per epoch")
    bench.add_argument("--torch-python", metavar="PYTHON", help="--peers: a Python that has torch")
    bench.add_argument("--keras-python", metavar="PYTHON", help="--peers: a Python that has TF-Keras")
    args = parser.parse_args(argv)
    if args.command == "info":
        return run_info()

    if args.command == "bench":
        if not args.budget > 0:
            parser.error(f"--budget must be positive, got {args.budget}")
        if args.peers:
            if args.rounds < 1 or args.samples < 1:
                parser.error(f"--rounds and --samples must be at least 1, got {args.rounds} and {args.samples}")
            from .tools import peers
            peers.report(rounds=args.rounds, samples=args.samples, torch_python=args.torch_python,
                         keras_python=args.keras_python)
            return 0
        try:
            benchmark.report(budget=args.budget, plot=args.plot)
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    backend.set_backend(args.backend)
    print(f"fastnn demo on the {args.backend} backend "
          f"({backend.get_num_threads()} threads)\n")
    try:
        if args.mnist:
            mnist_demo(args.mnist, args.seed, args.epochs or 5)
        else:
            xor_demo(args.seed)
            spiral_demo(args.seed, args.epochs or 30)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    timing_demo(args.budget)
    return 0


def _lab_argv(argv):
    """The arguments after ``lab`` when the command is ``lab``, else None."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return argv[1:] if argv[:1] == ["lab"] else None


def lab_main(argv):
    """``python -m fastnn lab NAME|all [--quick] [--out DIR] [--lang en|ko] [--mnist DIR]`` and
    ``python -m fastnn lab --list``: run a lab (fastnn.labs), print its explanation, each claim with
    its measured numbers and PASS/FAIL, and where its figures are. Exit status 0 when every claim
    held, 1 when one failed, 2 when a lab could not run."""
    from . import labs
    parser = argparse.ArgumentParser(
        prog="python -m fastnn lab", description="run a lesson of the course notes: it measures "
        "its claims, draws figures and explains them (python -m fastnn lab --list names them)")
    parser.add_argument("name", nargs="?", help="the lab to run (see --list), or 'all'")
    parser.add_argument("--list", action="store_true", help="list the labs and exit")
    parser.add_argument("--quick", action="store_true", help="small data, few epochs: seconds")
    parser.add_argument("--out", metavar="DIR", help="directory for the figures "
                        "(default: fastnn-labs/NAME in the current directory)")
    parser.add_argument("--lang", choices=labs.LANGS, default="en", help="language of the text")
    parser.add_argument("--mnist", metavar="DIR", help="MNIST IDX files for the labs that train on "
                        "images (default: $FASTNN_MNIST or ../shared/data/mnist when present)")
    parser.add_argument("--html", metavar="DIR", help="also write a lesson book, DIR/index.html, "
                        "with the figures beside it (works offline)")
    args = parser.parse_args(argv)
    if args.list:
        for name in labs.names():
            fn = labs.get(name)
            print(f"  {name:<20} {fn.titles[args.lang]}")
        print("\nrun one: python -m fastnn lab NAME [--quick] [--lang ko]; all: python -m fastnn lab all")
        return 0
    if args.name is None:
        parser.error("name a lab (python -m fastnn lab --list shows them) or 'all'")
    names = labs.names() if args.name == "all" else [args.name]
    try:
        runs = [(n, labs.get(n)) for n in names]
    except ValueError as exc:
        parser.error(str(exc))
    status, results, unavailable = 0, [], {}
    for name, fn in runs:
        if args.html:
            out = str(Path(args.html) / name)
        elif args.out:
            out = args.out if len(runs) == 1 else str(Path(args.out) / name)
        else:
            out = str(Path("fastnn-labs") / name)
        try:
            result = fn(quick=args.quick, out=out, lang=args.lang, mnist=args.mnist)
        except (NotImplementedError, ImportError, FileNotFoundError, ValueError) as exc:
            print(f"== {name}: could not run: {exc}\n", file=sys.stderr)
            unavailable[name] = str(exc)
            status = max(status, 2) if len(runs) == 1 or not isinstance(exc, NotImplementedError) \
                else status
            continue
        results.append(result)
        print(result.report() + "\n")
        if not result.passed:
            status = max(status, 1)
    if args.html:
        from .labs.book import write_book
        print(f"lesson book: {write_book(args.html, results, args.lang, args.quick, unavailable)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
