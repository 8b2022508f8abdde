"""Dropout: the counter-based mask (native and NumPy draw it bit for bit, on any thread count),
forward/backward against the reference and finite differences, and the layer's behaviour
(inverted scaling, identity in inference, seeds and step counter, validation).

Statistical tolerances are 5 standard errors of a binomial proportion: with n draws and keep
probability p, the kept fraction has standard error sqrt(p (1 - p) / n).
"""
import math
import re

import numpy as np
import pytest

import fastnn
from fastnn import _core as C
from fastnn import ops, optimizers
from fastnn import reference as R
from fastnn.layers import Dense, Dropout
from fastnn.reference.dropout import _mix, dropout_keep
from fastnn.utils import set_random_seed

DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]
SHAPES = [(1,), (7,), (3, 5), (33, 129), (2, 3, 4), (300, 200)]  # (300, 200) crosses 2**15


def test_mix_is_splitmix64():
    # splitmix64 seeded with 0 returns 0xE220A8397B1DCDAF first, then 0x6E789E6AA1B965F4:
    # its outputs are mix(k * 0x9E3779B97F4A7C15) for k = 1, 2, ... (Vigna's reference code).
    assert _mix(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert _mix((2 * 0x9E3779B97F4A7C15) % 2**64) == 0x6E789E6AA1B965F4
    arr = _mix(np.array([0x9E3779B97F4A7C15], dtype=np.uint64))
    assert int(arr[0]) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_native_draws_the_reference_mask_bit_for_bit(dtype, shape, rate):
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    seed, counter = 2**63 + 12345, 17
    y, mask = C.dropout_forward(x, rate, seed, counter)
    y_r, mask_r = R.dropout_forward(x, rate, seed, counter)
    assert y.dtype == mask.dtype == x.dtype and y.shape == mask.shape == shape
    np.testing.assert_array_equal(mask, mask_r)
    np.testing.assert_array_equal(y, y_r)   # one multiplication by the same factor
    scale = dtype(1.0 / (1.0 - rate))
    assert set(np.unique(mask)) <= {dtype(0), scale}
    np.testing.assert_array_equal(y, x * mask)
    dy = np.random.default_rng(1).normal(size=shape).astype(dtype)
    np.testing.assert_array_equal(C.dropout_backward(dy, mask), R.dropout_backward(dy, mask_r))
    np.testing.assert_array_equal(C.dropout_backward(dy, mask), dy * mask)


def test_mask_depends_only_on_seed_counter_and_index():
    x = np.ones(5000, np.float32)
    _, m = C.dropout_forward(x, 0.5, 3, 4)
    _, head = C.dropout_forward(x[:777], 0.5, 3, 4)   # element i's decision ignores the array size
    np.testing.assert_array_equal(head, m[:777])
    _, m2d = C.dropout_forward(x.reshape(50, 100), 0.5, 3, 4)   # and the shape: flat row-major index
    np.testing.assert_array_equal(m2d.ravel(), m)
    for seed, counter in ((3, 5), (4, 4), (2**64 - 1, 4)):
        _, other = C.dropout_forward(x, 0.5, seed, counter)
        agree = np.mean(other == m)
        assert abs(agree - 0.5) < 5 * math.sqrt(0.25 / x.size), (seed, counter, agree)  # independent


def test_same_seed_gives_the_same_mask_on_one_and_two_threads():
    x = np.random.default_rng(2).normal(size=(512, 300)).astype(np.float32)  # 153,600 > 2**15
    masks = []
    for threads in (1, 2, 3):
        fastnn.set_num_threads(threads)
        y, mask = C.dropout_forward(x, 0.3, 99, 1)
        masks.append((y.tobytes(), mask.tobytes()))
    assert masks[0] == masks[1] == masks[2]


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_kept_fraction_and_output_mean_match_the_rate(rate):
    n = 400_000
    keep = dropout_keep(n, rate, seed=7, counter=0)
    se = math.sqrt(rate * (1 - rate) / n)
    assert abs(keep.mean() - (1 - rate)) < 5 * se
    # inverted dropout preserves the mean: E[y] = x. For x = 1, y is 1/(1-rate) with probability
    # 1 - rate, else 0: standard deviation sqrt(rate / (1 - rate)), so the mean has s.e. that / sqrt(n).
    y, _ = C.dropout_forward(np.ones(n, np.float64), rate, 7, 0)
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(rate / (1 - rate) / n)
    x = np.random.default_rng(3).uniform(1, 2, n)
    y, _ = C.dropout_forward(x, rate, 8, 0)
    se_y = math.sqrt((x ** 2).mean() * rate / (1 - rate) / n)
    assert abs(y.mean() - x.mean()) < 5 * se_y


def test_threshold_is_exact_at_the_edges():
    assert dropout_keep(1000, 0.0, 1, 2).all()
    # the decision is (u >> 11) >= ceil(rate * 2**53): check it against Python integers
    key = _mix(_mix(5) ^ 9)
    rate = 0.3
    threshold = math.ceil(rate * 2**53)
    expected = [(_mix((key + (i + 1) * 0x9E3779B97F4A7C15) % 2**64) >> 11) >= threshold for i in range(64)]
    np.testing.assert_array_equal(dropout_keep(64, rate, 5, 9), expected)


@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 3)])
def test_reference_gradient_with_frozen_mask_matches_finite_differences(shape):
    # with (seed, counter) fixed the mask is frozen and y = x * mask is linear in x
    r = np.random.default_rng(4)
    x, w = r.normal(size=shape), r.normal(size=shape)
    seed, counter, rate = 11, 3, 0.4
    _, mask = R.dropout_forward(x, rate, seed, counter)
    assert 0 < (mask == 0).sum() < mask.size   # both kinds of element are exercised
    analytic = R.dropout_backward(w, mask)
    h = 1e-6
    numeric = np.empty_like(x)
    for i in np.ndindex(shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        numeric[i] = (np.sum(w * R.dropout_forward(xp, rate, seed, counter)[0])
                      - np.sum(w * R.dropout_forward(xm, rate, seed, counter)[0])) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_bindings_validate_rate_and_shapes():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1"):
        C.dropout_forward(x, 1.0, 0, 0)
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 4\)"):
        C.dropout_backward(x, np.ones((4, 3), np.float32))
    with pytest.raises(TypeError):
        C.dropout_forward(x, 0.5, -1, 0)   # seeds are unsigned 64-bit


