"""Functional API: two named inputs, a skip connection (Add), Concatenate, one output."""
import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(3)
rng = np.random.default_rng(0)
n = 1200
num = rng.normal(size=(n, 8)).astype("float32")
cat = rng.normal(size=(n, 4)).astype("float32")
y = (num[:, 0] + num[:, 1] * cat[:, 0] - cat[:, 1] > 0).astype("float32")

num_in = keras.Input(shape=(8,), name="numeric")
cat_in = keras.Input(shape=(4,), name="other")
h = layers.Dense(16, activation="relu")(num_in)
h2 = layers.Dense(16, activation="relu")(h)
h = layers.Add()([h, h2])                       # skip connection
g = layers.Dense(16, activation="relu")(cat_in)
merged = layers.Concatenate()([h, g])
merged = layers.Dense(16, activation="relu")(merged)
out = layers.Dense(1, activation="sigmoid", name="label")(merged)
model = keras.Model(inputs=[num_in, cat_in], outputs=out)
model.summary()
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
              metrics=["accuracy"])
history = model.fit([num[:1000], cat[:1000]], y[:1000], epochs=15, batch_size=32,
                    validation_data=([num[1000:], cat[1000:]], y[1000:]), verbose=0)
loss, acc = model.evaluate({"numeric": num[1000:], "other": cat[1000:]}, y[1000:], verbose=0)
pred = model.predict([num[:7], cat[:7]], verbose=0)
print({"acc": float(acc), "history_keys": sorted(history.history),
       "pred_shape": tuple(pred.shape), "n_layers": len(model.layers),
       "params": model.count_params(), "input_names": [t.name for t in model.inputs]})
