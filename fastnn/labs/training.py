"""Labs on training: overfitting-dropout, batchnorm, optimizers, regularization, hyperparameters."""
import numpy as np

from .. import callbacks, datasets, optimizers as optim, regularizers, utils
from ..layers import Activation, BatchNormalization, Dense, Dropout
from ..models import Sequential
from ._base import accuracy, fmt, image_data, register, shuffled


@register("overfitting-dropout", {"en": "overfitting and dropout", "ko": "과적합과 드롭아웃"}, {
    "en": """
A large network trained on few examples memorises them: training accuracy climbs to 100% while
test accuracy stops improving, and the test loss turns upward -- overfitting. Dropout switches
off a random part of the units at every training step, so the network cannot lean on any single
unit to memorise an example, and the gap between the training and the test loss narrows. The lab
trains the same large network on a small subset of the images with dropout 0, 0.2 and 0.5 and
draws the training and test curves of each (the notes' "typical result" figures). Too much
dropout starves the network of capacity; 0.2-0.5 is the usual range.""",
    "ko": """
큰 신경망을 적은 데이터로 학습시키면 데이터를 외워 버립니다: 훈련 정확도는 100%까지 오르는데 테스트 정확도는
어느 순간 멈추고, 테스트 손실은 다시 올라갑니다 -- 과적합입니다. 드롭아웃은 학습할 때마다 뉴런의 일부를 무작위로
꺼서 신경망이 특정 뉴런에 의존해 외우지 못하게 하고, 훈련 손실과 테스트 손실의 차이가 줄어듭니다. 이 실습은
같은 큰 신경망을 이미지의 작은 부분 집합으로 드롭아웃 0, 0.2, 0.5로 학습시키고 각각의 훈련/테스트 곡선을 그립니다
(노트의 "드롭아웃을 썼을 때 기대되는 전형적인 결과" 그림). 드롭아웃을 너무 많이 하면 학습에 필요한 정보까지 잃으므로
보통 0.2~0.5를 씁니다."""})
def overfitting_dropout(lab):
    n_train, n_test = (300, 500) if lab.quick else (1000, 2000)
    x, y, xt, yt, source = image_data(lab, n_train, n_test)
    lab.number("train_samples", len(x))
    epochs = 40
    width = 256
    curves, gaps = {}, {}
    for rate in (0.0, 0.2, 0.5):
        utils.set_random_seed(6)
        layers = [Dense(width, activation="relu", input_dim=x.shape[1])]
        if rate:
            layers.append(Dropout(rate, seed=1))
        layers.append(Dense(width, activation="relu"))
        if rate:
            layers.append(Dropout(rate, seed=2))
        layers.append(Dense(10, activation="softmax"))
        model = Sequential(layers)
        model.compile(optim.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
        hist = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, validation_data=(xt, yt),
                         validation_batch_size=500)  # the test curve: same values, fewer calls
        curves[rate] = hist.history
        train_acc, test_acc = accuracy(model, x, y), accuracy(model, xt, yt)
        train_loss = model.evaluate(x, y)[0]  # inference mode: no units dropped
        test_loss = model.evaluate(xt, yt)[0]
        gaps[rate] = lab.number(f"loss_gap_dropout_{rate}", test_loss - train_loss)
        lab.number(f"accuracy_gap_dropout_{rate}", train_acc - test_acc)
        lab.number(f"train_accuracy_dropout_{rate}", train_acc)
        lab.number(f"test_accuracy_dropout_{rate}", test_acc)
        lab.number(f"train_loss_dropout_{rate}", train_loss)
        lab.number(f"test_loss_dropout_{rate}", test_loss)
    n = lab.result.numbers
    acc_gap = n["accuracy_gap_dropout_0.0"]
    lab.claim("no_dropout_overfits", n["train_accuracy_dropout_0.0"] > 0.99 and acc_gap > 0.03,
              f"{source}, {len(x)} training images, no dropout: training accuracy "
              f"{fmt(n['train_accuracy_dropout_0.0'])} (> 0.99), test {fmt(n['test_accuracy_dropout_0.0'])} "
              f"(gap {fmt(acc_gap)} > 0.03)",
              f"{source}, 훈련 이미지 {len(x)}장, 드롭아웃 없음: 훈련 정확도 "
              f"{fmt(n['train_accuracy_dropout_0.0'])} (> 0.99), 테스트 {fmt(n['test_accuracy_dropout_0.0'])} "
              f"(차이 {fmt(acc_gap)} > 0.03)")
    lab.claim("dropout_narrows_the_gap", gaps[0.5] < gaps[0.0] and gaps[0.2] < gaps[0.0],
              f"test loss minus training loss after {epochs} epochs: {fmt(gaps[0.0])} without dropout, "
              f"{fmt(gaps[0.2])} with 0.2, {fmt(gaps[0.5])} with 0.5 (both smaller than without)",
              f"{epochs} 에폭 후 테스트 손실 - 훈련 손실: 드롭아웃 없음 {fmt(gaps[0.0])}, 0.2 {fmt(gaps[0.2])}, "
              f"0.5 {fmt(gaps[0.5])} (둘 다 없을 때보다 작음)")
    lab.claim("test_loss_rise_curbed",
              n["test_loss_dropout_0.5"] < n["test_loss_dropout_0.0"],
              f"final test loss: {fmt(n['test_loss_dropout_0.0'])} without dropout, "
              f"{fmt(n['test_loss_dropout_0.5'])} with 0.5 (lower)",
              f"마지막 테스트 손실: 드롭아웃 없음 {fmt(n['test_loss_dropout_0.0'])}, "
              f"0.5 {fmt(n['test_loss_dropout_0.5'])} (더 낮음)")

    def draw(fig):
        for i, rate in enumerate(curves):
            for j, (key, label) in enumerate((("accuracy", "Accuracy"), ("loss", "Loss"))):
                ax = fig.add_subplot(2, 3, j * 3 + i + 1)
                ax.plot(curves[rate][key], label="train")
                ax.plot(curves[rate]["val_" + key], label="test")
                ax.set_title(f"dropout {rate}: {label}")
                ax.set_xlabel("epoch")
                ax.legend(fontsize=8)
    lab.figure("dropout_curves.png", draw, figsize=(12, 7))


