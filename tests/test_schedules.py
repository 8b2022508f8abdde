"""Learning-rate schedules give Keras's documented rates at chosen steps, and round-trip their config."""
import math

import pytest

from fastnn.optimizers import schedules


def test_exponential_decay():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == 0.1
    assert s(10) == pytest.approx(0.05, rel=1e-15)
    assert s(5) == pytest.approx(0.1 * 0.5 ** 0.5, rel=1e-15)
    stairs = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [stairs(t) for t in (0, 9, 10, 19, 20)] == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_piecewise_constant_decay():
    s = schedules.PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 100, 101, 200, 201, 10_000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_cosine_decay():
    s = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.9 * 0.5 + 0.1, rel=1e-15)
    assert s(100) == pytest.approx(0.1, rel=1e-15)
    assert s(1000) == pytest.approx(0.1, rel=1e-15)
    assert s(25) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1, rel=1e-15)
    warm = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert [warm(t) for t in (0, 2, 4)] == [0.0, 0.5, 1.0]
    assert warm(9) == pytest.approx(0.5, rel=1e-15)
    assert warm(14) == pytest.approx(0.0, abs=1e-16)


def test_inverse_time_decay():
    s = schedules.InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == 0.1
    assert s(10) == pytest.approx(0.1 / 1.5, rel=1e-15)
    assert s(5) == pytest.approx(0.1 / 1.25, rel=1e-15)
    stairs = schedules.InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert stairs(19) == pytest.approx(0.1 / 1.5, rel=1e-15)


@pytest.mark.parametrize("schedule", [
    schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    schedules.PiecewiseConstantDecay([3], [0.1, 0.01]),
    schedules.CosineDecay(0.1, 50, alpha=0.2, warmup_target=0.5, warmup_steps=5),
    schedules.InverseTimeDecay(0.1, 10, 2.0),
])
def test_config_round_trip(schedule):
    back = schedules.deserialize(schedules.serialize(schedule))
    assert type(back) is type(schedule) and back.get_config() == schedule.get_config()
    assert [back(t) for t in range(0, 60, 7)] == [schedule(t) for t in range(0, 60, 7)]


@pytest.mark.parametrize("make,match", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps must be a positive integer, got 0"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1]), "one more entry than boundaries"),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), "increase strictly"),
    (lambda: schedules.deserialize({"class_name": "Nope"}), "unknown learning-rate schedule"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
