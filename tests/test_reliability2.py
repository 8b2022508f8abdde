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


# -- 4 and 12. initializers: every one saves, loads and keeps its settings --------------------------
CATALOGUE_INITIALIZERS = [
    initializers.Zeros(), initializers.Ones(), initializers.Constant(0.25),
    initializers.RandomNormal(mean=5.0, stddev=3.0, seed=7), initializers.RandomUniform(-2.0, 1.0, seed=3),
    initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=2),
    initializers.VarianceScaling(scale=2.5, mode="fan_out", distribution="uniform", seed=4),
    initializers.GlorotUniform(seed=1), initializers.GlorotNormal(), initializers.HeUniform(),
    initializers.HeNormal(seed=9), initializers.LecunUniform(), initializers.LecunNormal(),
]


@pytest.mark.parametrize("init", CATALOGUE_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_04_12_every_initializer_round_trips_through_config_and_file(init, tmp_path):
    layer = Dense(3, kernel_initializer=init, bias_initializer=initializers.Constant(-1.5))
    again = layers.get({"class_name": "Dense", "config": layer.get_config()})
    assert type(again.kernel_initializer) is type(init)
    assert again.kernel_initializer.get_config() == init.get_config()
    assert again.bias_initializer.get_config() == {"value": -1.5}
    model = Sequential([layer])  # unbuilt: only the config describes the initializer
    model.compile(loss="mse")
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    assert loaded.layers[0].kernel_initializer.get_config() == init.get_config()
    model.build((None, 4))
    model.save(tmp_path / "b.fastnn")
    np.testing.assert_array_equal(load_model(tmp_path / "b.fastnn").get_weights()[0], model.get_weights()[0])


def test_12_random_normal_parameters_survive_an_unbuilt_save(tmp_path):
    model = Sequential([Dense(400, kernel_initializer=initializers.RandomNormal(mean=5, stddev=3, seed=7))])
    model.compile(loss="mse")
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    loaded.build((None, 50))
    kernel = loaded.get_weights()[0]
    assert abs(kernel.mean() - 5) < 0.1 and abs(kernel.std() - 3) < 0.1
    fresh = Sequential([Dense(400, kernel_initializer=initializers.RandomNormal(mean=5, stddev=3, seed=7))])
    fresh.build((None, 50))
    np.testing.assert_array_equal(kernel, fresh.get_weights()[0])  # seeded: the same draw


# -- 5. outputs that share memory with inputs --------------------------------------------------------
def test_05_overlapping_outputs_give_the_numpy_result(backend):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6)).astype(np.float32)
    b = rng.standard_normal((6, 6)).astype(np.float32)
    expected = a.astype(np.float64) @ b
    for target in ("a", "b"):
        aa, bb = a.copy(), b.copy()
        out = aa if target == "a" else bb
        ops.matmul(aa, bb, out=out)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    aa, c = a.copy(), None
    ops.gemm(aa, b, aa, alpha=2.0, beta=1.0)
    np.testing.assert_allclose(aa, 2 * expected + a, rtol=1e-4, atol=1e-4)
    x = a.copy()
    ops.dense_forward(x, b, np.ones(6, np.float32), out=x)
    np.testing.assert_allclose(x, expected + 1, rtol=1e-4, atol=1e-4)


def test_05_dense_backward_outputs_overlapping_inputs(backend):
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((4, 4)).astype(np.float32)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    w = rng.standard_normal((4, 4)).astype(np.float32)
    k = fastnn.backend.kernels()
    want_dx, want_dw = dy.astype(np.float64) @ w.T, x.T.astype(np.float64) @ dy
    dyc = dy.copy()
    dx, dw, _ = k.dense_backward(dyc, x, w, dx=dyc, dw=np.empty_like(w), db=np.empty(4, np.float32))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-4)


# -- 6. falsy settings survive a round trip ---------------------------------------------------------
def test_06_adamw_weight_decay_zero_round_trips(tmp_path):
    opt = optimizers.AdamW(weight_decay=0)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert not again.weight_decay
    model = small_model(optimizer=optimizers.AdamW(weight_decay=0.0))
    model.save(tmp_path / "m.fastnn")
    assert not load_model(tmp_path / "m.fastnn").optimizer.weight_decay


