"""scikit-learn's regression scores: mean absolute and squared errors, their root, and R^2.
"""
import warnings

import numpy as np

from .inputs import UndefinedMetricWarning, _weights


# ================================================================ scikit-learn: regression
def _regression_inputs(y_true, y_pred, sample_weight, multioutput, allowed):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t = t.reshape(-1, 1) if t.ndim == 1 else t
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    if t.ndim != 2 or t.shape != p.shape or len(t) == 0:
        raise ValueError(f"y_true and y_pred must have the same shape (N,) or (N, outputs), got "
                         f"{np.shape(y_true)} and {np.shape(y_pred)}")
    for a, name in ((t, "y_true"), (p, "y_pred")):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
    if isinstance(multioutput, str):
        if multioutput not in allowed:
            raise ValueError(f"multioutput must be one of {allowed} or an array of weights, got "
                             f"{multioutput!r}")
    else:
        multioutput = np.asarray(multioutput, dtype=np.float64)
        if t.shape[1] == 1:
            raise ValueError("multioutput weights need more than one output")
        if multioutput.shape != (t.shape[1],):
            raise ValueError(f"multioutput must have one weight per output ({t.shape[1]}), got "
                             f"shape {multioutput.shape}")
    return t, p, _weights(sample_weight, len(t)), multioutput


def _combine_outputs(per_output, multioutput, variance=None):
    """Per-output scores combined as scikit-learn's ``multioutput`` asks."""
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return per_output
        if multioutput == "variance_weighted" and variance is not None and (variance != 0).any():
            return float(np.average(per_output, weights=variance))
        return float(np.mean(per_output))
    return float(np.average(per_output, weights=multioutput))


_REGRESSION_AVERAGES = ("raw_values", "uniform_average")


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """MAE = sum_i w_i |y_true_i - y_pred_i| / sum_i w_i, per output, then combined."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.average(np.abs(p - t), axis=0, weights=w), mo)


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """MSE = sum_i w_i (y_true_i - y_pred_i)^2 / sum_i w_i, per output, then combined."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.average((t - p) ** 2, axis=0, weights=w), mo)


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """RMSE = sqrt(MSE) per output, then combined (so for several outputs it is the mean of the
    per-output RMSEs, as in scikit-learn, not the root of the overall MSE as in Keras)."""
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput, _REGRESSION_AVERAGES)
    return _combine_outputs(np.sqrt(np.average((t - p) ** 2, axis=0, weights=w)), mo)


def _r2_from_sums(residual, total, force_finite):
    """R^2 = 1 - SS_res / SS_tot per output; with force_finite, 1.0 for a perfect fit of constant
    targets and 0.0 for an imperfect one (instead of nan and -inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - residual / total
    if force_finite:
        r2 = np.where(total != 0, r2, np.where(residual != 0, 0.0, 1.0))
        r2 = np.where((total != 0) & (residual == 0), 1.0, r2)
    return r2


def r2_score(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average", force_finite=True):
    """Coefficient of determination, per output then combined:

        R^2 = 1 - sum_i w_i (y_i - f_i)^2 / sum_i w_i (y_i - ybar)^2,   ybar the weighted mean of y

    1 is a perfect fit and 0 is what predicting the mean achieves; it can be negative. Needs two
    samples (else nan with an UndefinedMetricWarning). multioutput "variance_weighted" weights the
    outputs by the variance of their targets.
    """
    t, p, w, mo = _regression_inputs(y_true, y_pred, sample_weight, multioutput,
                                     _REGRESSION_AVERAGES + ("variance_weighted",))
    if len(t) < 2:
        warnings.warn("R^2 is not well-defined with fewer than two samples", UndefinedMetricWarning,
                      stacklevel=2)
        return float("nan")
    ww = 1.0 if w is None else w[:, None]
    residual = np.sum(ww * (t - p) ** 2, axis=0)
    total = np.sum(ww * (t - np.average(t, axis=0, weights=w)) ** 2, axis=0)
    return _combine_outputs(_r2_from_sums(residual, total, force_finite), mo, total)
