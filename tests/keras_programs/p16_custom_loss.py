"""A custom loss and a custom metric written with keras.ops (with a schedule and class_weight)."""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import keras
from keras import layers, ops


def weighted_bce(y_true, y_pred):
    y_pred = ops.clip(y_pred, 1e-7, 1 - 1e-7)
    return -ops.mean(2.0 * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred), axis=-1)


def mean_prediction(y_true, y_pred):
    return ops.mean(y_pred)


keras.utils.set_random_seed(10)
x, y = load_breast_cancer(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = y.astype("float32").reshape(-1, 1)
schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=20, decay_rate=0.9)
model = keras.Sequential([keras.Input(shape=(30,)), layers.Dense(8, activation="relu"),
                          layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=weighted_bce,
              metrics=["accuracy", mean_prediction])
history = model.fit(x, y, epochs=10, batch_size=32, class_weight={0: 2.0, 1: 1.0},
                    validation_split=0.2, verbose=0)
print({"history_keys": sorted(history.history),
       "acc": float(history.history["val_accuracy"][-1])})
