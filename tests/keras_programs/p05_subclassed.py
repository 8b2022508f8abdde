"""A subclassed keras.Model: layers in __init__, call(x, training), weights saved and reloaded."""
import numpy as np
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import keras
from keras import layers


class WineNet(keras.Model):
    def __init__(self, n_classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(32, activation="relu")
        self.dropout = layers.Dropout(0.3)
        self.out = layers.Dense(n_classes, activation="softmax")

    def call(self, inputs, training=False):
        x = self.hidden(inputs)
        x = self.dropout(x, training=training)
        return self.out(x)


keras.utils.set_random_seed(4)
x, y = load_wine(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order], y[order]

model = WineNet()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x[:140], y[:140], epochs=30, batch_size=16, verbose=0)
loss, acc = model.evaluate(x[140:], y[140:], verbose=0)
before = model.predict(x[140:], verbose=0)
model.save_weights("wine.weights.h5")

again = WineNet()
again(x[:1])                                     # build the variables
again.load_weights("wine.weights.h5")
after = again.predict(x[140:], verbose=0)
print({"acc": float(acc), "history_keys": sorted(history.history),
       "same_predictions": bool(np.allclose(before, after, atol=1e-6)),
       "pred_shape": tuple(after.shape), "n_weights": len(model.get_weights())})
