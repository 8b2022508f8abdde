"""fastnn's recurrent layers against Keras 3 itself, on identical weights and inputs.

Two halves, run by different Pythons (Keras is never a dependency of fastnn):

    # 1. in an environment with Keras 3 and JAX: build each case's Keras model, give it random
    #    weights, and save its weights, inputs, outputs and the gradients of a loss (the mean
    #    squared error against a random target) with respect to every weight (jax.grad)
    KERAS_BACKEND=jax /path/to/keras-venv/bin/python bench/keras_recurrent_compare.py \\
        make /tmp/keras_recurrent.npz

    # 2. with fastnn: build the same models, set_weights(Keras's weights), compare
    python bench/keras_recurrent_compare.py check /tmp/keras_recurrent.npz

The cases: SimpleRNN, LSTM, GRU (reset_after True and False) returning sequences or the last
state, go_backwards, initial_state (and return_state), stacked layers, a Dense on every step,
Embedding -> LSTM -> Dense, and the course notes' block (003 section 9: SimpleRNN / LSTM / GRU of
20 units with return_sequences on (3, 5, 10) inputs). ``tests/fixtures/keras_recurrent.npz`` was
made by ``make`` (float32, Keras 3 on JAX); ``tests/test_recurrent.py`` checks fastnn against it
with :func:`compare`, so the Keras equivalence is tested without Keras.
"""
import argparse
import json
import sys

import numpy as np

# name: (input shape without the batch, "float" or "tokens", [(layer class, kwargs)...],
#        initial_state given, return_state)
CASES = {}


def _case(name, shape, stack, kind="float", initial_state=False):
    CASES[name] = dict(shape=list(shape), kind=kind, stack=stack, initial_state=initial_state)


for _cell, _extra in (("SimpleRNN", {}), ("LSTM", {}), ("GRU", {"reset_after": True}),
                      ("GRU", {"reset_after": False})):
    _tag = _cell.lower() + ("" if "reset_after" not in _extra else
                            "_after" if _extra["reset_after"] else "_before")
    for _seq in (True, False):
        _case(f"{_tag}_{'seq' if _seq else 'last'}", (6, 3),
              [[_cell, dict(units=4, return_sequences=_seq, **_extra)]])
    _case(f"{_tag}_backwards", (6, 3),
          [[_cell, dict(units=4, return_sequences=True, go_backwards=True, **_extra)]])
    _case(f"{_tag}_initial_state", (5, 3),
          [[_cell, dict(units=4, return_sequences=True, return_state=True, **_extra)]],
          initial_state=True)
_case("simple_rnn_relu", (6, 3), [["SimpleRNN", dict(units=4, activation="relu",
                                                     return_sequences=True)]])
_case("stacked", (7, 3), [["LSTM", dict(units=6, return_sequences=True)],
                          ["GRU", dict(units=5, return_sequences=True, go_backwards=True)],
                          ["SimpleRNN", dict(units=4)], ["Dense", dict(units=3)]])
_case("lstm_dense_per_step", (5, 3), [["LSTM", dict(units=5, return_sequences=True)],
                                      ["Dense", dict(units=2, activation="tanh")]])
_case("embedding_lstm_dense", (8,), [["Embedding", dict(input_dim=12, output_dim=4)],
                                     ["LSTM", dict(units=5)],
                                     ["Dense", dict(units=2, activation="softmax")]],
      kind="tokens")
for _cell in ("SimpleRNN", "LSTM", "GRU"):  # the notes' block, each of its three choices
    _case(f"notes_{_cell.lower()}", (5, 10), [[_cell, dict(units=20, return_sequences=True)]])

BATCH = 3


def _inputs(case, rng, dtype):
    shape = [BATCH] + case["shape"]
    if case["kind"] == "tokens":
        return rng.integers(0, case["stack"][0][1]["input_dim"], size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def _n_states(case):
    return 2 if case["stack"][0][0] == "LSTM" else 1


# -- half 1: Keras ---------------------------------------------------------------------------------
def make(path, dtype="float32"):
    """Keras's float32 results (Keras 3.15's JAX RNN loop refused float64 states here)."""
    import jax
    import jax.numpy as jnp
    import keras
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    out = {"spec": np.array(json.dumps(CASES)), "dtype": np.array(dtype),
           "keras_version": np.array(keras.__version__)}
    for name, case in CASES.items():
        x = _inputs(case, rng, dtype)
        inputs = [keras.Input(shape=tuple(case["shape"]), dtype=dtype)]
        states = []
        if case["initial_state"]:
            units = case["stack"][0][1]["units"]
            states = [rng.normal(size=(BATCH, units)).astype(dtype) * 0.5
                      for _ in range(_n_states(case))]
            inputs += [keras.Input(shape=(units,), dtype=dtype) for _ in states]
        h = inputs[0]
        for i, (cls, kwargs) in enumerate(case["stack"]):
            layer = getattr(keras.layers, cls)(**kwargs)
            h = layer(h, initial_state=inputs[1:]) if (i == 0 and states) else layer(h)
        model = keras.Model(inputs, h)
        weights = [rng.normal(size=w.shape).astype(dtype) * 0.5 for w in model.get_weights()]
        model.set_weights(weights)
        feed = [x] + states
        outputs = model(feed if states else x)
        outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple))
                                           else [outputs])]
        target = rng.normal(size=outputs[0].shape).astype(dtype)
        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]

        def loss_fn(tv, feed=feed, target=target, model=model, fixed=fixed):
            y, _ = model.stateless_call(tv, fixed, feed if len(feed) > 1 else feed[0])
            y = y[0] if isinstance(y, (list, tuple)) else y
            return jnp.mean((y - target) ** 2)
        loss, grads = jax.value_and_grad(loss_fn)(trainable)
        out[f"{name}/x"] = x
        out[f"{name}/target"] = target
        out[f"{name}/loss"] = np.asarray(loss)
        for i, s in enumerate(states):
            out[f"{name}/state{i}"] = s
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
        for i, o in enumerate(outputs):
            out[f"{name}/out{i}"] = o
        for i, g in enumerate(grads):
            out[f"{name}/g{i}"] = np.asarray(g)
    np.savez_compressed(path, **out)
    print(f"wrote {path}: {len(CASES)} cases, Keras {keras.__version__} on JAX {jax.__version__}, "
          f"{dtype}")