# -- 7. values that overflow the model's dtype --------------------------------------------------------
@pytest.mark.parametrize("kind", ["sample_weight", "class_weight", "learning_rate", "schedule"])
def test_07_values_overflowing_float32_are_refused(backend, kind):
    x = np.random.default_rng(0).standard_normal((8, 4))
    y = np.arange(8) % 3
    model = small_model()
    kwargs = {}
    if kind == "sample_weight":
        kwargs["sample_weight"] = np.full(8, 1e39)
    elif kind == "class_weight":
        kwargs["class_weight"] = {0: 1e39, 1: 1.0, 2: 1.0}
    elif kind == "learning_rate":
        model.optimizer.learning_rate = 1e39
    else:
        model.optimizer.learning_rate = fastnn.optimizers.schedules.ExponentialDecay(1e39, 10, 0.5)
    before = model.get_weights()
    with pytest.raises(ValueError, match="overflow"):
        model.fit(x, y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- 9. a layer shared by two models ------------------------------------------------------------------
def test_09_models_sharing_a_layer_give_correct_results_from_two_threads():
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


# -- 10. labels out of range on the NumPy backend -------------------------------------------------------
@pytest.mark.parametrize("label", [-1, 3])
def test_10_sparse_cross_entropy_labels_out_of_range(backend, label):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        ops.sparse_softmax_cross_entropy(np.zeros((2, 3), np.float32), [0, label])


# -- 11 and 20. malformed files --------------------------------------------------------------------------
def _rewrite_header(path, edit):
    import hashlib, json, struct
    from fastnn import saving
    data = path.read_bytes()
    magic, version, n = struct.unpack_from("<8sIQ", data)
    header = json.loads(data[20:20 + n])
    header = edit(header)
    hb = json.dumps(header).encode() if not isinstance(header, bytes) else header
    body = struct.pack("<8sIQ", magic, version, len(hb)) + hb + data[20 + n:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def _with(key, value):
    def edit(h):
        h[key] = value
        return h
    return edit


def _deep(h):
    return ("[" * 100000 + "]" * 100000).encode()


def _loss(name):
    def edit(h):
        h["compile_config"]["loss"]["class_name"] = name
        return h
    return edit


def _activation(h):
    h["model_config"]["layers"][1]["config"]["activation"] = "bogus"
    return h


@pytest.mark.parametrize("edit", [_with("dtype", "int64"), _with("dtype", "float16"), _with("dtype", "object"),
                                  _with("dtype", True), _deep, _with("arrays", 5), lambda h: [h],
                                  _loss("Loss"), _activation],
                         ids=["int64", "float16", "object", "bool", "deep", "arrays", "list", "Loss", "act"])
def test_11_20_malformed_checksum_valid_files_raise_model_file_error(tmp_path, edit):
    path = tmp_path / "m.fastnn"
    small_model().save(path)
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError):
        load_model(path)


# -- 13. the magic comes first -------------------------------------------------------------------------
def test_13_non_model_files_are_refused_from_their_first_bytes(tmp_path):
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        load_model("/dev/zero")  # endless: read whole, it would never return


def test_13_header_longer_than_the_file_is_refused(tmp_path):
    import struct
    from fastnn import saving
    path = tmp_path / "m.fastnn"
    path.write_bytes(struct.pack("<8sIQ", saving.MAGIC, 1, 1 << 40) + b"x" * 100)
    with pytest.raises(ModelFileError, match="header claims"):
        load_model(path)


# -- 15. failed builds roll back ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(None, -3), (None, 2.5), (None, 0), "abc"])
def test_15_28_bad_build_shapes_are_refused_and_change_nothing(shape):
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError):
        model.build(shape)
    assert not model.built and model.input_shape is None and not model.layers[0].built
    model.build((None, 2))
    assert model.predict(np.ones((1, 2)), verbose=0).shape == (1, 3)


