"""fastnn.sklearn: scikit-learn's estimator checks, its MLP's semantics, pickling, threads."""
import pickle
import sys
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



def _digits(n=600):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def test_parameters_are_sklearns_with_its_defaults():
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor
    for ours, theirs in ((MLPClassifier(), SkMLPClassifier()), (MLPRegressor(), SkMLPRegressor())):
        sk = theirs.get_params()
        sk.pop("max_fun")  # lbfgs only
        sk.pop("solver")   # sklearn's default is 'adam' too, checked below
        mine = ours.get_params()
        assert {k: mine[k] for k in sk} == sk
        assert mine["solver"] == theirs.solver == "adam"
        assert {"dropout", "batch_norm", "n_threads", "backend"} <= set(mine)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel", "regression", "multioutput"])
def test_first_epoch_loss_is_sklearns(solver, target):
    """Same initialisation, loss, L2 penalty and update rule as scikit-learn's MLP: with the same
    random_state and no shuffling, the loss of the first epochs agrees to float32 rounding (the
    batch size divides the data: scikit-learn scales the last batch's penalty by its own size)."""
    from sklearn import neural_network
    rng = np.random.RandomState(0)
    X = rng.normal(size=(320, 7))
    if target == "multiclass":
        y = rng.randint(0, 4, 320)
    elif target == "binary":
        y = np.where(X[:, 0] + rng.normal(size=320) > 0, "yes", "no")
    elif target == "multilabel":
        y = (X[:, :3] + rng.normal(size=(320, 3)) > 0).astype(int)
    elif target == "regression":
        y = X @ rng.normal(size=7)
    else:
        y = X @ rng.normal(size=(7, 2))
    regression = target in ("regression", "multioutput")
    ours = (MLPRegressor if regression else MLPClassifier)
    theirs = (neural_network.MLPRegressor if regression else neural_network.MLPClassifier)
    settings = dict(hidden_layer_sizes=(20, 10), solver=solver, alpha=0.01, batch_size=64, max_iter=3,
                    shuffle=False, random_state=3, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ours(**settings).fit(X, y)
        b = theirs(**settings).fit(X, y)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=2e-4)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(ca, cb, rtol=1e-3, atol=1e-4)
    assert a.out_activation_ == b.out_activation_
    assert a.n_layers_ == b.n_layers_ and a.n_iter_ == b.n_iter_ == 3
    np.testing.assert_array_equal(a.classes_, b.classes_) if not regression else None
    assert a.predict(X).shape == b.predict(X).shape


def test_string_and_categorical_labels_and_dataframes():
    pd = pytest.importorskip("pandas", reason="pandas inputs need pandas")
    X, y = _digits(400)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    labels = pd.Series(pd.Categorical(names[y]))
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(df, labels)
    assert list(clf.feature_names_in_) == list(df.columns)
    assert set(clf.classes_) == set(names)
    assert clf.score(df, labels) > 0.9
    assert set(clf.predict(df)) <= set(names)
    proba = clf.predict_proba(df)
    assert proba.shape == (400, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(df))


def test_multilabel_and_multioutput():
    X, Y = make_multilabel_classification(n_samples=300, n_classes=4, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0).fit(X / X.max(), Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X / X.max()).shape == Y.shape
    assert set(np.unique(clf.predict(X / X.max()))) <= {0, 1}
    assert clf.predict_proba(X / X.max()).shape == Y.shape
    assert clf.score(X / X.max(), Y) > 0.3  # exact-match accuracy of 4 labels
    X, Y = make_regression(n_samples=300, n_features=6, n_targets=3, noise=1.0, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01,
                       random_state=0).fit(X, Y / 100)
    assert reg.predict(X).shape == (300, 3) and reg.score(X, Y / 100) > 0.9


def test_partial_fit_continues_and_needs_classes():
    X, y = _digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    theirs = SkMLPClassifier(hidden_layer_sizes=(32,), random_state=0)
    losses = []
    for _ in range(15):  # each call is one epoch, continuing the weights and Adam's moments
        clf.partial_fit(X, y, classes=np.arange(10))
        theirs.partial_fit(X, y, classes=np.arange(10))
        losses.append(clf.loss_)
    assert clf.n_iter_ == 15 and clf.loss_curve_ == losses
    np.testing.assert_allclose(losses, theirs.loss_curve_, rtol=1e-4)
    assert losses[-1] < losses[0] - 0.3
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, y + 10)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :10], y)


def test_stopping_rules_and_early_stopping():
    X, y = _digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, tol=1e-2, n_iter_no_change=3,
                        random_state=0).fit(X, y)
    assert clf.n_iter_ < 500  # stopped on the training loss
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None
    es = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, early_stopping=True, n_iter_no_change=4,
                       random_state=0).fit(X, y)
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_ < 500
    assert es.best_validation_score_ == max(es.validation_scores_)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("schedule", ["adaptive", "invscaling"])