# -- half 2: fastnn --------------------------------------------------------------------------------
def _fastnn_case(name, case, data, dtype):
    """fastnn's outputs, loss and weight gradients for one case on the saved weights."""
    import fastnn
    from fastnn import layers
    stack = [getattr(layers, cls)(**kwargs) for cls, kwargs in case["stack"]]
    x = data[f"{name}/x"]
    weights = [data[f"{name}/w{i}"] for i in range(sum(1 for k in data
                                                         if k.startswith(f"{name}/w")))]
    outputs = states = None
    if case["initial_state"]:  # one layer, called on its own: initial_state and return_state
        (layer,) = stack
        states = [data[f"{name}/state{i}"] for i in range(_n_states(case))]
        layer(x)  # builds it
        layer.set_weights(weights)
        outputs = layer(x, initial_state=states)
        outputs = outputs if isinstance(outputs, list) else [outputs]
    else:
        model = fastnn.Sequential([layers.Input(shape=tuple(case["shape"]))] + stack)
        model.set_weights(weights)
    # forward and backward through the layers (inference mode, as Keras's stateless_call)
    h = x
    for i, layer in enumerate(stack):
        if i == 0 and states is not None:
            layer._initial = [np.ascontiguousarray(s, dtype) for s in states]
        h = layer.forward(h, training=False)
    y = np.array(h)
    if outputs is None:
        outputs = [y]
    target = data[f"{name}/target"]
    loss = float(np.mean((y.astype(np.float64) - target) ** 2))
    dy = np.ascontiguousarray((2.0 / y.size) * (y - target), dtype)
    for i in range(len(stack) - 1, -1, -1):
        dy = stack[i].backward(dy, need_dx=i > 0 and stack[i].trainable)
    grads = [np.array(g) for layer in stack for g in layer.grads]
    for layer in stack:
        layer._initial = None
        layer.release()
    return outputs, loss, grads


def compare(path, rtol=None, atol=None, verbose=True):
    """Compares fastnn with the saved Keras results; returns {case: largest relative error}
    and raises AssertionError (naming the case and array) on the first disagreement beyond
    float32 rounding (rtol 1e-5, atol 5e-6 times the array's scale when above 1)."""
    import fastnn
    data = dict(np.load(path))
    dtype = str(data["dtype"])
    rtol = 1e-5 if rtol is None else rtol
    atol = 5e-6 if atol is None else atol
    cases = json.loads(str(data["spec"]))
    previous = fastnn.backend.floatx()
    fastnn.backend.set_floatx(dtype)
    errors = {}
    try:
        for name, case in cases.items():
            outputs, loss, grads = _fastnn_case(name, case, data, dtype)
            n_out = sum(1 for k in data if k.startswith(f"{name}/out"))
            n_g = sum(1 for k in data if k.startswith(f"{name}/g"))
            assert len(outputs) == n_out, (name, len(outputs), n_out)
            assert len(grads) == n_g, (name, len(grads), n_g)
            pairs = [(f"out{i}", o, data[f"{name}/out{i}"]) for i, o in enumerate(outputs)]
            pairs += [(f"g{i}", g, data[f"{name}/g{i}"]) for i, g in enumerate(grads)]
            pairs.append(("loss", np.array(loss), data[f"{name}/loss"]))
            worst = 0.0
            for what, got, want in pairs:
                assert got.shape == want.shape, (name, what, got.shape, want.shape)
                scale = max(float(np.abs(want).max()), 1e-30)
                np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(scale, 1.0),
                                           err_msg=f"{name}: {what}")
                worst = max(worst, float(np.max(np.abs(got - want)) / scale))
            errors[name] = worst
            if verbose:
                print(f"{name:28s} agrees: largest |fastnn - Keras| / max|Keras| = {worst:.1e}")
    finally:
        fastnn.backend.set_floatx(previous)
    return errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="run Keras (KERAS_BACKEND=jax) and save the results")
    m.add_argument("path")
    c = sub.add_parser("check", help="compare fastnn with saved Keras results")
    c.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.path)
    else:
        errors = compare(args.path)
        print(f"{len(errors)} cases agree with Keras; worst {max(errors.values()):.1e}")


if __name__ == "__main__":
    sys.exit(main())
