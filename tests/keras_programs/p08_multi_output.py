"""Functional model with two outputs: per-output losses, loss_weights and metrics (dicts)."""
import numpy as np
from sklearn.datasets import load_diabetes

import keras
from keras import layers

keras.utils.set_random_seed(7)
x, target = load_diabetes(return_X_y=True)
x = ((x - x.mean(0)) / x.std(0)).astype("float32")
target = ((target - target.mean()) / target.std()).astype("float32")
high = (target > 0).astype("float32")

inp = keras.Input(shape=(10,), name="features")
h = layers.Dense(32, activation="relu")(inp)
h = layers.Dense(16, activation="relu")(h)
value = layers.Dense(1, name="value")(h)
is_high = layers.Dense(1, activation="sigmoid", name="is_high")(h)
model = keras.Model(inp, [value, is_high])
model.compile(optimizer="adam",
              loss={"value": "mse", "is_high": "binary_crossentropy"},
              loss_weights={"value": 1.0, "is_high": 0.5},
              metrics={"value": ["mae"], "is_high": ["accuracy"]})
history = model.fit(x, {"value": target, "is_high": high}, epochs=20, batch_size=32,
                    validation_split=0.2, verbose=0)
results = model.evaluate(x, {"value": target, "is_high": high}, verbose=0, return_dict=True)
pv, ph = model.predict(x[:4], verbose=0)
print({"history_keys": sorted(history.history), "result_keys": sorted(results),
       "shapes": [tuple(pv.shape), tuple(ph.shape)],
       "acc": float(results["is_high_accuracy"]), "mae": float(results["value_mae"])})
