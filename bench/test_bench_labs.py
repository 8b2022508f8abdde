"""The labs' claims that compare wall-clock times (``LabResult.timed``): they must hold, but on an
idle machine, so they are checked here rather than in the unit tests (tests/test_labs.py checks
only that their numbers are consistent).

Run: pytest bench/test_bench_labs.py   (CI runs it once, untimed: pytest bench --benchmark-disable).
"""
import pytest

from fastnn import labs

TIMED_LABS = ("batching",)


@pytest.mark.parametrize("name", TIMED_LABS)
def test_timed_claims_hold(benchmark, name, tmp_path):
    benchmark.group = f"lab {name} --quick"
    result = benchmark.pedantic(labs.run, args=(name,), kwargs={"quick": True, "out": tmp_path},
                                rounds=1, iterations=1)
    assert result.timed, f"the lab {name} has no timed claim any more: update TIMED_LABS"
    failed = {k: result.details[k] for k in result.timed if not result.claims[k]}
    assert not failed, failed
