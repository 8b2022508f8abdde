"""Threads and processes: concurrent predict is bitwise the serial result, concurrent fit on one
model is a serialisation, models sharing a layer share its lock; ``set_num_threads`` is bounded and
a refused thread creation is an exception; fork after parallel kernels, fork during fit, a daemon
thread inside a kernel at exit; ``backend_scope`` is per thread; fastnn beside scikit-learn's or
PyTorch's OpenMP in one process. Process-level checks run in child interpreters with timeouts, so
that an abort or a hang fails the test instead of the run.
"""
import json
import os
import textwrap
import threading

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.layers import Dense
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import (
    SUBPROCESS_TIMEOUT, blobs, classifier, numeric_state, run_child, run_python, same_bits,
    small_model, weights_equal)


def _start_together(targets):
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SUBPROCESS_TIMEOUT)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def test_eight_threads_predicting_on_one_model_match_serial(backend):
    """Each thread predicts its own inputs 5 times (batch sizes 1..64, through predict and
    model(x)); every result equals the serial prediction bit for bit."""
    fastnn.set_num_threads(2)
    model = classifier(features=32, hidden=64, classes=10)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(n, 32)).astype(np.float32) for n in (1, 3, 8, 17, 33, 64, 300, 5)]
    # (the numpy backend's sums may depend on the batch size, so each call is compared with the
    # serial call of the same batch size)
    calls = [lambda x: model.predict(x), lambda x: model.predict(x, batch_size=7), lambda x: model(x)]
    serial = [[call(x) for call in calls] for x in inputs]
    results = [[] for _ in inputs]

    def worker(i):
        def run():
            for _ in range(5):
                results[i].append([call(inputs[i]) for call in calls])
        return run

    _start_together([worker(i) for i in range(8)])
    for want, got in zip(serial, results):
        assert len(got) == 5
        assert all(same_bits(g, w) for rep in got for g, w in zip(rep, want))


def test_concurrent_fit_on_one_model_is_a_serialisation(backend):
    """Two threads fit the same model on different data at once. Calls on one model hold its lock,
    so the outcome must equal running the two fits one after the other, in one order or the
    other: weights, optimizer state and each thread's History match that serial run exactly (the
    two orders give different weights, checked, so the test can tell). A third thread predicting
    meanwhile sees the weights before or after a whole fit, never a mixture."""
    xa, ya = blobs(n=40, seed=1)
    xb, yb = blobs(n=40, seed=2)

    def fit(model, x, y):
        return model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]

    def serial(order):
        model = classifier()
        set_random_seed(11)
        losses_ = {}
        for key in order:
            losses_[key] = fit(model, *(xa, ya) if key == "a" else (xb, yb))
        return model, losses_

    ab, ab_losses = serial("ab")
    ba, ba_losses = serial("ba")
    assert not weights_equal(ab, ba)
    start = classifier()
    states = [start.predict(xa)] + [m.predict(xa) for m in (ab, ba)]
    for _ in range(3):
        model = classifier()
        set_random_seed(11)
        got, seen = {}, []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(model.predict(xa))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            _start_together([lambda: got.__setitem__("a", fit(model, xa, ya)),
                             lambda: got.__setitem__("b", fit(model, xb, yb))])
        finally:
            stop.set()
            watcher.join()
        if weights_equal(model, ab):
            assert got == ab_losses and numeric_state(model) == numeric_state(ab)
        else:
            assert weights_equal(model, ba), "concurrent fits gave neither serial result"
            assert got == ba_losses and numeric_state(model) == numeric_state(ba)
        middle = serial("a")[0].predict(xa), serial("b")[0].predict(xa)
        allowed = states + list(middle)
        assert all(any(same_bits(p, s) for s in allowed) for p in seen)


