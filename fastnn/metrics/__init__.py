"""How good is a model? Scores from arrays or from a trained model, with scikit-learn's numbers.

Three kinds of things live here, all in NumPy (evaluation is not the hot path):

1. **Keras's per-sample functions**, one value per sample, for ``compile(metrics=[...])`` to
   average: ``binary_accuracy``, ``categorical_accuracy``, ``sparse_categorical_accuracy``,
   ``top_k_categorical_accuracy``, ``sparse_top_k_categorical_accuracy``, ``cosine_similarity``.
2. **scikit-learn's scores**, with sklearn.metrics's signatures and results: ``accuracy_score``,
   ``top_k_accuracy_score``, ``confusion_matrix``, ``precision_recall_fscore_support``,
   ``precision_score``, ``recall_score``, ``fbeta_score``, ``f1_score``, ``classification_report``,
   ``roc_curve``, ``auc``, ``roc_auc_score``, ``precision_recall_curve``,
   ``average_precision_score``, ``log_loss``, ``mean_absolute_error``, ``mean_squared_error``,
   ``root_mean_squared_error``, ``r2_score`` (short names: ``accuracy``, ``precision``, ``recall``,
   ``fbeta``). Beyond sklearn, label arguments also take model outputs: an (N, C) array of scores
   or one-hot rows stands for its argmax, and a float (N, 1) column in [0, 1] of predictions for
   the class ``p > 0.5``; so ``accuracy(y_test, model.predict(x_test))`` works.
3. **Stateful metric objects** (``Accuracy``, ``PrecisionScore``, ``AUCScore``, ``R2Score``...),
   which ``compile(metrics=[...])`` takes by name or as instances. Each keeps sufficient
   statistics (counts, a confusion matrix, all scores for AUC), so ``result()`` after any sequence
   of batches equals the function on the concatenated data, never an average of per-batch ratios.
4. **Keras's thresholded metrics** ``Precision``, ``Recall`` and ``AUC``, with Keras's arguments
   (``thresholds``, ``top_k``, ``class_id``, ``num_thresholds``, ``curve``, ``summation_method``,
   ``multi_label``, ``from_logits``...) and Keras's numbers: counts per threshold over every
   output element, AUC as a Riemann sum over 200 thresholds. The exact scikit-learn-style objects
   are the ``...Score`` classes of (3).

Edge cases follow scikit-learn's documentation: an undefined ratio (a class never predicted, no
positive sample) takes ``zero_division`` (default "warn": 0.0 and an UndefinedMetricWarning). One
deliberate difference: ROC AUC with a single class in ``y_true`` raises ValueError (recent
scikit-learn warns and returns nan), because the number does not exist.

One module per kind: ``functions`` (1), ``classification``, ``ranking`` and ``regression`` (2),
``objects`` (3), ``thresholded`` (4); ``inputs`` reads labels and weights for all of them. Everything is importable
from ``fastnn.metrics`` itself.
"""
from .inputs import BINARY_THRESHOLD, KERAS_TOP_K, SKLEARN_TOP_K, AVERAGES, UndefinedMetricWarning  # noqa: F401
from .functions import (  # noqa: F401
    sparse_categorical_accuracy,
    categorical_accuracy,
    binary_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
    cosine_similarity,
)
from .classification import (  # noqa: F401
    accuracy_score,
    accuracy,
    top_k_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    fbeta_score,
    f1_score,
    classification_report,
    log_loss,
)
from .ranking import (  # noqa: F401
    roc_curve,
    precision_recall_curve,
    auc,
    roc_auc_score,
    average_precision_score,
)
from .regression import (  # noqa: F401
    mean_absolute_error,
    mean_squared_error,
    root_mean_squared_error,
    r2_score,
)
from .objects import (  # noqa: F401
    Metric,
    MeanMetricWrapper,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    CosineSimilarity,
    PrecisionScore,
    RecallScore,
    FBetaScore,
    F1Score,
    AUCScore,
    LogLoss,
    MeanAbsoluteError,
    MeanSquaredError,
    RootMeanSquaredError,
    R2Score,
)
from .thresholded import Precision, Recall, AUC  # noqa: F401


# ======================================================================= lookup for compile()
def _binary_or_macro(output_shape):
    return "binary" if tuple(output_shape)[-1:] in ((1,), (2,)) else "macro"


