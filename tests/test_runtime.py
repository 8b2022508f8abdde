"""Run-time behaviour of the native module: fork safety, thread settings, GEMM variants."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import _core

from helpers import ROOT, SUBPROCESS_TIMEOUT

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")


def _parallel_workload():
    """Kernels large enough to enter their OpenMP regions; returns True when all results are right."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 300), dtype=np.float32)
    c = np.empty_like(a)
    _core.gemm(a, a, c)
    x = rng.standard_normal(1 << 16).astype(np.float32)
    y = _core.tanh_forward(x)
    logits = rng.standard_normal((1000, 10)).astype(np.float32)
    probs = _core.softmax_forward(logits)
    loss, _ = _core.sparse_softmax_cross_entropy(logits, rng.integers(0, 10, 1000))
    p, g = np.zeros(1 << 16, np.float32), np.ones(1 << 16, np.float32)
    _core.adam_update(p, g, np.zeros_like(p), np.zeros_like(p), 0.1, 0.9, 0.999, 1e-7, 1)
    return (np.allclose(c, a @ a, rtol=1e-4, atol=1e-3) and np.allclose(y, np.tanh(x), atol=1e-6)
            and np.allclose(probs.sum(1), 1, atol=1e-5) and np.isfinite(loss)
            and np.allclose(p, -0.1, rtol=1e-4))


def _wait(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@needs_fork
@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: no thread pool to break")
def test_fork_after_parallel_kernels_does_not_hang():
    fastnn.set_num_threads(2)
    assert _parallel_workload()  # the parent's pool is now running
    pid = os.fork()
    if pid == 0:  # child: must finish, single-threaded, with correct results
        try:
            ok = _parallel_workload() and _core.get_num_threads() == 1
        finally:
            os._exit(0 if ok else 3)
    assert _wait(pid, timeout=60) == 0, "child hung (killed after 60 s) or computed wrong results"
    assert _parallel_workload()  # the parent still runs in parallel afterwards
    assert _core.get_num_threads() == 2


@needs_fork
@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: threads cannot be requested")
def test_forked_child_refuses_more_threads_with_a_clear_error():
    _core.gemm(np.ones((300, 300), np.float32), np.ones((300, 300), np.float32),
               np.empty((300, 300), np.float32))
    pid = os.fork()
    if pid == 0:
        code = 6  # any other exception
        try:
            fastnn.set_num_threads(2)
            code = 4  # accepted: wrong
        except RuntimeError as exc:
            code = 0 if "forked" in str(exc) and "spawn" in str(exc) else 5
        finally:
            os._exit(code)
    assert _wait(pid, timeout=60) == 0


def test_cpu_capability_is_one_of_the_available_variants():
    available = _core.available_cpu_capabilities()
    assert available[0] == "generic" and _core.cpu_capability() in available
    with pytest.raises(ValueError, match="generic"):
        _core.set_cpu_capability("sse9")


def test_every_gemm_variant_agrees_with_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((67, 300))
    b = rng.standard_normal((300, 45))
    previous = _core.cpu_capability()
    try:
        for name in _core.available_cpu_capabilities():
            _core.set_cpu_capability(name)
            c = np.empty((67, 45))
            _core.gemm(a, b, c)
            np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12 * np.sqrt(300))
    finally:
        _core.set_cpu_capability(previous)


def test_cpu_capability_environment_override():
    import subprocess
    code = "import fastnn._core as c; print(c.cpu_capability())"
    env = {**os.environ, "FASTNN_CPU_CAPABILITY": "generic", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "generic"


@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: always one thread")
def test_set_num_threads_applies_to_every_python_thread():
    import threading
    seen = {}

    def worker():
        a = np.ones((300, 300), np.float32)
        _core.gemm(a, a, np.empty_like(a))
        seen["threads"] = fastnn.get_num_threads()

    for n in (1, 2):
        fastnn.set_num_threads(n)
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert seen["threads"] == n


@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: no pool for threadpoolctl to see")
def test_threadpoolctl_sees_and_limits_the_openmp_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl is an optional test tool")
    libs = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "openmp"]
    assert libs, "threadpoolctl found no OpenMP runtime in a process that loaded fastnn._core"
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _core.get_num_threads() == 1


