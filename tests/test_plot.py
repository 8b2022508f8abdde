"""Tests of ``fastnn.plot``, rendered headless (Agg): every plot writes a non-empty PNG, returns
its figure, draws the numbers of ``fastnn.metrics``, and a missing matplotlib gives an ImportError
that names the ``plot`` extra.
"""
import sys

import numpy as np
import pytest

import fastnn
from fastnn import metrics, plot
from fastnn.layers import Dense
from fastnn.utils import set_random_seed

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is in the 'plot' and 'test' "
                                 "extras: pip install '.[test]'")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 2000, f"{path} is suspiciously small ({len(data)} bytes)"


def rng(seed):
    return np.random.default_rng(seed)


def binary_scores(n=120):
    y = rng(0).integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(rng(1).normal(size=n) + 2 * y - 1)))


def test_confusion_matrix_plot(tmp_path):
    y = rng(2).integers(0, 3, 90)
    probs = rng(3).dirichlet(np.ones(3), 90)  # model outputs: the plot takes their argmax
    fig = plot.confusion_matrix(y, probs, display_labels=["cat", "dog", "pig"], path=tmp_path / "cm.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "cm.png")
    ax = fig.axes[0]
    expected = metrics.confusion_matrix(y, probs)
    cells = [t.get_text() for t in ax.texts]
    assert cells == [str(v) for v in expected.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "pig"]
    fig = plot.confusion_matrix(y, probs, normalize="true", path=tmp_path / "cm_norm.png")
    assert_png(tmp_path / "cm_norm.png")
    rates = metrics.confusion_matrix(y, probs, normalize="true")
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{v:.2f}" for v in rates.ravel()]


def test_roc_curve_plot(tmp_path):
    y, s = binary_scores()
    fig = plot.roc_curve(y, s, name="mlp", path=tmp_path / "roc.png")
    assert_png(tmp_path / "roc.png")
    line = fig.axes[0].lines[0]
    fpr, tpr, _ = metrics.roc_curve(y, s)
    np.testing.assert_array_equal(line.get_xdata(), fpr)
    np.testing.assert_array_equal(line.get_ydata(), tpr)
    assert f"AUC = {metrics.roc_auc_score(y, s):.3f}" in line.get_label()


def test_precision_recall_curve_plot(tmp_path):
    y, s = binary_scores()
    fig = plot.precision_recall_curve(y, s[:, None], path=tmp_path / "pr.png")  # an (N, 1) output
    assert_png(tmp_path / "pr.png")
    line = fig.axes[0].lines[0]
    prec, rec, _ = metrics.precision_recall_curve(y, s)
    np.testing.assert_array_equal(line.get_xdata(), rec)
    np.testing.assert_array_equal(line.get_ydata(), prec)
    assert f"AP = {metrics.average_precision_score(y, s):.3f}" in line.get_label()
    chance = fig.axes[0].lines[1].get_ydata()[0]
    assert chance == pytest.approx(np.mean(y), abs=1e-15)


@pytest.mark.parametrize("outputs", [1, 2])
def test_decision_boundary_of_a_trained_model(tmp_path, outputs):
    x, y = fastnn.datasets.make_moons(200, noise=0.1, seed=0)
    set_random_seed(0)
    model = fastnn.Sequential([Dense(16, activation="tanh", input_shape=(2,)),
                               Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.05),
                  loss="binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    fig = plot.decision_boundary(model, x, y, resolution=60, path=tmp_path / "boundary.png")
    assert_png(tmp_path / "boundary.png")
    ax = fig.axes[0]
    assert len(ax.collections) >= 2  # the filled regions and the samples
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]


def test_plots_draw_on_given_axes():
    y, s = binary_scores()
    fig, (a, b) = plt.subplots(1, 2)
    assert plot.roc_curve(y, s, ax=a) is fig
    assert plot.precision_recall_curve(y, s, ax=b) is fig
    assert len(a.lines) == 2 and len(b.lines) == 2


def test_plot_input_errors():
    class Model:
        def predict(self, x):
            return np.zeros((len(x), 1))

    with pytest.raises(ValueError, match="exactly 2 features"):
        plot.decision_boundary(Model(), np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="same number of samples"):
        plot.decision_boundary(Model(), np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="resolution"):
        plot.decision_boundary(Model(), np.zeros((5, 2)), np.zeros(5), resolution=1)


def test_missing_matplotlib_names_the_plot_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    y, s = binary_scores(10)
    with pytest.raises(ImportError, match=r"fastnn-cpu\[plot\]"):
        plot.roc_curve(y, s)
