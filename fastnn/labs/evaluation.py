"""Labs on using a trained network: batching, metrics."""
import time

import numpy as np

from .. import backend, metrics as fm, optimizers, utils
from ..layers import Dense
from ..models import Sequential
from ._base import fmt, image_data, register


def _per_image(model, x, batch, repeats):
    """Seconds per image to predict ``x`` in calls of ``batch`` images: the fastest call of
    ``repeats`` passes over ``x``, divided by its number of images. The fastest call is the cost
    of the computation itself; slower ones were interrupted by other work on the machine."""
    best = float("inf")
    for _ in range(repeats):
        for i in range(0, len(x) - batch + 1, batch):
            chunk = x[i:i + batch]
            start = time.perf_counter()
            model.predict(chunk, batch_size=batch)
            best = min(best, (time.perf_counter() - start) / batch)
    return best


@register("batching", {"en": "batch processing makes inference cheaper per image",
                       "ko": "배치 처리: 이미지 1장당 추론 시간"}, {
    "en": """
The notes' network for MNIST: 784 inputs (28x28 pixels), hidden layers of 50 and 100 sigmoid
units, 10 softmax outputs. Feeding one image at a time multiplies a 1x784 row by each weight
matrix; feeding 100 at once multiplies a 100x784 matrix -- the same arithmetic, but one call
instead of 100, and matrix-matrix products use the processor far better than vector-matrix ones
(the weights are read once per batch, not once per image). The lab times predictions one image at
a time, in batches of 100 and as one batch, on fastnn's native backend and on its NumPy
reference, and checks that the answers are the same.""",
    "ko": """
노트의 MNIST 신경망: 입력 784개(28x28 픽셀), 시그모이드 은닉층 50개와 100개, 소프트맥스 출력 10개. 이미지를 한
장씩 넣으면 1x784 행을 가중치 행렬에 곱하고, 100장을 한꺼번에 넣으면 100x784 행렬을 곱합니다 -- 계산량은 같지만
호출은 100번이 아니라 한 번이고, 행렬-행렬 곱은 벡터-행렬 곱보다 프로세서를 훨씬 잘 활용합니다(가중치를 이미지마다가
아니라 배치마다 한 번 읽음). 이 실습은 한 장씩, 100장씩, 한 번에 전부 예측하는 시간을 fastnn의 네이티브 백엔드와
NumPy 참조 구현에서 재고, 답이 같은지 확인합니다."""})
def batching(lab):
    n = 500 if lab.quick else 10000
    x, y, _, _, source = image_data(lab, n, 10)
    if x.shape[1] != 784:  # the stand-in data are smaller images: pad to the notes' 784 inputs
        x = np.pad(x, ((0, 0), (0, 784 - x.shape[1])))
    x = np.ascontiguousarray(x[:n], dtype=np.float32)
    utils.set_random_seed(12)
    model = Sequential([Dense(50, activation="sigmoid", input_dim=784), Dense(100, activation="sigmoid"),
                        Dense(10, activation="softmax")])
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    repeats = 5
    times = {}
    for name in ("native", "numpy"):
        with backend.backend_scope(name):
            single = x[:100] if lab.quick else x[:1000]
            model.predict(x[:100])  # warm up
            times[name] = {"1": _per_image(model, single, 1, repeats),
                           # batched calls are cheap: more of them, so that one quiet moment
                           # of a busy machine is among them
                           "100": _per_image(model, x, 100, 4 * repeats),
                           "all": _per_image(model, x, len(x), 4 * repeats)}
            for k, v in times[name].items():
                lab.number(f"{name}_seconds_per_image_batch_{k}", v)
    speedup = {k: times[k]["1"] / times[k]["100"] for k in times}
    for k, v in speedup.items():
        lab.number(f"{k}_speedup_batch_100_over_1", v)
    lab.claim("batching_several_times_cheaper", min(speedup.values()) >= 3,
              f"time per image, one at a time vs batches of 100: native {fmt(times['native']['1'] * 1e6)} "
              f"vs {fmt(times['native']['100'] * 1e6)} us ({fmt(speedup['native'])}x), NumPy "
              f"{fmt(times['numpy']['1'] * 1e6)} vs {fmt(times['numpy']['100'] * 1e6)} us "
              f"({fmt(speedup['numpy'])}x) (at least 3x on both)",
              f"이미지 1장당 시간, 한 장씩 vs 100장씩: 네이티브 {fmt(times['native']['1'] * 1e6)} vs "
              f"{fmt(times['native']['100'] * 1e6)} us ({fmt(speedup['native'])}배), NumPy "
              f"{fmt(times['numpy']['1'] * 1e6)} vs {fmt(times['numpy']['100'] * 1e6)} us "
              f"({fmt(speedup['numpy'])}배) (둘 다 3배 이상)", timed=True)
    one = np.concatenate([model.predict(x[i:i + 1]) for i in range(100)])
    batched = model.predict(x[:100])
    same = lab.number("max_difference_single_vs_batch", np.max(np.abs(one - batched)))
    lab.claim("same_answers", same == 0.0,
              f"native backend, 100 images one by one against one batch: max difference {fmt(same)} (0: "
              "a sample's prediction does not depend on its batch)",
              f"네이티브 백엔드, 100장을 한 장씩 vs 한 배치: 최대 차이 {fmt(same)} (0: 예측은 배치와 무관)")

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        labels = ["1", "100", str(len(x))]
        pos = np.arange(3)
        for i, name in enumerate(("native", "numpy")):
            ax.bar(pos + 0.4 * i, [times[name][k] * 1e6 for k in ("1", "100", "all")], width=0.4, label=name)
        ax.set_xticks(pos + 0.2)
        ax.set_xticklabels(labels)
        ax.set_yscale("log")
        ax.set_xlabel(lab.ft("images per call", "호출당 이미지 수"))
        ax.set_ylabel(lab.ft("microseconds per image", "이미지 1장당 마이크로초"))
        ax.set_title("784-50-100-10")
        ax.legend()
    lab.figure("time_per_image.png", draw)


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.metrics
    except ImportError as exc:
        raise ImportError("the metrics lab compares with scikit-learn and uses its bundled data "
                          "sets; install it: pip install scikit-learn") from exc
    return sklearn