def test_learning_rate_schedules_are_sklearns(schedule):
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    X, y = _digits(300)
    settings = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate=schedule, tol=10.0,
                    n_iter_no_change=1, max_iter=6, random_state=0, learning_rate_init=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(**settings).fit(X, y)
        theirs = SkMLPClassifier(**settings).fit(X, y)
    np.testing.assert_allclose(clf.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    if schedule == "adaptive":
        # nothing improves by tol=10: the count passes n_iter_no_change=1 at epochs 3 and 5, each
        # time dividing the rate by 5 (the count restarts), so 6 epochs end at 0.1 / 25
        assert clf.model_.optimizer.learning_rate == pytest.approx(0.1 / 5 ** 2)


def test_fastnn_extras_dropout_batch_norm_and_backend():
    X, y = _digits()
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), dropout=0.2, batch_norm=True, max_iter=40,
                        random_state=0).fit(X, y)
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("Dropout") == 2
    assert clf.score(X, y) > 0.9 and len(clf.coefs_) == 3
    ref = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0, backend="numpy")
    nat = clone(ref).set_params(backend="native")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_allclose(ref.fit(X, y).predict_proba(X), nat.fit(X, y).predict_proba(X),
                                   atol=1e-4)


@pytest.mark.parametrize("params, match", [
    ({"solver": "lbfgs"}, "solver"), ({"activation": "gelu"}, "activation"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"), ({"alpha": -1.0}, "alpha"),
    ({"n_threads": 0}, "n_threads"), ({"backend": "gpu"}, "backend"), ({"dropout": 1.0}, "dropout"),
    ({"batch_size": 0}, "batch_size"), ({"max_iter": 0}, "max_iter")])
def test_bad_parameters_raise_in_fit(params, match):
    X, y = _digits(50)
    clf = MLPClassifier(**params)  # set_params and __init__ never raise, as in scikit-learn
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_pickle_clone_and_not_fitted():
    X, y = _digits()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    copy.partial_fit(X, y)  # the copy trains on, the original does not move
    assert copy.n_iter_ == 21 and clf.n_iter_ == 20
    assert not hasattr(clone(clf), "model_")


def test_grid_search_and_cross_val_score():
    X, y = _digits(300)
    search = GridSearchCV(MLPClassifier(max_iter=30, learning_rate_init=0.01, random_state=0),
                          {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1e-1]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
        scores = cross_val_score(MLPRegressor(max_iter=30, random_state=0), X, y.astype(float), cv=2)
    assert search.best_params_["hidden_layer_sizes"] in [(8,), (32,)] and search.best_score_ > 0.8
    assert scores.shape == (2,)


def _fit_and_report_threads(seed):
    from fastnn.sklearn import MLPClassifier as Clf
    X, y = _digits(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Clf(hidden_layer_sizes=(8,), max_iter=2, random_state=seed).fit(X, y).n_threads_


def test_threads_follow_threadpoolctl_and_joblib():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="comes with scikit-learn")
    joblib = pytest.importorskip("joblib", reason="comes with scikit-learn")
    with threadpoolctl.threadpool_limits(1):
        assert _fit_and_report_threads(0) == 1
    assert MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, n_threads=1).fit(*_digits(100)).n_threads_ == 1
    # joblib's process workers get cpu_count // n_jobs threads each: no oversubscription.
    # The workers cannot import this test file (pytest loads it by path), so its functions travel
    # by value.
    cloudpickle = pytest.importorskip("cloudpickle", reason="joblib's process workers unpickle with it")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    n_jobs = 2
    inner = max(joblib.cpu_count() // n_jobs, 1)
    used = joblib.Parallel(n_jobs=n_jobs, backend="loky")(
        joblib.delayed(_fit_and_report_threads)(s) for s in range(2))
    assert used == [inner, inner]


def test_grid_search_on_two_worker_processes_gives_the_serial_scores(monkeypatch):
    """GridSearchCV over fastnn with n_jobs=2 (joblib's loky worker processes) scores every
    candidate exactly as the serial search does. (The dask cluster test below, which starts a
    scheduler and two workers, runs in the slow selection.)"""
    joblib = pytest.importorskip("joblib", reason="comes with scikit-learn")
    import os
    import fastnn as package
    # the worker processes import fastnn from where this process did (an editable or source tree)
    root = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    X, y = _digits(240)
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}

    def search(n_jobs):
        return GridSearchCV(MLPClassifier(max_iter=15, learning_rate_init=0.01, random_state=0),
                            grid, cv=3, n_jobs=n_jobs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = search(None).fit(X, y)
        with joblib.parallel_backend("loky"):
            parallel = search(2).fit(X, y)
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(parallel.cv_results_[key], serial.cv_results_[key])
    assert parallel.best_params_ == serial.best_params_
    assert np.ptp(serial.cv_results_["mean_test_score"]) > 0  # the candidates differ


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_gives_the_serial_scores(monkeypatch):
    """GridSearchCV over fastnn on a two-process dask.distributed LocalCluster (joblib's "dask"
    backend) scores every candidate exactly as the serial search does."""
    pytest.importorskip("dask", reason="the distributed search needs dask (extras 'dask', 'test')")
    distributed = pytest.importorskip("distributed", reason="the distributed search needs "
                                      "dask.distributed (extras 'dask', 'test')")
    joblib = pytest.importorskip("joblib", reason="comes with scikit-learn")
    import os
    import fastnn as package
    # the worker processes import fastnn from where this process did (an editable or source tree)
    root = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    X, y = _digits(240)
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}

    def search():
        return GridSearchCV(MLPClassifier(max_iter=15, learning_rate_init=0.01, random_state=0),
                            grid, cv=3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = search().fit(X, y)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks:
                on_dask = search().fit(X, y)
    assert len({t["worker"] for t in tasks.data}) == 2  # both worker processes fitted candidates
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key], serial.cv_results_[key])
    assert on_dask.best_params_ == serial.best_params_
    assert np.ptp(serial.cv_results_["mean_test_score"]) > 0  # the candidates differ


