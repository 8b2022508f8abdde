"""Labs on gradients: vanishing-gradients, initialization, backprop."""
import numpy as np

import warnings

from .. import backend, datasets, initializers, ops, optimizers, utils
from ..callbacks import GradientHealth
from ..gradcheck import gradient_check
from ..layers import Dense
from ..models import Sequential
from ._base import fmt, register, shuffled

DEEP = 10  # hidden layers of the deep stacks
VANISHING = 1e-4  # GradientHealth's warning threshold for a layer's gradient norm in this lab


def _first_layer_name(messages):
    """The layer named in the first GradientHealth warning ('... of layer NAME is ...')."""
    return messages[0].split(" of layer ")[1].split(" ")[0] if messages else "none"


def _deep(activation, width, init, inputs, outputs=3, loss="sparse_categorical_crossentropy",
          optimizer=None):
    layers = [Dense(width, activation=activation, kernel_initializer=init(i), input_dim=inputs)
              if i == 0 else Dense(width, activation=activation, kernel_initializer=init(i))
              for i in range(DEEP)]
    layers.append(Dense(outputs, activation="softmax", kernel_initializer=init(DEEP)))
    model = Sequential(layers)
    model.compile(optimizer or optimizers.SGD(0.05), loss)
    return model


@register("vanishing-gradients", {"en": "vanishing and exploding gradients",
                                  "ko": "기울기 소실과 기울기 폭주"}, {
    "en": """
Backpropagation multiplies the error signal, layer after layer, by each activation's derivative
and each weight matrix. The sigmoid's derivative is at most 0.25, so after ten sigmoid layers the
signal that reaches the first layer is tiny: the first layers barely learn, and training looks
stuck. tanh (derivative up to 1) loses less; ReLU and Leaky ReLU pass the signal unchanged where
they are active. The lab builds the same 10-hidden-layer network with each activation and the
same Glorot initialization, and measures the gradient norm of every layer's weights, at
initialization and after one epoch, with fastnn.callbacks.GradientHealth (which also records
each layer's update/weight ratio and its saturated or dead units, and warns, naming the layer,
when a gradient norm falls below a threshold). The opposite failure is exploding gradients: with weights
drawn too large (N(0, 1) for 64 inputs per unit) each ReLU layer multiplies the signal by about
5.7, and the first layer's gradient becomes enormous. Gradient clipping (clipnorm) rescales
each gradient to a maximum norm before the update, so a step can never be larger than that.""",
    "ko": """
역전파는 오차 신호에 층마다 활성화 함수의 미분값과 가중치 행렬을 계속 곱합니다. 시그모이드의 미분값은 최대
0.25라서 시그모이드 층 열 개를 거쳐 첫 층에 도달하는 신호는 아주 작아집니다: 입력층 근처의 층은 거의 학습되지
않고, 학습이 멈춘 것처럼 보입니다(기울기 소실). tanh(미분값 최대 1)는 덜 잃고, ReLU와 Leaky ReLU는 활성화된
구간에서 신호를 그대로 전달합니다. 이 실습은 은닉층 10개의 같은 신경망을 활성화 함수만 바꾸어(초기화는 모두 Glorot)
만들고, 초기화 직후와 한 에폭 학습 후에 층마다 가중치 기울기의 노름을 fastnn.callbacks.GradientHealth로 잽니다(이
콜백은 층별 갱신량/가중치 비율과 포화되거나 죽은 뉴런의 비율도 기록하고, 기울기 노름이 임계값보다 작아지면 그 층의
이름을 들어 경고합니다). 반대의 실패는 기울기 폭주입니다:
가중치를 너무 크게(입력 64개인 뉴런에 N(0, 1)) 뽑으면 ReLU 층마다 신호가 약 5.7배 커져 첫 층의 기울기가 거대해집니다.
그래디언트 클리핑(clipnorm)은 갱신 전에 각 기울기를 최대 노름으로 줄여서, 한 걸음이 그보다 커질 수 없게 합니다."""})
def vanishing_gradients(lab):
    n = 100 if lab.quick else 400
    x, y = datasets.make_spiral(n_per_class=n, n_classes=3, noise=0.2, seed=0)
    x, y = shuffled(x, y)
    names = ("sigmoid", "tanh", "relu", "leaky_relu")
    norms, warned = {}, {}
    for act in names:
        utils.set_random_seed(4)
        model = _deep(act, 32, lambda i: initializers.GlorotUniform(seed=100 + i), 2)
        health = GradientHealth(x, y, vanishing=VANISHING)  # the whole data set as probe batch
        health.set_model(model)
        start = [v["grad_norm"] for v in health.measure().values() if "grad_norm" in v]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False,
                                callbacks=[health])
        warned[act] = [str(w.message) for w in caught if "GradientHealth" in str(w.message)
                       and "vanish" in str(w.message)]
        h = history.history
        layer_names = [layer.name for layer in model.layers]
        after = [h[f"{name}/grad_norm"][-1] for name in layer_names]
        norms[act] = (start, after)
        lab.number(f"{act}_layer_gradient_norms_init", start)
        lab.number(f"{act}_layer_gradient_norms_after_epoch", after)
        lab.number(f"{act}_layer_update_ratios", [h[f"{name}/update_ratio"][-1] for name in layer_names])
        key = "saturated_fraction" if act in ("sigmoid", "tanh") else "dead_fraction"
        if f"{layer_names[0]}/{key}" in h:
            lab.number(f"{act}_hidden_{key}s", [h[f"{name}/{key}"][-1] for name in layer_names[:DEEP]])
        lab.number(f"{act}_vanishing_warnings", len(warned[act]))
    first = f"layer {_first_layer_name(warned['sigmoid'])}"
    lab.claim("gradient_health_warns_for_sigmoid_only",
              bool(warned["sigmoid"]) and not any(warned[a] for a in ("relu", "leaky_relu")),
              f"GradientHealth (vanishing={VANISHING:g}) warned of vanishing gradients in "
              f"{len(warned['sigmoid'])} sigmoid layers ({first} among them), "
              f"{len(warned['relu'])} ReLU and {len(warned['leaky_relu'])} Leaky ReLU layers (> 0, 0, 0)",
              f"GradientHealth(vanishing={VANISHING:g})가 기울기 소실을 경고한 층: 시그모이드 "
              f"{len(warned['sigmoid'])}개({first} 포함), ReLU {len(warned['relu'])}개, Leaky ReLU "
              f"{len(warned['leaky_relu'])}개 (> 0, 0, 0)")
    r0 = lab.number("first_layer_ratio_sigmoid_relu_init", norms["sigmoid"][0][0] / norms["relu"][0][0])
    r1 = lab.number("first_layer_ratio_sigmoid_relu_after_epoch",
                    norms["sigmoid"][1][0] / norms["relu"][1][0])
    lab.claim("sigmoid_first_layer_vanishes", max(r0, r1) < 1e-2,
              f"first-layer gradient norm, sigmoid over ReLU: {fmt(r0)} at initialization, "
              f"{fmt(r1)} after one epoch (both < 1e-2)",
              f"첫 층 기울기 노름의 비(시그모이드/ReLU): 초기화 직후 {fmt(r0)}, 한 에폭 후 {fmt(r1)} "
              "(둘 다 < 1e-2)")
    s = norms["sigmoid"][0]
    decay = lab.number("sigmoid_first_over_last_hidden", s[0] / s[DEEP - 1])
    lab.claim("sigmoid_shrinks_towards_the_input", decay < 1e-2,
              f"sigmoid: the first layer's gradient norm is {fmt(decay)} times the last hidden "
              "layer's (< 1e-2: the signal fades on the way back)",
              f"시그모이드: 첫 층 기울기 노름이 마지막 은닉층의 {fmt(decay)}배 (< 1e-2: 거꾸로 가며 신호가 사라짐)")
    t_ratio = lab.number("first_layer_ratio_tanh_sigmoid_init", norms["tanh"][0][0] / norms["sigmoid"][0][0])
    lab.claim("tanh_loses_less_than_sigmoid", t_ratio > 10,
              f"tanh's first-layer gradient norm is {fmt(t_ratio)} times the sigmoid's (> 10)",
              f"tanh의 첫 층 기울기 노름은 시그모이드의 {fmt(t_ratio)}배 (> 10)")

    # exploding gradients: ReLU with N(0, 1) weights, then the same with clipnorm
    xb = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
    yb = (np.arange(256) % 3).astype(np.int64)
    big = lambda i: initializers.RandomNormal(stddev=1.0, seed=200 + i)
    he = lambda i: initializers.HeNormal(seed=200 + i)
    big_norm = lab.number("first_layer_gradient_norm_N01", np.linalg.norm(
        _deep("relu", 64, big, 64).compute_gradients(xb, yb)[0]))
    he_norm = lab.number("first_layer_gradient_norm_he", np.linalg.norm(
        _deep("relu", 64, he, 64).compute_gradients(xb, yb)[0]))
    lab.claim("large_init_explodes", big_norm > 1e3 * he_norm,
              f"ReLU, first-layer gradient norm: {fmt(big_norm)} with N(0, 1) weights against "
              f"{fmt(he_norm)} with He initialization (> 1000 times)",
              f"ReLU 첫 층 기울기 노름: N(0, 1) 가중치 {fmt(big_norm)}, He 초기화 {fmt(he_norm)} (1000배 초과)")
    lr, clip = 1e-3, 1.0
    steps = {}
    for name, kwargs in (("unclipped", {}), ("clipped", {"clipnorm": clip})):
        model = _deep("relu", 64, big, 64, optimizer=optimizers.SGD(lr, **kwargs))
        before = [layer.get_weights()[0] for layer in model.layers]
        model.train_on_batch(xb, yb)
        steps[name] = [float(np.linalg.norm(layer.get_weights()[0].astype(np.float64) - b)) / lr
                       for layer, b in zip(model.layers, before)]
        lab.number(f"{name}_step_norm_over_lr", steps[name])
    biggest = max(steps["clipped"])
    lab.claim("clipping_contains_them", biggest <= clip * 1.001 and max(steps["unclipped"]) > 1e3 * clip,
              f"one SGD step, largest |dW|/lr over the layers: {fmt(max(steps['unclipped']))} without "
              f"clipping, {fmt(biggest)} with clipnorm={clip} (<= {clip}, within float32 rounding)",
              f"SGD 한 걸음, 층별 |dW|/lr 최댓값: 클리핑 없이 {fmt(max(steps['unclipped']))}, "
              f"clipnorm={clip}로 {fmt(biggest)} (<= {clip}, float32 반올림 이내)")

    def draw(fig):
        ax = fig.add_subplot(1, 2, 1)
        layers = np.arange(1, DEEP + 2)
        for act in names:
            ax.semilogy(layers, norms[act][0], "o-", label=act)
        ax.set_xlabel(lab.ft("layer (1 = next to the input)", "층 (1 = 입력층 쪽)"))
        ax.set_ylabel(lab.ft("gradient norm at initialization", "초기화 직후 기울기 노름"))
        ax.legend()
        ax = fig.add_subplot(1, 2, 2)
        for act in names:
            ax.semilogy(layers, norms[act][1], "o-", label=act)
        ax.set_xlabel(lab.ft("layer", "층"))
        ax.set_ylabel(lab.ft("gradient norm after one epoch", "한 에폭 후 기울기 노름"))
        ax.legend()
    lab.figure("gradient_norm_per_layer.png", draw, figsize=(11, 4.5))

    def draw_clip(fig):
        ax = fig.add_subplot(1, 1, 1)
        layers = np.arange(1, DEEP + 2)
        ax.semilogy(layers, steps["unclipped"], "o-", label=lab.ft("no clipping", "클리핑 없음"))
        ax.semilogy(layers, steps["clipped"], "s-", label=f"clipnorm={clip}")
        ax.set_xlabel(lab.ft("layer", "층"))
        ax.set_ylabel("|dW| / lr")
        ax.set_title(lab.ft("ReLU, N(0, 1) weights: one SGD step", "ReLU, N(0, 1) 가중치: SGD 한 걸음"))
        ax.legend()
    lab.figure("exploding_and_clipping.png", draw_clip)


