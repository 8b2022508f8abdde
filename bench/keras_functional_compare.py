"""Loss trajectory of one two-input / two-output functional model, fastnn against Keras 3.

Both frameworks build the same graph (two inputs, Add, Concatenate, a softmax and a linear
output, loss_weights), start from the same weights (set layer by layer, by name) and take the
same SGD steps on the same batches; the per-step total and per-output losses are compared.

    python bench/keras_functional_compare.py /tmp/fcmp  # writes inputs, runs Keras, compares

Keras runs in its own environment (``KERAS_PYTHON``, default /work/kvenv/bin/python, with
``KERAS_BACKEND=jax``): this script calls itself there with ``--keras``. Keras is never a
dependency of fastnn.
"""
import os
import subprocess
import sys

import numpy as np

STEPS, BATCH = 30, 16


def build(keras, layers):
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(3,), name="b")
    h = layers.Dense(8, activation="relu", name="ha")(a)
    g = layers.Dense(8, activation="tanh", name="hb")(b)
    s = layers.Add(name="add")([h, g])
    c = layers.Concatenate(name="cat")([s, b])
    cls = layers.Dense(3, activation="softmax", name="cls")(c)
    reg = layers.Dense(1, name="reg")(s)
    model = keras.Model([a, b], [cls, reg])
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=["sparse_categorical_crossentropy", "mean_squared_error"], loss_weights=[1.0, 0.5])
    return model


def train(model, data, weights):
    for name in ("ha", "hb", "cls", "reg"):
        model.get_layer(name).set_weights([weights[f"{name}_{i}"] for i in range(2)])
    out = {"loss": [], "cls_loss": [], "reg_loss": []}
    for step in range(STEPS):
        lo = (step * BATCH) % len(data["xa"])
        sl = slice(lo, lo + BATCH)
        logs = model.train_on_batch([data["xa"][sl], data["xb"][sl]], [data["y1"][sl], data["y2"][sl]],
                                    return_dict=True)
        for k in out:
            out[k].append(float(logs[k]))
    return {k: np.array(v) for k, v in out.items()}


def main(workdir):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import fastnn as keras
    from fastnn import layers
    rng = np.random.default_rng(0)
    data = {"xa": rng.normal(size=(128, 4)).astype(np.float32), "xb": rng.normal(size=(128, 3)).astype(np.float32),
            "y1": rng.integers(0, 3, 128), "y2": rng.normal(size=(128, 1)).astype(np.float32)}
    model = build(keras, layers)
    weights = {f"{n}_{i}": w for n in ("ha", "hb", "cls", "reg")
               for i, w in enumerate(model.get_layer(n).get_weights())}
    np.savez(os.path.join(workdir, "inputs.npz"), **data, **weights)
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([os.environ.get("KERAS_PYTHON", "/work/kvenv/bin/python"), __file__, "--keras", workdir],
                   check=True, env=env)
    theirs = np.load(os.path.join(workdir, "keras.npz"))
    for backend in ("numpy", "native"):
        with keras.backend_scope(backend):
            ours = train(build(keras, layers), data, weights)
        for k in ours:
            rel = float(np.max(np.abs(ours[k] - theirs[k]) / np.maximum(np.abs(theirs[k]), 1e-12)))
            print(f"{backend:6s} {k:9s} first {ours[k][0]:.6f} (keras {theirs[k][0]:.6f})  last {ours[k][-1]:.6f} "
                  f"(keras {theirs[k][-1]:.6f})  max rel diff {rel:.2e}")


def keras_side(workdir):
    import keras
    from keras import layers
    saved = np.load(os.path.join(workdir, "inputs.npz"))
    data = {k: saved[k] for k in ("xa", "xb", "y1", "y2")}
    np.savez(os.path.join(workdir, "keras.npz"), **train(build(keras, layers), data, saved))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--keras":
        keras_side(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "/tmp")