_FORK_POOL = """
    import multiprocessing as mp, numpy as np, fastnn
    from fastnn.layers import Dense
    fastnn.set_num_threads(2)
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([Dense(256, activation="relu", input_shape=(300,)), Dense(10, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(2048, 300)).astype(np.float32)
    want = model.predict(x)                      # parallel GEMM and softmax in the parent
    def child(lo):
        return model.predict(x[lo:lo + 512])
    with mp.get_context("fork").Pool(2) as pool:
        parts = pool.map_async(child, range(0, 2048, 512)).get(timeout=100)
    got = np.concatenate(parts)
    assert got.tobytes() == want.tobytes(), "children predicted differently"
    assert fastnn.get_num_threads() == 2
    print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_pool_after_parallel_kernels_finishes():
    """A multiprocessing fork pool started after the parent ran 2-thread kernels: the children
    predict (bitwise as the parent) and the pool finishes. test_runtime's
    test_fork_after_parallel_kernels_does_not_hang covers a bare os.fork and every kernel family."""
    out = run_python(_FORK_POOL)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


_WITH_OTHER = """
    import json, sys
    import numpy as np
    first, second = sys.argv[1:3] if len(sys.argv) > 2 else ("{first}", "{second}")
    mods = {{}}
    for name in (first, second):
        mods[name] = __import__(name)
    import fastnn
    fastnn.set_num_threads(2)
    a = np.random.default_rng(0).normal(size=(400, 400)).astype(np.float32)
    c = fastnn.ops.matmul(a, a)
    ok_fastnn = bool(np.allclose(c, a.astype(np.float64) @ a, rtol=1e-4, atol=1e-2))
    other = "{other}"
    if other == "sklearn":
        from sklearn.cluster import KMeans           # OpenMP (its own bundled libgomp)
        from sklearn.ensemble import HistGradientBoostingClassifier
        x = np.random.default_rng(1).normal(size=(2000, 5))
        labels = KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(x)
        score = HistGradientBoostingClassifier(max_iter=5).fit(x, labels).score(x, labels)
        ok_other = len(set(labels.tolist())) == 3 and score > 0.9
    else:
        import torch
        t = torch.from_numpy(a)
        ok_other = bool(np.allclose((t @ t).numpy(), c, rtol=1e-4, atol=1e-2))
    c2 = fastnn.ops.matmul(a, a)                        # fastnn again after the other runtime ran
    print(json.dumps({{"fastnn": ok_fastnn and c2.tobytes() == c.tobytes(), "other": bool(ok_other)}}))
