"""Sequences: Embedding + LSTM for token classification, stacked GRU regression on a sine wave."""
import numpy as np

import keras
from keras import layers

keras.utils.set_random_seed(9)
rng = np.random.default_rng(0)
# does the sequence contain token 7? (a recurrent net must remember it)
tokens = rng.integers(1, 20, size=(600, 12))
labels = (tokens == 7).any(axis=1).astype("int32")

clf = keras.Sequential([
    keras.Input(shape=(12,), dtype="int32"),
    layers.Embedding(input_dim=20, output_dim=8),
    layers.LSTM(16),
    layers.Dense(2, activation="softmax"),
])
clf.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
            metrics=["accuracy"])
h1 = clf.fit(tokens[:500], labels[:500], epochs=8, batch_size=32, verbose=0,
             validation_data=(tokens[500:], labels[500:]))
clf_acc = clf.evaluate(tokens[500:], labels[500:], verbose=0)[1]

t = np.linspace(0, 40, 1000, dtype="float32")
wave = np.sin(t)
windows = np.stack([wave[i:i + 20] for i in range(900)])[..., None]
target = wave[20:920, None]
reg = keras.Sequential([
    keras.Input(shape=(20, 1)),
    layers.GRU(16, return_sequences=True),
    layers.GRU(8),
    layers.Dense(1),
])
reg.compile(optimizer="adam", loss="mse")
h2 = reg.fit(windows, target, epochs=5, batch_size=32, verbose=0)
seq_out = reg.layers[0](windows[:2])
print({"acc": float(clf_acc), "history_keys": sorted(h1.history), "reg_keys": sorted(h2.history),
       "reg_improved": bool(h2.history["loss"][-1] < h2.history["loss"][0] / 2),
       "seq_shape": tuple(seq_out.shape), "reg_pred_shape": tuple(reg.predict(windows[:3], verbose=0).shape)})
