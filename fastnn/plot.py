"""Pictures of how good a model is: confusion matrix, ROC and precision-recall curves, and the
decision regions of a model with two inputs. Needs matplotlib: ``pip install "fastnn-cpu[plot]"``.

Each function draws on ``ax`` (a new figure when None), returns the matplotlib Figure, and writes
it to ``path`` as PNG (or any format matplotlib infers from the suffix) when given:

    fig = fastnn.plot.confusion_matrix(y_test, model.predict(x_test), path="cm.png")

The numbers come from :mod:`fastnn.metrics`, so a plot always agrees with the scores.
"""
import numpy as np

from . import metrics

DPI = 100          # matplotlib's default figure dpi
GRID_POINTS = 200  # decision_boundary evaluates the model on a GRID_POINTS x GRID_POINTS grid
MARGIN = 0.5       # decision_boundary extends the data's range by this much on each side


def _pyplot():
    """matplotlib.pyplot, imported on first use so that fastnn itself never needs matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("fastnn.plot needs matplotlib, which is not installed; install the "
                          "'plot' extra: pip install \"fastnn-cpu[plot]\" (or pip install matplotlib)"
                          ) from exc
    return plt


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=(5, 4.5), dpi=DPI)
    return fig, ax


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def confusion_matrix(y_true, y_pred, *, labels=None, display_labels=None, normalize=None,
                     sample_weight=None, cmap="Blues", ax=None, path=None):
    """Heat map of :func:`fastnn.metrics.confusion_matrix` with the count (or rate) in each cell.

    Rows are true classes, columns predicted ones. y_pred may be labels or model outputs.
    ``normalize``: None (counts), "true" (rows sum to 1), "pred" (columns) or "all".
    """
    cm = metrics.confusion_matrix(y_true, y_pred, labels=labels, sample_weight=sample_weight,
                                  normalize=normalize)
    if display_labels is None:
        _, _, present = metrics._label_pair(y_true, y_pred)
        display_labels = present if labels is None else labels
    names = [str(d) for d in display_labels]
    fig, ax = _axes(ax)
    image = ax.imshow(cm, interpolation="nearest", cmap=cmap)
    fig.colorbar(image, ax=ax)
    threshold = (cm.max() + cm.min()) / 2
    for (i, j), value in np.ndenumerate(cm):
        text = f"{value:.2f}" if normalize or cm.dtype.kind == "f" else f"{value:d}"
        ax.text(j, i, text, ha="center", va="center",
                color="white" if value > threshold else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names,
           yticklabels=names, xlabel="Predicted label", ylabel="True label", title="Confusion matrix")
    return _finish(fig, path)


def roc_curve(y_true, y_score, *, pos_label=None, sample_weight=None, name=None, ax=None, path=None):
    """The ROC curve of :func:`fastnn.metrics.roc_curve`, its AUC in the legend, and the chance
    diagonal. ``y_score`` is the positive class's score (N,), or a model's (N, 1) output."""
    fpr, tpr, _ = metrics.roc_curve(y_true, y_score, pos_label=pos_label, sample_weight=sample_weight)
    area = metrics.auc(fpr, tpr)
    fig, ax = _axes(ax)
    ax.plot(fpr, tpr, label=f"{name or 'model'} (AUC = {area:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance (AUC = 0.5)")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="False positive rate",
           ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return _finish(fig, path)


def precision_recall_curve(y_true, y_score, *, pos_label=None, sample_weight=None, name=None,
                           ax=None, path=None):
    """The precision-recall curve of :func:`fastnn.metrics.precision_recall_curve` as a step
    plot, with the average precision in the legend and the positive rate as the chance level."""
    prec, rec, _ = metrics.precision_recall_curve(y_true, y_score, pos_label=pos_label,
                                                  sample_weight=sample_weight)
    ap = max(0.0, -np.sum(np.diff(rec) * prec[:-1]))  # average_precision_score's definition
    fig, ax = _axes(ax)
    ax.step(rec, prec, where="post", label=f"{name or 'model'} (AP = {ap:.3f})")
    positive = metrics._binary_target(y_true, pos_label)
    w = np.ones(len(positive)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    chance = float(np.sum(w * positive) / np.sum(w))
    ax.axhline(chance, linestyle="--", color="gray", label=f"chance ({chance:.3f})")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="Recall", ylabel="Precision",
           title="Precision-recall curve")
    ax.legend(loc="lower left")
    return _finish(fig, path)


def decision_boundary(model, X, y, *, resolution=GRID_POINTS, cmap="coolwarm", ax=None, path=None):
    """The class a model predicts over the plane of its two inputs, with the samples on top.

    ``model`` is anything with ``predict`` taking (N, 2) and returning (N, C) scores (argmax) or
    an (N, 1) probability (class ``p > 0.5``); ``y`` holds labels or one-hot rows.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs inputs with exactly 2 features, got array of "
                         f"shape {X.shape}")
    labels = metrics._labels(y, "y")
    if len(labels) != len(X):
        raise ValueError(f"X and y must have the same number of samples, got {len(X)} and {len(labels)}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    lo, hi = X.min(axis=0) - MARGIN, X.max(axis=0) + MARGIN
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[gx.ravel(), gy.ravel()]
    regions = metrics._pred_labels(model.predict(grid)).reshape(gx.shape)
    fig, ax = _axes(ax)
    classes = np.union1d(np.unique(regions), np.unique(labels))
    levels = np.arange(len(classes) + 1) - 0.5
    ax.contourf(gx, gy, metrics._index_of(classes, regions.ravel()).reshape(gx.shape),
                levels=levels, cmap=cmap, alpha=0.35)
    colours = metrics._index_of(classes, labels)
    scatter = ax.scatter(X[:, 0], X[:, 1], c=colours, cmap=cmap, vmin=levels[0], vmax=levels[-1],
                         edgecolors="k", linewidths=0.5, s=20)
    handles = scatter.legend_elements()[0]
    ax.legend(handles, [str(c) for c in classes[np.unique(colours)]], title="class", loc="best")
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="x[0]", ylabel="x[1]",
           title="Decision boundary")
    return _finish(fig, path)
