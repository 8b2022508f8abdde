"""fastnn's losses against Keras 3's own values and gradients (tests/fixtures/keras_losses.npz,
written by tests/fixtures/make_keras_losses.py with Keras 3.15 on JAX)."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import losses as L

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "keras_losses.npz"))
CASES = {
    "cosine": lambda: L.CosineSimilarity(),
    "categorical_hinge": lambda: L.CategoricalHinge(),
    "bfce": lambda: L.BinaryFocalCrossentropy(),
    "bfce_balanced": lambda: L.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=1.5,
                                                       label_smoothing=0.1),
    "bfce_logits": lambda: L.BinaryFocalCrossentropy(from_logits=True, gamma=3.0),
    "cfce": lambda: L.CategoricalFocalCrossentropy(),
    "cfce_smooth": lambda: L.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.0, label_smoothing=0.2),
    "cfce_logits": lambda: L.CategoricalFocalCrossentropy(from_logits=True),
    "mape": lambda: L.MeanAbsolutePercentageError(),
    "msle": lambda: L.MeanSquaredLogarithmicError(),
    "poisson": lambda: L.Poisson(),
    "squared_hinge": lambda: L.SquaredHinge(),
    "mse_sum": lambda: L.MeanSquaredError(reduction="sum"),
    "cce_sum": lambda: L.CategoricalCrossentropy(reduction="sum"),
}
BACKENDS = ["numpy", "native"]


def _f(key, what):
    return FIXTURE[f"{key}/{what}"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", sorted(CASES))
def test_value_and_gradient_as_keras(key, backend):
    loss = CASES[key]()
    y, p = _f(key, "y"), _f(key, "p")
    with fastnn.backend_scope(backend):
        t = loss.prepare_targets(y, len(p), p.shape[1:], p.dtype)
        value, grad = loss.value_and_grad(t, p.copy(), None, True)
        assert loss(y, p) == pytest.approx(value, rel=1e-6, abs=1e-7)
    scale = 1 + abs(float(_f(key, "value")))
    assert value == pytest.approx(float(_f(key, "value")), rel=2e-6, abs=2e-6 * scale)
    want = _f(key, "grad")
    np.testing.assert_allclose(grad, want, rtol=2e-5, atol=2e-6 * (1 + np.abs(want).max()))


@pytest.mark.parametrize("key", sorted(CASES))
def test_reductions_and_sample_weight_as_keras(key):
    y, p, w = _f(key, "y"), _f(key, "p"), FIXTURE["weights"]
    base = CASES[key]()
    none = type(base)(**{**base.get_config(), "reduction": None})(y, p)
    np.testing.assert_allclose(none, _f(key, "none"), rtol=2e-6, atol=2e-6)
    for red in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        loss = type(base)(**{**base.get_config(), "reduction": red})
        assert loss(y, p, sample_weight=w) == pytest.approx(float(_f(key, f"weighted_{red}")), rel=5e-6, abs=1e-6)


@pytest.mark.parametrize("key", sorted(CASES))
def test_config_round_trip(key):
    loss = CASES[key]()
    config = loss.get_config()
    assert set(config) >= {"name", "reduction"}
    again = type(loss).from_config(config)
    assert again.get_config() == config
    named = type(loss)(**{**config, "name": "mine"})
    assert named.name == "mine"
