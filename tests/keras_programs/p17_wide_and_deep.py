"""Wide-and-deep with the functional helpers layers.concatenate / layers.add, loss="bce",
inspecting layers (activation.__name__, units, kernel), and predictions thresholded by hand."""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import keras
from keras import layers

keras.utils.set_random_seed(12)
x, y = load_breast_cancer(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = y.astype("float32")

inputs = keras.Input(shape=(30,))
deep = layers.Dense(16, activation="relu")(inputs)
deep2 = layers.Dense(16, activation="tanh")(deep)
deep = layers.add([deep, deep2])
wide = layers.Dense(4)(inputs)
both = layers.concatenate([wide, deep])
output = layers.Dense(1, activation="sigmoid")(both)
model = keras.Model(inputs, output, name="wide_and_deep")
model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="bce",
              metrics=["accuracy"])
history = model.fit(x[:450], y[:450], epochs=10, batch_size=32, verbose=0)
pred = (model.predict(x[450:], verbose=0) > 0.5).astype("int32").ravel()
dense = [l for l in model.layers if isinstance(l, layers.Dense)]
print({"acc": float(np.mean(pred == y[450:])), "history_keys": sorted(history.history),
       "activations": [l.activation.__name__ for l in dense], "units": [l.units for l in dense],
       "kernels": [tuple(l.kernel.shape) for l in dense], "name": model.name,
       "layer_types": [type(l).__name__ for l in model.layers]})