def test_15_memory_error_in_build_rolls_back(tmp_path):
    model = Sequential([Dense(4), Dense(10**12)])  # 4 TB of bias: MemoryError after layer 1 built
    model.compile(loss="mse")
    with pytest.raises(MemoryError):
        model.build((None, 2))
    assert not any(l.built for l in model.layers) and model.input_shape is None
    model.layers[1].units = 3
    model.build((None, 2))
    model.save(tmp_path / "m.fastnn")
    assert load_model(tmp_path / "m.fastnn").predict(np.ones((1, 2)), verbose=0).shape == (1, 3)


@pytest.mark.parametrize("make", [lambda: initializers.RandomNormal(stddev=-1),
                                  lambda: initializers.VarianceScaling(scale=-1),
                                  lambda: initializers.TruncatedNormal(stddev=float("nan")),
                                  lambda: initializers.Constant(float("nan")),
                                  lambda: initializers.RandomUniform(1.0, -1.0)])
def test_15_21_bad_initializer_settings_are_refused_in_the_constructor(make):
    with pytest.raises(ValueError):
        make()


# -- 16. Ctrl-C during fit -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_16_sigint_during_fit_leaves_a_whole_number_of_steps(backend_name):
    code = f"""
        import os, signal, threading, numpy as np, fastnn
        from fastnn import layers, models
        fastnn.set_backend({backend_name!r})
        m = models.Sequential([layers.Dense(64, activation="relu", input_shape=(32,)), layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        x = np.random.rand(512, 32).astype(np.float32); y = np.random.rand(512, 2).astype(np.float32)
        m.train_on_batch(x[:8], y[:8])
        count = [0]
        class Count(fastnn.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                count[0] += 1
                if count[0] == 20:
                    threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            m.fit(x, y, epochs=1000, batch_size=8, verbose=0, callbacks=[Count()])
        except KeyboardInterrupt:
            pass
        # each applied step moved the weights and counted once
        print(m.optimizer.iterations - 1 == count[0] or m.optimizer.iterations - 1 == count[0] + 1,
              m.optimizer.iterations)
    """
    result = run_child(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("True"), result.stdout


def test_16_step_is_whole_under_sigint_as_seen_by_the_next_step():
    # deterministic form: the interrupt is held during a step and raised at the boundary
    from fastnn.models import _DeferredInterrupt
    with pytest.raises(KeyboardInterrupt):
        with _DeferredInterrupt() as held:
            os.kill(os.getpid(), signal.SIGINT)
            held_after_signal = held.pending
    assert held_after_signal


# -- 17. Optimizer.apply validates everything first -----------------------------------------------------
@pytest.mark.parametrize("grads", [lambda g: [g[0]], lambda g: g + [g[0]],
                                   lambda g: [g[0], np.ones((7,), np.float32)],
                                   lambda g: [g[0], np.array(["a", "b"])],
                                   lambda g: [g[0], np.full(2, 1e39)]])
def test_17_apply_checks_all_gradients_before_changing_anything(backend, grads):
    # (NaN and inf gradients are applied, as Keras does: test_clipping shows what clipping makes of them)
    params = [np.ones((3, 2), np.float32), np.ones(2, np.float32)]
    g = [np.full((3, 2), 0.5, np.float32), np.full(2, 0.5, np.float32)]
    opt = optimizers.Adam()
    with pytest.raises((ValueError, TypeError)):
        opt.apply(params, grads(g))
    assert opt.iterations == 0 and opt.variables() == []
    assert all((p == 1).all() for p in params)


def test_26_apply_accepts_float64_and_fortran_gradients_on_both_backends(backend):
    params = [np.ones((3, 2), np.float32)]
    opt = optimizers.SGD(0.1)
    opt.apply(params, [np.asfortranarray(np.full((3, 2), 1.0))])
    np.testing.assert_allclose(params[0], 0.9, rtol=1e-6)


# -- 18. zero features --------------------------------------------------------------------------------
def test_18_zero_features_is_a_clear_error_with_nothing_built(backend):
    model = Sequential([Dense(3)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="at least one feature"):
        model.fit(np.zeros((4, 0)), np.zeros((4, 3)), verbose=0)
    assert not model.built and model.optimizer.variables() == []


# -- 19. layer(x) keeps no reference -------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Dense(3), lambda: layers.BatchNormalization(),
                                  lambda: layers.LayerNormalization(), lambda: layers.Activation("relu"),
                                  lambda: layers.PReLU()])
