"""Tests of ``fastnn.initializers`` against their definitions (Keras VarianceScaling family).

Statistics are taken on a (400, 300) kernel: fan_in = 400, fan_out = 300, n = 120,000 samples.
The standard error of the sample variance is var * sqrt((kurtosis - 1) / n): 0.26% for a uniform
(kurtosis 1.8) and under 0.35% for a normal truncated at 2 sigma, so a 2.5% tolerance is more than
7 standard errors yet far below the gaps between wrong definitions (fan_out instead of fan_in is
25% off here, a truncated normal without the 0.8796 correction 23% off). The mean is allowed
5 standard errors, sqrt(var / n).
"""
import math

import numpy as np
import pytest

import fastnn
from fastnn import initializers, layers, optimizers
from fastnn.layers import Dense
from fastnn.models import Sequential, load_model
from fastnn.utils import set_random_seed

SHAPE = (400, 300)
FAN_IN, FAN_OUT = SHAPE
N = SHAPE[0] * SHAPE[1]
VAR_RTOL = 0.025

# name -> (variance, "uniform" or "truncated")
DEFINITIONS = {
    "glorot_uniform": (2 / (FAN_IN + FAN_OUT), "uniform"),
    "glorot_normal": (2 / (FAN_IN + FAN_OUT), "truncated"),
    "he_uniform": (2 / FAN_IN, "uniform"),
    "he_normal": (2 / FAN_IN, "truncated"),
    "lecun_uniform": (1 / FAN_IN, "uniform"),
    "lecun_normal": (1 / FAN_IN, "truncated"),
}


def check_moments(w, variance, kind):
    w = w.astype(np.float64)
    assert abs(w.mean()) < 5 * math.sqrt(variance / N), f"mean {w.mean()}"
    assert w.var() == pytest.approx(variance, rel=VAR_RTOL)
    if kind == "uniform":
        limit = math.sqrt(3 * variance)  # U(-a, a) has variance a^2 / 3
        assert np.abs(w).max() <= limit * (1 + 1e-6)
        assert np.abs(w).max() > 0.999 * limit
        # flat histogram: each tenth of [-a, a] holds a tenth of the samples (+- 5 s.e.)
        counts, _ = np.histogram(w, bins=10, range=(-limit, limit))
        np.testing.assert_allclose(counts / N, 0.1, atol=5 * math.sqrt(0.09 / N))
    else:
        stddev = math.sqrt(variance) / 0.87962566103423978  # of the normal before truncation
        assert np.abs(w).max() <= 2 * stddev * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * 2 * stddev
        # a normal, not a uniform: about 68.3% / 0.9545 = 71.6% of the mass within one stddev
        inside = np.mean(np.abs(w) < stddev)
        assert inside == pytest.approx(0.6827 / 0.9545, abs=0.01)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_variance_scaling_family_matches_definition(name):
    variance, kind = DEFINITIONS[name]
    w = initializers.get(name)(SHAPE)
    assert w.shape == SHAPE and w.dtype == np.float32
    check_moments(w, variance, kind)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_dense_kernel_initializer_by_name(name):
    variance, kind = DEFINITIONS[name]
    layer = Dense(FAN_OUT, kernel_initializer=name)
    layer.build((FAN_IN,))
    check_moments(layer.get_weights()[0], variance, kind)
    np.testing.assert_array_equal(layer.get_weights()[1], 0)


def test_bias_shape_uses_its_length_as_fan():
    w = initializers.get("he_uniform")((100_000,)).astype(np.float64)
    limit = math.sqrt(6 / 100_000)
    assert np.abs(w).max() <= limit * (1 + 1e-6)
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=VAR_RTOL)


