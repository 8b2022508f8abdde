"""Every ``fastnn.metrics`` function against scikit-learn (a test-only dependency), in float64, to
1e-10: random inputs, and adversarial ones -- tied scores, predictions of a single class, labels
that never occur, zero and integer sample weights, string labels, multiclass and multilabel.

Both libraries warn on undefined values (zero_division); the comparisons silence warnings and
separate tests check that fastnn warns where scikit-learn does.
"""
import warnings

import numpy as np
import pytest

from fastnn import metrics as M

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency: "
                         "pip install '.[test]'")
from sklearn.metrics.pairwise import cosine_similarity as sk_pairwise_cosine  # noqa: E402

TOL = 1e-10


def rng(seed):
    return np.random.default_rng(seed)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def assert_same(ours, theirs, tol=TOL):
    """Equal to ``tol`` (absolute, on values in [0, 1] or of order 1), NaN equal to NaN, same
    structure (float vs array, None vs None)."""
    if theirs is None:
        assert ours is None
        return
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
        return
    if np.ndim(theirs) == 0:
        assert np.ndim(ours) == 0, f"expected a scalar, got {ours!r}"
        assert isinstance(ours, float), type(ours)
    else:
        assert isinstance(ours, np.ndarray) and ours.shape == np.shape(theirs)
    theirs = np.asarray(theirs, dtype=np.float64)
    finite = np.abs(theirs[np.isfinite(theirs)])
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), theirs, rtol=0,
                               atol=tol * max(1.0, float(finite.max(initial=0))), equal_nan=True)


def both(name, *args, **kwargs):
    """(fastnn result, scikit-learn result) of the function ``name``, warnings silenced."""
    return quiet(getattr(M, name), *args, **kwargs), quiet(getattr(sk, name), *args, **kwargs)


def both_raise(name, *args, **kwargs):
    with pytest.raises(ValueError):
        quiet(getattr(sk, name), *args, **kwargs)
    with pytest.raises(ValueError):
        quiet(getattr(M, name), *args, **kwargs)


# ------------------------------------------------------------------------- label cases
def label_cases():
    r = rng(0)
    n = 60
    yield "binary random", r.integers(0, 2, n), r.integers(0, 2, n)
    yield "binary predict all 0", r.integers(0, 2, n), np.zeros(n, int)
    yield "binary predict all 1", r.integers(0, 2, n), np.ones(n, int)
    yield "binary true all 0", np.zeros(n, int), r.integers(0, 2, n)
    yield "all one class", np.ones(n, int), np.ones(n, int)
    yield "binary -1/1", r.choice([-1, 1], n), r.choice([-1, 1], n)
    yield "multiclass", r.integers(0, 4, n), r.integers(0, 4, n)
    yield "multiclass, a class never predicted", r.integers(0, 4, n), r.integers(0, 3, n)
    yield "multiclass, gapped labels", r.choice([2, 5, 9], n), r.choice([2, 5, 9, 11], n)
    yield "strings", r.choice(["cat", "dog", "pig"], n), r.choice(["cat", "dog", "pig"], n)
    yield "float labels", r.integers(0, 3, n).astype(float), r.integers(0, 3, n).astype(float)
    yield "tiny", np.array([0, 1]), np.array([1, 1])


LABEL_CASES = list(label_cases())
WEIGHTS = {
    "unweighted": lambda n: None,
    "float": lambda n: rng(5).uniform(0, 3, n),
    "with zeros": lambda n: np.where(rng(6).random(n) < 0.3, 0.0, rng(7).uniform(0.5, 2, n)),
    "integer": lambda n: rng(8).integers(1, 4, n),
}


def case_ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("case", LABEL_CASES, ids=case_ids(LABEL_CASES))
@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_accuracy_score(case, weights):
    _, t, p = case
    w = WEIGHTS[weights](len(t))
    for normalize in (True, False):
        assert_same(*both("accuracy_score", t, p, normalize=normalize, sample_weight=w))
    assert M.accuracy is M.accuracy_score


@pytest.mark.parametrize("case", LABEL_CASES, ids=case_ids(LABEL_CASES))
@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_confusion_matrix(case, weights):
    _, t, p = case
    w = WEIGHTS[weights](len(t))
    ours, theirs = both("confusion_matrix", t, p, sample_weight=w)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs) if ours.dtype.kind == "i" else assert_same(ours, theirs)
    for normalize in ("true", "pred", "all"):
        assert_same(*both("confusion_matrix", t, p, sample_weight=w, normalize=normalize))
    labels = list(np.unique(t))[::-1] + ([99] if t.dtype.kind in "iuf" else ["zebra"])  # reordered, extra
    assert_same(*both("confusion_matrix", t, p, labels=labels, sample_weight=w))
    subset = list(np.unique(t))[:1]  # samples outside the labels are dropped
    assert_same(*both("confusion_matrix", t, p, labels=subset, sample_weight=w))