def test_19_layer_call_keeps_no_reference_to_the_input(backend, make):
    import gc, weakref
    layer = make()
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    ref = weakref.ref(x)
    layer(x, training=True)
    del x
    gc.collect()
    assert ref() is None


# -- 21. constructor values ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: layers.LeakyReLU(float("nan")), lambda: layers.ReLU(negative_slope=float("nan")),
                                  lambda: Dense(2, activation={"name": "bogus"}),
                                  lambda: activations.Activation("elu", float("inf"))])
def test_21_constructor_values_that_break_later_are_refused(make):
    with pytest.raises(ValueError):
        make()


# -- 22. set_weights -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_22_set_weights_refuses_nan_inf_and_overflow(bad):
    model = small_model()
    weights = model.get_weights()
    new = [w.astype(np.float64) for w in weights]
    new[0][0, 0] = bad
    with pytest.raises(ValueError):
        model.set_weights(new)
    with pytest.raises(ValueError):
        model.layers[0].set_weights(new[:2])
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- 24. file permissions and path types ----------------------------------------------------------------
def test_24_saved_files_follow_the_umask_and_keep_their_mode(tmp_path):
    model = small_model()
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "a.fastnn")
    finally:
        os.umask(old)
    assert (tmp_path / "a.fastnn").stat().st_mode & 0o777 == 0o644
    os.chmod(tmp_path / "a.fastnn", 0o640)
    model.save(tmp_path / "a.fastnn")
    assert (tmp_path / "a.fastnn").stat().st_mode & 0o777 == 0o640


def test_24_bytes_and_pathlike_paths(tmp_path):
    model = small_model()
    model.save(os.fsencode(tmp_path / "b.fastnn"))
    model.save_weights(tmp_path / "w.fastnn")
    assert load_model(os.fsencode(tmp_path / "b.fastnn")).count_params() == model.count_params()


# -- 26. one behaviour on both backends ------------------------------------------------------------------
def test_26_masked_arrays_are_refused_on_both_backends(backend):
    x = np.ma.masked_array(np.ones((2, 3)), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match="masked"):
        ops.softmax(x)
    with pytest.raises(TypeError, match="masked"):
        small_model(features=3).predict(x, verbose=0)


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_26_dropout_seed_out_of_range(backend, seed):
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(np.ones((2, 2), np.float32), 0.5, seed=seed)


def test_26_gemm_alpha_zero_does_not_read_a(backend):
    a = np.full((2, 2), np.inf, np.float32)
    c = np.ones((2, 2), np.float32)
    ops.gemm(a, np.ones((2, 2), np.float32), c, alpha=0.0, beta=2.0)
    np.testing.assert_array_equal(c, 2.0)


@pytest.mark.parametrize("eps", [-1.0, 0.0])
def test_26_28_layer_norm_epsilon_must_be_positive(backend, eps):
    with pytest.raises(ValueError, match="epsilon"):
        ops.layer_norm(np.ones((2, 3), np.float32), epsilon=eps)


def test_28_batch_norm_negative_moving_variance(backend):
    one = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="moving_variance"):
        ops.batch_norm(np.ones((2, 3), np.float32), one, one * 0, one * 0, -one)


# -- 28. silently accepted arguments ------------------------------------------------------------------
def test_28_fit_shuffle_must_be_a_bool():
    model = small_model()
    with pytest.raises(ValueError, match="shuffle"):
        model.fit(np.ones((4, 4)), np.zeros(4), shuffle="False", verbose=0)


@pytest.mark.parametrize("key", [0.7, "a", None])
def test_28_class_weight_keys_must_be_integers(key):
    model = small_model()
    with pytest.raises(ValueError, match="class_weight keys"):
        model.fit(np.ones((4, 4)), np.zeros(4), class_weight={key: 1.0, 0: 1.0}, verbose=0)


