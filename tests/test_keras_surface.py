"""Keras-compatible helpers: utils, datasets loaders, unsupported layers, monitor directions."""
import numpy as np
import pytest

from fastnn import backend, callbacks, datasets, layers, optimizers, utils
from fastnn.layers import Dense
from fastnn.models import Sequential


def test_to_categorical_matches_keras_shapes_and_dtype():
    out = utils.to_categorical([0, 2, 1])
    assert out.dtype == np.float64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    assert utils.to_categorical([[1], [0]], num_classes=4).shape == (2, 4)
    with pytest.raises(ValueError, match="0..2"):
        utils.to_categorical([0, 3], num_classes=3)


def test_normalize_leaves_zero_rows_alone():
    np.testing.assert_allclose(utils.normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0, 0]])


def test_split_dataset_sizes_and_form():
    (xl, yl), (xr, yr) = utils.split_dataset((np.arange(10), np.arange(10) * 2), left_size=0.8)
    np.testing.assert_array_equal(xr, [8, 9])
    np.testing.assert_array_equal(yl, np.arange(8) * 2)
    with pytest.raises(ValueError, match="exceeds"):
        utils.split_dataset(np.arange(4), left_size=3, right_size=2)


def test_clear_session_restarts_automatic_names():
    backend.clear_session()
    assert Dense(1).name == "dense" and Dense(1).name == "dense_1"
    backend.clear_session()
    assert Dense(1).name == "dense"


def test_input_layer_takes_shape_or_input_shape():
    assert layers.InputLayer(shape=(3,)).input_shape_arg == (3,)
    assert layers.InputLayer(input_shape=(4,)).input_shape_arg == (4,)
    with pytest.raises(ValueError, match="exactly one"):
        layers.InputLayer()


def test_convolution_layers_say_what_fastnn_is_for():
    with pytest.raises(NotImplementedError, match="dense"):
        layers.Conv2D
    with pytest.raises(AttributeError):
        layers.NoSuchLayer


def test_keras_mnist_loader_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        datasets.mnist.load_data()
    cache = tmp_path / "datasets"
    cache.mkdir()
    x = np.zeros((5, 28, 28), np.uint8)
    np.savez(cache / "mnist.npz", x_train=x, y_train=np.arange(5, dtype=np.uint8), x_test=x[:2],
             y_test=np.arange(2, dtype=np.uint8))
    (xt, yt), (xs, ys) = datasets.mnist.load_data()
    assert xt.dtype == np.uint8 and xt.shape == (5, 28, 28) and xs.shape == (2, 28, 28)


def test_keras_mnist_loader_reads_idx_directory(mnist_dir):
    (x, y), (xt, yt) = datasets.mnist.load_data(path=mnist_dir)
    assert x.dtype == np.uint8 and y.dtype == np.uint8 and x.max() > 1


def _fit_with(cb, metrics, monitor_values):
    class Script(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs.update(monitor_values[epoch])
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer=optimizers.SGD(0.01), loss="binary_crossentropy", metrics=metrics)
    x = np.random.default_rng(0).random((8, 3))
    model.fit(x, (x[:, 0] > 0.5).astype(float), epochs=len(monitor_values), verbose=0,
              callbacks=[Script(), cb])
    return model


def test_early_stopping_maximises_precision_in_auto_mode():
    stop = callbacks.EarlyStopping(monitor="precision", patience=1)
    _fit_with(stop, ["precision"], [{"precision": 0.5}, {"precision": 0.7}, {"precision": 0.6},
                                    {"precision": 0.6}, {"precision": 0.9}])
    assert stop.best == 0.7 and stop.stopped_epoch == 2


def test_nan_first_value_is_the_best_as_in_keras():
    stop = callbacks.EarlyStopping(monitor="loss", patience=1)
    _fit_with(stop, None, [{"loss": float("nan")}, {"loss": 1.0}, {"loss": 0.5}])
    assert np.isnan(stop.best) and stop.stopped_epoch == 1


def test_unknown_monitor_direction_needs_a_mode():
    with pytest.raises(ValueError, match="mode='max'"):
        _fit_with(callbacks.EarlyStopping(monitor="score"), None, [{"score": 1.0}])