# -- the layer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1.5, 1.0, -0.1, "0.5", True])
def test_rate_outside_0_1_raises_naming_it(rate):
    with pytest.raises(ValueError, match=re.escape(f"Dropout rate must be in [0, 1), got {rate!r}")):
        Dropout(rate)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "7"])
def test_bad_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        Dropout(0.5, seed=seed)


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_inference_is_the_identity_and_training_drops(backend):
    fastnn.set_backend(backend)
    x = np.random.default_rng(5).normal(size=(64, 50)).astype(np.float32)
    layer = Dropout(0.5, seed=1)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert layer.step == 0
    y = layer(x, training=True)
    assert layer.step == 1
    dropped = y == 0
    assert abs(dropped.mean() - 0.5) < 5 * math.sqrt(0.25 / x.size)
    np.testing.assert_array_equal(y[~dropped], x[~dropped] * np.float32(2.0))
    y2 = layer(x, training=True)
    assert not np.array_equal(y2, y)   # the counter advanced: a new mask
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)


def test_same_seed_same_masks_and_set_random_seed_repeats_unseeded_layers():
    x = np.ones((20, 30), np.float32)
    a, b = Dropout(0.3, seed=42), Dropout(0.3, seed=42)
    for _ in range(3):
        np.testing.assert_array_equal(a(x, training=True), b(x, training=True))
    outs = []
    for _ in range(2):
        set_random_seed(9)
        layer = Dropout(0.3)
        outs.append([layer(x, training=True) for _ in range(2)])
    for u, v in zip(*outs):
        np.testing.assert_array_equal(u, v)
    assert Dropout(0.3, seed=42).get_config()["seed"] == 42


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_predict_ignores_dropout_and_fit_uses_it(backend):
    fastnn.set_backend(backend)
    set_random_seed(0)
    x = np.random.default_rng(6).normal(size=(40, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = fastnn.Sequential([Dense(16, activation="relu", input_shape=(6,)), Dropout(0.5),
                               Dense(2, activation="softmax")])
    plain = fastnn.Sequential([Dense(16, activation="relu", input_shape=(6,)), Dense(2, activation="softmax")])
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x), plain.predict(x))
    np.testing.assert_array_equal(model(x), plain(x))
    assert not np.allclose(model(x, training=True), plain(x))
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    plain.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    assert model.evaluate(x, y) == plain.evaluate(x, y)
    loss_drop, loss_plain = model.train_on_batch(x, y), plain.train_on_batch(x, y)
    assert loss_drop != loss_plain
    assert model.layers[1].step == 2   # one model(x, training=True) call, one training step


def test_backends_draw_the_same_masks_during_training():
    def run(backend):
        fastnn.set_backend(backend)
        fastnn.set_floatx("float64")
        set_random_seed(3)
        x, y = fastnn.datasets.make_spiral(n_per_class=30, n_classes=3, seed=0)
        model = fastnn.Sequential([Dense(32, activation="relu", input_shape=(2,)), Dropout(0.3),
                                   Dense(3, activation="softmax")])
        model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        return model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"], model.get_weights()

    native, numpy_ = run("native"), run("numpy")
    np.testing.assert_allclose(native[0], numpy_[0], rtol=1e-10)
    for a, b in zip(native[1], numpy_[1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_training_is_bitwise_independent_of_thread_count():
    from fastnn.layers import Activation, BatchNormalization
    results = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        set_random_seed(4)
        x = np.random.default_rng(7).normal(size=(256, 64)).astype(np.float32)
        y = np.arange(256) % 4
        model = fastnn.Sequential([Dense(256, use_bias=False, input_shape=(64,)), BatchNormalization(),
                                   Activation("relu"), Dropout(0.2), Dense(4, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=128, epochs=2, verbose=0)
        results.append([w.tobytes() for w in model.get_weights()])
    assert results[0] == results[1]


def test_failed_training_call_leaves_the_step_counter_alone():
    set_random_seed(0)
    drop = Dropout(0.5)
    model = fastnn.Sequential([Dense(4, input_shape=(3,)), drop, Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.ones((5, 3), np.float32)
    model.train_on_batch(x, np.zeros(5))
    assert drop.step == 1
    with pytest.raises(ValueError):
        model.train_on_batch(x, np.full(5, 7))
    with pytest.raises(ValueError):
        model.fit(np.ones((5, 4), np.float32), np.zeros(5), verbose=0)
    assert drop.step == 1


# -- the seed's range -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-1, 2**64])
def test_dropout_seed_out_of_range_is_refused(backend, seed):
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(np.ones((2, 2), np.float32), 0.5, seed=seed)