def _accuracy_fn(loss, output_shape):
    """Keras 3's resolution of "accuracy": binary_accuracy for one output column, else
    sparse_categorical_accuracy for integer labels (a SparseCategoricalCrossentropy loss, by type:
    its ``name`` may be anything), else categorical_accuracy -- also for several sigmoid outputs
    with binary cross-entropy, where Keras 3 compares the argmaxes (tf.keras 2 used binary_accuracy;
    pass "binary_accuracy" for the fraction of elements right)."""
    from ..losses import SparseCategoricalCrossentropy
    if tuple(output_shape)[-1:] == (1,):
        return binary_accuracy
    if isinstance(loss, SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    return categorical_accuracy


_FACTORIES = {  # name -> metric(loss, output_shape)
    "binary_accuracy": lambda loss, shape: BinaryAccuracy(),
    "categorical_accuracy": lambda loss, shape: CategoricalAccuracy(),
    "sparse_categorical_accuracy": lambda loss, shape: SparseCategoricalAccuracy(),
    "top_k_categorical_accuracy": lambda loss, shape: TopKCategoricalAccuracy(),
    "sparse_top_k_categorical_accuracy": lambda loss, shape: SparseTopKCategoricalAccuracy(),
    "precision": lambda loss, shape: Precision(),
    "recall": lambda loss, shape: Recall(),
    "precision_score": lambda loss, shape: PrecisionScore(average=_binary_or_macro(shape)),
    "recall_score": lambda loss, shape: RecallScore(average=_binary_or_macro(shape)),
    "f1_score": lambda loss, shape: F1Score(average=_binary_or_macro(shape)),
    "f1": lambda loss, shape: F1Score(average=_binary_or_macro(shape)),
    "auc": lambda loss, shape: AUC(),
    "roc_auc": lambda loss, shape: AUCScore(), "roc_auc_score": lambda loss, shape: AUCScore(),
    "average_precision": lambda loss, shape: AUCScore(curve="PR"),
    "pr_auc": lambda loss, shape: AUCScore(curve="PR"),
    "log_loss": lambda loss, shape: LogLoss(),
    "mae": lambda loss, shape: MeanAbsoluteError(),
    "mean_absolute_error": lambda loss, shape: MeanAbsoluteError(),
    "mse": lambda loss, shape: MeanSquaredError(),
    "mean_squared_error": lambda loss, shape: MeanSquaredError(),
    "rmse": lambda loss, shape: RootMeanSquaredError(),
    "root_mean_squared_error": lambda loss, shape: RootMeanSquaredError(),
    "r2": lambda loss, shape: R2Score(), "r2_score": lambda loss, shape: R2Score(),
    "cosine_similarity": lambda loss, shape: CosineSimilarity(),
}


def get(identifier, loss=None, output_shape=(1,)):
    """A fresh :class:`Metric` for ``compile(metrics=[...])``.

    A name (Keras's, e.g. "accuracy", "precision", "auc", "mae") makes a new metric reporting under
    that name: "accuracy"/"acc" picks the variant that matches ``loss`` (a fastnn Loss) and the
    model's ``output_shape`` as Keras 3 does; "precision", "recall" and "auc" are Keras's
    thresholded metrics (:class:`Precision`, :class:`Recall`, :class:`AUC`); the exact
    scikit-learn-style "precision_score", "recall_score", "f1_score", "roc_auc" and
    "average_precision" use average="binary" for one or two outputs and "macro" otherwise. An instance is cloned with an
    empty state, so training, validation and evaluate never mix their counts.
    """
    if isinstance(identifier, Metric):
        average = getattr(identifier, "average", None)
        if average == "binary" and tuple(output_shape)[-1] > 2:
            raise ValueError(f"{identifier.name} uses average='binary' but the model has "
                             f"{tuple(output_shape)[-1]} outputs; choose average='micro', "
                             "'macro' or 'weighted'")
        return identifier.clone()
    if not isinstance(identifier, str):
        raise ValueError(f"metrics must be names or Metric instances, got {identifier!r}")
    name = identifier.lower()
    if name in ("accuracy", "acc"):
        return MeanMetricWrapper(_accuracy_fn(loss, output_shape), identifier, direction="up")
    if name not in _FACTORIES:
        raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                         f"{', '.join(sorted(_FACTORIES))}")
    metric = _FACTORIES[name](loss, output_shape)
    metric.name = identifier
    return metric