def test_confusion_matrix_errors():
    both_raise("confusion_matrix", [0, 1], [0, 1], labels=[])
    both_raise("confusion_matrix", [0, 1], [0, 1], labels=[7, 8])  # no label occurs in y_true
    both_raise("confusion_matrix", [0, 1], [0, 1], normalize="rows")
    both_raise("confusion_matrix", [0, 1, 1], [0, 1])


def averages_for(t, p):
    binary = len(np.union1d(t, p)) <= 2
    return [None, "micro", "macro", "weighted"] + (["binary"] if binary else [])


def pos_label_for(t, p):
    present = np.union1d(t, p)
    return present[-1] if len(present) == 2 or present.dtype.kind in "US" else 1


@pytest.mark.parametrize("case", LABEL_CASES, ids=case_ids(LABEL_CASES))
@pytest.mark.parametrize("weights", ["unweighted", "with zeros"])
def test_precision_recall_f(case, weights):
    _, t, p = case
    w = WEIGHTS[weights](len(t))
    pos = pos_label_for(t, p)
    for average in averages_for(t, p):
        kw = dict(average=average, sample_weight=w, pos_label=pos if average == "binary" else 1)
        for zero_division in ("warn", 0.0, 1.0, np.nan):
            assert_same(*both("precision_recall_fscore_support", t, p, beta=1.5,
                              zero_division=zero_division, **kw))
        for name in ("precision_score", "recall_score", "f1_score"):
            assert_same(*both(name, t, p, **kw))
        for beta in (0.0, 0.5, np.inf):
            assert_same(*both("fbeta_score", t, p, beta=beta, zero_division=np.nan, **kw))


@pytest.mark.parametrize("case", LABEL_CASES[6:9], ids=case_ids(LABEL_CASES[6:9]))
def test_precision_recall_f_with_labels(case):
    _, t, p = case
    present = list(np.union1d(t, p))
    for labels in (present[:2], present[::-1], present + [100], [100, 101]):
        for average in (None, "micro", "macro", "weighted"):
            for zero_division in ("warn", 1.0, np.nan):
                assert_same(*both("precision_recall_fscore_support", t, p, labels=labels,
                                  average=average, zero_division=zero_division))


def test_precision_recall_errors():
    t, p = [0, 1, 2, 2], [0, 1, 1, 2]
    both_raise("precision_score", t, p)                  # multiclass with average='binary'
    both_raise("recall_score", [0, 1, 1], [0, 0, 1], pos_label=2)
    both_raise("f1_score", [0, 1, 1], [0, 0, 1], average="samples_or_what")
    both_raise("f1_score", t, p, average="macro", zero_division=0.5)
    both_raise("precision_score", [0, 0.5, 1], [0, 1, 1])  # continuous targets


def test_zero_division_warns_like_sklearn():
    t, p = [0, 1, 1, 0], [0, 0, 0, 0]  # class 1 never predicted
    with pytest.warns(M.UndefinedMetricWarning, match="zero_division"):
        assert M.precision_score(t, p) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.precision_score(t, p, zero_division=0.0) == 0.0
        assert M.precision_score(t, p, zero_division=1.0) == 1.0
        assert np.isnan(M.precision_score(t, p, zero_division=np.nan))
        assert M.recall_score(t, p) == 0.0  # recall is defined: 0 of 2 positives found


@pytest.mark.parametrize("case", LABEL_CASES, ids=case_ids(LABEL_CASES))
@pytest.mark.parametrize("weights", ["unweighted", "float"])
def test_classification_report(case, weights):
    _, t, p = case
    w = WEIGHTS[weights](len(t))
    for digits in (2, 4):
        ours, theirs = both("classification_report", t, p, sample_weight=w, digits=digits)
        assert ours == theirs, f"\n{ours}\n!=\n{theirs}"
    ours, theirs = both("classification_report", t, p, sample_weight=w, output_dict=True)
    assert list(ours) == list(theirs)
    for key in theirs:
        if isinstance(theirs[key], dict):
            assert list(ours[key]) == list(theirs[key])
            for k in theirs[key]:
                assert_same(float(ours[key][k]), float(theirs[key][k]))
        else:
            assert_same(ours[key], theirs[key])


