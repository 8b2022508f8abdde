"""Cross-check of fastnn's Keras files against real Keras (run by hand, not in CI).

Step 1, in fastnn's environment (with h5py):
    python bench/keras_files_crosscheck.py write /tmp/kcross
  builds and trains fastnn models covering every layer type (Sequential; functional with several
  inputs and outputs, shared layers, skip connections, every merge layer and Reshape, dicts of
  inputs and outputs; a subclassed model, saved as its traced graph), saves each as .keras (and
  one .weights.h5), and stores inputs and fastnn's predictions in /tmp/kcross/fastnn_outputs.npz.
Step 2, in an environment with Keras 3 (e.g. KERAS_BACKEND=jax):
    python bench/keras_files_crosscheck.py read /tmp/kcross
  opens each file with keras.models.load_model (and load_weights into a rebuilt model), compares
  predictions, continues training one step to show the optimizer state was accepted, and prints
  one line per file.
"""
import json
import os
import sys
import zipfile

import numpy as np


def write(out):
    import fastnn as keras
    L = keras.layers
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    outputs = {}
    x = rng.normal(size=(64, 6)).astype("float32")
    norm = L.Normalization()
    norm.adapt(x)
    models = {
        "dense": (keras.Sequential([
            keras.Input((6,)), norm, L.Rescaling(0.5, 0.1), L.Identity(),
            L.Dense(8, activation="relu", kernel_initializer="he_normal",
                    kernel_regularizer=keras.regularizers.L2(1e-3)),
            L.BatchNormalization(), L.Dropout(0.2), L.Dense(8, activation="tanh"), L.LayerNormalization(),
            L.Dense(8, activation="elu"), L.Dense(8, activation="selu"), L.Dense(8, activation="softplus"),
            L.Dense(8, activation="gelu"), L.Dense(8, activation="swish"), L.Dense(8, activation="sigmoid"),
            L.Activation("softsign"), L.ReLU(max_value=6.0), L.LeakyReLU(0.2), L.ELU(0.7), L.PReLU(),
            L.GaussianNoise(0.1), L.GaussianDropout(0.1), L.AlphaDropout(0.1),
            L.ActivityRegularization(0.01, 0.02), L.Flatten(), L.Dense(3), L.Softmax()]),
            x, rng.integers(0, 3, 64), dict(optimizer=keras.optimizers.Adam(3e-3),
                                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])),
        "recurrent": (keras.Sequential([
            keras.Input((5,)), L.Embedding(12, 4), L.SimpleRNN(5, return_sequences=True),
            L.LSTM(4, return_sequences=True), L.GRU(3), L.Dense(2)]),
            rng.integers(0, 12, (32, 5)).astype("float32"), rng.normal(size=(32, 2)).astype("float32"),
            dict(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")),
        "gru_v1": (keras.Sequential([keras.Input((4, 3)), L.GRU(3, reset_after=False, return_sequences=True),
                                     L.Dense(2, activation="softmax")]),
                   rng.normal(size=(16, 4, 3)).astype("float32"), None, None),
        "regression": (keras.Sequential([keras.Input((4,)), L.Dense(6, activation="relu"), L.Dense(1)]),
                       rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 1)).astype("float32"),
                       dict(optimizer=keras.optimizers.RMSprop(1e-3), loss=keras.losses.Huber(delta=0.5),
                            metrics=["mae"])),
        "settings": (keras.Sequential([
            keras.Input((4,)),
            L.Dense(5, activation="relu", use_bias=False,
                    kernel_initializer=keras.initializers.RandomNormal(mean=0.1, stddev=0.3, seed=7),
                    kernel_regularizer=keras.regularizers.L1L2(l1=1e-4, l2=1e-3),
                    kernel_constraint=keras.constraints.MaxNorm(2.0)),
            L.BatchNormalization(center=False, momentum=0.9), L.Dense(4, bias_constraint=keras.constraints.NonNeg(),
                                                                      bias_regularizer=keras.regularizers.L1(1e-3)),
            L.LayerNormalization(scale=False), L.Dense(3, activation="sigmoid")]),
            rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 2, (16, 3)).astype("float32"),
            dict(optimizer=keras.optimizers.RMSprop(1e-3, momentum=0.5, centered=True), loss="binary_crossentropy",
                 metrics=["accuracy"])),
        "schedule": (keras.Sequential([keras.Input((3,)), L.Dense(2, activation="softmax")]),
                     rng.normal(size=(16, 3)).astype("float32"), rng.integers(0, 2, 16),
                     dict(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(
                         1e-2, decay_steps=10, decay_rate=0.9), amsgrad=True),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False))),
        "activations": (keras.Sequential([keras.Input((3,))] + [L.Dense(3, activation=a) for a in (
            "linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "softplus", "gelu", "silu",
            "mish", "relu6", "hard_sigmoid", "hard_silu", "softsign", "exponential", "celu", "log_softmax",
            "softmax")]), (3 * rng.normal(size=(8, 3))).astype("float32"), None, None),
    }
    for name, (model, xs, ys, comp) in models.items():
        if comp is not None:
            model.compile(**comp)
            model.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
        model.save(os.path.join(out, name + ".keras"))
        outputs[name + "/x"] = xs[:8]
        outputs[name + "/y"] = model.predict(xs[:8], verbose=0)
        if name in ("regression", "settings", "schedule"):
            model.train_on_batch(xs, ys)
            outputs[name + "/xs"], outputs[name + "/ys"] = xs, ys
            outputs[name + "/after_step"] = model.predict(xs, verbose=0)
    models["dense"][0].save_weights(os.path.join(out, "dense.weights.h5"))
    for name, (model, xs, ys) in functional_models(keras, rng).items():
        model.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
        model.save(os.path.join(out, name + ".keras"))
        outputs.update(_flat(name + "/x", xs))
        outputs.update(_flat(name + "/y", model.predict(xs, verbose=0)))
        model.train_on_batch(xs, ys)
        outputs.update(_flat(name + "/ys", ys))
        outputs.update(_flat(name + "/after_step", model.predict(xs, verbose=0)))
    np.savez(os.path.join(out, "fastnn_outputs.npz"), **outputs)
    print("wrote", sorted(os.listdir(out)))


