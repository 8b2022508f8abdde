"""bench/sklearn_vs_fastnn.py keeps working (CI runs bench/ untimed): each library's worker, a
few epochs on the bundled data, and the table from two one-round subprocess runs."""
import math
import os
import sys

import pytest

pytest.importorskip("sklearn", reason="the comparison needs scikit-learn (the test extra)")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sklearn_vs_fastnn as bench  # noqa: E402


@pytest.mark.parametrize("library", ["fastnn", "sklearn"])
def test_workers_fit_and_score(library):
    digits = bench.worker(library, "digits", max_iter=3)
    diabetes = bench.worker(library, "diabetes", max_iter=3)
    assert digits["seconds"] > 0 and diabetes["seconds"] > 0
    assert digits["score"] > 0.5  # ten classes: chance is 0.1
    assert math.isfinite(diabetes["score"])


def test_same_settings_for_both_libraries():
    for name in bench.SETTINGS:
        ours, theirs = bench.estimator("fastnn", name), bench.estimator("sklearn", name)
        shared = theirs.get_params()
        shared.pop("max_fun")  # L-BFGS's budget; fastnn has no L-BFGS solver and neither runs one
        assert {k: v for k, v in ours.get_params().items() if k in shared} == shared


def test_table(capsys):
    bench.main(["--rounds", "1", "--datasets", "breast_cancer"])
    out = capsys.readouterr().out
    assert "| breast_cancer | accuracy, 100 |" in out and "other load" in out
