"""Callbacks: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger, a custom Callback."""
import csv

import numpy as np
from sklearn.datasets import load_digits

import keras
from keras import layers


class Recorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((epoch, sorted(logs)))


keras.utils.set_random_seed(5)
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")

model = keras.Sequential([
    keras.Input(shape=(64,)),
    layers.Dense(32, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(),
              metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
recorder = Recorder()
callbacks = [
    keras.callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=3),
    keras.callbacks.ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4),
    keras.callbacks.CSVLogger("log.csv"),
    recorder,
]
history = model.fit(x, y, epochs=12, batch_size=64, validation_split=0.2, callbacks=callbacks,
                    verbose=0)
with open("log.csv") as f:
    rows = list(csv.DictReader(f))
best = keras.models.load_model("best.keras")
best_loss = best.evaluate(x[-360:], y[-360:], verbose=0)[0]
print({"history_keys": sorted(history.history), "csv_columns": sorted(rows[0]),
       "one_row_per_epoch": len(rows) == len(history.history["loss"]) == len(recorder.seen),
       "recorded_keys": recorder.seen[-1][1],
       "best_is_min": bool(abs(best_loss - min(history.history["val_loss"])) < 1e-3),
       "history_type": type(history).__name__, "final_acc": float(history.history["val_acc"][-1]),
       "history_epoch": list(history.epoch)[:3]})