def test_models_take_numeric_dataframes_everywhere():
    pd = pytest.importorskip("pandas", reason="pandas inputs need pandas")
    rng = np.random.default_rng(0)
    values = rng.standard_normal((60, 4))
    target = (values[:, 0] > 0).astype(float)
    frames = {"float64": pd.DataFrame(values, columns=list("abcd")),
              "Float64": pd.DataFrame(values, columns=list("abcd")).astype("Float64"),  # nullable
              "Int64": pd.DataFrame(np.round(values * 3), columns=list("abcd")).astype("Int64")}
    for kind, X in frames.items():
        plain = np.asarray(X.to_numpy(dtype=np.float64), np.float32)
        fastnn.utils.set_random_seed(0)
        model = fastnn.Sequential([fastnn.layers.Dense(8, activation="relu", input_dim=4),
                                   fastnn.layers.Dense(1, activation="sigmoid")])
        model.compile("adam", "binary_crossentropy")
        y = pd.Series(target)
        model.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_data=(X, y))
        model.train_on_batch(X, y)
        np.testing.assert_array_equal(model.predict(X), model.predict(plain), err_msg=kind)
        assert model.evaluate(X, y) == model.evaluate(plain, target), kind
    holes = frames["Float64"].mask(frames["Float64"] > 1.5)  # missing values: pd.NA
    assert np.isnan(model.predict(holes)).any()  # predict passes NaN through, as for arrays
    with pytest.raises(ValueError, match="NaN|finite"):
        model.fit(holes, y, epochs=1, verbose=0)


def test_estimators_take_dataframes_and_string_labels():
    pd = pytest.importorskip("pandas", reason="pandas inputs need pandas")
    X, y = _digits(200)
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])]).astype("Float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(max_iter=5, random_state=0).fit(df, pd.DataFrame({"a": y, "b": -y}))
        assert reg.predict(df).shape == (200, 2) and list(reg.feature_names_in_) == list(df.columns)
        words = pd.Series(np.where(y < 5, "low", "high"), dtype="string")
        clf = MLPClassifier(max_iter=20, random_state=0).fit(df, words)
        assert set(clf.classes_) == {"low", "high"} and set(clf.predict(df)) <= {"low", "high"}
        assert clf.score(df, words) > 0.8

    def build(meta=None, **kwargs):
        model = fastnn.Sequential([fastnn.layers.Dense(16, activation="relu"),
                                   fastnn.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        return model
    keras_clf = KerasClassifier(model=build, epochs=20, verbose=0, random_state=0)
    keras_clf.fit(df, pd.Series(pd.Categorical(np.where(y < 5, "low", "high"))))
    assert set(keras_clf.predict(df)) <= {"low", "high"}
    assert keras_clf.score(df, np.where(y < 5, "low", "high")) > 0.8


@pytest.mark.parametrize("early_stopping", [False, True])
def test_one_fit_per_epoch_path_trains_the_same(monkeypatch, early_stopping):
    """When fastnn's fit would train on a converted copy of the shuffled buffers, the estimator
    falls back to one fit per epoch: same shuffles, same losses, same stop, same weights."""
    X, y = _digits(300)
    params = dict(hidden_layer_sizes=(16,), max_iter=30, batch_size=32, random_state=0,
                  early_stopping=early_stopping, n_iter_no_change=2, tol=0.05)
    one = MLPClassifier(**params).fit(X, y)
    import fastnn.sklearn as module
    monkeypatch.setattr(module.np, "shares_memory", lambda a, b: False)
    per_epoch = MLPClassifier(**params).fit(X, y)
    assert one.n_iter_ == per_epoch.n_iter_ < 30  # both stopped by the rule, at the same epoch
    np.testing.assert_allclose(one.loss_curve_, per_epoch.loss_curve_, rtol=1e-6)
    for a, b in zip(one.coefs_, per_epoch.coefs_):
        np.testing.assert_array_equal(a, b)