def _difference(a, b):
    """Largest |a - b| over two arrays; entries equal as floats (also both inf) count 0, a shape
    mismatch or a NaN on one side counts inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, np.abs(a - b))
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.max(initial=0.0))


def _standardize(x_train, x_test):
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-12
    return ((x_train - mu) / sd).astype(np.float32), ((x_test - mu) / sd).astype(np.float32)


@register("metrics", {"en": "evaluation metrics", "ko": "평가지표"}, {
    "en": """
Accuracy alone hides what kind of mistakes a classifier makes. The confusion matrix counts them:
true positives, false positives, false negatives, true negatives. Precision is TP / (TP + FP):
of the cases flagged, how many were right; recall is TP / (TP + FN): of the real cases, how many
were found; F1 is their harmonic mean. Moving the decision threshold trades one for the other;
the ROC curve (true-positive rate against false-positive rate) and the precision-recall curve
show every threshold at once, and the area under the ROC curve summarises it. For regression:
MAE is the mean absolute error, RMSE the square root of the mean squared error (it punishes large
errors more), and R^2 the fraction of the target's variance the model explains. The lab trains a
classifier on the breast cancer data and a regressor on the diabetes data and checks every
fastnn.metrics value against scikit-learn's.""",
    "ko": """
정확도만으로는 분류기가 어떤 종류의 실수를 하는지 알 수 없습니다. 혼동 행렬은 실수를 셉니다: 참 양성(TP), 거짓
양성(FP), 거짓 음성(FN), 참 음성(TN). 정밀도(precision)는 TP / (TP + FP): 양성이라고 한 것 중 맞은 비율, 재현율(recall)은
TP / (TP + FN): 실제 양성 중 찾아낸 비율, F1은 둘의 조화 평균입니다. 결정 임계값을 옮기면 하나를 얻고 하나를 잃습니다;
ROC 곡선(거짓 양성 비율 대비 참 양성 비율)과 정밀도-재현율 곡선은 모든 임계값을 한 번에 보여 주고, ROC 곡선 아래 면적(AUC)이
이를 요약합니다. 회귀에서는 MAE가 평균 절대 오차, RMSE가 평균 제곱 오차의 제곱근(큰 오차에 더 큰 벌점), R^2가 모델이 설명하는
목표값 분산의 비율입니다. 이 실습은 유방암 데이터로 분류기를, 당뇨병 데이터로 회귀 모델을 학습시키고 fastnn.metrics의 모든
값을 scikit-learn의 값과 비교합니다."""})
def metrics(lab):
    sk = _sklearn()
    skm = sk.metrics
    rng = np.random.default_rng(0)
    data = sk.datasets.load_breast_cancer()
    order = rng.permutation(len(data.target))
    x, y = data.data[order], data.target[order]
    split = int(0.7 * len(x))
    x_tr, x_te = _standardize(x[:split], x[split:])
    y_tr, y_te = y[:split].reshape(-1, 1).astype(np.float32), y[split:]
    utils.set_random_seed(13)
    clf = Sequential([Dense(16, activation="relu", input_dim=x.shape[1]), Dense(1, activation="sigmoid")])
    clf.compile(optimizers.Adam(0.01), "binary_crossentropy")
    clf.fit(x_tr, y_tr, batch_size=32, epochs=20 if lab.quick else 50, verbose=0)
    score = clf.predict(x_te)[:, 0].astype(np.float64)
    pred = (score > 0.5).astype(int)
    pairs = {
        "accuracy": (fm.accuracy_score(y_te, pred), skm.accuracy_score(y_te, pred)),
        "precision": (fm.precision_score(y_te, pred), skm.precision_score(y_te, pred)),
        "recall": (fm.recall_score(y_te, pred), skm.recall_score(y_te, pred)),
        "f1": (fm.f1_score(y_te, pred), skm.f1_score(y_te, pred)),
        "roc_auc": (fm.roc_auc_score(y_te, score), skm.roc_auc_score(y_te, score)),
        "average_precision": (fm.average_precision_score(y_te, score), skm.average_precision_score(y_te, score)),
    }
    cm, cm_sk = fm.confusion_matrix(y_te, pred), skm.confusion_matrix(y_te, pred)
    lab.number("confusion_matrix", cm)
    curves = {"roc": (fm.roc_curve(y_te, score), skm.roc_curve(y_te, score)),
              "pr": (fm.precision_recall_curve(y_te, score), skm.precision_recall_curve(y_te, score))}
    worst = 0.0
    for key, (ours, theirs) in pairs.items():
        lab.number(key, ours)
        lab.number(f"{key}_sklearn", theirs)
        worst = max(worst, abs(float(ours) - float(theirs)))
    for key, (ours, theirs) in curves.items():
        for a, b in zip(ours, theirs):
            worst = max(worst, _difference(a, b))
    if not np.array_equal(cm, cm_sk):
        worst = float("inf")
    lab.number("classification_max_difference_from_sklearn", worst)
    lab.claim("classification_metrics_equal_sklearn", worst <= 1e-12,
              "breast cancer, held-out: " + ", ".join(f"{k} {fmt(v[0])}" for k, v in pairs.items())
              + f", confusion matrix {cm.tolist()}; largest difference from scikit-learn over these and "
              f"the ROC and PR curves: {fmt(worst)} (<= 1e-12)",
              "유방암 데이터 검증: " + ", ".join(f"{k} {fmt(v[0])}" for k, v in pairs.items())
              + f", 혼동 행렬 {cm.tolist()}; 이 값들과 ROC, PR 곡선에서 scikit-learn과의 최대 차이: {fmt(worst)} (<= 1e-12)")
    lab.claim("classifier_is_useful", pairs["accuracy"][0] > 0.9 and pairs["roc_auc"][0] > 0.95,
              f"held-out accuracy {fmt(pairs['accuracy'][0])} (> 0.9), ROC AUC {fmt(pairs['roc_auc'][0])} (> 0.95)",
              f"검증 정확도 {fmt(pairs['accuracy'][0])} (> 0.9), ROC AUC {fmt(pairs['roc_auc'][0])} (> 0.95)")

    data = sk.datasets.load_diabetes()
    order = rng.permutation(len(data.target))
    x, t = data.data[order], data.target[order]
    split = int(0.7 * len(x))
    x_tr, x_te = _standardize(x[:split], x[split:])
    mu, sd = t[:split].mean(), t[:split].std()
    utils.set_random_seed(14)
    reg = Sequential([Dense(16, activation="relu", input_dim=x.shape[1]), Dense(1)])
    reg.compile(optimizers.Adam(0.01), "mse")
    reg.fit(x_tr, ((t[:split] - mu) / sd).reshape(-1, 1).astype(np.float32), batch_size=32,
            epochs=30 if lab.quick else 100, verbose=0)
    p = reg.predict(x_te)[:, 0].astype(np.float64) * sd + mu
    t_te = t[split:]
    rpairs = {"mae": (fm.mean_absolute_error(t_te, p), skm.mean_absolute_error(t_te, p)),
              "rmse": (fm.root_mean_squared_error(t_te, p), np.sqrt(skm.mean_squared_error(t_te, p))),
              "r2": (fm.r2_score(t_te, p), skm.r2_score(t_te, p))}
    rworst = 0.0
    for key, (ours, theirs) in rpairs.items():
        lab.number(key, ours)
        lab.number(f"{key}_sklearn", theirs)
        rworst = max(rworst, abs(float(ours) - float(theirs)) / max(1.0, abs(float(theirs))))
    lab.claim("regression_metrics_equal_sklearn", rworst <= 1e-12,
              f"diabetes, held-out: MAE {fmt(rpairs['mae'][0])}, RMSE {fmt(rpairs['rmse'][0])}, R^2 "
              f"{fmt(rpairs['r2'][0])}; largest relative difference from scikit-learn {fmt(rworst)} (<= 1e-12)",
              f"당뇨병 데이터 검증: MAE {fmt(rpairs['mae'][0])}, RMSE {fmt(rpairs['rmse'][0])}, R^2 "
              f"{fmt(rpairs['r2'][0])}; scikit-learn과의 최대 상대 차이 {fmt(rworst)} (<= 1e-12)")
    lab.claim("regressor_explains_variance", rpairs["r2"][0] > 0.3,
              f"R^2 {fmt(rpairs['r2'][0])} (> 0.3: better than predicting the mean)",
              f"R^2 {fmt(rpairs['r2'][0])} (> 0.3: 평균으로 예측하는 것보다 나음)")

    def draw(fig):
        from .. import plot
        plot.confusion_matrix(y_te, pred, ax=fig.add_subplot(1, 4, 1))
        plot.roc_curve(y_te, score, ax=fig.add_subplot(1, 4, 2))
        plot.precision_recall_curve(y_te, score, ax=fig.add_subplot(1, 4, 3))
        ax = fig.add_subplot(1, 4, 4)
        ax.scatter(t_te, p, s=8)
        lo, hi = float(t_te.min()), float(t_te.max())
        ax.plot([lo, hi], [lo, hi], color="grey")
        ax.set_xlabel(lab.ft("target", "정답"))
        ax.set_ylabel(lab.ft("prediction", "예측"))
        ax.set_title(f"diabetes: R^2 {rpairs['r2'][0]:.2f}")
    lab.figure("metrics.png", draw, figsize=(16, 4))