def _activations(model, x):
    """The output of every Dense layer of ``model`` for ``x`` (inference mode)."""
    outs, h = [], x
    for layer in model.layers:
        h = layer(h)
        outs.append(h)
    return outs


@register("initialization", {"en": "weight initialization", "ko": "가중치 초기화"}, {
    "en": """
Where training starts decides whether it can start. With every weight at zero, all units of a
layer compute the same thing and get the same gradient, so they stay identical forever: the
layer has the power of one unit (the symmetry is never broken). Weights drawn from N(0, 1) are
too large: with 100 inputs per unit the sum has a spread of about 10, and a sigmoid fed such
values sits at 0 or 1 where its slope is zero. Weights too small make the signal fade layer by
layer. Glorot (Xavier) initialization scales the weights by the number of inputs and outputs,
which keeps the spread of tanh and sigmoid activations roughly constant across layers; He
initialization doubles the variance for ReLU, which zeroes half of its inputs. The lab pushes a
batch through 10 layers and measures the spread of each layer's activations.""",
    "ko": """
어디서 학습을 시작하느냐가 학습이 시작될 수 있는지를 결정합니다. 모든 가중치가 0이면 한 층의 뉴런이 모두 같은
값을 계산하고 같은 기울기를 받아 영원히 똑같이 남습니다: 층 전체가 뉴런 하나의 힘밖에 없습니다(대칭이 깨지지
않음). N(0, 1)에서 뽑은 가중치는 너무 큽니다: 뉴런당 입력이 100개면 합의 표준편차가 약 10이 되고, 그런 값을 받은
시그모이드는 기울기가 0인 0이나 1 근처에 머뭅니다(포화). 너무 작은 가중치는 층을 지날수록 신호가 사라지게 합니다.
Glorot(Xavier) 초기화는 입력과 출력 개수로 가중치의 크기를 맞춰 tanh와 시그모이드 활성값의 분포를 층마다 비슷하게
유지하고, He 초기화는 입력의 절반을 0으로 만드는 ReLU를 위해 분산을 두 배로 합니다. 이 실습은 배치 하나를 10개 층에
통과시켜 층마다 활성값의 퍼짐을 잽니다."""})
def initialization(lab):
    # zeros: every hidden unit identical after training
    x, y = datasets.make_moons(n_samples=200 if lab.quick else 1000, noise=0.1, seed=0)
    y = y.reshape(-1, 1).astype(np.float32)
    model = Sequential([Dense(8, activation="sigmoid", kernel_initializer="zeros", input_dim=2),
                        Dense(8, activation="sigmoid", kernel_initializer="zeros"),
                        Dense(1, activation="sigmoid", kernel_initializer="zeros")])
    model.compile(optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=20 if lab.quick else 100, verbose=0)
    w1 = model.layers[0].get_weights()[0]
    spread = lab.number("zeros_max_unit_difference", np.max(np.abs(w1 - w1[:, :1])))
    moved = lab.number("zeros_first_kernel_norm", np.linalg.norm(w1))
    lab.claim("zeros_units_identical", spread <= 1e-6 * max(moved, 1.0) and moved > 1e-3,
              f"zero initialization: after training the first layer's weights moved (norm "
              f"{fmt(moved)} > 1e-3) yet its 8 units differ by at most {fmt(spread)} (<= 1e-6 "
              "relative): all identical",
              f"0 초기화: 학습 후 첫 층 가중치는 움직였지만(노름 {fmt(moved)} > 1e-3) 8개 뉴런의 차이는 "
              f"최대 {fmt(spread)} (상대 1e-6 이하): 모두 같음")

    # a batch through 10 layers of 100 units
    width = 100
    xb = np.random.default_rng(0).standard_normal((500 if lab.quick else 2000, width)).astype(np.float32)
    cases = {
        "sigmoid_N01": ("sigmoid", lambda i: initializers.RandomNormal(stddev=1.0, seed=i)),
        "sigmoid_glorot": ("sigmoid", lambda i: initializers.GlorotNormal(seed=i)),
        "tanh_N01": ("tanh", lambda i: initializers.RandomNormal(stddev=1.0, seed=i)),
        "tanh_glorot": ("tanh", lambda i: initializers.GlorotNormal(seed=i)),
        "relu_small": ("relu", lambda i: initializers.RandomNormal(stddev=0.01, seed=i)),
        "relu_he": ("relu", lambda i: initializers.HeNormal(seed=i)),
    }
    acts = {}
    for name, (act, init) in cases.items():
        m = Sequential([Dense(width, activation=act, kernel_initializer=init(i), **(
            {"input_dim": width} if i == 0 else {})) for i in range(DEEP)])
        acts[name] = _activations(m, xb)
        lab.number(f"{name}_std_per_layer", [a.std() for a in acts[name]])
    sat = {k: lab.number(f"{k}_saturated_fraction",
                         np.mean([np.mean((a < 0.01) | (a > 0.99)) for a in acts[k]]))
           for k in ("sigmoid_N01", "sigmoid_glorot")}
    lab.claim("N01_saturates_sigmoid", sat["sigmoid_N01"] > 0.3 and sat["sigmoid_glorot"] < 0.05,
              f"sigmoid activations below 0.01 or above 0.99, averaged over 10 layers: "
              f"{fmt(sat['sigmoid_N01'])} with N(0, 1) weights (> 0.3), {fmt(sat['sigmoid_glorot'])} "
              "with Glorot (< 0.05)",
              f"0.01 미만 또는 0.99 초과인 시그모이드 활성값의 비율(10개 층 평균): N(0, 1) "
              f"{fmt(sat['sigmoid_N01'])} (> 0.3), Glorot {fmt(sat['sigmoid_glorot'])} (< 0.05)")
    ratio = {k: lab.number(f"{k}_std_layer10_over_layer1", acts[k][-1].std() / acts[k][0].std())
             for k in ("tanh_glorot", "relu_he", "relu_small", "sigmoid_glorot")}
    lab.claim("glorot_keeps_tanh_and_sigmoid_spread",
              ratio["tanh_glorot"] > 0.25 and 0.25 < ratio["sigmoid_glorot"] < 4,
              f"spread of the 10th layer's activations over the 1st's: tanh + Glorot "
              f"{fmt(ratio['tanh_glorot'])} (> 0.25), sigmoid + Glorot {fmt(ratio['sigmoid_glorot'])} "
              "(between 0.25 and 4)",
              f"10번째 층 활성값 표준편차 / 1번째 층: tanh + Glorot {fmt(ratio['tanh_glorot'])} (> 0.25), "
              f"시그모이드 + Glorot {fmt(ratio['sigmoid_glorot'])} (0.25와 4 사이)")
    lab.claim("he_keeps_relu_spread", 0.25 < ratio["relu_he"] < 4 and ratio["relu_small"] < 1e-6,
              f"ReLU, 10th-layer spread over the 1st's: {fmt(ratio['relu_he'])} with He (between "
              f"0.25 and 4), {fmt(ratio['relu_small'])} with N(0, 0.01) (< 1e-6: the signal fades)",
              f"ReLU, 10번째 층 / 1번째 층 표준편차: He {fmt(ratio['relu_he'])} (0.25와 4 사이), "
              f"N(0, 0.01) {fmt(ratio['relu_small'])} (< 1e-6: 신호가 사라짐)")

    def draw(fig):
        shown = ("sigmoid_N01", "sigmoid_glorot", "tanh_glorot", "relu_he")
        for r, name in enumerate(shown):
            for c, layer in enumerate((0, 4, 9)):
                ax = fig.add_subplot(len(shown), 3, r * 3 + c + 1)
                a = acts[name][layer].ravel()
                ax.hist(a, bins=50, range=(-1, 1) if "tanh" in name else (0, 1 if "sigmoid" in name else max(a.max(), 1e-6)))
                ax.set_title(f"{name}, layer {layer + 1}", fontsize=8)
                ax.tick_params(labelsize=6)
    lab.figure("activation_histograms.png", draw, figsize=(10, 9))