def functional_models(keras, rng):
    L = keras.layers
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    shared = L.Dense(5, activation="tanh", name="shared")
    ha, hb = shared(L.Dense(3, name="pre")(a)), shared(b)
    h = L.Concatenate()([L.Add()([ha, hb]), L.Subtract()([ha, hb]), L.Multiply()([ha, hb]),
                         L.Average()([ha, hb, ha]), L.Maximum()([ha, hb]), L.Minimum()([hb, ha]), ha])
    h = L.Flatten()(L.Reshape((7, 5))(h))
    h = L.Add(name="skip")([L.Dense(6, activation="relu", name="body")(h),
                            L.Dense(6, name="jump")(L.Concatenate()([a, b]))])
    graph = keras.Model([a, b], [L.Dense(1, name="price")(h),
                                 L.Dense(3, activation="softmax", name="kind")(L.BatchNormalization()(h))])
    graph.compile(optimizer=keras.optimizers.Adam(2e-3), loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[0.5, 2.0], metrics=[[], ["accuracy"]])
    xg = [rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")]
    yg = [rng.normal(size=(16, 1)).astype("float32"), rng.integers(0, 3, 16)]

    # Dicts of inputs and outputs with a GRU branch: the model Keras wrote in the test fixtures
    # (fastnn's recurrent layers are not yet called on keras.Input tensors), recompiled.
    named = keras.load_model(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                          "fixtures", "keras", "dict_io.keras"), compile=False)
    named.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss={"zeta": "mse", "alpha": "binary_crossentropy"}, metrics={"alpha": ["accuracy"]})
    xd = {"series": rng.normal(size=(12, 6)).astype("float32"), "extra": rng.normal(size=(12, 2)).astype("float32")}
    yd = {"zeta": rng.normal(size=(12, 2)).astype("float32"), "alpha": rng.integers(0, 2, (12, 1)).astype("float32")}

    class Towers(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = L.Dense(6, activation="relu")
            self.out = L.Dense(2)

        def call(self, x, training=False):
            return self.out(L.Concatenate()([self.hidden(x), x]))
    sub = Towers()
    sub.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="mse", metrics=["mae"])
    xs = rng.normal(size=(16, 3)).astype("float32")
    return {"functional": (graph, xg, yg), "dict_io": (named, xd, yd),
            "subclassed": (sub, xs, rng.normal(size=(16, 2)).astype("float32"))}


