"""Binary classification on breast cancer: Normalization.adapt, sigmoid, AUC/Precision/Recall."""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import keras
from keras import layers

keras.utils.set_random_seed(2)
x, y = load_breast_cancer(return_X_y=True)
x = x.astype("float32")
y = y.astype("float32")
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                    stratify=y)
norm = layers.Normalization()
norm.adapt(x_train)

model = keras.Sequential([
    keras.Input(shape=(30,)),
    norm,
    layers.Dense(16, activation="relu"),
    layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy",
              metrics=["accuracy", keras.metrics.AUC(name="auc"),
                       keras.metrics.Precision(name="precision"),
                       keras.metrics.Recall(name="recall")])
history = model.fit(x_train, y_train, epochs=20, batch_size=32, validation_split=0.2, verbose=0)
results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
prob = model.predict(x_test, verbose=0)
print(results)
print({"acc": float(results["accuracy"]), "auc": float(results["auc"]),
       "precision": float(results["precision"]), "recall": float(results["recall"]),
       "result_keys": sorted(results), "history_keys": sorted(history.history),
       "prob_shape": tuple(prob.shape)})
