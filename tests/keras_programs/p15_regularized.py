"""Regularization tools from the notes: L2, Dropout, BatchNormalization, LeakyReLU, he_normal,
gradient clipping, LearningRateScheduler, TerminateOnNaN."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras
from keras import layers, regularizers

keras.utils.set_random_seed(11)
x, y = load_digits(return_X_y=True)
x = keras.utils.normalize(x.astype("float32"), axis=-1)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=1)

model = keras.Sequential([
    keras.Input(shape=(64,)),
    layers.Dense(64, kernel_initializer="he_normal", kernel_regularizer=regularizers.l2(1e-4)),
    layers.BatchNormalization(),
    layers.LeakyReLU(negative_slope=0.1),
    layers.Dropout(0.3),
    layers.Dense(32, activation="relu", kernel_regularizer=regularizers.L1L2(l1=1e-5, l2=1e-4)),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3, clipnorm=1.0),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
callbacks = [keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9 if epoch > 2 else lr),
             keras.callbacks.TerminateOnNaN()]
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=12, batch_size=32,
                    callbacks=callbacks, verbose=0)
lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
print({"history_keys": sorted(history.history), "acc": float(history.history["val_accuracy"][-1]),
       "lr_decayed": bool(abs(lr - 1e-3 * 0.9 ** 9) < 1e-6), "n_losses": len(model.losses)})