def test_classification_report_labels_and_names():
    t, p = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 1, 1])
    for kw in (dict(labels=[0, 1]), dict(labels=[2, 0, 1], target_names=["c2", "c0", "c1"]),
               dict(target_names=["zero", "one", "a much longer name"]), dict(labels=[0, 1, 2, 7])):
        ours, theirs = both("classification_report", t, p, **kw)
        assert ours == theirs, f"{kw}\n{ours}\n!=\n{theirs}"
    both_raise("classification_report", t, p, target_names=["a", "b"])


# ------------------------------------------------------------------------- scores and ranking
def score_cases():
    r = rng(1)
    n = 80
    t = r.integers(0, 2, n)
    yield "random", t, r.random(n)
    yield "ties", t, np.round(r.random(n), 1)  # 11 distinct values: many ties
    yield "all tied", t, np.full(n, 0.3)
    yield "perfect", t, t + r.random(n) * 0.5
    yield "inverted", t, -t + r.random(n) * 0.5
    yield "decision function", t, r.normal(size=n) * 3 + t
    yield "two samples", np.array([0, 1]), np.array([0.2, 0.2])


SCORE_CASES = list(score_cases())


@pytest.mark.parametrize("case", SCORE_CASES, ids=case_ids(SCORE_CASES))
@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_roc_curve_and_auc(case, weights):
    _, t, s = case
    w = WEIGHTS[weights](len(t))
    for drop in (True, False):
        ours, theirs = both("roc_curve", t, s, sample_weight=w, drop_intermediate=drop)
        assert_same(ours, theirs)
    fpr, tpr, _ = theirs
    assert_same(M.auc(fpr, tpr), sk.auc(fpr, tpr))
    assert_same(M.auc(fpr[::-1], tpr[::-1]), sk.auc(fpr[::-1], tpr[::-1]))
    assert_same(*both("roc_auc_score", t, s, sample_weight=w))
    for max_fpr in (0.1, 0.5, 1.0):
        assert_same(*both("roc_auc_score", t, s, sample_weight=w, max_fpr=max_fpr))


@pytest.mark.parametrize("case", SCORE_CASES, ids=case_ids(SCORE_CASES))
@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_precision_recall_curve_and_average_precision(case, weights):
    _, t, s = case
    w = WEIGHTS[weights](len(t))
    for drop in (True, False):
        assert_same(*both("precision_recall_curve", t, s, sample_weight=w, drop_intermediate=drop))
    assert_same(*both("average_precision_score", t, s, sample_weight=w))


def test_ranking_pos_label_and_label_sets():
    r = rng(2)
    t = r.choice(["ham", "spam"], 50)
    s = r.random(50)
    assert_same(*both("roc_curve", t, s, pos_label="spam"))
    assert_same(*both("precision_recall_curve", t, s, pos_label="ham"))
    assert_same(*both("average_precision_score", t, s, pos_label="spam"))
    assert_same(*both("roc_auc_score", t, s))  # the larger label, "spam", is positive
    both_raise("roc_curve", t, s)  # labels not 0/1 or -1/1 need pos_label
    t3 = r.integers(0, 3, 50)
    both_raise("roc_curve", t3, s)  # multiclass
    assert_same(*both("roc_curve", t3, s, pos_label=2))  # one class against the rest
    tm = r.choice([-1, 1], 50)
    assert_same(*both("roc_curve", tm, s))
    both_raise("average_precision_score", tm, s, pos_label=0)


def test_curves_with_a_single_class_in_y_true():
    s = rng(3).random(10)
    for t in (np.zeros(10, int), np.ones(10, int)):
        assert_same(*both("roc_curve", t, s))  # NaN rates, with a warning
        assert_same(*both("precision_recall_curve", t, s))
        assert_same(*both("average_precision_score", t, s))
        with pytest.warns(M.UndefinedMetricWarning):
            M.roc_curve(t, s)
        # scikit-learn >= 1.6 returns nan with a warning; fastnn says why the number does not exist
        with pytest.raises(ValueError, match="only one class"):
            M.roc_auc_score(t, s)
        assert np.isnan(quiet(sk.roc_auc_score, t, s)) if sk_version() >= (1, 6) else True


def sk_version():
    import sklearn
    return tuple(int(x) for x in sklearn.__version__.split(".")[:2])


