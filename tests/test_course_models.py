"""The Keras models of the course notes, run on fastnn with only their imports changed.

The batch-normalization example (notes 003, section 2.5) is copied below line for line (its
Korean comments dropped); only the three import lines differ. ``tf.keras.layers.Activation`` in
its body resolves through ``tf = SimpleNamespace(keras=fastnn)``.
"""
import contextlib
import io
import re

import numpy as np
import pytest

import fastnn
from fastnn.utils import set_random_seed

IMPORTS = """\
import types, fastnn; tf = types.SimpleNamespace(keras=fastnn)   # import tensorflow as tf
from fastnn.models import Sequential                              # from tensorflow.keras.models import Sequential
from fastnn.layers import Dense, BatchNormalization, Flatten      # from tensorflow.keras.layers import Dense, BatchNormalization, Flatten
"""

BATCHNORM_EXAMPLE = """\
model = Sequential()

model.add(Flatten(input_shape=(28, 28)))

model.add(Dense(512, use_bias=False))

model.add(BatchNormalization())

model.add(tf.keras.layers.Activation('relu'))

model.add(Dense(128, use_bias=False))

model.add(BatchNormalization())

model.add(tf.keras.layers.Activation('relu'))

model.add(Dense(10, activation='softmax'))

model.summary()

model.compile(optimizer='adam',
              loss='sparse_categorical_crossentropy',
              metrics=['accuracy'])
"""

# What Keras prints for this model: (layer type, output shape, parameters)
KERAS_SUMMARY = [
    ("Flatten", "784", 0),
    ("Dense", "512", 784 * 512),                    # no bias
    ("BatchNormalization", "512", 4 * 512),         # gamma, beta, moving mean, moving variance
    ("Activation", "512", 0),
    ("Dense", "128", 512 * 128),
    ("BatchNormalization", "128", 4 * 128),
    ("Activation", "128", 0),
    ("Dense", "10", 128 * 10 + 10),
]


def run_example():
    namespace = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(IMPORTS + BATCHNORM_EXAMPLE, namespace)
    return namespace["model"], out.getvalue()


def test_batchnorm_example_summary_has_keras_parameter_counts():
    model, out = run_example()
    rows = [(m.group(2), m.group(3), int(m.group(4).replace(",", "")))
            for m in re.finditer(r"^(\S+) \((\w+)\)\s+\(None, ([\d, ]+)\)\s+([\d,]+)\s*$", out, re.M)]
    assert rows == KERAS_SUMMARY, out
    assert re.search(r"^Total params: 470,794$", out, re.M), out
    assert re.search(r"^Trainable params: 469,514$", out, re.M), out
    assert re.search(r"^Non-trainable params: 1,280$", out, re.M), out   # the moving statistics
    assert model.count_params() == 470794
    assert [w.shape for w in model.non_trainable_weights] == [(512,)] * 2 + [(128,)] * 2


@pytest.mark.slow
def test_batchnorm_example_trains_on_mnist_to_95_percent_in_5_epochs(mnist_dir):
    # Native backend (the reference agrees with it to rounding: see test_norm.py); about 2 s.
    (x_train, y_train), (x_test, y_test) = fastnn.datasets.load_mnist(mnist_dir)
    assert x_train.shape == (8000, 28, 28) and x_test.shape == (2000, 28, 28)
    set_random_seed(0)
    model, _ = run_example()
    history = model.fit(x_train, y_train, epochs=5, verbose=0)
    assert len(history.history["accuracy"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    test_loss, test_acc = model.evaluate(x_test, y_test)
    assert test_acc >= 0.95, f"test accuracy {test_acc:.4f} after 5 epochs"
    # inference uses the moving statistics: a sample's prediction does not depend on its batch
    np.testing.assert_array_equal(model.predict(x_test[:1]), model.predict(x_test[:64])[:1])