@register("backprop", {"en": "backpropagation step by step", "ko": "백프로파게이션 단계별 실습"}, {
    "en": """
The notes' worked example: a model y_hat = w x with loss L = (y - y_hat)^2, at x = 1, y = 2,
w = 1. Forward: y_hat = 1, L = 1. Backward by the chain rule: dL/dy_hat = 2 (y_hat - y) = -2,
dy_hat/dw = x = 1, so dL/dw = -2. One gradient-descent step at learning rate 0.01 gives
w = 1 - 0.01 (-2) = 1.02. The lab does each step with fastnn's kernels (fastnn.ops), then the same
step with a real model (Dense, mean squared error, SGD) and reads back w. Backpropagation in a
deeper network is the same chain rule, layer by layer; the lab checks a two-layer network's
gradients against finite differences, (L(w + e) - L(w - e)) / 2e, weight array by weight array.""",
    "ko": """
노트의 예제: 모델 y_hat = w x, 손실 L = (y - y_hat)^2, x = 1, y = 2, w = 1. 순전파: y_hat = 1, L = 1.
연쇄 법칙으로 역전파: dL/dy_hat = 2 (y_hat - y) = -2, dy_hat/dw = x = 1이므로 dL/dw = -2. 학습률 0.01로
경사 하강법을 한 번 적용하면 w = 1 - 0.01 (-2) = 1.02입니다. 이 실습은 각 단계를 fastnn의 커널(fastnn.ops)로
계산하고, 같은 한 걸음을 실제 모델(Dense, 평균 제곱 오차, SGD)로 밟아 w를 읽어 옵니다. 더 깊은 신경망의 역전파도
층마다 적용하는 같은 연쇄 법칙입니다; 이 실습은 2층 신경망의 기울기를 가중치 배열마다 수치 미분
(L(w + e) - L(w - e)) / 2e 과 비교합니다."""})
def backprop(lab):
    x = np.array([[1.0]])
    y = np.array([[2.0]])
    w = np.array([[1.0]])
    y_hat = ops.matmul(x, w)                                   # forward: y_hat = w x
    loss, dy_hat = ops.mean_squared_error(y_hat, y)            # L = (y - y_hat)^2, dL/dy_hat
    _, dw, _ = ops.dense_backward(dy_hat, x, w, need_dx=False, need_db=False)  # dL/dw = x dL/dy_hat
    w_new = w - 0.01 * dw
    lab.number("y_hat", y_hat[0, 0])
    lab.number("loss", loss)
    lab.number("dL_dy_hat", dy_hat[0, 0])
    lab.number("dL_dw", dw[0, 0])
    lab.number("w_after_step", w_new[0, 0])
    lab.claim("forward_and_gradient", y_hat[0, 0] == 1.0 and loss == 1.0 and dw[0, 0] == -2.0,
              f"fastnn.ops: y_hat = {fmt(y_hat[0, 0])}, L = {fmt(loss)}, dL/dy_hat = "
              f"{fmt(dy_hat[0, 0])}, dL/dw = {fmt(dw[0, 0])} (1, 1, -2 exactly)",
              f"fastnn.ops: y_hat = {fmt(y_hat[0, 0])}, L = {fmt(loss)}, dL/dy_hat = "
              f"{fmt(dy_hat[0, 0])}, dL/dw = {fmt(dw[0, 0])} (정확히 1, 1, -2)")
    lab.claim("w_becomes_1.02", w_new[0, 0] == 1.02,
              f"w - 0.01 dL/dw = {float(w_new[0, 0])!r} (1.02 exactly, in float64)",
              f"w - 0.01 dL/dw = {float(w_new[0, 0])!r} (float64로 정확히 1.02)")
    model = Sequential([Dense(1, use_bias=False, kernel_initializer="ones", input_dim=1)])
    model.compile(optimizers.SGD(0.01), "mse")
    model.train_on_batch(x.astype(np.float32), y.astype(np.float32))
    w_model = lab.number("w_after_model_step", model.get_weights()[0][0, 0])
    lab.claim("model_step_gives_1.02", model.get_weights()[0][0, 0] == np.float32(1.02),
              f"Dense(1) + mse + SGD(0.01), one train_on_batch: w = {w_model!r} (float32(1.02) exactly)",
              f"Dense(1) + mse + SGD(0.01), train_on_batch 한 번: w = {w_model!r} (정확히 float32(1.02))")

    previous = backend.floatx()
    backend.set_floatx("float64")
    try:
        utils.set_random_seed(5)
        net = Sequential([Dense(4, activation="tanh", input_dim=3), Dense(2, activation="softmax")])
        net.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        xs = rng.standard_normal((16, 3))
        ys = rng.integers(0, 2, 16)
        errors = gradient_check(net, xs, ys, per_weight=True)
    finally:
        backend.set_floatx(previous)
    flat = {}  # "layer1/kernel": error (layers by position: their names count up per process)
    position = {layer.name: i + 1 for i, layer in enumerate(net.layers)}
    for layer, value in errors.items():
        for weight, err in value.items():
            flat[f"layer{position[layer]}/{weight}"] = float(err)
    for key, err in flat.items():
        lab.number(f"gradient_check_{key}", err)
    worst = max(flat.values())
    lab.claim("two_layer_gradients_match_finite_differences", worst < 1e-7,
              "two-layer network (3-4-2, tanh, softmax, float64): relative error between "
              "backpropagated and finite-difference gradients per weight array: "
              + ", ".join(f"{k} {fmt(v)}" for k, v in flat.items()) + " (all < 1e-7)",
              "2층 신경망(3-4-2, tanh, softmax, float64): 가중치 배열마다 역전파 기울기와 수치 미분의 "
              "상대 오차: " + ", ".join(f"{k} {fmt(v)}" for k, v in flat.items()) + " (모두 < 1e-7)")

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        steps = [
            "x = 1, y = 2, w = 1",
            f"forward:  y_hat = w x = {y_hat[0, 0]:g},   L = (y - y_hat)^2 = {loss:g}",
            f"backward: dL/dy_hat = 2 (y_hat - y) = {dy_hat[0, 0]:g}",
            f"          dL/dw = dL/dy_hat * x = {dw[0, 0]:g}",
            f"update:   w = 1 - 0.01 * ({dw[0, 0]:g}) = {w_new[0, 0]:g}",
        ]
        for i, s in enumerate(steps):
            ax.text(0.02, 0.9 - i * 0.18, s, family="monospace", fontsize=11, transform=ax.transAxes)
    lab.figure("backprop_worked_example.png", draw, figsize=(7, 3))