@pytest.mark.parametrize("init, variance, kind, mean", [
    (initializers.RandomNormal(), 0.05 ** 2, "normal", 0.0),
    (initializers.RandomNormal(mean=1.0, stddev=0.2), 0.04, "normal", 1.0),
    (initializers.RandomUniform(), 0.1 ** 2 / 12, "uniform", 0.0),
    (initializers.RandomUniform(minval=0.0, maxval=2.0), 4 / 12, "uniform", 1.0),
    (initializers.TruncatedNormal(), (0.05 * 0.87962566103423978) ** 2, "truncated", 0.0),
])
def test_basic_random_initializers(init, variance, kind, mean):
    w = init(SHAPE).astype(np.float64)
    assert abs(w.mean() - mean) < 5 * math.sqrt(variance / N)
    assert w.var() == pytest.approx(variance, rel=VAR_RTOL)
    if kind == "truncated":
        assert np.abs(w - mean).max() <= 2 * 0.05 * (1 + 1e-6)
    if kind == "uniform":
        half = math.sqrt(3 * variance)
        assert w.min() >= mean - half - 1e-7 and w.max() <= mean + half + 1e-7


def test_constant_initializers():
    np.testing.assert_array_equal(initializers.get("zeros")((3, 4)), np.zeros((3, 4)))
    np.testing.assert_array_equal(initializers.get("ones")((5,)), np.ones(5))
    np.testing.assert_array_equal(initializers.Constant(0.25)((2, 2)), np.full((2, 2), 0.25))


def test_dtype_follows_floatx_or_argument():
    assert initializers.get("he_normal")((3, 3)).dtype == np.float32
    assert initializers.get("he_normal")((3, 3), dtype="float64").dtype == np.float64
    fastnn.set_floatx("float64")
    assert initializers.get("glorot_uniform")((3, 3)).dtype == np.float64
    layer = Dense(2)
    layer.build((3,))
    assert all(w.dtype == np.float64 for w in layer.get_weights())


# -- repeatability -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [initializers.GlorotUniform, initializers.HeNormal,
                                 initializers.LecunNormal, initializers.RandomNormal,
                                 initializers.RandomUniform, initializers.TruncatedNormal])
def test_seed_gives_repeatable_values(cls):
    a = cls(seed=11)((50, 40))
    b = cls(seed=11)((50, 40))
    c = cls(seed=12)((50, 40))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_set_random_seed_makes_unseeded_initializers_repeatable():
    set_random_seed(5)
    a = [initializers.get("he_normal")((30, 20)), initializers.get("glorot_uniform")((20, 10))]
    set_random_seed(5)
    b = [initializers.get("he_normal")((30, 20)), initializers.get("glorot_uniform")((20, 10))]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # and consecutive draws differ (the generator advances)
    assert not np.array_equal(a[0], initializers.get("he_normal")((30, 20)))