def _epochs_to(history, key, target):
    for i, v in enumerate(history[key]):
        if v >= target:
            return i + 1
    return None


@register("batchnorm", {"en": "batch normalization", "ko": "배치 정규화"}, {
    "en": """
Batch normalization rescales each unit's pre-activations over the batch to mean 0 and variance
1 and then lets the network pick its own scale and offset (gamma, beta). Placed between the linear
part of a layer and its activation, it keeps every layer's inputs in a stable range however the
earlier layers change, so larger steps are safe and training reaches a given accuracy in fewer
epochs. The lab trains the notes' model (Dense 512 without bias, BatchNormalization, ReLU, Dense
128 without bias, BatchNormalization, ReLU, Dense 10 softmax) and the same model without batch
normalization, with the same plain SGD, and counts the epochs each needs to reach the target
training accuracy. It also draws the distribution of each layer's pre-activations before and
after normalization.""",
    "ko": """
배치 정규화는 뉴런마다 배치에 걸친 활성화 이전 값을 평균 0, 분산 1로 맞춘 뒤, 신경망이 스스로 크기와 위치(gamma,
beta)를 정하게 합니다. 층의 선형 변환(WX+B)과 활성화 함수 사이에 두면 앞 층이 어떻게 바뀌든 각 층의 입력이 안정된
범위에 머물러, 더 큰 걸음도 안전하고 같은 정확도에 더 적은 에폭으로 도달합니다. 이 실습은 노트의 모델(편향 없는
Dense 512, BatchNormalization, ReLU, 편향 없는 Dense 128, BatchNormalization, ReLU, Dense 10 softmax)과
배치 정규화를 뺀 같은 모델을 같은 SGD로 학습시켜, 목표 훈련 정확도에 도달하는 에폭 수를 셉니다. 또 층마다 정규화
전후의 활성화 이전 값 분포를 그립니다."""})
def batchnorm(lab):
    n_train, n_test = (1000, 300) if lab.quick else (4000, 1000)
    x, y, xt, yt, source = image_data(lab, n_train, n_test)
    widths = (128, 32) if lab.quick else (512, 128)
    epochs = 15 if lab.quick else 10
    target = 0.9 if lab.quick else 0.95
    runs = {}
    for bn in (True, False):
        utils.set_random_seed(7)
        layers = [Dense(widths[0], use_bias=not bn, input_dim=x.shape[1])]
        layers += [BatchNormalization(), Activation("relu")] if bn else [Activation("relu")]
        layers.append(Dense(widths[1], use_bias=not bn))
        layers += [BatchNormalization(), Activation("relu")] if bn else [Activation("relu")]
        layers.append(Dense(10, activation="softmax"))
        model = Sequential(layers)
        model.compile(optim.SGD(0.03), "sparse_categorical_crossentropy", ["accuracy"])
        hist = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, validation_data=(xt, yt),
                         validation_batch_size=500)  # the test curve: same values, fewer calls
        runs[bn] = (model, hist.history)
    e_bn = _epochs_to(runs[True][1], "accuracy", target)
    e_plain = _epochs_to(runs[False][1], "accuracy", target)
    lab.number("epochs_to_target_bn", e_bn if e_bn else float("nan"))
    lab.number("epochs_to_target_plain", e_plain if e_plain else float("nan"))
    lab.number("final_test_accuracy_bn", runs[True][1]["val_accuracy"][-1])
    lab.number("final_test_accuracy_plain", runs[False][1]["val_accuracy"][-1])
    say = lambda e: str(e) if e else lab.t(f"not within {epochs}", f"{epochs} 에폭 안에 도달 못 함")
    lab.claim("fewer_epochs_with_bn", e_bn is not None and (e_plain is None or e_bn < e_plain),
              f"{source}, {x.shape[1]}-{widths[0]}-{widths[1]}-10, SGD(0.03): epochs until the training accuracy fit reports reaches {target}: {say(e_bn)} with batch "
              f"norm, {say(e_plain)} without (fewer with)",
              f"{source}, {x.shape[1]}-{widths[0]}-{widths[1]}-10, SGD(0.03): fit이 보고하는 훈련 정확도가 {target} 도달 에폭: 배치 정규화 {say(e_bn)}, "
              f"없음 {say(e_plain)} (배치 정규화가 더 적음)")

    model = runs[True][0]
    h, pre = x[:512], {}
    for layer in model.layers:
        out = layer(h)
        if isinstance(layer, Dense) and layer is not model.layers[-1]:
            pre[f"{layer.name} (before BN)"] = out
        elif isinstance(layer, BatchNormalization):
            pre[f"{layer.name} (after BN)"] = out
        h = out
    for key, v in pre.items():
        lab.number(f"std {key}", v.std())
        lab.number(f"mean {key}", v.mean())
    after = [v for k, v in pre.items() if "after" in k]
    means = [float(np.abs(v.mean(axis=0)).mean()) for v in after]
    stds = [float(v.std(axis=0).mean()) for v in after]
    lab.claim("bn_outputs_normalized", max(means) < 0.5 and all(0.5 < s < 2 for s in stds),
              f"after training, each unit's output of batch normalization over 512 images: mean |mu| "
              f"{', '.join(fmt(m) for m in means)} (< 0.5), mean sigma {', '.join(fmt(s) for s in stds)} "
              "(between 0.5 and 2)",
              f"학습 후 이미지 512장에 대한 배치 정규화 출력(뉴런별): 평균 |mu| {', '.join(fmt(m) for m in means)} "
              f"(< 0.5), 평균 sigma {', '.join(fmt(s) for s in stds)} (0.5와 2 사이)")

    def draw(fig):
        ax = fig.add_subplot(1, 2, 1)
        for bn, (_, hist) in runs.items():
            ax.plot(range(1, epochs + 1), hist["accuracy"], "o-" if bn else "s--",
                    label=("BN" if bn else lab.ft("no BN", "BN 없음")))
        ax.axhline(target, color="grey", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab.ft("training accuracy", "훈련 정확도"))
        ax.legend()
        ax = fig.add_subplot(1, 2, 2)
        for key, v in pre.items():
            ax.hist(v.ravel(), bins=80, histtype="step", label=key, density=True)
        ax.set_xlim(-6, 6)
        ax.set_title(lab.ft("pre-activations", "활성화 이전 값 분포"))
        ax.legend(fontsize=7)
    lab.figure("batchnorm.png", draw, figsize=(11, 4.5))


