"""The recurrent lab: SimpleRNN against LSTM and GRU on a long dependency (the adding problem)."""
import numpy as np

from .. import layers as layers_module, optimizers, utils
from ..layers import Dense
from ..models import Sequential
from ._base import fmt, register

RECURRENT_LAYERS = ("SimpleRNN", "LSTM", "GRU")


def missing_layers():
    """The recurrent layers fastnn.layers does not have (yet)."""
    return [name for name in RECURRENT_LAYERS if not hasattr(layers_module, name)]


def adding_problem(n, steps, seed=0):
    """Inputs (n, steps, 2): a random value in [0, 1) and a marker; exactly two markers, one in each
    half. Target: the sum of the two marked values. Predicting 1 (the mean) gives MSE about 1/6."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, steps, 2), np.float32)
    x[:, :, 0] = rng.random((n, steps))
    first = rng.integers(0, steps // 2, n)
    second = rng.integers(steps // 2, steps, n)
    x[np.arange(n), first, 1] = 1.0
    x[np.arange(n), second, 1] = 1.0
    y = (x[np.arange(n), first, 0] + x[np.arange(n), second, 0]).reshape(-1, 1)
    return x, y


def _sensitivity(model, x, step, eps=1e-2):
    """|d output / d input at ``step``|, averaged over the batch, by central differences of predict."""
    up, down = x.copy(), x.copy()
    up[:, step, 0] += eps
    down[:, step, 0] -= eps
    return float(np.mean(np.abs(model.predict(up) - model.predict(down))) / (2 * eps))


@register("recurrent", {"en": "SimpleRNN, LSTM and GRU on a long dependency",
                        "ko": "순환 신경망(RNN), LSTM, GRU와 장기 의존성"}, {
    "en": """
A recurrent network reads a sequence one step at a time and carries a hidden state from step to
step. Training it backpropagates through every step, so the error signal is multiplied by the
same recurrent weights over and over: in a SimpleRNN it fades over long distances and the network
cannot learn what happened many steps ago. LSTM and GRU add gates and an additive memory path
that let the signal survive. The adding problem makes that measurable: a sequence of T = 50
(40 in quick mode) random numbers, two of them marked; the target is the sum of the two marked numbers, one of
which lies in the first half. Always answering 1 gives a mean squared error of about 0.167. The
lab trains each layer type, compares the errors, and measures how strongly the trained model's
output reacts to each time step's input.""",
    "ko": """
순환 신경망은 시퀀스를 한 단계씩 읽으며 은닉 상태를 다음 단계로 넘깁니다. 학습할 때는 모든 단계를 거슬러 역전파하므로
오차 신호에 같은 순환 가중치가 계속 곱해집니다: SimpleRNN에서는 먼 거리를 지나며 신호가 사라져 오래전 단계의 일을 배우지
못합니다(장기 의존성 문제). LSTM과 GRU는 게이트와 더하기로 이어지는 기억 경로를 두어 신호가 살아남게 합니다. 더하기 문제는
이를 잴 수 있게 해 줍니다: 길이 T = 50(빠른 모드에서는 40)의 난수열 중 두 개에 표시가 있고, 정답은 표시된 두 수의 합이며 그중 하나는 앞쪽
절반에 있습니다. 항상 1이라고 답하면 평균 제곱 오차가 약 0.167입니다. 이 실습은 층 종류마다 학습시켜 오차를 비교하고,
학습된 모델의 출력이 각 시점의 입력에 얼마나 민감한지 잽니다."""})
def recurrent(lab):
    missing = missing_layers()
    if missing:
        raise NotImplementedError(
            "the recurrent lab needs fastnn.layers." + ", fastnn.layers.".join(missing)
            + ", which this version of fastnn does not have yet")
    steps = 40 if lab.quick else 50
    n_train = 2000 if lab.quick else 10000
    epochs = 25 if lab.quick else 30
    x, y = adding_problem(n_train, steps, seed=0)
    xt, yt = adding_problem(500, steps, seed=1)
    baseline = lab.number("baseline_mse_predicting_1", np.mean((yt - 1.0) ** 2))
    mse, sens = {}, {}
    for name in RECURRENT_LAYERS:
        utils.set_random_seed(15)
        layer_cls = getattr(layers_module, name)
        model = Sequential([layer_cls(32, return_sequences=False, input_shape=(steps, 2)), Dense(1)])
        model.compile(optimizers.Adam(0.01), "mse")
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        mse[name] = lab.number(f"{name}_test_mse", np.mean((model.predict(xt) - yt) ** 2))
        sens[name] = [_sensitivity(model, xt[:200], t) for t in range(0, steps, 5)]
        lab.number(f"{name}_output_sensitivity_per_step", sens[name])
    lab.claim("lstm_solves_it", mse["LSTM"] < 0.1 * baseline,
              f"adding problem, T = {steps}: LSTM test MSE {fmt(mse['LSTM'])} (< a tenth of the baseline "
              f"{fmt(baseline)})",
              f"더하기 문제, T = {steps}: LSTM 테스트 MSE {fmt(mse['LSTM'])} (기준 {fmt(baseline)}의 1/10 미만)")
    lab.claim("simple_rnn_does_not", mse["SimpleRNN"] > 0.5 * baseline,
              f"SimpleRNN test MSE {fmt(mse['SimpleRNN'])} (> half the baseline {fmt(baseline)})",
              f"SimpleRNN 테스트 MSE {fmt(mse['SimpleRNN'])} (기준 {fmt(baseline)}의 절반 초과)")
    lab.number("GRU_over_baseline", mse["GRU"] / baseline)

    def draw(fig):
        ax = fig.add_subplot(1, 2, 1)
        ax.bar(list(mse), list(mse.values()))
        ax.axhline(baseline, color="grey", ls="--", label=lab.ft("always 1", "항상 1"))
        ax.set_ylabel("test MSE")
        ax.legend()
        ax = fig.add_subplot(1, 2, 2)
        for name, s in sens.items():
            ax.semilogy(range(0, steps, 5), np.maximum(s, 1e-12), "o-", label=name)
        ax.set_xlabel(lab.ft("time step", "시점"))
        ax.set_ylabel(lab.ft("|d output / d input|", "|d 출력 / d 입력|"))
        ax.legend()
    lab.figure("recurrent.png", draw, figsize=(11, 4.5))