# -- the symmetry problem -----------------------------------------------------------------------
def test_zero_initialised_hidden_units_stay_identical_after_training():
    # Every hidden unit starts equal, sees the same gradient, and so stays equal to the others:
    # however long it trains, the network is one with a single hidden unit copied 8 times.
    set_random_seed(0)
    x, y = fastnn.datasets.make_moons(n_samples=80, seed=0)
    model = fastnn.Sequential([
        Dense(8, activation="tanh", kernel_initializer="zeros", input_shape=(2,)),
        Dense(1, activation="sigmoid", kernel_initializer=initializers.Constant(0.5)),
    ])
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y.astype(np.float32), epochs=30, batch_size=16, verbose=0)
    w1, b1, w2, b2 = model.get_weights()
    assert np.abs(w1).max() > 1e-2  # the weights did move ...
    for j in range(1, 8):           # ... but every hidden unit moved in exactly the same way
        np.testing.assert_allclose(w1[:, j], w1[:, 0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b1[j], b1[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(w2[j], w2[0], rtol=1e-6, atol=1e-7)


def test_all_zero_network_never_moves_its_hidden_layer():
    set_random_seed(0)
    x, y = fastnn.datasets.logic_gate("xor")
    model = fastnn.Sequential([
        Dense(4, activation="tanh", kernel_initializer="zeros", input_shape=(2,)),
        Dense(1, activation="sigmoid", kernel_initializer="zeros"),
    ])
    model.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy")
    model.fit(x, y, epochs=20, batch_size=4, verbose=0)
    w1, b1, w2, _ = model.get_weights()
    # tanh(0) = 0 gives the output layer no kernel gradient, and a zero output kernel sends no
    # gradient back to the hidden layer
    np.testing.assert_array_equal(w1, 0)
    np.testing.assert_array_equal(b1, 0)
    np.testing.assert_array_equal(w2, 0)


def test_random_initialisation_breaks_the_symmetry():
    set_random_seed(0)
    w1 = Dense(8, input_shape=(2,))
    fastnn.Sequential([w1])
    k = w1.get_weights()[0]
    assert len({tuple(np.round(k[:, j], 7)) for j in range(8)}) == 8


# -- lookup --------------------------------------------------------------------------------------
def test_get_accepts_names_classes_and_instances():
    assert isinstance(initializers.get("HE_NORMAL"), initializers.HeNormal)
    assert isinstance(initializers.get(initializers.GlorotUniform), initializers.GlorotUniform)
    inst = initializers.LecunUniform(seed=3)
    assert initializers.get(inst) is inst
    assert initializers.name_of(initializers.HeUniform()) == "he_uniform"
    assert initializers.glorot_uniform is initializers.GlorotUniform


@pytest.mark.parametrize("bad", ["xavier", "", None, 3])
def test_unknown_initializer_raises(bad):
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get(bad)
    with pytest.raises(ValueError):
        Dense(3, kernel_initializer=bad)


def test_variance_scaling_validates_and_rejects_3d_shapes():
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="normal_ish")
    with pytest.raises(ValueError):
        initializers.HeNormal()((3, 3, 3))
    vs = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="uniform", seed=0)
    check_moments(vs(SHAPE), 3.0 / FAN_OUT, "uniform")


# -- the twelve Keras names ----------------------------------------------------------------------
KERAS_NAMES = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
               "lecun_normal", "zeros", "ones", "constant", "random_normal", "random_uniform",
               "truncated_normal"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_every_keras_name_is_a_documented_class_with_a_lowercase_alias(name):
    cls = type(initializers.get(name))
    assert getattr(initializers, name) is cls            # keras.initializers.he_normal style
    assert initializers.get(cls.__name__).__class__ is cls   # and "HeNormal"
    assert initializers.name_of(cls()) == name
    assert cls.__doc__ and len(cls.__doc__) > 20
    if name not in ("zeros", "ones", "constant"):
        a, b = cls(seed=5)((20, 10)), cls(seed=5)((20, 10))
        np.testing.assert_array_equal(a, b)


def test_variance_scaling_docstrings_state_the_keras_definitions():
    assert "6 / (fan_in + fan_out)" in initializers.GlorotUniform.__doc__
    assert "2 / fan_in" in initializers.HeNormal.__doc__
    assert "0.8796" in initializers.LecunNormal.__doc__


# -- every initializer's settings survive a config and a file; bad settings refused at once -------
CATALOGUE_INITIALIZERS = [
    initializers.Zeros(), initializers.Ones(), initializers.Constant(0.25),
    initializers.RandomNormal(mean=5.0, stddev=3.0, seed=7), initializers.RandomUniform(-2.0, 1.0, seed=3),
    initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=2),
    initializers.VarianceScaling(scale=2.5, mode="fan_out", distribution="uniform", seed=4),
    initializers.GlorotUniform(seed=1), initializers.GlorotNormal(), initializers.HeUniform(),
    initializers.HeNormal(seed=9), initializers.LecunUniform(), initializers.LecunNormal(),
]


@pytest.mark.parametrize("init", CATALOGUE_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_every_initializer_round_trips_through_config_and_file(init, tmp_path):
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


def test_random_normal_parameters_survive_an_unbuilt_save(tmp_path):
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


@pytest.mark.parametrize("make", [lambda: initializers.RandomNormal(stddev=-1),
                                  lambda: initializers.VarianceScaling(scale=-1),
                                  lambda: initializers.TruncatedNormal(stddev=float("nan")),
                                  lambda: initializers.Constant(float("nan")),
                                  lambda: initializers.RandomUniform(1.0, -1.0)])
def test_bad_initializer_settings_are_refused_in_the_constructor(make):
    with pytest.raises(ValueError):
        make()
