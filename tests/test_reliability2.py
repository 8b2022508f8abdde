"""Reliability, round two (issue 14): one test, or a small group, per numbered item.

Each test name starts with the item number (``test_05_...`` proves item 5). Process-level items
(the daemon thread at exit, fork, thread creation) run in subprocesses with timeouts, so that an
abort or a hang fails the test instead of the run.
"""
import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import activations, initializers, layers, ops, optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential, load_model
from fastnn.saving import ModelFileError
from fastnn.utils import set_random_seed

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["native", "numpy"]
SUBPROCESS_TIMEOUT = 120


@pytest.fixture(params=BACKENDS)
def backend(request):
    fastnn.set_backend(request.param)
    return request.param


def run_child(code, timeout=SUBPROCESS_TIMEOUT):
    """Run ``code`` in a fresh interpreter that imports fastnn from this tree."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def small_model(seed=0, features=4, units=3, **compile_args):
    set_random_seed(seed)
    model = Sequential([Dense(5, activation="relu", input_shape=(features,)), Dense(units, activation="softmax")])
    model.compile(optimizer=compile_args.pop("optimizer", "adam"),
                  loss=compile_args.pop("loss", "sparse_categorical_crossentropy"), **compile_args)
    return model


# -- 1. a daemon thread inside a native call when the interpreter exits ----------------------------
def test_01_daemon_thread_in_native_call_at_exit_exits_cleanly():
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


# -- 2. set_num_threads has a bound -----------------------------------------------------------------
@pytest.mark.parametrize("n", [3000, 40000, 10**9])
def test_02_set_num_threads_beyond_the_bound_is_a_value_error(n):
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match="at most"):
        fastnn.set_num_threads(n)
    assert fastnn.get_num_threads() == before
    assert np.allclose(ops.matmul(np.eye(3, dtype=np.float32), np.ones((3, 2), np.float32)), 1)


def test_02_the_bound_itself_is_accepted():
    bound = fastnn.backend._core.max_num_threads()
    assert bound == 4 * (os.cpu_count() or 1)
    fastnn.set_num_threads(bound)
    assert fastnn.get_num_threads() == bound


def test_02_thread_creation_refused_by_the_os_is_an_exception():
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


# -- 3. fork --------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_03_child_forked_during_fit_can_predict():
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
def test_03_forked_child_stays_single_threaded_whatever_sets_the_threads():
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