# -- 29. finite values that overflow float32 ------------------------------------------------------------
def test_29_x_overflowing_float32_is_named_by_fit_and_predict(backend):
    model = small_model()
    x = np.ones((4, 4))
    x[1, 2] = 1e39
    with pytest.raises(ValueError, match="overflow float32"):
        model.fit(x, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match="overflow float32"):
        model.predict(x, verbose=0)


# -- 23. metric objects survive save and load ---------------------------------------------------------
def test_23_metric_objects_are_saved_and_restored(tmp_path):
    from fastnn import metrics
    objects = [metrics.PrecisionScore(average="macro", name="p_macro"), metrics.AUC(curve="PR"),
               metrics.Precision(thresholds=0.3, name="p30"), metrics.AUCScore(curve="PR", name="ap"),
               metrics.TopKCategoricalAccuracy(k=2), metrics.F1Score(average="weighted"),
               metrics.Accuracy(threshold=0.3)]
    model = small_model(metrics=["accuracy", *objects])
    x, y = np.random.default_rng(0).normal(size=(32, 4)), np.arange(32) % 3
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    assert loaded.metrics_names == model.metrics_names
    restored = loaded._metric_ids[1:]
    assert [type(m) for m in restored] == [type(m) for m in objects]
    assert [m.get_config() for m in restored] == [m.get_config() for m in objects]
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_23_a_metric_that_cannot_be_saved_is_named_not_dropped_silently(tmp_path):
    from fastnn import metrics
    custom = metrics.MeanMetricWrapper(lambda t, p: np.zeros(len(t)), name="zero")
    model = small_model(metrics=[custom, "accuracy"])
    with pytest.warns(UserWarning, match="zero.*not saved"):
        model.save(tmp_path / "m.fastnn")
    assert load_model(tmp_path / "m.fastnn").metrics_names == ["loss", "accuracy"]


def test_23_unknown_metric_class_in_a_file_is_a_model_file_error(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model(metrics=["accuracy"]).save(path)

    def edit(h):
        h["compile_config"]["metrics"] = [{"class_name": "Metric", "config": {}}]
        return h
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match="unknown metric"):
        load_model(path)


# -- 31. pickle and deepcopy of a compiled, trained model ----------------------------------------------
@pytest.mark.parametrize("clone", [lambda m: __import__("pickle").loads(__import__("pickle").dumps(m)),
                                   copy.deepcopy], ids=["pickle", "deepcopy"])