def multiclass_scores(n, c, seed, ties=False):
    r = rng(seed)
    logits = r.normal(size=(n, c))
    if ties:
        logits = np.round(logits)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("weights", ["unweighted", "float"])
def test_multiclass_roc_auc(ties, weights):
    t = rng(4).integers(0, 4, 90)
    s = multiclass_scores(90, 4, 5, ties)
    w = WEIGHTS[weights](90)
    for average in ("macro", "weighted", "micro", None):
        assert_same(*both("roc_auc_score", t, s, multi_class="ovr", average=average, sample_weight=w))
    if w is None:
        for average in ("macro", "weighted"):
            assert_same(*both("roc_auc_score", t, s, multi_class="ovo", average=average))
    assert_same(*both("roc_auc_score", t, s, multi_class="ovr", labels=[0, 1, 2, 3]))
    both_raise("roc_auc_score", t, s)  # multi_class must be chosen
    both_raise("roc_auc_score", t, s * 2, multi_class="ovr")  # not probabilities
    both_raise("roc_auc_score", t, s[:, :3], multi_class="ovr")
    both_raise("roc_auc_score", t, s, multi_class="ovr", max_fpr=0.5)
    both_raise("roc_auc_score", t, s, multi_class="ovo", sample_weight=rng(0).random(90))
    both_raise("roc_auc_score", t, s, multi_class="ovr", labels=[0, 1, 2, 4])
    # string classes
    names = np.array(["ant", "bee", "cat", "dog"])[t]
    assert_same(*both("roc_auc_score", names, s, multi_class="ovr"))


@pytest.mark.parametrize("weights", ["unweighted", "float"])
def test_multilabel_roc_auc_and_average_precision(weights):
    r = rng(9)
    Y = r.integers(0, 2, (70, 3))
    S = r.random((70, 3)) + Y * 0.3
    w = WEIGHTS[weights](70)
    for average in ("micro", "macro", "weighted", None):
        assert_same(*both("roc_auc_score", Y, S, average=average, sample_weight=w))
        assert_same(*both("average_precision_score", Y, S, average=average, sample_weight=w))
    Y[:, 1] = 0  # a label that never occurs: undefined alone, left out of the weighted average
    for name in ("roc_auc_score", "average_precision_score"):
        assert_same(*both(name, Y, S, average="weighted", sample_weight=w))
    Y[:, 0] = 1  # every row has a positive and a negative: per-sample scores exist
    for name in ("roc_auc_score", "average_precision_score"):
        assert_same(*both(name, Y, S, average="samples", sample_weight=w))


@pytest.mark.parametrize("weights", ["unweighted", "float"])
def test_multiclass_average_precision(weights):
    t = rng(10).integers(0, 3, 60)
    s = multiclass_scores(60, 3, 11, ties=True)
    w = WEIGHTS[weights](60)
    for average in ("micro", "macro", "weighted", None):
        assert_same(*both("average_precision_score", t, s, average=average, sample_weight=w))
    both_raise("average_precision_score", t, s, pos_label=2)
    both_raise("average_precision_score", t, s[:, :2])


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_top_k_accuracy_score(ties):
    t = rng(12).integers(0, 5, 70)
    s = multiclass_scores(70, 5, 13, ties)
    if ties:
        s = np.round(s * 4)  # heavy ties at the top-k boundary
    w = WEIGHTS["float"](70)
    for k in (1, 2, 3, 5):
        for normalize in (True, False):
            assert_same(*both("top_k_accuracy_score", t, s, k=k, normalize=normalize, sample_weight=w))
    tb = rng(14).integers(0, 2, 70)
    for scores in (rng(15).random(70), rng(16).normal(size=70)):  # probabilities, decision values
        for k in (1, 2):
            assert_same(*both("top_k_accuracy_score", tb, scores, k=k))
    t_missing = np.where(t == 4, 0, t)  # class 4 absent from y_true: labels are needed
    assert_same(*both("top_k_accuracy_score", t_missing, s, k=2, labels=[0, 1, 2, 3, 4]))
    both_raise("top_k_accuracy_score", t_missing, s, k=2)
    both_raise("top_k_accuracy_score", t, s, labels=[4, 3, 2, 1, 0])


