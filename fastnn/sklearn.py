"""scikit-learn estimators backed by fastnn (needs ``pip install fastnn-cpu[sklearn]``).

* :class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's MLP parameters, with its
  names and defaults, and expose its fitted attributes (``coefs_``, ``intercepts_``,
  ``loss_curve_``, ``n_iter_``, ...), so ``sklearn.neural_network.MLPClassifier`` can be swapped
  for ``fastnn.sklearn.MLPClassifier`` in a pipeline or a grid search. fastnn adds ``dropout``,
  ``batch_norm``, ``n_threads`` and ``backend``.
* :class:`KerasClassifier` and :class:`KerasRegressor` wrap any function that builds a fastnn
  model (``model=build_fn``), in the manner of SciKeras.

The training follows scikit-learn's definitions: the same weight initialisation (uniform in
+-sqrt(6 / (fan_in + fan_out)), +-sqrt(2 / ...) for 'logistic'), the same loss (half the squared
error for regression; log-loss summed over the outputs of a multilabel target), the same L2
penalty ``alpha / 2 * ||W||^2 / batch_size`` (fastnn gives a last, smaller batch the penalty of a
full one; scikit-learn divides by its own size) and the same stopping rules (``tol``,
``n_iter_no_change``, ``early_stopping``, the 'adaptive' learning rate). For a regression target
with k > 1 outputs scikit-learn reports half the squared error averaged over the outputs but steps
along the gradient of its sum over them; fastnn does the same. Arithmetic is in
``fastnn.floatx()`` (float32 unless changed), so results match scikit-learn's float64 runs only to
float32 rounding.

Threads: each fit and predict runs the native kernels on ``n_threads`` threads; with
``n_threads=None`` (the default) the current setting holds, which follows threadpoolctl's
``threadpool_limits`` and the ``OMP_NUM_THREADS`` that joblib gives its workers, so a search with
``n_jobs > 1`` does not oversubscribe the cores.
"""
import contextlib
import copy
import inspect
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer, LabelEncoder
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("fastnn.sklearn needs scikit-learn >= 1.6: pip install 'fastnn-cpu[sklearn]'") from exc

from . import backend as backend_module
from . import callbacks as callbacks_module
from . import layers, models, optimizers, regularizers

__all__ = ["MLPClassifier", "MLPRegressor", "KerasClassifier", "KerasRegressor"]

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


@contextlib.contextmanager
def _threads(n_threads):
    """Run the enclosed code with the native kernels on ``n_threads`` threads (None: as they are).

    The limit is set for the calling thread only, with threadpoolctl, so estimators fitted in
    parallel Python threads do not change each other's setting."""
    if n_threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        previous = backend_module.get_num_threads()
        backend_module.set_num_threads(n_threads)
        try:
            yield
        finally:
            backend_module.set_num_threads(previous)
        return
    with threadpool_limits(limits=int(n_threads), user_api="openmp"):
        yield


@contextlib.contextmanager
def _backend(name):
    if name is None:
        yield
    else:
        with backend_module.backend_scope(name):
            yield


def _check_n_threads(n_threads):
    if n_threads is not None and (isinstance(n_threads, bool)
                                  or not isinstance(n_threads, numbers.Integral) or n_threads < 1):
        raise ValueError(f"n_threads must be None or a positive integer, got {n_threads!r}")


