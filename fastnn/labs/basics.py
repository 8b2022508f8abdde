"""Labs on what a layer is: perceptron, linear-collapse, depth, activations."""
import numpy as np

from .. import datasets, ops, optimizers, utils
from ..layers import Activation, BatchNormalization, Dense
from ..models import Sequential
from ._base import accuracy, fmt, register, shuffled

GATES = {  # hand-set (w1, w2, b): output 1 when w1*x1 + w2*x2 + b > 0
    "and": (0.5, 0.5, -0.7),
    "or": (0.5, 0.5, -0.2),
    "nand": (-0.5, -0.5, 0.7),
}


def _gate_model(w1, w2, b):
    model = Sequential([Dense(1, activation="step", input_dim=2)])
    model.set_weights([np.array([[w1], [w2]], np.float32), np.array([b], np.float32)])
    return model


def _fit_binary(model, x, y, lr, epochs):
    model.compile(optimizers.Adam(lr), "binary_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=len(x), epochs=epochs, verbose=0)
    return model


@register("perceptron", {"en": "the perceptron, logic gates and XOR",
                         "ko": "퍼셉트론, 논리 게이트와 XOR"}, {
    "en": """
A perceptron multiplies each input by a weight, adds a bias and fires (outputs 1) when the sum
is above zero: the step function. With hand-set weights -- AND (0.5, 0.5, -0.7), OR (0.5, 0.5,
-0.2), NAND (-0.5, -0.5, 0.7) -- it computes the three gates; a perceptron with a sigmoid output
trained by gradient descent finds weights for them by itself. Every such unit draws one straight
line through the input plane, so it can only solve linearly separable problems. XOR is not one:
the lab tries every line on a fine grid of weights, and the best gets 3 of the 4 inputs right
(0.75). Two layers combine two lines, and a 2-8-1 network gets XOR right.""",
    "ko": """
퍼셉트론은 입력에 가중치를 곱해 더하고 편향을 더한 뒤, 그 합이 0보다 크면 1을 출력합니다(계단 함수).
손으로 정한 가중치 -- AND (0.5, 0.5, -0.7), OR (0.5, 0.5, -0.2), NAND (-0.5, -0.5, 0.7) -- 로 세
게이트를 구현할 수 있고, 시그모이드 출력의 퍼셉트론을 경사 하강법으로 학습시키면 가중치를 스스로 찾아냅니다.
이런 뉴런 하나는 입력 평면에 직선 하나를 긋는 것과 같아서, 선형 분리 가능한 문제만 풀 수 있습니다.
XOR은 그렇지 않습니다: 이 실습은 촘촘한 가중치 격자 위의 모든 직선을 시험하는데, 가장 좋은 직선도 네 입력 중
세 개(0.75)만 맞힙니다. 층을 둘로 쌓으면 직선 두 개를 조합할 수 있어 2-8-1 신경망은 XOR을 모두 맞힙니다(다층 퍼셉트론)."""})
def perceptron(lab):
    epochs = 150 if lab.quick else 1000
    tables = {}
    for gate, weights in GATES.items():
        x, y = datasets.logic_gate(gate)
        out = _gate_model(*weights).predict(x)[:, 0]
        tables[gate] = bool(np.array_equal(out, y[:, 0]))
        lab.number(f"hand_set_{gate}_outputs", out)
    lab.claim("hand_set_gates", all(tables.values()),
              "step perceptrons with the hand-set weights reproduce the AND, OR and NAND truth tables "
              f"({', '.join(g.upper() + (' ok' if v else ' WRONG') for g, v in tables.items())})",
              "손으로 정한 가중치의 계단 함수 퍼셉트론이 AND, OR, NAND 진리표를 그대로 출력 "
              f"({', '.join(g.upper() + (' 일치' if v else ' 불일치') for g, v in tables.items())})")

    learned = {}
    for gate in GATES:
        x, y = datasets.logic_gate(gate)
        utils.set_random_seed(1)
        model = _fit_binary(Sequential([Dense(1, activation="sigmoid", input_dim=2)]), x, y, 0.2, epochs)
        learned[gate] = lab.number(f"learned_{gate}_accuracy", accuracy(model, x, y))
    lab.claim("learned_gates", min(learned.values()) == 1.0,
              "a trained one-layer perceptron reaches accuracy 1.0 on each gate "
              f"(AND {fmt(learned['and'])}, OR {fmt(learned['or'])}, NAND {fmt(learned['nand'])})",
              "학습한 단층 퍼셉트론이 각 게이트에서 정확도 1.0 달성 "
              f"(AND {fmt(learned['and'])}, OR {fmt(learned['or'])}, NAND {fmt(learned['nand'])})")

    x, y = datasets.logic_gate("xor")
    grid = np.linspace(-2.0, 2.0, 41)
    w1, w2, b = np.meshgrid(grid, grid, grid, indexing="ij")
    w = np.stack([w1.ravel(), w2.ravel()])                       # every line of the grid
    fired = (x.astype(np.float64) @ w + b.ravel()) > 0           # (4 inputs, lines)
    line_best = float(np.max(np.mean(fired == (y > 0.5), axis=0)))
    lab.number("xor_best_line_accuracy", line_best)
    lab.number("xor_lines_tried", w.shape[1])
    utils.set_random_seed(1)
    single = _fit_binary(Sequential([Dense(1, activation="sigmoid", input_dim=2)]), x, y, 0.1, epochs)
    single_acc = lab.number("xor_trained_single_layer_accuracy", accuracy(single, x, y))
    utils.set_random_seed(1)
    mlp = _fit_binary(Sequential([Dense(8, activation="tanh", input_dim=2),
                                  Dense(1, activation="sigmoid")]), x, y, 0.1, epochs)
    mlp_acc = lab.number("xor_mlp_accuracy", accuracy(mlp, x, y))
    lab.claim("xor_single_layer_at_most_0.75", max(line_best, single_acc) <= 0.75,
              f"XOR: the best of {w.shape[1]} lines reaches {fmt(line_best)} and a trained single "
              f"layer {fmt(single_acc)}, both at most 0.75",
              f"XOR: 직선 {w.shape[1]}개 중 최고 {fmt(line_best)}, 학습한 단층 {fmt(single_acc)}, "
              "둘 다 0.75 이하")
    lab.claim("xor_mlp_reaches_1.0", mlp_acc == 1.0,
              f"XOR: a 2-8-1 tanh network reaches accuracy {fmt(mlp_acc)} (1.0 needed)",
              f"XOR: 2-8-1 tanh 신경망의 정확도 {fmt(mlp_acc)} (1.0 필요)")

    def draw(fig):
        from .. import plot
        for i, (model, name) in enumerate([(single, lab.ft("1 layer", "단층")),
                                           (mlp, lab.ft("2 layers", "2층"))]):
            ax = fig.add_subplot(1, 2, i + 1)
            plot.decision_boundary(model, x, y[:, 0].astype(int), ax=ax, resolution=120)
            ax.set_title(f"XOR: {name} (acc {accuracy(model, x, y):.2f})")
    lab.figure("xor_decision_boundaries.png", draw, figsize=(9, 4))

    def draw_gates(fig):
        from .. import plot
        for i, gate in enumerate(GATES):
            gx, gy = datasets.logic_gate(gate)
            ax = fig.add_subplot(1, 3, i + 1)
            plot.decision_boundary(_gate_model(*GATES[gate]), gx, gy[:, 0].astype(int), ax=ax,
                                   resolution=120)
            ax.set_title(f"{gate.upper()} w={GATES[gate][:2]}, b={GATES[gate][2]}")
    lab.figure("gates_hand_set.png", draw_gates, figsize=(12, 4))


@register("linear-collapse", {"en": "stacked linear layers collapse into one",
                              "ko": "선형 층을 쌓아도 하나의 선형 층"}, {
    "en": """
Without an activation function a layer is a linear map, y = xW + b, and a linear map of a linear
map is linear again: three such layers compute exactly what one layer with weight W1 W2 W3 (and
a combined bias) computes. The lab builds that single layer from the trained weights of the
three and compares the outputs. Depth without non-linearity buys nothing: on two concentric
circles (which no straight line separates) the three linear layers fail, while the same depth
with ReLU between the layers succeeds. This is why every hidden layer needs an activation.""",
    "ko": """
활성화 함수가 없으면 층은 선형 변환 y = xW + b이고, 선형 변환을 여러 번 겹쳐도 선형 변환입니다: 세 층은 가중치가
W1 W2 W3(와 합쳐진 편향)인 한 층과 정확히 같은 계산을 합니다. 이 실습은 학습된 세 층의 가중치로 그 한 층을
만들어 출력을 비교합니다. 비선형성이 없는 깊이는 아무것도 더해 주지 않습니다: 직선으로 나눌 수 없는 두 동심원
데이터에서 선형 세 층은 실패하고, 층 사이에 ReLU를 넣은 같은 깊이의 모델은 성공합니다. 그래서 은닉층마다
활성화 함수가 필요합니다 (선형변환의 중복은 선형변환)."""})
def linear_collapse(lab):
    epochs = 60 if lab.quick else 200
    x, y = datasets.make_circles(n_samples=400 if lab.quick else 1000, noise=0.05, factor=0.5, seed=0)
    x, y = shuffled(x, y)
    split = int(0.75 * len(x))

    def three(activation):
        utils.set_random_seed(2)
        model = Sequential([Dense(16, activation=activation, input_dim=2),
                            Dense(16, activation=activation), Dense(2, activation="softmax")])
        model.compile(optimizers.Adam(0.02), "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, verbose=0)
        return model

    linear = three(None)
    (w1, b1), (w2, b2), (w3, b3) = [layer.get_weights() for layer in linear.layers]
    w = (w1.astype(np.float64) @ w2 @ w3)
    b = (b1.astype(np.float64) @ w2 + b2) @ w3 + b3
    one = Sequential([Dense(2, activation="softmax", input_dim=2)])
    one.set_weights([w.astype(np.float32), b.astype(np.float32)])
    probe = np.random.default_rng(0).uniform(-1.5, 1.5, (1000, 2)).astype(np.float32)
    logits3 = probe
    for layer in linear.layers[:-1]:
        logits3 = layer(logits3)
    logits3 = logits3 @ w3 + b3
    logits1 = probe @ w.astype(np.float32) + b.astype(np.float32)
    diff = lab.number("max_logit_difference", np.max(np.abs(logits3 - logits1)))
    pdiff = lab.number("max_probability_difference",
                       np.max(np.abs(linear.predict(probe) - one.predict(probe))))
    lab.claim("three_linear_equal_one", max(diff, pdiff) < 1e-5,
              f"three linear Dense layers against one Dense with W = W1 W2 W3: max difference "
              f"{fmt(diff)} in logits, {fmt(pdiff)} in probabilities (< 1e-5)",
              f"선형 Dense 세 층과 W = W1 W2 W3인 Dense 한 층: 로짓 최대 차이 {fmt(diff)}, "
              f"확률 최대 차이 {fmt(pdiff)} (< 1e-5)")
    relu = three("relu")
    lin_acc = lab.number("linear_test_accuracy", accuracy(linear, x[split:], y[split:]))
    relu_acc = lab.number("relu_test_accuracy", accuracy(relu, x[split:], y[split:]))
    lab.claim("linear_fails_relu_succeeds", lin_acc < 0.75 and relu_acc > 0.95,
              f"concentric circles, held-out accuracy: 3 linear layers {fmt(lin_acc)} (< 0.75), "
              f"3 layers with ReLU {fmt(relu_acc)} (> 0.95)",
              f"동심원 데이터 검증 정확도: 선형 세 층 {fmt(lin_acc)} (< 0.75), "
              f"ReLU 세 층 {fmt(relu_acc)} (> 0.95)")

    def draw(fig):
        from .. import plot
        for i, (model, name) in enumerate([(linear, lab.ft("3 linear layers", "선형 3층")),
                                           (relu, lab.ft("3 layers + ReLU", "ReLU 3층"))]):
            ax = fig.add_subplot(1, 2, i + 1)
            plot.decision_boundary(model, x[split:], y[split:], ax=ax, resolution=120)
            ax.set_title(name)
    lab.figure("circles_linear_vs_relu.png", draw, figsize=(9, 4))


@register("depth", {"en": "are more layers always better?", "ko": "Layer가 많으면 무조건 좋은 것인가?"}, {
    "en": """
One layer draws straight boundaries, so it cannot separate the three arms of a spiral; one or
two hidden layers can. But more is not always better: the lab stacks 1 to 8 hidden sigmoid
layers and trains each the same number of epochs. The deep plain stacks learn badly, because the
error signal shrinks each time it passes a sigmoid on its way back (vanishing gradients, see the
vanishing-gradients lab). The same stacks with batch normalization between the linear part and
the activation keep learning: normalisation keeps each layer's inputs in the range where the
sigmoid's slope is alive.""",
    "ko": """
단층은 직선 경계만 그을 수 있어서 나선형 데이터의 세 갈래를 나누지 못하지만, 은닉층이 하나나 둘 있으면
나눌 수 있습니다. 그렇다고 층이 많을수록 좋은 것은 아닙니다: 이 실습은 시그모이드 은닉층을 1개부터 8개까지
쌓고 같은 에폭만큼 학습시킵니다. 깊은 모델은 잘 배우지 못하는데, 오차 신호가 역전파되면서 시그모이드를 지날 때마다
작아지기 때문입니다(기울기 소실, vanishing-gradients 실습 참고). 선형 변환과 활성화 함수 사이에 배치 정규화를
넣은 같은 깊이의 모델은 계속 잘 배웁니다: 정규화가 각 층의 입력을 시그모이드의 기울기가 살아 있는 구간에 모아 주기 때문입니다."""})
def depth(lab):
    n = 100 if lab.quick else 300
    epochs = 100 if lab.quick else 200
    depths = (0, 1, 2, 4, 8)
    x, y = datasets.make_spiral(n_per_class=n, n_classes=3, noise=0.15, seed=0)
    x, y = shuffled(x, y)
    split = int(0.75 * len(x))

    def run(hidden, bn):
        utils.set_random_seed(3)
        layers = []
        for i in range(hidden):
            kwargs = {"input_dim": 2} if i == 0 else {}
            if bn:
                layers += [Dense(32, use_bias=False, **kwargs), BatchNormalization(),
                           Activation("sigmoid")]
            else:
                layers.append(Dense(32, activation="sigmoid", **kwargs))
        layers.append(Dense(3, activation="softmax", **({} if hidden else {"input_dim": 2})))
        model = Sequential(layers)
        model.compile(optimizers.Adam(0.03), "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, verbose=0)
        return accuracy(model, x[split:], y[split:])

    plain = {d: lab.number(f"accuracy_{d}_hidden", run(d, False)) for d in depths}
    norm = {d: lab.number(f"accuracy_{d}_hidden_bn", run(d, True)) for d in depths if d}
    best_shallow = max(plain[1], plain[2], plain[4])
    lab.claim("one_layer_fails", plain[0] < 0.7,
              f"spiral, no hidden layer (1 layer): held-out accuracy {fmt(plain[0])} (< 0.7)",
              f"나선형 데이터, 은닉층 없음(단층): 검증 정확도 {fmt(plain[0])} (< 0.7)")
    lab.claim("hidden_layers_succeed", best_shallow > 0.9,
              f"with 1, 2, 4 hidden sigmoid layers: {fmt(plain[1])}, {fmt(plain[2])}, {fmt(plain[4])} "
              "(the best > 0.9)",
              f"시그모이드 은닉층 1, 2, 4개: {fmt(plain[1])}, {fmt(plain[2])}, {fmt(plain[4])} (최고치 > 0.9)")
    lab.claim("more_layers_not_always_better", plain[8] < best_shallow - 0.1,
              f"8 hidden sigmoid layers reach {fmt(plain[8])}, below the best of 1-4 hidden layers "
              f"({fmt(best_shallow)}) by more than 0.1",
              f"시그모이드 은닉층 8개는 {fmt(plain[8])}로, 은닉층 1-4개의 최고치({fmt(best_shallow)})보다 "
              "0.1 넘게 낮음")
    lab.claim("batchnorm_rescues_depth", norm[8] > plain[8] + 0.1,
              f"8 hidden layers with batch norm reach {fmt(norm[8])}, more than 0.1 above the "
              f"plain stack ({fmt(plain[8])})",
              f"배치 정규화를 넣은 은닉층 8개는 {fmt(norm[8])}로, 일반 모델({fmt(plain[8])})보다 0.1 넘게 높음")

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(depths, [plain[d] for d in depths], "o-", label=lab.ft("sigmoid", "시그모이드"))
        ax.plot(depths[1:], [norm[d] for d in depths[1:]], "s-",
                label=lab.ft("sigmoid + batch norm", "시그모이드 + 배치 정규화"))
        ax.set_xlabel(lab.ft("hidden layers", "은닉층 수"))
        ax.set_ylabel(lab.ft("held-out accuracy", "검증 정확도"))
        ax.set_title(lab.ft(f"spiral, {epochs} epochs each", f"나선형 데이터, 각 {epochs} 에폭"))
        ax.set_ylim(0, 1.02)
        ax.legend()
    lab.figure("accuracy_vs_depth.png", draw)


ACTIVATIONS = ("step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus")


@register("activations", {"en": "activation functions and their derivatives",
                          "ko": "활성화 함수와 미분"}, {
    "en": """
An activation function bends the output of a layer so that stacked layers can model curved
boundaries. What it does to learning is in its derivative: backpropagation multiplies the error
by it at every layer. The sigmoid's slope is at most 0.25 (at 0) and almost 0 at both ends; tanh's
is at most 1; ReLU's is exactly 1 for positive inputs and 0 below; Leaky ReLU keeps a small slope
below 0. The lab evaluates each function with fastnn.ops and its derivative by central
differences. Softmax turns scores into probabilities with exponentials; e^1000 overflows to
infinity, and inf/inf is NaN. Subtracting the largest score first changes nothing mathematically
and keeps every exponential at most 1.""",
    "ko": """
활성화 함수는 층의 출력을 휘게 만들어, 층을 쌓았을 때 곡선 경계를 표현할 수 있게 합니다. 학습에 미치는 영향은
미분값에 있습니다: 역전파는 층마다 오차에 이 미분값을 곱합니다. 시그모이드의 기울기는 최대 0.25(0에서)이고
양 끝에서는 거의 0입니다; tanh는 최대 1; ReLU는 양수 입력에서 정확히 1, 음수에서 0; Leaky ReLU는 음수 쪽에도
작은 기울기를 남깁니다. 이 실습은 fastnn.ops로 각 함수를 계산하고 미분은 중앙 차분으로 구합니다. 소프트맥스는
지수 함수로 점수를 확률로 바꾸는데, e^1000은 무한대로 오버플로하고 inf/inf는 NaN이 됩니다. 가장 큰 값을 먼저 빼도
수학적으로 결과는 같고, 모든 지수값이 1 이하로 유지됩니다."""})
def activations(lab):
    z = np.linspace(-6.0, 6.0, 1201)
    h = 1e-4
    values, slopes = {}, {}
    for name in ACTIVATIONS:
        f = getattr(ops, name)
        values[name] = f(z)
        slopes[name] = (f(z + h).astype(np.float64) - f(z - h)) / (2 * h) if name != "step" else None
    with np.errstate(all="ignore"):  # the float64 derivative near 0, where the slopes are largest
        zs = np.linspace(-6.0, 6.0, 1201)
        sig = lambda t: 1.0 / (1.0 + np.exp(-t))
        sig_slope = (sig(zs + 1e-6) - sig(zs - 1e-6)) / 2e-6
    s_max = lab.number("sigmoid_derivative_max", np.max(slopes["sigmoid"]))
    t_max = lab.number("tanh_derivative_max", np.max(slopes["tanh"]))
    lab.number("sigmoid_derivative_max_float64", np.max(sig_slope))
    lab.claim("sigmoid_derivative_at_most_0.25", s_max <= 0.25 + 1e-3,
              f"largest sigmoid' over [-6, 6]: {fmt(s_max)} (<= 0.25, within the float32 difference "
              "quotient's 1e-3)",
              f"[-6, 6]에서 sigmoid' 최댓값: {fmt(s_max)} (<= 0.25, float32 차분 오차 1e-3 이내)")
    lab.claim("tanh_derivative_at_most_1", t_max <= 1.0 + 1e-3,
              f"largest tanh' over [-6, 6]: {fmt(t_max)} (<= 1, within 1e-3)",
              f"[-6, 6]에서 tanh' 최댓값: {fmt(t_max)} (<= 1, 1e-3 이내)")
    edge = lab.number("sigmoid_derivative_at_6", slopes["sigmoid"][-1])
    lab.claim("sigmoid_flat_at_the_ends", edge < 0.01,
              f"sigmoid' at 6: {fmt(edge)} (< 0.01: learning stalls where the sigmoid saturates)",
              f"6에서 sigmoid': {fmt(edge)} (< 0.01: 포화 구간에서는 학습이 멈춤)")

    logits = np.array([[1000.0, 999.0, 998.0]], np.float32)
    with np.errstate(all="ignore"):
        e = np.exp(logits)
        naive = e / e.sum(axis=1, keepdims=True)
    stable = ops.softmax(logits)
    lab.number("naive_softmax", naive[0])
    lab.number("stable_softmax", stable[0])
    ok = bool(np.all(np.isfinite(stable)) and abs(float(stable.sum()) - 1.0) < 1e-6)
    lab.claim("naive_softmax_overflows", not np.all(np.isfinite(naive)),
              f"exp(x)/sum(exp(x)) on logits (1000, 999, 998) gives {naive[0].tolist()} (not finite)",
              f"로짓 (1000, 999, 998)에 exp(x)/sum(exp(x)) 그대로 계산: {naive[0].tolist()} (유한하지 않음)")
    lab.claim("max_subtracted_softmax_finite", ok,
              f"fastnn.ops.softmax (max subtracted) gives {[round(float(v), 6) for v in stable[0]]}: "
              "finite, sums to 1",
              f"fastnn.ops.softmax(최댓값을 뺌): {[round(float(v), 6) for v in stable[0]]}: 유한, 합이 1")

    def draw(fig):
        for i, name in enumerate(ACTIVATIONS):
            ax = fig.add_subplot(2, 4, i + 1)
            ax.plot(z, values[name], label="f")
            if slopes[name] is not None:
                ax.plot(z, slopes[name], "--", label="f'")
            else:
                ax.plot(z, np.zeros_like(z), "--", label=lab.ft("f' (0; undefined at 0)", "f' (0; 0에서 정의 안 됨)"))
            ax.set_title(name)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_ylim(-2, 3)
            ax.legend(fontsize=7)
    lab.figure("activations_and_derivatives.png", draw, figsize=(13, 6))