"""


@pytest.mark.parametrize("other", ["sklearn", "torch"])
@pytest.mark.parametrize("fastnn_first", [True, False], ids=["fastnn_first", "other_first"])
def test_fastnn_beside_sklearn_or_torch_in_one_process(other, fastnn_first):
    """Both import orders, then a 2-thread fastnn GEMM, the other library's OpenMP work, and
    fastnn again: correct results, exit code 0, no OpenMP duplicate-runtime message."""
    module = "sklearn" if other == "sklearn" else "torch"
    import importlib.util
    if importlib.util.find_spec(module) is None:
        pip_name = "scikit-learn" if other == "sklearn" else "torch"
        pytest.skip(f"{module} is not installed: pip install {pip_name} to run this check")
    first, second = ("fastnn", module) if fastnn_first else (module, "fastnn")
    out = run_python(_WITH_OTHER.format(first=first, second=second, other=other))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"fastnn": True, "other": True}
    assert "OMP: Error" not in out.stderr and "already initialized" not in out.stderr


def test_daemon_thread_in_native_call_at_exit_exits_cleanly():
    code = """
        import threading, time, numpy as np, fastnn
        from fastnn import layers, models
        m = models.Sequential([layers.Dense(256, activation="relu"), layers.Dense(256)])
        m.build((None, 256))
        x = np.random.rand(4000, 256).astype(np.float32)
        started = threading.Event()
        def run():
            while True:
                started.set()
                m.predict(x, verbose=0)
        for _ in range(2):
            threading.Thread(target=run, daemon=True).start()
        started.wait()
        time.sleep(0.05)
        print("main done", flush=True)
    """
    for _ in range(5):  # the abort depended on where the daemon thread was: try several exits
        result = run_child(code)
        assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
        assert "terminate called" not in result.stderr


@pytest.mark.parametrize("n", [3000, 40000, 10**9])
def test_set_num_threads_beyond_the_bound_is_a_value_error(n):
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match="at most"):
        fastnn.set_num_threads(n)
    assert fastnn.get_num_threads() == before
    assert np.allclose(ops.matmul(np.eye(3, dtype=np.float32), np.ones((3, 2), np.float32)), 1)


def test_set_num_threads_accepts_the_bound_itself():
    bound = fastnn.backend._core.max_num_threads()
    assert bound == 4 * (os.cpu_count() or 1)
    fastnn.set_num_threads(bound)
    assert fastnn.get_num_threads() == bound


def test_thread_creation_refused_by_the_os_is_an_exception():
    # RLIMIT_NPROC limits the threads of this user, but not root's: there is nothing to refuse.
    if os.geteuid() == 0:
        pytest.skip("root ignores RLIMIT_NPROC, so the OS never refuses a thread here")
    code_prefix = ""
    code = code_prefix + textwrap.dedent("""
        import resource, fastnn
        soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))
        n = fastnn.backend._core.max_num_threads()
        try:
            fastnn.set_num_threads(n)
        except RuntimeError as e:
            print("refused:", e)
        else:
            print("accepted")
        import numpy as np
        print(float(fastnn.ops.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))[0, 0]))
    """)
    result = run_child(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: set_num_threads" in result.stdout, result.stdout
    assert result.stdout.strip().endswith("2.0")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_forked_during_fit_can_predict():
    code = """
        import os, sys, threading, time, numpy as np, fastnn
        from fastnn import layers, models
        m = models.Sequential([layers.Dense(64, activation="relu", input_shape=(32,)), layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        x = np.random.rand(4096, 32).astype(np.float32); y = np.random.rand(4096, 2).astype(np.float32)
        inside = threading.Event()
        class Signal(fastnn.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                inside.set(); time.sleep(0.01)
        t = threading.Thread(target=lambda: m.fit(x, y, epochs=3, batch_size=64, verbose=0,
                                                  callbacks=[Signal()]), daemon=True)
        t.start(); inside.wait()
        pid = os.fork()
        if pid == 0:
            try:
                p = m.predict(x[:10], verbose=0)
                os._exit(0 if p.shape == (10, 2) else 3)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        t.join()
    """
    result = run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "child 0" in result.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_stays_single_threaded_whatever_sets_the_threads():
    pytest.importorskip("threadpoolctl", reason="the test raises the thread count with threadpoolctl")
    code = """
        import os, numpy as np, fastnn, threadpoolctl
        fastnn.set_num_threads(2)
        a = np.random.rand(300, 300).astype(np.float32)
        fastnn.ops.matmul(a, a)
        pid = os.fork()
        if pid == 0:
            with threadpoolctl.threadpool_limits(2, user_api="openmp"):
                r = fastnn.ops.matmul(a, a)
            os._exit(0 if np.allclose(r, a @ a, rtol=1e-4) else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """
    result = run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "child 0" in result.stdout


def test_models_sharing_a_layer_give_correct_results_from_two_threads():
    set_random_seed(0)
    shared = Dense(64, activation="relu", input_shape=(32,))
    a = Sequential([shared, Dense(8)])
    b = Sequential([shared, Dense(4)])
    xs = [np.random.default_rng(i).standard_normal((257, 32)).astype(np.float32) for i in range(2)]
    want = [a(xs[0]), b(xs[1])]
    errors = []

    def run(model, x, expected):
        for _ in range(30):
            if not np.array_equal(model(x), expected):
                errors.append(model.name)
    threads = [threading.Thread(target=run, args=(a, xs[0], want[0])),
               threading.Thread(target=run, args=(b, xs[1], want[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_backend_scopes_in_two_threads_do_not_mix():
    from fastnn import backend as backend_module
    from fastnn import native, reference
    fastnn.set_backend("native")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def thread_a():  # enters first, leaves first
        with fastnn.backend_scope("numpy"):
            a_in.set()
            b_in.wait(10)
            seen["a"] = (fastnn.get_backend(), backend_module.kernels())
        a_out.set()
        seen["a_after"] = fastnn.get_backend()

    def thread_b():  # enters second, leaves last
        a_in.wait(10)
        with fastnn.backend_scope("native"):
            b_in.set()
            a_out.wait(10)
            seen["b"] = (fastnn.get_backend(), backend_module.kernels())
        seen["b_after"] = fastnn.get_backend()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    a_in.wait(10)
    seen["main_during"] = (fastnn.get_backend(), backend_module.kernels())
    for t in threads:
        t.join(20)
    assert seen["a"] == ("numpy", reference)
    assert seen["b"] == ("native", native.kernels)
    assert seen["main_during"] == ("native", native.kernels)  # another thread's scope is not ours
    assert seen["a_after"] == seen["b_after"] == fastnn.get_backend() == "native"


def test_a_backend_scope_in_another_thread_does_not_switch_a_running_fit():
    from fastnn import backend as backend_module
    from fastnn import native
    fastnn.set_backend("native")
    model = small_model()
    seen, inside, done = [], threading.Event(), threading.Event()

    class Probe(fastnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                inside.wait(10)
            seen.append(backend_module.kernels() is native.kernels)

    def other():
        with fastnn.backend_scope("numpy"):
            inside.set()
            done.wait(10)

    t = threading.Thread(target=other)
    t.start()
    model.fit(np.ones((16, 4)), np.zeros(16), batch_size=4, epochs=1, verbose=0, callbacks=[Probe()])
    done.set()
    t.join(10)
    assert inside.is_set() and seen and all(seen)


def test_set_backend_inside_a_scope_lasts_until_the_scope_ends():
    fastnn.set_backend("native")
    with fastnn.backend_scope("numpy"):
        fastnn.set_backend("native")
        assert fastnn.get_backend() == "native"
        with pytest.raises(ValueError, match="backend must be"):
            fastnn.backend_scope("cuda").__enter__()
    assert fastnn.get_backend() == "native"
    with fastnn.backend_scope("native"):
        fastnn.set_backend("numpy")
    assert fastnn.get_backend() == "native"
