"""Regression on diabetes: scaled inputs, MSE with MAE metric, EarlyStopping on val_loss."""
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import keras
from keras import layers

keras.utils.set_random_seed(1)
x, y = load_diabetes(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
scaler = StandardScaler().fit(x_train)
x_train = scaler.transform(x_train).astype("float32")
x_test = scaler.transform(x_test).astype("float32")
y_train = y_train.astype("float32")
y_test = y_test.astype("float32")

model = keras.Sequential([
    layers.Input(shape=(x_train.shape[1],)),
    layers.Dense(32, activation="relu"),
    layers.Dense(16, activation="relu"),
    layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=100,
                    batch_size=32, callbacks=[stop], verbose=0)
test_mse, test_mae = model.evaluate(x_test, y_test, verbose=0)
pred = model.predict(x_test[:5], verbose=0)
print(f"test MAE {test_mae:.1f}")
print({"mae": float(test_mae), "mse": float(test_mse), "history_keys": sorted(history.history),
       "stopped_early": len(history.history["loss"]) < 100, "pred_shape": tuple(pred.shape),
       "best_val_restored": bool(abs(test_mse - min(history.history["val_loss"])) < 1e-2 * test_mse)})
