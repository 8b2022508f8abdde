"""Save and load: the whole model to .keras, weights to .weights.h5, get/set_weights."""
import numpy as np
from sklearn.datasets import load_iris

import keras
from keras import layers

keras.utils.set_random_seed(6)
x, y = load_iris(return_X_y=True)
x = ((x - x.mean(0)) / x.std(0)).astype("float32")

def build():
    return keras.Sequential([
        keras.Input(shape=(4,)),
        layers.Dense(16, activation="relu", name="hidden"),
        layers.BatchNormalization(),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="iris")

model = build()
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=20, batch_size=16, verbose=0)
ref = model.predict(x, verbose=0)

model.save("iris.keras")
loaded = keras.models.load_model("iris.keras")
same_full = np.allclose(loaded.predict(x, verbose=0), ref, atol=1e-6)
# the optimizer state travels too: training continues from where it stopped
loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)

model.save_weights("iris.weights.h5")
fresh = build()
fresh.load_weights("iris.weights.h5")
same_weights = np.allclose(fresh.predict(x, verbose=0), ref, atol=1e-6)

copy = build()
copy.set_weights(model.get_weights())
same_set = np.allclose(copy.predict(x, verbose=0), ref, atol=1e-6)
print({"same_full": bool(same_full), "same_weights": bool(same_weights),
       "same_set": bool(same_set), "loaded_name": loaded.name,
       "layer_names": [l.name for l in loaded.layers],
       "acc": float(model.evaluate(x, y, verbose=0)[1]),
       "weight_shapes": [tuple(w.shape) for w in model.get_weights()]})