def test_31_trained_model_round_trips_through_pickle_and_deepcopy(backend, clone):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), np.arange(40) % 3
    model = small_model(metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    twin = clone(model)
    assert twin._lock is not model._lock
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    assert twin.optimizer.iterations == model.optimizer.iterations
    results = []
    for m in (twin, model):
        set_random_seed(5)
        history = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
        results.append((history.history["loss"], m.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


# -- 30. momentum turned on after the optimizer state was made --------------------------------------
def test_30_momentum_set_after_the_state_exists_grows_the_state(backend):
    make = lambda m: optimizers.SGD(0.1, momentum=m)  # SGD's only state is the velocity
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)

    def model_with(opt, weights=None):
        set_random_seed(0)
        m = Sequential([Dense(3, input_shape=(4,))])
        m.compile(optimizer=opt, loss="mse")
        if weights is not None:
            m.set_weights(weights)
        return m

    switched = model_with(make(0.0))
    switched.train_on_batch(x, y)
    after_one = switched.get_weights()
    switched.optimizer.momentum = 0.9  # the state was made without momentum
    for _ in range(3):
        switched.train_on_batch(x, y)
    # the same three steps from a fresh state made with momentum: velocity starts at zero
    fresh = model_with(make(0.9), after_one)
    plain = model_with(make(0.0), after_one)
    for _ in range(3):
        fresh.train_on_batch(x, y)
        plain.train_on_batch(x, y)
    for a, b, c in zip(switched.get_weights(), fresh.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)  # momentum took effect


def test_30_rmsprop_momentum_turned_on_later_trains_with_a_velocity(backend):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    set_random_seed(0)
    model = Sequential([Dense(3, input_shape=(4,))])
    model.compile(optimizer=optimizers.RMSprop(0.01), loss="mse")
    model.train_on_batch(x, y)
    assert model.optimizer._slots[0][2] is None  # no momentum velocity yet
    model.optimizer.momentum = 0.5
    model.train_on_batch(x, y)
    velocity = model.optimizer._slots[0][2]
    assert velocity is not None and velocity.shape == model.get_weights()[0].shape and np.any(velocity != 0)
    assert model.optimizer.iterations == 2


# -- 25. backend_scope is per thread ------------------------------------------------------------------
def test_25_backend_scopes_in_two_threads_do_not_mix():
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


def test_25_a_scope_in_another_thread_does_not_switch_a_running_fit():
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


def test_25_set_backend_inside_a_scope_lasts_until_the_scope_ends():
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


# -- 27. callbacks' files are checked when fit starts -------------------------------------------------
@pytest.mark.parametrize("name, match", [("m-{epoch}-{val_los:.2f}.fastnn", "names {val_los}"),
                                         ("m-{epoch.fastnn", "not a valid format"),
                                         ("m-{loss:d}.fastnn", "cannot be formatted"),
                                         ("m-{}.fastnn", "names {}")])
def test_27_bad_checkpoint_file_names_are_refused_before_training(tmp_path, name, match):
    model = small_model(metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    checkpoint = fastnn.callbacks.ModelCheckpoint(str(tmp_path / name))
    with pytest.raises(ValueError, match=match):
        model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, validation_split=0.25,
                  callbacks=[checkpoint])
    assert model.optimizer.iterations == 0 and model.optimizer._slots is None
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []


def test_27_checkpoint_file_names_with_log_keys_are_accepted(tmp_path):
    model = small_model(metrics=["accuracy"])
    name = "m-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}-{learning_rate:.0e}.fastnn"
    model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, validation_split=0.25,
              callbacks=[fastnn.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
                         fastnn.callbacks.ModelCheckpoint(str(tmp_path / name))])
    assert len(list(tmp_path.glob("m-0[12]-*.fastnn"))) == 2


def test_27_learning_rate_in_a_file_name_needs_a_callback_that_logs_it_first(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(np.ones((8, 4)), np.zeros(8), verbose=0,
                  callbacks=[fastnn.callbacks.ModelCheckpoint(str(tmp_path / "m-{learning_rate}.fastnn")),
                             fastnn.callbacks.LearningRateScheduler(lambda epoch, lr: lr)])


def test_27_checkpoint_creates_its_directory_as_keras(tmp_path):
    model = small_model()
    path = tmp_path / "new" / "deeper" / "m-{epoch}.fastnn"
    model.fit(np.ones((8, 4)), np.zeros(8), epochs=1, verbose=0,
              callbacks=[fastnn.callbacks.ModelCheckpoint(str(path), monitor="loss")])
    assert load_model(tmp_path / "new" / "deeper" / "m-1.fastnn").built


def test_27_checkpoint_under_a_file_and_csv_logger_in_a_missing_directory_fail_at_fit_start(tmp_path):
    (tmp_path / "plain").write_text("a file, not a directory")
    for cb, match in [(fastnn.callbacks.ModelCheckpoint(str(tmp_path / "plain" / "m.fastnn")), "cannot write"),
                      (fastnn.callbacks.CSVLogger(str(tmp_path / "missing" / "log.csv")), "does not exist")]:
        model = small_model()
        with pytest.raises(ValueError, match=match):
            model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0, callbacks=[cb])
        assert model.optimizer.iterations == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


# -- 28. FASTNN_CPU_CAPABILITY and categorical cross-entropy targets -----------------------------------
def test_28_cpu_capability_names_are_case_insensitive():
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTNN_CPU_CAPABILITY=" GENERIC ")
    code = "import warnings; warnings.simplefilter('error'); import fastnn; print(fastnn.backend._core.cpu_capability())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "generic"


def test_28_unknown_cpu_capability_is_a_warning_naming_the_valid_values():
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTNN_CPU_CAPABILITY="sse9")
    code = "import fastnn; print(fastnn.backend._core.cpu_capability())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CpuCapabilityWarning" in result.stderr and "'sse9'" in result.stderr
    assert "generic, avx2, avx512" in result.stderr
    best = fastnn.backend._core.available_cpu_capabilities()[-1]
    assert result.stdout.strip() == best  # the best variant is kept


