"""Everyday model methods: layers, get_layer, to_json/model_from_json, clone_model, freezing,
train_on_batch / test_on_batch / predict_on_batch, metrics_names."""
import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(8)
rng = np.random.default_rng(1)
x = rng.normal(size=(256, 6)).astype("float32")
y = (x @ rng.normal(size=(6, 1))).astype("float32")

model = keras.Sequential([
    keras.Input(shape=(6,)),
    layers.Dense(8, activation="tanh", name="body"),
    layers.Dense(1, name="head"),
])
model.compile(optimizer="adam", loss="mse")
first = model.train_on_batch(x[:32], y[:32])
test = model.test_on_batch(x[:32], y[:32])
pred = model.predict_on_batch(x[:5])

config_json = model.to_json()
rebuilt = keras.models.model_from_json(config_json)
clone = keras.models.clone_model(model)
clone.set_weights(model.get_weights())

body = model.get_layer("body")
body.trainable = False
frozen = body.get_weights()[0].copy()
model.compile(optimizer="adam", loss="mse")
model.fit(x, y, epochs=2, verbose=0)
print({"first_type": type(first).__name__, "test_type": type(test).__name__,
       "pred_shape": tuple(pred.shape),
       "rebuilt_layers": [l.name for l in rebuilt.layers],
       "clone_same": bool(np.allclose(clone.predict(x[:5], verbose=0), pred, atol=1e-6)),
       "frozen_kept": bool(np.array_equal(frozen, body.get_weights()[0])),
       "trainable_weights": len(model.trainable_weights),
       "non_trainable_weights": len(model.non_trainable_weights),
       "index_layer": model.get_layer(index=1).name,
       "metrics_names": list(model.metrics_names)})