@pytest.mark.skipif(not _core.openmp or fastnn.get_num_threads() < 2,
                    reason="the run-time choice of threads needs OpenMP and two or more threads")
def test_adaptive_threads_train_like_pinned_ones_and_pinning_is_kept():
    from fastnn.tools import benchmark as fb
    sizes = (784, 64, 10)
    pool = fb.batch_pool(sizes, 300, n_batches=3)
    weights = {}
    for setting in ("auto", 1):
        fastnn.set_num_threads(setting)
        assert _core.adaptive_threads() == (setting == "auto")
        model = fb.mlp(sizes)
        for i in range(60):  # enough runs for the tuner to probe another thread count
            model.train_on_batch(*pool[i % 3])
        program = model._programs["train"][1]
        chosen = program.chosen_threads(300)
        team = fastnn.get_num_threads()
        if setting == "auto":
            assert chosen in (team, (team + 1) // 2, 1)
        else:
            assert chosen == 0 and team == 1  # pinned: the tuner never ran
        weights[setting] = model.get_weights()
    for a, b in zip(weights["auto"], weights[1]):
        np.testing.assert_array_equal(a, b)
    fastnn.set_num_threads("auto")
    assert _core.adaptive_threads()


def test_set_num_threads_auto_is_the_only_word_accepted():
    with pytest.raises(ValueError, match="'auto'"):
        fastnn.set_num_threads("fast")


# -- FASTNN_CPU_CAPABILITY's spelling -------------------------------------------------------------
def test_cpu_capability_names_are_case_insensitive():
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTNN_CPU_CAPABILITY=" GENERIC ")
    code = "import warnings; warnings.simplefilter('error'); import fastnn; print(fastnn.backend._core.cpu_capability())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "generic"


def test_unknown_cpu_capability_is_a_warning_naming_the_valid_values():
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTNN_CPU_CAPABILITY="sse9")
    code = "import fastnn; print(fastnn.backend._core.cpu_capability())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CpuCapabilityWarning" in result.stderr and "'sse9'" in result.stderr
    assert "generic, avx2, avx512" in result.stderr
    best = fastnn.backend._core.available_cpu_capabilities()[-1]
    assert result.stdout.strip() == best  # the best variant is kept


@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: there is no second thread")
def test_core_round_trip_is_measured_between_two_threads_and_absent_on_one():
    fastnn.set_num_threads(2)
    try:
        ns = _core.measure_core_round_trip(0.02)
        # A real round trip: a cache line crossing cores takes tens of ns at least; even with the
        # partner thread descheduled for whole time slices the median chunk stays far below 0.1 s.
        assert 10.0 < ns < 1e8, ns
        fastnn.set_num_threads(1)
        assert _core.measure_core_round_trip(0.02) == 0.0  # one thread: nothing to measure
    finally:
        fastnn.set_num_threads("auto")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds must be positive"):
            _core.measure_core_round_trip(bad)


@needs_fork
@pytest.mark.skipif(not _core.openmp, reason="built without OpenMP: no thread pool to break")
def test_core_round_trip_in_a_forked_child_is_zero_and_does_not_hang():
    fastnn.set_num_threads(2)
    assert _core.measure_core_round_trip(0.01) > 0  # the parent's pool is running
    pid = os.fork()
    if pid == 0:  # the child has no pool: a two-thread region would wait forever
        try:
            ok = _core.measure_core_round_trip(0.01) == 0.0
        finally:
            os._exit(0 if ok else 3)
    try:
        assert _wait(pid, timeout=60) == 0, "child hung (killed after 60 s) or measured a round trip"
    finally:
        fastnn.set_num_threads("auto")