def _check_backend(name):
    if name is not None and name not in backend_module.BACKENDS:
        raise ValueError(f"backend must be None or one of {backend_module.BACKENDS}, got {name!r}")


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the training loop."""

    _loss_name = None  # set by the subclasses

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 dropout=0.0, batch_norm=False, n_threads=None, backend=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.n_threads = n_threads
        self.backend = backend

    # -- parameter checks (in fit, as scikit-learn does: set_params never raises) ---------------
    def _validate_params(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be a tuple of positive integers, got {sizes!r}") from None
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd' (fastnn trains by mini-batches; "
                             f"there is no 'lbfgs'), got {self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError("learning_rate must be 'constant', 'invscaling' or 'adaptive', "
                             f"got {self.learning_rate!r}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool)
                                          or not isinstance(self.batch_size, numbers.Integral)
                                          or self.batch_size < 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        for name, low, high, low_open, high_open in (
                ("alpha", 0, np.inf, False, True), ("learning_rate_init", 0, np.inf, True, True),
                ("power_t", 0, np.inf, False, True), ("tol", 0, np.inf, False, True),
                ("momentum", 0, 1, False, False), ("validation_fraction", 0, 1, True, True),
                ("beta_1", 0, 1, False, True), ("beta_2", 0, 1, False, True),
                ("epsilon", 0, np.inf, True, True), ("dropout", 0, 1, False, True)):
            value = getattr(self, name)
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and (value > low if low_open else value >= low)
                  and (value < high if high_open else value <= high))
            if not ok:
                lo, hi = "(" if low_open else "[", ")" if high_open else "]"
                raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _check_n_threads(self.n_threads)
        _check_backend(self.backend)
        return [int(s) for s in sizes]

    # -- the network ----------------------------------------------------------------------------
    def _build(self, sizes, n_in, n_out, out_activation, rng):
        """A new compiled fastnn model with scikit-learn's initialisation from ``rng``."""
        act = _ACTIVATIONS[self.activation]
        dims = [n_in] + sizes + [n_out]
        net = []
        for i, units in enumerate(sizes):
            net.append(layers.Dense(units, activation=None if self.batch_norm else act,
                                    kernel_regularizer=regularizers.L2(0.0)))
            if self.batch_norm:
                net += [layers.BatchNormalization(), layers.Activation(act)]
            if self.dropout:
                net.append(layers.Dropout(self.dropout))
        net.append(layers.Dense(n_out, activation=_ACTIVATIONS.get(out_activation, out_activation),
                                kernel_regularizer=regularizers.L2(0.0)))  # alpha is set in _compile
        weights = []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):  # sklearn's _init_coef, in its order
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            weights.append(rng.uniform(-bound, bound, fan_out))
        if self.dropout:  # drawn after the weights, so that these match scikit-learn's
            seeds = iter(rng.randint(0, 2**31 - 1, size=len(sizes)))  # (and the shuffles too
            for layer in net:                                          # without dropout)
                if isinstance(layer, layers.Dropout):
                    layer.seed = int(next(seeds))
        model = models.Sequential([layers.Input((n_in,))] + net)
        dense = [l for l in model.layers if isinstance(l, layers.Dense)]
        for layer, w, b in zip(dense, weights[0::2], weights[1::2]):
            layer.kernel[...] = w
            layer.bias[...] = b
        return model

    def _compile(self, model, batch_size, n_out):
        """Compile ``model`` so that its steps are scikit-learn's: the loss scikit-learn
        differentiates is ``scale`` times fastnn's, so the L2 coefficient, the SGD learning rate and
        Adam's epsilon are rescaled to give the same updates."""
        scale = self._loss_scale(n_out)
        l2 = self.alpha / (2.0 * batch_size * scale)
        for layer in model.layers:
            if isinstance(layer, layers.Dense):
                layer.kernel_regularizer.l2 = l2  # the object the built layer applies
        if self.solver == "adam":
            opt = optimizers.Adam(learning_rate=self.learning_rate_init, beta_1=self.beta_1,
                                  beta_2=self.beta_2, epsilon=self.epsilon / scale)
        else:
            opt = optimizers.SGD(learning_rate=self.learning_rate_init * scale, momentum=self.momentum,
                                 nesterov=self.nesterovs_momentum and self.momentum > 0)
        # the reported loss is ``report`` times fastnn's: where it differs from ``scale`` the data
        # term is tracked on its own (a metric with the loss's own name) to rescale it
        report = self._report_scale(n_out)
        model.compile(optimizer=opt, loss=self._loss_name, metrics=[] if report == scale else [self._loss_name])
        self._lr_scale = scale

    def _refresh_attributes(self):
        dense = [l for l in self.model_.layers if isinstance(l, layers.Dense)]
        self.coefs_ = [np.array(l.kernel) for l in dense]
        self.intercepts_ = [np.array(l.bias) for l in dense]
        self.n_layers_ = len(dense) + 1

    # -- training -------------------------------------------------------------------------------
    def _fit(self, X, y, incremental):
        """Shared by fit and partial_fit; ``X`` validated, ``y`` already encoded (2-D float)."""
        sizes = self._validate_params()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        # a new stream on every call, as scikit-learn: an integer random_state gives each
        # partial_fit (and each warm-started fit) the same shuffles
        rng = check_random_state(self.random_state)
        n, n_out = len(X), y.shape[1]
        batch_size = min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)
        if self.batch_size != "auto" and self.batch_size > n and self.verbose:
            print(f"batch_size={self.batch_size} is larger than the {n} samples; using {n}")
        if first:
            model = self._build(sizes, X.shape[1], n_out, self.out_activation_, rng)
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        else:
            model = self.model_
            if model.layers[0].kernel.shape[0] != X.shape[1]:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{model.layers[0].kernel.shape[0]} features as input")
        if first or not incremental or model.optimizer is None:
            self._compile(model, batch_size, n_out)
        early_stopping = self.early_stopping and not incremental
        X_val = y_val = None
        if early_stopping:
            stratify = y if is_classifier(self) and y.shape[1] == 1 else None
            if is_classifier(self) and n_out > 1 and not self._multilabel:
                stratify = y.argmax(1)
            X, X_val, y, y_val = train_test_split(X, y, random_state=rng, test_size=self.validation_fraction,
                                                  stratify=stratify)
            if len(X_val) < 2:
                raise ValueError(f"validation_fraction={self.validation_fraction} of {n} samples leaves "
                                 f"{len(X_val)} for validation; early_stopping needs at least 2")
            if self.validation_scores_ is None or first:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            n = len(X)
        self.model_ = model
        self.n_threads_ = backend_module.get_num_threads()
        epochs = 1 if incremental else self.max_iter
        self.n_iter_ = 0 if first or not hasattr(self, "n_iter_") else self.n_iter_
        order = np.arange(n)
        xe, ye = X, y
        if self.shuffle:  # gathered into the same two buffers every epoch: a fresh copy of a
            xe, ye = np.empty_like(X), np.empty_like(y)  # large X costs its page faults each time
        hook = _EpochHook(self, X, y, xe, ye, order, rng, n, n_out, incremental, early_stopping,
                          X_val, y_val)
        hook.on_epoch_begin(0)
        px, py = model._prepare_xy(xe, ye)
        if np.shares_memory(px, xe) and np.shares_memory(py, ye):
            # one fit for all the epochs (its per-call checks run once); the hook shuffles the
            # buffers fit reads in place between epochs and applies scikit-learn's stopping rules
            hook.first_done = True
            model.fit(xe, ye, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0,
                      callbacks=[hook])
        else:  # fit would train on a converted copy: one fit per epoch
            for it in range(epochs):
                if it:
                    hook.on_epoch_begin(it)
                model.fit(xe, ye, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
                hook.epoch_end(model.history.history)
                if hook.stopped:
                    break
        stopped, best_weights = hook.stopped, hook.best_weights
        if not incremental and not stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)
        if best_weights is not None:
            model.set_weights(best_weights)
        self._refresh_attributes()
        return self

    def _validate_X(self, X, reset):
        return validate_data(self, X, reset=reset, dtype=backend_module.floatx(), accept_sparse=False)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        with _threads(self.n_threads), _backend(self.backend):
            return self.model_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class _EpochHook(callbacks_module.Callback):
    """scikit-learn's per-epoch work inside one fastnn ``fit``: the shuffle of the previous
    epoch's order (in place, as scikit-learn) gathered into the arrays fit reads, then at the
    epoch's end the loss at scikit-learn's scale, the learning-rate schedules and the stopping
    rules (``tol``, ``n_iter_no_change``, ``early_stopping``, 'adaptive')."""

    def __init__(self, est, X, y, xe, ye, order, rng, n, n_out, incremental, early_stopping,
                 X_val, y_val):
        super().__init__()
        self.est, self.X, self.y, self.xe, self.ye, self.order, self.rng = est, X, y, xe, ye, order, rng
        self.n, self.n_out, self.incremental, self.early_stopping = n, n_out, incremental, early_stopping
        self.X_val, self.y_val = X_val, y_val
        self.stopped, self.best_weights, self.first_done = False, None, False

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_done:  # the first epoch's shuffle ran before fit
            self.first_done = False
            return
        if self.est.shuffle:  # scikit-learn shuffles the previous epoch's order, in place
            self.rng.shuffle(self.order)
            # mode="clip": the order is a permutation, every index valid; the default "raise"
            # gathers into a temporary array first and copies it into out (a new 25 MB, page
            # faults and all, every epoch for 8,000 MNIST images)
            np.take(self.X, self.order, axis=0, out=self.xe, mode="clip")
            np.take(self.y, self.order, axis=0, out=self.ye, mode="clip")

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end({k: [v] for k, v in (logs or {}).items()})
        if self.stopped:
            self.model.stop_training = True

    def epoch_end(self, history):
        est, model, n_out = self.est, self.est.model_, self.n_out
        opt = model.optimizer
        loss = float(history["loss"][-1]) * est._lr_scale
        if est._loss_name in history:  # the data term at its reported scale
            loss -= float(history[est._loss_name][-1]) * (est._lr_scale - est._report_scale(n_out))
        est.n_iter_ += 1
        est.t_ += self.n
        est.loss_curve_.append(loss)
        est.loss_ = loss
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            opt.learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t * est._lr_scale
        if not np.isfinite(loss):
            raise ValueError(f"the training loss became {loss} at iteration {est.n_iter_}; lower "
                             "learning_rate_init or scale the inputs")
        if self.early_stopping:
            score = est._score_encoded(self.X_val, self.y_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            improved = score >= est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = model.get_weights()
        else:
            improved = loss <= est.best_loss_ - est.tol
            if loss < est.best_loss_:
                est.best_loss_ = loss
        est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
        if self.incremental:
            return
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.early_stopping else "Training loss"
            if est.solver == "sgd" and est.learning_rate == "adaptive":
                lr = opt.learning_rate / est._lr_scale
                if lr > 1e-6:
                    opt.learning_rate = lr / 5.0 * est._lr_scale
                    est._no_improvement_count = 0
                    if est.verbose:
                        print(f"Setting learning rate to {lr / 5.0:f}")
                    return
            if est.verbose:
                print(f"{what} did not improve more than tol={est.tol:f} for "
                      f"{est.n_iter_no_change} consecutive epochs. Stopping.")
            self.stopped = True


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` on fastnn: same parameters, defaults and fitted attributes.

    Binary and multiclass targets of any label type (strings, categories, numbers), and multilabel
    indicator matrices, as scikit-learn's MLP: a softmax output with log-loss for several classes,
    a logistic output for two classes or multilabel targets.
    """

    _loss_name = "binary_crossentropy"

    def _loss_scale(self, n_out):
        return float(n_out) if self._multilabel else 1.0

    def _report_scale(self, n_out):
        return self._loss_scale(n_out)

    def _encode(self, y, classes=None, reset=True):
        if reset:
            check_classification_targets(y)
            kind = type_of_target(y)
            if kind == "multiclass-multioutput":
                raise ValueError("MLPClassifier supports binary, multiclass and multilabel targets; got "
                                 "a multiclass-multioutput target (use one estimator per output)")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
            self._multilabel = self._label_binarizer.y_type_ == "multilabel-indicator"
            if len(self.classes_) < 2 and len(y) == 1:
                raise ValueError("MLPClassifier needs samples of at least 2 classes, got 1 sample")
            if len(self.classes_) < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, got "
                                 f"only class {self.classes_[0]!r}")
            n_out = len(self.classes_) if (self._multilabel or len(self.classes_) > 2) else 1
            self.out_activation_ = "logistic" if n_out == 1 or self._multilabel else "softmax"
            self._loss_name = ("categorical_crossentropy" if self.out_activation_ == "softmax"
                               else "binary_crossentropy")
            self.n_outputs_ = n_out
        else:
            if self._multilabel:
                check_classification_targets(y)
            elif np.setdiff1d(np.unique(y), self.classes_).size:
                unknown = np.setdiff1d(np.unique(y), self.classes_)
                raise ValueError(f"y has classes {unknown.tolist()} not in classes_ {self.classes_.tolist()}")
        return self._label_binarizer.transform(y).astype(backend_module.floatx())

    def fit(self, X, y):
        """Train on (X, y) for up to ``max_iter`` epochs; returns self."""
        self._validate_params()
        X, y = validate_data(self, X, y, reset=True, dtype=backend_module.floatx(),
                             multi_output=True, accept_sparse=False)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it is raveled",
                          _data_conversion_warning())
            y = y.ravel()
        refit = self.warm_start and hasattr(self, "classes_")
        if refit:
            old = self.classes_
            Y = self._encode(y, reset=False)
            if not np.array_equal(old, self.classes_):
                raise ValueError("warm_start can only be used where y has the same classes as in the "
                                 "previous call to fit")
        else:
            Y = self._encode(y)
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, Y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.
        ``classes`` (all the labels there will be) is needed on the first call."""
        self._validate_params()
        first = not hasattr(self, "classes_")
        X, y = validate_data(self, X, y, reset=first, dtype=backend_module.floatx(),
                             multi_output=True, accept_sparse=False)
        if first:
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit")
            Y = self._encode(y, classes=classes)
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"`classes={list(classes)}` is not the same as on the first call to "
                                 f"partial_fit, {list(self.classes_)}")
            Y = self._encode(y, reset=False)
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, Y, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        p = self._forward(X).astype(np.float64)
        if self.out_activation_ == "softmax":
            p /= p.sum(axis=1, keepdims=True)
        elif not self._multilabel:
            p = np.hstack([1.0 - p, p])
        return p

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels (an indicator matrix for a multilabel target)."""
        p = self._forward(X)
        if self._multilabel:
            return self._label_binarizer.inverse_transform(p, threshold=0.5)
        if self.out_activation_ == "softmax":
            return self.classes_[np.argmax(p, axis=1)]
        return self.classes_[(p[:, 0] > 0.5).astype(int)]

    def _score_encoded(self, X, Y):
        p = self.model_.predict(X)
        if self._multilabel:
            return accuracy_score(Y > 0.5, p > 0.5)
        if self.out_activation_ == "softmax":
            return accuracy_score(Y.argmax(1), p.argmax(1))
        return accuracy_score(Y[:, 0] > 0.5, p[:, 0] > 0.5)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` on fastnn: squared error, identity output, one or several
    outputs (``y`` of shape (n_samples,) or (n_samples, n_outputs))."""

    _loss_name = "mse"

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dropout=0.0, batch_norm=False, n_threads=None, backend=None):
        self.loss = loss
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, dropout=dropout, batch_norm=batch_norm,
            n_threads=n_threads, backend=backend)

    def _validate_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"loss must be 'squared_error' (fastnn has no 'poisson' here), got {self.loss!r}")
        return super()._validate_params()

    def _loss_scale(self, n_out):
        # scikit-learn's gradient is that of half the squared error summed over the outputs;
        # fastnn's MSE averages the squared error over them
        return 0.5 * n_out

    def _report_scale(self, n_out):
        return 0.5  # its reported loss averages over the outputs, as fastnn's MSE

    def _prepare(self, X, y, reset):
        X, y = validate_data(self, X, y, reset=reset, dtype=backend_module.floatx(), multi_output=True,
                             y_numeric=True, accept_sparse=False)
        y = np.asarray(y, dtype=backend_module.floatx())
        if reset:
            self._y_ndim = y.ndim
        Y = y.reshape(len(y), -1)
        if not reset and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, but {type(self).__name__} was fitted with "
                             f"{self.n_outputs_}")
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = "identity"
        self._multilabel = False
        return X, Y

    def fit(self, X, y):
        """Train on (X, y) for up to ``max_iter`` epochs; returns self."""
        self._validate_params()
        refit = self.warm_start and hasattr(self, "model_")
        X, Y = self._prepare(X, y, reset=not refit)
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, Y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        self._validate_params()
        X, Y = self._prepare(X, y, reset=not hasattr(self, "model_"))
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, Y, incremental=True)

    def predict(self, X):
        """Predictions, shape (n_samples,) for a 1-D target, else (n_samples, n_outputs)."""
        p = self._forward(X).astype(np.float64)
        return p.ravel() if p.shape[1] == 1 else p

    def _score_encoded(self, X, Y):
        return r2_score(Y, self.model_.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _data_conversion_warning():
    from sklearn.exceptions import DataConversionWarning
    return DataConversionWarning


# -- wrappers for a function that builds a fastnn model (in the manner of SciKeras) --------------
class _KerasBase(BaseEstimator):
    """``model`` is a function returning a fastnn model (compiled or not) or a model instance,
    cloned for each fit. Keyword arguments not named here are kept as parameters (so grid
    searches can tune them) and given to ``model`` when its signature names them, with or without
    a ``model__`` prefix; ``meta`` (a dict with ``n_features_in_``, ``n_outputs_``, and
    ``n_classes_`` for a classifier) is given when asked for, and so are those names."""

    _fit_keys = ("batch_size", "epochs", "verbose", "callbacks", "validation_split", "shuffle")

    def __init__(self, model=None, *, optimizer="adam", loss=None, metrics=None, batch_size=None,
                 epochs=1, verbose=0, callbacks=None, validation_split=0.0, shuffle=True,
                 random_state=None, warm_start=False, n_threads=None, backend=None, **kwargs):
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.batch_size = batch_size
        self.epochs = epochs
        self.verbose = verbose
        self.callbacks = callbacks
        self.validation_split = validation_split
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.backend = backend
        self._extra = sorted(kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        for key in getattr(self, "_extra", ()):
            params[key] = getattr(self, key)
        return params

    def set_params(self, **params):
        known = set(super().get_params(deep=False))
        for key in params:  # a new parameter for the build function, as SciKeras allows
            if key not in known and (key.startswith("model__") or "__" not in key):
                self._extra = sorted(set(self._extra) | {key})
        return super().set_params(**params)

    def _build_model(self, meta):
        if self.model is None:
            raise ValueError(f"{type(self).__name__} needs model=, a function that returns a fastnn model")
        if isinstance(self.model, models.Sequential):
            return copy.deepcopy(self.model)
        if not callable(self.model):
            raise TypeError(f"model must be a function returning a fastnn model, or a model; got "
                            f"{type(self.model).__name__}")
        params = {k[len("model__"):] if k.startswith("model__") else k: getattr(self, k) for k in self._extra}
        available = {**params, **meta, "meta": dict(meta)}
        sig = inspect.signature(self.model)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        kwargs = {k: v for k, v in available.items() if takes_any and k in params or k in sig.parameters}
        model = self.model(**kwargs)
        if not isinstance(model, models.Sequential):
            raise TypeError(f"model() must return a fastnn model, got {type(model).__name__}")
        return model

    def _check_fit_params(self):
        _check_n_threads(self.n_threads)
        _check_backend(self.backend)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, numbers.Integral) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {self.epochs!r}")

    def _fit(self, X, Y, meta, loss_for):
        """Build and compile a new model (or keep the fitted one with warm_start), then train."""
        warm = self.warm_start and hasattr(self, "model_")
        if not warm:
            if self.random_state is not None:
                from . import utils
                utils.set_random_seed(int(check_random_state(self.random_state).randint(0, 2**31 - 1)))
            model = self._build_model(meta)
            if not model.built:
                model.build(X.shape[1:])
            if model.loss is None or self.loss is not None:
                loss = self.loss if self.loss is not None else loss_for(model.output_shape[-1])
                optimizer = self.optimizer if isinstance(self.optimizer, str) else copy.deepcopy(self.optimizer)
                model.compile(optimizer=optimizer, loss=loss, metrics=self.metrics)
            self.model_ = model
            self.history_ = {}
        self._check_outputs(self.model_.output_shape[-1])
        history = self.model_.fit(X, self._targets(Y), batch_size=self.batch_size, epochs=self.epochs,
                                  verbose=self.verbose, callbacks=self.callbacks,
                                  validation_split=self.validation_split, shuffle=self.shuffle)
        for key, values in history.history.items():
            self.history_[key] = list(self.history_.get(key, [])) + list(values)
        self.n_iter_ = len(next(iter(self.history_.values()), []))
        return self

    def _predict_raw(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=backend_module.floatx(), allow_nd=True)
        with _threads(self.n_threads), _backend(self.backend):
            return self.model_.predict(X)


class KerasClassifier(ClassifierMixin, _KerasBase):
    """A classifier around a function that builds a fastnn model. Labels of any type are encoded
    for the loss: integers for ``sparse_categorical_crossentropy`` (the default with one output per
    class), one-hot for ``categorical_crossentropy``, 0/1 for a single sigmoid output (two
    classes; ``binary_crossentropy`` is the default then)."""

    def _check_outputs(self, outputs):
        if outputs != self.n_classes_ and not (outputs == 1 and self.n_classes_ == 2):
            raise ValueError(f"the model has {outputs} outputs for {self.n_classes_} classes; give its "
                             f"last layer {self.n_classes_} units (softmax)"
                             + (" or 1 (sigmoid)" if self.n_classes_ == 2 else ""))

    def _targets(self, idx):
        outputs = self.model_.output_shape[-1]
        if outputs == 1:
            return idx.astype(backend_module.floatx()).reshape(-1, 1)
        if "sparse" in type(self.model_.loss).__name__.lower():
            return idx
        return np.eye(outputs, dtype=backend_module.floatx())[idx]

    def fit(self, X, y):
        """Build the model, compile it when it is not, and train it for ``epochs``; returns self."""
        self._check_fit_params()
        X, y = validate_data(self, X, y, reset=True, dtype=backend_module.floatx(), allow_nd=True)
        check_classification_targets(y)
        if self.warm_start and hasattr(self, "classes_"):
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            if unknown.size:
                raise ValueError(f"y has classes {unknown.tolist()} not seen in the first fit")
        else:
            self._encoder = LabelEncoder().fit(y)
            self.classes_ = self._encoder.classes_
            self.n_classes_ = len(self.classes_)
        meta = {"n_features_in_": self.n_features_in_, "n_classes_": self.n_classes_,
                "n_outputs_": 1 if self.n_classes_ == 2 else self.n_classes_}
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, self._encoder.transform(y), meta, lambda out: (
                "binary_crossentropy" if out == 1 else "sparse_categorical_crossentropy"))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        p = self._predict_raw(X).astype(np.float64)
        return np.hstack([1.0 - p, p]) if p.shape[1] == 1 else p

    def predict(self, X):
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class KerasRegressor(RegressorMixin, _KerasBase):
    """A regressor around a function that builds a fastnn model (default loss: ``mse``)."""

    def _check_outputs(self, outputs):
        if outputs != self.n_outputs_:
            raise ValueError(f"the model has {outputs} outputs for a target with {self.n_outputs_}")

    def _targets(self, Y):
        return Y

    def fit(self, X, y):
        """Build the model, compile it when it is not, and train it for ``epochs``; returns self."""
        self._check_fit_params()
        X, y = validate_data(self, X, y, reset=True, dtype=backend_module.floatx(), allow_nd=True,
                             multi_output=True, y_numeric=True)
        Y = np.asarray(y, dtype=backend_module.floatx()).reshape(len(y), -1)
        self.n_outputs_ = Y.shape[1]
        self._y_ndim = np.ndim(y)
        meta = {"n_features_in_": self.n_features_in_, "n_outputs_": self.n_outputs_}
        with _threads(self.n_threads), _backend(self.backend):
            return self._fit(X, Y, meta, lambda out: "mse")

    def predict(self, X):
        p = self._predict_raw(X).astype(np.float64)
        return p.ravel() if self._y_ndim == 1 and p.shape[1] == 1 else p

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
