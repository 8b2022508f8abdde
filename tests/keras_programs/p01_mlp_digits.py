"""MLP on scikit-learn's digits: Sequential, one-hot labels, validation_split."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras
from keras import layers

keras.utils.set_random_seed(0)
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
y_train_1h = keras.utils.to_categorical(y_train, 10)
y_test_1h = keras.utils.to_categorical(y_test, num_classes=10)

model = keras.Sequential([
    keras.Input(shape=(64,)),
    layers.Dense(64, activation="relu"),
    layers.Dropout(0.2),
    layers.Dense(32, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.summary()
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train_1h, epochs=15, batch_size=32, validation_split=0.1, verbose=0)
loss, acc = model.evaluate(x_test, y_test_1h, verbose=0)
probs = model.predict(x_test, verbose=0)
pred = np.argmax(probs, axis=1)
print(f"test accuracy {acc:.3f}")
print({"acc": float(acc), "manual_acc": float(np.mean(pred == y_test)),
       "history_keys": sorted(history.history), "epochs": len(history.history["loss"]),
       "probs_shape": tuple(probs.shape), "probs_dtype": str(probs.dtype),
       "row_sums": float(np.abs(probs.sum(axis=1) - 1).max() < 1e-4),
       "params": model.count_params()})