RAVINE_START = (-7.0, 2.0)
RAVINE_OPTIMIZERS = {  # name -> (class, keyword arguments), learning rates tried for each
    "GD": (optim.SGD, {}),
    "Momentum": (optim.SGD, {"momentum": 0.9}),
    "AdaGrad": (optim.Adagrad, {"initial_accumulator_value": 0.0, "epsilon": 1e-7}),
    "RMSprop": (optim.RMSprop, {}),
    "Adam": (optim.Adam, {}),
}
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 0.5, 0.9, 1.5)


def _ravine_model():
    """f(w) = w1^2 / 20 + w2^2 as a model: Dense(1) without bias, two samples, mean squared error.
    Sample (sqrt(0.1), 0) with target 0 contributes 0.1 w1^2, sample (0, sqrt(2)) contributes 2 w2^2;
    their mean is the ravine."""
    x = np.array([[np.sqrt(0.1), 0.0], [0.0, np.sqrt(2.0)]], np.float32)
    t = np.zeros((2, 1), np.float32)
    return x, t


def _ravine_path(cls, kwargs, lr, steps):
    x, t = _ravine_model()
    model = Sequential([Dense(1, use_bias=False, input_dim=2)])
    model.compile(cls(learning_rate=lr, **kwargs), "mse")
    model.set_weights([np.array([[RAVINE_START[0]], [RAVINE_START[1]]], np.float32)])
    path, losses = [RAVINE_START], []
    for _ in range(steps):
        losses.append(float(model.train_on_batch(x, t)))
        w = model.get_weights()[0][:, 0]
        path.append((float(w[0]), float(w[1])))
    w1, w2 = path[-1]
    losses.append(w1 ** 2 / 20 + w2 ** 2)
    return np.array(path), np.array(losses)


