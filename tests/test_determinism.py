"""Determinism: with the same seed, native training gives bitwise-identical weights, optimizer
state, history and predictions on 1 and 2 threads (whether ``set_num_threads``, ``OMP_NUM_THREADS``
or threadpoolctl sets the count) and on reruns. ``test_kernels`` checks each kernel on 1 vs 2
threads; ``test_recurrent`` the recurrent models.
"""
import os
import subprocess
import sys
import textwrap

import pytest

import fastnn
from fastnn import optimizers
from fastnn.layers import BatchNormalization, Dense, Dropout
from fastnn.models import Sequential
from fastnn.utils import set_random_seed

from helpers import ROOT, SUBPROCESS_TIMEOUT, model_state, same_bits


def _train_for_determinism(threads):
    fastnn.set_num_threads(threads)
    x, y = fastnn.datasets.make_spiral(n_per_class=200, n_classes=3, seed=0)
    set_random_seed(42)
    model = Sequential([Dense(64, activation="relu", input_shape=(2,)), BatchNormalization(),
                        Dropout(0.2, seed=7), Dense(64, activation="tanh"),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=300, epochs=4, verbose=0, validation_split=0.25)
    return model, history.history, model.predict(x)


def test_same_seed_gives_bitwise_identical_training_on_1_and_2_threads_and_reruns(backend):
    """600 spiral points, batches of 300 rows (past the row-parallel thresholds of the softmax,
    loss and norm kernels), batch norm, dropout, gradient clipping, Adam: the weights, optimizer
    state, history and predictions are bitwise equal on 1 thread, 2 threads, and a rerun."""
    runs = [_train_for_determinism(t) for t in (1, 2, 2, 1)]
    ref_model, ref_history, ref_pred = runs[0]
    for model, history, pred in runs[1:]:
        assert model_state(model)["weights"] == model_state(ref_model)["weights"]
        assert model_state(model)["slots"] == model_state(ref_model)["slots"]
        assert history == ref_history
        assert same_bits(pred, ref_pred)


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
def test_native_training_is_bitwise_identical_on_1_and_2_threads(how):
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
