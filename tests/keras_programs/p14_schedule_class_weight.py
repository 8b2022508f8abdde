"""A learning-rate schedule, class_weight for an imbalanced set, sample_weight, evaluate with
return_dict, predict with batch_size."""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import keras
from keras import layers

keras.utils.set_random_seed(10)
x, y = load_breast_cancer(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = y.astype("float32")
schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=20, decay_rate=0.9)
model = keras.Sequential([keras.Input(shape=(30,)), layers.Dense(8, activation="relu"),
                          layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
              loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
history = model.fit(x[:400], y[:400], epochs=10, batch_size=32, class_weight={0: 2.0, 1: 1.0},
                    validation_data=(x[400:], y[400:]), verbose=0)
weights = np.where(y[:400] == 0, 2.0, 1.0)
model.fit(x[:400], y[:400], sample_weight=weights, epochs=2, batch_size=32, verbose=0)
results = model.evaluate(x[400:], y[400:], batch_size=64, return_dict=True, verbose=0)
prob = model.predict(x[400:], batch_size=64, verbose=0)
print({"history_keys": sorted(history.history), "result_keys": sorted(results),
       "acc": float(results["accuracy"]), "prob_shape": tuple(prob.shape),
       "prob_dtype": str(prob.dtype), "iterations": int(keras.ops.convert_to_numpy(
           model.optimizer.iterations))})