def _flat(prefix, value):
    """Arrays of a structure (array, list or dict) as npz entries."""
    if isinstance(value, dict):
        return {f"{prefix}/{k}": np.asarray(v) for k, v in value.items()}
    if isinstance(value, list):
        return {f"{prefix}/{i}": np.asarray(v) for i, v in enumerate(value)}
    return {prefix: np.asarray(value)}


def _unflat(e, prefix):
    keys = [k[len(prefix) + 1:] for k in e.files if k.startswith(prefix + "/")]
    if not keys:
        return e[prefix]
    if all(k.isdigit() for k in keys):
        return [e[f"{prefix}/{i}"] for i in range(len(keys))]
    return {k: e[f"{prefix}/{k}"] for k in keys}


def _max_diff(got, want):
    if isinstance(want, dict):
        return max(float(np.abs(np.asarray(got[k]) - want[k]).max()) for k in want)
    if isinstance(want, list):
        return max(float(np.abs(np.asarray(g) - w).max()) for g, w in zip(got, want))
    return float(np.abs(np.asarray(got) - want).max())


def read_functional(keras, e):
    failures = 0
    for name in ("functional", "dict_io", "subclassed"):
        try:
            path = os.path.join(os.path.dirname(e.fid.name), name + ".keras")
            model = keras.models.load_model(path)
            with zipfile.ZipFile(path) as z:  # Keras's own layer order is the one fastnn wrote
                written = [l["name"] for l in json.loads(z.read("config.json"))["config"]["layers"]]
            same_order = [l.name for l in model.layers] == written
            xs = _unflat(e, name + "/x")
            diff = _max_diff(model.predict(xs, verbose=0), _unflat(e, name + "/y"))
            iters = int(model.optimizer.iterations)
            model.train_on_batch(xs, _unflat(e, name + "/ys"))
            step = _max_diff(model.predict(xs, verbose=0), _unflat(e, name + "/after_step"))
            ok = diff < 1e-5 and step < 1e-4 and same_order
            failures += not ok
            print(f"{name}.keras: keras.models.load_model ok ({type(model).__name__}, {len(written)} layers, "
                  f"Keras's order {'=' if same_order else '!='} the file's), predictions max|diff| {diff:.2e}, optimizer "
                  f"{type(model.optimizer).__name__} iterations {iters}, one more step max|diff| {step:.2e}"
                  + ("" if ok else "  FAIL"))
        except Exception as exc:
            failures += 1
            print(f"{name}.keras: FAIL {type(exc).__name__}: {exc}")
    return failures


def read(out):
    import keras
    e = np.load(os.path.join(out, "fastnn_outputs.npz"))
    failures = 0
    for name in ("dense", "recurrent", "gru_v1", "regression", "settings", "schedule", "activations"):
        try:
            model = keras.models.load_model(os.path.join(out, name + ".keras"))
            diff = float(np.abs(np.asarray(model.predict(e[name + "/x"], verbose=0)) - e[name + "/y"]).max())
            extra = ""
            if getattr(model, "optimizer", None) is not None and model.compiled:
                extra = f", optimizer {type(model.optimizer).__name__} iterations {int(model.optimizer.iterations)}"
            if name + "/xs" in e:
                model.train_on_batch(e[name + "/xs"], e[name + "/ys"])
                step = float(np.abs(np.asarray(model.predict(e[name + "/xs"], verbose=0))
                                    - e[name + "/after_step"]).max())
                extra += f", one more step max|diff| {step:.2e}"
            ok = diff < 1e-5
            failures += not ok
            print(f"{name}.keras: keras.models.load_model ok, predictions max|diff| {diff:.2e}{extra}"
                  + ("" if ok else "  FAIL"))
        except Exception as exc:  # report and go on: this is a report, not a test
            failures += 1
            print(f"{name}.keras: FAIL {type(exc).__name__}: {exc}")
    try:
        model = keras.models.load_model(os.path.join(out, "dense.keras"), compile=False)
        model.load_weights(os.path.join(out, "dense.weights.h5"))
        diff = float(np.abs(np.asarray(model.predict(e["dense/x"], verbose=0)) - e["dense/y"]).max())
        print(f"dense.weights.h5: load_weights ok, predictions max|diff| {diff:.2e}")
    except Exception as exc:
        failures += 1
        print(f"dense.weights.h5: FAIL {type(exc).__name__}: {exc}")
    return failures + read_functional(keras, e)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "read"):
        sys.exit(__doc__)
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(1 if read(sys.argv[2]) else 0)