@register("optimizers", {"en": "optimizers on a ravine and on images", "ko": "옵티마이저 비교"}, {
    "en": """
Gradient descent steps against the gradient. On a ravine -- f(x, y) = x^2/20 + y^2, steep across
and nearly flat along -- the gradient points mostly across the valley, so plain GD zigzags and
crawls along it; a learning rate large enough to move along the valley makes it bounce between
the walls. Momentum accumulates past steps, cancelling the zigzag and building speed along the
valley. AdaGrad and RMSprop divide each coordinate's step by the size of its recent gradients,
so both directions move at similar speeds; Adam combines momentum with that scaling. The lab
gives each optimizer its best learning rate from the same list, counts the steps to bring
f below 0.01 from (-7, 2), and draws the paths; then it trains one network on images with each
optimizer and draws the loss curves.""",
    "ko": """
경사 하강법은 기울기의 반대 방향으로 걸어갑니다. 계곡 모양의 함수 f(x, y) = x^2/20 + y^2(가로로는 가파르고
세로로는 거의 평평함)에서는 기울기가 주로 계곡을 가로지르는 방향이라, 일반 GD는 지그재그로 움직이며 계곡을 따라
천천히 기어갑니다; 계곡을 따라 빨리 가도록 학습률을 키우면 양쪽 벽 사이를 튕깁니다. 모멘텀은 지난 걸음을 누적해
지그재그를 상쇄하고 계곡 방향으로 속도를 냅니다. AdaGrad와 RMSprop은 좌표마다 최근 기울기의 크기로 걸음을 나누어
두 방향이 비슷한 속도로 움직이게 하고, Adam은 모멘텀과 이 조정을 합칩니다. 이 실습은 같은 학습률 목록에서 옵티마이저마다
가장 좋은 학습률을 골라 (-7, 2)에서 f가 0.01 아래로 내려갈 때까지의 걸음 수를 세고 경로를 그립니다; 그리고 이미지로
신경망 하나를 옵티마이저마다 학습시켜 손실 곡선을 그립니다."""})
def optimizers(lab):
    steps = 300
    goal = 0.01
    best = {}
    for name, (cls, kwargs) in RAVINE_OPTIMIZERS.items():
        runs = []
        for lr in LEARNING_RATES:
            path, losses = _ravine_path(cls, kwargs, lr, steps)
            below = np.nonzero(losses < goal)[0]
            n = int(below[0]) if len(below) else None
            runs.append(((n if n is not None else steps + 1), lr, path, losses))
        n, lr, path, losses = min(runs, key=lambda r: r[0])
        best[name] = (n, lr, path, losses)
        lab.number(f"ravine_steps_{name}", n if n <= steps else float("nan"))
        lab.number(f"ravine_best_lr_{name}", lr)
    gd = best["GD"][0]
    say = lambda k: (f"{best[k][0]} (lr {best[k][1]})" if best[k][0] <= steps else f"> {steps}")
    lab.claim("adam_and_momentum_beat_gd", best["Adam"][0] < gd and best["Momentum"][0] < gd,
              f"ravine x^2/20 + y^2 from (-7, 2), steps until f < {goal} with the best learning rate of "
              f"{list(LEARNING_RATES)}: GD {say('GD')}, Momentum {say('Momentum')}, AdaGrad "
              f"{say('AdaGrad')}, RMSprop {say('RMSprop')}, Adam {say('Adam')} (Adam and Momentum "
              "fewer than GD)",
              f"계곡 x^2/20 + y^2, (-7, 2)에서 출발, 학습률 {list(LEARNING_RATES)} 중 최적일 때 f < {goal}까지 "
              f"걸음 수: GD {say('GD')}, 모멘텀 {say('Momentum')}, AdaGrad {say('AdaGrad')}, RMSprop "
              f"{say('RMSprop')}, Adam {say('Adam')} (Adam과 모멘텀이 GD보다 적음)")

    n_train = 1000 if lab.quick else 5000
    x, y, _, _, source = image_data(lab, n_train, 100)
    epochs = 5 if lab.quick else 10
    curves = {}
    chosen = {"GD": optim.SGD(0.01), "Momentum": optim.SGD(0.01, momentum=0.9),
              "AdaGrad": optim.Adagrad(0.01), "RMSprop": optim.RMSprop(0.001), "Adam": optim.Adam(0.001)}
    for name, opt in chosen.items():
        utils.set_random_seed(8)
        model = Sequential([Dense(100, activation="relu", input_dim=x.shape[1]),
                            Dense(10, activation="softmax")])
        model.compile(opt, "sparse_categorical_crossentropy")
        curves[name] = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0).history["loss"]
        lab.number(f"{source.split()[0]}_final_loss_{name}", curves[name][-1])
    lab.claim("adaptive_and_momentum_train_faster",
              curves["Adam"][-1] < curves["GD"][-1] and curves["Momentum"][-1] < curves["GD"][-1],
              f"{source}, training loss after {epochs} epochs: "
              + ", ".join(f"{k} {fmt(v[-1])}" for k, v in curves.items())
              + " (Adam and Momentum below GD)",
              f"{source}, {epochs} 에폭 후 훈련 손실: " + ", ".join(f"{k} {fmt(v[-1])}" for k, v in curves.items())
              + " (Adam과 모멘텀이 GD보다 낮음)")

    def draw(fig):
        gx, gy = np.meshgrid(np.linspace(-8, 8, 200), np.linspace(-3, 3, 200))
        for i, (name, (n, lr, path, _)) in enumerate(best.items()):
            ax = fig.add_subplot(2, 3, i + 1)
            ax.contour(gx, gy, gx ** 2 / 20 + gy ** 2, levels=15, linewidths=0.6)
            ax.plot(path[:60, 0], path[:60, 1], "o-", ms=2, color="red")
            ax.plot(0, 0, "+", color="black")
            ax.set_title(f"{name} (lr {lr})", fontsize=9)
            ax.set_xlim(-8, 8)
            ax.set_ylim(-3, 3)
        ax = fig.add_subplot(2, 3, 6)
        for name, c in curves.items():
            ax.plot(range(1, len(c) + 1), c, "o-", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(source, fontsize=8)
        ax.legend(fontsize=7)
    lab.figure("optimizers.png", draw, figsize=(12, 7))


@register("regularization", {"en": "L1, L2 and early stopping", "ko": "L1, L2 규제와 조기 종료"}, {
    "en": """
Regularization fights overfitting by constraining the model. L2 adds lambda * sum(w^2) to the
loss: every weight is pulled towards zero in proportion to its size, so weights become small but
rarely zero. L1 adds lambda * sum(|w|): the pull has the same strength whatever the size, so
weights that do not earn their keep are driven to (nearly) zero -- a sparse model. The lab
trains the same network on data where only 3 of 20 inputs matter, with L1 and with L2, and
compares the weight histograms. Early stopping watches the validation loss after every epoch,
stops when it has not improved for `patience` epochs, and puts back the weights of the best
epoch.""",
    "ko": """
규제는 모델에 제약을 걸어 과적합을 막습니다. L2는 손실에 lambda * sum(w^2)를 더합니다: 모든 가중치가 크기에 비례하는
힘으로 0 쪽으로 당겨져 작아지지만 0이 되는 일은 드뭅니다. L1은 lambda * sum(|w|)를 더합니다: 당기는 힘이 크기와
상관없이 같아서, 쓸모없는 가중치는 (거의) 0이 됩니다 -- 희소한 모델. 이 실습은 입력 20개 중 3개만 의미 있는 데이터로
같은 신경망을 L1과 L2로 각각 학습시켜 가중치 히스토그램을 비교합니다. 조기 종료는 에폭마다 검증 손실을 보고
`patience` 에폭 동안 좋아지지 않으면 학습을 멈춘 뒤, 가장 좋았던 에폭의 가중치를 되돌려 놓습니다."""})
def regularization(lab):
    rng = np.random.default_rng(0)
    n = 600 if lab.quick else 2000
    x = rng.standard_normal((n, 20)).astype(np.float32)
    y = ((x[:, 0] + 2 * x[:, 1] - x[:, 2] + 0.3 * rng.standard_normal(n)) > 0).astype(np.float32)
    y = y.reshape(-1, 1)
    epochs = 40 if lab.quick else 100
    kernels = {}
    for name, reg in (("L1", regularizers.L1(0.005)), ("L2", regularizers.L2(0.005))):
        utils.set_random_seed(9)
        model = Sequential([Dense(16, activation="relu", kernel_regularizer=reg, input_dim=20),
                            Dense(1, activation="sigmoid")])
        model.compile(optim.Adam(0.01), "binary_crossentropy")
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
        kernels[name] = model.layers[0].get_weights()[0].ravel()
        lab.number(f"{name}_accuracy", accuracy(model, x, y))
    near = {k: lab.number(f"{k}_fraction_below_0.01", np.mean(np.abs(w) < 0.01)) for k, w in kernels.items()}
    lab.claim("l1_gives_more_zeros", near["L1"] > near["L2"] + 0.2,
              f"first-layer weights with |w| < 0.01: {fmt(near['L1'])} with L1, {fmt(near['L2'])} with L2 "
              "(L1 more, by over 0.2)",
              f"|w| < 0.01인 첫 층 가중치 비율: L1 {fmt(near['L1'])}, L2 {fmt(near['L2'])} (L1이 0.2 넘게 많음)")

    # early stopping: a large net on a small noisy set, validation loss monitored
    xs, ys = x[:200], np.where(rng.random((200, 1)) < 0.15, 1 - y[:200], y[:200]).astype(np.float32)
    xv, yv = x[200:400], y[200:400]
    utils.set_random_seed(10)
    model = Sequential([Dense(128, activation="relu", input_dim=20), Dense(128, activation="relu"),
                        Dense(1, activation="sigmoid")])
    model.compile(optim.Adam(0.003), "binary_crossentropy")
    max_epochs = 200
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    hist = model.fit(xs, ys, batch_size=32, epochs=max_epochs, verbose=0, validation_data=(xv, yv),
                     callbacks=[stop])
    val = hist.history["val_loss"]
    best_epoch = int(np.argmin(val)) + 1
    restored = float(model.evaluate(xv, yv))  # a model compiled without metrics returns the loss
    lab.number("epochs_run", len(val))
    lab.number("best_epoch", best_epoch)
    lab.number("best_val_loss", min(val))
    lab.number("restored_val_loss", restored)
    lab.claim("early_stopping_stops", len(val) < max_epochs and len(val) == best_epoch + 5,
              f"training stopped after {len(val)} of {max_epochs} epochs: the best validation loss "
              f"was at epoch {best_epoch}, then 5 epochs (the patience) without improvement",
              f"{max_epochs} 에폭 중 {len(val)} 에폭에서 학습 중단: 최고 검증 손실은 {best_epoch} 에폭, "
              "이후 5 에폭(patience) 동안 개선 없음")
    lab.claim("best_weights_restored", abs(restored - min(val)) <= 1e-5 * max(1.0, min(val)),
              f"validation loss of the returned model {fmt(restored)} equals the best epoch's "
              f"{fmt(min(val))} (within 1e-5)",
              f"돌려받은 모델의 검증 손실 {fmt(restored)} = 최고 에폭의 {fmt(min(val))} (1e-5 이내)")

    def draw(fig):
        ax = fig.add_subplot(1, 2, 1)
        for k, w in kernels.items():
            ax.hist(w, bins=60, range=(-1, 1), histtype="step", label=k)
        ax.set_xlabel(lab.ft("first-layer weight", "첫 층 가중치"))
        ax.legend()
        ax = fig.add_subplot(1, 2, 2)
        ax.plot(range(1, len(val) + 1), hist.history["loss"], label="train")
        ax.plot(range(1, len(val) + 1), val, label="validation")
        ax.axvline(best_epoch, color="grey", ls="--", label=lab.ft("restored epoch", "복원된 에폭"))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
    lab.figure("regularization.png", draw, figsize=(11, 4.5))


@register("hyperparameters", {"en": "learning rate, batch size and width",
                              "ko": "신경망의 하이퍼파라미터 설정"}, {
    "en": """
Hyperparameters are the settings chosen before training. The learning rate matters most: too
small and the loss barely moves in the time available, right and it falls steadily, too large
and each step overshoots, so the loss grows instead of shrinking (divergence). The batch size
trades noise for cost: small batches take many noisy steps per epoch, large ones few precise
steps. The width (units per hidden layer) sets the capacity: too narrow a network cannot fit
the data at all. The lab sweeps each on a 3-class spiral.""",
    "ko": """
하이퍼파라미터는 학습 전에 정하는 설정입니다. 가장 중요한 것은 학습률입니다: 너무 작으면 주어진 시간 안에 손실이
거의 움직이지 않고, 적당하면 꾸준히 내려가며, 너무 크면 걸음마다 지나쳐 손실이 줄지 않고 커집니다(발산). 배치 크기는
잡음과 비용을 맞바꿉니다: 작은 배치는 에폭마다 잡음 섞인 걸음을 많이, 큰 배치는 정확한 걸음을 적게 밟습니다. 너비(은닉층의
뉴런 수)는 표현력을 정합니다: 너무 좁은 신경망은 데이터를 아예 맞추지 못합니다. 이 실습은 3-클래스 나선형 데이터에서
각각을 바꿔 가며 잽니다."""})
def hyperparameters(lab):
    x, y = datasets.make_spiral(n_per_class=100 if lab.quick else 300, n_classes=3, noise=0.15, seed=0)
    x, y = shuffled(x, y)
    epochs = 30 if lab.quick else 100

    def train(lr=0.5, batch=32, width=64, opt=None):
        utils.set_random_seed(11)
        model = Sequential([Dense(width, activation="relu", input_dim=2), Dense(width, activation="relu"),
                            Dense(3, activation="softmax")])
        model.compile(opt or optim.SGD(lr), "sparse_categorical_crossentropy")
        initial = float(model.evaluate(x, y))
        hist = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        return model, [initial] + hist.history["loss"]

    lr_curves = {}
    for lr in (1e-4, 0.1, 50.0):
        _, lr_curves[lr] = train(lr=lr)
        lab.number(f"lr_{lr}_loss_curve", lr_curves[lr])
    small, right, large = lr_curves[1e-4], lr_curves[0.1], lr_curves[50.0]
    lab.claim("too_small_barely_moves", small[-1] > 0.95 * small[0],
              f"SGD lr 1e-4: loss {fmt(small[0])} -> {fmt(small[-1])} after {epochs} epochs (less than 5% lower)",
              f"SGD 학습률 1e-4: 손실 {fmt(small[0])} -> {fmt(small[-1])} ({epochs} 에폭, 5% 미만 감소)")
    lab.claim("right_rate_learns", right[-1] < 0.5 * right[0],
              f"SGD lr 0.1: loss {fmt(right[0])} -> {fmt(right[-1])} (below half)",
              f"SGD 학습률 0.1: 손실 {fmt(right[0])} -> {fmt(right[-1])} (절반 미만)")
    diverged = not np.isfinite(large[-1]) or large[-1] > large[0]
    lab.claim("too_large_diverges", diverged,
              f"SGD lr 50: loss {fmt(large[0])} -> {fmt(large[-1])} (above where it started: divergence)",
              f"SGD 학습률 50: 손실 {fmt(large[0])} -> {fmt(large[-1])} (시작보다 큼: 발산)")

    batch_loss = {}
    for batch in (8, 64, len(x)):
        _, curve = train(lr=0.1, batch=batch)
        batch_loss[batch] = lab.number(f"batch_{batch}_final_loss", curve[-1])
    lab.claim("smaller_batches_more_progress_per_epoch", batch_loss[8] < batch_loss[64] < batch_loss[len(x)],
              f"SGD lr 0.1, loss after {epochs} epochs: batch 8 {fmt(batch_loss[8])}, batch 64 "
              f"{fmt(batch_loss[64])}, full batch ({len(x)}) {fmt(batch_loss[len(x)])} (more steps per "
              "epoch, lower loss)",
              f"SGD 학습률 0.1, {epochs} 에폭 후 손실: 배치 8 {fmt(batch_loss[8])}, 배치 64 {fmt(batch_loss[64])}, "
              f"전체 배치({len(x)}) {fmt(batch_loss[len(x)])} (에폭당 걸음이 많을수록 낮음)")

    width_acc = {}
    for width in (2, 8, 64):
        model, _ = train(width=width, opt=optim.Adam(0.01))
        width_acc[width] = lab.number(f"width_{width}_train_accuracy", accuracy(model, x, y))
    lab.claim("too_narrow_underfits", width_acc[2] < width_acc[64] - 0.2,
              f"Adam, training accuracy by width: 2 units {fmt(width_acc[2])}, 8 {fmt(width_acc[8])}, "
              f"64 {fmt(width_acc[64])} (2 units more than 0.2 below 64)",
              f"Adam, 너비별 훈련 정확도: 2개 {fmt(width_acc[2])}, 8개 {fmt(width_acc[8])}, 64개 "
              f"{fmt(width_acc[64])} (2개가 64개보다 0.2 넘게 낮음)")

    def draw(fig):
        ax = fig.add_subplot(1, 3, 1)
        for lr, c in lr_curves.items():
            ax.semilogy(range(len(c)), np.clip(np.nan_to_num(c, nan=1e6), 1e-3, 1e6), "o-", ms=3, label=f"lr {lr}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
        ax = fig.add_subplot(1, 3, 2)
        ax.bar([str(b) for b in batch_loss], list(batch_loss.values()))
        ax.set_xlabel("batch size")
        ax.set_ylabel(lab.ft(f"loss after {epochs} epochs", f"{epochs} 에폭 후 손실"))
        ax = fig.add_subplot(1, 3, 3)
        ax.bar([str(w) for w in width_acc], list(width_acc.values()))
        ax.set_xlabel(lab.ft("units per hidden layer", "은닉층 뉴런 수"))
        ax.set_ylabel(lab.ft("training accuracy", "훈련 정확도"))
    lab.figure("hyperparameters.png", draw, figsize=(13, 4))
