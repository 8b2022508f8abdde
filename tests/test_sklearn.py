"""fastnn.sklearn: scikit-learn's estimator checks, its MLP's semantics, pickling, threads."""
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="fastnn.sklearn needs scikit-learn (the test extra)")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, \
    make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.sklearn import KerasClassifier, KerasRegressor, MLPClassifier, MLPRegressor  # noqa: E402

def build_classifier(meta, hidden=16):
    """A build function as users write them; ``meta`` says how many outputs the data needs."""
    out = meta["n_outputs_"]
    return fastnn.Sequential([fastnn.layers.Dense(hidden, activation="relu"),
                              fastnn.layers.Dense(out, activation="sigmoid" if out == 1 else "softmax")])


def build_regressor(meta, hidden=16):
    return fastnn.Sequential([fastnn.layers.Dense(hidden, activation="relu"),
                              fastnn.layers.Dense(meta["n_outputs_"])])


# Small networks keep scikit-learn's ~50 checks per estimator to a few seconds.
CHECKED = [MLPClassifier(hidden_layer_sizes=(16,), random_state=0, n_threads=1),
           MLPRegressor(hidden_layer_sizes=(16,), random_state=0, n_threads=1),
           KerasClassifier(build_classifier, optimizer="adam", epochs=100, batch_size=16,
                           random_state=0, n_threads=1),
           KerasRegressor(build_regressor, epochs=100, batch_size=16, random_state=0, n_threads=1)]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)

