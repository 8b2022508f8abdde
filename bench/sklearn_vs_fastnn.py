"""fastnn.sklearn's MLP estimators beside scikit-learn's own, on the same data with the same settings.

Datasets: scikit-learn's bundled digits, breast cancer (classification, accuracy) and diabetes
(regression, R^2), each split 75/25 with ``random_state=0`` and standardized on the training part;
and the shared MNIST set's 8,000/2,000 split (pixels in [0, 1]). Both libraries get the same
estimator parameters (hidden layers, activation, Adam, learning rate, batch size, L2 penalty) and
run exactly the same number of epochs (``tol=0``, ``n_iter_no_change`` above ``max_iter``, so
neither stops early). Wall time is ``fit`` alone; the score is on the held-out part.

Every measurement runs in a process of its own, rounds alternate which library goes first, the
table gives medians, and the other load on the machine is measured before and after:

    python bench/sklearn_vs_fastnn.py --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "shared", "data", "mnist")

# dataset -> (task, estimator parameters shared by both libraries)
SETTINGS = {
    "digits": ("classification", dict(hidden_layer_sizes=(100,), max_iter=100, batch_size=64,
                                      learning_rate_init=1e-3)),
    "breast_cancer": ("classification", dict(hidden_layer_sizes=(100,), max_iter=100, batch_size=32,
                                             learning_rate_init=1e-3)),
    "diabetes": ("regression", dict(hidden_layer_sizes=(16,), max_iter=100, batch_size=32,
                                    learning_rate_init=1e-2, alpha=1.0)),
    "mnist_8k": ("classification", dict(hidden_layer_sizes=(128,), max_iter=5, batch_size=64,
                                        learning_rate_init=1e-3)),
}


def load(name, mnist=MNIST):
    """(X_train, y_train, X_test, y_test) as float32 features."""
    import numpy as np
    if name == "mnist_8k":
        sys.path.insert(0, HERE)
        from recurrent_mnist import _data
        (x, y), (xt, yt) = _data(mnist)
        return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    return (scaler.transform(Xtr).astype(np.float32), ytr,
            scaler.transform(Xte).astype(np.float32), yte)


def estimator(library, name, max_iter=None):
    task, params = SETTINGS[name]
    params = dict(params, solver="adam", activation="relu", random_state=0, tol=0.0,
                  n_iter_no_change=10 ** 6, shuffle=True)
    if max_iter is not None:
        params["max_iter"] = max_iter
    if library == "fastnn":
        from fastnn import sklearn as lib
    else:
        from sklearn import neural_network as lib
    cls = lib.MLPClassifier if task == "classification" else lib.MLPRegressor
    return cls(**params)


def worker(library, name, max_iter=None, mnist=MNIST):
    """One fit and held-out score: {"seconds", "score"}."""
    X, y, Xt, yt = load(name, mnist)
    est = estimator(library, name, max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epoch count is fixed on purpose
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "score": float(est.score(Xt, yt))}


def _run(library, name, args):
    # the installed fastnn, as every benchmark (FASTNN_BENCH_PATH: another build to measure)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("FASTNN_BENCH_PATH", ""), os.environ.get("PYTHONPATH", "")] if p))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", library, "--dataset", name,
           "--mnist", args.mnist]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(SETTINGS))
    parser.add_argument("--mnist", default=MNIST)
    parser.add_argument("--worker", choices=["fastnn", "sklearn"])
    parser.add_argument("--dataset", choices=list(SETTINGS))
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dataset, mnist=args.mnist)))
        return
    from fastnn.tools.benchmark import (busy_note, core_round_trip, other_load, round_trip_note,
                                        round_trip_range)
    names = [n for n in args.datasets.split(",")
             if n != "mnist_8k" or os.path.exists(os.path.join(args.mnist, "t10k-labels-idx1-ubyte.gz"))]
    load_before = other_load()
    results, trips = {}, [core_round_trip()]
    for r in range(args.rounds):
        order = ("fastnn", "sklearn") if r % 2 == 0 else ("sklearn", "fastnn")
        for name in names:
            for library in order:
                results.setdefault((name, library), []).append(_run(library, name, args))
            trips.append(core_round_trip())
    load_after = other_load()
    print(f"other load (cores busy): {load_before:.2f} before, {load_after:.2f} after; "
          f"{args.rounds} rounds, medians; the cores' round trip {round_trip_range(trips)}")
    notes = {busy_note(load_before, "times"), busy_note(load_after, "times")} - {None}
    for note in notes or {round_trip_note(trips)} - {None}:
        print("NOTE:", note)
    print("| dataset | task, epochs | scikit-learn score | fastnn score | scikit-learn s | fastnn s "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        task, params = SETTINGS[name]
        sk, fa = results[(name, "sklearn")], results[(name, "fastnn")]
        sks = statistics.median(r["seconds"] for r in sk)
        fas = statistics.median(r["seconds"] for r in fa)
        metric = "accuracy" if task == "classification" else "R^2"
        print(f"| {name} | {metric}, {params['max_iter']} | "
              f"{statistics.median(r['score'] for r in sk):.3f} | "
              f"{statistics.median(r['score'] for r in fa):.3f} | {sks:.2f} | {fas:.2f} | "
              f"{sks / fas:.1f}x |")


if __name__ == "__main__":
    main()