# ------------------------------------------------------------------------- log loss
def test_log_loss():
    r = rng(17)
    t = r.integers(0, 3, 50)
    p = multiclass_scores(50, 3, 18)
    w = WEIGHTS["float"](50)
    for normalize in (True, False):
        assert_same(*both("log_loss", t, p, normalize=normalize, sample_weight=w))
    p_extreme = np.eye(3)[r.integers(0, 3, 50)]  # probabilities of exactly 0 and 1
    assert_same(*both("log_loss", t, p_extreme))
    tb = r.integers(0, 2, 50)
    pb = r.random(50)
    assert_same(*both("log_loss", tb, pb))
    assert_same(*both("log_loss", tb, np.c_[1 - pb, pb]))
    assert_same(*both("log_loss", np.array(["no", "yes"])[tb], pb))
    t_missing = np.where(t == 2, 0, t)
    assert_same(*both("log_loss", t_missing, p, labels=[0, 1, 2]))
    assert_same(*both("log_loss", np.eye(3)[t], p))  # one-hot y_true
    assert_same(*both("log_loss", t, (p * 1e6).round() / 1e6))
    both_raise("log_loss", t_missing, p)  # 2 classes in y_true, 3 columns
    both_raise("log_loss", np.zeros(5, int), np.full(5, 0.3))  # a single class
    both_raise("log_loss", t, p * 2)
    both_raise("log_loss", t, p, labels=[0, 1])
    with pytest.warns(UserWarning, match="sum to one"):
        M.log_loss(t, p * 0.9)


# ------------------------------------------------------------------------- regression
def regression_cases():
    r = rng(19)
    yield "1 output", r.normal(size=40) * 5, r.normal(size=40) * 5
    yield "3 outputs", r.normal(size=(40, 3)) * [1, 10, 100], r.normal(size=(40, 3))
    yield "large offset", r.normal(size=40) + 1e6, r.normal(size=40) + 1e6
    const = np.c_[np.full(40, 2.0), r.normal(size=40)]
    yield "a constant target", const, const + np.c_[np.zeros(40), r.normal(size=40)]
    yield "constant target, imperfect", np.full(40, 3.0), np.full(40, 3.0) + r.normal(size=40)
    yield "perfect", const, const.copy()


REGRESSION_CASES = list(regression_cases())


@pytest.mark.parametrize("case", REGRESSION_CASES, ids=case_ids(REGRESSION_CASES))
@pytest.mark.parametrize("weights", ["unweighted", "float", "with zeros"])
def test_regression_metrics(case, weights):
    _, t, p = case
    w = WEIGHTS[weights](len(t))
    outputs = 1 if t.ndim == 1 else t.shape[1]
    multi = ["raw_values", "uniform_average"] + ([np.arange(1, outputs + 1)] if outputs > 1 else [])
    scale = max(1.0, float(np.max(np.abs(t))) ** 2)  # the errors' magnitude, for a relative 1e-10
    for mo in multi:
        for name in ("mean_absolute_error", "mean_squared_error", "root_mean_squared_error"):
            ours, theirs = both(name, t, p, sample_weight=w, multioutput=mo)
            assert_same(ours, theirs, TOL * scale)
        for force_finite in (True, False):
            ours, theirs = both("r2_score", t, p, sample_weight=w, multioutput=mo,
                                force_finite=force_finite)
            assert_same(ours, theirs, 1e-8 if "offset" in case[0] else TOL)
    assert_same(*both("r2_score", t, p, sample_weight=w, multioutput="variance_weighted"))


def test_regression_errors_and_r2_of_one_sample():
    assert np.isnan(quiet(M.r2_score, [1.0], [2.0]))
    with pytest.warns(M.UndefinedMetricWarning):
        M.r2_score([1.0], [2.0])
    both_raise("mean_squared_error", np.zeros((3, 2)), np.zeros((3, 3)))
    both_raise("mean_absolute_error", [1.0, 2.0], [1.0, 2.0], multioutput=[0.5, 0.5])
    both_raise("r2_score", np.zeros((3, 2)), np.zeros((3, 2)), multioutput="median")
    both_raise("mean_absolute_error", [1.0, np.nan], [1.0, 2.0])


def test_cosine_similarity_per_sample():
    r = rng(20)
    a, b = r.normal(size=(30, 4)), r.normal(size=(30, 4))
    a[3] = 0.0  # a zero vector: similarity 0
    b[5] = -2 * a[5]  # opposite: -1
    ours = M.cosine_similarity(a, b)
    assert ours.shape == (30,)
    np.testing.assert_allclose(ours, np.diag(sk_pairwise_cosine(a, b)), rtol=0, atol=TOL)
    assert ours[3] == 0.0 and ours[5] == pytest.approx(-1.0, abs=1e-15)