@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_28_categorical_cross_entropy_targets_outside_0_1_are_refused(backend, bad):
    from fastnn import losses
    y = np.array([[bad, 1 - bad], [0.0, 1.0]], np.float32)
    p = np.array([[0.3, 0.7], [0.5, 0.5]], np.float32)
    for loss in (losses.CategoricalCrossentropy(), losses.CategoricalCrossentropy(from_logits=True)):
        with pytest.raises(ValueError, match=r"categorical_crossentropy expects .*targets in \[0, 1\]"):
            loss(y, p)
    model = small_model(features=2, units=2, loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        model.fit(np.ones((2, 2)), y, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# -- 13. declared shapes are bounded by the file's weights before anything is allocated -------------
def test_13_crafted_huge_layer_is_refused_without_allocating(tmp_path):
    path = tmp_path / "m.fastnn"
    small_model().save(path)

    def edit(h):  # 10**5 inputs x 10**5 units: 40 GB of kernel, from a file of a few hundred bytes
        first, dense = h["model_config"]["layers"][:2]
        assert first["class_name"] == "InputLayer" and dense["class_name"] == "Dense"
        first["config"]["input_shape"] = dense["config"]["input_shape"] = [10**5]
        dense["config"]["units"] = 10**5
        return h
    _rewrite_header(path, edit)
    code = f"""
        import resource, tracemalloc
        from fastnn.models import load_model
        from fastnn.saving import ModelFileError
        tracemalloc.start()
        try:
            load_model({str(path)!r})
        except ModelFileError as exc:
            print("refused:", exc)
        print("peak", tracemalloc.get_traced_memory()[1])
        print("rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
    result = run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "file holds only" in result.stdout, result.stdout
    peak = int(result.stdout.split("peak ")[1].split()[0])
    rss = int(result.stdout.split("rss_kib ")[1].split()[0])
    assert peak < 50 * 2**20 and rss < 1024 * 1024, (peak, rss)  # 40 GB declared; a 1 GiB ceiling


@pytest.mark.parametrize("shape", [[-1, 4], [2**40, 2**40]])
def test_13_negative_or_overflowing_array_shapes_are_refused(tmp_path, shape):
    path = tmp_path / "m.fastnn"
    small_model().save(path)

    def edit(h):
        h["arrays"][0]["shape"] = shape
        return h
    _rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match="does not fit"):
        load_model(path)


# -- 8. the bitwise promise is the native backend's, whatever sets the thread count ------------------
_TRAIN_AND_HASH = """
    import hashlib, sys
    import numpy as np
    import fastnn
    from fastnn import layers
    if sys.argv[1] == "threadpoolctl":
        import threadpoolctl
        threadpoolctl.threadpool_limits(int(sys.argv[2]))
    elif sys.argv[1] == "set_num_threads":
        fastnn.set_num_threads(int(sys.argv[2]))
    fastnn.set_backend("native")
    fastnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 64)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    m = fastnn.Sequential([layers.Input(shape=(64,)), layers.Dense(256, activation="relu"),
                           layers.BatchNormalization(), layers.Dropout(0.2),
                           layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=128, epochs=2, verbose=0)
    h = hashlib.sha256()
    for w in m.get_weights():
        h.update(w.tobytes())
    h.update(m.predict(x, verbose=0).tobytes())
    print(fastnn.get_num_threads(), h.hexdigest())
"""


@pytest.mark.parametrize("how", ["OMP_NUM_THREADS", "set_num_threads", "threadpoolctl"])
def test_08_native_training_is_bitwise_identical_on_1_and_2_threads(how):
    if how == "threadpoolctl":
        pytest.importorskip("threadpoolctl", reason="threadpoolctl is an optional test tool")
    runs = []
    for n in (1, 2):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("OMP_NUM_THREADS", None)
        if how == "OMP_NUM_THREADS":
            env["OMP_NUM_THREADS"] = str(n)
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(_TRAIN_AND_HASH), how, str(n)],
                                cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=SUBPROCESS_TIMEOUT, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        threads, digest = result.stdout.split()
        runs.append((int(threads), digest))
    if os.cpu_count() >= 2:
        assert runs[0][0] == 1 and runs[1][0] == 2  # the setting took effect
    assert runs[0][1] == runs[1][1]


# -- 14. scratch buffers: bounded between calls, released on failure ---------------------------------
@pytest.fixture
def small_cache_limit():
    previous = fastnn.backend.buffer_cache_limit()
    fastnn.backend.set_buffer_cache_limit(1 << 20)  # 1 MiB: a 4,096-row batch of 256 units exceeds it
    yield
    fastnn.backend.set_buffer_cache_limit(previous)


def _program_bytes(model, kind):
    return model._programs[kind][1].storage_bytes()


def test_14_buffers_of_a_batch_over_the_limit_are_freed_after_the_call(small_cache_limit):
    fastnn.set_backend("native")
    set_random_seed(0)
    model = Sequential([Dense(256, activation="relu", input_shape=(8,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4096, 8)).astype(np.float32), np.arange(4096) % 3
    big = model.predict(x, batch_size=4096, verbose=0)
    assert _program_bytes(model, "predict") == 0
    small = model.predict(x[:32], batch_size=32, verbose=0)
    np.testing.assert_array_equal(small, big[:32])
    kept = _program_bytes(model, "predict")
    assert 0 < kept <= 1 << 20  # a normal batch keeps its buffers
    model.predict(x[:32], batch_size=32, verbose=0)
    assert _program_bytes(model, "predict") == kept  # and reuses them: nothing allocated again
    model.fit(x, y, batch_size=4096, epochs=2, verbose=0)
    assert _program_bytes(model, "train") == 0
    model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0)
    kept = _program_bytes(model, "train")
    assert 0 < kept <= 1 << 20
    model.train_on_batch(x[:32], y[:32])
    assert _program_bytes(model, "train") == kept


def test_14_eager_buffers_over_the_limit_are_not_kept(backend, small_cache_limit):
    set_random_seed(0)
    model = Sequential([Dense(256, activation="relu", input_shape=(8,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(4096, 8)).astype(np.float32)
    kept = lambda layer: sum(b.nbytes for b in layer._buffers.values())
    model.evaluate(x, np.arange(4096) % 3, batch_size=4096, verbose=0)  # eager on both backends
    assert kept(model.layers[0]) == 0  # 4096 x 256 values: over the limit, freed
    assert all(kept(layer) <= 1 << 20 for layer in model.layers)
    model.evaluate(x[:32], np.arange(32) % 3, batch_size=32, verbose=0)
    assert 0 < kept(model.layers[0]) <= 1 << 20


def test_14_set_buffer_cache_limit_checks_its_argument():
    for bad in (-1, 1.5, "big", True):
        with pytest.raises(ValueError, match="buffer cache limit"):
            fastnn.backend.set_buffer_cache_limit(bad)


def test_14_memory_error_mid_growth_keeps_no_half_grown_buffers():
    code = """
        import resource
        import numpy as np
        import fastnn
        from fastnn.layers import Dense
        from fastnn.models import Sequential
        fastnn.set_backend("native")
        fastnn.set_num_threads(1)
        model = Sequential([Dense(256, activation="relu", input_shape=(4,)), Dense(256, activation="relu"),
                            Dense(3)])
        small = np.ones((8, 4), np.float32)
        expected = model.predict(small, verbose=0)
        def vm():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * resource.getpagesize()
        # each of the batch's buffers needs 400 MB; the address space allows about two of them
        resource.setrlimit(resource.RLIMIT_AS, (vm() + (900 << 20), resource.RLIM_INFINITY))
        x = np.ones((400_000, 4), np.float32)
        compiled = model._predict_program(x)
        try:
            model.predict(x, batch_size=len(x), verbose=0)
            print("no error")
        except MemoryError:
            print("MemoryError", compiled.storage_bytes())
        np.testing.assert_array_equal(model.predict(small, verbose=0), expected)
        print("ok")
    """
    result = run_child(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["MemoryError", "0", "ok"], result.stdout
